//! A timer the *start* decision arms beyond the in-memory horizon is stored
//! with the execution (`create_execution` takes the decision's timers, as
//! `append` does), so the poller fires it: a long `Wait` at the head of a
//! machine, behind a `Pass`, at the head of a Parallel branch or of a Map
//! iteration finishes on time without a restart — and after one.
//!
//! The horizon is shortened to 200 ms so a 1 s Wait lies beyond it. Every
//! case runs on memory, SQLite and PostgreSQL (when `DATABASE_URL` is set),
//! with and without a restart right after the start.

use std::sync::Arc;
use std::time::Duration;

use sagaflow_core::asl::{ResourceMap, ResourceRule};
use sagaflow_core::Status;
use sagaflow_runtime::{handler_fn, Config, Engine};
use sagaflow_store::memory::MemoryStore;
use sagaflow_store::postgres::PostgresStore;
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

/// Where a case's stores live; each store is a fresh, empty one.
enum Backend {
    Memory,
    Sqlite(tempfile::TempDir),
    /// Schemas of the case's own (`{prefix}{n}`) in `DATABASE_URL`'s database.
    Postgres {
        url: String,
        prefix: String,
    },
}

impl Backend {
    fn sqlite() -> Backend {
        Backend::Sqlite(tempfile::tempdir().expect("a temporary directory"))
    }

    /// `None` (the case is skipped, and says so) without `DATABASE_URL`.
    fn postgres() -> Option<Backend> {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => {
                // Named like the store's own test schemas (`sagaflow_test_…`),
                // so one left behind by a killed run is dropped by a later run.
                static CASE: std::sync::atomic::AtomicUsize =
                    std::sync::atomic::AtomicUsize::new(0);
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let case = CASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let prefix = format!("sagaflow_test_{secs}_{}_start{case}_", std::process::id());
                Some(Backend::Postgres { url, prefix })
            }
            _ => {
                eprintln!("DATABASE_URL is not set: skipping this PostgreSQL case");
                None
            }
        }
    }

    /// Store number `n` of this case (a restart reopens the same one).
    async fn store(&self, n: usize) -> Arc<dyn Store> {
        match self {
            Backend::Memory => Arc::new(MemoryStore::new()),
            Backend::Sqlite(dir) => Arc::new(
                SqliteStore::open(dir.path().join(format!("s{n}.db"))).expect("sqlite store"),
            ),
            Backend::Postgres { url, prefix } => Arc::new(
                PostgresStore::connect_in_schema(url, &format!("{prefix}{n}"))
                    .await
                    .expect("connecting to DATABASE_URL"),
            ),
        }
    }

    /// Drops the case's schemas.
    async fn clean(&self, stores: usize) {
        let Backend::Postgres { url, prefix } = self else {
            return;
        };
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connecting to DATABASE_URL");
        tokio::spawn(connection);
        for n in 0..stores {
            let schema = format!("{prefix}{n}");
            client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .await
                .expect("drops the schema");
        }
    }
}

/// Every machine whose start arms a 1 s timer finishes, on time or after a
/// restart right after the start (the timer is then in the store only).
async fn every_machine_finishes(backend: Backend, restart: bool) {
    let machines = machines();
    for (n, (what, machine)) in machines.iter().enumerate() {
        let store = backend.store(n).await;
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
        let running = restarted(first, &store, restart).await;
        let done = running
            .wait(&rec.id, Duration::from_secs(20))
            .await
            .expect("waits");
        assert_eq!(done.status, Status::Succeeded, "{what}: {done:?}");
        running.shutdown(Duration::from_secs(1)).await;
    }
    backend.clean(machines.len()).await;
}

/// `engine`, or with `restart` a new engine on the same store once it is stopped.
async fn restarted(engine: Engine, store: &Arc<dyn Store>, restart: bool) -> Engine {
    if !restart {
        return engine;
    }
    engine.shutdown(Duration::from_secs(1)).await;
    drop(engine);
    let second = self::engine(store.clone());
    second.start().await.expect("engine restarts");
    second
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_wait_armed_by_the_start_fires_on_time_in_memory_store() {
    every_machine_finishes(Backend::Memory, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_wait_armed_by_the_start_fires_after_a_restart_in_memory_store() {
    every_machine_finishes(Backend::Memory, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_wait_armed_by_the_start_fires_on_time_on_sqlite() {
    every_machine_finishes(Backend::sqlite(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_wait_armed_by_the_start_fires_after_a_restart_on_sqlite() {
    every_machine_finishes(Backend::sqlite(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_wait_armed_by_the_start_fires_on_time_on_postgres() {
    if let Some(backend) = Backend::postgres() {
        every_machine_finishes(backend, false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_wait_armed_by_the_start_fires_after_a_restart_on_postgres() {
    if let Some(backend) = Backend::postgres() {
        every_machine_finishes(backend, true).await;
    }
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

/// The parked first step times out on time (it has a compensation, so the
/// saga is compensated), also after a restart right after the start.
async fn a_parked_first_step_times_out(backend: Backend, restart: bool) {
    let store = backend.store(0).await;
    let first = engine(store.clone());
    first.start().await.expect("engine starts");
    first
        .deploy(Some("parked"), PARKED_FIRST)
        .await
        .expect("deploys");
    let (rec, _) = first
        .start_execution("parked", json!({}), None)
        .await
        .expect("starts");
    let engine = restarted(first, &store, restart).await;
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
    engine.shutdown(Duration::from_secs(1)).await;
    backend.clean(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_step_parked_on_a_callback_times_out_on_time() {
    a_parked_first_step_times_out(Backend::Memory, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_step_parked_on_a_callback_times_out_after_a_restart_in_memory_store() {
    a_parked_first_step_times_out(Backend::Memory, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_step_parked_on_a_callback_times_out_on_time_on_sqlite() {
    a_parked_first_step_times_out(Backend::sqlite(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_step_parked_on_a_callback_times_out_after_a_restart_on_sqlite() {
    a_parked_first_step_times_out(Backend::sqlite(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_step_parked_on_a_callback_times_out_on_postgres() {
    if let Some(backend) = Backend::postgres() {
        a_parked_first_step_times_out(backend, false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_step_parked_on_a_callback_times_out_after_a_restart_on_postgres() {
    if let Some(backend) = Backend::postgres() {
        a_parked_first_step_times_out(backend, true).await;
    }
}
