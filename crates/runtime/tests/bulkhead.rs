//! Per-participant bulkheads: a participant that hangs takes at most its own
//! slots, so sagas calling another participant keep going, and a call that
//! waited for a slot until its deadline was never sent, so it is a plain
//! retried failure, not an ambiguous timeout.
//!
//! Both participants are real HTTP servers on loopback; the hung one accepts
//! every request and never answers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::post;
use axum::Router;
use sagaflow_core::error_name::PARTICIPANT_SATURATED;
use sagaflow_core::{EventKind, Status};
use sagaflow_runtime::{Config, Engine};
use sagaflow_store::memory::MemoryStore;
use sagaflow_store::Query;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// The process's metrics, as Prometheus text (one recorder per test binary).
fn metrics() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("the only recorder of this test binary")
    })
}

/// Requests received per route.
#[derive(Default)]
struct Counts(std::sync::Mutex<HashMap<String, usize>>);

impl Counts {
    fn add(&self, route: &str) {
        *self.0.lock().unwrap().entry(route.into()).or_default() += 1;
    }
    fn of(&self, route: &str) -> usize {
        self.0.lock().unwrap().get(route).copied().unwrap_or(0)
    }
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A server that takes every request and never answers; counts them.
async fn hung() -> (String, Arc<AtomicUsize>) {
    let received = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/{route}",
            post(|State(n): State<Arc<AtomicUsize>>| async move {
                n.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>().await;
            }),
        )
        .with_state(received.clone());
    (serve(app).await, received)
}

/// A server that answers every request at once; counts them per route.
async fn healthy() -> (String, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let app = Router::new()
        .route(
            "/{route}",
            post(
                |State(c): State<Arc<Counts>>, Path(route): Path<String>| async move {
                    c.add(&route);
                    axum::Json(json!({ "ok": route }))
                },
            ),
        )
        .with_state(counts.clone());
    (serve(app).await, counts)
}

async fn engine(store: Arc<MemoryStore>, hung: &str, ok: &str, per_participant: usize) -> Engine {
    let engine = Engine::builder(store)
        .config(Config {
            variables: HashMap::from([
                ("HUNG".to_string(), hung.to_string()),
                ("OK".to_string(), ok.to_string()),
            ]),
            concurrency: 4,
            participant_concurrency: per_participant,
            ..Config::default()
        })
        .build();
    engine.start().await.unwrap();
    engine
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} never happened"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_hung_participant_fills_only_its_own_bulkhead_and_other_sagas_succeed_on_their_first_attempt(
) {
    let metrics = metrics();
    let (hung_url, hung_received) = hung().await;
    let (ok_url, ok_counts) = healthy().await;
    let store = Arc::new(MemoryStore::new());
    // Two slots per participant, four in all: without bulkheads the hung
    // participant's calls would hold every slot.
    let engine = engine(store.clone(), &hung_url, &ok_url, 2).await;
    engine
        .deploy(
            None,
            r#"
name: stuck
steps:
  - name: call
    action: { http: { url: "${HUNG}/wait" } }
    timeout: 10m
"#,
        )
        .await
        .unwrap();
    engine
        .deploy(
            None,
            r#"
name: quick
steps:
  - name: one
    action: { http: { url: "${OK}/one" } }
    timeout: 5s
  - name: two
    action: { http: { url: "${OK}/two" } }
    timeout: 5s
"#,
        )
        .await
        .unwrap();
    for _ in 0..6 {
        engine
            .start_execution("stuck", json!({}), None)
            .await
            .unwrap();
    }
    until("the hung participant holding two calls", || {
        hung_received.load(Ordering::SeqCst) == 2
    })
    .await;

    let mut ids = Vec::new();
    for _ in 0..12 {
        let (rec, _) = engine
            .start_execution("quick", json!({}), None)
            .await
            .unwrap();
        ids.push(rec.id);
    }
    for id in &ids {
        let done = engine.wait(id, WAIT).await.unwrap();
        assert_eq!(done.status, Status::Succeeded, "{done:?}");
        let history: Vec<EventKind> = store
            .history(id, 0)
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.event.kind)
            .collect();
        // Every step was sent once and answered at its first attempt.
        for e in &history {
            match e {
                EventKind::StepScheduled { attempt, .. }
                | EventKind::StepSucceeded { attempt, .. } => {
                    assert_eq!(*attempt, 1, "{history:?}")
                }
                EventKind::StepFailed { .. } | EventKind::RetryScheduled { .. } => {
                    panic!("a healthy participant's call failed: {history:?}")
                }
                _ => {}
            }
        }
    }
    assert_eq!((ok_counts.of("one"), ok_counts.of("two")), (12, 12));
    // The hung participant never got more than its bulkhead's slots; the
    // four calls that found it full were counted, and wait still.
    assert_eq!(hung_received.load(Ordering::SeqCst), 2);
    let text = metrics.render();
    let label = format!("{{participant=\"{hung_url}\"}}");
    assert!(
        text.contains(&format!("sagaflow_participant_saturated_total{label} 4")),
        "{text}"
    );
    assert!(
        text.contains(&format!("sagaflow_participant_waiting_calls{label} 4")),
        "{text}"
    );
}

#[tokio::test]
async fn a_deadline_that_passes_while_waiting_for_a_slot_sends_nothing_and_is_not_ambiguous() {
    let (hung_url, hung_received) = hung().await;
    let (ok_url, ok_counts) = healthy().await;
    let store = Arc::new(MemoryStore::new());
    let engine = engine(store.clone(), &hung_url, &ok_url, 1).await;
    engine
        .deploy(
            None,
            r#"
name: stuck
steps:
  - name: call
    action: { http: { url: "${HUNG}/wait" } }
    timeout: 10m
"#,
        )
        .await
        .unwrap();
    engine
        .deploy(
            None,
            r#"
name: queued
steps:
  - name: book
    action: { http: { url: "${OK}/book" } }
    compensation: { http: { url: "${OK}/unbook" } }
  - name: behind
    action: { http: { url: "${HUNG}/other" } }
    compensation: { http: { url: "${OK}/undo_behind" } }
    timeout: 300ms
    retry: { max_attempts: 2, initial_delay: 10ms }
"#,
        )
        .await
        .unwrap();
    engine
        .start_execution("stuck", json!({}), None)
        .await
        .unwrap();
    until("the hung participant holding its only slot", || {
        hung_received.load(Ordering::SeqCst) == 1
    })
    .await;

    let (rec, _) = engine
        .start_execution("queued", json!({}), None)
        .await
        .unwrap();
    let done = engine.wait(&rec.id, WAIT).await.unwrap();
    // Both attempts waited for the slot until their deadline: nothing was
    // sent, so the step is not ambiguous and is not compensated.
    assert_eq!(done.status, Status::Compensated, "{done:?}");
    let failures: Vec<(u32, String)> = store
        .history(&rec.id, 0)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|h| match h.event.kind {
            EventKind::StepFailed { attempt, error, .. } => Some((attempt, error.error)),
            _ => None,
        })
        .collect();
    assert_eq!(
        failures,
        [
            (1, PARTICIPANT_SATURATED.to_string()),
            (2, PARTICIPANT_SATURATED.to_string())
        ]
    );
    assert_eq!(hung_received.load(Ordering::SeqCst), 1);
    assert_eq!(ok_counts.of("undo_behind"), 0);
    assert_eq!(ok_counts.of("unbook"), 1);
}
