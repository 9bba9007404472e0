//! The on-failure hook delivers from the store's outbox: a notification
//! recorded before a crash is delivered after the restart, exactly once per
//! accepted delivery, nothing stays pending once it is delivered, and one
//! that gives up is kept as a dead letter until it is replayed. A
//! compensation that keeps failing is announced once as `execution.stuck`.
//!
//! Engines run on a [`SqliteStore`] in a temporary directory with in-process
//! participants; the webhook receiver is a small axum server counting what it
//! gets. Waits are bounded by [`WAIT`], a deadline and never a timing
//! assertion; the "never again" checks let several polls go by.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use sagaflow_api::hook::{HookConfig, POLL_INTERVAL};
use sagaflow_core::{ErrorInfo, Status};
use sagaflow_runtime::{handler_fn, Config, Engine};
use sagaflow_store::sqlite::SqliteStore;
use serde_json::{json, Value};
use tokio::runtime::Runtime;

/// Deadline for any outcome the test waits for.
const WAIT: Duration = Duration::from_secs(30);

/// Reserves, then is refused: the reservation is undone, ends `compensated`.
const REJECTED_SAGA: &str = r#"
name: rejected
steps:
  - name: reserve
    action: { handler: ok }
    compensation: { handler: ok }
  - name: refuse
    action: { handler: reject }
"#;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// An engine on the database at `path` that records notifications for
/// `failed` and `compensated`, as the server does when a hook is configured.
fn engine(path: &Path) -> Engine {
    // A runtime shut down in the background drops its tasks (and with them
    // the previous node's store and its lock) a moment later, as a dying
    // process would: wait for the lock like a restarted server would.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let store = loop {
        match SqliteStore::open(path) {
            Ok(store) => break store,
            Err(e) if e.to_string().contains("in use") && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("opening the store: {e}"),
        }
    };
    Engine::builder(Arc::new(store))
        .config(Config {
            notify_on: vec![Status::Failed, Status::Compensated],
            ..Config::default()
        })
        .handler("ok", handler_fn(|_| async { Ok(json!({"ok": true})) }))
        .handler(
            "reject",
            handler_fn(|_| async { Err(ErrorInfo::new("Rejected", "the participant said no")) }),
        )
        .build()
}

/// Runs `rejected` as `id` to its end; returns the final status.
async fn run_rejected(engine: &Engine, id: &str) -> Status {
    engine
        .deploy(Some("rejected"), REJECTED_SAGA)
        .await
        .expect("deploy");
    let (rec, _) = engine
        .start_execution("rejected", json!({"trip": id}), Some(id.to_string()))
        .await
        .expect("start");
    engine.wait(&rec.id, WAIT).await.expect("wait").status
}

fn hook(url: &str, max_attempts: u32) -> HookConfig {
    HookConfig {
        max_attempts,
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        ..HookConfig::new(url)
    }
}

async fn pending(engine: &Engine) -> usize {
    engine
        .store()
        .pending_notifications(100)
        .await
        .expect("reading the outbox")
        .len()
}

/// Waits until nothing is pending in the outbox.
async fn outbox_drained(engine: &Engine) {
    tokio::time::timeout(WAIT, async {
        while pending(engine).await > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the outbox drains");
}

// ---------------------------------------------------------------------------
// The webhook receiver

struct Counts {
    /// Refuses (500) this many deliveries first, then accepts (204).
    refuse_first: usize,
    hits: AtomicUsize,
    accepted: Mutex<Vec<Value>>,
}

async fn receive(State(c): State<Arc<Counts>>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if c.hits.fetch_add(1, Ordering::SeqCst) < c.refuse_first {
        return (StatusCode::INTERNAL_SERVER_ERROR, "not now").into_response();
    }
    c.accepted.lock().unwrap().push(body);
    StatusCode::NO_CONTENT.into_response()
}

struct Receiver {
    url: String,
    counts: Arc<Counts>,
}

impl Receiver {
    async fn start(refuse_first: usize) -> Receiver {
        let counts = Arc::new(Counts {
            refuse_first,
            hits: AtomicUsize::new(0),
            accepted: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let app = Router::new().fallback(receive).with_state(counts.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, counts }
    }

    fn hits(&self) -> usize {
        self.counts.hits.load(Ordering::SeqCst)
    }

    fn accepted(&self) -> Vec<Value> {
        self.counts.accepted.lock().unwrap().clone()
    }

    async fn until_accepted(&self, n: usize) {
        tokio::time::timeout(WAIT, async {
            while self.accepted().len() < n {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the hook is delivered");
    }
}

/// Lets several outbox polls go by, so a repeated delivery would show.
async fn several_polls() {
    tokio::time::sleep(POLL_INTERVAL * 5).await;
}

// ---------------------------------------------------------------------------

#[test]
fn a_notification_recorded_before_a_crash_is_delivered_once_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sagaflow.db");

    // Node A: the execution ends `compensated` while no hook runs, then the
    // process "dies": every task of its runtime is dropped on the spot.
    let node_a = runtime();
    node_a.block_on(async {
        let engine = engine(&path);
        engine.start().await.expect("engine A starts");
        assert_eq!(
            run_rejected(&engine, "lost-in-a-crash").await,
            Status::Compensated
        );
        assert_eq!(pending(&engine).await, 1, "recorded with the finish");
    });
    node_a.shutdown_background();

    // Node B on the same database, with the hook: the notification is
    // still pending and gets delivered.
    let node_b = runtime();
    node_b.block_on(async {
        let receiver = Receiver::start(0).await;
        let engine = engine(&path);
        assert_eq!(engine.start().await.expect("engine B starts"), 0);
        let notifications = engine
            .store()
            .pending_notifications(10)
            .await
            .expect("reading the outbox");
        assert_eq!(notifications.len(), 1, "{notifications:?}");
        assert_eq!(
            (
                notifications[0].execution_id.as_str(),
                notifications[0].status
            ),
            ("lost-in-a-crash", Status::Compensated)
        );

        sagaflow_api::hook::spawn(&engine, hook(&receiver.url, 5));
        receiver.until_accepted(1).await;
        outbox_drained(&engine).await;
        several_polls().await;

        let accepted = receiver.accepted();
        assert_eq!(accepted.len(), 1, "delivered exactly once: {accepted:?}");
        assert_eq!(receiver.hits(), 1);
        let body = &accepted[0];
        assert_eq!(body["event"], "execution.compensated", "{body}");
        assert_eq!(body["execution"]["id"], "lost-in-a-crash");
        assert_eq!(body["execution"]["status"], "compensated");
        assert_eq!(
            body["execution"]["input"],
            json!({"trip": "lost-in-a-crash"})
        );
        assert_eq!(body["execution"]["error"]["error"], "Rejected");
        assert_eq!(pending(&engine).await, 0);
    });
    node_b.shutdown_background();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_fails_twice_gets_exactly_one_accepted_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(2).await;
    let engine = engine(&dir.path().join("sagaflow.db"));
    engine.start().await.expect("engine starts");
    sagaflow_api::hook::spawn(&engine, hook(&receiver.url, 5));

    assert_eq!(
        run_rejected(&engine, "refused-twice").await,
        Status::Compensated
    );
    receiver.until_accepted(1).await;
    outbox_drained(&engine).await;
    several_polls().await;

    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    assert_eq!(accepted[0]["execution"]["id"], "refused-twice");
    assert_eq!(receiver.hits(), 3, "two refusals, then the accepted one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_that_gives_up_is_kept_as_a_dead_letter_and_delivered_when_replayed() {
    let dir = tempfile::tempdir().unwrap();
    // Refuses exactly the three attempts of the first delivery.
    let receiver = Receiver::start(3).await;
    let engine = engine(&dir.path().join("sagaflow.db"));
    engine.start().await.expect("engine starts");
    sagaflow_api::hook::spawn(&engine, hook(&receiver.url, 3));

    assert_eq!(
        run_rejected(&engine, "never-accepted").await,
        Status::Compensated
    );
    let store = engine.store().clone();
    let dead = tokio::time::timeout(WAIT, async {
        loop {
            let dead = store.dead_letters(10).await.expect("dead letters");
            if !dead.is_empty() {
                return dead;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the notification becomes a dead letter");
    several_polls().await;
    assert_eq!(receiver.hits(), 3, "max_attempts, then no more tries");
    assert!(receiver.accepted().is_empty());
    assert_eq!(pending(&engine).await, 0, "it left the outbox");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].notification.execution_id, "never-accepted");
    assert_eq!(dead[0].notification.event(), "execution.compensated");
    assert_eq!(dead[0].attempts, 3);
    assert!(
        dead[0].last_error.contains("500"),
        "the last error says why: {}",
        dead[0].last_error
    );

    // Replayed, it is delivered again (and accepted this time).
    store
        .replay_dead_letter(dead[0].notification.id)
        .await
        .expect("replay")
        .expect("the dead letter exists");
    receiver.until_accepted(1).await;
    assert_eq!(receiver.accepted()[0]["event"], "execution.compensated");
    assert!(store.dead_letters(10).await.expect("dead").is_empty());
    outbox_drained(&engine).await;
}

/// Reserves with an undo that always fails, then is refused: the
/// compensation is retried forever (the default policy).
const STUCK_SAGA: &str = r#"
name: stuck
steps:
  - name: reserve
    action: { handler: ok }
    compensation: { handler: broken }
  - name: refuse
    action: { handler: reject }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compensation_that_keeps_failing_sends_one_execution_stuck_notification() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0).await;
    let store = SqliteStore::open(dir.path().join("sagaflow.db")).expect("opening the store");
    let engine = Engine::builder(Arc::new(store))
        .config(Config {
            notify_on: vec![Status::Failed, Status::Compensated],
            notify_stuck: true,
            stuck: sagaflow_core::StuckPolicy {
                attempts: 3,
                after_ms: u64::MAX,
            },
            ..Config::default()
        })
        .handler("ok", handler_fn(|_| async { Ok(json!({"ok": true})) }))
        .handler(
            "reject",
            handler_fn(|_| async { Err(ErrorInfo::new("Rejected", "the participant said no")) }),
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
    sagaflow_api::hook::spawn(&engine, hook(&receiver.url, 3));
    engine
        .deploy(Some("stuck"), STUCK_SAGA)
        .await
        .expect("deploy");
    let (rec, _) = engine
        .start_execution("stuck", json!({}), Some("stuck-1".into()))
        .await
        .expect("start");

    receiver.until_accepted(1).await;
    let stuck = receiver.accepted()[0].clone();
    assert_eq!(stuck["event"], "execution.stuck");
    assert_eq!(stuck["execution"]["id"], "stuck-1");
    assert_eq!(stuck["execution"]["status"], "compensating");

    // It keeps failing (and being retried) past the threshold: still one.
    let failures = || async {
        engine
            .store()
            .load_history(&rec.id)
            .await
            .expect("history")
            .iter()
            .filter(|e| e.kind.name() == "compensation_failed")
            .count()
    };
    tokio::time::timeout(WAIT, async {
        while failures().await < 5 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the compensation keeps being retried");
    several_polls().await;
    assert_eq!(receiver.accepted().len(), 1, "{:?}", receiver.accepted());
    assert_eq!(
        engine.get(&rec.id).await.expect("get").status,
        Status::Compensating
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_notify_on_nothing_is_recorded_or_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(0).await;
    let store = SqliteStore::open(dir.path().join("sagaflow.db")).expect("opening the store");
    let engine = Engine::builder(Arc::new(store))
        .handler("ok", handler_fn(|_| async { Ok(json!({})) }))
        .handler(
            "reject",
            handler_fn(|_| async { Err(ErrorInfo::new("Rejected", "no")) }),
        )
        .build();
    engine.start().await.expect("engine starts");
    sagaflow_api::hook::spawn(&engine, hook(&receiver.url, 3));

    assert_eq!(
        run_rejected(&engine, "not-noted").await,
        Status::Compensated
    );
    several_polls().await;
    assert_eq!(pending(&engine).await, 0);
    assert_eq!(receiver.hits(), 0);
}
