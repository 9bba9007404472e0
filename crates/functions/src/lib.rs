//! Hosts AWS Lambda function code as local worker processes speaking the
//! Lambda Runtime API (`python -m awslambdaric MODULE.HANDLER`, or any
//! executable `bootstrap`), so that sagaflow can run Lambda (durable)
//! functions unchanged.
//!
//! The crate knows nothing about durable executions: [`Host::invoke`] takes
//! a payload for a named function and returns what the function answered.
//!
//! Layout: `config` (what is configured and its checks), `pool` (per
//! function: the FIFO of invocations and which worker holds which),
//! `worker` (spawning, logging, killing and reaping processes),
//! `runtime_api` (the HTTP side a worker talks to). Every worker gets its
//! own Runtime API listener, so a request identifies its worker by the port
//! it arrived on, and a worker's death fails exactly the invocation it held.

mod config;
mod pool;
mod runtime_api;
mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use config::{Credentials, DurableConfig, FunctionConfig, HostConfig, RuntimeKind};

use pool::Function;

/// Why the host could not do what was asked (as opposed to the function
/// failing, which is an [`Invocation`]).
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// No function of that name is hosted.
    #[error("no function named {0:?} is hosted")]
    UnknownFunction(String),
    /// A function's configuration is invalid.
    #[error("function {function:?}: invalid {field}: {message}")]
    InvalidConfig {
        /// The function's name, as configured.
        function: String,
        /// The offending field (`durable.retention_days` for nested ones).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// An I/O operation of the host failed.
    #[error("{context}: {source}")]
    Io {
        /// What the host was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The request id given to [`Host::invoke`] cannot be sent in a header
    /// (empty, or not visible ASCII).
    #[error("request id {0:?} is not 1 to 256 visible ASCII characters")]
    InvalidRequestId(String),
    /// [`Host::shutdown`] has been called.
    #[error("the function host is shut down")]
    ShutDown,
}

/// What one invocation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// The body the function posted to `/response`.
    Response(Vec<u8>),
    /// The function posted to `/error` (its handler raised).
    FunctionError {
        /// `errorType` of the body, else the `Lambda-Runtime-Function-Error-Type` header.
        error_type: String,
        /// `errorMessage` of the body (the raw body when it is not JSON).
        error_message: String,
        /// `stackTrace` of the body, one line per element.
        stack_trace: Vec<String>,
        /// The body as posted.
        body: Vec<u8>,
    },
    /// No answer: the caller retries the invocation.
    Failed(Failure),
}

/// Why an invocation got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// `timeout_seconds` passed; the worker was killed.
    TimedOut {
        /// The function's timeout.
        after: Duration,
    },
    /// The worker exited (or was lost) while holding the invocation.
    Crashed {
        /// Exit status or signal, and the last stderr lines.
        status: String,
    },
    /// The worker failed to initialise (posted `/init/error`, could not be
    /// started, or did not ask for work in time).
    InitError {
        /// e.g. `Runtime.ImportModuleError`.
        error_type: String,
        /// What went wrong.
        error_message: String,
    },
}

/// A running function host: a clone-able handle.
#[derive(Clone)]
pub struct Host {
    inner: Arc<Inner>,
}

struct Inner {
    functions: BTreeMap<String, Arc<Function>>,
}

impl Host {
    /// Validates every function (name, handler present for python, code
    /// directory exists, timeout > 0, workers >= 1, durable ranges), with an
    /// error naming the function and the field. No worker starts until the
    /// first invoke of its function; workers are then kept warm and reused.
    /// Each worker gets its own Runtime API listener on `127.0.0.1:0` when it
    /// is spawned.
    pub async fn start(
        config: HostConfig,
        functions: Vec<(FunctionConfig, Credentials)>,
    ) -> Result<Host, HostError> {
        config::validate_all(functions.iter().map(|(f, _)| f))?;
        if let Some(dir) = &config.log_dir {
            std::fs::create_dir_all(dir).map_err(|source| HostError::Io {
                context: format!("creating the log directory {}", dir.display()),
                source,
            })?;
        }
        let config = Arc::new(config);
        let functions = functions
            .into_iter()
            .map(|(f, c)| (f.name.clone(), Function::new(config.clone(), f, c)))
            .collect();
        Ok(Host {
            inner: Arc::new(Inner { functions }),
        })
    }

    /// The configuration of the function called `name`, if hosted.
    pub fn function(&self, name: &str) -> Option<&FunctionConfig> {
        self.inner.functions.get(name).map(|f| &f.config)
    }

    /// Every hosted function, by name.
    pub fn functions(&self) -> impl Iterator<Item = &FunctionConfig> {
        self.inner.functions.values().map(|f| &f.config)
    }

    /// Runs one invocation: queues it (FIFO) for a free worker of the
    /// function, spawning one if fewer than `workers` run, hands it the
    /// payload through `/next` and waits for `/response` or `/error`, the
    /// worker's death or the timeout. `request_id` defaults to a fresh UUID.
    pub async fn invoke(
        &self,
        function: &str,
        payload: Vec<u8>,
        request_id: Option<String>,
    ) -> Result<Invocation, HostError> {
        let f = self
            .inner
            .functions
            .get(function)
            .ok_or_else(|| HostError::UnknownFunction(function.to_owned()))?;
        let request_id = request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let printable = request_id.bytes().all(|b| b.is_ascii_graphic());
        if !printable || !(1..=256).contains(&request_id.len()) {
            return Err(HostError::InvalidRequestId(request_id));
        }
        f.invoke(payload, request_id).await
    }

    /// The process ids of the function's live workers (for diagnostics and
    /// tests); empty for an unknown function.
    pub fn worker_pids(&self, function: &str) -> Vec<u32> {
        self.inner
            .functions
            .get(function)
            .map(|f| f.worker_pids())
            .unwrap_or_default()
    }

    /// Kills every worker (SIGKILL to its process group), waits until they
    /// are reaped, stops their listeners and fails queued invocations. Later
    /// invokes answer [`HostError::ShutDown`].
    pub async fn shutdown(&self) {
        for f in self.inner.functions.values() {
            f.shutdown().await;
        }
    }
}
