//! The host against the real `awslambdaric` (`runtime = "python"`), with the
//! handlers of `fixtures/py/handlers.py`. The interpreter comes from
//! `SAGAFLOW_PYTHON`; without it (or without awslambdaric in it) these tests
//! say why and pass, unless `CI` is set, where they must run.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use sagaflow_functions::{Failure, FunctionConfig, Host, HostConfig, Invocation, RuntimeKind};
use serde_json::json;

use common::{alive, call, credentials, fixtures, invoke};

/// The interpreter to use, or `None` (after saying why) to skip.
fn python() -> Option<PathBuf> {
    let why = match std::env::var_os("SAGAFLOW_PYTHON") {
        None => "SAGAFLOW_PYTHON is not set".to_owned(),
        Some(python) => {
            let found = std::process::Command::new(&python)
                .args(["-c", "import awslambdaric"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if found {
                return Some(PathBuf::from(python));
            }
            format!(
                "{} cannot import awslambdaric",
                PathBuf::from(python).display()
            )
        }
    };
    if std::env::var_os("CI").is_some() {
        panic!("CI is set, so the awslambdaric tests must run, but {why}");
    }
    eprintln!("skipping the awslambdaric tests: {why}");
    None
}

fn function(name: &str, handler: &str) -> FunctionConfig {
    FunctionConfig {
        name: name.into(),
        runtime: RuntimeKind::Python,
        code: fixtures().join("py"),
        handler: Some(handler.into()),
        timeout_seconds: 60,
        memory_mb: 128,
        workers: 1,
        environment: Default::default(),
        durable: None,
    }
}

async fn host(python: PathBuf, functions: Vec<FunctionConfig>) -> Host {
    let config = HostConfig {
        python,
        region: "us-east-1".into(),
        endpoint_url: "http://127.0.0.1:9".into(),
        log_dir: None,
    };
    let functions = functions.into_iter().map(|f| (f, credentials())).collect();
    Host::start(config, functions)
        .await
        .expect("the host starts")
}

#[tokio::test]
async fn awslambdaric_echoes_and_reuses_its_worker() {
    let Some(python) = python() else { return };
    let host = host(python, vec![function("pyecho", "handlers.echo")]).await;
    let answer = host
        .invoke(
            "pyecho",
            json!({"hello": "world"}).to_string().into_bytes(),
            Some("rid-1".into()),
        )
        .await
        .unwrap();
    let Invocation::Response(body) = answer else {
        panic!("expected a response, got {answer:?}")
    };
    let first: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(first["event"], json!({"hello": "world"}));
    assert_eq!(first["request_id"], "rid-1");
    assert_eq!(first["function"], "pyecho");
    let second = call(&host, "pyecho", json!({"again": true})).await;
    assert_eq!(first["pid"], second["pid"], "the same warm worker");
    host.shutdown().await;
    assert!(
        !alive(first["pid"].as_u64().unwrap()),
        "shutdown killed the worker"
    );
}

#[tokio::test]
async fn awslambdaric_reports_a_raised_error_as_a_function_error() {
    let Some(python) = python() else { return };
    let host = host(python, vec![function("pyboom", "handlers.boom")]).await;
    match invoke(&host, "pyboom", json!({})).await {
        Invocation::FunctionError {
            error_type,
            error_message,
            stack_trace,
            ..
        } => {
            assert_eq!(error_type, "RuntimeError");
            assert_eq!(error_message, "boom");
            assert!(
                stack_trace.iter().any(|l| l.contains("handlers.py")),
                "{stack_trace:?}"
            );
        }
        other => panic!("expected a function error, got {other:?}"),
    }
    host.shutdown().await;
}

#[tokio::test]
async fn awslambdaric_past_its_timeout_is_killed_and_replaced() {
    let Some(python) = python() else { return };
    let mut slow = function("pyslow", "handlers.slow");
    slow.timeout_seconds = 2;
    let host = host(python, vec![slow]).await;
    match invoke(&host, "pyslow", json!({"seconds": 30})).await {
        Invocation::Failed(Failure::TimedOut { after }) => {
            assert_eq!(after, Duration::from_secs(2))
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(
        call(&host, "pyslow", json!({"seconds": 0})).await,
        json!({"slept": true})
    );
    host.shutdown().await;
}

#[tokio::test]
async fn awslambdaric_with_a_missing_module_is_an_init_error() {
    let Some(python) = python() else { return };
    let host = host(
        python,
        vec![function("pymissing", "no_such_module.handler")],
    )
    .await;
    match invoke(&host, "pymissing", json!({})).await {
        Invocation::Failed(Failure::InitError { error_type, .. }) => {
            assert!(error_type.contains("ImportModuleError"), "{error_type}");
        }
        other => panic!("expected an init error, got {other:?}"),
    }
    host.shutdown().await;
}
