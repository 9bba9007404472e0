//! Property: whatever the saga's shape, wherever it fails and wherever the
//! node crashes, every effect happens at most once and the rollback is exact.
//!
//! Random sagas (1–4 stages, parallel groups of 1–3 branches, steps with or
//! without a compensation, an optional pivot followed by retriable steps) run
//! on in-process handlers whose behaviour is looked up by `request.step`:
//! at most one step fails with a business error, some actions fail
//! transiently a few times before taking effect, and compensations fail
//! transiently a few times before succeeding. A ledger records effects,
//! deduplicated by `request.idempotency_key` as a real participant would.
//!
//! Crashes: the store is wrapped in a [`CrashingStore`] that, after N
//! successful appends, refuses every write (the node's actor then retries
//! forever: it is frozen). The test then drops the node's runtime
//! (`shutdown_background`) and starts a new node on the surviving inner
//! store, which resumes the execution from its history. N ranges over
//! `0..=T`, T being the number of appends of an uncrashed run.
//!
//! An ASL machine goes through the same crashes: a trip booked with a
//! Parallel (one branch behind a Wait), a Map over the extras, Retry of
//! busy participants and a Catch that cancels everything — once without a
//! refusal, once with the payment declined, once with an extra declined.
//! Every crashed run must end as the uncrashed one did.
//!
//! Seeds: the run's proptest seed is printed (replay with
//! `PROPTEST_RNG_SEED=…`); failing cases are persisted by proptest; each case
//! carries its own `seed`, printed in every assertion message.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as ProptestConfig, RngSeed, TestRunner};
use sagaflow_core::asl::{ResourceMap, ResourceRule};
use sagaflow_core::error_name::TASK_FAILED;
use sagaflow_core::event::Millis;
use sagaflow_core::{ErrorInfo, Event, EventKind, Execution, Request, Status, TaskKind};
use sagaflow_runtime::{handler_fn, Config, Engine};
use sagaflow_store::memory::MemoryStore;
use sagaflow_store::{
    Append, Create, Created, DefinitionRecord, Error as StoreError, ExecutionRecord, Executor,
    HistoryEntry, ListFilter, Notification, Page, Query, Result as StoreResult, Store, Timer,
};
use serde_json::{json, Value};
use tokio::runtime::Runtime;
use tokio::sync::watch;

const ID: &str = "prop-1";
const NAME: &str = "prop";
/// A test deadline, not an expectation of speed.
const WAIT: Duration = Duration::from_secs(30);
/// Crash points tried per case when there are more than this many.
const MAX_CRASH_POINTS: u64 = 16;

// ---------------------------------------------------------------- the sagas

#[derive(Clone, Debug)]
struct StepSpec {
    name: String,
    stage: usize,
    compensation: bool,
    /// Transient failures of the action before it takes effect.
    flaky: u32,
    /// Transient failures of the compensation before it takes effect.
    undo_flaky: u32,
}

#[derive(Clone, Debug)]
struct Saga {
    /// Each stage: one step, or the branches of a parallel group.
    stages: Vec<(bool, Vec<StepSpec>)>,
    pivot: Option<usize>,
    /// The step that fails with a business error (at or before the pivot).
    failing: Option<String>,
    seed: u64,
}

impl Saga {
    fn steps(&self) -> impl Iterator<Item = &StepSpec> {
        self.stages.iter().flat_map(|(_, s)| s.iter())
    }

    fn step(&self, name: &str) -> &StepSpec {
        self.steps().find(|s| s.name == name).expect("known step")
    }

    fn failing_stage(&self) -> Option<usize> {
        self.failing.as_ref().map(|f| self.step(f).stage)
    }

    fn definition(&self) -> String {
        let retry = json!({"initial_delay": "1ms", "max_delay": "5ms"});
        let step = |s: &StepSpec| {
            let mut v = json!({
                "name": s.name,
                "action": {"handler": "act"},
                "retry": retry,
            });
            if s.compensation {
                v["compensation"] = json!({"handler": "undo", "retry": retry});
            }
            if self.pivot == Some(s.stage) {
                v["pivot"] = json!(true);
            }
            v
        };
        let steps: Vec<Value> = self
            .stages
            .iter()
            .enumerate()
            .map(|(i, (parallel, branches))| {
                if *parallel {
                    json!({"parallel": {
                        "name": format!("g{i}"),
                        "branches": branches.iter().map(step).collect::<Vec<_>>(),
                    }})
                } else {
                    step(&branches[0])
                }
            })
            .collect();
        json!({"name": NAME, "steps": steps}).to_string()
    }
}

/// SplitMix64: the case's own deterministic randomness.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

type RawStage = (bool, usize, Vec<bool>);

fn build_saga(raw: Vec<RawStage>, pivot: Option<Index>, failing: Option<Index>, seed: u64) -> Saga {
    let mut mix = Mix(seed);
    let pivot = pivot.map(|p| p.index(raw.len()));
    let mut stages = Vec::new();
    for (i, (parallel, width, comps)) in raw.into_iter().enumerate() {
        // The pivot is a step of its own.
        let parallel = parallel && pivot != Some(i);
        let width = if parallel { width } else { 1 };
        let after_pivot = pivot.is_some_and(|p| i > p);
        let steps = (0..width)
            .map(|j| {
                let compensation = comps[j] && pivot.is_none_or(|p| i < p);
                StepSpec {
                    name: if parallel {
                        format!("s{i}_{j}")
                    } else {
                        format!("s{i}")
                    },
                    stage: i,
                    compensation,
                    // Forward steps get 3 attempts; retriable ones unlimited.
                    flaky: match mix.below(4) {
                        0 if after_pivot => 3,
                        0 | 1 => mix.below(3) as u32,
                        _ => 0,
                    },
                    undo_flaky: if mix.below(2) == 0 {
                        mix.below(4) as u32
                    } else {
                        0
                    },
                }
            })
            .collect();
        stages.push((parallel, steps));
    }
    let mut saga = Saga {
        stages,
        pivot,
        failing: None,
        seed,
    };
    let candidates: Vec<String> = saga
        .steps()
        .filter(|s| saga.pivot.is_none_or(|p| s.stage <= p))
        .map(|s| s.name.clone())
        .collect();
    saga.failing = failing.map(|f| f.get(&candidates).clone());
    saga
}

fn sagas() -> impl Strategy<Value = Saga> {
    let stage = (
        any::<bool>(),
        1usize..=3,
        prop::collection::vec(prop::bool::weighted(0.75), 3),
    );
    (
        prop::collection::vec(stage, 1..=4),
        prop::option::weighted(0.5, any::<Index>()),
        prop::option::weighted(0.7, any::<Index>()),
        any::<u64>(),
    )
        .prop_map(|(raw, pivot, failing, seed)| build_saga(raw, pivot, failing, seed))
}

// ---------------------------------------------------------------- the participants

#[derive(Default, Clone, Debug)]
struct Book {
    /// First successful answer per idempotency key.
    answered: HashMap<String, Value>,
    /// Effects in the order they happened.
    effects: Vec<(TaskKind, String)>,
    /// Calls per idempotency key (deliveries, not effects).
    calls: HashMap<String, u32>,
    /// Keys seen per step and task kind: one key each, whatever happens.
    keys: HashMap<(TaskKind, String), Vec<String>>,
}

#[derive(Default)]
struct Ledger(Mutex<Book>);

impl Ledger {
    fn book(&self) -> MutexGuard<'_, Book> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One participant call: replays a known key, otherwise fails as scripted
    /// or takes effect and remembers the answer.
    fn call(&self, saga: &Saga, req: &Request) -> Result<Value, ErrorInfo> {
        let mut b = self.book();
        *b.calls.entry(req.idempotency_key.clone()).or_default() += 1;
        let keys = b.keys.entry((req.task, req.step.clone())).or_default();
        if !keys.contains(&req.idempotency_key) {
            keys.push(req.idempotency_key.clone());
        }
        if let Some(answer) = b.answered.get(&req.idempotency_key) {
            return Ok(answer.clone());
        }
        let spec = saga.step(&req.step);
        let flaky = match req.task {
            TaskKind::Action => {
                if saga.failing.as_deref() == Some(req.step.as_str()) {
                    return Err(ErrorInfo::new("Boom", format!("{} refuses", req.step)));
                }
                spec.flaky
            }
            TaskKind::Compensation => spec.undo_flaky,
        };
        if req.attempt <= flaky {
            return Err(ErrorInfo::new(
                TASK_FAILED,
                format!("flaky attempt {}", req.attempt),
            ));
        }
        let answer = json!({"step": req.step, "task": req.task.as_str(), "attempt": req.attempt});
        b.effects.push((req.task, req.step.clone()));
        b.answered
            .insert(req.idempotency_key.clone(), answer.clone());
        Ok(answer)
    }
}

fn engine(store: Arc<dyn sagaflow_store::Store>, saga: &Arc<Saga>, ledger: &Arc<Ledger>) -> Engine {
    let handler = |saga: Arc<Saga>, ledger: Arc<Ledger>| {
        handler_fn(move |req: Request| {
            let (saga, ledger) = (saga.clone(), ledger.clone());
            async move {
                // Let other tasks run in between, for varied interleavings.
                tokio::task::yield_now().await;
                ledger.call(&saga, &req)
            }
        })
    };
    Engine::builder(store)
        .handler("act", handler(saga.clone(), ledger.clone()))
        .handler("undo", handler(saga.clone(), ledger.clone()))
        .config(Config {
            timer_poll: Duration::from_millis(50),
            ..Config::default()
        })
        .build()
}

// ---------------------------------------------------------------- the crashing store

/// Delegates to a [`MemoryStore`]; after `budget` successful appends it
/// refuses every write, as if the node had lost its disk.
struct CrashingStore {
    inner: Arc<MemoryStore>,
    budget: Option<u64>,
    appended: AtomicU64,
    dead: watch::Sender<bool>,
}

impl CrashingStore {
    fn new(inner: Arc<MemoryStore>, budget: Option<u64>) -> Self {
        CrashingStore {
            inner,
            budget,
            appended: AtomicU64::new(0),
            dead: watch::channel(false).0,
        }
    }

    fn is_dead(&self) -> bool {
        *self.dead.borrow()
    }

    fn alive(&self) -> StoreResult<()> {
        if self.is_dead() {
            Err(StoreError::Backend(
                "injected crash: writes are refused".into(),
            ))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Executor for CrashingStore {
    async fn put_definition(
        &self,
        name: &str,
        format: &str,
        source: &str,
        digest: &str,
        now: Millis,
    ) -> StoreResult<(DefinitionRecord, bool)> {
        self.alive()?;
        self.inner
            .put_definition(name, format, source, digest, now)
            .await
    }

    async fn get_definition(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> StoreResult<DefinitionRecord> {
        self.inner.get_definition(name, version).await
    }

    async fn delete_definition(&self, name: &str) -> StoreResult<bool> {
        self.alive()?;
        self.inner.delete_definition(name).await
    }

    async fn definition_tags(&self, name: &str) -> StoreResult<sagaflow_store::Tags> {
        self.alive()?;
        self.inner.definition_tags(name).await
    }

    async fn tag_definition(
        &self,
        name: &str,
        set: &sagaflow_store::Tags,
        remove: &[String],
        max: usize,
    ) -> StoreResult<Option<sagaflow_store::Tags>> {
        self.alive()?;
        self.inner.tag_definition(name, set, remove, max).await
    }

    async fn publish_version(
        &self,
        name: &str,
        version: u32,
        description: &str,
        now: Millis,
    ) -> StoreResult<(sagaflow_store::PublishedVersion, bool)> {
        self.alive()?;
        self.inner
            .publish_version(name, version, description, now)
            .await
    }

    async fn published_versions(
        &self,
        name: &str,
    ) -> StoreResult<Vec<sagaflow_store::PublishedVersion>> {
        self.inner.published_versions(name).await
    }

    async fn unpublish_version(
        &self,
        name: &str,
        version: u32,
    ) -> StoreResult<sagaflow_store::Unpublish> {
        self.alive()?;
        self.inner.unpublish_version(name, version).await
    }

    async fn put_alias(
        &self,
        alias: &sagaflow_store::AliasRecord,
        create: bool,
    ) -> StoreResult<sagaflow_store::AliasWrite> {
        self.alive()?;
        self.inner.put_alias(alias, create).await
    }

    async fn definition_aliases(
        &self,
        name: &str,
    ) -> StoreResult<Vec<sagaflow_store::AliasRecord>> {
        self.inner.definition_aliases(name).await
    }

    async fn delete_alias(&self, name: &str, alias: &str) -> StoreResult<bool> {
        self.alive()?;
        self.inner.delete_alias(name, alias).await
    }

    async fn record_execution_origin(&self, id: &str, qualifier: &str) -> StoreResult<()> {
        self.alive()?;
        self.inner.record_execution_origin(id, qualifier).await
    }

    async fn execution_origin(&self, id: &str) -> StoreResult<Option<String>> {
        self.inner.execution_origin(id).await
    }

    async fn create_activity(
        &self,
        name: &str,
        tags: &sagaflow_store::Tags,
        now: Millis,
    ) -> StoreResult<(sagaflow_store::ActivityRecord, bool)> {
        self.alive()?;
        self.inner.create_activity(name, tags, now).await
    }

    async fn get_activity(
        &self,
        name: &str,
    ) -> StoreResult<Option<sagaflow_store::ActivityRecord>> {
        self.inner.get_activity(name).await
    }

    async fn list_activities(&self) -> StoreResult<Vec<sagaflow_store::ActivityRecord>> {
        self.inner.list_activities().await
    }

    async fn delete_activity(&self, name: &str) -> StoreResult<bool> {
        self.alive()?;
        self.inner.delete_activity(name).await
    }

    async fn tag_activity(
        &self,
        name: &str,
        set: &sagaflow_store::Tags,
        remove: &[String],
        max: usize,
    ) -> StoreResult<Option<sagaflow_store::Tags>> {
        self.alive()?;
        self.inner.tag_activity(name, set, remove, max).await
    }

    async fn offer_activity_task(
        &self,
        offer: &sagaflow_store::ActivityOffer,
    ) -> StoreResult<bool> {
        self.alive()?;
        self.inner.offer_activity_task(offer).await
    }

    async fn activity_offers(
        &self,
        activity: &str,
        now: sagaflow_core::event::Millis,
        limit: usize,
    ) -> StoreResult<Vec<sagaflow_store::ActivityOffer>> {
        self.alive()?;
        self.inner.activity_offers(activity, now, limit).await
    }

    async fn claim_activity_task(
        &self,
        claim: &sagaflow_store::ActivityTaskClaim,
    ) -> StoreResult<bool> {
        self.alive()?;
        self.inner.claim_activity_task(claim).await
    }

    async fn forget_activity_task(&self, token: &str) -> StoreResult<()> {
        self.alive()?;
        self.inner.forget_activity_task(token).await
    }

    async fn create_execution(&self, create: Create) -> StoreResult<Created> {
        self.alive()?;
        self.inner.create_execution(create).await
    }

    async fn append(&self, append: Append) -> StoreResult<u64> {
        self.alive()?;
        // One execution, one actor: appends never race each other here.
        if self
            .budget
            .is_some_and(|b| self.appended.load(Ordering::SeqCst) >= b)
        {
            self.dead.send_replace(true);
            return self.alive().map(|_| 0);
        }
        let v = self.inner.append(append).await?;
        self.appended.fetch_add(1, Ordering::SeqCst);
        Ok(v)
    }

    async fn claim_due_timers(&self, now: Millis, limit: usize) -> StoreResult<Vec<Timer>> {
        self.alive()?;
        self.inner.claim_due_timers(now, limit).await
    }

    async fn unfinished(&self) -> StoreResult<Vec<ExecutionRecord>> {
        self.inner.unfinished().await
    }

    async fn load_history(&self, id: &str) -> StoreResult<Vec<Event>> {
        self.inner.load_history(id).await
    }

    async fn pending_notifications(&self, limit: usize) -> StoreResult<Vec<Notification>> {
        self.inner.pending_notifications(limit).await
    }

    async fn ack_notification(&self, id: u64) -> StoreResult<()> {
        self.alive()?;
        self.inner.ack_notification(id).await
    }

    async fn bury_notification(&self, dead: sagaflow_store::DeadLetter) -> StoreResult<()> {
        self.alive()?;
        self.inner.bury_notification(dead).await
    }

    async fn dead_letters(&self, limit: usize) -> StoreResult<Vec<sagaflow_store::DeadLetter>> {
        self.alive()?;
        self.inner.dead_letters(limit).await
    }

    async fn replay_dead_letter(
        &self,
        id: u64,
    ) -> StoreResult<Option<sagaflow_store::Notification>> {
        self.alive()?;
        self.inner.replay_dead_letter(id).await
    }
}

#[async_trait]
impl Query for CrashingStore {
    async fn get_execution(&self, id: &str) -> StoreResult<ExecutionRecord> {
        self.inner.get_execution(id).await
    }

    async fn list_executions(&self, filter: &ListFilter) -> StoreResult<Page> {
        self.inner.list_executions(filter).await
    }

    async fn history_page(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<HistoryEntry>> {
        self.inner.history_page(id, after, limit).await
    }

    async fn list_definitions(&self) -> StoreResult<Vec<DefinitionRecord>> {
        self.inner.list_definitions().await
    }
}

// ---------------------------------------------------------------- one run

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

struct Run {
    budget: Option<u64>,
    crashed: bool,
    appends: u64,
    record: ExecutionRecord,
    history: Vec<EventKind>,
    book: Book,
}

/// Runs the saga through [`crash_run`], its participants keeping a fresh ledger.
fn run(saga: &Arc<Saga>, budget: Option<u64>) -> Run {
    let ledger = Arc::new(Ledger::default());
    let node = |store: Arc<dyn Store>| engine(store, saga, &ledger);
    let definition = saga.definition();
    let case = Case {
        node: &node,
        deploy_as: None,
        name: NAME,
        definition: &definition,
        input: json!({"order": 7}),
        about: format!("seed={} saga={saga:?}", saga.seed),
    };
    let crashed = crash_run(&case, budget);
    let book = ledger.book().clone();
    Run {
        budget,
        crashed: crashed.crashed,
        appends: crashed.appends,
        record: crashed.record,
        history: crashed.history.into_iter().map(|e| e.kind).collect(),
        book,
    }
}

/// One execution to run through [`crash_run`].
struct Case<'a> {
    /// Builds a node (an engine with its participants) on a store.
    node: &'a dyn Fn(Arc<dyn Store>) -> Engine,
    /// The name to deploy the definition under (an ASL machine has none of its own).
    deploy_as: Option<&'a str>,
    /// The definition's name, to start it by.
    name: &'a str,
    definition: &'a str,
    input: Value,
    /// What the case is, for assertion messages.
    about: String,
}

/// What became of an execution run through [`crash_run`].
struct Crashed {
    crashed: bool,
    appends: u64,
    record: ExecutionRecord,
    history: Vec<Event>,
}

/// Runs the execution on a node whose store dies after `budget` appends; if
/// it died, crashes the node and finishes the execution on a fresh one.
fn crash_run(case: &Case<'_>, budget: Option<u64>) -> Crashed {
    let inner = Arc::new(MemoryStore::new());
    let store = Arc::new(CrashingStore::new(inner.clone(), budget));
    let ctx = || format!("budget={budget:?} {}", case.about);

    let rt1 = runtime();
    let node1 = (case.node)(store.clone());
    let finished = rt1.block_on(async {
        node1.start().await.expect("node 1 starts");
        node1
            .deploy(case.deploy_as, case.definition)
            .await
            .expect("definition deploys");
        node1
            .start_execution(case.name, case.input.clone(), Some(ID.into()))
            .await
            .expect("execution starts");
        let mut dead = store.dead.subscribe();
        tokio::select! {
            r = node1.wait(ID, WAIT) => r.expect("wait").status.is_terminal(),
            _ = dead.wait_for(|d| *d) => false,
        }
    });
    let crashed = store.is_dead();
    drop(node1);
    rt1.shutdown_background();
    assert!(
        finished || crashed,
        "node 1 neither finished nor crashed within {WAIT:?}: {}",
        ctx()
    );

    let record = if finished && !crashed {
        rt_block(inner.get_execution(ID)).expect("record")
    } else {
        let rt2 = runtime();
        let node2 = (case.node)(inner.clone());
        let record = rt2.block_on(async {
            node2.start().await.expect("node 2 starts");
            node2.wait(ID, WAIT).await.expect("wait")
        });
        drop(node2);
        rt2.shutdown_background();
        record
    };
    let history = rt_block(inner.history(ID, 0))
        .expect("history")
        .into_iter()
        .map(|h| h.event)
        .collect();
    let unfinished = rt_block(inner.unfinished()).expect("unfinished");
    assert!(
        unfinished.is_empty(),
        "executions left pending: {unfinished:?}; {}",
        ctx()
    );
    Crashed {
        crashed,
        appends: store.appended.load(Ordering::SeqCst),
        record,
        history,
    }
}

/// Polls a store future that never actually waits (the memory store only locks).
fn rt_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

// ---------------------------------------------------------------- the checks

fn check(saga: &Saga, r: &Run) {
    let names: Vec<String> = r
        .history
        .iter()
        .map(|e| {
            format!("{} {}", e.name(), e.step().unwrap_or(""))
                .trim()
                .to_string()
        })
        .collect();
    let ctx = format!(
        "\n  seed={} budget={:?} crashed={} appends={}\n  saga={saga:?}\n  history={names:?}\n  effects={:?}\n  record={:?}",
        saga.seed, r.budget, r.crashed, r.appends, r.book.effects, r.record
    );
    let done = |task: TaskKind| -> Vec<&str> {
        r.book
            .effects
            .iter()
            .filter(|(t, _)| *t == task)
            .map(|(_, s)| s.as_str())
            .collect()
    };
    let acted = done(TaskKind::Action);
    let undone = done(TaskKind::Compensation);
    let count = |list: &[&str], step: &str| list.iter().filter(|s| **s == step).count();

    // No effect twice, and one idempotency key per step and task whatever happened.
    for s in saga.steps() {
        assert!(
            count(&acted, &s.name) <= 1,
            "action of {} took effect twice{ctx}",
            s.name
        );
        assert!(
            count(&undone, &s.name) <= 1,
            "{} was compensated twice{ctx}",
            s.name
        );
    }
    for ((task, step), keys) in &r.book.keys {
        assert_eq!(
            keys.len(),
            1,
            "{step} {task:?} was called with several keys {keys:?}{ctx}"
        );
    }
    // The history tells the truth: an action took effect iff its success is recorded.
    let recorded: Vec<&str> = r
        .history
        .iter()
        .filter_map(|e| match e {
            EventKind::StepSucceeded { step, .. } => Some(step.as_str()),
            _ => None,
        })
        .collect();
    for s in saga.steps() {
        assert_eq!(
            count(&acted, &s.name),
            count(&recorded, &s.name),
            "effect and history disagree about {}{ctx}",
            s.name
        );
    }

    match saga.failing_stage() {
        None => {
            assert_eq!(r.record.status, Status::Succeeded, "{ctx}");
            assert!(r.record.error.is_none(), "{ctx}");
            for s in saga.steps() {
                assert_eq!(
                    count(&acted, &s.name),
                    1,
                    "{} never took effect{ctx}",
                    s.name
                );
            }
            assert!(
                undone.is_empty(),
                "a successful saga compensated {undone:?}{ctx}"
            );
            let output = r.record.output.as_ref().expect("output");
            assert!(saga.steps().all(|s| output.get(&s.name).is_some()), "{ctx}");
        }
        Some(fs) => {
            let failing = saga.failing.as_deref().unwrap_or_default();
            assert_eq!(r.record.status, Status::Compensated, "{ctx}");
            assert_eq!(
                r.record.error.as_ref().map(|e| e.error.as_str()),
                Some("Boom"),
                "{ctx}"
            );
            assert_eq!(
                count(&acted, failing),
                0,
                "the failing step took effect{ctx}"
            );
            for s in saga.steps() {
                let took_effect = count(&acted, &s.name) == 1;
                if s.stage < fs {
                    assert!(
                        took_effect,
                        "{} before the failure never took effect{ctx}",
                        s.name
                    );
                }
                if s.stage > fs {
                    assert!(!took_effect, "{} after the failure ran{ctx}", s.name);
                }
                let expected = usize::from(took_effect && s.compensation);
                assert_eq!(
                    count(&undone, &s.name),
                    expected,
                    "{} (took effect: {took_effect}) compensated the wrong number of times{ctx}",
                    s.name
                );
            }
            // Reverse order of completion, as recorded.
            let mut expected: Vec<&str> = recorded
                .iter()
                .copied()
                .filter(|s| saga.step(s).compensation)
                .collect();
            expected.reverse();
            assert_eq!(undone, expected, "compensations out of order{ctx}");
            // In particular, a later stage is undone before an earlier one.
            let stages: Vec<usize> = undone.iter().map(|s| saga.step(s).stage).collect();
            assert!(
                stages.windows(2).all(|w| w[0] >= w[1]),
                "stages undone out of order{ctx}"
            );
        }
    }
}

/// The uncrashed run, then runs crashing after N appends for N in 0..=T
/// (all of them for small sagas, an even spread including both ends otherwise).
fn check_saga(saga: Saga) {
    let saga = Arc::new(saga);
    let reference = run(&saga, None);
    assert!(!reference.crashed);
    check(&saga, &reference);
    let total = reference.appends;
    let points: Vec<u64> = if total < MAX_CRASH_POINTS {
        (0..=total).collect()
    } else {
        let mut mix = Mix(saga.seed ^ 0x5eed);
        let mut p: Vec<u64> = (0..MAX_CRASH_POINTS - 2)
            .map(|_| mix.below(total + 1))
            .collect();
        p.extend([0, total]);
        p.sort_unstable();
        p.dedup();
        p
    };
    for n in points {
        check(&saga, &run(&saga, Some(n)));
    }
}

#[test]
fn no_effect_repeats_and_every_completed_step_is_compensated_once_in_reverse_whatever_the_crash_point(
) {
    let seed: u64 = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(48);
    eprintln!("crash_property: PROPTEST_RNG_SEED={seed} PROPTEST_CASES={cases} (set them to replay this run)");
    let config = ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        source_file: Some(file!()),
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&sagas(), |saga| {
        check_saga(saga);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\nreplay with PROPTEST_RNG_SEED={seed} PROPTEST_CASES={cases}");
    }
}

#[test]
fn a_saga_failing_in_a_parallel_group_after_a_crash_mid_rollback_is_compensated_exactly() {
    // A fixed shape exercised at every crash point: two compensatable steps,
    // a parallel group whose middle branch fails, flaky compensations.
    let raw = vec![
        (false, 1, vec![true, true, true]),
        (true, 3, vec![true, false, true]),
        (false, 1, vec![true, true, true]),
    ];
    let mut saga = build_saga(raw, None, None, 42);
    saga.failing = Some("s1_1".into());
    for s in saga.stages.iter_mut().flat_map(|(_, s)| s.iter_mut()) {
        s.undo_flaky = 2;
    }
    let saga = Arc::new(saga);
    let reference = run(&saga, None);
    check(&saga, &reference);
    for n in 0..=reference.appends {
        check(&saga, &run(&saga, Some(n)));
    }
}

// ---------------------------------------------------------------- an ASL machine

/// A travel booking in Amazon States Language: the flight and (after a
/// pause) the hotel at once, the extras one at a time, then the payment.
/// Busy participants are retried; a refusal is caught, and everything is
/// cancelled before the execution fails.
fn trip_machine() -> String {
    let lambda = |f: &str| format!("arn:aws:lambda:us-east-1:123456789012:function:{f}");
    // Whole seconds are the least ASL allows; full jitter draws below them.
    let busy = json!([{"ErrorEquals": ["Busy"], "IntervalSeconds": 1, "MaxAttempts": 3, "JitterStrategy": "FULL"}]);
    let again = json!([{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 5, "JitterStrategy": "FULL"}]);
    let task = |name: &str, f: &str, retry: &Value| json!({"StartAt": name, "States": {name: {"Type": "Task", "Resource": lambda(f), "Retry": retry, "End": true}}});
    let refused =
        json!([{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "CancelAll"}]);
    json!({
        "Comment": "Book a trip; cancel everything if any part is refused",
        "StartAt": "Reserve",
        "States": {
            "Reserve": {
                "Type": "Parallel",
                "Branches": [
                    task("BookFlight", "book-flight", &busy),
                    {"StartAt": "Pause", "States": {
                        "Pause": {"Type": "Wait", "SecondsPath": "$.pause", "Next": "BookHotel"},
                        "BookHotel": {"Type": "Task", "Resource": lambda("book-hotel"), "Retry": busy, "End": true}
                    }}
                ],
                "ResultPath": "$.reserved",
                "Catch": refused,
                "Next": "Extras"
            },
            "Extras": {
                "Type": "Map", "ItemsPath": "$.extras", "MaxConcurrency": 1,
                "ItemProcessor": task("BookExtra", "book-extra", &busy),
                "ResultPath": "$.booked_extras",
                "Catch": refused,
                "Next": "Pay"
            },
            "Pay": {
                "Type": "Task", "Resource": lambda("pay"), "Retry": busy,
                "Catch": [{"ErrorEquals": ["Declined"], "ResultPath": "$.error", "Next": "CancelAll"}],
                "ResultPath": "$.payment",
                "Next": "Booked"
            },
            "Booked": {"Type": "Succeed"},
            "CancelAll": {
                "Type": "Parallel",
                "Branches": [
                    task("CancelFlight", "cancel-flight", &again),
                    task("CancelHotel", "cancel-hotel", &again),
                    {"StartAt": "CancelExtras", "States": {"CancelExtras": {
                        "Type": "Map", "ItemsPath": "$.extras",
                        "ItemProcessor": task("CancelExtra", "cancel-extra", &again),
                        "End": true
                    }}}
                ],
                "ResultPath": "$.cancelled",
                "Next": "BookingFailed"
            },
            "BookingFailed": {"Type": "Fail", "Error": "BookingFailed", "Cause": "a part was refused; everything was cancelled"}
        }
    })
    .to_string()
}

const TRIP_FUNCTIONS: &[&str] = &[
    "book-flight",
    "book-hotel",
    "book-extra",
    "pay",
    "cancel-flight",
    "cancel-hotel",
    "cancel-extra",
];

/// Which participant refuses, if any (a business error, before any effect).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Refusal {
    Nobody,
    /// The payment is declined: the flight, hotel and extras are cancelled.
    Payment,
    /// The second extra is declined: the Map fails after the first one.
    Extra,
}

/// The travel agency's side: answers deduplicated by idempotency key, and
/// what is booked right now.
#[derive(Default)]
struct Agency {
    book: Mutex<(Book, BTreeSet<String>)>,
}

impl Agency {
    fn call(&self, refusal: Refusal, function: &str, req: &Request) -> Result<Value, ErrorInfo> {
        let mut guard = self.book.lock().unwrap_or_else(|p| p.into_inner());
        let (b, booked) = &mut *guard;
        *b.calls.entry(req.idempotency_key.clone()).or_default() += 1;
        let keys = b.keys.entry((req.task, req.step.clone())).or_default();
        if !keys.contains(&req.idempotency_key) {
            keys.push(req.idempotency_key.clone());
        }
        if let Some(answer) = b.answered.get(&req.idempotency_key) {
            return Ok(answer.clone());
        }
        let (verb, what) = function.split_once('-').unwrap_or((function, ""));
        let thing = match (what, req.input.as_str()) {
            ("extra", Some(item)) => format!("extra:{item}"),
            ("", _) => "payment".to_string(),
            (what, _) => what.to_string(),
        };
        let declined = match refusal {
            Refusal::Nobody => false,
            Refusal::Payment => function == "pay",
            Refusal::Extra => function == "book-extra" && thing == "extra:meal",
        };
        if declined {
            return Err(ErrorInfo::new("Declined", format!("{thing} declined")));
        }
        // One call per trip is busy on its first attempt (retried by the
        // machine): a Map iteration, a compensation, a Parallel branch.
        let flaky = match refusal {
            Refusal::Nobody => function == "book-extra" && thing == "extra:bag",
            Refusal::Payment => function == "cancel-hotel",
            Refusal::Extra => function == "book-flight",
        };
        if flaky && req.attempt == 1 {
            return Err(ErrorInfo::new("Busy", format!("{function} is busy")));
        }
        if verb == "cancel" {
            booked.remove(&thing);
        } else {
            booked.insert(thing.clone());
        }
        let answer = json!({"done": function, "thing": thing, "attempt": req.attempt});
        b.effects.push((req.task, req.step.clone()));
        b.answered
            .insert(req.idempotency_key.clone(), answer.clone());
        Ok(answer)
    }

    fn world(&self) -> (Book, BTreeSet<String>) {
        self.book.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn trip_engine(store: Arc<dyn Store>, refusal: Refusal, agency: &Arc<Agency>) -> Engine {
    let mut b = Engine::builder(store).config(Config {
        timer_poll: Duration::from_millis(50),
        resources: trip_resources(),
        ..Config::default()
    });
    for &f in TRIP_FUNCTIONS {
        let agency = agency.clone();
        b = b.handler(
            f,
            handler_fn(move |req: Request| {
                let agency = agency.clone();
                async move {
                    tokio::task::yield_now().await;
                    agency.call(refusal, f, &req)
                }
            }),
        );
    }
    b.build()
}

fn trip_resources() -> ResourceMap {
    ResourceMap {
        rules: vec![ResourceRule {
            pattern: "arn:aws:lambda:*:*:function:{name}".into(),
            target: "handler:{name}".into(),
        }],
    }
}

/// One run of the trip: what became of it, and the agency's world after it.
struct TripRun {
    budget: Option<u64>,
    run: Crashed,
    book: Book,
    booked: BTreeSet<String>,
}

fn trip_run(refusal: Refusal, pause: u64, budget: Option<u64>) -> TripRun {
    let agency = Arc::new(Agency::default());
    let node = |store: Arc<dyn Store>| trip_engine(store, refusal, &agency);
    let definition = trip_machine();
    let case = Case {
        node: &node,
        deploy_as: Some("trip"),
        name: "trip",
        definition: &definition,
        input: json!({"trip": 7, "pause": pause, "extras": ["seat", "meal", "bag"]}),
        about: format!("refusal={refusal:?} pause={pause}"),
    };
    let run = crash_run(&case, budget);
    let (book, booked) = agency.world();
    TripRun {
        budget,
        run,
        book,
        booked,
    }
}

/// What must hold of every run, crashed or not, and of the uncrashed
/// `reference` run of the same trip.
fn check_trip(refusal: Refusal, reference: &TripRun, r: &TripRun) {
    let names: Vec<String> = r
        .run
        .history
        .iter()
        .map(|e| {
            format!("{} {}", e.kind.name(), e.kind.step().unwrap_or(""))
                .trim()
                .to_string()
        })
        .collect();
    let ctx = format!(
        "\n  refusal={refusal:?} budget={:?} crashed={} appends={}\n  history={names:?}\n  effects={:?}\n  booked={:?}\n  record={:?}",
        r.budget, r.run.crashed, r.run.appends, r.book.effects, r.booked, r.run.record
    );
    // The same end as without a crash.
    let (record, expected) = (&r.run.record, &reference.run.record);
    assert_eq!(record.status, expected.status, "{ctx}");
    assert_eq!(record.output, expected.output, "{ctx}");
    assert_eq!(record.error, expected.error, "{ctx}");
    // Each participant effect at most once per idempotency key, and one key
    // per call site whatever happened.
    for ((task, step), keys) in &r.book.keys {
        assert_eq!(
            keys.len(),
            1,
            "{step} {task:?} was called with keys {keys:?}{ctx}"
        );
        let effects = r.book.effects.iter().filter(|(_, s)| s == step).count();
        assert!(effects <= 1, "{step} took effect {effects} times{ctx}");
    }
    // The history tells the truth: a call took effect iff its success is recorded.
    for (_, step) in r.book.keys.keys() {
        let effects = r.book.effects.iter().filter(|(_, s)| s == step).count();
        let recorded = r
            .run
            .history
            .iter()
            .filter(|e| matches!(&e.kind, EventKind::StepSucceeded { step: s, .. } if s == step))
            .count();
        assert_eq!(
            effects, recorded,
            "effect and history disagree about {step}{ctx}"
        );
    }
    // The history is legal: it replays, to the recorded end.
    let plan = sagaflow_core::compile_definition(&trip_machine(), Some("trip"), &trip_resources())
        .expect("the trip compiles");
    let replayed = Execution::replay(&plan, &r.run.history)
        .unwrap_or_else(|e| panic!("the history does not replay: {e}{ctx}"));
    assert_eq!(replayed.status, record.status, "{ctx}");
    assert!(replayed.outstanding(&plan).is_empty(), "{ctx}");
    // The world is what the machine promises.
    let all: BTreeSet<String> = [
        "flight",
        "hotel",
        "extra:seat",
        "extra:meal",
        "extra:bag",
        "payment",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    match refusal {
        Refusal::Nobody => {
            assert_eq!(record.status, Status::Succeeded, "{ctx}");
            assert_eq!(r.booked, all, "{ctx}");
            let output = record.output.as_ref().expect("an output");
            assert_eq!(output["payment"]["thing"], "payment", "{ctx}");
            assert_eq!(
                output["booked_extras"].as_array().map(Vec::len),
                Some(3),
                "{ctx}"
            );
        }
        Refusal::Payment | Refusal::Extra => {
            assert_eq!(record.status, Status::Failed, "{ctx}");
            assert_eq!(
                record.error.as_ref().map(|e| e.error.as_str()),
                Some("BookingFailed"),
                "{ctx}"
            );
            assert!(r.booked.is_empty(), "left booked: {:?}{ctx}", r.booked);
        }
    }
}

/// The trip without a crash, then crashing after every append of it.
fn check_trip_at_every_crash_point(refusal: Refusal, pause: u64) {
    let reference = trip_run(refusal, pause, None);
    assert!(!reference.run.crashed);
    check_trip(refusal, &reference, &reference);
    for n in 0..=reference.run.appends {
        check_trip(refusal, &reference, &trip_run(refusal, pause, Some(n)));
    }
}

#[test]
fn an_asl_trip_booked_in_full_ends_alike_whatever_the_crash_point() {
    check_trip_at_every_crash_point(Refusal::Nobody, 1);
}

#[test]
fn an_asl_trip_whose_payment_is_declined_cancels_everything_whatever_the_crash_point() {
    check_trip_at_every_crash_point(Refusal::Payment, 0);
}

#[test]
fn an_asl_trip_whose_extra_is_declined_cancels_everything_whatever_the_crash_point() {
    check_trip_at_every_crash_point(Refusal::Extra, 0);
}
