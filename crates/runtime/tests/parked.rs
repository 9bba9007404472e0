//! Parked executions cost storage, not memory: an execution that only waits
//! for callbacks leaves memory, and its callback or its deadline timer brings
//! it back from its history.

use std::sync::Arc;
use std::time::Duration;

use sagaflow_core::{ErrorInfo, Status};
use sagaflow_runtime::{handler_fn, Config, Engine};
use sagaflow_store::sqlite::SqliteStore;
use serde_json::{json, Value};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(30);

fn saga(timeout: &str) -> String {
    format!(
        r#"
name: approval
steps:
  - name: reserve
    action: {{ handler: ok }}
    compensation: {{ handler: ok }}
  - name: approve
    callback: true
    timeout: {timeout}
    retry: {{ max_attempts: 1 }}
    action: {{ handler: ask }}
  - name: book
    action: {{ handler: ok }}
"#
    )
}

async fn engine(
    dir: &tempfile::TempDir,
    definition: &str,
) -> (Engine, mpsc::UnboundedReceiver<String>) {
    let store = SqliteStore::open(dir.path().join("sagaflow.db")).unwrap();
    // Unbounded: a participant never waits for the test to read a token
    // (a test reads only those it needs).
    let (tx, tokens) = mpsc::unbounded_channel();
    let engine = Engine::builder(Arc::new(store))
        .config(Config {
            timer_poll: Duration::from_millis(50),
            // Every timer goes through the store, as a long deadline would.
            memory_timer_horizon: Duration::ZERO,
            ..Config::default()
        })
        .handler("ok", handler_fn(|_| async { Ok(json!({})) }))
        .handler(
            "ask",
            handler_fn(move |req| {
                let tx = tx.clone();
                async move {
                    let token = req
                        .task_token
                        .ok_or_else(|| ErrorInfo::new("NoToken", "callback without a token"))?;
                    let _ = tx.send(token);
                    Ok(Value::Null)
                }
            }),
        )
        .build();
    engine.start().await.unwrap();
    engine.deploy(None, definition).await.unwrap();
    (engine, tokens)
}

async fn until_no_execution_is_in_memory(engine: &Engine) {
    tokio::time::timeout(WAIT, async {
        while engine.active() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("parked executions leave memory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_executions_leave_memory_and_their_callbacks_bring_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, mut tokens) = engine(&dir, &saga("1h")).await;
    let mut ids = Vec::new();
    for n in 0..200 {
        let (rec, _) = engine
            .start_execution("approval", json!({ "n": n }), None)
            .await
            .unwrap();
        ids.push(rec.id);
    }
    let mut collected = Vec::new();
    for _ in 0..200 {
        collected.push(
            tokio::time::timeout(WAIT, tokens.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    until_no_execution_is_in_memory(&engine).await;
    for token in &collected {
        engine
            .callback(token, Some(Ok(json!({ "approved": true }))))
            .await
            .expect("a callback reloads its execution");
    }
    for id in &ids {
        assert_eq!(
            engine.wait(id, WAIT).await.unwrap().status,
            Status::Succeeded
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_of_an_execution_out_of_memory_still_fires_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, mut tokens) = engine(&dir, &saga("300ms")).await;
    let (rec, _) = engine
        .start_execution("approval", json!({}), None)
        .await
        .unwrap();
    let _ = tokio::time::timeout(WAIT, tokens.recv()).await.unwrap();
    let done = engine.wait(&rec.id, WAIT).await.unwrap();
    assert_eq!(done.status, Status::Compensated);
    assert_eq!(done.error.unwrap().error, "States.Timeout");
}

#[test]
fn a_restart_does_not_load_parked_executions_or_call_their_participants_again() {
    let dir = tempfile::tempdir().unwrap();
    let first = tokio::runtime::Runtime::new().unwrap();
    let (ids, tokens) = first.block_on(async {
        let (engine, mut tokens) = engine(&dir, &saga("1h")).await;
        let mut ids = Vec::new();
        let mut got = Vec::new();
        for n in 0..20 {
            let (rec, _) = engine
                .start_execution("approval", json!({ "n": n }), None)
                .await
                .unwrap();
            ids.push(rec.id);
            got.push(
                tokio::time::timeout(WAIT, tokens.recv())
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        until_no_execution_is_in_memory(&engine).await;
        (ids, got)
    });
    drop(first);
    let second = tokio::runtime::Runtime::new().unwrap();
    second.block_on(async {
        let (engine, mut asked_again) = engine(&dir, &saga("1h")).await;
        assert_eq!(engine.active(), 0, "nothing to resume but waiting");
        for token in &tokens {
            engine.callback(token, Some(Ok(json!({})))).await.unwrap();
        }
        for id in &ids {
            assert_eq!(
                engine.wait(id, WAIT).await.unwrap().status,
                Status::Succeeded
            );
        }
        assert!(
            asked_again.try_recv().is_err(),
            "no participant was asked twice"
        );
    });
}
