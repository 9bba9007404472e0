//! Test support shared by the runtime's integration tests: a real HTTP
//! participant whose answers are scripted per route, and small engine helpers.
//!
//! The participant behaves as the README's "What participants must do"
//! asks: it remembers the first successful answer per `Idempotency-Key`
//! and replays it for a repeated key, so a repeated call never repeats the
//! effect. Every request is recorded with its headers and body.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use sagaflow_core::EventKind;
use sagaflow_runtime::{Config, Engine};
use sagaflow_store::memory::MemoryStore;
use sagaflow_store::Query;
use serde_json::{json, Value};
use tokio::sync::watch;

/// How long a test waits for an outcome before it counts as a failure.
/// A deadline, never an assertion about speed.
pub const WAIT: Duration = Duration::from_secs(20);

/// A gate a scripted answer can wait behind until the test opens it.
#[derive(Clone)]
pub struct Gate(Arc<watch::Sender<bool>>);

impl Default for Gate {
    fn default() -> Self {
        Gate(Arc::new(watch::channel(false).0))
    }
}

impl Gate {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn open(&self) {
        self.0.send_replace(true);
    }

    async fn passed(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|open| *open).await;
    }
}

#[derive(Clone)]
enum Delivery {
    Now,
    After(Duration),
    When(Gate),
    Never,
}

/// One scripted answer of a route.
#[derive(Clone)]
pub struct Reply {
    status: u16,
    body: Value,
    delivery: Delivery,
}

impl Reply {
    /// `200` with this JSON body: the effect happens.
    pub fn ok(body: Value) -> Reply {
        Reply {
            status: 200,
            body,
            delivery: Delivery::Now,
        }
    }

    /// A transient failure (e.g. `503`): nothing happened.
    pub fn failure(status: u16) -> Reply {
        Reply {
            status,
            body: json!({"message": "scripted failure"}),
            delivery: Delivery::Now,
        }
    }

    /// A business failure: a 4xx with `{"error": NAME, "cause": CAUSE}`.
    pub fn business(status: u16, error: &str, cause: &str) -> Reply {
        Reply {
            status,
            body: json!({"error": error, "cause": cause}),
            delivery: Delivery::Now,
        }
    }

    /// The answer is sent after `d`.
    pub fn after(mut self, d: Duration) -> Reply {
        self.delivery = Delivery::After(d);
        self
    }

    /// The answer is sent once `gate` opens.
    pub fn when(mut self, gate: &Gate) -> Reply {
        self.delivery = Delivery::When(gate.clone());
        self
    }

    /// The effect happens (for a 2xx) but the answer never comes.
    pub fn never(mut self) -> Reply {
        self.delivery = Delivery::Never;
        self
    }
}

/// One request the participant received.
#[derive(Clone, Debug)]
pub struct Call {
    pub path: String,
    pub idempotency_key: String,
    pub execution_id: String,
    pub attempt: u32,
    pub body: Value,
    /// This call performed a new effect (a first successful answer for its key).
    pub effect: bool,
    /// This call was answered from the idempotency record (no new effect).
    pub replayed: bool,
}

#[derive(Default)]
struct Book {
    /// Route → (answers, calls so far); the last answer repeats forever.
    scripts: HashMap<String, (Vec<Reply>, usize)>,
    calls: Vec<Call>,
    /// First successful answer per idempotency key.
    answers: HashMap<String, (u16, Value)>,
}

struct Inner {
    book: Mutex<Book>,
    arrivals: watch::Sender<usize>,
}

impl Inner {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A scripted HTTP participant listening on 127.0.0.1.
#[derive(Clone)]
pub struct Participant {
    pub base_url: String,
    inner: Arc<Inner>,
}

impl Participant {
    /// Starts the server on the current tokio runtime.
    pub async fn start() -> Participant {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let inner = Arc::new(Inner {
            book: Mutex::new(Book::default()),
            arrivals: watch::channel(0).0,
        });
        let app = Router::new().fallback(serve).with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Participant {
            base_url: format!("http://{addr}"),
            inner,
        }
    }

    /// Scripts the answers of `path` (replacing any earlier script). Calls
    /// beyond the script get its last answer. Unscripted routes answer
    /// `200 {"path": PATH}`.
    pub fn script(&self, path: &str, replies: impl IntoIterator<Item = Reply>) {
        let replies: Vec<Reply> = replies.into_iter().collect();
        assert!(!replies.is_empty(), "a script needs at least one reply");
        self.inner
            .book()
            .scripts
            .insert(path.to_string(), (replies, 0));
    }

    /// Every request received, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.inner.book().calls.clone()
    }

    pub fn calls_to(&self, path: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.path == path)
            .collect()
    }

    /// The routes called, in arrival order.
    pub fn paths(&self) -> Vec<String> {
        self.calls().into_iter().map(|c| c.path).collect()
    }

    /// How many effects the route performed (repeated keys do not count).
    pub fn effects_at(&self, path: &str) -> usize {
        self.calls_to(path).iter().filter(|c| c.effect).count()
    }

    /// Waits until `path` has received at least `n` requests.
    pub async fn wait_for_calls(&self, path: &str, n: usize) {
        let mut rx = self.inner.arrivals.subscribe();
        let arrived = tokio::time::timeout(
            WAIT,
            rx.wait_for(|_| {
                self.inner
                    .book()
                    .calls
                    .iter()
                    .filter(|c| c.path == path)
                    .count()
                    >= n
            }),
        )
        .await;
        assert!(
            matches!(arrived, Ok(Ok(_))),
            "{path} did not receive {n} request(s) within {WAIT:?}; calls: {:?}",
            self.paths()
        );
    }
}

async fn serve(State(p): State<Arc<Inner>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let path = uri.path().to_string();
    let key = header("idempotency-key");
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut call = Call {
        path: path.clone(),
        idempotency_key: key.clone(),
        execution_id: header("sagaflow-execution-id"),
        attempt: header("sagaflow-attempt").parse().unwrap_or(0),
        body,
        effect: false,
        replayed: false,
    };
    let (status, answer, delivery) = {
        let mut book = p.book();
        let stored = if key.is_empty() {
            None
        } else {
            book.answers.get(&key).cloned()
        };
        let outcome = match stored {
            Some((status, answer)) => {
                call.replayed = true;
                (status, answer, Delivery::Now)
            }
            None => {
                let reply = match book.scripts.get_mut(&path) {
                    Some((replies, n)) => {
                        let r = replies[(*n).min(replies.len() - 1)].clone();
                        *n += 1;
                        r
                    }
                    None => Reply::ok(json!({ "path": path })),
                };
                if (200..300).contains(&reply.status) {
                    call.effect = true;
                    if !key.is_empty() {
                        book.answers
                            .insert(key.clone(), (reply.status, reply.body.clone()));
                    }
                }
                (reply.status, reply.body, reply.delivery)
            }
        };
        book.calls.push(call);
        outcome
    };
    p.arrivals.send_modify(|n| *n += 1);
    match delivery {
        Delivery::Now => {}
        Delivery::After(d) => tokio::time::sleep(d).await,
        Delivery::When(gate) => gate.passed().await,
        Delivery::Never => std::future::pending::<()>().await,
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(answer)).into_response()
}

/// Engine settings whose `${SVC}` points at `base_url`.
pub fn config(base_url: &str) -> Config {
    Config {
        variables: HashMap::from([("SVC".to_string(), base_url.to_string())]),
        ..Config::default()
    }
}

/// A started engine on `store` whose `${SVC}` points at `base_url`.
pub async fn engine_on(store: Arc<MemoryStore>, base_url: &str) -> Engine {
    let engine = Engine::builder(store).config(config(base_url)).build();
    engine.start().await.expect("engine starts");
    engine
}

/// The execution's history, event by event.
pub async fn history(store: &MemoryStore, id: &str) -> Vec<EventKind> {
    store
        .history(id, 0)
        .await
        .expect("history")
        .into_iter()
        .map(|h| h.event.kind)
        .collect()
}

/// The names of the history's events, e.g. `step_succeeded reserve_hotel`.
pub fn describe(history: &[EventKind]) -> Vec<String> {
    history
        .iter()
        .map(|e| {
            format!("{} {}", e.name(), e.step().unwrap_or(""))
                .trim()
                .to_string()
        })
        .collect()
}
