//! The native HTTP API, exercised over real HTTP.
//!
//! Every test runs the real thing: an [`Engine`] on a [`SqliteStore`] in a
//! temporary directory (or, in `api_postgres.rs` and `api_cluster.rs`, which
//! include this file, on a `PostgresStore` in a schema of the test's own when
//! `DATABASE_URL` is set, the engine alone or as a node of a cluster), served by [`sagaflow_api::serve`] on 127.0.0.1:0, and
//! called with reqwest. Participants are a small axum server in the test,
//! reached through `${SVC}`, whose routes succeed (`/anything`), refuse with a
//! business error (`/reject`), fail until the test makes them healthy
//! (`/flaky`), hold the call until the test opens a gate (`/slow`), hand
//! their task token back to the test (`/park`, for callback steps), or play a
//! webhook receiver that refuses its first delivery (`/hook`).
//!
//! Every error answer is checked for its HTTP status, its `error.code` and the
//! `{"error": {"code", "message", "details"}}` shape, and is followed by a
//! request showing that the server still serves. Outcomes are awaited with
//! `?wait=` (bounded by [`WAIT`]) and every request has a deadline: the only
//! timeouts are test deadlines, never timing assertions.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use reqwest::{Method, StatusCode};
use sagaflow_api::hook::HookConfig;
use sagaflow_api::ApiConfig;
use sagaflow_core::Status;
use sagaflow_runtime::{Config, Engine, NodeConfig};
use sagaflow_store::postgres::{Options, PostgresStore};
use sagaflow_store::sqlite::SqliteStore;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};

/// Where the suite runs: `sqlite`, `postgres`, or `cluster` (PostgreSQL,
/// the engine a node of a cluster). `crate::BACKEND` is this constant when
/// this file is its own test binary, and `api_postgres.rs`'s or
/// `api_cluster.rs`'s when that binary includes this file as a module.
#[allow(dead_code)]
const BACKEND: &str = "sqlite";

/// Whether a test is skipped: on PostgreSQL without `DATABASE_URL`.
fn skip() -> bool {
    if crate::BACKEND != "sqlite" && database_url().is_none() {
        eprintln!("DATABASE_URL is not set: skipping this PostgreSQL test");
        return true;
    }
    false
}

fn database_url() -> Option<String> {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
}

/// A PostgreSQL schema of one test's own, dropped with everything in it
/// when the test's server is dropped. Named `sagaflow_test_…` like the
/// store's test schemas, so one left by a killed run is dropped by a later
/// run of those once it is an hour old.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    fn new(url: &str) -> Schema {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Schema {
            url: url.to_string(),
            name: format!(
                "sagaflow_test_{secs}_{}_api{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // A thread and a runtime of its own: `Drop` cannot await, and the
        // test's runtime may be the one being dropped.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the schema")
                .block_on(async {
                    let (client, connection) =
                        tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
                    tokio::spawn(connection);
                    client
                        .batch_execute(&format!(
                            "SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {name} CASCADE"
                        ))
                        .await
                })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test schema {}: {dropped:?}", self.name);
        }
    }
}

/// Seconds a `?wait=` may take before the test gives up (a deadline, not an assertion).
const WAIT: u64 = 30;
/// Deadline of any single request or notification.
const DEADLINE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Definitions
// ---------------------------------------------------------------------------

/// Reserves, then charges: succeeds.
const OK_SAGA: &str = r#"
name: ok
steps:
  - name: reserve
    action: { http: { url: "${SVC}/reserve" } }
    compensation: { http: { url: "${SVC}/reserve/undo" } }
  - name: charge
    action: { http: { url: "${SVC}/charge" } }
"#;

/// Reserves, then is refused: the reservation is undone, ends `compensated`.
const REJECTED_SAGA: &str = r#"
name: rejected
steps:
  - name: reserve
    action: { http: { url: "${SVC}/reserve" } }
    compensation: { http: { url: "${SVC}/reserve/undo" } }
  - name: refuse
    action: { http: { url: "${SVC}/reject" } }
"#;

/// Reserves, then waits on `/slow` until the test opens the gate.
const SLOW_SAGA: &str = r#"
name: slow
steps:
  - name: reserve
    action: { http: { url: "${SVC}/reserve" } }
    compensation: { http: { url: "${SVC}/reserve/undo" } }
  - name: hold
    action: { http: { url: "${SVC}/slow" } }
    compensation: { http: { url: "${SVC}/slow/undo" } }
    timeout: 60s
"#;

/// Passes its pivot, then waits on `/slow` in a step that can only go forward.
const PIVOT_SAGA: &str = r#"
name: pivot
steps:
  - name: reserve
    action: { http: { url: "${SVC}/reserve" } }
    compensation: { http: { url: "${SVC}/reserve/undo" } }
  - name: charge
    pivot: true
    action: { http: { url: "${SVC}/charge" } }
  - name: confirm
    action: { http: { url: "${SVC}/slow" } }
    timeout: 60s
"#;

/// Is refused after a reservation whose compensation gets a single attempt
/// against `/flaky`: ends `failed` while the participant is down.
const STUCK_SAGA: &str = r#"
name: stuck
steps:
  - name: reserve
    action: { http: { url: "${SVC}/reserve" } }
    compensation:
      http: { url: "${SVC}/flaky" }
      retry: { max_attempts: 1 }
  - name: refuse
    action: { http: { url: "${SVC}/reject" } }
"#;

/// Reserves, then parks on a callback step until its task token comes back.
const APPROVAL_SAGA: &str = r#"
name: approval
steps:
  - name: reserve
    action: { http: { url: "${SVC}/reserve" } }
    compensation: { http: { url: "${SVC}/reserve/undo" } }
  - name: approve
    callback: true
    timeout: 60s
    action: { http: { url: "${SVC}/park" } }
    compensation: { http: { url: "${SVC}/park/undo" } }
"#;

// ---------------------------------------------------------------------------
// The participant (and webhook receiver)
// ---------------------------------------------------------------------------

struct Svc {
    calls: Mutex<Vec<String>>,
    /// `/flaky` answers 503 until this is set.
    healthy: AtomicBool,
    /// Signalled when a call reaches `/slow`.
    entered: Notify,
    /// `/slow` answers once this has a permit.
    gate: Semaphore,
    hook_hits: AtomicUsize,
    /// Every hook delivery, refused or accepted, with its `Authorization`.
    hook_seen: Mutex<Vec<(Option<String>, Value)>>,
    hook_accepted: mpsc::UnboundedSender<Value>,
    /// Task tokens received by `/park`.
    parked: mpsc::UnboundedSender<String>,
}

impl Svc {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn open_gate(&self) {
        self.gate.add_permits(1);
    }
}

async fn participant(
    State(svc): State<Arc<Svc>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    svc.calls.lock().unwrap().push(path.clone());
    match path.as_str() {
        "/reject" => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "Rejected", "cause": "the participant said no"})),
        )
            .into_response(),
        "/flaky" if !svc.healthy.load(Ordering::SeqCst) => {
            (StatusCode::SERVICE_UNAVAILABLE, "down for now").into_response()
        }
        "/slow" => {
            svc.entered.notify_one();
            let _permit = svc.gate.acquire().await;
            Json(json!({"held": true})).into_response()
        }
        "/park" => {
            let token = headers
                .get("sagaflow-task-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let _ = svc.parked.send(token.to_string());
            Json(json!({"acknowledged": true})).into_response()
        }
        "/hook" => {
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let auth = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            svc.hook_seen.lock().unwrap().push((auth, body.clone()));
            if svc.hook_hits.fetch_add(1, Ordering::SeqCst) == 0 {
                return (StatusCode::INTERNAL_SERVER_ERROR, "not yet").into_response();
            }
            let _ = svc.hook_accepted.send(body);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => Json(json!({"done": path})).into_response(),
    }
}

// ---------------------------------------------------------------------------
// The server under test
// ---------------------------------------------------------------------------

/// A Sagaflow server on a fresh database, with its own participant.
struct Api {
    base: String,
    http: reqwest::Client,
    engine: Engine,
    svc: Arc<Svc>,
    svc_url: String,
    hooks: tokio::sync::Mutex<mpsc::UnboundedReceiver<Value>>,
    parked: tokio::sync::Mutex<mpsc::UnboundedReceiver<String>>,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
    /// Last: dropped after everything else of the test's server.
    _schema: Option<Schema>,
}

/// An answer: status, headers and JSON body.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body, after checking the status.
    #[track_caller]
    fn expect(self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "unexpected answer: {}", self.body);
        self.body
    }
}

impl Api {
    async fn start() -> Api {
        Api::with_config(ApiConfig::default()).await
    }

    async fn with_config(config: ApiConfig) -> Api {
        Api::with_engine(config, Vec::new()).await
    }

    /// With the engine recording outbox notifications for `notify_on` (the
    /// on-failure hook delivers from the outbox).
    async fn with_engine(config: ApiConfig, notify_on: Vec<Status>) -> Api {
        // Unbounded: a participant or the hook receiver never waits for the
        // test to read what it reports (a test reads only what it needs).
        let (hook_accepted, hooks) = mpsc::unbounded_channel();
        let (parked_tx, parked) = mpsc::unbounded_channel();
        let svc = Arc::new(Svc {
            calls: Mutex::new(Vec::new()),
            healthy: AtomicBool::new(false),
            entered: Notify::new(),
            gate: Semaphore::new(0),
            hook_hits: AtomicUsize::new(0),
            hook_seen: Mutex::new(Vec::new()),
            hook_accepted,
            parked: parked_tx,
        });
        let svc_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let svc_url = format!("http://{}", svc_listener.local_addr().unwrap());
        let app = Router::new().fallback(participant).with_state(svc.clone());
        tokio::spawn(async move { axum::serve(svc_listener, app).await });

        let dir = tempfile::tempdir().unwrap();
        let variables = HashMap::from([("SVC".to_string(), svc_url.clone())]);
        let engine_config = Config {
            variables,
            notify_on,
            ..Config::default()
        };
        let (builder, schema) = if crate::BACKEND != "sqlite" {
            let url = database_url().expect("DATABASE_URL is set (the test checks skip())");
            let schema = Schema::new(&url);
            let options = Options {
                schema: Some(schema.name.clone()),
                max_connections: 4,
                ..Options::default()
            };
            let store = PostgresStore::connect_with(&url, options)
                .await
                .expect("connecting to DATABASE_URL");
            let store = Arc::new(store);
            let builder = if crate::BACKEND == "cluster" {
                let node = NodeConfig {
                    id: "api-test-node".into(),
                    address: "http://127.0.0.1:1".into(),
                    lease_ttl: Duration::from_secs(2),
                };
                Engine::cluster_builder(store, node)
            } else {
                Engine::builder(store)
            };
            (builder, Some(schema))
        } else {
            let store = SqliteStore::open(dir.path().join("sagaflow.db")).unwrap();
            (Engine::builder(Arc::new(store)), None)
        };
        let engine = builder.config(engine_config).build();
        engine.start().await.unwrap();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(sagaflow_api::serve(
            engine.clone(),
            config,
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        Api {
            base,
            http: reqwest::Client::new(),
            engine,
            svc,
            svc_url,
            hooks: tokio::sync::Mutex::new(hooks),
            parked: tokio::sync::Mutex::new(parked),
            stop: Some(stop),
            served: Some(served),
            _dir: dir,
            _schema: schema,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path))
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Reply {
        let resp = tokio::time::timeout(DEADLINE, rb.send())
            .await
            .expect("request deadline")
            .expect("request failed");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = tokio::time::timeout(DEADLINE, resp.text())
            .await
            .expect("body deadline")
            .expect("reading the body");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{status}: the body is not JSON ({e}): {text}"));
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(self.request(Method::GET, path)).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(self.request(Method::POST, path).json(&body))
            .await
    }

    async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Reply {
        self.send(
            self.request(Method::POST, path)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body),
        )
        .await
    }

    async fn put_definition(&self, name: &str, source: impl Into<reqwest::Body>) -> Reply {
        self.send(
            self.request(Method::PUT, &format!("/v1/definitions/{name}"))
                .header(header::CONTENT_TYPE, "application/yaml")
                .body(source),
        )
        .await
    }

    /// Registers a definition that must be valid.
    async fn deploy(&self, name: &str, source: &'static str) {
        let r = self.put_definition(name, source).await;
        assert!(
            r.status == StatusCode::CREATED || r.status == StatusCode::OK,
            "deploying {name}: {r:?}"
        );
    }

    /// Starts an execution that must be accepted (201); returns it.
    async fn start_execution(&self, definition: &str, input: Value, id: Option<&str>) -> Value {
        let mut body = json!({"definition": definition, "input": input});
        if let Some(id) = id {
            body["execution_id"] = json!(id);
        }
        self.post("/v1/executions", body)
            .await
            .expect(StatusCode::CREATED)
    }

    /// Waits (through the API) until the execution has finished; returns it.
    async fn finished(&self, id: &str) -> Value {
        let e = self
            .get(&format!("/v1/executions/{id}?wait={WAIT}"))
            .await
            .expect(StatusCode::OK);
        assert!(
            is_terminal(&e),
            "execution {id} did not finish within {WAIT}s: {e}"
        );
        e
    }

    /// The task token of the next call to `/park`.
    async fn next_task_token(&self) -> String {
        let token = tokio::time::timeout(DEADLINE, async { self.parked.lock().await.recv().await })
            .await
            .expect("the callback step is called")
            .expect("a task token");
        assert!(!token.is_empty(), "the participant gets a task token");
        token
    }

    async fn history(&self, id: &str) -> Vec<Value> {
        let h = self
            .get(&format!("/v1/executions/{id}/history"))
            .await
            .expect(StatusCode::OK);
        h["events"].as_array().cloned().unwrap_or_default()
    }

    /// Checks an error answer (status, code and shape) and that the server
    /// still serves afterwards; returns `error.details`.
    #[track_caller]
    fn expect_error(
        &self,
        reply: Reply,
        status: StatusCode,
        code: &str,
    ) -> impl std::future::Future<Output = Value> + '_ {
        assert_eq!(reply.status, status, "unexpected answer: {}", reply.body);
        let error = reply
            .body
            .get("error")
            .unwrap_or_else(|| panic!("no `error` object in {}", reply.body));
        assert_eq!(
            reply.body.as_object().map(|o| o.len()),
            Some(1),
            "only `error` at the top: {}",
            reply.body
        );
        assert_eq!(error["code"], code, "unexpected code in {}", reply.body);
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "a message for people: {}",
            reply.body
        );
        assert!(
            error.get("details").is_some(),
            "`details` is always present: {}",
            reply.body
        );
        let details = error["details"].clone();
        async move {
            self.assert_still_serving().await;
            details
        }
    }

    async fn assert_still_serving(&self) {
        let r = self.get("/healthz").await;
        assert_eq!(
            (r.status, &r.body),
            (StatusCode::OK, &json!({"status": "ok"})),
            "the server stopped serving"
        );
    }
}

fn is_terminal(e: &Value) -> bool {
    matches!(
        e["status"].as_str(),
        Some("succeeded" | "compensated" | "failed" | "cancelled" | "timed_out")
    )
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["type"].as_str()).collect()
}

/// Steps whose compensation succeeded, in history order.
fn compensated_steps(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .filter(|e| e["type"] == "compensation_succeeded")
        .filter_map(|e| e["step"].as_str())
        .collect()
}

// ---------------------------------------------------------------------------
// Definitions
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_a_definition_creates_it_keeps_it_on_the_same_source_and_versions_a_change() {
    if skip() {
        return;
    }
    let api = Api::start().await;

    let created = api
        .put_definition("ok", OK_SAGA)
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(
        (
            created["name"].as_str(),
            created["version"].as_u64(),
            created["created"].as_bool()
        ),
        (Some("ok"), Some(1), Some(true))
    );
    assert_eq!(created["format"], "saga");
    assert_eq!(created["variables"], json!(["SVC"]));
    assert!(created["digest"].as_str().is_some_and(|d| !d.is_empty()));
    assert!(
        created.get("source").is_none(),
        "PUT does not echo the source"
    );

    let same = api
        .put_definition("ok", OK_SAGA)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (same["version"].as_u64(), same["created"].as_bool()),
        (Some(1), Some(false))
    );
    assert_eq!(same["digest"], created["digest"]);

    let changed = OK_SAGA.replace("/charge", "/charge/v2");
    let v2 = api
        .put_definition("ok", changed)
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(
        (v2["version"].as_u64(), v2["created"].as_bool()),
        (Some(2), Some(true))
    );
    assert_ne!(v2["digest"], created["digest"]);

    // New executions run the latest version.
    let e = api.start_execution("ok", json!({}), None).await;
    assert_eq!(e["version"], 2);
}

/// `(type, step)` of each event but the start: a path to compare.
fn steps_of(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e["type"] != "execution_started")
        .map(|e| {
            (
                e["type"].as_str().unwrap_or("").to_string(),
                e["step"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failure_explorer_predicts_the_path_a_real_execution_with_that_failure_takes() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("rejected", REJECTED_SAGA).await;
    let real = api
        .start_execution("rejected", json!({"n": 1}), Some("explained-1"))
        .await;
    let real = api.finished(real["id"].as_str().unwrap()).await;
    let explained = api
        .post(
            "/v1/definitions/rejected/explain",
            json!({"fail": "refuse:Rejected", "input": {"n": 1}}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(explained["definition"], "rejected");
    assert_eq!(explained["end"]["status"], real["status"], "{explained}");
    assert_eq!(explained["compensated"], json!(["reserve"]));
    let predicted: Vec<Value> = explained["events"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        steps_of(&predicted),
        steps_of(&api.history("explained-1").await),
        "the dry run takes the real execution's path"
    );
    api.assert_still_serving().await;
}

/// The node `id` of a graph answer.
fn graph_node<'a>(graph: &'a Value, id: &str) -> &'a Value {
    graph["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["id"] == id))
        .unwrap_or_else(|| panic!("no node `{id}` in {graph}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compensated_executions_graph_shows_the_failed_step_its_compensated_ones_and_why() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("rejected", REJECTED_SAGA).await;
    api.start_execution("rejected", json!({}), Some("drawn-1"))
        .await;
    api.finished("drawn-1").await;
    let g = api
        .get("/v1/executions/drawn-1/graph")
        .await
        .expect(StatusCode::OK);
    assert_eq!(g["kind"], "saga");
    assert_eq!(g["execution"]["status"], "compensated");
    assert_eq!(graph_node(&g, "refuse")["state"], "failed", "{g}");
    assert_eq!(graph_node(&g, "refuse")["error"]["error"], "Rejected");
    assert_eq!(graph_node(&g, "reserve")["state"], "compensated");
    assert_eq!(
        graph_node(&g, "reserve/compensation")["state"],
        "compensated"
    );
    let started = graph_node(&g, "reserve")["started_at"].as_str().unwrap();
    assert!(started.ends_with('Z'), "times are RFC 3339: {started}");
    let why = g["why"].as_str().unwrap();
    assert!(
        why.contains("`refuse`") && why.contains("`reserve`"),
        "{why}"
    );

    let r = api.get("/v1/executions/no-such/graph").await;
    api.expect_error(r, StatusCode::NOT_FOUND, "execution_not_found")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_step_is_drawn_parked_with_the_token_that_answers_it() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("approval", APPROVAL_SAGA).await;
    api.start_execution("approval", json!({}), Some("drawn-parked"))
        .await;
    let token = api.next_task_token().await;
    // The participant has the token; the step is parked once its answer
    // is recorded.
    let mut g = Value::Null;
    for _ in 0..200 {
        g = api
            .get("/v1/executions/drawn-parked/graph")
            .await
            .expect(StatusCode::OK);
        if graph_node(&g, "approve")["state"] == "parked" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(graph_node(&g, "approve")["state"], "parked", "{g}");
    assert_eq!(graph_node(&g, "approve")["task_token"], json!(token));
    assert_eq!(graph_node(&g, "reserve")["state"], "succeeded");
    assert!(
        g["why"].as_str().unwrap().contains("callback of `approve`"),
        "{g}"
    );
    api.post(&format!("/v1/callbacks/{token}/success"), json!({"ok": 1}))
        .await
        .expect(StatusCode::OK);
    api.finished("drawn-parked").await;
    let g = api
        .get("/v1/executions/drawn-parked/graph")
        .await
        .expect(StatusCode::OK);
    assert_eq!(graph_node(&g, "approve")["state"], "succeeded", "{g}");
    assert_eq!(graph_node(&g, "approve")["output"], json!({"ok": 1}));
    assert_eq!(g["why"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definitions_graph_marks_its_pivot_and_a_bad_source_gets_its_problems_on_its_nodes() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("pivot", PIVOT_SAGA).await;
    let g = api
        .get("/v1/definitions/pivot/graph")
        .await
        .expect(StatusCode::OK);
    assert_eq!(g["version"], 1);
    assert_eq!(graph_node(&g, "charge")["pivot"], true, "{g}");
    assert_eq!(graph_node(&g, "charge")["state"], Value::Null);
    assert!(g["edges"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["from"] == "reserve"
            && e["to"] == "reserve/compensation"
            && e["kind"] == "undo"));

    let broken = "name: pivot\nsteps:\n  - name: reserve\n    action: { http: { url: \"${SVC}/reserve\" } }\n  - name: charge\n    action: { http: { url: 7 } }\n";
    let checked = api
        .send(
            api.request(Method::POST, "/v1/definitions/pivot/graph")
                .header(header::CONTENT_TYPE, "application/yaml")
                .body(broken),
        )
        .await
        .expect(StatusCode::OK);
    let problems = checked["problems"].as_array().unwrap();
    assert!(!problems.is_empty(), "{checked}");
    assert!(
        problems.iter().any(|p| p["node"] == "charge"),
        "the problem is on the step it concerns: {checked}"
    );
    // Nothing was deployed.
    let g = api
        .get("/v1/definitions/pivot/graph")
        .await
        .expect(StatusCode::OK);
    assert_eq!(g["version"], 1);
    let valid = api
        .send(
            api.request(Method::POST, "/v1/definitions/pivot/graph")
                .body(PIVOT_SAGA),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(valid["problems"], json!([]));
    let r = api.get("/v1/definitions/nothing/graph").await;
    api.expect_error(r, StatusCode::NOT_FOUND, "definition_not_found")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_filters_by_start_time_and_names_a_bad_time() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("ok", OK_SAGA).await;
    api.start_execution("ok", json!({}), Some("timed-1")).await;
    let started = api.finished("timed-1").await["started_at"]
        .as_str()
        .unwrap()
        .to_string();
    let listed = |query: String| {
        let api = &api;
        async move {
            let page = api
                .get(&format!("/v1/executions?{query}"))
                .await
                .expect(StatusCode::OK);
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    let at = started.replace(':', "%3A");
    assert_eq!(listed(format!("started_after={at}")).await, ["timed-1"]);
    assert!(listed(format!("started_before={at}")).await.is_empty());
    assert!(listed("started_after=2999-01-01T00%3A00%3A00Z".into())
        .await
        .is_empty());
    assert_eq!(
        listed("started_after=&started_before=2999-01-01T00%3A00%3A00Z".into()).await,
        ["timed-1"]
    );
    let r = api.get("/v1/executions?started_after=yesterday").await;
    let message = r.body["error"]["message"].to_string();
    assert!(message.contains("`started_after`"), "{message}");
    api.expect_error(r, StatusCode::BAD_REQUEST, "invalid_parameter")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_from_the_binary_without_a_token_while_the_api_still_needs_one() {
    if skip() {
        return;
    }
    let config = ApiConfig {
        auth_tokens: HashSet::from(["secret".to_string()]),
        ..ApiConfig::default()
    };
    let api = Api::with_config(config).await;
    let bare = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for from in ["/", "/console"] {
        let r = bare.get(api.url(from)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT, "{from}");
        assert_eq!(r.headers()[header::LOCATION], "/console/");
    }
    let page = bare.get(api.url("/console/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let mut total = 0;
    for name in sagaflow_api::console::asset_names() {
        let r = bare
            .get(api.url(&format!("/console/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{name}");
        let etag = r.headers()[header::ETAG].clone();
        total += r.bytes().await.unwrap().len();
        let again = bare
            .get(api.url(&format!("/console/{name}")))
            .header(header::IF_NONE_MATCH, etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{name}");
    }
    assert_eq!(total, sagaflow_api::console::total_size());
    assert!(
        total < 300 * 1024,
        "the console's first load is {total} bytes"
    );
    // Every file in crates/api/console is embedded.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            sagaflow_api::console::asset_names().any(|a| a == name),
            "{name} is in crates/api/console but not served"
        );
    }
    let missing = bare.get(api.url("/console/nope.js")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let data = bare.get(api.url("/v1/executions")).send().await.unwrap();
    assert_eq!(
        data.status(),
        StatusCode::UNAUTHORIZED,
        "the data still needs the token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failure_explorer_lists_every_steps_path_and_refuses_what_it_cannot_explain() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("pivot", PIVOT_SAGA).await;
    let table = api
        .post_raw("/v1/definitions/pivot/explain", "")
        .await
        .expect(StatusCode::OK);
    let steps: Vec<&str> = table["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["step"].as_str())
        .collect();
    assert_eq!(steps, ["reserve", "charge", "confirm"]);
    let confirm = &table["steps"][2]["path"];
    assert_eq!(confirm["end"]["kind"], "retried_without_end", "{confirm}");
    let charge = api
        .post(
            "/v1/definitions/pivot/explain",
            json!({"fail": "charge:CardDeclined"}),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(charge["end"]["status"], "compensated", "{charge}");
    assert_eq!(charge["compensated"], json!(["reserve"]));

    let typo = api
        .post("/v1/definitions/pivot/explain", json!({"fail": "chrage"}))
        .await;
    let details = api
        .expect_error(typo, StatusCode::BAD_REQUEST, "unknown_step")
        .await;
    assert_eq!(details["steps"], json!(["reserve", "charge", "confirm"]));
    let bad = api
        .post("/v1/definitions/pivot/explain", json!({"fail": ":Nope"}))
        .await;
    api.expect_error(bad, StatusCode::BAD_REQUEST, "invalid_fault")
        .await;
    let unknown = api.post("/v1/definitions/nothing/explain", json!({})).await;
    api.expect_error(unknown, StatusCode::NOT_FOUND, "definition_not_found")
        .await;
}

/// The server-sent events of one stream: `(id, event, data)`, read until
/// the server ends it.
async fn read_sse(resp: reqwest::Response) -> Vec<(String, String, Value)> {
    let text = tokio::time::timeout(DEADLINE, resp.text())
        .await
        .expect("the stream ends")
        .expect("the stream reads");
    text.split("\n\n")
        .filter(|block| block.lines().any(|l| l.starts_with("data:")))
        .map(|block| {
            let field = |name: &str| {
                block
                    .lines()
                    .filter_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim_start().to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            let data = field("data:");
            (
                field("id:"),
                field("event:"),
                serde_json::from_str(&data).unwrap_or(Value::String(data)),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executions_events_stream_live_until_it_ends_and_resume_after_the_last_one_seen() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("slow", SLOW_SAGA).await;
    api.start_execution("slow", json!({}), Some("watched"))
        .await;
    tokio::time::timeout(DEADLINE, api.svc.entered.notified())
        .await
        .expect("the slow step is called");
    // Followed from before the end: the stream stays open while it waits.
    let resp = api
        .request(Method::GET, "/v1/executions/watched/events?follow=true")
        .send()
        .await
        .expect("the stream opens");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    api.svc.open_gate();
    let events = read_sse(resp).await;
    let (_, last, end) = events.last().expect("events").clone();
    assert_eq!(last, "end", "the stream ends with the end: {events:?}");
    assert_eq!(end["status"], "succeeded");
    let kinds: Vec<&str> = events.iter().map(|(_, e, _)| e.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"execution_started"));
    assert!(
        kinds.contains(&"step_succeeded") && kinds.contains(&"execution_finished"),
        "{kinds:?}"
    );
    let history = api.history("watched").await;
    assert_eq!(
        events.len(),
        history.len() + 1,
        "every event once, then the end"
    );
    for ((id, kind, data), h) in events.iter().zip(&history) {
        assert_eq!(
            (id.as_str(), kind.as_str()),
            (h["seq"].to_string().as_str(), h["type"].as_str().unwrap())
        );
        assert_eq!(data, h);
    }
    // A client that reconnects resumes after the last event it saw.
    let resumed = api
        .request(Method::GET, "/v1/executions/watched/events")
        .header("Last-Event-ID", "2")
        .send()
        .await
        .expect("the stream opens");
    let rest = read_sse(resumed).await;
    assert_eq!(
        rest.len(),
        history.len() - 2,
        "without follow: what is stored"
    );
    assert_eq!(rest[0].0, "3");

    let unknown = api.get("/v1/executions/nobody/events").await;
    api.expect_error(unknown, StatusCode::NOT_FOUND, "execution_not_found")
        .await;
    let bad = api
        .send(
            api.request(Method::GET, "/v1/executions/watched/events")
                .header("Last-Event-ID", "x"),
        )
        .await;
    api.expect_error(bad, StatusCode::BAD_REQUEST, "invalid_parameter")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_stream_sends_each_execution_then_its_changes() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("slow", SLOW_SAGA).await;
    api.start_execution("slow", json!({}), Some("listed")).await;
    tokio::time::timeout(DEADLINE, api.svc.entered.notified())
        .await
        .expect("the slow step is called");
    let mut resp = api
        .request(Method::GET, "/v1/events?definition=slow")
        .send()
        .await
        .expect("the stream opens");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut text = String::new();
    let mut gate_opened = false;
    // Events arrive as they happen: the running execution, then (after the
    // gate opens) its end. The stream itself never ends: the test stops
    // reading once it has both.
    while !text.contains(r#""status":"succeeded""#) {
        let chunk = tokio::time::timeout(DEADLINE, resp.chunk())
            .await
            .expect("an event in time")
            .expect("the stream reads")
            .expect("the stream stays open");
        text.push_str(&String::from_utf8_lossy(&chunk));
        if !gate_opened && text.contains(r#""status":"running""#) {
            assert!(text.contains("event: execution"), "{text}");
            assert!(text.contains(r#""id":"listed""#), "{text}");
            api.svc.open_gate();
            gate_opened = true;
        }
    }
    assert!(gate_opened, "the running execution came first: {text}");
    drop(resp);
    let bad = api.get("/v1/events?status=sleeping").await;
    api.expect_error(bad, StatusCode::BAD_REQUEST, "invalid_parameter")
        .await;
    api.assert_still_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definition_in_json_is_registered_too() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    let source = json!({
        "name": "json-saga",
        "steps": [ { "name": "only", "action": { "handler": "nobody" } } ]
    })
    .to_string();
    let d = api
        .put_definition("json-saga", source)
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(
        (d["name"].as_str(), d["version"].as_u64()),
        (Some("json-saga"), Some(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_definition_is_refused_with_every_violation_and_its_location() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    let source = r#"
name: broken
steps:
  - name: reserve
    action: { http: { url: "${SVC}/reserve" } }
    compensation: { http: { url: "ftp://nowhere/undo" } }
  - name: charge
    retry: { max_attempts: 0 }
"#;
    let details = api
        .expect_error(
            api.put_definition("broken", source).await,
            StatusCode::BAD_REQUEST,
            "invalid_definition",
        )
        .await;
    let violations = details["violations"]
        .as_array()
        .unwrap_or_else(|| panic!("violations listed: {details}"));
    let found: BTreeSet<(&str, &str)> = violations
        .iter()
        .map(|v| (v["code"].as_str().unwrap(), v["location"].as_str().unwrap()))
        .collect();
    for expected in [
        ("invalid_url", "steps[0].compensation.http.url"),
        ("missing_field", "steps[1].action"),
        ("invalid_retry_policy", "steps[1].retry.max_attempts"),
    ] {
        assert!(found.contains(&expected), "{expected:?} among {found:?}");
    }
    assert!(violations
        .iter()
        .all(|v| v["message"].as_str().is_some_and(|m| !m.is_empty())));

    // Not YAML at all: still a 400 with a violation, never a 500.
    let details = api
        .expect_error(
            api.put_definition("broken", "steps: [unclosed").await,
            StatusCode::BAD_REQUEST,
            "invalid_definition",
        )
        .await;
    assert_eq!(details["violations"][0]["code"], "parse_error", "{details}");

    // Nothing was registered.
    api.expect_error(
        api.get("/v1/definitions/broken").await,
        StatusCode::NOT_FOUND,
        "definition_not_found",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definition_using_a_variable_the_server_does_not_know_is_refused() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    let source = r#"
name: elsewhere
steps:
  - name: call
    action: { http: { url: "${NOWHERE_URL}/call" } }
"#;
    let details = api
        .expect_error(
            api.put_definition("elsewhere", source).await,
            StatusCode::BAD_REQUEST,
            "invalid_definition",
        )
        .await;
    let v = &details["violations"];
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{details}");
    assert_eq!(v[0]["code"], "unknown_variable");
    assert!(
        v[0]["message"].as_str().unwrap().contains("NOWHERE_URL"),
        "{details}"
    );
    assert_eq!(v[0]["location"], "steps[0].action.http.url", "{details}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definition_named_differently_from_its_path_is_refused() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    let details = api
        .expect_error(
            api.put_definition("not-ok", OK_SAGA).await,
            StatusCode::BAD_REQUEST,
            "invalid_definition",
        )
        .await;
    assert_eq!(
        details["violations"][0]["code"], "name_mismatch",
        "{details}"
    );
    assert_eq!(details["violations"][0]["location"], "name", "{details}");

    // A name in the path that is not a valid name is refused the same way.
    let details = api
        .expect_error(
            api.put_definition("bad%20name", "steps: []").await,
            StatusCode::BAD_REQUEST,
            "invalid_definition",
        )
        .await;
    let codes: Vec<_> = details["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["code"].clone())
        .collect();
    assert!(codes.contains(&json!("invalid_name")), "{details}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definition_body_that_is_not_utf8_is_refused() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    let body = b"name: ok\nsteps: \xff\xfe\n".to_vec();
    api.expect_error(
        api.put_definition("ok", body).await,
        StatusCode::BAD_REQUEST,
        "invalid_utf8",
    )
    .await;
    api.put_definition("ok", OK_SAGA)
        .await
        .expect(StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_refused_as_too_large() {
    if skip() {
        return;
    }
    let api = Api::with_config(ApiConfig {
        body_limit: 1024,
        ..ApiConfig::default()
    })
    .await;
    let padding = format!("# {}\n", "x".repeat(2048));
    let big_definition = format!("{padding}{OK_SAGA}");
    api.expect_error(
        api.put_definition("ok", big_definition).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;

    let big_start = json!({"definition": "ok", "input": {"padding": "x".repeat(2048)}});
    api.expect_error(
        api.post("/v1/executions", big_start).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;

    // Small enough bodies still go through.
    api.put_definition("ok", OK_SAGA)
        .await
        .expect(StatusCode::CREATED);
    api.start_execution("ok", json!({"small": true}), None)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_are_listed_and_fetched_with_their_source_by_version() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("ok", OK_SAGA).await;
    let v2_source = OK_SAGA.replace("/charge", "/charge/v2");
    api.put_definition("ok", v2_source.clone())
        .await
        .expect(StatusCode::CREATED);
    api.deploy("rejected", REJECTED_SAGA).await;

    let list = api.get("/v1/definitions").await.expect(StatusCode::OK);
    let mut latest: Vec<(String, u64)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_string(),
                d["version"].as_u64().unwrap(),
            )
        })
        .collect();
    latest.sort();
    assert_eq!(
        latest,
        [("ok".to_string(), 2), ("rejected".to_string(), 1)],
        "the latest version of each: {list}"
    );
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d.get("source").is_none()),
        "the list leaves sources out"
    );

    let latest = api.get("/v1/definitions/ok").await.expect(StatusCode::OK);
    assert_eq!(
        (latest["version"].as_u64(), latest["source"].as_str()),
        (Some(2), Some(v2_source.as_str()))
    );
    assert!(
        latest["created_at"]
            .as_str()
            .is_some_and(|t| t.contains('T')),
        "RFC 3339: {latest}"
    );

    let first = api
        .get("/v1/definitions/ok?version=1")
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (first["version"].as_u64(), first["source"].as_str()),
        (Some(1), Some(OK_SAGA))
    );

    api.expect_error(
        api.get("/v1/definitions/nothing-here").await,
        StatusCode::NOT_FOUND,
        "definition_not_found",
    )
    .await;
    api.expect_error(
        api.get("/v1/definitions/ok?version=9").await,
        StatusCode::NOT_FOUND,
        "definition_not_found",
    )
    .await;
    api.expect_error(
        api.get("/v1/definitions/ok?version=first").await,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
    )
    .await;
}

// ---------------------------------------------------------------------------
// Starting executions
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_an_execution_answers_201_with_its_location() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("ok", OK_SAGA).await;

    let r = api
        .post(
            "/v1/executions",
            json!({"definition": "ok", "input": {"trip": 1}}),
        )
        .await;
    let location = r.header(header::LOCATION).map(String::from);
    let e = r.expect(StatusCode::CREATED);
    let id = e["id"].as_str().expect("an id is generated");
    assert_eq!(
        location.as_deref(),
        Some(format!("/v1/executions/{id}").as_str())
    );
    assert_eq!(
        (e["definition"].as_str(), e["version"].as_u64()),
        (Some("ok"), Some(1))
    );
    assert_eq!(e["input"], json!({"trip": 1}));
    assert!(
        e["started_at"].as_str().is_some_and(|t| t.contains('T')),
        "RFC 3339: {e}"
    );

    // The Location leads to the execution.
    let fetched = api.get(&location.unwrap()).await.expect(StatusCode::OK);
    assert_eq!(fetched["id"], e["id"]);
    assert_eq!(api.finished(id).await["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_request_with_bad_json_or_bad_fields_is_refused() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("ok", OK_SAGA).await;

    let details = api
        .expect_error(
            api.post_raw("/v1/executions", r#"{"definition": "ok",}"#)
                .await,
            StatusCode::BAD_REQUEST,
            "malformed_json",
        )
        .await;
    assert!(
        details["line"].is_u64() && details["column"].is_u64(),
        "where the syntax error is: {details}"
    );
    api.expect_error(
        api.post_raw("/v1/executions", "").await,
        StatusCode::BAD_REQUEST,
        "malformed_json",
    )
    .await;
    api.expect_error(
        api.post_raw("/v1/executions", r#"{"definition": "ok""#)
            .await,
        StatusCode::BAD_REQUEST,
        "malformed_json",
    )
    .await;

    api.expect_error(
        api.post("/v1/executions", json!({"input": {}})).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    api.expect_error(
        api.post("/v1/executions", json!({"definition": "ok", "inputs": {}}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    api.expect_error(
        api.post("/v1/executions", json!({"definition": 7})).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    api.expect_error(
        api.post("/v1/executions", json!(["ok"])).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;

    api.expect_error(
        api.post("/v1/executions", json!({"definition": "missing"}))
            .await,
        StatusCode::NOT_FOUND,
        "definition_not_found",
    )
    .await;

    // A good request after all that.
    api.start_execution("ok", json!(null), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_execution_id_returns_the_same_execution_and_a_different_input_conflicts() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("ok", OK_SAGA).await;

    let first = api
        .start_execution("ok", json!({"n": 1}), Some("order-1"))
        .await;
    assert_eq!(first["id"], "order-1");

    let again = api
        .post(
            "/v1/executions",
            json!({"definition": "ok", "input": {"n": 1}, "execution_id": "order-1"}),
        )
        .await;
    assert_eq!(
        again.header(header::LOCATION),
        Some("/v1/executions/order-1")
    );
    let again = again.expect(StatusCode::OK);
    assert_eq!(
        (&again["id"], &again["started_at"], &again["input"]),
        (&first["id"], &first["started_at"], &first["input"])
    );

    let conflict = api
        .post(
            "/v1/executions",
            json!({"definition": "ok", "input": {"n": 2}, "execution_id": "order-1"}),
        )
        .await;
    api.expect_error(conflict, StatusCode::CONFLICT, "execution_conflict")
        .await;

    // Only one execution exists, and it ran once.
    let list = api.get("/v1/executions").await.expect(StatusCode::OK);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
    api.finished("order-1").await;
    assert_eq!(
        api.svc.calls().iter().filter(|p| *p == "/reserve").count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_execution_id_is_refused() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("ok", OK_SAGA).await;
    for bad in [
        "has space".to_string(),
        "x".repeat(200),
        String::new(),
        "slash/inside".to_string(),
    ] {
        let r = api
            .post(
                "/v1/executions",
                json!({"definition": "ok", "execution_id": bad}),
            )
            .await;
        api.expect_error(r, StatusCode::BAD_REQUEST, "invalid_execution_id")
            .await;
    }
    let long_but_fine = "x".repeat(128);
    api.start_execution("ok", json!({}), Some(&long_but_fine))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_with_wait_answers_with_the_finished_execution() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("ok", OK_SAGA).await;
    api.deploy("rejected", REJECTED_SAGA).await;

    let ok = api
        .post(
            &format!("/v1/executions?wait={WAIT}"),
            json!({"definition": "ok", "input": {"trip": 1}}),
        )
        .await;
    assert!(ok.header(header::LOCATION).is_some());
    let ok = ok.expect(StatusCode::CREATED);
    assert_eq!(ok["status"], "succeeded", "{ok}");
    assert_eq!(
        ok["output"],
        json!({"reserve": {"done": "/reserve"}, "charge": {"done": "/charge"}}),
        "each step's output: {ok}"
    );

    let rolled_back = api
        .post(
            &format!("/v1/executions?wait={WAIT}"),
            json!({"definition": "rejected"}),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(rolled_back["status"], "compensated", "{rolled_back}");
    assert_eq!(rolled_back["error"]["error"], "Rejected", "{rolled_back}");

    for bad in ["abc", "-1", "NaN"] {
        let r = api
            .post(
                &format!("/v1/executions?wait={bad}"),
                json!({"definition": "ok"}),
            )
            .await;
        api.expect_error(r, StatusCode::BAD_REQUEST, "invalid_parameter")
            .await;
    }
}

// ---------------------------------------------------------------------------
// Listing and reading executions
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_are_listed_with_filters_and_paged_by_cursor() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("ok", OK_SAGA).await;
    api.deploy("rejected", REJECTED_SAGA).await;

    let ids: Vec<String> = (1..=7).map(|i| format!("run-{i}")).collect();
    for id in &ids {
        api.start_execution("ok", json!({"id": id}), Some(id)).await;
    }
    api.start_execution("rejected", json!({}), Some("undone"))
        .await;
    for id in ids.iter().map(String::as_str).chain(["undone"]) {
        api.finished(id).await;
    }

    // Paging: every execution exactly once, newest first.
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/v1/executions?definition=ok&limit=3".to_string(),
            Some(c) => format!("/v1/executions?definition=ok&limit=3&cursor={c}"),
        };
        let page = api.get(&path).await.expect(StatusCode::OK);
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3, "{page}");
        seen.extend(items.iter().map(|e| e["id"].as_str().unwrap().to_string()));
        pages += 1;
        assert!(pages <= 10, "paging does not end");
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first, "each once, newest first");
    assert_eq!(pages, 3);

    // Filters.
    let all = api.get("/v1/executions").await.expect(StatusCode::OK);
    assert_eq!(all["items"].as_array().map(Vec::len), Some(8));
    assert!(all["next_cursor"].is_null());

    let compensated = api
        .get("/v1/executions?status=compensated")
        .await
        .expect(StatusCode::OK);
    let compensated: Vec<_> = compensated["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(compensated, [json!("undone")]);

    let succeeded = api
        .get("/v1/executions?status=succeeded&definition=ok")
        .await
        .expect(StatusCode::OK);
    assert_eq!(succeeded["items"].as_array().map(Vec::len), Some(7));
    let none = api
        .get("/v1/executions?status=succeeded&definition=rejected")
        .await
        .expect(StatusCode::OK);
    assert_eq!(none["items"], json!([]));
    let unknown_definition = api
        .get("/v1/executions?definition=never-registered")
        .await
        .expect(StatusCode::OK);
    assert_eq!(unknown_definition["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_with_a_bad_status_limit_or_cursor_is_refused() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    let details = api
        .expect_error(
            api.get("/v1/executions?status=finished").await,
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        )
        .await;
    assert!(details.is_null(), "{details}");
    for bad in ["limit=0", "limit=1001", "limit=-1", "limit=many"] {
        api.expect_error(
            api.get(&format!("/v1/executions?{bad}")).await,
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
        )
        .await;
    }
    for bad in ["not-a-cursor", "-5", "1.5"] {
        api.expect_error(
            api.get(&format!("/v1/executions?cursor={bad}")).await,
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
        )
        .await;
    }
    api.get("/v1/executions?limit=1000")
        .await
        .expect(StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execution_is_fetched_by_id_and_can_be_waited_for() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("ok", OK_SAGA).await;
    api.start_execution("ok", json!({"who": "me"}), Some("fetch-me"))
        .await;

    let done = api
        .get(&format!("/v1/executions/fetch-me?wait={WAIT}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (done["id"].as_str(), done["status"].as_str()),
        (Some("fetch-me"), Some("succeeded"))
    );
    assert_eq!(done["input"], json!({"who": "me"}));
    assert!(done["error"].is_null());
    assert!(done["events"].as_u64().is_some_and(|n| n > 2), "{done}");

    // Without a wait, the current state, which is now final.
    let now = api
        .get("/v1/executions/fetch-me")
        .await
        .expect(StatusCode::OK);
    assert_eq!(now, done);

    api.expect_error(
        api.get("/v1/executions/never-started").await,
        StatusCode::NOT_FOUND,
        "execution_not_found",
    )
    .await;
    api.expect_error(
        api.get("/v1/executions/never-started?wait=1").await,
        StatusCode::NOT_FOUND,
        "execution_not_found",
    )
    .await;
    api.expect_error(
        api.get("/v1/executions/fetch-me?wait=soon").await,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_segment_that_is_not_utf8_is_refused_with_a_json_error() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    for path in [
        "/v1/executions/%FF",
        "/v1/executions/%FF/history",
        "/v1/definitions/%C3%28",
    ] {
        let r = api.get(path).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {:?}", r.body);
        api.expect_error(r, StatusCode::BAD_REQUEST, "invalid_parameter")
            .await;
    }
    let r = api.post_raw("/v1/executions/%FF/cancel", "").await;
    api.expect_error(r, StatusCode::BAD_REQUEST, "invalid_parameter")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_lists_numbered_timestamped_events_and_pages_with_after() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("rejected", REJECTED_SAGA).await;
    api.start_execution("rejected", json!({}), Some("story"))
        .await;
    let done = api.finished("story").await;

    let h = api
        .get("/v1/executions/story/history")
        .await
        .expect(StatusCode::OK);
    assert_eq!(h["execution"], done, "the history comes with its execution");
    let events = h["events"].as_array().unwrap();
    assert_eq!(events.len() as u64, done["events"].as_u64().unwrap());
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e["seq"].as_u64(),
            Some(i as u64 + 1),
            "numbered from 1: {e}"
        );
        assert!(
            e["at"].as_str().is_some_and(|t| t.contains('T')),
            "an RFC 3339 `at`: {e}"
        );
        assert!(e["type"].is_string(), "a type: {e}");
    }
    let t = types(events);
    assert_eq!(t.first(), Some(&"execution_started"));
    assert_eq!(t.last(), Some(&"execution_finished"));
    assert!(
        t.contains(&"step_failed") && t.contains(&"compensation_succeeded"),
        "{t:?}"
    );
    let scheduled = events
        .iter()
        .find(|e| e["type"] == "step_scheduled")
        .unwrap();
    assert!(
        scheduled["deadline"]
            .as_str()
            .is_some_and(|t| t.contains('T')),
        "deadlines are rendered as times: {scheduled}"
    );
    assert_eq!(compensated_steps(events), ["reserve"]);

    let later = api
        .get("/v1/executions/story/history?after=2")
        .await
        .expect(StatusCode::OK);
    let later = later["events"].as_array().unwrap();
    assert_eq!(later.len(), events.len() - 2);
    assert_eq!(later, &events[2..]);
    let none = api
        .get(&format!(
            "/v1/executions/story/history?after={}",
            events.len()
        ))
        .await
        .expect(StatusCode::OK);
    assert_eq!(none["events"], json!([]));
    let beyond = api
        .get(&format!("/v1/executions/story/history?after={}", u64::MAX))
        .await
        .expect(StatusCode::OK);
    assert_eq!(beyond["events"], json!([]));

    api.expect_error(
        api.get("/v1/executions/nobody/history").await,
        StatusCode::NOT_FOUND,
        "execution_not_found",
    )
    .await;
    api.expect_error(
        api.get("/v1/executions/story/history?after=last").await,
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
    )
    .await;
}

/// An ASL Map of 1,500 items, each a Wait of 0 seconds: one `timer_fired`
/// per item, 1,502 events in all, in well under a second.
const LONG_MAP: &str = r#"{"StartAt": "M", "States": {"M": {
    "Type": "Map", "ItemsPath": "$.items", "End": true,
    "ItemProcessor": {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 0, "End": true}}}
}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_history_is_paged_and_the_pages_hold_every_event_once_in_order() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("long", LONG_MAP).await;
    let items: Vec<u32> = (0..1500).collect();
    api.start_execution("long", json!({ "items": items }), Some("long"))
        .await;
    let done = api.finished("long").await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let total = done["events"].as_u64().unwrap();
    assert_eq!(total, 1502);

    // Without a limit: a page of 1000 and where the next one starts.
    let first = api
        .get("/v1/executions/long/history")
        .await
        .expect(StatusCode::OK);
    assert_eq!(first["events"].as_array().unwrap().len(), 1000);
    assert!(first["next_cursor"].is_string(), "{}", first["next_cursor"]);

    for limit in [1000, 333, 1] {
        let mut seqs = Vec::new();
        let mut path = format!("/v1/executions/long/history?limit={limit}");
        loop {
            let page = api.get(&path).await.expect(StatusCode::OK);
            let events = page["events"].as_array().unwrap();
            assert!(events.len() <= limit, "a page of {limit}: {}", events.len());
            seqs.extend(events.iter().map(|e| e["seq"].as_u64().unwrap()));
            match page["next_cursor"].as_str() {
                Some(c) => path = format!("/v1/executions/long/history?limit={limit}&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "pages of {limit}");
    }

    for (query, code) in [
        ("limit=0", "invalid_parameter"),
        ("limit=1001", "invalid_parameter"),
        ("limit=ten", "invalid_parameter"),
        ("cursor=h3&after=3", "invalid_parameter"),
        ("cursor=nonsense", "invalid_cursor"),
    ] {
        api.expect_error(
            api.get(&format!("/v1/executions/long/history?{query}"))
                .await,
            StatusCode::BAD_REQUEST,
            code,
        )
        .await;
    }
}

// ---------------------------------------------------------------------------
// Cancel and redrive
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_an_execution_waiting_on_a_slow_step_compensates_what_was_done() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("slow", SLOW_SAGA).await;
    api.start_execution("slow", json!({}), Some("to-cancel"))
        .await;
    tokio::time::timeout(DEADLINE, api.svc.entered.notified())
        .await
        .expect("the slow step is called");

    let r = api
        .post(
            "/v1/executions/to-cancel/cancel",
            json!({"reason": "customer changed their mind"}),
        )
        .await;
    let cancelling = r.expect(StatusCode::OK);
    assert_eq!(cancelling["id"], "to-cancel");
    assert!(
        matches!(
            cancelling["status"].as_str(),
            Some("compensating" | "cancelled")
        ),
        "{cancelling}"
    );

    // The slow call answers at last; it is undone too.
    api.svc.open_gate();
    let done = api.finished("to-cancel").await;
    assert_eq!(done["status"], "cancelled", "{done}");

    let events = api.history("to-cancel").await;
    let requested = events
        .iter()
        .find(|e| e["type"] == "cancel_requested")
        .expect("the cancel is in the history");
    assert_eq!(requested["reason"], "customer changed their mind");
    let undone = compensated_steps(&events);
    assert!(
        undone.contains(&"reserve"),
        "the completed step was compensated: {undone:?}"
    );
    assert_eq!(
        undone.iter().filter(|s| **s == "reserve").count(),
        1,
        "once: {undone:?}"
    );
    assert!(api.svc.calls().contains(&"/reserve/undo".to_string()));
    assert!(!api.svc.calls().contains(&"/charge".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_finished_or_unknown_execution_is_refused() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("ok", OK_SAGA).await;
    api.start_execution("ok", json!({}), Some("done-already"))
        .await;
    api.finished("done-already").await;

    api.expect_error(
        api.post_raw("/v1/executions/done-already/cancel", "").await,
        StatusCode::CONFLICT,
        "execution_finished",
    )
    .await;
    api.expect_error(
        api.post("/v1/executions/ghost/cancel", json!({})).await,
        StatusCode::NOT_FOUND,
        "execution_not_found",
    )
    .await;
    api.expect_error(
        api.post_raw("/v1/executions/done-already/cancel", "{reason")
            .await,
        StatusCode::BAD_REQUEST,
        "malformed_json",
    )
    .await;
    api.expect_error(
        api.post("/v1/executions/done-already/cancel", json!({"why": "x"}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;

    assert_eq!(
        api.get("/v1/executions/done-already")
            .await
            .expect(StatusCode::OK)["status"],
        "succeeded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_after_the_pivot_is_refused_and_the_execution_moves_forward() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("pivot", PIVOT_SAGA).await;
    api.start_execution("pivot", json!({}), Some("paid")).await;
    tokio::time::timeout(DEADLINE, api.svc.entered.notified())
        .await
        .expect("the step after the pivot is called");

    api.expect_error(
        api.post_raw("/v1/executions/paid/cancel", "").await,
        StatusCode::CONFLICT,
        "past_pivot",
    )
    .await;

    api.svc.open_gate();
    let done = api.finished("paid").await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(compensated_steps(&api.history("paid").await).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redriving_a_succeeded_or_unknown_execution_is_refused() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("ok", OK_SAGA).await;
    api.start_execution("ok", json!({}), Some("fine")).await;
    api.finished("fine").await;

    api.expect_error(
        api.post_raw("/v1/executions/fine/redrive", "").await,
        StatusCode::CONFLICT,
        "not_redrivable",
    )
    .await;
    api.expect_error(
        api.post_raw("/v1/executions/ghost/redrive", "").await,
        StatusCode::NOT_FOUND,
        "execution_not_found",
    )
    .await;
    assert_eq!(
        api.get("/v1/executions/fine").await.expect(StatusCode::OK)["status"],
        "succeeded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redriving_a_failed_execution_finishes_its_compensation() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("stuck", STUCK_SAGA).await;
    api.start_execution("stuck", json!({}), Some("needs-help"))
        .await;
    let failed = api.finished("needs-help").await;
    assert_eq!(
        failed["status"], "failed",
        "the compensation ran out of attempts: {failed}"
    );

    // Once the participant is healthy again, a redrive finishes the rollback.
    api.svc.healthy.store(true, Ordering::SeqCst);
    let redriven = api
        .post_raw("/v1/executions/needs-help/redrive", "")
        .await
        .expect(StatusCode::OK);
    assert_eq!(redriven["id"], "needs-help");
    assert_ne!(redriven["status"], "failed", "{redriven}");

    let done = api.finished("needs-help").await;
    assert_eq!(done["status"], "compensated", "{done}");
    let events = api.history("needs-help").await;
    let t = types(&events);
    assert!(
        t.contains(&"compensation_failed") && t.contains(&"execution_redriven"),
        "{t:?}"
    );
    assert_eq!(compensated_steps(&events), ["reserve"]);

    // Finished again: a second redrive is refused.
    api.expect_error(
        api.post_raw("/v1/executions/needs-help/redrive", "").await,
        StatusCode::CONFLICT,
        "not_redrivable",
    )
    .await;
}

// ---------------------------------------------------------------------------
// Callbacks
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_step_completes_when_its_token_is_posted_back_as_a_success() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("approval", APPROVAL_SAGA).await;
    api.start_execution("approval", json!({}), Some("approve-me"))
        .await;
    let token = api.next_task_token().await;

    // Parked: still waiting, and a heartbeat says so.
    let parked = api
        .get("/v1/executions/approve-me")
        .await
        .expect(StatusCode::OK);
    assert_eq!(parked["status"], "running", "{parked}");
    let beat = api
        .post_raw(&format!("/v1/callbacks/{token}/heartbeat"), "")
        .await
        .expect(StatusCode::OK);
    assert_eq!(beat["id"], "approve-me");

    // Bad completions are refused, and the step keeps waiting.
    let r = api
        .post_raw(&format!("/v1/callbacks/{token}/success"), "{not json")
        .await;
    api.expect_error(r, StatusCode::BAD_REQUEST, "malformed_json")
        .await;
    let r = api
        .post_raw(&format!("/v1/callbacks/{token}/maybe"), "")
        .await;
    api.expect_error(r, StatusCode::NOT_FOUND, "route_not_found")
        .await;

    let r = api
        .post(
            &format!("/v1/callbacks/{token}/success"),
            json!({"decision": "yes"}),
        )
        .await;
    assert_eq!(r.expect(StatusCode::OK)["id"], "approve-me");
    let done = api.finished("approve-me").await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["output"]["approve"],
        json!({"decision": "yes"}),
        "the callback body is the step's output: {done}"
    );

    // The token is spent.
    let again = api
        .post(&format!("/v1/callbacks/{token}/success"), json!({}))
        .await;
    api.expect_error(again, StatusCode::CONFLICT, "callback_not_waiting")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_failure_rolls_the_saga_back() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("approval", APPROVAL_SAGA).await;
    api.start_execution("approval", json!({}), Some("deny-me"))
        .await;
    let token = api.next_task_token().await;

    let r = api
        .post(
            &format!("/v1/callbacks/{token}/failure"),
            json!({"error": "Denied", "cause": "over budget"}),
        )
        .await;
    r.expect(StatusCode::OK);
    let done = api.finished("deny-me").await;
    assert_eq!(done["status"], "compensated", "{done}");
    assert_eq!(done["error"]["error"], "Denied", "{done}");
    assert!(compensated_steps(&api.history("deny-me").await).contains(&"reserve"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_or_garbled_task_token_is_refused() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    for token in [
        "probe",
        "00",
        "zz",
        // Well formed, naming an execution that does not exist.
        "6e6f626f64790a730a616374696f6e0a31",
    ] {
        let r = api
            .post(&format!("/v1/callbacks/{token}/success"), json!({}))
            .await;
        api.expect_error(r, StatusCode::NOT_FOUND, "invalid_task_token")
            .await;
    }
    let r = api.post_raw("/v1/callbacks/%FF/success", "").await;
    api.expect_error(r, StatusCode::BAD_REQUEST, "invalid_parameter")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_callback_id_of_no_execution_is_not_found_on_the_callback_route() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    // A CallbackId's shape (base64 of `{execution}\n{operation}`, a `/`
    // (percent-encoded in the path) and a 16-digit hex nonce), naming an
    // execution that does not exist: the durable path answers, not the
    // task tokens' one.
    let route = "bm8tc3VjaC1leGVjdXRpb24KMQ"; // "no-such-execution\n1"
    for outcome in ["success", "failure", "heartbeat"] {
        let r = api
            .post_raw(
                &format!("/v1/callbacks/{route}%2F0123456789abcdef/{outcome}"),
                "",
            )
            .await;
        api.expect_error(r, StatusCode::NOT_FOUND, "callback_not_found")
            .await;
    }
    // Its body is checked as a task's is.
    let r = api
        .post_raw(
            &format!("/v1/callbacks/{route}%2F0123456789abcdef/success"),
            "{not json",
        )
        .await;
    api.expect_error(r, StatusCode::BAD_REQUEST, "malformed_json")
        .await;
    let r = api
        .post_raw(
            &format!("/v1/callbacks/{route}%2F0123456789abcdef/maybe"),
            "",
        )
        .await;
    api.expect_error(r, StatusCode::NOT_FOUND, "route_not_found")
        .await;
}

// ---------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_configured_every_route_but_healthz_needs_a_valid_bearer_token() {
    if skip() {
        return;
    }
    let api = Api::with_config(ApiConfig {
        auth_tokens: HashSet::from(["s3cret".to_string()]),
        ..ApiConfig::default()
    })
    .await;

    for path in [
        "/v1/definitions",
        "/v1/executions",
        "/openapi.json",
        "/v1/executions/x/history",
    ] {
        let none = api.get(path).await;
        assert_eq!(
            none.header(header::WWW_AUTHENTICATE),
            Some("Bearer"),
            "a 401 names its scheme"
        );
        api.expect_error(none, StatusCode::UNAUTHORIZED, "missing_token")
            .await;
        let wrong = api
            .send(api.request(Method::GET, path).bearer_auth("guess"))
            .await;
        api.expect_error(wrong, StatusCode::UNAUTHORIZED, "invalid_token")
            .await;
    }
    // A credential of another scheme, or an empty one, is presented but not accepted.
    let basic = api
        .send(
            api.request(Method::GET, "/v1/definitions")
                .basic_auth("user", Some("s3cret")),
        )
        .await;
    api.expect_error(basic, StatusCode::UNAUTHORIZED, "invalid_token")
        .await;
    let empty = api
        .send(
            api.request(Method::GET, "/v1/definitions")
                .header(header::AUTHORIZATION, "Bearer "),
        )
        .await;
    api.expect_error(empty, StatusCode::UNAUTHORIZED, "invalid_token")
        .await;
    let start = api
        .send(
            api.request(Method::POST, "/v1/executions")
                .json(&json!({"definition": "ok"})),
        )
        .await;
    api.expect_error(start, StatusCode::UNAUTHORIZED, "missing_token")
        .await;

    let ok = api
        .send(
            api.request(Method::GET, "/v1/definitions")
                .bearer_auth("s3cret"),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(ok["items"], json!([]));
    // The scheme is case-insensitive (RFC 9110).
    let lower = api
        .send(
            api.request(Method::GET, "/v1/definitions")
                .header(header::AUTHORIZATION, "bearer s3cret"),
        )
        .await;
    lower.expect(StatusCode::OK);
    let put = api
        .request(Method::PUT, "/v1/definitions/ok")
        .bearer_auth("s3cret")
        .body(OK_SAGA);
    api.send(put).await.expect(StatusCode::CREATED);
    let metrics = api
        .http
        .get(api.url("/metrics"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    let metrics = api.http.get(api.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::UNAUTHORIZED);

    // /healthz never needs a token (assert_still_serving calls it without one).
    api.assert_still_serving().await;
}

// ---------------------------------------------------------------------------
// Operations: health, metrics, OpenAPI, unknown routes
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_ok() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    let r = api.get("/healthz").await;
    assert_eq!(
        (r.status, r.body),
        (StatusCode::OK, json!({"status": "ok"}))
    );
}

/// The value of a Prometheus sample line starting with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_started_and_finished_executions() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("ok", OK_SAGA).await;
    api.deploy("rejected", REJECTED_SAGA).await;
    api.start_execution("ok", json!({}), Some("m-1")).await;
    api.start_execution("rejected", json!({}), Some("m-2"))
        .await;
    api.finished("m-1").await;
    api.finished("m-2").await;

    let resp = api.http.get(api.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = resp.text().await.unwrap();

    // The recorder is process-wide: other tests count too, so only lower bounds.
    assert!(
        sample(
            &text,
            "sagaflow_executions_started_total{definition=\"ok\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "sagaflow_executions_started_total{definition=\"rejected\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "sagaflow_executions_finished_total{status=\"succeeded\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "sagaflow_executions_finished_total{status=\"compensated\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(text.contains("sagaflow_active_executions"), "{text}");
    api.assert_still_serving().await;
}

/// Every route the router serves.
const ROUTES: [&str; 18] = [
    "/healthz",
    "/metrics",
    "/openapi.json",
    "/v1/definitions",
    "/v1/definitions/{name}",
    "/v1/definitions/{name}/explain",
    "/v1/definitions/{name}/graph",
    "/v1/executions",
    "/v1/executions/{id}",
    "/v1/executions/{id}/history",
    "/v1/executions/{id}/graph",
    "/v1/executions/{id}/events",
    "/v1/events",
    "/v1/executions/{id}/cancel",
    "/v1/executions/{id}/redrive",
    "/v1/callbacks/{token}/{outcome}",
    "/v1/dead-letters",
    "/v1/dead-letters/{id}/replay",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route_the_router_serves() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    let doc = api.get("/openapi.json").await.expect(StatusCode::OK);
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{doc}"
    );
    let paths = doc["paths"].as_object().expect("paths");
    for route in ROUTES {
        assert!(paths.contains_key(route), "`{route}` is documented");
    }
    assert_eq!(
        paths.len(),
        ROUTES.len(),
        "no route is documented that is not served: {:?}",
        paths.keys().collect::<Vec<_>>()
    );

    // Every documented operation is routed (whatever it answers to a probe,
    // it is not "no such route" or "wrong method").
    for (path, ops) in paths {
        let concrete = path
            .replace("{name}", "probe")
            .replace("{id}", "probe")
            .replace("{token}", "probe")
            .replace("{outcome}", "heartbeat");
        for method in ops
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "parameters")
        {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let resp = api
                .http
                .request(method.clone(), api.url(&concrete))
                .send()
                .await
                .unwrap();
            let status = resp.status();
            // A live stream (`/v1/events`) never ends: its status says enough.
            let streaming = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"));
            let body: Value = if streaming {
                Value::Null
            } else {
                serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null)
            };
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_ne!(body["error"]["code"], "route_not_found", "{method} {path}");
            assert!(status.as_u16() < 500, "{method} {path}: {status} {body}");
        }
    }
}

/// Error answers the tests in this file get from each operation.
const ERRORS: &[(&str, &str, u16, &str)] = &[
    (
        "/v1/executions/{id}/cancel",
        "post",
        500,
        "history_unreplayable",
    ),
    ("/v1/dead-letters", "get", 400, "invalid_limit"),
    ("/v1/dead-letters/{id}/replay", "post", 400, "invalid_id"),
    (
        "/v1/dead-letters/{id}/replay",
        "post",
        404,
        "dead_letter_not_found",
    ),
    ("/v1/definitions/{name}", "put", 400, "invalid_definition"),
    ("/v1/definitions/{name}", "put", 400, "invalid_utf8"),
    ("/v1/definitions/{name}", "put", 413, "payload_too_large"),
    ("/v1/definitions/{name}", "get", 400, "invalid_parameter"),
    ("/v1/definitions/{name}", "get", 404, "definition_not_found"),
    ("/v1/executions", "get", 400, "invalid_parameter"),
    ("/v1/executions", "get", 400, "invalid_cursor"),
    ("/v1/executions", "post", 400, "malformed_json"),
    ("/v1/executions", "post", 400, "invalid_request"),
    ("/v1/executions", "post", 400, "invalid_execution_id"),
    ("/v1/executions", "post", 400, "invalid_parameter"),
    ("/v1/executions", "post", 404, "definition_not_found"),
    ("/v1/executions", "post", 409, "execution_conflict"),
    ("/v1/executions", "post", 413, "payload_too_large"),
    ("/v1/executions/{id}", "get", 400, "invalid_parameter"),
    ("/v1/executions/{id}", "get", 404, "execution_not_found"),
    (
        "/v1/executions/{id}/history",
        "get",
        400,
        "invalid_parameter",
    ),
    (
        "/v1/executions/{id}/history",
        "get",
        404,
        "execution_not_found",
    ),
    ("/v1/executions/{id}/cancel", "post", 400, "malformed_json"),
    ("/v1/executions/{id}/cancel", "post", 400, "invalid_request"),
    (
        "/v1/executions/{id}/cancel",
        "post",
        400,
        "invalid_parameter",
    ),
    (
        "/v1/executions/{id}/cancel",
        "post",
        404,
        "execution_not_found",
    ),
    (
        "/v1/executions/{id}/cancel",
        "post",
        409,
        "execution_finished",
    ),
    ("/v1/executions/{id}/cancel", "post", 409, "past_pivot"),
    (
        "/v1/executions/{id}/redrive",
        "post",
        404,
        "execution_not_found",
    ),
    ("/v1/executions/{id}/redrive", "post", 409, "not_redrivable"),
    (
        "/v1/callbacks/{token}/{outcome}",
        "post",
        400,
        "malformed_json",
    ),
    (
        "/v1/callbacks/{token}/{outcome}",
        "post",
        400,
        "invalid_parameter",
    ),
    (
        "/v1/callbacks/{token}/{outcome}",
        "post",
        404,
        "invalid_task_token",
    ),
    (
        "/v1/callbacks/{token}/{outcome}",
        "post",
        404,
        "route_not_found",
    ),
    (
        "/v1/callbacks/{token}/{outcome}",
        "post",
        409,
        "callback_not_waiting",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_the_error_codes_each_operation_answers_with() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    let doc = api.get("/openapi.json").await.expect(StatusCode::OK);
    for (path, method, status, code) in ERRORS {
        let response = &doc["paths"][path][method]["responses"][status.to_string()];
        let description = response["description"].as_str().unwrap_or_default();
        assert!(
            description.contains(code),
            "{method} {path} documents {status} {code}: {response}"
        );
        assert_eq!(
            response["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/Error",
            "{method} {path} {status}"
        );
    }
    // With authentication on, every route but /healthz can answer 401.
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k != "parameters")
        {
            let unauthorized = op["responses"]["401"]["description"]
                .as_str()
                .unwrap_or_default();
            if path == "/healthz" {
                assert_eq!(op["security"], json!([]), "/healthz needs no token");
            } else {
                assert!(
                    unauthorized.contains("missing_token")
                        && unauthorized.contains("invalid_token"),
                    "{method} {path} documents 401"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_route_is_404_and_a_wrong_method_is_405() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    // (`GET /` is the console's redirect.)
    for path in ["/v2/executions", "/v1/executions/a/b/c", "/v1/nothing"] {
        api.expect_error(
            api.get(path).await,
            StatusCode::NOT_FOUND,
            "route_not_found",
        )
        .await;
    }
    for (method, path) in [
        (Method::DELETE, "/v1/executions"),
        (Method::DELETE, "/v1/definitions/ok"),
        (Method::POST, "/v1/definitions/ok"),
        (Method::PUT, "/v1/executions/x"),
        (Method::GET, "/v1/executions/x/cancel"),
        (Method::GET, "/v1/executions/x/redrive"),
        (Method::POST, "/healthz"),
    ] {
        let r = api.send(api.request(method.clone(), path)).await;
        api.expect_error(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_answers_a_request_still_waiting_on_an_execution_with_its_current_state() {
    if skip() {
        return;
    }
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut api = Api::start().await;
    api.deploy("slow", SLOW_SAGA).await;

    // A client starts an execution and waits as long as the server allows.
    // With `Expect: 100-continue`, the server asks for the body only once the
    // handler runs: from then on the request is in flight.
    let body = json!({"definition": "slow", "execution_id": "long-poll"}).to_string();
    let mut conn = tokio::net::TcpStream::connect(api.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "POST /v1/executions?wait=300 HTTP/1.1\r\nHost: sagaflow\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut continue_line = [0u8; 25];
    tokio::time::timeout(DEADLINE, conn.read_exact(&mut continue_line))
        .await
        .expect("asked for the body")
        .unwrap();
    assert!(
        continue_line.starts_with(b"HTTP/1.1 100 Continue"),
        "{}",
        String::from_utf8_lossy(&continue_line)
    );
    conn.write_all(body.as_bytes()).await.unwrap();
    tokio::time::timeout(DEADLINE, api.svc.entered.notified())
        .await
        .expect("the slow step is called");

    // The server is stopped while the execution is still running.
    let _ = api.stop.take().unwrap().send(());

    // The waiting client is answered with the execution as it stood, and the server stops.
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE, conn.read_to_end(&mut answer))
        .await
        .expect("the waiting request is answered")
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("an HTTP answer: {answer}"));
    assert!(head.trim_start().starts_with("HTTP/1.1 201"), "{answer}");
    let e: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!(
        (e["id"].as_str(), e["status"].as_str()),
        (Some("long-poll"), Some("running")),
        "{e}"
    );
    // The participant answers, so the engine's drain ends too.
    api.svc.open_gate();
    let served = tokio::time::timeout(DEADLINE, api.served.take().unwrap())
        .await
        .expect("serve returns");
    served.unwrap().unwrap();
}

// ---------------------------------------------------------------------------
// The on-failure hook
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_on_failure_hook_retries_until_a_compensated_execution_is_delivered_and_ignores_successes(
) {
    if skip() {
        return;
    }
    let api = Api::with_engine(
        ApiConfig::default(),
        vec![Status::Failed, Status::Compensated],
    )
    .await;
    let hook = HookConfig {
        url: format!("{}/hook", api.svc_url),
        token: Some("hook-token".into()),
        max_attempts: 10,
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(200),
    };
    sagaflow_api::hook::spawn(&api.engine, hook);
    api.deploy("ok", OK_SAGA).await;
    api.deploy("rejected", REJECTED_SAGA).await;

    // A success first: it must not be notified.
    api.start_execution("ok", json!({}), Some("went-fine"))
        .await;
    assert_eq!(api.finished("went-fine").await["status"], "succeeded");
    api.start_execution("rejected", json!({"trip": 9}), Some("rolled-back"))
        .await;
    assert_eq!(api.finished("rolled-back").await["status"], "compensated");

    let delivered = tokio::time::timeout(DEADLINE, async { api.hooks.lock().await.recv().await })
        .await
        .expect("the hook is delivered")
        .expect("a delivery");
    assert_eq!(delivered["event"], "execution.compensated", "{delivered}");
    assert_eq!(delivered["execution"]["id"], "rolled-back");
    assert_eq!(delivered["execution"]["status"], "compensated");
    assert_eq!(delivered["execution"]["input"], json!({"trip": 9}));
    assert_eq!(delivered["execution"]["error"]["error"], "Rejected");

    let seen = api.svc.hook_seen.lock().unwrap().clone();
    assert!(
        seen.len() >= 2,
        "the first delivery was refused and retried: {seen:?}"
    );
    assert!(
        seen.iter()
            .all(|(_, body)| body["execution"]["id"] == "rolled-back"),
        "nothing about the success: {seen:?}"
    );
    assert!(
        seen.iter()
            .all(|(auth, _)| auth.as_deref() == Some("Bearer hook-token")),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_a_replayed_one_is_pending_again() {
    if skip() {
        return;
    }
    let api = Api::with_engine(ApiConfig::default(), vec![Status::Compensated]).await;
    assert_eq!(
        api.get("/v1/dead-letters").await.expect(StatusCode::OK),
        json!({ "dead_letters": [] })
    );
    api.deploy("rejected", REJECTED_SAGA).await;
    api.start_execution("rejected", json!({}), Some("dl-1"))
        .await;
    api.finished("dl-1").await;
    // No hook runs here: the notification waits in the outbox; give it up
    // as the hook would after its last attempt.
    let store = api.engine.store().clone();
    let n = store.pending_notifications(10).await.expect("outbox")[0].clone();
    store
        .bury_notification(sagaflow_store::DeadLetter {
            notification: n.clone(),
            failed_at: 1_700_000_000_000,
            attempts: 12,
            last_error: "the hook answered 503 Service Unavailable".into(),
        })
        .await
        .expect("bury");

    let listed = api.get("/v1/dead-letters").await.expect(StatusCode::OK);
    let dead = &listed["dead_letters"][0];
    assert_eq!(dead["id"], n.id);
    assert_eq!(dead["execution_id"], "dl-1");
    assert_eq!(dead["event"], "execution.compensated");
    assert_eq!(dead["attempts"], 12);
    assert_eq!(
        dead["last_error"],
        "the hook answered 503 Service Unavailable"
    );

    let replayed = api
        .post(&format!("/v1/dead-letters/{}/replay", n.id), json!({}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(replayed["replayed"], n.id);
    assert_eq!(replayed["notification"]["execution_id"], "dl-1");
    let pending = store.pending_notifications(10).await.expect("outbox");
    assert_eq!(pending.len(), 1);
    assert_eq!(json!(pending[0].id), replayed["notification"]["id"]);
    assert_eq!(
        api.get("/v1/dead-letters").await.expect(StatusCode::OK),
        json!({ "dead_letters": [] })
    );

    let again = api
        .post(&format!("/v1/dead-letters/{}/replay", n.id), json!({}))
        .await
        .expect(StatusCode::NOT_FOUND);
    assert_eq!(again["error"]["code"], "dead_letter_not_found");
    let bad = api
        .post("/v1/dead-letters/seven/replay", json!({}))
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(bad["error"]["code"], "invalid_id");
    let bad = api
        .get("/v1/dead-letters?limit=0")
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(bad["error"]["code"], "invalid_limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_that_does_not_replay_is_a_server_error_with_its_own_code() {
    if skip() {
        return;
    }
    let api = Api::start().await;
    api.deploy("ok", OK_SAGA).await;
    // A history its plan cannot produce: a step that succeeded without
    // ever being scheduled (a corrupt or foreign history).
    let event = |at, kind| sagaflow_core::Event { at, kind };
    let events = vec![
        event(
            1_000,
            sagaflow_core::EventKind::ExecutionStarted {
                execution_id: "corrupt".into(),
                definition: "ok".into(),
                version: 1,
                input: json!({}),
                keys: sagaflow_core::KeyScheme::CURRENT,
            },
        ),
        event(
            1_001,
            sagaflow_core::EventKind::StepSucceeded {
                step: "charge".into(),
                attempt: 1,
                output: json!({}),
            },
        ),
    ];
    api.engine
        .store()
        .create_execution(sagaflow_store::Create::new(
            sagaflow_store::ExecutionRecord {
                id: "corrupt".into(),
                definition: "ok".into(),
                version: 1,
                status: Status::Running,
                input: json!({}),
                output: None,
                error: None,
                started_at: 1_000,
                updated_at: 1_001,
                events: 2,
            },
            events,
            Vec::new(),
        ))
        .await
        .expect("create");
    let refused = api
        .post("/v1/executions/corrupt/cancel", json!({}))
        .await
        .expect(StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        refused["error"]["code"], "history_unreplayable",
        "{refused}"
    );
    api.assert_still_serving().await;
}
