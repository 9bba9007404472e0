//! Durable functions on the real engine, without Python: an in-process
//! [`Functions`] host runs a durable function written in Rust against the
//! engine as the SDK would (it reads the invocation event, replays its
//! operations by id, checkpoints through [`Engine::checkpoint`] and answers
//! `{"Status": …}`), and a plain function its chained invokes may call.
//! The other chained-invoke target is an HTTP participant of the resource
//! map (the scripted one of `support`, which records `Idempotency-Key`s).
//!
//! Every case runs on memory, SQLite and PostgreSQL (when `DATABASE_URL`
//! is set); the restart cases only on the stores that survive one.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use sagaflow_core::asl::{ResourceMap, ResourceRule};
use sagaflow_core::durable::{
    self, ChainedInvokeOptions, DurableFunction, Hosting, Operation, OperationAction,
    OperationStatus, OperationType, OperationUpdate,
};
use sagaflow_core::{EventKind, Status};
use sagaflow_runtime::{
    Config, DurableStart, Engine, Error, FunctionAnswer, Functions, LambdaConfig,
};
use sagaflow_store::memory::MemoryStore;
use sagaflow_store::postgres::PostgresStore;
use sagaflow_store::sqlite::SqliteStore;
use sagaflow_store::Store;
use serde_json::{json, Value};
use support::{Participant, Reply, WAIT};
use tokio::sync::Notify;

/// The durable function the host runs.
const ORDER: &str = "order";
/// The plain function the host runs.
const MAILER: &str = "mailer";

/// What the durable function does besides its plain run (step `ids`, chained
/// invoke `pay`, then SUCCEEDED with both results).
#[derive(Clone, Copy, Default, PartialEq)]
enum Twist {
    #[default]
    None,
    /// Answers FAILED (`OrderRejected`) once its step is done.
    Rejects,
    /// The first two invocations fail without an answer.
    ErrsTwice,
    /// Invocation 1 replays its step's checkpoint (same `ClientToken`) and
    /// invocation 2 tries invocation 1's last token.
    ProbesTokens,
    /// Invocation 1 blocks forever before answering.
    BlocksFirst,
    /// Invocation 1 checkpoints its step, then waits for `release` and
    /// checkpoints again with the token it holds.
    WaitsForRelease,
}

/// One invocation as the function saw it.
#[derive(Debug, Clone)]
struct Seen {
    /// `(Id, Type, Status)` of every operation of the event.
    ops: Vec<(String, OperationType, OperationStatus)>,
    /// `pay`'s result, if it had one.
    pay_result: Option<String>,
}

/// The in-process host of `order` (durable) and `mailer` (plain).
struct Host {
    engine: OnceLock<Engine>,
    twist: Twist,
    /// The chained invoke's `FunctionName`.
    target: String,
    invocations: Mutex<Vec<Seen>>,
    /// `mailer`'s calls: (request id, payload).
    mails: Mutex<Vec<(String, String)>>,
    /// What the token probes came to, in order.
    probes: Mutex<Vec<String>>,
    /// The last token invocation 1 held.
    first_token: Mutex<Option<String>>,
    calls: AtomicU32,
    /// Notified when an invocation is about to block.
    blocked: Notify,
    /// Lets a `WaitsForRelease` invocation go on.
    release: Notify,
}

impl Host {
    fn new(twist: Twist, target: &str) -> Arc<Host> {
        Arc::new(Host {
            engine: OnceLock::new(),
            twist,
            target: target.to_string(),
            invocations: Mutex::default(),
            mails: Mutex::default(),
            probes: Mutex::default(),
            first_token: Mutex::default(),
            calls: AtomicU32::new(0),
            blocked: Notify::new(),
            release: Notify::new(),
        })
    }

    fn engine(&self) -> &Engine {
        self.engine.get().expect("the engine is set after build")
    }

    fn seen(&self) -> Vec<Seen> {
        self.invocations.lock().unwrap().clone()
    }

    fn probes(&self) -> Vec<String> {
        self.probes.lock().unwrap().clone()
    }

    /// One invocation of `order`, as the SDK runs it.
    async fn run_order(&self, event: Value) -> FunctionAnswer {
        let number = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let arn = event["DurableExecutionArn"].as_str().expect("an ARN");
        let id = durable::DurableExecutionArn::parse(arn)
            .expect("a valid ARN")
            .invocation_id;
        let mut token = event["CheckpointToken"]
            .as_str()
            .expect("a token")
            .to_string();
        let ops: Vec<Operation> =
            serde_json::from_value(event["InitialExecutionState"]["Operations"].clone())
                .expect("the operations");
        let by_id: HashMap<&str, &Operation> = ops.iter().map(|o| (o.id.as_str(), o)).collect();
        let pay_result = by_id.get("pay").and_then(|o| match &o.details {
            durable::Details::ChainedInvoke(d) => d.result.clone(),
            _ => None,
        });
        self.invocations.lock().unwrap().push(Seen {
            ops: ops
                .iter()
                .map(|o| (o.id.clone(), o.op_type(), o.status))
                .collect(),
            pay_result: pay_result.clone(),
        });

        if self.twist == Twist::ErrsTwice && number <= 2 {
            return FunctionAnswer::Failed {
                error_type: "Sandbox.Timedout".into(),
                error_message: format!("invocation {number} timed out"),
            };
        }
        if self.twist == Twist::BlocksFirst && number == 1 {
            self.blocked.notify_one();
            std::future::pending::<()>().await;
        }
        if self.twist == Twist::ProbesTokens && number == 2 {
            let stale = self.first_token.lock().unwrap().clone().expect("a token");
            let refused = self.engine().checkpoint(&id, &stale, None, vec![]).await;
            self.probes.lock().unwrap().push(refusal(refused));
        }

        // Step `ids`: done once, replayed from then on.
        let ids = match by_id.get("ids") {
            Some(op) => match &op.details {
                durable::Details::Step(d) => d.result.clone().expect("the step's result"),
                _ => panic!("`ids` is a step"),
            },
            None => {
                let result = r#"{"order":7}"#.to_string();
                let mut start =
                    OperationUpdate::new("ids", OperationType::Step, OperationAction::Start);
                start.name = Some("ids".into());
                let mut succeed =
                    OperationUpdate::new("ids", OperationType::Step, OperationAction::Succeed);
                succeed.payload = Some(result.clone());
                let updates = vec![start, succeed];
                let client_token = format!("ct-{number}-ids");
                let reply = self
                    .engine()
                    .checkpoint(&id, &token, Some(client_token.clone()), updates.clone())
                    .await
                    .expect("the step's checkpoint is accepted");
                if self.twist == Twist::ProbesTokens {
                    let again = self
                        .engine()
                        .checkpoint(&id, &token, Some(client_token), updates)
                        .await;
                    self.probes.lock().unwrap().push(match again {
                        Ok(r) if r == reply => "same reply".into(),
                        other => format!("{other:?}"),
                    });
                }
                token = reply.checkpoint_token.expect("a next token");
                result
            }
        };
        *self.first_token.lock().unwrap() = Some(token.clone());

        if self.twist == Twist::WaitsForRelease && number == 1 {
            self.blocked.notify_one();
            self.release.notified().await;
            let late = self.engine().checkpoint(&id, &token, None, vec![]).await;
            self.probes.lock().unwrap().push(refusal(late));
            return respond(json!({"Status": "PENDING"}));
        }
        if self.twist == Twist::Rejects {
            return respond(json!({"Status": "FAILED", "Error": {
                "ErrorType": "OrderRejected", "ErrorMessage": "no stock"}}));
        }

        // Chained invoke `pay`: started once, its outcome read when it ended.
        match by_id.get("pay") {
            None => {
                let mut start = OperationUpdate::new(
                    "pay",
                    OperationType::ChainedInvoke,
                    OperationAction::Start,
                );
                start.name = Some("pay".into());
                start.payload = Some(r#"{"amount":42}"#.into());
                start.chained_invoke_options = Some(ChainedInvokeOptions {
                    function_name: self.target.clone(),
                    tenant_id: None,
                });
                self.engine()
                    .checkpoint(&id, &token, None, vec![start])
                    .await
                    .expect("the chained invoke's start is accepted");
                respond(json!({"Status": "PENDING"}))
            }
            Some(op) if op.status == OperationStatus::Succeeded => {
                let result = format!(
                    r#"{{"ids":{ids},"pay":{}}}"#,
                    pay_result.expect("pay's result")
                );
                respond(json!({"Status": "SUCCEEDED", "Result": result}))
            }
            Some(op) if op.status.is_terminal() => respond(json!({"Status": "FAILED", "Error": {
                "ErrorType": "PaymentFailed", "ErrorMessage": format!("{:?}", op.details)}})),
            Some(_) => respond(json!({"Status": "PENDING"})),
        }
    }
}

fn respond(body: Value) -> FunctionAnswer {
    FunctionAnswer::Response(serde_json::to_vec(&body).expect("JSON"))
}

/// The message of a refused checkpoint (or what came instead).
fn refusal<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::NotAllowed(sagaflow_core::Error::NotAllowed { message, .. })) => message,
        other => format!("not refused: {other:?}"),
    }
}

#[async_trait]
impl Functions for Host {
    fn hosting(&self, function: &str) -> Option<Hosting> {
        match function {
            ORDER => Some(Hosting::Durable),
            MAILER => Some(Hosting::Plain),
            _ => None,
        }
    }

    async fn invoke(&self, function: &str, payload: Vec<u8>, request_id: &str) -> FunctionAnswer {
        match function {
            ORDER => {
                let event = serde_json::from_slice(&payload).expect("the event is JSON");
                self.run_order(event).await
            }
            MAILER => {
                let payload = String::from_utf8(payload).expect("UTF-8");
                self.mails
                    .lock()
                    .unwrap()
                    .push((request_id.to_string(), payload));
                respond(json!({"sent": true}))
            }
            other => FunctionAnswer::Failed {
                error_type: "Sagaflow.FunctionNotHosted".into(),
                error_message: other.to_string(),
            },
        }
    }
}

/// An engine on `store` hosting `host`, whose Lambda functions other than
/// the hosted ones are routes of `participant`.
async fn engine(store: Arc<dyn Store>, host: &Arc<Host>, participant: &Participant) -> Engine {
    let engine = Engine::builder(store)
        .config(Config {
            timer_poll: Duration::from_millis(50),
            resources: ResourceMap {
                rules: vec![ResourceRule {
                    pattern: "arn:aws:lambda:*:*:function:{name}".into(),
                    target: format!("{}/{{name}}", participant.base_url),
                }],
            },
            lambda: LambdaConfig {
                call_timeout: Duration::from_secs(60),
                ..LambdaConfig::default()
            },
            ..Config::default()
        })
        .functions(host.clone())
        .build();
    assert!(host.engine.set(engine.clone()).is_ok(), "one engine a host");
    engine.start().await.expect("engine starts");
    engine
        .deploy_durable(&DurableFunction {
            function_name: ORDER.into(),
            execution_timeout_seconds: 600,
            retention_days: 1,
        })
        .await
        .expect("deploys the durable function");
    engine
}

async fn start(engine: &Engine, name: &str) -> String {
    let started = engine
        .start_durable(DurableStart {
            function: ORDER.into(),
            name: Some(name.into()),
            payload: r#"{"customer":"ada"}"#.into(),
        })
        .await
        .expect("starts");
    assert!(started.created);
    started.record.id
}

async fn finished(engine: &Engine, id: &str) -> sagaflow_store::ExecutionRecord {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let record = engine.wait(id, WAIT).await.expect("waits");
        if record.status.is_terminal() || tokio::time::Instant::now() > deadline {
            return record;
        }
    }
}

/// The durable history's event types (`GetDurableExecutionHistory`).
async fn history(engine: &Engine, id: &str) -> Vec<String> {
    let events = engine.store().load_history(id).await.expect("history");
    let facts = events.iter().filter_map(|e| match &e.kind {
        EventKind::DurableOperation { fact } => Some(durable::Fact::Operation(fact)),
        EventKind::DurableInvocation { fact } => Some(durable::Fact::Invocation(fact)),
        _ => None,
    });
    durable::history(facts, None, true)
        .iter()
        .map(|e| format!("{:?}", e.event_type))
        .collect()
}

/// The outcomes of the execution's completed invocations.
async fn invocation_outcomes(engine: &Engine, id: &str) -> Vec<durable::InvocationOutcome> {
    let events = engine.store().load_history(id).await.expect("history");
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::DurableInvocation {
                fact: durable::InvocationEvent::InvocationCompleted { outcome, .. },
            } => Some(outcome.clone()),
            _ => None,
        })
        .collect()
}

fn error(error_type: &str) -> durable::InvocationOutcome {
    durable::InvocationOutcome::Error {
        error_type: error_type.into(),
        error_message: String::new(),
    }
}

/// Outcomes with their messages blanked, to compare types only.
fn kinds(outcomes: Vec<durable::InvocationOutcome>) -> Vec<durable::InvocationOutcome> {
    outcomes
        .into_iter()
        .map(|o| match o {
            durable::InvocationOutcome::Error { error_type, .. } => error(&error_type),
            other => other,
        })
        .collect()
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
                static CASE: AtomicU32 = AtomicU32::new(0);
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let case = CASE.fetch_add(1, Ordering::Relaxed);
                let prefix = format!("sagaflow_test_{secs}_{}_durable{case}_", std::process::id());
                Some(Backend::Postgres { url, prefix })
            }
            _ => {
                eprintln!("DATABASE_URL is not set: skipping this PostgreSQL case");
                None
            }
        }
    }

    /// The case's store (a restart reopens the same one).
    async fn store(&self) -> Arc<dyn Store> {
        match self {
            Backend::Memory => Arc::new(MemoryStore::new()),
            Backend::Sqlite(dir) => {
                Arc::new(SqliteStore::open(dir.path().join("s.db")).expect("sqlite store"))
            }
            Backend::Postgres { url, prefix } => Arc::new(
                PostgresStore::connect_in_schema(url, &format!("{prefix}0"))
                    .await
                    .expect("connecting to DATABASE_URL"),
            ),
        }
    }

    /// Drops the case's schema.
    async fn clean(&self) {
        let Backend::Postgres { url, prefix } = self else {
            return;
        };
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connecting to DATABASE_URL");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {prefix}0 CASCADE"))
            .await
            .expect("drops the schema");
    }
}

/// The chained invoke's target as the function names it: a participant
/// route through the resource map.
const PAY: &str = "arn:aws:lambda:us-east-1:123456789012:function:pay";

// ---------------------------------------------------------------------------
// 1. A durable execution runs to SUCCEEDED.

async fn runs_to_succeeded(backend: Backend) {
    let participant = Participant::start().await;
    participant.script("/pay", [Reply::ok(json!({"paid": 42}))]);
    let host = Host::new(Twist::None, PAY);
    let engine = engine(backend.store().await, &host, &participant).await;
    let id = start(&engine, "run-1").await;
    let done = finished(&engine, &id).await;
    assert_eq!(done.status, Status::Succeeded, "{done:?}");
    assert_eq!(
        done.output,
        Some(json!({"ids": {"order": 7}, "pay": {"paid": 42}})),
        "the output is the Result JSON"
    );

    // The invocations in order: the first sees only the EXECUTION, the
    // second the step and the chained invoke's answer.
    let seen = host.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        seen[0].ops,
        vec![(
            id.clone(),
            OperationType::Execution,
            OperationStatus::Started
        )]
    );
    assert_eq!(
        seen[1].ops,
        vec![
            (
                id.clone(),
                OperationType::Execution,
                OperationStatus::Started
            ),
            (
                "ids".into(),
                OperationType::Step,
                OperationStatus::Succeeded
            ),
            (
                "pay".into(),
                OperationType::ChainedInvoke,
                OperationStatus::Succeeded
            ),
        ]
    );
    assert_eq!(seen[1].pay_result.as_deref(), Some(r#"{"paid":42}"#));

    // The participant was called once, with the operation's key.
    let calls = participant.calls_to("/pay");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].idempotency_key, format!("{id}:pay"));
    assert_eq!(calls[0].body, json!({"amount": 42}));

    assert_eq!(
        history(&engine, &id).await,
        [
            "ExecutionStarted",
            "StepStarted",
            "StepSucceeded",
            "ChainedInvokeStarted",
            "InvocationCompleted",
            "ChainedInvokeSucceeded",
            "InvocationCompleted",
            "ExecutionSucceeded",
        ]
    );
    engine.shutdown(Duration::from_secs(1)).await;
    backend.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_execution_runs_to_succeeded_in_memory_store() {
    runs_to_succeeded(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_execution_runs_to_succeeded_on_sqlite() {
    runs_to_succeeded(Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_execution_runs_to_succeeded_on_postgres() {
    if let Some(backend) = Backend::postgres() {
        runs_to_succeeded(backend).await;
    }
}

/// A chained invoke of a hosted plain function: one invocation, its answer
/// the operation's result.
async fn calls_a_plain_function(backend: Backend) {
    let participant = Participant::start().await;
    let host = Host::new(Twist::None, MAILER);
    let engine = engine(backend.store().await, &host, &participant).await;
    let id = start(&engine, "plain-1").await;
    let done = finished(&engine, &id).await;
    assert_eq!(done.status, Status::Succeeded, "{done:?}");
    assert_eq!(
        done.output,
        Some(json!({"ids": {"order": 7}, "pay": {"sent": true}}))
    );
    let mails = host.mails.lock().unwrap().clone();
    assert_eq!(
        mails,
        vec![(format!("{id}:pay"), r#"{"amount":42}"#.to_string())]
    );
    assert!(participant.calls().is_empty());
    engine.shutdown(Duration::from_secs(1)).await;
    backend.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chained_invoke_of_a_plain_function_gets_its_answer_in_memory_store() {
    calls_a_plain_function(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chained_invoke_of_a_plain_function_gets_its_answer_on_sqlite() {
    calls_a_plain_function(Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chained_invoke_of_a_plain_function_gets_its_answer_on_postgres() {
    if let Some(backend) = Backend::postgres() {
        calls_a_plain_function(backend).await;
    }
}

// ---------------------------------------------------------------------------
// 2. A function answering FAILED.

async fn answers_failed(backend: Backend) {
    let participant = Participant::start().await;
    let host = Host::new(Twist::Rejects, PAY);
    let engine = engine(backend.store().await, &host, &participant).await;
    let id = start(&engine, "failed-1").await;
    let done = finished(&engine, &id).await;
    assert_eq!(done.status, Status::Failed, "{done:?}");
    let error = done.error.as_ref().expect("an error");
    assert_eq!(error.error, "OrderRejected");
    assert_eq!(error.cause, "no stock");
    assert_eq!(host.seen().len(), 1);
    assert!(participant.calls().is_empty());
    let history = history(&engine, &id).await;
    assert_eq!(history.last().map(String::as_str), Some("ExecutionFailed"));
    engine.shutdown(Duration::from_secs(1)).await;
    backend.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_answering_failed_fails_the_execution_in_memory_store() {
    answers_failed(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_answering_failed_fails_the_execution_on_sqlite() {
    answers_failed(Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_answering_failed_fails_the_execution_on_postgres() {
    if let Some(backend) = Backend::postgres() {
        answers_failed(backend).await;
    }
}

// ---------------------------------------------------------------------------
// 3. A function that errors is retried.

async fn errors_then_succeeds(backend: Backend) {
    let participant = Participant::start().await;
    let host = Host::new(Twist::ErrsTwice, PAY);
    let engine = engine(backend.store().await, &host, &participant).await;
    let id = start(&engine, "retried-1").await;
    let done = finished(&engine, &id).await;
    assert_eq!(done.status, Status::Succeeded, "{done:?}");
    assert_eq!(host.seen().len(), 4);
    assert_eq!(
        kinds(invocation_outcomes(&engine, &id).await),
        vec![
            error("Sandbox.Timedout"),
            error("Sandbox.Timedout"),
            durable::InvocationOutcome::Pending,
            durable::InvocationOutcome::Succeeded,
        ]
    );
    assert_eq!(participant.calls_to("/pay").len(), 1);
    engine.shutdown(Duration::from_secs(1)).await;
    backend.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_that_errors_is_retried_and_then_succeeds_in_memory_store() {
    errors_then_succeeds(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_that_errors_is_retried_and_then_succeeds_on_sqlite() {
    errors_then_succeeds(Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_that_errors_is_retried_and_then_succeeds_on_postgres() {
    if let Some(backend) = Backend::postgres() {
        errors_then_succeeds(backend).await;
    }
}

// ---------------------------------------------------------------------------
// 4. Tokens: a stale one is refused, a retried checkpoint replayed.

async fn tokens(backend: Backend) {
    let participant = Participant::start().await;
    let host = Host::new(Twist::ProbesTokens, PAY);
    let engine = engine(backend.store().await, &host, &participant).await;
    let id = start(&engine, "tokens-1").await;
    let done = finished(&engine, &id).await;
    assert_eq!(done.status, Status::Succeeded, "{done:?}");
    let probes = host.probes();
    assert_eq!(probes.len(), 2, "{probes:?}");
    assert_eq!(probes[0], "same reply", "a retried checkpoint");
    assert!(
        probes[1].starts_with("Invalid checkpoint token"),
        "the previous invocation's token: {}",
        probes[1]
    );
    // The replayed checkpoint recorded nothing twice.
    let history = history(&engine, &id).await;
    assert_eq!(history.iter().filter(|e| *e == "StepStarted").count(), 1);
    engine.shutdown(Duration::from_secs(1)).await;
    backend.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_token_is_refused_and_a_retried_checkpoint_gets_the_same_reply_in_memory_store() {
    tokens(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_token_is_refused_and_a_retried_checkpoint_gets_the_same_reply_on_sqlite() {
    tokens(Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_token_is_refused_and_a_retried_checkpoint_gets_the_same_reply_on_postgres() {
    if let Some(backend) = Backend::postgres() {
        tokens(backend).await;
    }
}

// ---------------------------------------------------------------------------
// 5. Restart.

/// An invocation open when the engine stops is closed as lost after the
/// restart, and the next one completes the execution.
async fn lost_invocation(backend: Backend) {
    let participant = Participant::start().await;
    participant.script("/pay", [Reply::ok(json!({"paid": 42}))]);
    let store = backend.store().await;
    let host = Host::new(Twist::BlocksFirst, PAY);
    let first = engine(store.clone(), &host, &participant).await;
    let id = start(&first, "lost-1").await;
    tokio::time::timeout(WAIT, host.blocked.notified())
        .await
        .expect("the first invocation runs");
    first.shutdown(Duration::from_secs(1)).await;
    drop(first);

    let host = Host::new(Twist::None, PAY);
    let second = engine(store, &host, &participant).await;
    let done = finished(&second, &id).await;
    assert_eq!(done.status, Status::Succeeded, "{done:?}");
    assert_eq!(
        kinds(invocation_outcomes(&second, &id).await),
        vec![
            error("Sagaflow.InvocationLost"),
            durable::InvocationOutcome::Pending,
            durable::InvocationOutcome::Succeeded,
        ]
    );
    assert_eq!(participant.calls_to("/pay").len(), 1);
    second.shutdown(Duration::from_secs(1)).await;
    backend.clean().await;
}

/// A chained invoke called but not answered before the engine stops is
/// called again, with the same key, after the restart.
async fn unanswered_chained_invoke(backend: Backend) {
    let participant = Participant::start().await;
    participant.script(
        "/pay",
        [
            Reply::ok(json!({"paid": 42})).never(),
            Reply::ok(json!({"paid": 42})),
        ],
    );
    let store = backend.store().await;
    let host = Host::new(Twist::None, PAY);
    let first = engine(store.clone(), &host, &participant).await;
    let id = start(&first, "resumed-1").await;
    participant.wait_for_calls("/pay", 1).await;
    first.shutdown(Duration::from_secs(1)).await;
    drop(first);

    let host = Host::new(Twist::None, PAY);
    let second = engine(store, &host, &participant).await;
    let done = finished(&second, &id).await;
    assert_eq!(done.status, Status::Succeeded, "{done:?}");
    let keys: Vec<String> = participant
        .calls_to("/pay")
        .into_iter()
        .map(|c| c.idempotency_key)
        .collect();
    assert_eq!(keys, vec![format!("{id}:pay"), format!("{id}:pay")]);
    assert_eq!(participant.effects_at("/pay"), 1);
    assert_eq!(
        done.output,
        Some(json!({"ids": {"order": 7}, "pay": {"paid": 42}}))
    );
    second.shutdown(Duration::from_secs(1)).await;
    backend.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_lost_in_a_restart_is_closed_and_the_next_completes_on_sqlite() {
    lost_invocation(Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_lost_in_a_restart_is_closed_and_the_next_completes_on_postgres() {
    if let Some(backend) = Backend::postgres() {
        lost_invocation(backend).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chained_invoke_unanswered_at_a_restart_is_called_again_with_its_key_on_sqlite() {
    unanswered_chained_invoke(Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chained_invoke_unanswered_at_a_restart_is_called_again_with_its_key_on_postgres() {
    if let Some(backend) = Backend::postgres() {
        unanswered_chained_invoke(backend).await;
    }
}

// ---------------------------------------------------------------------------
// 6. Names.

async fn names(backend: Backend) {
    let participant = Participant::start().await;
    participant.script("/pay", [Reply::ok(json!({"paid": 42}))]);
    let host = Host::new(Twist::None, PAY);
    let engine = engine(backend.store().await, &host, &participant).await;
    let start = |payload: &str, function: &str| DurableStart {
        function: function.into(),
        name: Some("named-1".into()),
        payload: payload.into(),
    };
    let first = engine
        .start_durable(start(r#"{"n":1}"#, ORDER))
        .await
        .expect("starts");
    assert!(first.created);
    let again = engine
        .start_durable(start(r#"{"n":1}"#, ORDER))
        .await
        .expect("finds it");
    assert!(!again.created);
    assert_eq!(again.record.id, first.record.id);
    assert_eq!(again.arn, first.arn);
    // A checkpoint names its execution by ARN: the id alone does not do,
    // the rest of the ARN must be this execution's too.
    let elsewhere = first.arn.replace("/named-1/", "/named-2/");
    let refused = engine.checkpoint(&elsewhere, "any", None, Vec::new()).await;
    assert!(
        matches!(refused, Err(Error::ExecutionNotFound(_))),
        "{refused:?}"
    );
    let other = engine.start_durable(start(r#"{"n":2}"#, ORDER)).await;
    assert!(
        matches!(other, Err(Error::ExecutionConflict { .. })),
        "{other:?}"
    );
    let unknown = engine.start_durable(start(r#"{"n":1}"#, "nowhere")).await;
    assert!(
        matches!(unknown, Err(Error::FunctionNotFound(_))),
        "{unknown:?}"
    );
    // A plain function is no durable one either.
    let plain = engine.start_durable(start(r#"{"n":1}"#, MAILER)).await;
    assert!(
        matches!(plain, Err(Error::FunctionNotFound(_))),
        "{plain:?}"
    );
    let done = finished(&engine, &first.record.id).await;
    assert_eq!(done.status, Status::Succeeded, "{done:?}");
    // Still the same execution once it has ended.
    let after = engine
        .start_durable(start(r#"{"n":1}"#, ORDER))
        .await
        .expect("finds it");
    assert!(!after.created);
    assert_eq!(after.record.id, first.record.id);
    engine.shutdown(Duration::from_secs(1)).await;
    backend.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_is_used_once_per_function_in_memory_store() {
    names(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_is_used_once_per_function_on_sqlite() {
    names(Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_is_used_once_per_function_on_postgres() {
    if let Some(backend) = Backend::postgres() {
        names(backend).await;
    }
}

// ---------------------------------------------------------------------------
// 7. Stop.

async fn stop(backend: Backend) {
    let participant = Participant::start().await;
    let host = Host::new(Twist::WaitsForRelease, PAY);
    let engine = engine(backend.store().await, &host, &participant).await;
    let id = start(&engine, "stopped-1").await;
    tokio::time::timeout(WAIT, host.blocked.notified())
        .await
        .expect("the first invocation runs");
    let stopped = engine.stop_durable(&id, None).await.expect("stops");
    assert_eq!(stopped.status, Status::Cancelled, "{stopped:?}");
    host.release.notify_one();
    let deadline = tokio::time::Instant::now() + WAIT;
    while host.probes().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no late checkpoint");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let probes = host.probes();
    assert!(
        probes[0].starts_with("Invalid checkpoint token"),
        "a checkpoint after the stop: {}",
        probes[0]
    );
    let record = engine.get(&id).await.expect("the record");
    assert_eq!(record.status, Status::Cancelled);
    assert_eq!(
        history(&engine, &id).await.last().map(String::as_str),
        Some("ExecutionStopped")
    );
    assert!(participant.calls().is_empty());
    engine.shutdown(Duration::from_secs(1)).await;
    backend.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_execution_is_cancelled_and_refuses_later_checkpoints_in_memory_store() {
    stop(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_execution_is_cancelled_and_refuses_later_checkpoints_on_sqlite() {
    stop(Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_execution_is_cancelled_and_refuses_later_checkpoints_on_postgres() {
    if let Some(backend) = Backend::postgres() {
        stop(backend).await;
    }
}
