//! `[lambda]` in the server's TOML: the functions this server hosts (their
//! code runs in worker processes through the Lambda Runtime API, see the
//! `sagaflow-functions` crate), and the glue between that host and the
//! engine (`sagaflow_runtime::Functions`).
//!
//! Each function's workers get credentials of their own (an access key id
//! the API knows as that function's), so with `--auth-token` set a worker
//! can checkpoint its own function's executions and nothing else.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use sagaflow_core::durable::{DurableFunction, ErrorObject, Hosting};
use sagaflow_functions::{Credentials, Failure, FunctionConfig, Host, HostConfig, Invocation};
use sagaflow_runtime::{Engine, FunctionAnswer, Functions, LambdaConfig};
use serde::Deserialize;

/// `[lambda]`: where and how hosted functions run.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileLambda {
    /// The Python interpreter of `runtime = "python"` functions (one with
    /// `aws-durable-execution-sdk-python` and `awslambdaric`) [default: python3].
    python: Option<PathBuf>,
    region: Option<String>,
    account_id: Option<String>,
    /// Where each function's log goes (`FUNCTION.log`) [default: the server's log].
    log_dir: Option<PathBuf>,
    #[serde(default)]
    functions: Vec<FunctionConfig>,
}

/// The resolved `[lambda]` settings.
#[derive(Debug, Clone)]
pub struct LambdaSettings {
    pub python: PathBuf,
    pub region: String,
    pub account_id: String,
    pub log_dir: Option<PathBuf>,
    pub functions: Vec<FunctionConfig>,
}

impl LambdaSettings {
    /// The engine's part: the region and account of durable ARNs.
    pub fn engine_config(&self) -> LambdaConfig {
        LambdaConfig {
            region: self.region.clone(),
            account_id: self.account_id.clone(),
            ..LambdaConfig::default()
        }
    }
}

/// Resolves `[lambda]`: relative paths are read from the configuration
/// file's directory (`base`).
pub fn resolve(file: Option<FileLambda>, base: &Path) -> anyhow::Result<Option<LambdaSettings>> {
    let Some(file) = file else {
        return Ok(None);
    };
    let relative = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
    // A bare command name (`python3`) is looked up on PATH; a path is the
    // configuration file's.
    let python = match file.python {
        Some(p) if p.components().count() > 1 => relative(p),
        Some(p) => p,
        None => PathBuf::from("python3"),
    };
    let mut seen = std::collections::HashSet::new();
    let mut functions = Vec::new();
    for mut f in file.functions {
        if !seen.insert(f.name.clone()) {
            anyhow::bail!("[[lambda.functions]] `{}` is configured twice", f.name);
        }
        f.code = relative(f.code);
        functions.push(f);
    }
    Ok(Some(LambdaSettings {
        python,
        region: file.region.unwrap_or_else(|| "us-east-1".into()),
        account_id: file.account_id.unwrap_or_else(|| "123456789012".into()),
        log_dir: file.log_dir.map(relative),
        functions,
    }))
}

/// The host of the configured functions, started, and the access key of
/// each function's workers (for the API's least-privilege check).
pub struct Started {
    pub host: Host,
    pub tokens: HashMap<String, String>,
}

/// Starts the host: one Runtime API per function; workers start on first use.
pub async fn start(settings: &LambdaSettings, endpoint_url: String) -> anyhow::Result<Started> {
    let mut tokens = HashMap::new();
    let mut functions = Vec::new();
    for f in &settings.functions {
        let key = format!("SFFN{}", uuid::Uuid::new_v4().simple()).to_uppercase();
        tokens.insert(key.clone(), f.name.clone());
        let credentials = Credentials {
            access_key_id: key,
            secret_access_key: uuid::Uuid::new_v4().simple().to_string(),
            session_token: None,
        };
        functions.push((f.clone(), credentials));
    }
    if let Some(dir) = &settings.log_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the function log directory {}", dir.display()))?;
    }
    let config = HostConfig {
        python: settings.python.clone(),
        region: settings.region.clone(),
        endpoint_url,
        log_dir: settings.log_dir.clone(),
    };
    let host = Host::start(config, functions)
        .await
        .context("[lambda] functions")?;
    Ok(Started { host, tokens })
}

/// Deploys the definition of every durable function (a changed
/// `[lambda.functions.durable]` is a new version; running executions keep
/// theirs).
pub async fn deploy(engine: &Engine, settings: &LambdaSettings) -> anyhow::Result<()> {
    for f in &settings.functions {
        let Some(durable) = &f.durable else { continue };
        let function = DurableFunction {
            function_name: f.name.clone(),
            execution_timeout_seconds: durable.execution_timeout_seconds,
            retention_days: durable.retention_days,
        };
        engine
            .deploy_durable(&function)
            .await
            .with_context(|| format!("deploying durable function `{}`", f.name))?;
    }
    Ok(())
}

/// The host, as the engine sees it.
pub struct Hosted(pub Host);

impl Hosted {
    pub fn shared(host: Host) -> Arc<dyn Functions> {
        Arc::new(Hosted(host))
    }
}

#[async_trait]
impl Functions for Hosted {
    fn hosting(&self, function: &str) -> Option<Hosting> {
        self.0.function(function).map(|f| {
            if f.durable.is_some() {
                Hosting::Durable
            } else {
                Hosting::Plain
            }
        })
    }

    async fn invoke(&self, function: &str, payload: Vec<u8>, request_id: &str) -> FunctionAnswer {
        let answer = self
            .0
            .invoke(function, payload, Some(request_id.to_string()))
            .await;
        match answer {
            Ok(Invocation::Response(body)) => FunctionAnswer::Response(body),
            Ok(Invocation::FunctionError {
                error_type,
                error_message,
                stack_trace,
                ..
            }) => FunctionAnswer::Error(ErrorObject {
                error_type: Some(error_type),
                error_message: Some(error_message),
                error_data: None,
                stack_trace: (!stack_trace.is_empty()).then_some(stack_trace),
            }),
            Ok(Invocation::Failed(Failure::TimedOut { after })) => FunctionAnswer::Failed {
                error_type: "Sandbox.Timedout".into(),
                error_message: format!("Task timed out after {:.2} seconds", after.as_secs_f64()),
            },
            Ok(Invocation::Failed(Failure::Crashed { status })) => FunctionAnswer::Failed {
                error_type: "Runtime.ExitError".into(),
                error_message: format!("the worker exited during the invocation: {status}"),
            },
            Ok(Invocation::Failed(Failure::InitError {
                error_type,
                error_message,
            })) => FunctionAnswer::Failed {
                error_type: format!("Runtime.InitError ({error_type})"),
                error_message,
            },
            Err(e) => FunctionAnswer::Failed {
                error_type: "Sagaflow.HostError".into(),
                error_message: e.to_string(),
            },
        }
    }
}
