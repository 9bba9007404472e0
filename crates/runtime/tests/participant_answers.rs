//! What a participant answered is never lost nor changed: an answer that
//! cannot be kept (too large, neither JSON nor text) is an outcome whose
//! effect may have happened, handled like a timeout; any other answer is
//! stored exactly (whole text bodies, numbers of any size); and a
//! participant's error cannot pass for one of the engine's own outcomes.
//!
//! The participant is a real axum server on loopback whose routes answer
//! raw bytes, and counts the calls each route received.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use sagaflow_core::asl::{ResourceMap, ResourceRule};
use sagaflow_core::error_name::{OUTPUT_INVALID, OUTPUT_TOO_LARGE, RESERVED_ERROR_NAME};
use sagaflow_core::{EventKind, Status};
use sagaflow_runtime::{Config, Engine};
use sagaflow_store::memory::MemoryStore;
use sagaflow_store::sqlite::SqliteStore;
use sagaflow_store::{ExecutionRecord, Query, Store};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);
const LIMIT: usize = 16 * 1024;
/// A text body longer than the 500 bytes the engine used to keep of it.
fn long_text() -> String {
    "Réservation confirmée — numéro 42.\n".repeat(40)
}
/// An answer whose numbers no `f64` or 64-bit integer holds exactly (keys sorted).
const EXACT: &str =
    r#"{"big":1180591620717411303424,"pi":3.14159265358979323846264338327950288419716939937510}"#;

/// Calls per route, in arrival order.
type Calls = Arc<Mutex<Vec<String>>>;

async fn answer(State(calls): State<Calls>, Path(route): Path<String>) -> Response {
    calls.lock().unwrap().push(route.clone());
    match route.as_str() {
        "huge" => (StatusCode::OK, "x".repeat(4 * LIMIT)).into_response(),
        "text" => (StatusCode::OK, long_text()).into_response(),
        "binary" => (StatusCode::OK, vec![0xff_u8, 0xfe, 0x00, 0x80]).into_response(),
        "exact" => (
            StatusCode::OK,
            [("content-type", "application/json")],
            EXACT,
        )
            .into_response(),
        "timeout" => (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({"error": "States.Timeout", "cause": "my own deadline"})),
        )
            .into_response(),
        "lost" => (
            StatusCode::CONFLICT,
            axum::Json(json!({"error": "Sagaflow.ResponseLost", "cause": "upstream"})),
        )
            .into_response(),
        _ => axum::Json(json!({ "ok": route })).into_response(),
    }
}

struct World {
    engine: Engine,
    calls: Calls,
}

impl World {
    async fn start(store: Arc<dyn Store>) -> World {
        let calls: Calls = Arc::default();
        let app = Router::new()
            .route("/{route}", post(answer))
            .with_state(calls.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let engine = Engine::builder(store)
            .config(Config {
                variables: HashMap::from([("SVC".to_string(), url)]),
                max_output_bytes: LIMIT,
                resources: ResourceMap {
                    rules: vec![ResourceRule {
                        pattern: "arn:aws:lambda:*:*:function:{name}".into(),
                        target: "${SVC}/{name}".into(),
                    }],
                },
                ..Config::default()
            })
            .build();
        engine.start().await.unwrap();
        World { engine, calls }
    }

    async fn run(&self, definition: &str, input: Value) -> ExecutionRecord {
        self.run_named(None, definition, input).await
    }

    async fn run_named(
        &self,
        name: Option<&str>,
        definition: &str,
        input: Value,
    ) -> ExecutionRecord {
        let deployed = self.engine.deploy(name, definition).await.unwrap();
        let (rec, _) = self
            .engine
            .start_execution(&deployed.record.name, input, None)
            .await
            .unwrap();
        self.engine.wait(&rec.id, WAIT).await.unwrap()
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

async fn events(store: &dyn Store, id: &str) -> Vec<EventKind> {
    store
        .history(id, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.event.kind)
        .collect()
}

fn failure_of(history: &[EventKind], name: &str) -> sagaflow_core::ErrorInfo {
    history
        .iter()
        .find_map(|e| match e {
            EventKind::StepFailed { step, error, .. } if step == name => Some(error.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no step_failed for {name}: {history:?}"))
}

/// A saga: `book` (undone by `/unbook`), then `second` calling `/{route}`
/// (undone by `/undo_second`), with `second` as the pivot or not.
fn saga(name: &str, route: &str, pivot: bool) -> String {
    format!(
        r#"
name: {name}
steps:
  - name: book
    action: {{ http: {{ url: "${{SVC}}/book" }} }}
    compensation: {{ http: {{ url: "${{SVC}}/unbook" }} }}
  - name: second
    action: {{ http: {{ url: "${{SVC}}/{route}" }} }}
    {}
"#,
        if pivot {
            "pivot: true".to_string()
        } else {
            r#"compensation: { http: { url: "${SVC}/undo_second" } }"#.to_string()
        }
    )
}

#[tokio::test]
async fn an_oversized_answer_is_ambiguous_so_the_step_is_compensated_when_the_saga_rolls_back() {
    let store = Arc::new(MemoryStore::new());
    let w = World::start(store.clone()).await;
    let done = w.run(&saga("big", "huge", false), json!({})).await;
    assert_eq!(done.status, Status::Compensated, "{done:?}");
    let error = failure_of(&events(&*store, &done.id).await, "second");
    assert_eq!(error.error, OUTPUT_TOO_LARGE);
    assert!(error.cause.contains("16384 bytes"), "{}", error.cause);
    // Not retried (a deduplicating participant would answer the same), and
    // its effect is undone before the earlier step's.
    assert_eq!(w.calls(), ["book", "huge", "undo_second", "unbook"]);
}

#[tokio::test]
async fn an_oversized_answer_on_the_pivot_stops_failed_and_compensates_nothing() {
    let store = Arc::new(MemoryStore::new());
    let w = World::start(store.clone()).await;
    let done = w.run(&saga("big-pivot", "huge", true), json!({})).await;
    assert_eq!(done.status, Status::Failed, "{done:?}");
    assert_eq!(done.error.as_ref().unwrap().error, OUTPUT_TOO_LARGE);
    let history = events(&*store, &done.id).await;
    assert!(
        !history
            .iter()
            .any(|e| matches!(e, EventKind::RollbackStarted { .. })),
        "{history:?}"
    );
    assert_eq!(w.calls(), ["book", "huge"]);
    // A human may redrive it: the pivot is tried again with the same key.
    w.engine.redrive(&done.id).await.unwrap();
    let again = w.engine.wait(&done.id, WAIT).await.unwrap();
    assert_eq!(again.status, Status::Failed);
    assert_eq!(w.calls(), ["book", "huge", "huge"]);
}

#[tokio::test]
async fn an_oversized_answer_in_an_asl_task_goes_through_its_catch_to_the_undo_like_a_timeout() {
    let store = Arc::new(MemoryStore::new());
    let w = World::start(store.clone()).await;
    let machine = json!({
        "StartAt": "Book",
        "States": {
            "Book": {
                "Type": "Task",
                "Resource": "arn:aws:lambda:us-east-1:000000000000:function:huge",
                "Retry": [{"ErrorEquals": ["States.Timeout"], "MaxAttempts": 2}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Unbook"}],
                "End": true
            },
            "Unbook": {
                "Type": "Task",
                "Resource": "arn:aws:lambda:us-east-1:000000000000:function:unbook",
                "Next": "Failed"
            },
            "Failed": {"Type": "Fail", "Error": "BookingFailed"}
        }
    });
    let done = w
        .run_named(Some("book-machine"), &machine.to_string(), json!({}))
        .await;
    assert_eq!(done.status, Status::Failed, "{done:?}");
    assert_eq!(done.error.as_ref().unwrap().error, "BookingFailed");
    assert_eq!(w.calls(), ["huge", "unbook"]);
    let history = events(&*store, &done.id).await;
    assert_eq!(failure_of(&history, "Book").error, OUTPUT_TOO_LARGE);
}

#[tokio::test]
async fn a_text_answer_that_is_not_json_is_stored_whole_as_a_string() {
    let store = Arc::new(MemoryStore::new());
    let w = World::start(store.clone()).await;
    let done = w.run(&saga("text", "text", false), json!({})).await;
    assert_eq!(done.status, Status::Succeeded, "{done:?}");
    let output = &done.output.as_ref().unwrap()["second"];
    assert!(long_text().len() > 500);
    assert_eq!(output, &Value::String(long_text()));
}

#[tokio::test]
async fn an_answer_that_is_neither_json_nor_text_is_refused_by_name_and_compensated() {
    let store = Arc::new(MemoryStore::new());
    let w = World::start(store.clone()).await;
    let done = w.run(&saga("binary", "binary", false), json!({})).await;
    assert_eq!(done.status, Status::Compensated, "{done:?}");
    let error = failure_of(&events(&*store, &done.id).await, "second");
    assert_eq!(error.error, OUTPUT_INVALID);
    assert_eq!(w.calls(), ["book", "binary", "undo_second", "unbook"]);
}

#[tokio::test]
async fn integers_beyond_64_bits_and_long_decimals_are_stored_digit_for_digit() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Arc::new(SqliteStore::open(dir.path().join("sagaflow.db")).unwrap());
    let w = World::start(sqlite.clone()).await;
    let done = w.run(&saga("exact", "exact", false), json!({})).await;
    assert_eq!(done.status, Status::Succeeded, "{done:?}");
    // As stored in the history, read back from SQLite…
    let history = events(&*sqlite, &done.id).await;
    let output = history
        .iter()
        .find_map(|e| match e {
            EventKind::StepSucceeded { step, output, .. } if step == "second" => Some(output),
            _ => None,
        })
        .unwrap();
    assert_eq!(serde_json::to_string(output).unwrap(), EXACT);
    // …and in the execution's output.
    let rec = sqlite.get_execution(&done.id).await.unwrap();
    let written = serde_json::to_string(&rec.output.unwrap()["second"]).unwrap();
    assert_eq!(written, EXACT);
}

#[tokio::test]
async fn a_participant_error_named_like_an_engine_outcome_is_recorded_as_reserved_and_not_taken_for_it(
) {
    let store = Arc::new(MemoryStore::new());
    let w = World::start(store.clone()).await;
    // A 4xx `States.Timeout` is a refusal, not a timeout: the step is not
    // ambiguous, so it is not compensated (the earlier one is).
    let done = w.run(&saga("refused", "timeout", false), json!({})).await;
    assert_eq!(done.status, Status::Compensated, "{done:?}");
    let error = failure_of(&events(&*store, &done.id).await, "second");
    assert_eq!(error.error, RESERVED_ERROR_NAME);
    assert!(
        error.cause.contains("`States.Timeout`") && error.cause.contains("my own deadline"),
        "{}",
        error.cause
    );
    assert_eq!(w.calls(), ["book", "timeout", "unbook"]);

    // A pivot's 4xx `Sagaflow.ResponseLost` is a refusal too: the saga
    // rolls back instead of stopping `failed` as for a lost answer.
    let done = w.run(&saga("refused-pivot", "lost", true), json!({})).await;
    assert_eq!(done.status, Status::Compensated, "{done:?}");
    let error = done.error.unwrap();
    assert_eq!(error.error, RESERVED_ERROR_NAME);
    assert!(
        error.cause.contains("`Sagaflow.ResponseLost`"),
        "{}",
        error.cause
    );
    let per_route = w.calls().into_iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r).or_insert(0) += 1;
        m
    });
    assert_eq!(per_route["lost"], 1, "a business refusal is not retried");
}
