//! Participant faults: a participant that answers too late, is not there, fails
//! with a burst of 5xx, or performs the effect and loses the answer.
//!
//! The participant is a small axum server that behaves like a careful real
//! service: it executes each `Idempotency-Key` at most once per route and
//! answers a repeated key with the stored answer; calls about one execution
//! are serialized (as a row lock would serialize them), and an execution runs
//! to its end even when the caller hangs up. It counts what it executed per
//! (route, key), and keeps the bookings: a call to `/S/cancel` removes the
//! booking of service `S`, any other call to `/S/...` makes one.
//!
//! Each route follows a script of behaviours, one per call it executes (a
//! replayed key does not use the script); the last one repeats.
//!
//! Outcomes are awaited with `Engine::wait`; every timeout is either the
//! fault being tested (a step's `timeout`) or a test deadline.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use axum::Router;
use sagaflow_core::{EventKind, Status};
use sagaflow_runtime::Engine;
use sagaflow_store::memory::MemoryStore;
use serde_json::{json, Value};
use support::{describe, engine_on, history, WAIT};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

// ---------------------------------------------------------------------------
// The participant

/// A gate a slow execution waits behind until the test opens it.
#[derive(Clone)]
struct Gate(Arc<watch::Sender<bool>>);

impl Gate {
    fn new() -> Gate {
        Gate(Arc::new(watch::channel(false).0))
    }

    fn open(&self) {
        self.0.send_replace(true);
    }

    async fn passed(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|open| *open).await;
    }
}

/// What the participant does with a call whose key it has not executed yet.
#[derive(Clone)]
enum Behaviour {
    /// Executes it and answers `200`.
    Answer,
    /// Answers this 5xx status without executing anything.
    Unavailable(u16),
    /// Executes it once the gate opens (whether or not the caller is still
    /// there), then answers.
    SlowUntil(Gate),
    /// Executes it, stores the answer, and closes the connection without
    /// sending a byte of it.
    LoseAnswer,
}

/// One request the participant received.
#[derive(Clone, Debug)]
struct Call {
    path: String,
    key: String,
    attempt: u32,
}

#[derive(Default)]
struct Book {
    /// Route → (behaviours, calls executed so far).
    scripts: HashMap<String, (Vec<Behaviour>, usize)>,
    calls: Vec<Call>,
    /// The stored answer per (route, key).
    answers: HashMap<(String, String), Value>,
    /// How many times each (route, key) was executed.
    effects: BTreeMap<(String, String), u32>,
    /// (execution, service) currently booked.
    booked: BTreeSet<(String, String)>,
}

struct Inner {
    book: Mutex<Book>,
    arrivals: watch::Sender<usize>,
    /// One lock per execution: its calls are executed one at a time.
    rows: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Inner {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn row(&self, execution: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut rows = self.rows.lock().unwrap_or_else(|p| p.into_inner());
        rows.entry(execution.to_string()).or_default().clone()
    }
}

/// The participant. Clones share its state; [`Participant::serve_on`] starts
/// serving it on a port (again, after an outage).
#[derive(Clone)]
struct Participant {
    inner: Arc<Inner>,
}

impl Participant {
    fn new() -> Participant {
        Participant {
            inner: Arc::new(Inner {
                book: Mutex::new(Book::default()),
                arrivals: watch::channel(0).0,
                rows: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A participant serving on a free port; returns it and its base URL.
    async fn start() -> (Participant, String) {
        let p = Participant::new();
        let url = p.serve_on(0).await;
        (p, url)
    }

    /// Serves on 127.0.0.1:`port` (0: a free one) on the current runtime;
    /// returns the base URL.
    async fn serve_on(&self, port: u16) -> String {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("bind 127.0.0.1:{port}: {e}"));
        let addr = listener.local_addr().expect("local address");
        let app = Router::new()
            .fallback(serve)
            .with_state(self.inner.clone())
            .into_make_service_with_connect_info::<Cut>();
        tokio::spawn(async move {
            let _ = axum::serve(CuttableListener(listener), app).await;
        });
        format!("http://{addr}")
    }

    /// Scripts the behaviours of `path`; unscripted routes always answer.
    fn script(&self, path: &str, behaviours: impl IntoIterator<Item = Behaviour>) {
        let behaviours: Vec<Behaviour> = behaviours.into_iter().collect();
        assert!(!behaviours.is_empty(), "a script needs a behaviour");
        self.inner
            .book()
            .scripts
            .insert(path.to_string(), (behaviours, 0));
    }

    fn calls_to(&self, path: &str) -> Vec<Call> {
        let book = self.inner.book();
        book.calls
            .iter()
            .filter(|c| c.path == path)
            .cloned()
            .collect()
    }

    /// The attempts that reached `path`, in arrival order.
    fn attempts_at(&self, path: &str) -> Vec<u32> {
        self.calls_to(path).iter().map(|c| c.attempt).collect()
    }

    /// Whether every call to `path` carried the same key.
    fn one_key_at(&self, path: &str) -> bool {
        let calls = self.calls_to(path);
        calls.iter().all(|c| c.key == calls[0].key)
    }

    /// How many times `path` executed anything, over all keys.
    fn effects_at(&self, path: &str) -> u32 {
        let book = self.inner.book();
        book.effects
            .iter()
            .filter(|((p, _), _)| p == path)
            .map(|(_, n)| n)
            .sum()
    }

    /// Whether no (route, key) was executed more than once.
    fn each_key_executed_at_most_once(&self) -> bool {
        self.inner.book().effects.values().all(|n| *n <= 1)
    }

    /// The services booked for `execution` now.
    fn booked(&self, execution: &str) -> Vec<String> {
        let book = self.inner.book();
        book.booked
            .iter()
            .filter(|(e, _)| e == execution)
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// Waits until `path` has received at least `n` requests.
    async fn wait_for_calls(&self, path: &str, n: usize) {
        let mut rx = self.inner.arrivals.subscribe();
        let arrived =
            tokio::time::timeout(WAIT, rx.wait_for(|_| self.calls_to(path).len() >= n)).await;
        assert!(
            matches!(arrived, Ok(Ok(_))),
            "{path} did not receive {n} request(s) within {WAIT:?}"
        );
    }
}

/// What an execution of a call comes to.
struct Outcome {
    status: u16,
    body: Value,
    /// Close the connection instead of answering.
    lose: bool,
}

async fn serve(
    State(p): State<Arc<Inner>>,
    ConnectInfo(cut): ConnectInfo<Cut>,
    uri: Uri,
    headers: HeaderMap,
    _body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let call = Call {
        path: uri.path().to_string(),
        key: header("idempotency-key"),
        attempt: header("sagaflow-attempt").parse().unwrap_or(0),
    };
    let execution = header("sagaflow-execution-id");
    p.book().calls.push(call.clone());
    p.arrivals.send_modify(|n| *n += 1);
    // Executed in a task of its own: it runs to its end even if the caller
    // hangs up (and this handler is dropped).
    let outcome = tokio::spawn(execute(p, call, execution))
        .await
        .expect("the execution does not panic");
    if outcome.lose {
        cut.0.store(true, Ordering::SeqCst);
    }
    let status = StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(outcome.body)).into_response()
}

async fn execute(p: Arc<Inner>, call: Call, execution: String) -> Outcome {
    let row = p.row(&execution);
    let _serialized = row.lock().await;
    let id = (call.path.clone(), call.key.clone());
    let behaviour = {
        let mut book = p.book();
        if let Some(answer) = book.answers.get(&id) {
            return Outcome {
                status: 200,
                body: answer.clone(),
                lose: false,
            };
        }
        match book.scripts.get_mut(&call.path) {
            Some((behaviours, n)) => {
                let b = behaviours[(*n).min(behaviours.len() - 1)].clone();
                *n += 1;
                b
            }
            None => Behaviour::Answer,
        }
    };
    let lose = match behaviour {
        Behaviour::Unavailable(status) => {
            return Outcome {
                status,
                body: json!({"message": "unavailable"}),
                lose: false,
            }
        }
        Behaviour::SlowUntil(gate) => {
            gate.passed().await;
            false
        }
        Behaviour::Answer => false,
        Behaviour::LoseAnswer => true,
    };
    // The effect, its answer and its count, all at once.
    let answer = json!({"done": call.path, "by_attempt": call.attempt});
    let mut book = p.book();
    let service = call.path.split('/').nth(1).unwrap_or_default().to_string();
    if call.path.ends_with("/cancel") {
        book.booked.remove(&(execution, service));
    } else {
        book.booked.insert((execution, service));
    }
    *book.effects.entry(id.clone()).or_default() += 1;
    book.answers.insert(id, answer.clone());
    Outcome {
        status: 200,
        body: answer,
        lose,
    }
}

/// A connection the handler can cut: once cut, nothing more is written to
/// it, and the server drops it, so the caller sees it close without an answer.
#[derive(Clone, Debug, Default)]
struct Cut(Arc<AtomicBool>);

struct CuttableListener(TcpListener);

struct CuttableIo {
    stream: TcpStream,
    cut: Cut,
}

impl Listener for CuttableListener {
    type Io = CuttableIo;
    type Addr = Cut;

    async fn accept(&mut self) -> (CuttableIo, Cut) {
        loop {
            match self.0.accept().await {
                Ok((stream, _)) => {
                    let cut = Cut::default();
                    return (
                        CuttableIo {
                            stream,
                            cut: cut.clone(),
                        },
                        cut,
                    );
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Cut> {
        Ok(Cut::default())
    }
}

impl Connected<IncomingStream<'_, CuttableListener>> for Cut {
    fn connect_info(stream: IncomingStream<'_, CuttableListener>) -> Cut {
        stream.remote_addr().clone()
    }
}

impl CuttableIo {
    fn refuse<T>(&self) -> Option<Poll<io::Result<T>>> {
        self.cut
            .0
            .load(Ordering::SeqCst)
            .then(|| Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into())))
    }
}

impl AsyncRead for CuttableIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CuttableIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(refused) = self.refuse() {
            return refused;
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(refused) = self.refuse() {
            return refused;
        }
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(refused) = self.refuse() {
            return refused;
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

// ---------------------------------------------------------------------------
// Helpers

async fn setup() -> (Participant, Arc<MemoryStore>, Engine) {
    let (p, url) = Participant::start().await;
    let store = Arc::new(MemoryStore::new());
    let engine = engine_on(store.clone(), &url).await;
    (p, store, engine)
}

/// Deploys `yaml` and runs one execution of it to its end.
async fn run(engine: &Engine, yaml: &str, id: &str) -> sagaflow_store::ExecutionRecord {
    let deployed = engine.deploy(None, yaml).await.unwrap();
    engine
        .start_execution(&deployed.record.name, json!({}), Some(id.into()))
        .await
        .unwrap();
    engine.wait(id, WAIT).await.unwrap()
}

/// The errors of a step's failed attempts, in order.
fn failures(h: &[EventKind], of: &str) -> Vec<String> {
    h.iter()
        .filter_map(|e| match e {
            EventKind::StepFailed { step, error, .. } if step == of => Some(error.error.clone()),
            _ => None,
        })
        .collect()
}

/// The steps compensated, in order.
fn compensated(h: &[EventKind]) -> Vec<String> {
    h.iter()
        .filter_map(|e| match e {
            EventKind::CompensationSucceeded { step, .. } => Some(step.clone()),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------
// A response slower than the step's timeout

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_slower_than_the_timeout_is_retried_with_its_key_and_the_retry_gets_the_slow_calls_result(
) {
    let (p, store, engine) = setup().await;
    let slow = Gate::new();
    p.script("/hotel/reserve", [Behaviour::SlowUntil(slow.clone())]);
    let id = "slow-then-answered";
    let saga = r#"
name: slow
steps:
  - name: reserve_hotel
    action: { http: { url: "${SVC}/hotel/reserve" } }
    compensation: { http: { url: "${SVC}/hotel/cancel" } }
    timeout: 300ms
    retry: { max_attempts: unlimited, initial_delay: 10ms, max_delay: 50ms }
  - name: take_payment
    pivot: true
    action: { http: { url: "${SVC}/payment/charge" } }
"#;
    let deployed = engine.deploy(None, saga).await.unwrap();
    engine
        .start_execution(&deployed.record.name, json!({}), Some(id.into()))
        .await
        .unwrap();

    // The first call is still working when the engine gives up on it and
    // retries; then the first call finishes.
    p.wait_for_calls("/hotel/reserve", 2).await;
    slow.open();
    let done = engine.wait(id, WAIT).await.unwrap();

    assert_eq!(done.status, Status::Succeeded, "{done:?}");
    assert_eq!(
        done.output.as_ref().map(|o| &o["reserve_hotel"]),
        Some(&json!({"done": "/hotel/reserve", "by_attempt": 1})),
        "the retry was answered with what the slow first call did"
    );
    assert_eq!(p.effects_at("/hotel/reserve"), 1);
    assert!(p.one_key_at("/hotel/reserve"));
    assert!(p.each_key_executed_at_most_once());
    assert_eq!(p.booked(id), ["hotel", "payment"]);
    let h = history(&store, id).await;
    assert_eq!(
        failures(&h, "reserve_hotel").first().map(String::as_str),
        Some("States.Timeout"),
        "{:?}",
        describe(&h)
    );
    assert!(compensated(&h).is_empty(), "{:?}", describe(&h));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_slower_than_its_timeout_on_every_attempt_is_compensated_and_its_late_effect_is_undone_once(
) {
    let (p, store, engine) = setup().await;
    let slow = Gate::new();
    p.script("/hotel/reserve", [Behaviour::SlowUntil(slow.clone())]);
    let id = "slow-for-good";
    let saga = r#"
name: slow
steps:
  - name: reserve_flight
    action: { http: { url: "${SVC}/flight/reserve" } }
    compensation: { http: { url: "${SVC}/flight/cancel" } }
  - name: reserve_hotel
    action: { http: { url: "${SVC}/hotel/reserve" } }
    compensation: { http: { url: "${SVC}/hotel/cancel" } }
    timeout: 200ms
    retry: { max_attempts: 2, initial_delay: 10ms }
  - name: take_payment
    pivot: true
    action: { http: { url: "${SVC}/payment/charge" } }
"#;
    let deployed = engine.deploy(None, saga).await.unwrap();
    engine
        .start_execution(&deployed.record.name, json!({}), Some(id.into()))
        .await
        .unwrap();

    // The hotel's cancellation arrives while its reservation is still being
    // made; the reservation completes, then the cancellation undoes it.
    p.wait_for_calls("/hotel/cancel", 1).await;
    slow.open();
    let done = engine.wait(id, WAIT).await.unwrap();

    assert_eq!(done.status, Status::Compensated, "{done:?}");
    assert_eq!(
        done.error.as_ref().map(|e| e.error.as_str()),
        Some("States.Timeout")
    );
    assert_eq!(p.attempts_at("/hotel/reserve"), [1, 2]);
    assert_eq!(p.effects_at("/hotel/reserve"), 1);
    assert_eq!(p.effects_at("/hotel/cancel"), 1);
    assert_eq!(p.effects_at("/payment/charge"), 0);
    assert!(p.each_key_executed_at_most_once());
    assert!(p.booked(id).is_empty(), "left booked: {:?}", p.booked(id));
    let h = history(&store, id).await;
    assert_eq!(
        compensated(&h),
        ["reserve_hotel", "reserve_flight"],
        "{:?}",
        describe(&h)
    );
}

// ---------------------------------------------------------------------------
// Connection refused

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_that_is_down_is_retried_until_it_is_back_on_its_port_and_the_saga_completes()
{
    // The participant's port is known, but nothing listens on it yet.
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let p = Participant::new();
    let store = Arc::new(MemoryStore::new());
    let engine = engine_on(store.clone(), &format!("http://127.0.0.1:{port}")).await;
    let id = "refused";
    let saga = r#"
name: refused
steps:
  - name: reserve_hotel
    action: { http: { url: "${SVC}/hotel/reserve" } }
    compensation: { http: { url: "${SVC}/hotel/cancel" } }
    retry: { max_attempts: unlimited, initial_delay: 10ms, max_delay: 50ms }
  - name: take_payment
    pivot: true
    action: { http: { url: "${SVC}/payment/charge" } }
"#;
    let deployed = engine.deploy(None, saga).await.unwrap();
    engine
        .start_execution(&deployed.record.name, json!({}), Some(id.into()))
        .await
        .unwrap();

    // Two attempts are refused; then the participant comes up on its port.
    let refused_twice = tokio::time::timeout(WAIT, async {
        while failures(&history(&store, id).await, "reserve_hotel").len() < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(refused_twice.is_ok(), "two attempts were refused");
    p.serve_on(port).await;
    let done = engine.wait(id, WAIT).await.unwrap();

    assert_eq!(done.status, Status::Succeeded, "{done:?}");
    let attempts = p.attempts_at("/hotel/reserve");
    assert_eq!(attempts.len(), 1, "one attempt reached it: {attempts:?}");
    assert!(attempts[0] >= 3, "after the refused ones: {attempts:?}");
    assert_eq!(p.effects_at("/hotel/reserve"), 1);
    assert_eq!(p.booked(id), ["hotel", "payment"]);
    let h = history(&store, id).await;
    let refusals = failures(&h, "reserve_hotel");
    assert!(
        refusals.iter().all(|e| e == "States.TaskFailed"),
        "{refusals:?}"
    );
    assert!(compensated(&h).is_empty(), "{:?}", describe(&h));
}

// ---------------------------------------------------------------------------
// A burst of 5xx

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_five_5xx_within_the_retry_budget_ends_in_one_effect_on_the_sixth_attempt() {
    let (p, store, engine) = setup().await;
    p.script(
        "/hotel/reserve",
        [
            Behaviour::Unavailable(503),
            Behaviour::Unavailable(500),
            Behaviour::Unavailable(502),
            Behaviour::Unavailable(503),
            Behaviour::Unavailable(504),
            Behaviour::Answer,
        ],
    );
    let done = run(
        &engine,
        r#"
name: burst
steps:
  - name: reserve_hotel
    action: { http: { url: "${SVC}/hotel/reserve" } }
    compensation: { http: { url: "${SVC}/hotel/cancel" } }
    retry: { max_attempts: 6, initial_delay: 10ms, max_delay: 20ms }
  - name: take_payment
    pivot: true
    action: { http: { url: "${SVC}/payment/charge" } }
"#,
        "burst",
    )
    .await;

    assert_eq!(done.status, Status::Succeeded, "{done:?}");
    assert_eq!(p.attempts_at("/hotel/reserve"), [1, 2, 3, 4, 5, 6]);
    assert!(p.one_key_at("/hotel/reserve"));
    assert_eq!(p.effects_at("/hotel/reserve"), 1);
    assert_eq!(p.booked("burst"), ["hotel", "payment"]);
    let h = history(&store, "burst").await;
    assert_eq!(failures(&h, "reserve_hotel"), ["States.TaskFailed"; 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_5xx_longer_than_the_retry_budget_rolls_back_without_compensating_the_step_that_did_nothing(
) {
    let (p, store, engine) = setup().await;
    p.script("/hotel/reserve", [Behaviour::Unavailable(503)]);
    let done = run(
        &engine,
        r#"
name: burst
steps:
  - name: reserve_flight
    action: { http: { url: "${SVC}/flight/reserve" } }
    compensation: { http: { url: "${SVC}/flight/cancel" } }
  - name: reserve_hotel
    action: { http: { url: "${SVC}/hotel/reserve" } }
    compensation: { http: { url: "${SVC}/hotel/cancel" } }
    retry: { max_attempts: 5, initial_delay: 10ms, max_delay: 20ms }
  - name: take_payment
    pivot: true
    action: { http: { url: "${SVC}/payment/charge" } }
"#,
        "burst-too-long",
    )
    .await;

    assert_eq!(done.status, Status::Compensated, "{done:?}");
    assert_eq!(
        done.error.as_ref().map(|e| e.error.as_str()),
        Some("States.TaskFailed")
    );
    assert_eq!(p.attempts_at("/hotel/reserve"), [1, 2, 3, 4, 5]);
    assert_eq!(p.effects_at("/hotel/reserve"), 0);
    assert!(p.calls_to("/hotel/cancel").is_empty());
    assert_eq!(p.effects_at("/flight/cancel"), 1);
    assert!(p.booked("burst-too-long").is_empty());
    let h = history(&store, "burst-too-long").await;
    assert_eq!(compensated(&h), ["reserve_flight"], "{:?}", describe(&h));
}

// ---------------------------------------------------------------------------
// A lost response: the effect happened, the answer never arrived

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_whose_answer_is_lost_is_retried_with_its_key_gets_the_stored_result_and_happened_once(
) {
    let (p, store, engine) = setup().await;
    p.script("/payment/charge", [Behaviour::LoseAnswer]);
    let done = run(
        &engine,
        r#"
name: lost
steps:
  - name: reserve_hotel
    action: { http: { url: "${SVC}/hotel/reserve" } }
    compensation: { http: { url: "${SVC}/hotel/cancel" } }
  - name: take_payment
    pivot: true
    action: { http: { url: "${SVC}/payment/charge" } }
    retry: { initial_delay: 10ms }
  - name: confirm_hotel
    action: { http: { url: "${SVC}/hotel/confirm" } }
"#,
        "lost-answer",
    )
    .await;

    assert_eq!(done.status, Status::Succeeded, "{done:?}");
    assert_eq!(
        done.output.as_ref().map(|o| &o["take_payment"]),
        Some(&json!({"done": "/payment/charge", "by_attempt": 1})),
        "the retry was answered with what the first call did"
    );
    assert_eq!(p.attempts_at("/payment/charge"), [1, 2]);
    assert!(p.one_key_at("/payment/charge"));
    assert_eq!(p.effects_at("/payment/charge"), 1, "one payment");
    assert!(p.each_key_executed_at_most_once());
    let h = history(&store, "lost-answer").await;
    assert_eq!(
        failures(&h, "take_payment"),
        ["Sagaflow.ResponseLost"],
        "{:?}",
        describe(&h)
    );
    assert!(compensated(&h).is_empty(), "{:?}", describe(&h));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compensation_whose_answer_is_lost_is_retried_with_its_key_and_undoes_once() {
    let (p, store, engine) = setup().await;
    p.script("/flight/cancel", [Behaviour::LoseAnswer]);
    p.script("/hotel/reserve", [Behaviour::Unavailable(503)]);
    let done = run(
        &engine,
        r#"
name: lost
steps:
  - name: reserve_flight
    action: { http: { url: "${SVC}/flight/reserve" } }
    compensation:
      http: { url: "${SVC}/flight/cancel" }
      retry: { initial_delay: 10ms }
  - name: reserve_hotel
    action: { http: { url: "${SVC}/hotel/reserve" } }
    compensation: { http: { url: "${SVC}/hotel/cancel" } }
    retry: { max_attempts: 1 }
  - name: take_payment
    pivot: true
    action: { http: { url: "${SVC}/payment/charge" } }
"#,
        "lost-undo",
    )
    .await;

    assert_eq!(done.status, Status::Compensated, "{done:?}");
    assert_eq!(p.attempts_at("/flight/cancel"), [1, 2]);
    assert!(p.one_key_at("/flight/cancel"));
    assert_eq!(p.effects_at("/flight/reserve"), 1);
    assert_eq!(p.effects_at("/flight/cancel"), 1, "one cancellation");
    assert!(p.each_key_executed_at_most_once());
    assert!(p.booked("lost-undo").is_empty());
    let h = history(&store, "lost-undo").await;
    assert_eq!(compensated(&h), ["reserve_flight"], "{:?}", describe(&h));
    assert!(
        h.iter().any(|e| matches!(e,
            EventKind::CompensationFailed { step, error, .. }
                if step == "reserve_flight" && error.error == "Sagaflow.ResponseLost")),
        "{:?}",
        describe(&h)
    );
}

// ---------------------------------------------------------------------------
// A lost response on the last attempt. A lost answer (the request was sent,
// the connection closed before the answer) is `Sagaflow.ResponseLost`, not a
// refused connection's `States.TaskFailed`: like a timeout, it leaves the
// outcome unknown, so the step is compensated, and a pivot stops for a human.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_whose_last_answer_is_lost_is_compensated_because_its_effect_may_have_happened() {
    let (p, store, engine) = setup().await;
    p.script("/hotel/reserve", [Behaviour::LoseAnswer]);
    let done = run(
        &engine,
        r#"
name: lost
steps:
  - name: reserve_flight
    action: { http: { url: "${SVC}/flight/reserve" } }
    compensation: { http: { url: "${SVC}/flight/cancel" } }
  - name: reserve_hotel
    action: { http: { url: "${SVC}/hotel/reserve" } }
    compensation: { http: { url: "${SVC}/hotel/cancel" } }
    retry: { max_attempts: 1 }
  - name: take_payment
    pivot: true
    action: { http: { url: "${SVC}/payment/charge" } }
"#,
        "lost-last",
    )
    .await;

    assert_eq!(done.status, Status::Compensated, "{done:?}");
    assert_eq!(p.effects_at("/hotel/reserve"), 1);
    let h = history(&store, "lost-last").await;
    assert_eq!(
        compensated(&h),
        ["reserve_hotel", "reserve_flight"],
        "{:?}",
        describe(&h)
    );
    assert!(
        p.booked("lost-last").is_empty(),
        "left booked: {:?}",
        p.booked("lost-last")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pivot_whose_last_answer_is_lost_stops_failed_instead_of_rolling_back_around_its_effect()
{
    let (p, store, engine) = setup().await;
    p.script("/payment/charge", [Behaviour::LoseAnswer]);
    let done = run(
        &engine,
        r#"
name: lost
steps:
  - name: reserve_hotel
    action: { http: { url: "${SVC}/hotel/reserve" } }
    compensation: { http: { url: "${SVC}/hotel/cancel" } }
  - name: take_payment
    pivot: true
    action: { http: { url: "${SVC}/payment/charge" } }
    retry: { max_attempts: 1 }
"#,
        "lost-pivot",
    )
    .await;

    // As for a pivot that timed out: stop and let an operator redrive it
    // (the same key returns the payment), rather than undo the hotel while
    // the customer has paid.
    assert_eq!(done.status, Status::Failed, "{done:?}");
    assert_eq!(p.effects_at("/payment/charge"), 1);
    let h = history(&store, "lost-pivot").await;
    assert!(compensated(&h).is_empty(), "{:?}", describe(&h));
    assert_eq!(p.booked("lost-pivot"), ["hotel", "payment"]);
}
