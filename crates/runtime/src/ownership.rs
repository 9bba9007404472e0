//! Who may act on an execution: this process alone ([`Ownership::Single`]),
//! or one node among several sharing a store through its leases
//! ([`Ownership::Cluster`]).
//!
//! The engine asks its ownership every question whose answer differs between
//! the two — may it act now, claim or release an execution, how it creates
//! and appends (fenced or not), which due timers are its own, whether it is
//! the only writer of the store — so no other code branches on "is there a
//! node". A cluster node holds the store's [`Leases`], which only the stores
//! several processes can share implement (PostgreSQL, memory): a node on a
//! SQLite store cannot be built.
//!
//! The cluster's own loops (registering, renewing, taking over what dead
//! nodes left, fencing itself off when it could not renew) are here too.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use sagaflow_core::event::Millis;

use sagaflow_store::{Append, Create, Created, Leases, Store, Timer};

use crate::{actor, now_ms, Engine, Error, NodeConfig, Result};

/// See the module docs.
pub(crate) enum Ownership {
    /// This process owns the whole store (SQLite's lock file, PostgreSQL's
    /// owner lock): it holds every execution, nothing is leased.
    Single,
    /// One node among several on a shared store.
    Cluster(Arc<Cluster>),
}

/// One node among several on a shared store: its identity, the store's
/// leases, and what it knows of its own leases.
pub struct Cluster {
    node: NodeConfig,
    leases: Arc<dyn Leases>,
    /// Set while this node cannot renew its leases (it may have lost them);
    /// its actors stop acting until renewal works again.
    fenced: AtomicBool,
    /// Until when (ms) this node's leases are surely valid.
    valid_until: AtomicU64,
    /// Bumped by every fence; actors made before it are stale.
    generation: AtomicU64,
}

impl Cluster {
    pub(crate) fn new(node: NodeConfig, leases: Arc<dyn Leases>) -> Cluster {
        Cluster {
            node,
            leases,
            fenced: AtomicBool::new(false),
            valid_until: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node.id
    }

    /// The shared store's leases (and node registry).
    pub fn leases(&self) -> &Arc<dyn Leases> {
        &self.leases
    }

    fn ttl_ms(&self) -> u64 {
        self.node.lease_ttl.as_millis() as u64
    }

    fn is_fenced(&self) -> bool {
        self.fenced.load(Ordering::SeqCst)
    }
}

impl Ownership {
    /// This node's id when several share the store.
    pub(crate) fn node_id(&self) -> Option<&str> {
        match self {
            Ownership::Single => None,
            Ownership::Cluster(c) => Some(c.node_id()),
        }
    }

    pub(crate) fn cluster(&self) -> Option<&Arc<Cluster>> {
        match self {
            Ownership::Single => None,
            Ownership::Cluster(c) => Some(c),
        }
    }

    /// Whether this process is the only one writing the store: then what it
    /// remembers (the latest version it deployed, a resident actor's view of
    /// its execution) is the whole truth; in a cluster another node may have
    /// moved on, and the store is asked.
    pub(crate) fn is_sole_writer(&self) -> bool {
        matches!(self, Ownership::Single)
    }

    /// Whether this process may act on its executions now: always for a
    /// single process; for a node, while its leases are surely valid.
    pub(crate) fn may_act(&self) -> bool {
        match self {
            Ownership::Single => true,
            Ownership::Cluster(c) => {
                !c.is_fenced() && now_ms() < c.valid_until.load(Ordering::SeqCst)
            }
        }
    }

    /// The lease generation an actor made now belongs to (see
    /// [`Ownership::is_current`]).
    pub(crate) fn generation(&self) -> u64 {
        match self {
            Ownership::Single => 0,
            Ownership::Cluster(c) => c.generation.load(Ordering::SeqCst),
        }
    }

    /// Whether an actor of `generation` may still write: a fence starts a
    /// new generation, and an actor from before it may hold a state another
    /// node has moved on from. A single process is never fenced.
    pub(crate) fn is_current(&self, generation: u64) -> bool {
        self.generation() == generation
    }

    /// [`Ownership::is_current`] as the refusal an append would meet.
    pub(crate) fn check_current(
        &self,
        generation: u64,
        id: &str,
    ) -> std::result::Result<(), sagaflow_store::Error> {
        if self.is_current(generation) {
            return Ok(());
        }
        Err(sagaflow_store::Error::LeaseLost {
            id: id.to_string(),
            node: self.node_id().unwrap_or_default().to_string(),
        })
    }

    /// Whether an append conflict means another writer moved the execution
    /// on (a node that stalled past its lease): then the actor's state is
    /// stale and the execution is reloaded. A single process is the only
    /// writer; its conflicts are its own.
    pub(crate) fn conflict_means_moved_on(&self) -> bool {
        !self.is_sole_writer()
    }

    /// Refuses new leases while this node is fenced off.
    pub(crate) fn refuse_if_fenced(&self) -> Result<()> {
        match self {
            Ownership::Cluster(c) if c.is_fenced() => Err(Error::Fenced),
            _ => Ok(()),
        }
    }

    /// Creates an execution; a node leases it in the same write, so it never
    /// exists without an owner.
    pub(crate) async fn create(
        &self,
        store: &dyn Store,
        create: Create,
    ) -> std::result::Result<Created, sagaflow_store::Error> {
        match self {
            Ownership::Single => store.create_execution(create).await,
            Ownership::Cluster(c) => {
                c.leases
                    .create_execution_leased(create, c.node_id(), c.ttl_ms())
                    .await
            }
        }
    }

    /// Appends; a node's append is fenced by its lease.
    pub(crate) async fn append(
        &self,
        store: &dyn Store,
        append: Append,
    ) -> std::result::Result<u64, sagaflow_store::Error> {
        match self {
            Ownership::Single => store.append(append).await,
            Ownership::Cluster(c) => c.leases.append_fenced(append, c.node_id()).await,
        }
    }

    /// Due timers this process is to fire: all of them for a single
    /// process; for a node, those of executions it holds or that are free
    /// (it leases them with the timers), and none while it is fenced.
    pub(crate) async fn claim_due_timers(
        &self,
        store: &dyn Store,
        now: Millis,
        limit: usize,
    ) -> std::result::Result<Vec<Timer>, sagaflow_store::Error> {
        match self {
            Ownership::Single => store.claim_due_timers(now, limit).await,
            // A fenced node takes no lease, through timers neither.
            Ownership::Cluster(c) if c.is_fenced() => Ok(Vec::new()),
            Ownership::Cluster(c) => {
                c.leases
                    .claim_due_timers_for(c.node_id(), c.ttl_ms(), now, limit)
                    .await
            }
        }
    }

    /// Makes sure this process holds the lease of `id` before it loads it,
    /// or names the node that does. A single process holds everything.
    pub(crate) async fn claim(&self, id: &str) -> Result<()> {
        let Ownership::Cluster(c) = self else {
            return Ok(());
        };
        if c.is_fenced() {
            return Err(Error::Fenced);
        }
        match c.leases.claim(id, c.node_id(), c.ttl_ms()).await {
            Ok(None) => Ok(()),
            Ok(Some(lease)) => {
                let address = c.leases.node_address(&lease.node).await.ok().flatten();
                Err(Error::OwnedElsewhere {
                    id: id.to_string(),
                    node: lease.node,
                    address,
                })
            }
            Err(sagaflow_store::Error::NotFound { .. }) => {
                Err(Error::ExecutionNotFound(id.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Gives up the lease of an execution that left memory (parked), so that
    /// any node can take its callback or timer. Nothing to give up for a
    /// single process.
    pub(crate) async fn release(&self, id: &str) {
        if let Ownership::Cluster(c) = self {
            if let Err(e) = c.leases.release(id, c.node_id()).await {
                // The lease then simply expires and the execution is taken over.
                tracing::warn!(execution = %id, error = %e, "could not release lease");
            }
        }
    }
}

impl Engine {
    /// Start of one node among several: register, take over what dead
    /// nodes left, then keep doing so (and renewing this node's leases).
    pub(crate) async fn start_node(&self, cluster: Arc<Cluster>) -> Result<usize> {
        let ttl = cluster.ttl_ms();
        let sent = now_ms();
        cluster
            .leases
            .heartbeat_node(cluster.node_id(), &cluster.node.address, ttl)
            .await?;
        cluster.valid_until.store(sent + ttl, Ordering::SeqCst);
        let n = self.take_over(&cluster).await?;
        let me = self.clone();
        tokio::spawn(async move { me.keep_leases(cluster).await });
        Ok(n)
    }

    /// Claims executions whose node died and resumes them here.
    async fn take_over(&self, cluster: &Cluster) -> Result<usize> {
        let ttl = cluster.ttl_ms();
        let mut total = 0;
        loop {
            let batch = cluster
                .leases
                .take_over(cluster.node_id(), ttl, 256)
                .await?;
            let n = batch.len();
            total += n;
            for rec in batch {
                let id = rec.id.clone();
                // An actor still here is stale: this node lost the lease
                // (it was stopped or cut off) and just got it back.
                if let Some(stale) = self.lock_actors().remove(&id) {
                    let _ = stale.send(actor::Msg::Stop);
                }
                if let Err(e) = self.resume(rec).await {
                    tracing::error!(execution = %id, error = %e, "could not take over execution");
                }
            }
            if n < 256 {
                break;
            }
        }
        if total > 0 {
            tracing::info!(executions = total, node = %cluster.node_id(), "took over executions of a node that stopped");
        }
        Ok(total)
    }

    /// Renews this node's registration and leases every third of the lease
    /// time, and takes over executions of nodes that stopped renewing.
    ///
    /// This node's leases are valid, as far as it can tell, until one lease
    /// time after it *sent* its last successful renewal (the database
    /// computed the expiry later, so this is never optimistic). Past that
    /// horizon — the database was unreachable, or the process was stopped
    /// (SIGSTOP, a long GC-like stall) — another node may own its
    /// executions: it fences itself. It stops invoking, drops its actors
    /// and lets one full lease time pass without renewing, so every lease it
    /// held has certainly expired; then it renews again and takes over what
    /// is free, its own former executions included, from their histories.
    async fn keep_leases(self, cluster: Arc<Cluster>) {
        let ttl = cluster.ttl_ms();
        let period = cluster.node.lease_ttl / 3;
        let node = cluster.node_id();
        let mut quiet_until: Option<Millis> = None;
        loop {
            tokio::time::sleep(period).await;
            if self.is_shutting_down() {
                return;
            }
            let now = now_ms();
            if now >= cluster.valid_until.load(Ordering::SeqCst) && quiet_until.is_none() {
                tracing::error!(node = %node, "this node's leases may have expired (it could not renew them in time); it stops acting on its executions");
                cluster.fenced.store(true, Ordering::SeqCst);
                cluster.generation.fetch_add(1, Ordering::SeqCst);
                // Every resident execution leaves memory; whoever holds its
                // lease next reloads it from history.
                let actors: Vec<_> = self.lock_actors().drain().collect();
                for (_, tx) in actors {
                    let _ = tx.send(actor::Msg::Stop);
                }
                // No lease is taken or renewed meanwhile (starts, claims and
                // timers are refused while fenced): twice the lease time
                // also covers a lease taken by an operation that was already
                // under way when the fence came down.
                quiet_until = Some(now + 2 * ttl);
            }
            if let Some(until) = quiet_until {
                if now < until {
                    continue;
                }
            }
            let leases = &cluster.leases;
            let sent = now_ms();
            let ok = leases
                .heartbeat_node(node, &cluster.node.address, ttl)
                .await
                .is_ok()
                && leases.renew(node, ttl).await.is_ok();
            if !ok {
                continue;
            }
            cluster.valid_until.store(sent + ttl, Ordering::SeqCst);
            if quiet_until.take().is_some() {
                cluster.fenced.store(false, Ordering::SeqCst);
                tracing::info!(node = %node, "leases renewed again; taking over what is free");
            }
            if let Err(e) = self.take_over(&cluster).await {
                tracing::warn!(error = %e, "take-over failed; retrying");
            }
        }
    }
}
