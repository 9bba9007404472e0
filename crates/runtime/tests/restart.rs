//! No duplicated effect across a restart.
//!
//! Each engine ("node") runs on its own tokio runtime. A crash is
//! `Runtime::shutdown_background()`: every task of the node (actors,
//! participant calls, timers) is dropped on the spot, nothing is flushed. The
//! `Arc<MemoryStore>` survives, as a database file would; a new node on a new
//! runtime and the same store calls `Engine::start`, which resumes unfinished
//! executions from their history.
//!
//! The HTTP participant runs on a runtime of its own, so it outlives the
//! nodes. It deduplicates by `Idempotency-Key` (the first successful answer
//! per key is stored and replayed) and counts effects. Each node reaches it
//! under its own prefix (`/node1/…`, `/node2/…`), so the test can tell who
//! called.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sagaflow_core::{EventKind, Status, TaskKind};
use sagaflow_runtime::Engine;
use sagaflow_store::memory::MemoryStore;
use serde_json::json;
use support::{config, describe, history, Participant, Reply, WAIT};
use tokio::runtime::Runtime;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// One engine on its own runtime.
struct Node {
    rt: Runtime,
    engine: Engine,
    /// Executions `Engine::start` resumed.
    resumed: usize,
}

impl Node {
    fn boot(store: &Arc<MemoryStore>, base_url: &str) -> Node {
        let rt = runtime();
        let engine = Engine::builder(store.clone())
            .config(config(base_url))
            .build();
        let resumed = rt.block_on(engine.start()).expect("engine starts");
        Node {
            rt,
            engine,
            resumed,
        }
    }

    /// Drops every task of the node abruptly; only the store remains.
    fn crash(self) {
        let Node { rt, engine, .. } = self;
        drop(engine);
        rt.shutdown_background();
    }
}

/// The participant, on a runtime that outlives the nodes.
struct Service {
    rt: Runtime,
    p: Participant,
}

impl Service {
    fn start() -> Service {
        let rt = runtime();
        let p = rt.block_on(Participant::start());
        Service { rt, p }
    }

    fn url(&self, node: &str) -> String {
        format!("{}/{node}", self.p.base_url)
    }

    fn wait_for_calls(&self, path: &str, n: usize) {
        self.rt.block_on(self.p.wait_for_calls(path, n));
    }

    fn history(&self, store: &MemoryStore, id: &str) -> Vec<EventKind> {
        self.rt.block_on(history(store, id))
    }

    /// Waits (test deadline only) until the history has an event matching `pred`.
    fn wait_for_event(&self, store: &MemoryStore, id: &str, pred: impl Fn(&EventKind) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            let h = self.history(store, id);
            if h.iter().any(&pred) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "event never recorded: {:?}",
                describe(&h)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn a_crash_while_a_step_is_in_flight_re_invokes_it_with_the_same_key_and_the_effect_happens_once() {
    let svc = Service::start();
    // The payment is taken, but node 1 dies before the answer arrives.
    svc.p.script(
        "/node1/payment/charge",
        [Reply::ok(json!({"payment_id": "P-1"})).never()],
    );
    let store = Arc::new(MemoryStore::new());
    let node1 = Node::boot(&store, &svc.url("node1"));
    let id = "in-flight";
    node1.rt.block_on(async {
        node1
            .engine
            .deploy(
                None,
                r#"
name: pay
steps:
  - name: reserve_hotel
    action: { http: { url: "${SVC}/hotel/reserve" } }
    compensation: { http: { url: "${SVC}/hotel/cancel" } }
  - name: take_payment
    action: { http: { url: "${SVC}/payment/charge" } }
"#,
            )
            .await
            .unwrap();
        node1
            .engine
            .start_execution("pay", json!({"amount": 30}), Some(id.into()))
            .await
            .unwrap();
    });
    svc.wait_for_calls("/node1/payment/charge", 1);
    node1.crash();

    let at_crash = svc.history(&store, id);
    assert_eq!(
        describe(&at_crash).last().map(String::as_str),
        Some("step_scheduled take_payment"),
        "{:?}",
        describe(&at_crash)
    );

    let node2 = Node::boot(&store, &svc.url("node2"));
    assert_eq!(node2.resumed, 1);
    let done = node2.rt.block_on(node2.engine.wait(id, WAIT)).unwrap();

    assert_eq!(done.status, Status::Succeeded, "{done:?}");
    let charges: Vec<_> = svc
        .p
        .calls()
        .into_iter()
        .filter(|c| c.path.ends_with("/payment/charge"))
        .collect();
    assert_eq!(
        charges.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(),
        ["/node1/payment/charge", "/node2/payment/charge"]
    );
    assert_eq!(
        charges[0].idempotency_key,
        format!("{id}:take_payment:action")
    );
    assert_eq!(charges[1].idempotency_key, charges[0].idempotency_key);
    assert_eq!(
        charges[1].attempt, charges[0].attempt,
        "the same attempt, resumed"
    );
    assert!(charges[1].replayed, "the participant recognised the key");
    assert_eq!(
        charges.iter().filter(|c| c.effect).count(),
        1,
        "one payment"
    );
    assert_eq!(
        done.output.as_ref().and_then(|o| o.get("take_payment")),
        Some(&json!({"payment_id": "P-1"}))
    );
    // The step before the crash was not repeated.
    assert_eq!(svc.p.calls_to("/node1/hotel/reserve").len(), 1);
    assert!(svc.p.calls_to("/node2/hotel/reserve").is_empty());
    let h = svc.history(&store, id);
    let scheduled = h
        .iter()
        .filter(|e| matches!(e, EventKind::StepScheduled { step, .. } if step == "take_payment"))
        .count();
    assert_eq!(scheduled, 1, "{:?}", describe(&h));
    node2.crash();
}

#[test]
fn a_crash_while_a_retry_timer_is_pending_still_retries_after_the_restart() {
    let svc = Service::start();
    svc.p.script("/node1/payment/charge", [Reply::failure(503)]);
    let store = Arc::new(MemoryStore::new());
    let node1 = Node::boot(&store, &svc.url("node1"));
    let id = "retry-pending";
    node1.rt.block_on(async {
        node1
            .engine
            .deploy(
                None,
                r#"
name: pay-later
steps:
  - name: take_payment
    action: { http: { url: "${SVC}/payment/charge" } }
    retry: { max_attempts: 3, initial_delay: 2s, max_delay: 2s, jitter: 0 }
"#,
            )
            .await
            .unwrap();
        node1
            .engine
            .start_execution("pay-later", json!({}), Some(id.into()))
            .await
            .unwrap();
    });
    svc.wait_for_event(&store, id, |e| {
        matches!(e, EventKind::RetryScheduled { .. })
    });
    node1.crash();

    let at_crash = svc.history(&store, id);
    assert!(
        matches!(
            at_crash.last(),
            Some(EventKind::RetryScheduled { step, task: TaskKind::Action, attempt: 2, .. }) if step == "take_payment"
        ),
        "the node crashed while the retry was pending: {:?}",
        describe(&at_crash)
    );

    let node2 = Node::boot(&store, &svc.url("node2"));
    assert_eq!(node2.resumed, 1);
    let done = node2.rt.block_on(node2.engine.wait(id, WAIT)).unwrap();

    assert_eq!(done.status, Status::Succeeded, "{done:?}");
    let calls = svc.p.calls();
    assert_eq!(
        calls
            .iter()
            .map(|c| (c.path.as_str(), c.attempt))
            .collect::<Vec<_>>(),
        [("/node1/payment/charge", 1), ("/node2/payment/charge", 2)]
    );
    assert_eq!(calls[1].idempotency_key, calls[0].idempotency_key);
    assert_eq!(calls.iter().filter(|c| c.effect).count(), 1);
    node2.crash();
}

#[test]
fn a_crash_during_a_compensation_resends_it_with_the_same_key_and_it_happens_once() {
    let svc = Service::start();
    svc.p.script(
        "/node1/hotel/reserve",
        [Reply::business(409, "HotelFull", "full")],
    );
    // The flight is cancelled, but node 1 dies before the answer arrives.
    svc.p.script(
        "/node1/flight/cancel",
        [Reply::ok(json!({"cancelled": true})).never()],
    );
    let store = Arc::new(MemoryStore::new());
    let node1 = Node::boot(&store, &svc.url("node1"));
    let id = "compensating";
    node1.rt.block_on(async {
        node1
            .engine
            .deploy(
                None,
                r#"
name: trip
steps:
  - name: reserve_flight
    action: { http: { url: "${SVC}/flight/reserve" } }
    compensation: { http: { url: "${SVC}/flight/cancel" } }
  - name: reserve_hotel
    action: { http: { url: "${SVC}/hotel/reserve" } }
"#,
            )
            .await
            .unwrap();
        node1
            .engine
            .start_execution("trip", json!({}), Some(id.into()))
            .await
            .unwrap();
    });
    svc.wait_for_calls("/node1/flight/cancel", 1);
    node1.crash();

    let node2 = Node::boot(&store, &svc.url("node2"));
    assert_eq!(node2.resumed, 1);
    let done = node2.rt.block_on(node2.engine.wait(id, WAIT)).unwrap();

    assert_eq!(done.status, Status::Compensated, "{done:?}");
    assert_eq!(
        done.error.as_ref().map(|e| e.error.as_str()),
        Some("HotelFull")
    );
    let cancels: Vec<_> = svc
        .p
        .calls()
        .into_iter()
        .filter(|c| c.path.ends_with("/flight/cancel"))
        .collect();
    assert_eq!(cancels.len(), 2);
    assert_eq!(
        cancels[0].idempotency_key,
        format!("{id}:reserve_flight:compensation")
    );
    assert_eq!(cancels[1].idempotency_key, cancels[0].idempotency_key);
    assert_eq!(
        cancels.iter().filter(|c| c.effect).count(),
        1,
        "one cancellation"
    );
    // Nothing forward was repeated.
    assert!(svc
        .p
        .paths()
        .iter()
        .all(|path| path.starts_with("/node1/") || path == "/node2/flight/cancel"));
    node2.crash();
}

#[test]
fn a_restart_after_an_execution_finished_resumes_nothing_and_calls_no_one() {
    let svc = Service::start();
    let store = Arc::new(MemoryStore::new());
    let node1 = Node::boot(&store, &svc.url("node1"));
    let id = "finished";
    let done = node1.rt.block_on(async {
        node1
            .engine
            .deploy(
                None,
                r#"
name: quick
steps:
  - name: reserve_hotel
    action: { http: { url: "${SVC}/hotel/reserve" } }
"#,
            )
            .await
            .unwrap();
        node1
            .engine
            .start_execution("quick", json!({}), Some(id.into()))
            .await
            .unwrap();
        node1.engine.wait(id, WAIT).await.unwrap()
    });
    assert_eq!(done.status, Status::Succeeded, "{done:?}");
    node1.crash();

    let node2 = Node::boot(&store, &svc.url("node2"));
    assert_eq!(node2.resumed, 0);
    let again = node2.rt.block_on(node2.engine.get(id)).unwrap();
    assert_eq!(again.status, Status::Succeeded);
    assert_eq!(svc.p.paths(), ["/node1/hotel/reserve"]);
    node2.crash();
}
