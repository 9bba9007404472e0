//! The Step Functions API through boto3, the real AWS SDK for Python.
//!
//! This test starts a Sagaflow server (an [`Engine`] on a [`SqliteStore`] in
//! a temporary directory) and a small participant, both on 127.0.0.1:0, then
//! runs `$SAGAFLOW_PYTHON tests/boto3/test_sfn.py` with their URLs in
//! `SAGAFLOW_ENDPOINT` and `SAGAFLOW_PARTICIPANT`. The script's unittest
//! suite must pass.
//!
//! The participant's Lambda functions are bound by the resource map
//! (`arn:aws:lambda:*:*:function:{name}` → `/fn/{name}`): `park` records its
//! body (which holds the task token of a `.waitForTaskToken` task) and
//! `GET /tokens` lists the recorded bodies for the script; any other function
//! echoes its input. Its activity workers are boto3 threads of the script;
//! the server holds an empty GetActivityTask for `POLL_SECS`
//! (`SAGAFLOW_POLL_SECS`), not AWS's 60 s.
//!
//! The script also runs the README's `aws stepfunctions` example with the
//! AWS CLI (`python -m awscli`) when that python has awscli (CI's has; the
//! check is skipped elsewhere without it, and fails under `CI`).
//!
//! Without `SAGAFLOW_PYTHON` the test is skipped with a notice, except when
//! `CI` is set: there it fails, since CI (`.ci/run`) provides a python with
//! boto3.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use sagaflow_api::ApiConfig;
use sagaflow_core::asl::{ResourceMap, ResourceRule};
use sagaflow_runtime::{Config, Engine};
use sagaflow_store::sqlite::SqliteStore;
use serde_json::{json, Value};

/// How long the whole script may take (a deadline, not a timing assertion).
const DEADLINE: Duration = Duration::from_secs(300);

/// The server's `max_wait_secs`: how long a GetActivityTask that finds no
/// task is held (60 s on AWS), short so that the activity worker's last poll
/// and the empty poll end soon. StartSyncExecution waits as long, more than
/// its short machines need.
const POLL_SECS: u64 = 5;

/// Bodies received by `park`.
type Parked = Arc<Mutex<Vec<Value>>>;

async fn function(
    State(parked): State<Parked>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Json<Value> {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if name == "park" {
        parked.lock().unwrap().push(body);
        return Json(json!({"acknowledged": true}));
    }
    Json(json!({"echoed": body}))
}

async fn tokens(State(parked): State<Parked>) -> Json<Value> {
    Json(Value::Array(parked.lock().unwrap().clone()))
}

/// The python to run the suite with, or `None` (skip) outside CI.
fn python() -> Option<String> {
    match std::env::var("SAGAFLOW_PYTHON") {
        Ok(p) if !p.trim().is_empty() => Some(p),
        _ if std::env::var_os("CI").is_some() => panic!(
            "CI is set but SAGAFLOW_PYTHON is not: the boto3 suite must run in CI \
             (.ci/run creates a venv with boto3 and sets it)"
        ),
        _ => {
            eprintln!(
                "skipping the boto3 suite: set SAGAFLOW_PYTHON to a python that has boto3 \
                 (e.g. `python3 -m venv target/ci-venv && target/ci-venv/bin/pip install boto3 awscli`)"
            );
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_boto3_suite_passes_against_a_live_server() {
    let Some(python) = python() else {
        return;
    };

    let parked: Parked = Arc::default();
    let svc_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let svc_url = format!("http://{}", svc_listener.local_addr().unwrap());
    let app = Router::new()
        .route("/fn/{name}", post(function))
        .route("/tokens", get(tokens))
        .with_state(parked);
    tokio::spawn(async move { axum::serve(svc_listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("sagaflow.db")).unwrap();
    let engine = Engine::builder(Arc::new(store))
        .config(Config {
            variables: HashMap::new(),
            resources: ResourceMap {
                rules: vec![ResourceRule {
                    pattern: "arn:aws:lambda:*:*:function:{name}".into(),
                    target: format!("{svc_url}/fn/{{name}}"),
                }],
            },
            ..Config::default()
        })
        .build();
    engine.start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(sagaflow_api::serve(
        engine,
        ApiConfig {
            max_wait_secs: POLL_SECS,
            ..ApiConfig::default()
        },
        listener,
        async move {
            let _ = stopped.await;
        },
    ));

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/boto3/test_sfn.py");
    let run = tokio::process::Command::new(&python)
        .arg(script)
        .env("SAGAFLOW_ENDPOINT", &endpoint)
        .env("SAGAFLOW_PARTICIPANT", &svc_url)
        .env("SAGAFLOW_POLL_SECS", POLL_SECS.to_string())
        // No credentials or settings of the machine's user leak in.
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(DEADLINE, run)
        .await
        .expect("the boto3 suite finishes in time")
        .unwrap_or_else(|e| panic!("running `{python}`: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "the boto3 suite failed ({}):\n{stderr}",
        out.status
    );
    assert!(stderr.contains("OK"), "unittest reports success:\n{stderr}");
}
