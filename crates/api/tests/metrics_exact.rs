//! Metrics whose exact values matter, in a test binary of their own: the
//! Prometheus recorder is process-wide, so no other test may count here.
//!
//! - `sagaflow_steps_scheduled_total` counts every scheduled step, the first
//!   one of each execution included (it is scheduled by the start decision).
//! - `sagaflow_executions_stuck` is 1 while a compensation keeps failing.

use std::sync::Arc;
use std::time::Duration;

use sagaflow_core::{ErrorInfo, Status, StuckPolicy};
use sagaflow_runtime::{handler_fn, Config, Engine};
use sagaflow_store::memory::MemoryStore;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

const TWO_STEPS: &str = r#"
name: two
steps:
  - name: first
    action: { handler: ok }
  - name: second
    action: { handler: ok }
"#;

const STUCK: &str = r#"
name: stuck
steps:
  - name: reserve
    action: { handler: ok }
    compensation: { handler: broken }
  - name: refuse
    action: { handler: reject }
"#;

fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scheduled_step_is_counted_the_first_included_and_a_stuck_execution_is_gauged() {
    let metrics = sagaflow_api::prometheus();
    let engine = Engine::builder(Arc::new(MemoryStore::new()))
        .config(Config {
            stuck: StuckPolicy {
                attempts: 2,
                after_ms: u64::MAX,
            },
            ..Config::default()
        })
        .handler("ok", handler_fn(|_| async { Ok(json!({})) }))
        .handler(
            "reject",
            handler_fn(|_| async { Err(ErrorInfo::new("Rejected", "no")) }),
        )
        .handler(
            "broken",
            handler_fn(|_| async {
                Err(ErrorInfo::new(
                    sagaflow_core::error_name::TASK_FAILED,
                    "the undo endpoint is down",
                ))
            }),
        )
        .build();
    engine.start().await.expect("engine starts");
    engine.deploy(Some("two"), TWO_STEPS).await.expect("deploy");
    for i in 0..3 {
        let (rec, _) = engine
            .start_execution("two", json!({}), Some(format!("two-{i}")))
            .await
            .expect("start");
        assert_eq!(
            engine.wait(&rec.id, WAIT).await.expect("wait").status,
            Status::Succeeded
        );
    }
    let text = metrics.render();
    assert_eq!(
        sample(&text, "sagaflow_steps_scheduled_total"),
        Some(6.0),
        "two steps for each of three executions: {text}"
    );

    engine.deploy(Some("stuck"), STUCK).await.expect("deploy");
    engine
        .start_execution("stuck", json!({}), Some("stuck-1".into()))
        .await
        .expect("start");
    tokio::time::timeout(WAIT, async {
        while sample(&metrics.render(), "sagaflow_executions_stuck") != Some(1.0) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the stuck execution is gauged");
    // The gauge counts executions, not failures: it stays at one however
    // often the compensation keeps failing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sample(&metrics.render(), "sagaflow_executions_stuck"),
        Some(1.0)
    );
}
