//! Shared helpers of the sagaflow-functions tests: hosts over the fixture
//! workers, payloads and process checks.

#![allow(dead_code)] // each test binary uses a part

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sagaflow_functions::{Credentials, FunctionConfig, Host, HostConfig, Invocation, RuntimeKind};
use serde_json::Value;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn credentials() -> Credentials {
    Credentials {
        access_key_id: "AKIDTEST".into(),
        secret_access_key: "secret-test".into(),
        session_token: Some("token-test".into()),
    }
}

pub fn host_config(log_dir: Option<PathBuf>) -> HostConfig {
    HostConfig {
        python: PathBuf::from("python3"),
        region: "eu-west-3".into(),
        endpoint_url: "http://127.0.0.1:9".into(),
        log_dir,
    }
}

/// A `provided` function running the standard-library Runtime API client.
pub fn provided(name: &str) -> FunctionConfig {
    FunctionConfig {
        name: name.into(),
        runtime: RuntimeKind::Provided,
        code: fixtures().join("worker"),
        handler: None,
        timeout_seconds: 60,
        memory_mb: 256,
        workers: 1,
        environment: BTreeMap::new(),
        durable: None,
    }
}

pub async fn start(functions: Vec<FunctionConfig>, log_dir: Option<PathBuf>) -> Host {
    let functions = functions.into_iter().map(|f| (f, credentials())).collect();
    Host::start(host_config(log_dir), functions)
        .await
        .expect("the host starts")
}

/// Invokes with a JSON payload and expects a JSON response.
pub async fn call(host: &Host, function: &str, payload: Value) -> Value {
    match host
        .invoke(function, payload.to_string().into_bytes(), None)
        .await
        .expect("the function is hosted")
    {
        Invocation::Response(body) => serde_json::from_slice(&body).expect("a JSON response"),
        other => panic!("expected a response, got {other:?}"),
    }
}

pub async fn invoke(host: &Host, function: &str, payload: Value) -> Invocation {
    host.invoke(function, payload.to_string().into_bytes(), None)
        .await
        .expect("the function is hosted")
}

/// Whether a process with that pid exists (zombies included: we reap).
pub fn alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}
