//! Storage faults: when the database file becomes read-only or the disk fills
//! up, the server says so (`/healthz` 503, new work refused with 503
//! `storage_unavailable`), keeps serving reads, loses nothing it acknowledged,
//! and carries on by itself once the fault is gone — or after a restart.
//!
//! Faults are injected through SQLite's own error paths
//! (`SqliteStore::inject_fault`): `PRAGMA query_only` gives the
//! "readonly database" error, `PRAGMA max_page_count` the "disk is full" one.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use sagaflow_api::ApiConfig;
use sagaflow_runtime::{handler_fn, Engine};
use sagaflow_store::sqlite::{Fault, SqliteStore};
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};

const WAIT: Duration = Duration::from_secs(30);

const SAGA: &str = r#"
name: gated
steps:
  - name: reserve
    action: { handler: ok }
    compensation: { handler: ok }
  - name: slow
    action: { handler: gate }
  - name: confirm
    action: { handler: ok }
"#;

struct Server {
    base: String,
    store: Arc<SqliteStore>,
    open_gate: watch::Sender<bool>,
    entered: Arc<Notify>,
    http: reqwest::Client,
    _dir: Option<tempfile::TempDir>,
}

async fn server_on(dir: tempfile::TempDir) -> Server {
    let store = Arc::new(SqliteStore::open(dir.path().join("sagaflow.db")).expect("store"));
    let (open_gate, gate) = watch::channel(false);
    let entered = Arc::new(Notify::new());
    let seen = entered.clone();
    let engine = Engine::builder(store.clone())
        .handler("ok", handler_fn(|_| async { Ok(json!({ "ok": true })) }))
        .handler(
            "gate",
            handler_fn(move |_| {
                let (mut gate, seen) = (gate.clone(), seen.clone());
                async move {
                    seen.notify_one();
                    let _ = gate.wait_for(|open| *open).await;
                    Ok(json!({ "passed": true }))
                }
            }),
        )
        .build();
    engine.start().await.expect("engine starts");
    engine.deploy(None, SAGA).await.expect("deploy");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sagaflow_api::serve(
        engine,
        ApiConfig::default(),
        listener,
        std::future::pending(),
    ));
    Server {
        base,
        store,
        open_gate,
        entered,
        http: reqwest::Client::new(),
        _dir: Some(dir),
    }
}

impl Server {
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn start(&self, id: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}/v1/executions", self.base))
            .json(&json!({ "definition": "gated", "input": {}, "execution_id": id }))
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn status_of(&self, id: &str, wait_secs: u64) -> String {
        let (code, v) = self
            .get(&format!("/v1/executions/{id}?wait={wait_secs}"))
            .await;
        assert_eq!(code, StatusCode::OK, "{v}");
        v["status"].as_str().unwrap_or_default().to_string()
    }

    /// Starts an execution and waits until it is inside the gated step.
    async fn start_in_flight(&self, id: &str) {
        let entered = self.entered.notified();
        let (code, v) = self.start(id).await;
        assert_eq!(code, StatusCode::CREATED, "{v}");
        tokio::time::timeout(WAIT, entered)
            .await
            .expect("the gated step is reached");
    }
}

/// New work is refused with 503 `storage_unavailable`, `/healthz` says
/// unhealthy, and reads still work. On a full disk a write that happens to
/// fit may still succeed, so both are polled (bounded) rather than sampled.
async fn refused_while_faulty(s: &Server) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut n = 0;
    loop {
        n += 1;
        let (code, v) = s.start(&format!("refused-{n}")).await;
        if code == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(v["error"]["code"], "storage_unavailable", "{v}");
            break;
        }
        assert_eq!(code, StatusCode::CREATED, "{v}");
        assert!(tokio::time::Instant::now() < deadline, "never refused");
    }
    loop {
        let (code, v) = s.get("/healthz").await;
        if code == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(v["status"], "unhealthy", "{v}");
            assert_eq!(v["error"]["code"], "storage_unavailable", "{v}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never unhealthy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Reads still work: people can see what is going on.
    let (code, v) = s.get("/v1/executions").await;
    assert_eq!(code, StatusCode::OK, "{v}");
}

async fn the_server_rides_out(fault: Fault) {
    let s = server_on(tempfile::tempdir().unwrap()).await;
    s.start_in_flight("acknowledged").await;
    s.store
        .inject_fault(Some(fault))
        .await
        .expect("fault injected");
    // A full disk still takes writes that fit in free space; it fills up.
    let mut acknowledged = vec!["acknowledged".to_string()];
    for n in 0..2_000 {
        let id = format!("filling-{n}");
        let (code, v) = s.start(&id).await;
        match code {
            StatusCode::CREATED => acknowledged.push(id),
            StatusCode::SERVICE_UNAVAILABLE => break,
            other => panic!("unexpected {other}: {v}"),
        }
    }
    refused_while_faulty(&s).await;
    if fault == Fault::ReadOnly {
        assert_eq!(
            acknowledged.len(),
            1,
            "a read-only file takes no write at all"
        );
    }

    // The in-flight steps answer while the disk is broken: results that
    // cannot be recorded yet are held and retried, not dropped.
    s.open_gate.send(true).unwrap();
    if fault == Fault::ReadOnly {
        assert_eq!(s.status_of("acknowledged", 1).await, "running");
    }

    s.store.inject_fault(None).await.expect("fault cleared");
    for id in &acknowledged {
        assert_eq!(s.status_of(id, 30).await, "succeeded", "{id}");
    }
    // Every start the server acknowledged, whenever, finishes.
    let (_, page) = s.get("/v1/executions?limit=1000").await;
    for e in page["items"].as_array().unwrap() {
        let id = e["id"].as_str().unwrap();
        assert_eq!(s.status_of(id, 30).await, "succeeded", "{id}");
    }
    let (code, _) = s.get("/healthz").await;
    assert_eq!(code, StatusCode::OK);
    let (code, v) = s.start("after").await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    assert_eq!(s.status_of("after", 30).await, "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_is_reported_and_survived() {
    the_server_rides_out(Fault::ReadOnly).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_reported_and_survived() {
    the_server_rides_out(Fault::Full).await;
}

#[test]
fn an_execution_acknowledged_before_the_fault_finishes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    // First process: the execution is acknowledged, then the disk breaks and
    // the process dies with the step's result unrecorded.
    let first = tokio::runtime::Runtime::new().unwrap();
    let dir = first.block_on(async {
        let mut s = server_on(dir).await;
        s.start_in_flight("survivor").await;
        s.store.inject_fault(Some(Fault::ReadOnly)).await.unwrap();
        s.open_gate.send(true).unwrap();
        refused_while_faulty(&s).await;
        s._dir.take().unwrap()
    });
    first.shutdown_background();

    // Second process on the same files, healthy disk: the step is re-run
    // (same idempotency key) and the execution finishes.
    let second = tokio::runtime::Runtime::new().unwrap();
    second.block_on(async {
        let deadline = std::time::Instant::now() + WAIT;
        let store = loop {
            match SqliteStore::open(path.join("sagaflow.db")) {
                Ok(store) => break store,
                Err(e) if std::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("reopening: {e}"),
            }
        };
        drop(store);
        let s = server_on(dir).await;
        s.open_gate.send(true).unwrap();
        assert_eq!(s.status_of("survivor", 30).await, "succeeded");
        let (code, _) = s.get("/healthz").await;
        assert_eq!(code, StatusCode::OK);
    });
}
