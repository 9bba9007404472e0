//! `Config::notify_on`: the append that finishes an execution with one of
//! these statuses records a notification in the store's outbox; other
//! finishes, and every append of an engine without `notify_on`, record none.

use std::sync::Arc;
use std::time::Duration;

use sagaflow_core::{ErrorInfo, Status};
use sagaflow_runtime::{handler_fn, Config, Engine};
use sagaflow_store::memory::MemoryStore;
use sagaflow_store::Executor;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

/// `run: ok` succeeds, `run: reject` is compensated, `run: stuck` fails
/// (its compensation gives up after one attempt).
const SAGA: &str = r#"
name: order
steps:
  - name: reserve
    action: { handler: ok }
    compensation:
      handler: undo
      retry: { max_attempts: 1 }
  - name: charge
    action: { handler: charge }
"#;

fn engine(store: Arc<MemoryStore>, notify_on: Vec<Status>) -> Engine {
    Engine::builder(store)
        .config(Config {
            notify_on,
            ..Config::default()
        })
        .handler("ok", handler_fn(|_| async { Ok(json!({})) }))
        .handler(
            "charge",
            handler_fn(|req| async move {
                match req.input["run"].as_str() {
                    Some("ok") => Ok(json!({"charged": true})),
                    _ => Err(ErrorInfo::new("Declined", "no")),
                }
            }),
        )
        .handler(
            "undo",
            handler_fn(|req| async move {
                match req.input["run"].as_str() {
                    Some("stuck") => Err(ErrorInfo::new("Broken", "cannot undo")),
                    _ => Ok(json!({})),
                }
            }),
        )
        .build()
}

async fn run(engine: &Engine, id: &str) -> Status {
    let (rec, _) = engine
        .start_execution("order", json!({"run": id}), Some(id.to_string()))
        .await
        .expect("start");
    engine.wait(&rec.id, WAIT).await.expect("wait").status
}

#[tokio::test]
async fn only_finishes_with_a_status_in_notify_on_record_a_notification() {
    let store = Arc::new(MemoryStore::new());
    let engine = engine(store.clone(), vec![Status::Failed, Status::Compensated]);
    engine.start().await.unwrap();
    engine.deploy(None, SAGA).await.unwrap();

    assert_eq!(run(&engine, "ok").await, Status::Succeeded);
    assert_eq!(run(&engine, "reject").await, Status::Compensated);
    assert_eq!(run(&engine, "stuck").await, Status::Failed);

    let pending = store.pending_notifications(10).await.unwrap();
    let noted: Vec<_> = pending
        .iter()
        .map(|n| (n.execution_id.as_str(), n.status))
        .collect();
    assert_eq!(
        noted,
        [("reject", Status::Compensated), ("stuck", Status::Failed)]
    );
    // Recorded with the finishing append: its time is the execution's last update.
    let rec = engine.get("reject").await.unwrap();
    assert_eq!(pending[0].created_at, rec.updated_at);
}

#[tokio::test]
async fn an_engine_without_notify_on_records_nothing() {
    let store = Arc::new(MemoryStore::new());
    let engine = engine(store.clone(), Vec::new());
    engine.start().await.unwrap();
    engine.deploy(None, SAGA).await.unwrap();

    assert_eq!(run(&engine, "reject").await, Status::Compensated);
    assert_eq!(run(&engine, "stuck").await, Status::Failed);
    assert!(store.pending_notifications(10).await.unwrap().is_empty());
}
