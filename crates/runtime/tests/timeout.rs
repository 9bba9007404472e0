//! Execution timeouts: a saga that outlives its definition's `timeout` before
//! its pivot is rolled back and ends `timed_out`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sagaflow_core::Status;
use sagaflow_runtime::{handler_fn, Engine};
use sagaflow_store::memory::MemoryStore;
use serde_json::{json, Value};

#[tokio::test]
async fn a_saga_stuck_waiting_for_an_approval_times_out_and_undoes_everything() {
    let undone = Arc::new(Mutex::new(Vec::<String>::new()));
    let u = undone.clone();
    let engine = Engine::builder(Arc::new(MemoryStore::new()))
        .handler("ok", handler_fn(|_| async { Ok(json!({})) }))
        .handler(
            "undo",
            handler_fn(move |req| {
                let u = u.clone();
                async move {
                    u.lock().unwrap().push(req.step.clone());
                    Ok(Value::Null)
                }
            }),
        )
        .build();
    engine.start().await.unwrap();
    engine
        .deploy(
            None,
            r#"
name: approval
timeout: 200ms
steps:
  - name: reserve
    action: { handler: ok }
    compensation: { handler: undo }
  - name: approve
    callback: true
    timeout: 1h
    action: { handler: ok }
    compensation: { handler: undo }
  - name: charge
    pivot: true
    action: { handler: ok }
"#,
        )
        .await
        .unwrap();
    let (rec, _) = engine
        .start_execution("approval", json!({}), None)
        .await
        .unwrap();
    let done = engine.wait(&rec.id, Duration::from_secs(20)).await.unwrap();
    assert_eq!(done.status, Status::TimedOut);
    assert_eq!(done.error.unwrap().error, "States.Timeout");
    // The approval that never came is ambiguous: undone first, then the reservation.
    assert_eq!(*undone.lock().unwrap(), ["approve", "reserve"]);
}
