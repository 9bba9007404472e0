//! Sagaflow's runtime: runs saga executions durably on a [`Store`].
//!
//! Each active execution is owned by one actor task ([`actor`]) that holds its
//! state in memory, turns inputs into events with the pure core, makes them
//! durable (group-committed by the store), and only then performs the effects:
//! participant calls ([`invoke`]) and timers. On start, [`Engine::start`]
//! rebuilds every unfinished execution from its history and resumes what was
//! in flight, with the same idempotency keys.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sagaflow_core::event::Millis;
use sagaflow_core::{Execution, Input, Plan, Status};
use sagaflow_store::{Created, DefinitionRecord, ExecutionRecord, SharedStore, Store};
use serde_json::Value;
use tokio::sync::{broadcast, oneshot};

mod activities;
pub mod actor;
mod bulkhead;
pub mod durable;
mod health;
mod heartbeats;
pub mod invoke;
mod ownership;
mod plans;
mod timers;
pub mod tls;
pub mod vars;
mod waiters;

pub use activities::{ActivityTask, Relay};
pub use durable::{DurableStart, DurableStarted, FunctionAnswer, Functions, LambdaConfig};
pub use invoke::{handler_fn, Exchange, Handler};
pub use ownership::Cluster;
use ownership::Ownership;
pub use tls::{TlsConfig, TlsError};
pub use vars::Secret;

/// Runtime errors, each with a stable code for API users.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("definition `{0}` not found")]
    DefinitionNotFound(String),
    #[error("execution `{0}` not found")]
    ExecutionNotFound(String),
    #[error(transparent)]
    Invalid(sagaflow_core::Error),
    #[error("execution `{id}` already exists with a different {what}")]
    ExecutionConflict { id: String, what: &'static str },
    #[error("{0}")]
    NotAllowed(sagaflow_core::Error),
    #[error("invalid execution id `{0}`: use 1–128 letters, digits, `-`, `_`, `.` or `:`")]
    InvalidId(String),
    #[error("`{0}` is not a task token of this server")]
    InvalidTaskToken(String),
    #[error("no task is waiting for this token: {0} (already completed, timed out, or not a callback task)")]
    CallbackNotWaiting(String),
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// A command or callback did not reach the execution: each time it was
    /// delivered, the execution's actor was leaving memory (it had parked,
    /// finished or stopped) before it answered. Nothing was done; a retry
    /// loads the execution afresh.
    #[error("execution `{0}` was leaving memory each time this request reached it; nothing was done, retry")]
    Busy(String),
    /// Several nodes: this node could not renew its leases in time and does
    /// not act until they have surely expired (a lease time or two).
    #[error("this node is fenced off until its leases have expired; retry, or use another node")]
    Fenced,
    /// Several nodes: another node holds the execution's lease; the request
    /// belongs there (`address`, when that node is reachable).
    #[error("execution `{id}` is handled by node `{node}`")]
    OwnedElsewhere {
        id: String,
        node: String,
        address: Option<String>,
    },
    /// The stored history does not replay on its plan (a corrupt or foreign
    /// history): the server's fault, not the request's.
    #[error("the history of execution `{id}` does not replay: {source}")]
    Unreplayable {
        id: String,
        source: sagaflow_core::Error,
    },
    #[error("function `{0}` is not a durable function hosted here")]
    FunctionNotFound(String),
    #[error("callback `{0}` not found")]
    CallbackNotFound(String),
    #[error("storage: {0}")]
    Store(#[from] sagaflow_store::Error),
}

impl Error {
    /// Stable code shown to users.
    pub fn code(&self) -> &'static str {
        match self {
            Error::DefinitionNotFound(_) => "definition_not_found",
            Error::ExecutionNotFound(_) => "execution_not_found",
            Error::Invalid(e) => e.code(),
            Error::ExecutionConflict { .. } => "execution_conflict",
            Error::NotAllowed(e) => e.code(),
            Error::InvalidId(_) => "invalid_execution_id",
            Error::InvalidTaskToken(_) => "invalid_task_token",
            Error::CallbackNotWaiting(_) => "callback_not_waiting",
            Error::ShuttingDown => "shutting_down",
            Error::Busy(_) => "execution_busy",
            Error::OwnedElsewhere { .. } => "owned_elsewhere",
            Error::Fenced => "node_fenced",
            Error::Unreplayable { .. } => "history_unreplayable",
            Error::FunctionNotFound(_) => "function_not_found",
            Error::CallbackNotFound(_) => "callback_not_found",
            Error::Store(sagaflow_store::Error::NotFound { .. }) => "not_found",
            Error::Store(sagaflow_store::Error::BadCursor(_)) => "invalid_cursor",
            Error::Store(sagaflow_store::Error::LeaseLost { .. }) => "owned_elsewhere",
            Error::Store(sagaflow_store::Error::Corrupt(_)) => "storage_corrupt",
            Error::Store(_) => "storage_unavailable",
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Runtime settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Values for `${VAR}` placeholders in participant URLs and headers.
    pub variables: HashMap<String, String>,
    /// Secret values for `${VAR}` placeholders: filled like `variables`, but
    /// never logged, and replaced by `${NAME}` in every error cause a call
    /// records (see [`vars`]). A name is a variable or a secret, not both.
    pub secrets: HashMap<String, Secret>,
    /// Trust and identity for HTTPS participants and the hook.
    pub tls: TlsConfig,
    /// Maximum participant calls in flight at once, all participants together.
    pub concurrency: usize,
    /// Maximum calls in flight to one participant (scheme and authority of
    /// its URL, or one in-process handler): its bulkhead. A call waits for a
    /// slot without spending its attempt's time (see `bulkhead`).
    pub participant_concurrency: usize,
    /// How often the durable timer table is polled (a backstop for in-memory timers).
    pub timer_poll: Duration,
    /// Timers due within this are also armed in memory, for precision; later
    /// ones only live in the store's timer table (polled every `timer_poll`),
    /// so a waiting execution costs no task and may leave memory.
    pub memory_timer_horizon: Duration,
    /// Largest participant answer accepted (it becomes part of the history).
    pub max_output_bytes: usize,
    /// Finishing statuses that record a notification in the store's outbox,
    /// in the same append as the `execution_finished` event (see
    /// [`sagaflow_store::Append::notify`]). Empty (the default): none is
    /// recorded. Set it only when something drains the outbox, such as the
    /// API's on-failure hook.
    pub notify_on: Vec<Status>,
    /// When a compensation that keeps failing counts as stuck: it is
    /// counted in the `sagaflow_executions_stuck` gauge and logged, and,
    /// with `notify_stuck`, an `execution.stuck` notification is recorded
    /// in the outbox with the failure that crossed the threshold.
    pub stuck: sagaflow_core::StuckPolicy,
    /// Record `execution.stuck` notifications (set it only when something
    /// drains the outbox, such as the API's hook).
    pub notify_stuck: bool,
    /// Binds the `Resource` ARNs of ASL Task states to participants.
    pub resources: sagaflow_core::asl::ResourceMap,
    /// Most events an ASL execution's stored history may hold: the decision
    /// reaching it fails the execution with `States.Runtime` (AWS's quota of
    /// 25,000 by default).
    pub max_history_events: u64,
    /// Region and account of durable executions' ARNs, and their chained
    /// invokes' participant timeout.
    pub lambda: LambdaConfig,
}

/// One node among several on a shared store (PostgreSQL): see
/// [`Engine::cluster_builder`]. Without one, the process owns the whole store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Unique among the nodes; a fresh one per process is simplest.
    pub id: String,
    /// Base URL other nodes forward requests for this node's executions to.
    pub address: String,
    /// How long a lease lasts without renewal: a dead node's executions are
    /// taken over this long after its last renewal.
    pub lease_ttl: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            variables: HashMap::new(),
            secrets: HashMap::new(),
            tls: TlsConfig::default(),
            concurrency: 256,
            participant_concurrency: 64,
            timer_poll: Duration::from_secs(1),
            max_output_bytes: 4 * 1024 * 1024,
            memory_timer_horizon: Duration::from_secs(30),
            notify_on: Vec::new(),
            stuck: Default::default(),
            notify_stuck: false,
            resources: Default::default(),
            max_history_events: sagaflow_core::asl::run::MAX_HISTORY_EVENTS,
            lambda: LambdaConfig::default(),
        }
    }
}

/// Result of registering a definition.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub record: DefinitionRecord,
    /// `false` when the source equals the latest version (nothing new was stored).
    pub created: bool,
    pub plan: Arc<Plan>,
}

/// A finished execution, broadcast to waiters and hooks.
#[derive(Debug, Clone)]
pub struct Finished {
    pub record: ExecutionRecord,
}

pub(crate) fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

/// The state the engine's parts share, one field (or module) per concern.
pub(crate) struct Shared {
    pub store: Arc<dyn Store>,
    pub config: Config,
    pub handlers: HashMap<String, Arc<dyn Handler>>,
    pub http: reqwest::Client,
    /// Compiled plans and the latest version of each definition.
    pub plans: plans::Plans,
    /// The mailbox of each execution resident in memory.
    pub actors: Mutex<HashMap<String, actor::Mailbox>>,
    pub finished: broadcast::Sender<Finished>,
    /// Shutdown, storage health and participant calls in flight.
    pub health: health::Health,
    pub permits: Arc<tokio::sync::Semaphore>,
    /// Per-participant limits on calls in flight.
    pub bulkheads: bulkhead::Bulkheads,
    /// Callers of [`Engine::wait`], by execution id.
    pub waiters: waiters::Waiters,
    /// This process alone, or one node among several (and its leases).
    pub ownership: Ownership,
    /// The functions this server hosts (durable executions' code).
    pub functions: Option<Arc<dyn Functions>>,
    /// The wake-ups of this node's activity pollers.
    pub activities: activities::Activities,
}

/// The engine: cheap to clone, one per process.
#[derive(Clone)]
pub struct Engine {
    pub(crate) shared: Arc<Shared>,
}

/// Builds an [`Engine`]; register in-process handlers before starting.
pub struct Builder {
    store: Arc<dyn Store>,
    ownership: Ownership,
    config: Config,
    handlers: HashMap<String, Arc<dyn Handler>>,
    functions: Option<Arc<dyn Functions>>,
}

impl Builder {
    /// The host of the functions durable executions run (and chained
    /// invokes may call).
    pub fn functions(mut self, functions: Arc<dyn Functions>) -> Self {
        self.functions = Some(functions);
        self
    }

    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    pub fn handler(mut self, name: &str, handler: impl Handler + 'static) -> Self {
        self.handlers.insert(name.to_string(), Arc::new(handler));
        self
    }

    /// Builds the engine.
    ///
    /// # Panics
    /// If the TLS settings are invalid (never with the default ones): use
    /// [`Builder::try_build`] to handle that.
    pub fn build(self) -> Engine {
        self.try_build()
            .unwrap_or_else(|e| panic!("invalid TLS settings: {e}"))
    }

    /// Builds the engine, or says why its TLS settings are invalid.
    pub fn try_build(self) -> std::result::Result<Engine, TlsError> {
        let (finished, _) = broadcast::channel(1024);
        let concurrency = self.config.concurrency.max(1);
        // As many idle connections per participant host as calls may be in
        // flight: fewer made every call beyond them open (and close) a
        // connection of its own under load.
        let http = self
            .config
            .tls
            .client_builder()?
            .pool_max_idle_per_host(concurrency.max(64))
            .build()
            .map_err(|e| TlsError::Client(invoke::describe(&e)))?;
        Ok(Engine {
            shared: Arc::new(Shared {
                store: self.store,
                config: self.config,
                handlers: self.handlers,
                http,
                plans: Default::default(),
                actors: Mutex::new(HashMap::new()),
                finished,
                health: Default::default(),
                permits: Arc::new(tokio::sync::Semaphore::new(concurrency)),
                bulkheads: Default::default(),
                waiters: Default::default(),
                ownership: self.ownership,
                functions: self.functions,
                activities: Default::default(),
            }),
        })
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

impl Engine {
    /// An engine that owns the whole store: the only process using it.
    pub fn builder(store: Arc<dyn Store>) -> Builder {
        Builder {
            store,
            ownership: Ownership::Single,
            config: Config::default(),
            handlers: HashMap::new(),
            functions: None,
        }
    }

    /// An engine that is one node among several on `store`, sharing its
    /// executions with the others through the store's leases. Only a store
    /// several processes can share has them ([`SharedStore`]: PostgreSQL,
    /// memory), so a node on SQLite cannot be built:
    ///
    /// ```
    /// # use std::{sync::Arc, time::Duration};
    /// # use sagaflow_runtime::{Engine, NodeConfig};
    /// let node = NodeConfig { id: "n1".into(), address: "http://n1".into(), lease_ttl: Duration::from_secs(5) };
    /// let store = Arc::new(sagaflow_store::memory::MemoryStore::new());
    /// let engine = Engine::cluster_builder(store, node).build();
    /// assert_eq!(engine.node_id(), Some("n1"));
    /// ```
    ///
    /// The same with a SQLite store does not compile (`SqliteStore` does not
    /// implement `Leases`):
    ///
    /// ```compile_fail
    /// # use std::{sync::Arc, time::Duration};
    /// # use sagaflow_runtime::{Engine, NodeConfig};
    /// let node = NodeConfig { id: "n1".into(), address: "http://n1".into(), lease_ttl: Duration::from_secs(5) };
    /// let store = Arc::new(sagaflow_store::sqlite::SqliteStore::open("s.db").unwrap());
    /// let engine = Engine::cluster_builder(store, node).build();
    /// ```
    pub fn cluster_builder<S: SharedStore + 'static>(store: Arc<S>, node: NodeConfig) -> Builder {
        Builder {
            store: store.clone(),
            ownership: Ownership::Cluster(Arc::new(Cluster::new(node, store))),
            config: Config::default(),
            handlers: HashMap::new(),
            functions: None,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    /// The HTTP client of participant calls (TLS settings included), for
    /// other outgoing calls such as the on-failure hook.
    pub fn http_client(&self) -> &reqwest::Client {
        &self.shared.http
    }

    /// Calls a participant once, outside any execution (Step Functions'
    /// `TestState`): an HTTP participant or an in-process handler as a task
    /// attempt calls it, within `timeout`; no retry, no bulkhead.
    pub async fn call_participant(
        &self,
        request: sagaflow_core::Request,
        timeout: Duration,
    ) -> std::result::Result<Value, sagaflow_core::ErrorInfo> {
        invoke::call(&self.shared, request, timeout).await
    }

    /// [`Engine::call_participant`], with the HTTP exchange as it went over
    /// the wire (none for an in-process handler): TestState's `TRACE`.
    /// Secret values are shown as `${NAME}` unless `reveal_secrets`.
    pub async fn call_participant_traced(
        &self,
        request: sagaflow_core::Request,
        timeout: Duration,
        reveal_secrets: bool,
    ) -> (
        std::result::Result<Value, sagaflow_core::ErrorInfo>,
        Option<invoke::Exchange>,
    ) {
        let mut exchange = invoke::Exchange::default();
        let result =
            invoke::call_recorded(&self.shared, request, timeout, Some(&mut exchange)).await;
        let exchange = (!exchange.method.is_empty()).then(|| {
            if reveal_secrets {
                exchange
            } else {
                exchange.redacted(&self.shared.config.secrets)
            }
        });
        (result, exchange)
    }

    /// Resumes every unfinished execution from its history and starts the
    /// timer poller. Call once, before serving.
    pub async fn start(&self) -> Result<usize> {
        let n = match self.shared.ownership.cluster() {
            Some(cluster) => self.start_node(cluster.clone()).await?,
            None => self.resume_unfinished().await?,
        };
        let me = self.clone();
        tokio::spawn(async move { me.poll_timers().await });
        Ok(n)
    }

    /// Start of the only process on the store: every unfinished execution
    /// is its own.
    async fn resume_unfinished(&self) -> Result<usize> {
        let unfinished = self.shared.store.unfinished().await?;
        let n = unfinished.len();
        // Histories are read in parallel (the store's read pool), a bounded
        // number at a time; each execution resumes as soon as it is loaded.
        let loading = Arc::new(tokio::sync::Semaphore::new(32));
        let mut resuming = tokio::task::JoinSet::new();
        for rec in unfinished {
            let (me, loading) = (self.clone(), loading.clone());
            resuming.spawn(async move {
                let _permit = loading.acquire_owned().await;
                let id = rec.id.clone();
                if let Err(e) = me.resume(rec).await {
                    tracing::error!(execution = %id, error = %e, "could not resume execution");
                }
            });
        }
        while resuming.join_next().await.is_some() {}
        if n > 0 {
            tracing::info!(executions = n, "resumed unfinished executions");
        }
        Ok(n)
    }

    /// Whether this process may act on its executions now (see
    /// [`Ownership::may_act`]).
    pub(crate) fn may_act(&self) -> bool {
        self.shared.ownership.may_act()
    }

    /// This node's id when several share the store.
    pub fn node_id(&self) -> Option<&str> {
        self.shared.ownership.node_id()
    }

    /// This node and its leases when several share the store.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.shared.ownership.cluster()
    }

    /// Makes sure this process holds the lease of `id` before it loads it,
    /// or names the node that does (see [`Ownership::claim`]).
    pub(crate) async fn claim(&self, id: &str) -> Result<()> {
        self.shared.ownership.claim(id).await
    }

    /// Compiles a definition and checks it against this server's
    /// configuration (its `${VAR}`s are set) without storing it: what
    /// [`Engine::deploy`] would refuse, it refuses with the same problems.
    pub async fn validate(&self, name_hint: Option<&str>, source: &str) -> Result<Plan> {
        let plan = plans::compile(&self.shared, source, name_hint, false).await?;
        let missing: Vec<_> = plan
            .variable_uses
            .iter()
            .filter(|(v, _)| {
                !self.shared.config.variables.contains_key(v)
                    && !self.shared.config.secrets.contains_key(v)
            })
            .map(|(v, location)| sagaflow_core::Violation {
                code: "unknown_variable".into(),
                location: location.clone(),
                message: format!("`${{{v}}}` is not set in the server's configuration (--var {v}=…, SAGAFLOW_VAR_{v}, [variables]; or, for a secret, SAGAFLOW_SECRET_{v} or [secrets])"),
            })
            .collect();
        if !missing.is_empty() {
            return Err(Error::Invalid(sagaflow_core::Error::InvalidDefinition(
                missing,
            )));
        }
        Ok(plan)
    }

    /// When a compensation that keeps failing counts as stuck.
    pub fn stuck_policy(&self) -> sagaflow_core::StuckPolicy {
        self.shared.config.stuck
    }

    /// Validates and registers a definition (a new version if it changed).
    pub async fn deploy(&self, name_hint: Option<&str>, source: &str) -> Result<Deployed> {
        let plan = self.validate(name_hint, source).await?;
        let record = self
            .shared
            .store
            .put_definition(&plan.name, plan.format(), source, &plan.digest, now_ms())
            .await;
        self.shared.health.observe_storage(&record);
        let (record, created) = record?;
        let plan = Arc::new(plan);
        let plans = &self.shared.plans;
        plans.insert(&record.name, record.version, plan.clone());
        plans.note_latest(&record.name, record.version);
        Ok(Deployed {
            record,
            created,
            plan,
        })
    }

    /// The compiled plan of a definition version (`None` = latest).
    pub async fn plan(&self, name: &str, version: Option<u32>) -> Result<(u32, Arc<Plan>)> {
        // The latest version is known without a read once this process has
        // seen it: the store's owner lock makes it the only one deploying.
        // In a cluster another node may deploy, so the store is asked.
        let version = version.or_else(|| {
            if self.shared.ownership.is_sole_writer() {
                self.shared.plans.latest(name)
            } else {
                None
            }
        });
        if let Some(v) = version {
            if let Some(p) = self.shared.plans.get(name, v) {
                return Ok((v, p));
            }
        }
        let rec = match self.shared.store.get_definition(name, version).await {
            Ok(r) => r,
            Err(sagaflow_store::Error::NotFound { .. }) => {
                return Err(Error::DefinitionNotFound(name.to_string()))
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(p) = self.shared.plans.get(name, rec.version) {
            return Ok((rec.version, p));
        }
        let plan = Arc::new(plans::compile(&self.shared, &rec.source, Some(name), true).await?);
        self.shared.plans.insert(name, rec.version, plan.clone());
        if version.is_none() {
            self.shared.plans.note_latest(name, rec.version);
        }
        Ok((rec.version, plan))
    }

    /// Starts an execution of the latest version of `definition`. With an
    /// `id` that already exists: the same input returns the existing execution
    /// (`false`), a different one is [`Error::ExecutionConflict`].
    pub async fn start_execution(
        &self,
        definition: &str,
        input: Value,
        id: Option<String>,
    ) -> Result<(ExecutionRecord, bool)> {
        self.start_execution_at(definition, None, input, id).await
    }

    /// [`Engine::start_execution`] on version `version` of the definition
    /// (`None`: the latest). A repeated start with the caller's id answers
    /// the existing execution, whatever version it runs.
    pub async fn start_execution_at(
        &self,
        definition: &str,
        version: Option<u32>,
        input: Value,
        id: Option<String>,
    ) -> Result<(ExecutionRecord, bool)> {
        if self.is_shutting_down() {
            return Err(Error::ShuttingDown);
        }
        let id = match id {
            Some(id) if !valid_id(&id) => return Err(Error::InvalidId(id)),
            Some(id) => {
                // A repeated start with the caller's id answers without deciding.
                if let Ok(existing) = self.shared.store.get_execution(&id).await {
                    return self.same_start(existing, definition, &input);
                }
                id
            }
            // Fresh: nothing to look up (the create stays idempotent anyway).
            None => uuid::Uuid::now_v7().to_string(),
        };
        let (version, plan) = self.plan(definition, version).await?;
        // The start is decided like every later input (one decision applied
        // once).
        let mut state = Execution::empty(&plan);
        let sagaflow_core::Applied { events, effects } = state
            .decide_in_place(
                &plan,
                Input::Start {
                    execution_id: id.clone(),
                    definition: plan.name.clone(),
                    version,
                    input: input.clone(),
                },
                actor::ctx(),
            )
            .map_err(Error::NotAllowed)?;
        // The start decision schedules the first step(s): counted like every
        // later decision's (once the create is stored).
        let scheduled = events
            .iter()
            .filter(|e| matches!(e.kind, sagaflow_core::EventKind::StepScheduled { .. }))
            .count() as u64;
        // What it stores is derived as for every later decision (the
        // summary, the timers it arms, the notification if it finished at
        // once), and written in one create.
        let stored = actor::Stored::of(&self.shared.config, &plan, &state, events, &effects, false);
        let ownership = &self.shared.ownership;
        ownership.refuse_if_fenced()?;
        let created = ownership
            .create(&*self.shared.store, stored.into_create())
            .await;
        self.shared.health.observe_storage(&created);
        match created? {
            Created::Existing(existing) => self.same_start(existing, definition, &input),
            Created::New(record) => {
                metrics::counter!("sagaflow_executions_started_total", "definition" => plan.name.clone()).increment(1);
                metrics::counter!("sagaflow_steps_scheduled_total").increment(scheduled);
                actor::spawn(self.clone(), plan, state, effects);
                Ok((record, true))
            }
        }
    }

    fn same_start(
        &self,
        existing: ExecutionRecord,
        definition: &str,
        input: &Value,
    ) -> Result<(ExecutionRecord, bool)> {
        if existing.definition != definition {
            return Err(Error::ExecutionConflict {
                id: existing.id,
                what: "definition",
            });
        }
        if &existing.input != input {
            return Err(Error::ExecutionConflict {
                id: existing.id,
                what: "input",
            });
        }
        Ok((existing, false))
    }

    /// The actor of an execution, loading it from history if it is not in memory.
    pub(crate) async fn resident(&self, id: &str) -> Result<actor::Mailbox> {
        if let Some(tx) = self.lock_actors().get(id) {
            return Ok(tx.clone());
        }
        let rec = match self.shared.store.get_execution(id).await {
            Ok(r) => r,
            Err(sagaflow_store::Error::NotFound { .. }) => {
                return Err(Error::ExecutionNotFound(id.to_string()))
            }
            Err(e) => return Err(e.into()),
        };
        if !rec.status.is_terminal() {
            self.claim(id).await?;
        }
        let (plan, state) = self.load(&rec).await?;
        let effects = state.outstanding(&plan);
        if let Some(tx) = self.lock_actors().get(id) {
            return Ok(tx.clone()); // someone loaded it meanwhile
        }
        Ok(actor::spawn(self.clone(), plan, state, effects))
    }

    /// Rebuilds an execution's state from its history.
    async fn load(&self, rec: &ExecutionRecord) -> Result<(Arc<Plan>, Execution)> {
        let (_, plan) = self.plan(&rec.definition, Some(rec.version)).await?;
        let history = self.shared.store.load_history(&rec.id).await?;
        let state = Execution::replay(&plan, &history).map_err(|source| Error::Unreplayable {
            id: rec.id.clone(),
            source,
        })?;
        Ok((plan, state))
    }

    /// Recovery of one execution: back into memory with what was in flight,
    /// unless it only waits for callbacks (then its timers and callbacks
    /// bring it back when needed).
    pub(crate) async fn resume(&self, rec: ExecutionRecord) -> Result<()> {
        let (plan, state) = self.load(&rec).await?;
        // Its activity tasks waiting for a worker are offered again (those
        // a crash kept from being offered).
        let effects = state.outstanding(&plan);
        activities::offer_again(&self.shared, &plan, &state, &effects).await;
        if state.is_parked(&plan) {
            self.release(&rec.id).await;
            return Ok(());
        }
        actor::spawn(self.clone(), plan, state, effects);
        Ok(())
    }

    /// Several nodes: gives up the lease of an execution that left memory
    /// (parked), so that any node can take its callback or timer.
    pub(crate) async fn release(&self, id: &str) {
        self.shared.ownership.release(id).await
    }

    /// Forgets the mailbox `tx` of `id` if it is still registered (its
    /// actor is gone without deregistering).
    pub(crate) fn forget_actor(&self, id: &str, tx: &actor::Mailbox) {
        let mut actors = self.lock_actors();
        if actors.get(id).is_some_and(|t| t.same_channel(tx)) {
            actors.remove(id);
        }
    }

    pub(crate) fn lock_actors(&self) -> std::sync::MutexGuard<'_, HashMap<String, actor::Mailbox>> {
        self.shared.actors.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn command(&self, id: &str, input: Input) -> Result<ExecutionRecord> {
        self.ask(id, |reply| actor::Msg::Command {
            input: input.clone(),
            reply,
        })
        .await
    }

    /// Sends the message `make` builds to the actor of `id` and waits for its
    /// answer. An actor may be exiting just as the message reaches it (what
    /// is queued then is dropped): the execution is then loaded afresh and
    /// asked again, a few times before giving up with [`Error::Busy`].
    async fn ask(
        &self,
        id: &str,
        make: impl Fn(oneshot::Sender<Result<ExecutionRecord>>) -> actor::Msg,
    ) -> Result<ExecutionRecord> {
        const ATTEMPTS: usize = 5;
        for _ in 0..ATTEMPTS {
            let tx = self.resident(id).await?;
            let (reply, rx) = oneshot::channel();
            if tx.send(make(reply)).is_err() {
                // Gone without deregistering (it exits, or its task died):
                // the next attempt must not find this mailbox again.
                let mut actors = self.lock_actors();
                if actors.get(id).is_some_and(|t| t.same_channel(&tx)) {
                    actors.remove(id);
                }
                continue;
            }
            if let Ok(r) = rx.await {
                return r;
            }
        }
        if self.is_shutting_down() {
            Err(Error::ShuttingDown)
        } else {
            Err(Error::Busy(id.to_string()))
        }
    }

    /// Completes a callback task with its token: `Ok(output)` succeeds the
    /// task, `Err(error)` fails it (subject to its retry policy), `None`
    /// (heartbeat) checks that the task is still waiting, and, for a task
    /// with a `heartbeat`, starts its allowed silence again (the execution's
    /// actor keeps that watch; an answer ends it).
    pub async fn callback(
        &self,
        token: &str,
        outcome: Option<std::result::Result<Value, sagaflow_core::ErrorInfo>>,
    ) -> Result<ExecutionRecord> {
        let parsed = sagaflow_core::parse_task_token(token)
            .ok_or_else(|| Error::InvalidTaskToken(token.chars().take(80).collect()))?;
        let (id, step, task, attempt) = (
            parsed.execution_id.clone(),
            parsed.step.clone(),
            parsed.task,
            parsed.attempt,
        );
        let input = outcome.map(|o| match o {
            Ok(output) => Input::TaskSucceeded {
                step: step.clone(),
                task,
                attempt,
                output,
            },
            // A participant's error never passes for the engine's own outcome
            // (`Sagaflow.CallbackFailed`, the APIs' name for a failure sent
            // without one, means just what the participant said).
            Err(error) => Input::TaskFailed {
                step: step.clone(),
                task,
                attempt,
                error: if error.error == sagaflow_core::error_name::CALLBACK_FAILED {
                    error
                } else {
                    sagaflow_core::retry::participant_error(&error.error, &error.cause)
                },
            },
        });
        let answer = self
            .ask(&id, |reply| actor::Msg::Callback {
                token: parsed.clone(),
                input: input.clone(),
                reply,
            })
            .await;
        match answer {
            // A token of an execution that does not exist is none of ours.
            Err(Error::ExecutionNotFound(_)) => {
                Err(Error::InvalidTaskToken(token.chars().take(80).collect()))
            }
            answer => answer,
        }
    }

    /// Cancels a running execution: what was done is compensated; ends `cancelled`.
    pub async fn cancel(&self, id: &str, reason: &str) -> Result<ExecutionRecord> {
        self.command(
            id,
            Input::Cancel {
                reason: reason.to_string(),
            },
        )
        .await
    }

    /// Resumes a `failed` execution from where it stopped.
    pub async fn redrive(&self, id: &str) -> Result<ExecutionRecord> {
        self.command(id, Input::Redrive).await
    }

    /// Changes a running map run of an ASL execution (Step Functions'
    /// `UpdateMapRun`): its concurrency or tolerated failures.
    pub async fn update_map_run(
        &self,
        id: &str,
        update: sagaflow_core::asl::run::MapRunUpdate,
    ) -> Result<ExecutionRecord> {
        self.command(id, Input::UpdateMapRun(update)).await
    }

    /// Waits until the execution is terminal or `timeout` passes; returns its record either way.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<ExecutionRecord> {
        // Register before reading, so a finish in between is not missed. Each
        // waiter hears only about its own execution: thousands of waiters cost
        // nothing per finish of the others.
        let (_registered, rx) = self.shared.waiters.register(id);
        // One node: a resident actor knows whether its execution has
        // finished; if it still runs, its finish reaches this waiter.
        // Otherwise (or when it leaves memory meanwhile) the store tells.
        let sole = self.shared.ownership.is_sole_writer();
        let resident = if !sole || timeout.is_zero() {
            None
        } else {
            // Bounded: an actor retrying a failing append answers late.
            tokio::time::timeout(timeout, self.watch(id))
                .await
                .ok()
                .flatten()
        };
        match resident {
            Some(Some(rec)) => return Ok(rec),
            Some(None) => {}
            None => {
                let rec = self.get(id).await?;
                if rec.status.is_terminal() || timeout.is_zero() {
                    return Ok(rec);
                }
            }
        }
        if !sole {
            // Several nodes: the execution may finish on another node, which
            // cannot reach this waiter; the store tells.
            let deadline = tokio::time::Instant::now() + timeout;
            let mut rx = rx;
            loop {
                let nap = tokio::time::sleep(Duration::from_millis(100));
                tokio::select! {
                    r = &mut rx => return match r { Ok(rec) => Ok(rec), Err(_) => self.get(id).await },
                    _ = nap => {}
                }
                let rec = self.get(id).await?;
                if rec.status.is_terminal() || tokio::time::Instant::now() >= deadline {
                    return Ok(rec);
                }
            }
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(rec)) => Ok(rec),
            // Timed out (or the engine went away): the current state.
            _ => self.get(id).await,
        }
    }

    /// Asks the resident actor of `id` (see [`actor::Msg::Watch`]); `None`
    /// when none is resident or it left before answering.
    async fn watch(&self, id: &str) -> Option<Option<ExecutionRecord>> {
        let tx = self.lock_actors().get(id).cloned()?;
        let (reply, answer) = oneshot::channel();
        tx.send(actor::Msg::Watch { reply }).ok()?;
        answer.await.ok()
    }

    /// Subscribes to executions reaching a terminal status.
    pub fn subscribe(&self) -> broadcast::Receiver<Finished> {
        self.shared.finished.subscribe()
    }

    pub async fn get(&self, id: &str) -> Result<ExecutionRecord> {
        match self.shared.store.get_execution(id).await {
            Ok(r) => Ok(r),
            Err(sagaflow_store::Error::NotFound { .. }) => {
                Err(Error::ExecutionNotFound(id.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Executions resident in memory (running, compensating, or being handled).
    pub fn active(&self) -> usize {
        self.lock_actors().len()
    }

    /// Participant calls in flight.
    pub fn in_flight(&self) -> usize {
        self.shared.health.in_flight()
    }

    /// Graceful shutdown: stop starting participant calls and timers, and wait
    /// (up to `grace`) until every call in flight has had its result recorded.
    /// What was not started stays durable in history and resumes on restart.
    pub async fn shutdown(&self, grace: Duration) {
        self.shared.health.begin_shutdown();
        let deadline = tokio::time::Instant::now() + grace;
        while self.in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Several nodes: the leases of what is still resident run out and
        // the other nodes take those executions over (a released lease would
        // mean "parked", which nobody resumes without a callback or timer).
    }

    /// `Err(reason)` while storage writes are failing (disk full, read-only
    /// file, database down). Work in flight keeps retrying its writes.
    pub fn health(&self) -> std::result::Result<(), String> {
        match self.shared.health.storage_fault() {
            Some(msg) => Err(msg),
            None => Ok(()),
        }
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shared.health.is_shutting_down()
    }

    /// Deletes a definition (Step Functions' DeleteStateMachine): it starts
    /// no more executions and is not listed; running executions keep their
    /// version and go on, and every history stays readable. `Ok(false)` when
    /// there was no such definition (deleting is idempotent).
    pub async fn delete_definition(&self, name: &str) -> Result<bool> {
        let deleted = self.shared.store.delete_definition(name).await;
        self.shared.health.observe_storage(&deleted);
        // The cached latest version would still start executions.
        self.shared.plans.forget_latest(name);
        Ok(deleted?)
    }
}

/// Statuses reported as finished by the engine (for metrics labels).
pub fn status_label(s: Status) -> &'static str {
    s.as_str()
}
