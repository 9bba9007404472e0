//! A timer the *start* decision arms beyond the in-memory horizon is stored
//! with the execution (`create_execution` takes the decision's timers, as
//! `append` does), so the poller fires it: a long `Wait` at the head of a
//! machine, behind a `Pass`, at the head of a Parallel branch or of a Map
//! iteration finishes on time without a restart — and after one.
//!
//! The horizon is shortened to 200 ms so a 1 s Wait lies beyond it.

use std::sync::Arc;
use std::time::Duration;

use sagaflow_core::asl::{ResourceMap, ResourceRule};
use sagaflow_core::Status;
use sagaflow_runtime::{handler_fn, Config, Engine};
use sagaflow_store::memory::MemoryStore;
use sagaflow_store::sqlite::SqliteStore;
use sagaflow_store::Store;
use serde_json::{json, Value};

fn engine(store: Arc<dyn Store>) -> Engine {
    Engine::builder(store)
        .config(Config {
            timer_poll: Duration::from_millis(50),
            memory_timer_horizon: Duration::from_millis(200),
            resources: ResourceMap {
                rules: vec![ResourceRule {
                    pattern: "arn:aws:lambda:*:*:function:{name}".into(),
                    target: "handler:{name}".into(),
                }],
            },
            ..Config::default()
        })
        .handler("ok", handler_fn(|_| async { Ok(json!({"ok": true})) }))
        .build()
}

fn wait(next: &str) -> Value {
    json!({"Type": "Wait", "Seconds": 1, "Next": next})
}

fn task() -> Value {
    json!({"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:ok", "End": true})
}

/// The machines whose start decision arms a 1 s timer.
fn machines() -> Vec<(&'static str, Value)> {
    // State names are unique across a machine, branches included.
    let branch = |n: u8| {
        let (w, t) = (format!("W{n}"), format!("T{n}"));
        json!({"StartAt": w, "States": {w.clone(): wait(&t), t: task()}})
    };
    vec![
        (
            "a wait as the first state",
            json!({"StartAt": "W", "States": {"W": wait("T"), "T": task()}}),
        ),
        (
            "a wait behind a pass",
            json!({"StartAt": "P", "States": {
                "P": {"Type": "Pass", "Next": "W"}, "W": wait("T"), "T": task()}}),
        ),
        (
            "a wait at the head of a parallel branch",
            json!({"StartAt": "Par", "States": {
                "Par": {"Type": "Parallel", "Branches": [branch(1), branch(2)], "End": true}}}),
        ),
        (
            "a wait at the head of a map iteration",
            json!({"StartAt": "M", "States": {
                "M": {"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": branch(3), "End": true}}}),
        ),
    ]
}

async fn every_machine_finishes(store: impl Fn() -> Arc<dyn Store>, restart: bool) {
    for (what, machine) in machines() {
        let store = store();
        let first = engine(store.clone());
        first.start().await.expect("engine starts");
        first
            .deploy(Some("m"), &machine.to_string())
            .await
            .expect("deploys");
        let (rec, _) = first
            .start_execution("m", json!({"items": [1, 2, 3]}), None)
            .await
            .expect("starts");
        let running = if restart {
            // Stopped right after the start: the timer lives in the store only.
            first.shutdown(Duration::from_secs(1)).await;
            drop(first);
            let second = engine(store.clone());
            second.start().await.expect("engine restarts");
            second
        } else {
            first
        };
        let done = running
            .wait(&rec.id, Duration::from_secs(20))
            .await
            .expect("waits");
        assert_eq!(done.status, Status::Succeeded, "{what}: {done:?}");
        running.shutdown(Duration::from_secs(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_wait_armed_by_the_start_fires_on_time_in_memory_store() {
    every_machine_finishes(|| Arc::new(MemoryStore::new()), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_wait_armed_by_the_start_fires_after_a_restart_in_memory_store() {
    every_machine_finishes(|| Arc::new(MemoryStore::new()), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_wait_armed_by_the_start_fires_on_time_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    every_machine_finishes(
        || {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Arc::new(SqliteStore::open(dir.path().join(format!("s{i}.db"))).expect("store"))
        },
        false,
    )
    .await;
}

/// The first step waits for a callback that never comes; its 1 s timeout
/// lies beyond the horizon, so only the timer table can fire it.
const PARKED_FIRST: &str = r#"
name: parked
steps:
  - name: approve
    callback: true
    timeout: 1s
    retry: { max_attempts: 1 }
    action: { handler: ok }
    compensation: { handler: ok }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_step_parked_on_a_callback_times_out_on_time() {
    let engine = engine(Arc::new(MemoryStore::new()));
    engine.start().await.expect("engine starts");
    engine
        .deploy(Some("parked"), PARKED_FIRST)
        .await
        .expect("deploys");
    let (rec, _) = engine
        .start_execution("parked", json!({}), None)
        .await
        .expect("starts");
    let done = engine
        .wait(&rec.id, Duration::from_secs(20))
        .await
        .expect("waits");
    // The callback never came: the attempt timed out (ambiguous), so the
    // step was compensated.
    assert_eq!(done.status, Status::Compensated, "{done:?}");
    assert_eq!(
        done.error.as_ref().map(|e| e.error.as_str()),
        Some("States.Timeout"),
        "{done:?}"
    );
}
