//! Sagaflow's storage API, split by role, and its backends.
//!
//! - [`Executor`]: what the runtime needs — register definitions, create
//!   executions, append events with an optimistic version check, claim due
//!   timers, list unfinished executions for recovery, and drain the
//!   notification outbox (see [`Append::notify`]).
//! - [`Query`]: what the API and the CLI need — get, list with filters and a
//!   cursor, history.
//! - [`Leases`]: what several nodes sharing one store need — leases on
//!   executions, fenced appends, the node registry. A capability, not a
//!   role every backend plays: only the stores several processes can share
//!   implement it, so a cluster node on a single-process store (SQLite)
//!   cannot be built.
//!
//! Backends: [`sqlite::SqliteStore`] (the embedded default, group-committed
//! appends; no leases), [`postgres::PostgresStore`] (a PostgreSQL database)
//! and [`memory::MemoryStore`] (tests). All pass the same conformance suite
//! (`conformance`, behind the feature of that name), and the two with
//! [`Leases`] its lease cases. Migrations are `.sql` files under
//! `migrations/{sqlite,postgres}/`, numbered alike (see [`migrations`]).

use async_trait::async_trait;
use sagaflow_core::event::Millis;
use sagaflow_core::{ErrorInfo, Event, Status, TaskKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[cfg(feature = "conformance")]
pub mod conformance;
mod encode;
pub mod memory;
pub mod migrations;
pub mod postgres;
pub mod sqlite;

/// Storage errors. `Conflict` and `NotFound` are expected outcomes callers act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} `{id}` not found")]
    NotFound { what: &'static str, id: String },
    /// The execution's history moved on since the caller read it.
    #[error("execution `{id}` is at version {actual}, not {expected}")]
    Conflict {
        id: String,
        expected: u64,
        actual: u64,
    },
    /// An append fenced by a node's lease found the lease expired or held
    /// by another node: the write was refused, nothing was stored.
    #[error("execution `{id}` is not leased to node `{node}`")]
    LeaseLost { id: String, node: String },
    #[error("invalid cursor `{0}`")]
    BadCursor(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("storage backend failed: {0}")]
    Backend(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// One registered version of a definition. Versions are immutable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefinitionRecord {
    pub name: String,
    pub version: u32,
    /// `saga` (the native format) or `asl`.
    pub format: String,
    pub source: String,
    pub digest: String,
    pub created_at: Millis,
}

/// A definition's tags: value by key.
pub type Tags = std::collections::BTreeMap<String, String>;

/// `tags` after a tagging: `set` added or replaced, then `remove` taken
/// away; `None` when that leaves more than `max` (nothing is written then).
/// Every backend tags definitions and activities through it.
pub(crate) fn retagged(mut tags: Tags, set: &Tags, remove: &[String], max: usize) -> Option<Tags> {
    tags.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
    for k in remove {
        tags.remove(k);
    }
    (tags.len() <= max).then_some(tags)
}

/// A published version of a definition (Step Functions'
/// PublishStateMachineVersion): every stored definition version is a
/// revision, and publishing one marks it, with a description, as a version
/// that can be listed, described, started and routed to by an alias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedVersion {
    pub name: String,
    pub version: u32,
    pub description: String,
    pub published_at: Millis,
}

/// A Step Functions activity: a named queue of tasks that workers poll.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityRecord {
    pub name: String,
    pub created_at: Millis,
    pub tags: Tags,
}

/// An activity task handed to a worker (GetActivityTask): the record that
/// makes it handed to one worker only, after a restart too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityTaskClaim {
    /// The task token handed out.
    pub token: String,
    pub execution_id: String,
    /// The poller's `workerName` (empty when it gave none).
    pub worker: String,
    pub claimed_at: Millis,
    /// The task's deadline: after it the record is useless and may go.
    pub expires_at: Millis,
}

/// An activity task waiting for a worker: offered when its execution parks
/// on the activity Task, gone when a worker takes it (see
/// [`Executor::claim_activity_task`]), when it is answered, or past its
/// deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityOffer {
    /// The task token the worker answers with.
    pub token: String,
    /// The activity's name.
    pub activity: String,
    pub execution_id: String,
    /// The task's effective input, handed to the worker.
    pub input: Value,
    pub offered_at: Millis,
    /// The task's deadline: after it the offer is useless and may go.
    pub expires_at: Millis,
}

/// An alias of a definition (Step Functions' state machine alias): a name
/// routing executions to one or two published versions by weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AliasRecord {
    /// The definition's name.
    pub name: String,
    pub alias: String,
    pub description: String,
    /// `(version, weight)`, in the order given.
    pub routing: Vec<(u32, u32)>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// The outcome of [`Executor::put_alias`].
#[derive(Debug, Clone, PartialEq)]
pub enum AliasWrite {
    /// Stored as given.
    Stored(AliasRecord),
    /// A create found the alias already there: the stored one, unchanged.
    Exists(AliasRecord),
    /// A routed version is not published: nothing was written.
    Unpublished(u32),
}

impl AliasWrite {
    /// What a put of `alias` stores, decided alike by every backend from
    /// what it read in the same transaction (the alias as stored, if any;
    /// whether a version is published): `Ok(record)` to write, or the
    /// answer to give without writing (`Exists`, `Unpublished`). Updating
    /// an alias that does not exist is `NotFound`.
    pub(crate) fn plan(
        alias: &AliasRecord,
        create: bool,
        existing: Option<AliasRecord>,
        published: impl Fn(u32) -> bool,
    ) -> Result<std::result::Result<AliasRecord, AliasWrite>> {
        let mut stored = alias.clone();
        match (create, existing) {
            (true, Some(e)) => return Ok(Err(AliasWrite::Exists(e))),
            (false, None) => {
                return Err(Error::NotFound {
                    what: "alias",
                    id: format!("{}:{}", alias.name, alias.alias),
                })
            }
            (false, Some(e)) => stored.created_at = e.created_at,
            (true, None) => {}
        }
        if let Some((v, _)) = alias.routing.iter().find(|(v, _)| !published(*v)) {
            return Ok(Err(AliasWrite::Unpublished(*v)));
        }
        Ok(Ok(stored))
    }
}

/// The outcome of [`Executor::unpublish_version`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unpublish {
    /// The version is no longer published.
    Done,
    /// It was not published (or the definition is not live): nothing to do.
    Absent,
    /// An alias routes to it (this one): nothing was written.
    Routed(String),
}

/// The summary row of an execution, kept in step with its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRecord {
    pub id: String,
    pub definition: String,
    pub version: u32,
    pub status: Status,
    pub input: Value,
    pub output: Option<Value>,
    pub error: Option<ErrorInfo>,
    pub started_at: Millis,
    pub updated_at: Millis,
    /// Number of events in the history: the version for optimistic appends.
    pub events: u64,
}

/// Outcome of an idempotent create.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    New(ExecutionRecord),
    /// An execution with this id already existed; nothing was written.
    Existing(ExecutionRecord),
}

/// A new execution: the summary and events of its start decision, and what
/// that decision derives — the durable timers it arms and the notification
/// it records if it finished the execution at once — written together, as
/// an [`Append`] writes a later decision's.
#[derive(Debug, Clone, PartialEq)]
pub struct Create {
    pub record: ExecutionRecord,
    pub events: Vec<Event>,
    pub timers: Vec<Timer>,
    /// Recorded in the outbox in the same write (see [`Append::notify`]).
    pub notify: Option<NotificationKind>,
}

impl Create {
    /// A create that records no notification.
    pub fn new(record: ExecutionRecord, events: Vec<Event>, timers: Vec<Timer>) -> Create {
        Create {
            record,
            events,
            timers,
            notify: None,
        }
    }
}

/// Events to append to one execution, and the summary they lead to.
#[derive(Debug, Clone, PartialEq)]
pub struct Append {
    pub execution_id: String,
    /// The number of events the caller has seen; the append fails otherwise.
    pub expected_version: u64,
    pub events: Vec<Event>,
    pub status: Status,
    pub output: Option<Value>,
    pub error: Option<ErrorInfo>,
    pub updated_at: Millis,
    /// Durable timers armed by these events.
    pub timers: Vec<Timer>,
    /// Records a [`Notification`] of this kind (with this append's `status`
    /// and `updated_at`) in the outbox, in the same transaction as the
    /// events: either both are stored or neither is (a conflict stores
    /// neither).
    pub notify: Option<NotificationKind>,
}

/// A node's lease on an execution: while `until` (the store's clock, ms)
/// has not passed, only `node` may append to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub node: String,
    pub until: Millis,
}

/// A pending entry of the notification outbox: an execution reached a status
/// someone must hear about (the on-failure hook). It stays pending until
/// [`Executor::ack_notification`] removes it, so delivery survives crashes
/// (at-least-once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Increasing in insertion order; never reused.
    pub id: u64,
    pub execution_id: String,
    /// The status the execution reached with the notifying append.
    pub status: Status,
    /// The notifying append's `updated_at`.
    pub created_at: Millis,
    pub kind: NotificationKind,
}

/// What a notification announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// The execution finished with `status` (hook event `execution.<status>`).
    Finished,
    /// A compensation keeps failing: the execution needs a human (hook event
    /// `execution.stuck`); `status` is the one it had then.
    Stuck,
}

impl NotificationKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            NotificationKind::Finished => "finished",
            NotificationKind::Stuck => "stuck",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "finished" => Some(NotificationKind::Finished),
            "stuck" => Some(NotificationKind::Stuck),
            _ => None,
        }
    }
}

impl Notification {
    /// The hook event name: `execution.stuck` or `execution.<status>`.
    pub fn event(&self) -> String {
        match self.kind {
            NotificationKind::Finished => format!("execution.{}", self.status.as_str()),
            NotificationKind::Stuck => "execution.stuck".to_string(),
        }
    }
}

/// A notification whose delivery gave up, kept until someone replays it
/// ([`Executor::replay_dead_letter`]): nothing the hook could not deliver
/// is dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The notification as it was in the outbox (`id` is kept).
    pub notification: Notification,
    /// When the delivery gave up (the host's clock).
    pub failed_at: Millis,
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: String,
}

/// A durable timer: deliver `TimerFired` to the execution at `fire_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timer {
    pub execution_id: String,
    pub step: String,
    pub task: TaskKind,
    pub attempt: u32,
    pub fire_at: Millis,
}

/// One entry of a history: its 1-based position and the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub seq: u64,
    pub event: Event,
}

/// Filters and paging of [`Query::list_executions`]. Newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListFilter {
    pub status: Option<Status>,
    pub definition: Option<String>,
    /// Only executions started at or after this time (ms since the epoch).
    pub started_after: Option<Millis>,
    /// Only executions started before this time.
    pub started_before: Option<Millis>,
    pub limit: usize,
    /// Opaque, from [`Page::next_cursor`].
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<ExecutionRecord>,
    pub next_cursor: Option<String>,
}

/// The runtime's role.
#[async_trait]
pub trait Executor: Send + Sync {
    /// Registers `source` under `name`. If the latest version has the same
    /// digest it is returned with `false`; otherwise a new version is created.
    async fn put_definition(
        &self,
        name: &str,
        format: &str,
        source: &str,
        digest: &str,
        now: Millis,
    ) -> Result<(DefinitionRecord, bool)>;
    /// A definition version; `None` = the latest (`NotFound` once the
    /// definition was deleted; numbered versions stay readable).
    async fn get_definition(&self, name: &str, version: Option<u32>) -> Result<DefinitionRecord>;
    /// Deletes a definition (Step Functions' DeleteStateMachine): its name no
    /// longer has a latest version (`get_definition(name, None)` is
    /// `NotFound`) and it is not listed, while every version stays readable
    /// by number, so the executions that use one still run and their
    /// histories still render. Registering the name again creates the next
    /// version, even with the deleted one's digest. Idempotent: `false` when
    /// there was no live definition of that name.
    async fn delete_definition(&self, name: &str) -> Result<bool>;
    /// The tags of a live definition (Step Functions' tags of a state
    /// machine), by key; `NotFound` when `name` has no live definition.
    /// Deleting a definition deletes its tags.
    async fn definition_tags(&self, name: &str) -> Result<Tags>;
    /// Sets the tags of `set` (a key already there takes the new value) and
    /// removes the keys of `remove` (unknown ones are ignored) on a live
    /// definition, in one write, and returns its tags then. When they would
    /// be more than `max`, nothing is written: `Ok(None)`. `NotFound` when
    /// `name` has no live definition.
    async fn tag_definition(
        &self,
        name: &str,
        set: &Tags,
        remove: &[String],
        max: usize,
    ) -> Result<Option<Tags>>;
    /// Publishes version `version` of the live definition `name` with
    /// `description`, or returns it as published before (then `false`, and
    /// its description unchanged). `NotFound` when `name` is not live or has
    /// no such version. Deleting the definition unpublishes its versions.
    async fn publish_version(
        &self,
        name: &str,
        version: u32,
        description: &str,
        now: Millis,
    ) -> Result<(PublishedVersion, bool)>;
    /// The published versions of the live definition `name`, newest first
    /// (`NotFound` when it is not live).
    async fn published_versions(&self, name: &str) -> Result<Vec<PublishedVersion>>;
    /// Unpublishes a version, unless an alias routes to it (checked in the
    /// same write). The definition version itself stays (executions use it).
    async fn unpublish_version(&self, name: &str, version: u32) -> Result<Unpublish>;
    /// Creates (`create`) or replaces an alias of the live definition
    /// `alias.name`, in one write that checks every routed version is
    /// published. A create of an existing alias writes nothing and answers
    /// [`AliasWrite::Exists`]; a replace of a missing one is `NotFound`, and
    /// keeps the stored `created_at`. `NotFound` when the definition is not
    /// live. Deleting the definition deletes its aliases.
    async fn put_alias(&self, alias: &AliasRecord, create: bool) -> Result<AliasWrite>;
    /// The aliases of the live definition `name`, by alias name (`NotFound`
    /// when it is not live).
    async fn definition_aliases(&self, name: &str) -> Result<Vec<AliasRecord>>;
    /// Deletes an alias; `false` when there was none.
    async fn delete_alias(&self, name: &str, alias: &str) -> Result<bool>;
    /// Records how execution `id` was started when that was not the
    /// definition's latest version: `qualifier` is the version number it was
    /// started with or the alias it was started through. The first record
    /// of an id stays (a repeated start changes nothing).
    async fn record_execution_origin(&self, id: &str, qualifier: &str) -> Result<()>;
    /// What [`Executor::record_execution_origin`] recorded for `id`.
    async fn execution_origin(&self, id: &str) -> Result<Option<String>>;
    /// Creates activity `name` with `tags` at `now`, or returns the existing
    /// one unchanged (then `false`; its tags are not touched).
    async fn create_activity(
        &self,
        name: &str,
        tags: &Tags,
        now: Millis,
    ) -> Result<(ActivityRecord, bool)>;
    /// An activity, `None` when there is none of that name.
    async fn get_activity(&self, name: &str) -> Result<Option<ActivityRecord>>;
    /// Every activity, by name.
    async fn list_activities(&self) -> Result<Vec<ActivityRecord>>;
    /// Deletes an activity and its tags; `false` when there was none.
    async fn delete_activity(&self, name: &str) -> Result<bool>;
    /// [`Executor::tag_definition`] for an activity: sets `set`, removes
    /// `remove`, in one write; `Ok(None)` (nothing written) past `max`;
    /// `NotFound` when there is no such activity.
    async fn tag_activity(
        &self,
        name: &str,
        set: &Tags,
        remove: &[String],
        max: usize,
    ) -> Result<Option<Tags>>;
    /// Offers an activity task to the workers of its activity (every node
    /// sees it): `false` (nothing written) when its token is offered or was
    /// taken already. Offers whose `expires_at` is before
    /// `offer.offered_at` are removed in the same write.
    async fn offer_activity_task(&self, offer: &ActivityOffer) -> Result<bool>;
    /// Up to `limit` offers of activity `activity` whose deadline is not
    /// before `now`, oldest first (by `offered_at`, then token).
    async fn activity_offers(
        &self,
        activity: &str,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<ActivityOffer>>;
    /// Records that a worker took the activity task of `claim.token`, and
    /// withdraws its offer, in one write: `false` (nothing written) when it
    /// was taken before. Records whose `expires_at` is before
    /// `claim.claimed_at` are removed in the same write.
    async fn claim_activity_task(&self, claim: &ActivityTaskClaim) -> Result<bool>;
    /// Removes an activity task's offer and the record of its taking (it
    /// was answered, or no longer waits). Idempotent.
    async fn forget_activity_task(&self, token: &str) -> Result<()>;
    /// Creates an execution with its first events and the durable timers
    /// they arm (in one write, as [`Executor::append`] does), or returns the
    /// existing one with the same id (the caller decides whether that is a
    /// conflict; nothing is written then, timers included).
    async fn create_execution(&self, create: Create) -> Result<Created>;
    /// Appends events atomically (group-committed with other appends where
    /// the backend can). Returns the new version.
    async fn append(&self, append: Append) -> Result<u64>;
    /// Removes and returns timers due at `now` (at most `limit`).
    async fn claim_due_timers(&self, now: Millis, limit: usize) -> Result<Vec<Timer>>;
    /// Executions that are running or compensating (recovery).
    async fn unfinished(&self) -> Result<Vec<ExecutionRecord>>;
    /// The full history of one execution.
    async fn load_history(&self, id: &str) -> Result<Vec<Event>>;
    /// Notifications not yet acknowledged, oldest first (at most `limit`).
    async fn pending_notifications(&self, limit: usize) -> Result<Vec<Notification>>;
    /// Removes a notification from the outbox. Idempotent: an unknown or
    /// already acknowledged id is not an error.
    async fn ack_notification(&self, id: u64) -> Result<()>;
    /// Moves a notification whose delivery gave up from the outbox to the
    /// dead letters, in one transaction. Idempotent: a notification no
    /// longer in the outbox is left alone.
    async fn bury_notification(&self, dead: DeadLetter) -> Result<()>;
    /// Dead letters, oldest first (at most `limit`).
    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>>;
    /// Puts a dead letter back in the outbox as a new pending notification
    /// (a new id) and removes it from the dead letters, in one transaction.
    /// `None`: no dead letter has this id.
    async fn replay_dead_letter(&self, id: u64) -> Result<Option<Notification>>;
}

/// Several nodes on one store: leases on executions and the registry of
/// nodes. Only the stores several processes can share implement it
/// (PostgreSQL, and memory for in-process tests): a store that one process
/// owns (SQLite, with its lock file) has no leases, so a cluster node cannot
/// be built on it. Leases are measured by the store's clock, so nodes need
/// not agree on the time.
#[async_trait]
pub trait Leases: Send + Sync {
    /// [`Executor::create_execution`] for one node among several: a new
    /// execution is leased to `node` for `ttl_ms` in the same write, so it
    /// is never without an owner (a node dying right after creating it
    /// leaves an expiring lease that another node takes over). An existing
    /// execution is returned unchanged, its lease untouched.
    async fn create_execution_leased(
        &self,
        create: Create,
        node: &str,
        ttl_ms: u64,
    ) -> Result<Created>;
    /// [`Executor::append`] fenced by `node`'s lease: stored only if `node`
    /// holds a live lease on the execution ([`Error::LeaseLost`] otherwise;
    /// the version is checked first, so a stale caller hears
    /// [`Error::Conflict`]). A finished execution has no lease: an append to
    /// it (a redrive) is checked by version only, and the node claims the
    /// lease after it. An append that finishes the execution gives the
    /// lease up.
    async fn append_fenced(&self, append: Append, node: &str) -> Result<u64>;
    /// Records that `node` is alive and reachable at `address` (the base URL
    /// other nodes forward requests to) for the next `ttl_ms`.
    async fn heartbeat_node(&self, node: &str, address: &str, ttl_ms: u64) -> Result<()>;
    /// The address of `node` if its registration is live.
    async fn node_address(&self, node: &str) -> Result<Option<String>>;
    /// Takes (or renews) the lease on an unfinished execution for `node`
    /// when it is free: never leased, released, expired, or already
    /// `node`'s. `Ok(None)`: `node` holds it now for `ttl_ms`;
    /// `Ok(Some(lease))`: another node holds a live lease. A finished
    /// execution is never leased (`Ok(None)`, nothing changes).
    async fn claim(&self, id: &str, node: &str, ttl_ms: u64) -> Result<Option<Lease>>;
    /// Extends every live lease `node` holds by `ttl_ms` from now; returns
    /// how many. A lease that already expired is not revived (another node
    /// may be taking it over).
    async fn renew(&self, node: &str, ttl_ms: u64) -> Result<u64>;
    /// Gives up `node`'s lease on an execution that parked (it waits for a
    /// callback or a timer): any node may claim it at once, and none takes
    /// it over before then. No-op if not `node`'s.
    async fn release(&self, id: &str, node: &str) -> Result<()>;
    /// Claims for `node` up to `limit` unfinished executions whose lease
    /// expired (their node died or lost the store), or that were never
    /// leased (created by a single server before the database became a
    /// cluster's), and returns them; each is returned to one node only, even
    /// when several ask at once. Released (parked) executions are not taken.
    async fn take_over(
        &self,
        node: &str,
        ttl_ms: u64,
        limit: usize,
    ) -> Result<Vec<ExecutionRecord>>;
    /// [`Executor::pending_notifications`] for one node among several: the
    /// returned notifications are claimed by `node` for `ttl_ms`, so no
    /// other node delivers them meanwhile (once the claim runs out without an
    /// ack, another node may deliver them: still at least once).
    async fn claim_notifications(
        &self,
        node: &str,
        ttl_ms: u64,
        limit: usize,
    ) -> Result<Vec<Notification>>;
    /// [`Executor::claim_due_timers`] for one node among several: only timers
    /// of executions that `node` holds, or that are free (it claims those
    /// executions' leases in the same transaction, for `ttl_ms`).
    async fn claim_due_timers_for(
        &self,
        node: &str,
        ttl_ms: u64,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<Timer>>;
}

/// The API's role.
#[async_trait]
pub trait Query: Send + Sync {
    async fn get_execution(&self, id: &str) -> Result<ExecutionRecord>;
    async fn list_executions(&self, filter: &ListFilter) -> Result<Page>;
    /// History entries with `seq > after`, oldest first, at most `limit`
    /// of them: one page of a history that may be long (the API pages it).
    async fn history_page(&self, id: &str, after: u64, limit: usize) -> Result<Vec<HistoryEntry>>;
    /// When execution `id` recorded events of type `kind` (an
    /// [`EventKind::name`](sagaflow_core::EventKind::name)), oldest first:
    /// a count read without decoding the history (the SQL stores read the
    /// `type` column only).
    async fn event_times(&self, id: &str, kind: &str) -> Result<Vec<Millis>> {
        Ok(self
            .history(id, 0)
            .await?
            .into_iter()
            .filter(|h| h.event.kind.name() == kind)
            .map(|h| h.event.at)
            .collect())
    }
    /// Every history entry with `seq > after`.
    async fn history(&self, id: &str, after: u64) -> Result<Vec<HistoryEntry>> {
        self.history_page(id, after, usize::MAX).await
    }
    /// The latest version of every definition that is not deleted.
    async fn list_definitions(&self) -> Result<Vec<DefinitionRecord>>;
}

/// A backend that plays both roles.
pub trait Store: Executor + Query {}
impl<T: Executor + Query> Store for T {}

/// A backend several nodes can share: both roles and [`Leases`].
pub trait SharedStore: Store + Leases {}
impl<T: Store + Leases> SharedStore for T {}
