//! What a hosted function is, as configured (`[[lambda.functions]]` in the
//! server's TOML), what the host itself needs, and the checks `Host::start`
//! runs before anything is bound or spawned.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use serde::Deserialize;

use crate::HostError;

/// One hosted function, as configured (TOML `[[lambda.functions]]`). Paths
/// relative to the configuration file are resolved by the caller.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionConfig {
    /// The function's name, `[a-zA-Z0-9-_]{1,64}` (what Lambda accepts).
    pub name: String,
    /// How the worker process is started.
    pub runtime: RuntimeKind,
    /// The worker's working directory (`LAMBDA_TASK_ROOT`).
    pub code: PathBuf,
    /// python: `MODULE.FUNCTION` (required); provided: the executable to run,
    /// relative to `code`, `bootstrap` when absent.
    #[serde(default)]
    pub handler: Option<String>,
    /// Per invocation; an overrun kills the worker and fails the invocation
    /// with [`crate::Failure::TimedOut`].
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// Reported to the worker (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`), not enforced.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u32,
    /// Maximum number of concurrent worker processes.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Extra environment of the workers; wins over what the host sets.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Present for a durable function.
    #[serde(default)]
    pub durable: Option<DurableConfig>,
}

/// How a function's worker process is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// `{python} -m awslambdaric {handler}` in the code directory.
    Python,
    /// An executable (`bootstrap` by default) speaking the Runtime API itself.
    Provided,
}

/// The durable-function settings of a function (`DurableConfig` in Lambda).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DurableConfig {
    /// 1..=31622400 (one year), as Lambda allows.
    #[serde(default = "default_execution_timeout_seconds")]
    pub execution_timeout_seconds: u64,
    /// 1..=90, as Lambda allows.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

impl Default for DurableConfig {
    fn default() -> Self {
        Self {
            execution_timeout_seconds: default_execution_timeout_seconds(),
            retention_days: default_retention_days(),
        }
    }
}

fn default_timeout_seconds() -> u64 {
    60
}
fn default_memory_mb() -> u32 {
    128
}
fn default_workers() -> usize {
    4
}
fn default_execution_timeout_seconds() -> u64 {
    86_400
}
fn default_retention_days() -> u32 {
    14
}

/// What the host needs besides the functions.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Interpreter for `runtime = "python"` (a venv with awslambdaric).
    pub python: PathBuf,
    /// `AWS_REGION` and `AWS_DEFAULT_REGION` of the workers.
    pub region: String,
    /// `AWS_ENDPOINT_URL_LAMBDA` of the workers, e.g. `http://127.0.0.1:8080`.
    pub endpoint_url: String,
    /// Workers' stdout/stderr are appended to `{log_dir}/{function}.log`;
    /// `None` sends the lines to tracing (target `function`).
    pub log_dir: Option<PathBuf>,
}

/// The AWS credentials a function's workers get in their environment.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`, when present.
    pub session_token: Option<String>,
}

fn invalid(function: &str, field: &str, message: impl Into<String>) -> HostError {
    HostError::InvalidConfig {
        function: function.to_owned(),
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Checks every function and that no two share a name; the first problem
/// found is returned, naming the function and the field.
pub(crate) fn validate_all<'a>(
    functions: impl IntoIterator<Item = &'a FunctionConfig>,
) -> Result<(), HostError> {
    let mut seen = HashSet::new();
    for function in functions {
        validate(function)?;
        if !seen.insert(function.name.as_str()) {
            return Err(invalid(&function.name, "name", "configured twice"));
        }
    }
    Ok(())
}

/// Checks one function: every field the host relies on.
pub(crate) fn validate(f: &FunctionConfig) -> Result<(), HostError> {
    let name = f.name.as_str();
    let name_ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !name_ok {
        return Err(invalid(
            name,
            "name",
            "must be 1 to 64 characters of [a-zA-Z0-9-_]",
        ));
    }
    match (f.runtime, f.handler.as_deref()) {
        (RuntimeKind::Python, None) => {
            return Err(invalid(
                name,
                "handler",
                "required for runtime \"python\" (MODULE.FUNCTION)",
            ));
        }
        (RuntimeKind::Python, Some(h))
            if !h.contains('.') || h.starts_with('.') || h.ends_with('.') =>
        {
            return Err(invalid(
                name,
                "handler",
                format!("{h:?} is not MODULE.FUNCTION"),
            ));
        }
        (_, Some("")) => return Err(invalid(name, "handler", "must not be empty")),
        _ => {}
    }
    if !f.code.is_dir() {
        return Err(invalid(
            name,
            "code",
            format!("{} is not a directory", f.code.display()),
        ));
    }
    if f.timeout_seconds == 0 {
        return Err(invalid(name, "timeout_seconds", "must be at least 1"));
    }
    if f.workers == 0 {
        return Err(invalid(name, "workers", "must be at least 1"));
    }
    if let Some(d) = &f.durable {
        if !(1..=31_622_400).contains(&d.execution_timeout_seconds) {
            return Err(invalid(
                name,
                "durable.execution_timeout_seconds",
                "must be 1..=31622400",
            ));
        }
        if !(1..=90).contains(&d.retention_days) {
            return Err(invalid(name, "durable.retention_days", "must be 1..=90"));
        }
    }
    Ok(())
}
