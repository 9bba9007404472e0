//! An in-memory store for tests and benchmarks. Same semantics as SQLite,
//! nothing survives the process.
//!
//! It also implements [`Leases`] (leases, fenced appends, the node
//! registry) as PostgreSQL does, so that several in-process nodes can share
//! one `Arc<MemoryStore>` in tests. The
//! store's clock is the host's: every node in the process shares it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sagaflow_core::event::Millis;
use sagaflow_core::{Event, Status};

use crate::{
    ActivityOffer, ActivityRecord, ActivityTaskClaim, AliasRecord, AliasWrite, PublishedVersion,
    Unpublish,
};
use crate::{
    Append, Create, Created, DeadLetter, DefinitionRecord, Error, ExecutionRecord, Executor,
    HistoryEntry, Lease, Leases, ListFilter, Notification, NotificationKind, Page, Query, Result,
    Tags, Timer,
};

#[derive(Default)]
struct Inner {
    definitions: BTreeMap<String, Vec<DefinitionRecord>>,
    /// Deleted definitions: every version they had is deleted (a new
    /// registration takes the name out again).
    deleted: HashSet<String>,
    /// Tags of live definitions, by name.
    tags: HashMap<String, Tags>,
    /// Published versions of live definitions, by name and version.
    published: HashMap<String, BTreeMap<u32, PublishedVersion>>,
    /// Aliases of live definitions, by name and alias.
    aliases: HashMap<String, BTreeMap<String, AliasRecord>>,
    /// How executions were started (version or alias), by id.
    origins: HashMap<String, String>,
    /// Activities, by name.
    activities: BTreeMap<String, ActivityRecord>,
    /// Activity tasks taken by workers, by token.
    activity_tasks: HashMap<String, ActivityTaskClaim>,
    /// Activity tasks waiting for a worker, by token.
    activity_offers: HashMap<String, ActivityOffer>,
    executions: HashMap<String, (u64, ExecutionRecord, Vec<Event>)>,
    next_seq: u64,
    timers: Vec<Timer>,
    /// The outbox, by id (so oldest first).
    outbox: BTreeMap<u64, Notification>,
    next_notification: u64,
    /// Notifications whose delivery gave up, by id.
    dead_letters: BTreeMap<u64, DeadLetter>,
    /// Leases by execution id. A released or finished execution has none.
    leases: HashMap<String, Lease>,
    /// The node registry: address and `alive_until` by node id.
    nodes: HashMap<String, (String, Millis)>,
    /// Notifications being delivered, by id: claimed until then.
    claimed: HashMap<u64, Millis>,
    /// Executions whose lease was released (parked): not taken over. An
    /// unfinished execution with no lease that is not here was never leased.
    released: HashSet<String>,
}

impl Inner {
    /// `NotFound` unless `name` has a live definition.
    fn live(&self, name: &str) -> Result<()> {
        if self.definitions.contains_key(name) && !self.deleted.contains(name) {
            Ok(())
        } else {
            Err(Error::NotFound {
                what: "definition",
                id: name.to_string(),
            })
        }
    }

    /// Whether `id` exists and is running or compensating.
    fn unfinished(&self, id: &str) -> bool {
        self.executions
            .get(id)
            .is_some_and(|(_, r, _)| !r.status.is_terminal())
    }

    /// Whether `node` may act on `id` at `now`: nobody holds a live lease
    /// on it but `node`.
    fn free_for(&self, id: &str, node: &str, now: Millis) -> bool {
        self.leases
            .get(id)
            .is_none_or(|l| l.node == node || l.until < now)
    }

    /// Creates an execution (leased to a node, in one step) or returns the existing one.
    fn create(&mut self, c: Create, lease: Option<(&str, u64)>) -> Created {
        let Create {
            record,
            events,
            timers,
            notify,
        } = c;
        if let Some((_, existing, _)) = self.executions.get(&record.id) {
            return Created::Existing(existing.clone());
        }
        self.timers.extend(timers);
        if let Some(kind) = notify {
            self.record_notification(&record.id, record.status, record.updated_at, kind);
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        let mut record = record;
        record.events = events.len() as u64;
        self.executions
            .insert(record.id.clone(), (seq, record.clone(), events));
        if let Some((node, ttl_ms)) = lease {
            self.lease(&record.id, node, ttl_ms, now_ms());
        }
        Created::New(record)
    }

    /// Appends, fenced by `fence`'s lease when given (as PostgreSQL checks it).
    fn append(&mut self, a: Append, fence: Option<&str>) -> Result<u64> {
        let (_, rec, events) = self
            .executions
            .get_mut(&a.execution_id)
            .ok_or_else(|| not_found(&a.execution_id))?;
        if rec.events != a.expected_version {
            return Err(Error::Conflict {
                id: a.execution_id,
                expected: a.expected_version,
                actual: rec.events,
            });
        }
        // The fence, as PostgreSQL checks it: a live lease of the node, or a
        // finished execution (it has no lease; the version proves the
        // appender saw the finish, e.g. a redrive).
        if let Some(node) = fence {
            let held = self
                .leases
                .get(&a.execution_id)
                .is_some_and(|l| l.node == node && l.until >= now_ms());
            if !(held || rec.status.is_terminal()) {
                return Err(Error::LeaseLost {
                    id: a.execution_id,
                    node: node.to_string(),
                });
            }
        }
        events.extend(a.events.iter().cloned());
        rec.events = events.len() as u64;
        rec.status = a.status;
        rec.output = a.output;
        rec.error = a.error;
        rec.updated_at = a.updated_at;
        let v = rec.events;
        if fence.is_some() && a.status.is_terminal() {
            self.leases.remove(&a.execution_id);
        }
        self.timers.extend(a.timers);
        if let Some(kind) = a.notify {
            self.record_notification(&a.execution_id, a.status, a.updated_at, kind);
        }
        Ok(v)
    }

    /// Puts a notification in the outbox (with the write that decided it).
    fn record_notification(
        &mut self,
        id: &str,
        status: Status,
        at: Millis,
        kind: NotificationKind,
    ) {
        self.next_notification += 1;
        let n = self.next_notification;
        self.outbox.insert(
            n,
            Notification {
                id: n,
                execution_id: id.to_string(),
                status,
                created_at: at,
                kind,
            },
        );
    }

    fn lease(&mut self, id: &str, node: &str, ttl_ms: u64, now: Millis) {
        let lease = Lease {
            node: node.to_string(),
            until: now.saturating_add(ttl_ms),
        };
        self.leases.insert(id.to_string(), lease);
        self.released.remove(id);
    }
}

/// The store's clock for leases.
fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// See the module docs.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave half-applied state
        // (every method mutates at its end), so a poisoned lock is usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn not_found(id: &str) -> Error {
    Error::NotFound {
        what: "execution",
        id: id.to_string(),
    }
}

#[async_trait]
impl Executor for MemoryStore {
    async fn put_definition(
        &self,
        name: &str,
        format: &str,
        source: &str,
        digest: &str,
        now: Millis,
    ) -> Result<(DefinitionRecord, bool)> {
        let mut guard = self.lock();
        let g = &mut *guard;
        let live = !g.deleted.contains(name);
        let versions = g.definitions.entry(name.to_string()).or_default();
        if let Some(last) = versions.last() {
            if live && last.digest == digest {
                return Ok((last.clone(), false));
            }
        }
        let rec = DefinitionRecord {
            name: name.to_string(),
            version: versions.len() as u32 + 1,
            format: format.to_string(),
            source: source.to_string(),
            digest: digest.to_string(),
            created_at: now,
        };
        versions.push(rec.clone());
        g.deleted.remove(name);
        Ok((rec, true))
    }

    async fn get_definition(&self, name: &str, version: Option<u32>) -> Result<DefinitionRecord> {
        let g = self.lock();
        let versions = g.definitions.get(name);
        let found = match version {
            None if g.deleted.contains(name) => None,
            None => versions.and_then(|v| v.last()),
            Some(n) => versions.and_then(|v| v.iter().find(|d| d.version == n)),
        };
        found.cloned().ok_or_else(|| Error::NotFound {
            what: "definition",
            id: match version {
                Some(n) => format!("{name}@{n}"),
                None => name.to_string(),
            },
        })
    }

    async fn delete_definition(&self, name: &str) -> Result<bool> {
        let mut g = self.lock();
        if !g.definitions.contains_key(name) {
            return Ok(false);
        }
        g.tags.remove(name);
        g.published.remove(name);
        g.aliases.remove(name);
        Ok(g.deleted.insert(name.to_string()))
    }

    async fn publish_version(
        &self,
        name: &str,
        version: u32,
        description: &str,
        now: Millis,
    ) -> Result<(PublishedVersion, bool)> {
        let mut g = self.lock();
        g.live(name)?;
        if !g.definitions[name].iter().any(|d| d.version == version) {
            return Err(Error::NotFound {
                what: "definition",
                id: format!("{name}@{version}"),
            });
        }
        let versions = g.published.entry(name.to_string()).or_default();
        if let Some(v) = versions.get(&version) {
            return Ok((v.clone(), false));
        }
        let v = PublishedVersion {
            name: name.to_string(),
            version,
            description: description.to_string(),
            published_at: now,
        };
        versions.insert(version, v.clone());
        Ok((v, true))
    }

    async fn published_versions(&self, name: &str) -> Result<Vec<PublishedVersion>> {
        let g = self.lock();
        g.live(name)?;
        Ok(g.published
            .get(name)
            .map(|vs| vs.values().rev().cloned().collect())
            .unwrap_or_default())
    }

    async fn unpublish_version(&self, name: &str, version: u32) -> Result<Unpublish> {
        let mut g = self.lock();
        if let Some(a) = g.aliases.get(name).and_then(|a| {
            a.values()
                .find(|a| a.routing.iter().any(|r| r.0 == version))
        }) {
            return Ok(Unpublish::Routed(a.alias.clone()));
        }
        let removed = g
            .published
            .get_mut(name)
            .and_then(|vs| vs.remove(&version))
            .is_some();
        Ok(if removed {
            Unpublish::Done
        } else {
            Unpublish::Absent
        })
    }

    async fn put_alias(&self, alias: &AliasRecord, create: bool) -> Result<AliasWrite> {
        let mut g = self.lock();
        g.live(&alias.name)?;
        let existing = g
            .aliases
            .get(&alias.name)
            .and_then(|a| a.get(&alias.alias))
            .cloned();
        let published = g.published.get(&alias.name);
        let is_published = |v| published.is_some_and(|p| p.contains_key(&v));
        let stored = match AliasWrite::plan(alias, create, existing, is_published)? {
            Ok(stored) => stored,
            Err(answer) => return Ok(answer),
        };
        g.aliases
            .entry(alias.name.clone())
            .or_default()
            .insert(alias.alias.clone(), stored.clone());
        Ok(AliasWrite::Stored(stored))
    }

    async fn definition_aliases(&self, name: &str) -> Result<Vec<AliasRecord>> {
        let g = self.lock();
        g.live(name)?;
        Ok(g.aliases
            .get(name)
            .map(|a| a.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn delete_alias(&self, name: &str, alias: &str) -> Result<bool> {
        let mut g = self.lock();
        Ok(g.aliases
            .get_mut(name)
            .and_then(|a| a.remove(alias))
            .is_some())
    }

    async fn record_execution_origin(&self, id: &str, qualifier: &str) -> Result<()> {
        self.lock()
            .origins
            .entry(id.to_string())
            .or_insert_with(|| qualifier.to_string());
        Ok(())
    }

    async fn execution_origin(&self, id: &str) -> Result<Option<String>> {
        Ok(self.lock().origins.get(id).cloned())
    }

    async fn create_activity(
        &self,
        name: &str,
        tags: &Tags,
        now: Millis,
    ) -> Result<(ActivityRecord, bool)> {
        let mut g = self.lock();
        if let Some(existing) = g.activities.get(name) {
            return Ok((existing.clone(), false));
        }
        let rec = ActivityRecord {
            name: name.to_string(),
            created_at: now,
            tags: tags.clone(),
        };
        g.activities.insert(name.to_string(), rec.clone());
        Ok((rec, true))
    }

    async fn get_activity(&self, name: &str) -> Result<Option<ActivityRecord>> {
        Ok(self.lock().activities.get(name).cloned())
    }

    async fn list_activities(&self) -> Result<Vec<ActivityRecord>> {
        Ok(self.lock().activities.values().cloned().collect())
    }

    async fn delete_activity(&self, name: &str) -> Result<bool> {
        Ok(self.lock().activities.remove(name).is_some())
    }

    async fn tag_activity(
        &self,
        name: &str,
        set: &Tags,
        remove: &[String],
        max: usize,
    ) -> Result<Option<Tags>> {
        let mut g = self.lock();
        let Some(activity) = g.activities.get_mut(name) else {
            return Err(Error::NotFound {
                what: "activity",
                id: name.to_string(),
            });
        };
        let tags = activity.tags.clone();
        let Some(tags) = crate::retagged(tags, set, remove, max) else {
            return Ok(None);
        };
        activity.tags = tags.clone();
        Ok(Some(tags))
    }

    async fn offer_activity_task(&self, offer: &ActivityOffer) -> Result<bool> {
        let mut g = self.lock();
        g.activity_offers
            .retain(|_, o| o.expires_at >= offer.offered_at);
        if g.activity_offers.contains_key(&offer.token)
            || g.activity_tasks.contains_key(&offer.token)
        {
            return Ok(false);
        }
        g.activity_offers.insert(offer.token.clone(), offer.clone());
        Ok(true)
    }

    async fn activity_offers(
        &self,
        activity: &str,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<ActivityOffer>> {
        let g = self.lock();
        let mut offers: Vec<ActivityOffer> = g
            .activity_offers
            .values()
            .filter(|o| o.activity == activity && o.expires_at >= now)
            .cloned()
            .collect();
        offers.sort_by(|a, b| (a.offered_at, &a.token).cmp(&(b.offered_at, &b.token)));
        offers.truncate(limit);
        Ok(offers)
    }

    async fn claim_activity_task(&self, claim: &ActivityTaskClaim) -> Result<bool> {
        let mut g = self.lock();
        g.activity_tasks
            .retain(|_, c| c.expires_at >= claim.claimed_at);
        if g.activity_tasks.contains_key(&claim.token) {
            return Ok(false);
        }
        g.activity_offers.remove(&claim.token);
        g.activity_tasks.insert(claim.token.clone(), claim.clone());
        Ok(true)
    }

    async fn forget_activity_task(&self, token: &str) -> Result<()> {
        let mut g = self.lock();
        g.activity_offers.remove(token);
        g.activity_tasks.remove(token);
        Ok(())
    }

    async fn definition_tags(&self, name: &str) -> Result<Tags> {
        let g = self.lock();
        g.live(name)?;
        Ok(g.tags.get(name).cloned().unwrap_or_default())
    }

    async fn tag_definition(
        &self,
        name: &str,
        set: &Tags,
        remove: &[String],
        max: usize,
    ) -> Result<Option<Tags>> {
        let mut g = self.lock();
        g.live(name)?;
        let tags = g.tags.get(name).cloned().unwrap_or_default();
        let Some(tags) = crate::retagged(tags, set, remove, max) else {
            return Ok(None);
        };
        g.tags.insert(name.to_string(), tags.clone());
        Ok(Some(tags))
    }

    async fn create_execution(&self, create: Create) -> Result<Created> {
        Ok(self.lock().create(create, None))
    }

    async fn append(&self, a: Append) -> Result<u64> {
        self.lock().append(a, None)
    }

    async fn claim_due_timers(&self, now: Millis, limit: usize) -> Result<Vec<Timer>> {
        let mut g = self.lock();
        g.timers.sort_by_key(|t| t.fire_at);
        let n = g
            .timers
            .iter()
            .take(limit)
            .take_while(|t| t.fire_at <= now)
            .count();
        Ok(g.timers.drain(..n).collect())
    }

    async fn unfinished(&self) -> Result<Vec<ExecutionRecord>> {
        let g = self.lock();
        let mut v: Vec<_> = g
            .executions
            .values()
            .filter(|(_, r, _)| !r.status.is_terminal())
            .map(|(s, r, _)| (*s, r.clone()))
            .collect();
        v.sort_by_key(|(s, _)| *s);
        Ok(v.into_iter().map(|(_, r)| r).collect())
    }

    async fn load_history(&self, id: &str) -> Result<Vec<Event>> {
        let g = self.lock();
        g.executions
            .get(id)
            .map(|(_, _, e)| e.clone())
            .ok_or_else(|| not_found(id))
    }

    async fn pending_notifications(&self, limit: usize) -> Result<Vec<Notification>> {
        let g = self.lock();
        Ok(g.outbox.values().take(limit).cloned().collect())
    }

    async fn ack_notification(&self, id: u64) -> Result<()> {
        let mut g = self.lock();
        g.outbox.remove(&id);
        g.claimed.remove(&id);
        Ok(())
    }

    async fn bury_notification(&self, dead: DeadLetter) -> Result<()> {
        let mut g = self.lock();
        let id = dead.notification.id;
        if g.outbox.remove(&id).is_some() {
            g.claimed.remove(&id);
            g.dead_letters.insert(id, dead);
        }
        Ok(())
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let g = self.lock();
        Ok(g.dead_letters.values().take(limit).cloned().collect())
    }

    async fn replay_dead_letter(&self, id: u64) -> Result<Option<Notification>> {
        let mut g = self.lock();
        let Some(dead) = g.dead_letters.remove(&id) else {
            return Ok(None);
        };
        g.next_notification += 1;
        let n = Notification {
            id: g.next_notification,
            ..dead.notification
        };
        g.outbox.insert(n.id, n.clone());
        Ok(Some(n))
    }
}

#[async_trait]
impl Leases for MemoryStore {
    async fn append_fenced(&self, a: Append, node: &str) -> Result<u64> {
        self.lock().append(a, Some(node))
    }

    async fn claim_notifications(
        &self,
        _node: &str,
        ttl_ms: u64,
        limit: usize,
    ) -> Result<Vec<Notification>> {
        let now = now_ms();
        let mut g = self.lock();
        let free: Vec<Notification> = g
            .outbox
            .values()
            .filter(|n| g.claimed.get(&n.id).is_none_or(|&until| until < now))
            .take(limit)
            .cloned()
            .collect();
        for n in &free {
            g.claimed.insert(n.id, now.saturating_add(ttl_ms));
        }
        Ok(free)
    }

    async fn heartbeat_node(&self, node: &str, address: &str, ttl_ms: u64) -> Result<()> {
        let until = now_ms().saturating_add(ttl_ms);
        self.lock()
            .nodes
            .insert(node.to_string(), (address.to_string(), until));
        Ok(())
    }

    async fn node_address(&self, node: &str) -> Result<Option<String>> {
        let now = now_ms();
        Ok(self
            .lock()
            .nodes
            .get(node)
            .filter(|(_, until)| *until >= now)
            .map(|(address, _)| address.clone()))
    }

    async fn claim(&self, id: &str, node: &str, ttl_ms: u64) -> Result<Option<Lease>> {
        let mut g = self.lock();
        let now = now_ms();
        if !g.executions.contains_key(id) {
            return Err(not_found(id));
        }
        if !g.unfinished(id) {
            return Ok(None);
        }
        if !g.free_for(id, node, now) {
            return Ok(g.leases.get(id).cloned());
        }
        g.lease(id, node, ttl_ms, now);
        Ok(None)
    }

    async fn renew(&self, node: &str, ttl_ms: u64) -> Result<u64> {
        let mut guard = self.lock();
        let g = &mut *guard;
        let now = now_ms();
        let mut renewed = 0;
        for (id, lease) in &mut g.leases {
            let unfinished = g
                .executions
                .get(id)
                .is_some_and(|(_, r, _)| !r.status.is_terminal());
            if lease.node == node && lease.until >= now && unfinished {
                lease.until = now.saturating_add(ttl_ms);
                renewed += 1;
            }
        }
        Ok(renewed)
    }

    async fn create_execution_leased(
        &self,
        create: Create,
        node: &str,
        ttl_ms: u64,
    ) -> Result<Created> {
        Ok(self.lock().create(create, Some((node, ttl_ms))))
    }

    async fn release(&self, id: &str, node: &str) -> Result<()> {
        let mut g = self.lock();
        if g.leases.get(id).is_some_and(|l| l.node == node) {
            g.leases.remove(id);
            g.released.insert(id.to_string());
        }
        Ok(())
    }

    async fn take_over(
        &self,
        node: &str,
        ttl_ms: u64,
        limit: usize,
    ) -> Result<Vec<ExecutionRecord>> {
        let mut g = self.lock();
        let now = now_ms();
        // Expired leases only: a released execution has no lease (it is
        // parked; its callback or timer claims it).
        let mut expired: Vec<(Millis, u64, String)> = g
            .leases
            .iter()
            .filter(|(id, l)| l.until < now && g.unfinished(id))
            .map(|(id, l)| (l.until, g.executions[id].0, id.clone()))
            .collect();
        // Never leased: no lease, never released.
        expired.extend(
            g.executions
                .iter()
                .filter(|(id, (_, r, _))| {
                    !r.status.is_terminal()
                        && !g.leases.contains_key(*id)
                        && !g.released.contains(*id)
                })
                .map(|(id, (seq, _, _))| (0, *seq, id.clone())),
        );
        expired.sort();
        expired.truncate(limit);
        expired.sort_by_key(|(_, seq, _)| *seq);
        let mut taken = Vec::with_capacity(expired.len());
        for (_, _, id) in expired {
            g.lease(&id, node, ttl_ms, now);
            taken.push(g.executions[&id].1.clone());
        }
        Ok(taken)
    }

    async fn claim_due_timers_for(
        &self,
        node: &str,
        ttl_ms: u64,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<Timer>> {
        let mut guard = self.lock();
        let g = &mut *guard;
        let clock = now_ms();
        // Stable: equal fire_at stay in insertion order.
        g.timers.sort_by_key(|t| t.fire_at);
        let mut claimed = Vec::new();
        let mut kept = Vec::with_capacity(g.timers.len());
        for t in std::mem::take(&mut g.timers) {
            let mine = claimed.len() < limit
                && t.fire_at <= now
                && g.free_for(&t.execution_id, node, clock);
            if mine {
                claimed.push(t);
            } else {
                kept.push(t);
            }
        }
        g.timers = kept;
        for t in &claimed {
            if g.unfinished(&t.execution_id) {
                g.lease(&t.execution_id, node, ttl_ms, clock);
            }
        }
        Ok(claimed)
    }
}

#[async_trait]
impl Query for MemoryStore {
    async fn get_execution(&self, id: &str) -> Result<ExecutionRecord> {
        let g = self.lock();
        g.executions
            .get(id)
            .map(|(_, r, _)| r.clone())
            .ok_or_else(|| not_found(id))
    }

    async fn list_executions(&self, f: &ListFilter) -> Result<Page> {
        let before = match &f.cursor {
            None => u64::MAX,
            Some(c) => c.parse::<u64>().map_err(|_| Error::BadCursor(c.clone()))?,
        };
        let g = self.lock();
        let mut rows: Vec<_> = g
            .executions
            .values()
            .filter(|(s, r, _)| {
                *s < before
                    && f.status.is_none_or(|st| r.status == st)
                    && f.definition.as_ref().is_none_or(|d| &r.definition == d)
                    && f.started_after.is_none_or(|t| r.started_at >= t)
                    && f.started_before.is_none_or(|t| r.started_at < t)
            })
            .map(|(s, r, _)| (*s, r.clone()))
            .collect();
        rows.sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
        let limit = f.limit.max(1);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if more {
            rows.last().map(|(s, _)| s.to_string())
        } else {
            None
        };
        Ok(Page {
            items: rows.into_iter().map(|(_, r)| r).collect(),
            next_cursor,
        })
    }

    async fn history_page(&self, id: &str, after: u64, limit: usize) -> Result<Vec<HistoryEntry>> {
        let g = self.lock();
        let (_, _, events) = g.executions.get(id).ok_or_else(|| not_found(id))?;
        let skip = usize::try_from(after).unwrap_or(usize::MAX);
        Ok(events
            .iter()
            .enumerate()
            .skip(skip)
            .take(limit)
            .map(|(i, e)| HistoryEntry {
                seq: i as u64 + 1,
                event: e.clone(),
            })
            .collect())
    }

    async fn list_definitions(&self) -> Result<Vec<DefinitionRecord>> {
        let g = self.lock();
        Ok(g.definitions
            .iter()
            .filter(|(name, _)| !g.deleted.contains(*name))
            .filter_map(|(_, v)| v.last().cloned())
            .collect())
    }
}
