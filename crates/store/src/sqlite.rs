//! The embedded SQLite backend, Sagaflow's default store.
//!
//! Durability: WAL journal with `synchronous=FULL`, so an append is on disk
//! before its caller hears "ok" and survives a power loss.
//!
//! Throughput comes from **group commit**. One writer thread owns the only
//! write connection. Writes are sent to it over a channel; it takes the first
//! waiting request, drains whatever else is already queued (up to
//! [`MAX_BATCH`]), runs them all in one transaction and commits once. One
//! fsync thus acknowledges a whole batch of appends. A request refused as
//! expected (a version conflict, an unknown id) is refused before it writes
//! anything, so it fails alone; one that fails midway (disk full) rolls the
//! batch back and every caller in it hears so, and retries.
//!
//! The writer thread is the serial part of every write, so it does only the
//! SQL: events, inputs and outputs are serialized by the callers, on the
//! async threads, before they are queued.
//!
//! Reads never touch the writer: they run on a small pool of read-only
//! connections on the blocking thread pool, and WAL lets them proceed while a
//! batch is being committed.
//!
//! The schema is versioned by [`MIGRATIONS`] (`migrations/sqlite/*.sql`),
//! recorded in `schema_migrations`.
//!
//! **One owner, no leases.** The lock file makes one process the owner of a
//! database: that process holds every execution. So this store does not
//! implement [`Leases`](crate::Leases), and a cluster node cannot be built on
//! it (the runtime's cluster mode takes a `Leases`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{
    params, params_from_iter, Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior,
};
use sagaflow_core::event::Millis;
use sagaflow_core::{ErrorInfo, Event, Status};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::encode::{from_json, not_found, parse_task, to_json};
use crate::migrations::{self, Migration};
use crate::{
    ActivityOffer, ActivityRecord, ActivityTaskClaim, AliasRecord, AliasWrite, PublishedVersion,
    Unpublish,
};
use crate::{
    Append, Create, Created, DeadLetter, DefinitionRecord, Error, ExecutionRecord, Executor,
    HistoryEntry, ListFilter, Notification, NotificationKind, Page, Query, Result, Tags, Timer,
};

/// A storage fault to simulate with [`SqliteStore::inject_fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The file can no longer be written.
    ReadOnly,
    /// The disk is full: the file cannot grow.
    Full,
}

/// The most requests one commit covers. Bounds the latency a request at the
/// end of a batch pays for the ones before it.
pub const MAX_BATCH: usize = 512;

/// Requests that may wait for the writer before senders are made to wait.
/// Backpressure for the runtime instead of unbounded memory.
const QUEUE_DEPTH: usize = 4 * MAX_BATCH;

/// Idle read connections kept open; more are opened on demand under load.
const MAX_IDLE_READERS: usize = 4;

/// How long a connection waits for a lock held by another process before
/// giving up (only another process can hold one: we have a single writer).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite's schema migrations, in order (see [`crate::migrations`]).
pub const MIGRATIONS: &[Migration] = migrations::SQLITE;

/// How the versions SQLite recorded before the numbering was shared
/// translate (the same numbers).
pub const LEGACY: migrations::Legacy = migrations::SQLITE_LEGACY;

/// The schema version this binary writes: the last migration's.
pub const SCHEMA_VERSION: u32 = migrations::schema_version(MIGRATIONS);

/// See the module docs.
pub struct SqliteStore {
    /// `None` only while dropping: closing it stops the writer.
    requests: Option<mpsc::Sender<Work>>,
    writer: Option<JoinHandle<()>>,
    readers: Arc<ReadPool>,
    stats: Arc<Stats>,
    /// Held for the store's life: one process owns an embedded database.
    _lock: std::fs::File,
}

/// Takes the advisory lock `PATH.lock`. Two servers on one database would
/// each resume and drive the same executions; the second is refused instead.
/// The OS releases the lock when the process dies, even by SIGKILL.
fn lock_exclusively(path: &Path) -> Result<std::fs::File> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::Backend(format!("opening lock file {}: {e}", lock_path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Backend(format!(
            "{} is in use by another Sagaflow process (lock {}); an embedded database has one owner",
            path.display(),
            lock_path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(Error::Backend(format!("locking {}: {e}", lock_path.display())))
        }
    }
}

#[derive(Default)]
struct Stats {
    batches: AtomicU64,
    requests: AtomicU64,
}

/// A write waiting for the writer, type-erased so one channel carries all
/// kinds of writes.
trait Request: Send {
    /// Runs inside the batch's transaction. `false`: it failed (see
    /// [`Request::failed_midway`]).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Replies to the caller once the batch's fate is known.
    fn answer(self: Box<Self>, committed: std::result::Result<(), &str>);
    /// Whether it failed in a way that may have left some of its writes
    /// behind (a backend error). Expected refusals (a version conflict, an
    /// unknown id) are found before anything is written.
    fn failed_midway(&self) -> bool {
        false
    }
    /// Connection settings (fault injection) run on their own, outside any
    /// transaction: some cannot be changed, or undone, inside one.
    fn outside_transaction(&self) -> bool {
        false
    }
}

/// A connection-level change, run alone outside a transaction.
struct Control<F> {
    op: Option<F>,
    reply: Option<oneshot::Sender<Result<()>>>,
}

impl<F> Request for Control<F>
where
    F: FnOnce(&Connection) -> Result<()> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = match self.op.take() {
            Some(op) => op(conn),
            None => Err(Error::Backend("a control request ran twice".into())),
        };
        let ok = result.is_ok();
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(result);
        }
        ok
    }

    fn answer(self: Box<Self>, _: std::result::Result<(), &str>) {}

    fn outside_transaction(&self) -> bool {
        true
    }
}

type Work = Box<dyn Request>;

/// A write operation and where its result goes.
struct Job<T, F> {
    op: Option<F>,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Request for Job<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = match self.op.take() {
            Some(op) => op(conn),
            None => Err(Error::Backend("a write request ran twice".into())),
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn failed_midway(&self) -> bool {
        matches!(
            self.result,
            Some(Err(Error::Backend(_) | Error::Corrupt(_)))
        )
    }

    fn answer(self: Box<Self>, committed: std::result::Result<(), &str>) {
        let result = match (self.result, committed) {
            // Its own error (a conflict, say) stands whatever the batch did.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (_, Err(e)) => Err(Error::Backend(format!("the write was rolled back: {e}"))),
            (None, Ok(())) => Err(Error::Backend("the write was never run".into())),
        };
        // The caller may have stopped waiting; the write stands regardless.
        let _ = self.reply.send(result);
    }
}

impl SqliteStore {
    /// Opens (or creates, with its parent directory) the database at `path`,
    /// applies missing migrations, and starts the writer thread.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::Backend(format!("creating directory {}: {e}", dir.display()))
            })?;
        }
        let lock = lock_exclusively(&path)?;
        // Only the writer thread ever uses this connection: SQLite's own
        // per-connection mutex would be pure overhead on every statement.
        let mut conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(|e| Error::Backend(format!("opening {}: {e}", path.display())))?;
        configure_writer(&conn)?;
        migrate(&mut conn)?;

        let readers = Arc::new(ReadPool {
            path,
            idle: Mutex::new(Vec::new()),
        });
        // Open one reader now so a problem shows up here, not on first read.
        let first = readers.open()?;
        readers.put_back(first);

        let stats = Arc::new(Stats::default());
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let writer = std::thread::Builder::new()
            .name("sagaflow-store-writer".into())
            .spawn({
                let stats = stats.clone();
                move || run_writer(conn, rx, &stats)
            })
            .map_err(|e| Error::Backend(format!("starting the writer thread: {e}")))?;
        Ok(SqliteStore {
            requests: Some(tx),
            writer: Some(writer),
            readers,
            stats,
            _lock: lock,
        })
    }

    /// `(batches, requests)` committed by the writer so far. Fewer batches
    /// than requests means writes shared a commit (and an fsync).
    pub fn group_commit_stats(&self) -> (u64, u64) {
        (
            self.stats.batches.load(Ordering::Relaxed),
            self.stats.requests.load(Ordering::Relaxed),
        )
    }

    /// Runs `op` on the writer in the next batch and waits for the commit.
    /// Once sent, a write happens even if the caller stops waiting.
    async fn write<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let work: Work = Box::new(Job {
            op: Some(op),
            result: None,
            reply,
        });
        let stopped = || Error::Backend("the store's writer thread has stopped".into());
        let requests = self.requests.as_ref().ok_or_else(stopped)?;
        requests.send(work).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Makes the database misbehave the way a broken disk does, through
    /// SQLite's own error paths, for fault drills and tests: `ReadOnly` makes
    /// every write fail with "attempt to write a readonly database", `Full`
    /// with "database or disk is full" once the file would grow. `None`
    /// restores normal service. Reads keep working throughout.
    pub async fn inject_fault(&self, fault: Option<Fault>) -> Result<()> {
        self.control(move |c| {
            let (query_only, max_pages) = match fault {
                None => (0, i64::from(u32::MAX)),
                Some(Fault::ReadOnly) => (1, i64::from(u32::MAX)),
                Some(Fault::Full) => {
                    let used: i64 = c
                        .query_row("PRAGMA page_count", [], |r| r.get(0))
                        .map_err(|e| Error::Backend(format!("reading page_count: {e}")))?;
                    (0, used)
                }
            };
            c.execute_batch(&format!(
                "PRAGMA query_only = {query_only}; PRAGMA max_page_count = {max_pages};"
            ))
            .map_err(|e| Error::Backend(format!("injecting a fault: {e}")))
        })
        .await
    }

    /// Runs `op` on the write connection, alone and outside a transaction.
    async fn control(
        &self,
        op: impl FnOnce(&Connection) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        let work: Work = Box::new(Control {
            op: Some(op),
            reply: Some(reply),
        });
        let stopped = || Error::Backend("the store's writer thread has stopped".into());
        let requests = self.requests.as_ref().ok_or_else(stopped)?;
        requests.send(work).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Runs `op` on a read connection off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.take()?;
            let result = op(&mut conn);
            pool.put_back(conn);
            result
        })
        .await
        .map_err(|e| Error::Backend(format!("read task failed: {e}")))?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Readers go first so the writer's connection is the last one and
        // checkpoints the WAL as it closes.
        self.readers
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        // Closing the channel lets the writer finish what is queued and exit;
        // joining it means the database is closed once the store is gone.
        self.requests = None;
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!("the store's writer thread panicked");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Setup

fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

fn configure_writer(conn: &Connection) -> Result<()> {
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(backend("enabling WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Backend(format!(
            "the database refused WAL mode (journal_mode is {mode})"
        )));
    }
    // FULL: the WAL is synced on every commit, so acknowledged writes
    // survive power loss (NORMAL would only protect against crashes).
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(backend("setting synchronous=FULL"))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(backend("enabling foreign keys"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(backend("setting busy_timeout"))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(())
}

/// Applies the migrations the database lacks, all in one transaction (see
/// [`crate::migrations`]).
fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend("starting the migration"))?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    INTEGER PRIMARY KEY,
            applied_at INTEGER NOT NULL,
            name       TEXT
        )",
    )
    .map_err(backend("creating schema_migrations"))?;
    // A table made before the numbering was shared has no `name` column.
    let named: bool = tx
        .query_row(
            "SELECT count(*) > 0 FROM pragma_table_info('schema_migrations') WHERE name = 'name'",
            [],
            |r| r.get(0),
        )
        .map_err(backend("reading schema_migrations' columns"))?;
    if !named {
        tx.execute_batch("ALTER TABLE schema_migrations ADD COLUMN name TEXT")
            .map_err(backend("naming the migrations of schema_migrations"))?;
    }
    translate_legacy(&tx)?;
    let applied = tx
        .prepare("SELECT version FROM schema_migrations")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| r.get::<_, u32>(0))?
                .collect::<rusqlite::Result<BTreeSet<u32>>>()
        })
        .map_err(backend("reading the schema version"))?;
    let now = now_millis();
    for m in migrations::pending(MIGRATIONS, &applied)? {
        tx.execute_batch(m.sql)
            .map_err(|e| Error::Backend(format!("applying migration {}: {e}", m.name)))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at, name) VALUES (?1, ?2, ?3)",
            params![m.version, now, m.name],
        )
        .map_err(|e| Error::Backend(format!("recording migration {}: {e}", m.name)))?;
    }
    tx.commit().map_err(backend("committing the migration"))
}

/// Replaces the rows recorded before the numbering was shared (without a
/// name) by the shared versions they stand for ([`LEGACY`]).
fn translate_legacy(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    let old = tx
        .prepare("SELECT version, applied_at FROM schema_migrations WHERE name IS NULL")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, i64>(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(backend("reading the migrations recorded without a name"))?;
    if old.is_empty() {
        return Ok(());
    }
    let rows = migrations::translate(LEGACY, MIGRATIONS, &old)?;
    tx.execute("DELETE FROM schema_migrations WHERE name IS NULL", [])
        .map_err(backend("translating the recorded migrations"))?;
    for (version, applied_at, name) in rows {
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at, name) VALUES (?1, ?2, ?3)",
            params![version, applied_at, name],
        )
        .map_err(backend("translating the recorded migrations"))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The writer

fn run_writer(mut conn: Connection, mut requests: mpsc::Receiver<Work>, stats: &Stats) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Block for the first request; `None` means the store was dropped.
    while let Some(first) = requests.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(work) => batch.push(work),
                Err(_) => break,
            }
        }
        // Control requests run on their own first; they are not part of the commit.
        batch.retain_mut(|work| {
            if work.outside_transaction() {
                work.run(&conn);
                false
            } else {
                true
            }
        });
        if batch.is_empty() {
            continue;
        }
        let committed = run_batch(&mut conn, &mut batch);
        if let Err(e) = &committed {
            tracing::error!(error = %e, "group commit failed; the batch was rolled back");
        }
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats
            .requests
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        // Only now, after the commit (and its fsync), do callers hear back.
        for work in batch.drain(..) {
            work.answer(committed.as_ref().map(|_| ()).map_err(String::as_str));
        }
    }
}

/// Runs a batch in one transaction and commits it. Each request keeps its
/// own result for [`Request::answer`].
///
/// No savepoint per request: every expected refusal (a version conflict, an
/// unknown id) is decided before its request writes anything, so it leaves
/// nothing to undo. A request that fails midway (a backend error: disk full,
/// read-only file) rolls the whole batch back; every caller hears so and
/// retries. That keeps the common path at the statements that do the work.
fn run_batch(conn: &mut Connection, batch: &mut [Work]) -> std::result::Result<(), String> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| format!("{e}"))?;
    for work in batch.iter_mut() {
        if !work.run(&tx) && work.failed_midway() {
            // Dropping `tx` rolls the whole batch back.
            return Err(
                "a write in the same commit failed; nothing of this commit was kept".into(),
            );
        }
    }
    tx.commit().map_err(|e| format!("{e}"))
}

// ---------------------------------------------------------------------------
// Reads

struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    fn open(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| Error::Backend(format!("opening {} to read: {e}", self.path.display())))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(backend("setting busy_timeout"))?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(conn)
    }

    fn take(&self) -> Result<Connection> {
        // The guard is a temporary: the lock is released before `open`.
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => self.open(),
        }
    }

    fn put_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }
}

// ---------------------------------------------------------------------------
// Encoding

fn backend(context: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::Backend(format!("{context}: {e}"))
}

const DEFINITION_COLUMNS: &str = "name, version, format, source, digest, created_at";

fn definition_from_row(r: &Row<'_>) -> rusqlite::Result<DefinitionRecord> {
    Ok(DefinitionRecord {
        name: r.get(0)?,
        version: r.get(1)?,
        format: r.get(2)?,
        source: r.get(3)?,
        digest: r.get(4)?,
        created_at: r.get(5)?,
    })
}

const EXECUTION_COLUMNS: &str =
    "seq, id, definition, version, status, input, output, error, started_at, updated_at, events";

/// An `executions` row as stored; [`ExecutionRow::decode`] checks the JSON.
struct ExecutionRow {
    seq: u64,
    id: String,
    definition: String,
    version: u32,
    status: String,
    input: String,
    output: Option<String>,
    error: Option<String>,
    started_at: Millis,
    updated_at: Millis,
    events: u64,
}

impl ExecutionRow {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(ExecutionRow {
            seq: r.get(0)?,
            id: r.get(1)?,
            definition: r.get(2)?,
            version: r.get(3)?,
            status: r.get(4)?,
            input: r.get(5)?,
            output: r.get(6)?,
            error: r.get(7)?,
            started_at: r.get(8)?,
            updated_at: r.get(9)?,
            events: r.get(10)?,
        })
    }

    fn decode(self) -> Result<ExecutionRecord> {
        let ctx = |field: &str| format!("execution `{}` {field}", self.id);
        let status = Status::parse(&self.status)
            .ok_or_else(|| Error::Corrupt(format!("{}: `{}`", ctx("status"), self.status)))?;
        let input = from_json::<Value>(&ctx("input"), &self.input)?;
        let output = match &self.output {
            Some(s) => Some(from_json::<Value>(&ctx("output"), s)?),
            None => None,
        };
        let error = match &self.error {
            Some(s) => Some(from_json::<ErrorInfo>(&ctx("error"), s)?),
            None => None,
        };
        Ok(ExecutionRecord {
            id: self.id,
            definition: self.definition,
            version: self.version,
            status,
            input,
            output,
            error,
            started_at: self.started_at,
            updated_at: self.updated_at,
            events: self.events,
        })
    }
}

fn get_execution_row(conn: &Connection, id: &str) -> Result<Option<ExecutionRow>> {
    conn.prepare_cached(&format!(
        "SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = ?1"
    ))
    .and_then(|mut s| s.query_row([id], ExecutionRow::from_row).optional())
    .map_err(backend("reading an execution"))
}

fn get_execution(conn: &Connection, id: &str) -> Result<ExecutionRecord> {
    get_execution_row(conn, id)?
        .ok_or_else(|| not_found(id))?
        .decode()
}

/// History entries of `id` with `seq > after`, oldest first.
fn read_history(
    conn: &mut Connection,
    id: &str,
    after: u64,
    limit: usize,
) -> Result<Vec<HistoryEntry>> {
    // One snapshot, so the existence check and the events agree.
    let tx = conn.transaction().map_err(backend("starting a read"))?;
    let exists = tx
        .prepare_cached("SELECT 1 FROM executions WHERE id = ?1")
        .and_then(|mut s| s.exists([id]))
        .map_err(backend("reading an execution"))?;
    if !exists {
        return Err(not_found(id));
    }
    let rows = tx
        .prepare_cached(
            "SELECT seq, body FROM events WHERE execution_id = ?1 AND seq > ?2 ORDER BY seq
             LIMIT ?3",
        )
        .and_then(|mut s| {
            let limit = limit.min(i64::MAX as usize) as i64;
            s.query_map(params![id, after.min(i64::MAX as u64), limit], |r| {
                Ok((r.get::<_, u64>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(backend("reading a history"))?;
    rows.into_iter()
        .map(|(seq, body)| {
            Ok(HistoryEntry {
                seq,
                event: from_json(&format!("event {seq} of execution `{id}`"), &body)?,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Writes (run on the writer, inside a batch's transaction)

/// `NotFound` unless `name` has a live (not deleted) definition.
fn live_definition(conn: &Connection, name: &str) -> Result<()> {
    let live: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM definitions WHERE name = ?1 AND deleted = 0)")
        .and_then(|mut s| s.query_row([name], |r| r.get(0)))
        .map_err(backend("reading a definition"))?;
    if live {
        Ok(())
    } else {
        Err(Error::NotFound {
            what: "definition",
            id: name.to_string(),
        })
    }
}

fn read_published(conn: &Connection, name: &str) -> Result<Vec<PublishedVersion>> {
    conn.prepare_cached(
        "SELECT version, description, published_at FROM definition_versions
         WHERE name = ?1 ORDER BY version DESC",
    )
    .and_then(|mut s| {
        s.query_map([name], |r| {
            Ok(PublishedVersion {
                name: name.to_string(),
                version: r.get(0)?,
                description: r.get(1)?,
                published_at: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()
    })
    .map_err(backend("reading a definition's versions"))
}

fn read_aliases(conn: &Connection, name: &str) -> Result<Vec<AliasRecord>> {
    let rows = conn
        .prepare_cached(
            "SELECT alias, description, routing, created_at, updated_at
             FROM definition_aliases WHERE name = ?1 ORDER BY alias",
        )
        .and_then(|mut s| {
            s.query_map([name], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Millis>(3)?,
                    r.get::<_, Millis>(4)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(backend("reading a definition's aliases"))?;
    rows.into_iter()
        .map(|(alias, description, routing, created_at, updated_at)| {
            Ok(AliasRecord {
                name: name.to_string(),
                routing: from_json(&format!("alias `{name}:{alias}` routing"), &routing)?,
                alias,
                description,
                created_at,
                updated_at,
            })
        })
        .collect()
}

/// Milliseconds as an SQL integer (clamped: no time is past `i64::MAX`).
fn millis_sql(ms: Millis) -> i64 {
    ms.min(i64::MAX as u64) as i64
}

fn activity_from((name, created_at, tags): (String, i64, String)) -> Result<ActivityRecord> {
    Ok(ActivityRecord {
        tags: from_json("an activity's tags", &tags)?,
        name,
        created_at: created_at.max(0) as Millis,
    })
}

fn read_activity(conn: &Connection, name: &str) -> Result<Option<ActivityRecord>> {
    conn.prepare_cached("SELECT name, created_at, tags FROM activities WHERE name = ?1")
        .and_then(|mut s| {
            s.query_row([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
        })
        .map_err(backend("reading an activity"))?
        .map(activity_from)
        .transpose()
}

fn read_tags(conn: &Connection, name: &str) -> Result<Tags> {
    conn.prepare_cached("SELECT key, value FROM definition_tags WHERE name = ?1")
        .and_then(|mut s| {
            s.query_map([name], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Tags>>()
        })
        .map_err(backend("reading a definition's tags"))
}

fn put_definition(
    conn: &Connection,
    name: &str,
    format: &str,
    source: &str,
    digest: &str,
    now: Millis,
) -> Result<(DefinitionRecord, bool)> {
    // The latest version, deleted or not: a deleted name's numbers go on.
    let latest = conn
        .prepare_cached(&format!(
            "SELECT {DEFINITION_COLUMNS}, deleted FROM definitions WHERE name = ?1
             ORDER BY version DESC LIMIT 1"
        ))
        .and_then(|mut s| {
            s.query_row([name], |r| {
                Ok((definition_from_row(r)?, r.get::<_, bool>(6)?))
            })
            .optional()
        })
        .map_err(backend("reading a definition"))?;
    if let Some((latest, false)) = &latest {
        if latest.digest == digest {
            return Ok((latest.clone(), false));
        }
    }
    let version = match latest.map(|(d, _)| d) {
        None => 1,
        Some(d) => d.version.checked_add(1).ok_or_else(|| {
            Error::Backend(format!(
                "definition `{name}` has run out of version numbers"
            ))
        })?,
    };
    let rec = DefinitionRecord {
        name: name.to_string(),
        version,
        format: format.to_string(),
        source: source.to_string(),
        digest: digest.to_string(),
        created_at: now,
    };
    conn.prepare_cached(&format!(
        "INSERT INTO definitions ({DEFINITION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    ))
    .and_then(|mut s| {
        s.execute(params![
            rec.name,
            rec.version,
            rec.format,
            rec.source,
            rec.digest,
            rec.created_at
        ])
    })
    .map_err(backend("inserting a definition"))?;
    Ok((rec, true))
}

/// The latest version of a definition that is not deleted (deleting marks
/// every version, so this is the highest version or nothing).
fn latest_definition(conn: &Connection, name: &str) -> Result<Option<DefinitionRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {DEFINITION_COLUMNS} FROM definitions WHERE name = ?1 AND deleted = 0
         ORDER BY version DESC LIMIT 1"
    ))
    .and_then(|mut s| s.query_row([name], definition_from_row).optional())
    .map_err(backend("reading a definition"))
}

/// An event ready for its INSERT. Events, inputs and outputs are serialized
/// by the caller, on the async threads, so the writer thread (the serial
/// part of every commit) only binds strings, and the values are dropped
/// where they were allocated.
struct EncodedEvent {
    at: Millis,
    kind: &'static str,
    body: String,
}

fn encode_events(events: &[Event]) -> Result<Vec<EncodedEvent>> {
    events
        .iter()
        .map(|e| {
            Ok(EncodedEvent {
                at: e.at,
                kind: e.kind.name(),
                body: to_json("an event", e)?,
            })
        })
        .collect()
}

fn encode_optional<T: serde::Serialize>(what: &str, value: &Option<T>) -> Result<Option<String>> {
    value.as_ref().map(|v| to_json(what, v)).transpose()
}

/// The columns of a new `executions` row, encoded by the caller.
struct NewExecution {
    id: String,
    definition: String,
    version: u32,
    status: Status,
    input: String,
    output: Option<String>,
    error: Option<String>,
    started_at: Millis,
    updated_at: Millis,
    events: Vec<EncodedEvent>,
    timers: Vec<Timer>,
    notify: Option<NotificationKind>,
}

/// `Ok(true)`: created; `Ok(false)`: an execution with this id exists.
fn create_execution(conn: &Connection, x: &NewExecution) -> Result<bool> {
    // One statement whether or not the id is taken: the conflict is the
    // unusual case (a repeated start with the caller's own id).
    let inserted = conn
        .prepare_cached(
            // `WHERE NOT EXISTS`, not `ON CONFLICT DO NOTHING`: an
            // AUTOINCREMENT key is spent by an insert that then conflicts,
            // and `seq` (the listing cursor) must number executions alone,
            // as PostgreSQL's does.
            "INSERT INTO executions (id, definition, version, status, input, output, error,
                                     started_at, updated_at, events)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10
             WHERE NOT EXISTS (SELECT 1 FROM executions WHERE id = ?1)",
        )
        .and_then(|mut s| {
            s.execute(params![
                x.id,
                x.definition,
                x.version,
                x.status.as_str(),
                x.input,
                x.output,
                x.error,
                x.started_at,
                x.updated_at,
                x.events.len() as u64,
            ])
        })
        .map_err(backend("inserting an execution"))?;
    if inserted == 0 {
        return Ok(false);
    }
    insert_events(conn, &x.id, 0, &x.events)?;
    insert_timers(conn, &x.timers)?;
    if let Some(kind) = x.notify {
        insert_notification(conn, &x.id, x.status, x.updated_at, kind)?;
    }
    Ok(true)
}

/// Records a notification in the outbox (in a create's or an append's
/// transaction: with the decision that calls for it, or not at all).
fn insert_notification(
    conn: &Connection,
    id: &str,
    status: Status,
    at: Millis,
    kind: NotificationKind,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO outbox (execution_id, status, created_at, kind) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut s| s.execute(params![id, status.as_str(), at, kind.as_str()]))
    .map_err(backend("recording a notification"))?;
    Ok(())
}

/// Arms durable timers (a create's or an append's, in its transaction).
fn insert_timers(conn: &Connection, timers: &[Timer]) -> Result<()> {
    if timers.is_empty() {
        return Ok(());
    }
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO timers (execution_id, step, task, attempt, fire_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(backend("preparing to insert timers"))?;
    for t in timers {
        insert
            .execute(params![
                t.execution_id,
                t.step,
                t.task.as_str(),
                t.attempt,
                t.fire_at
            ])
            .map_err(backend("arming a timer"))?;
    }
    Ok(())
}

fn insert_events(conn: &Connection, id: &str, version: u64, events: &[EncodedEvent]) -> Result<()> {
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO events (execution_id, seq, at, type, body) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(backend("preparing to insert events"))?;
    for (seq, event) in (version + 1..).zip(events) {
        insert
            .execute(params![id, seq, event.at, event.kind, event.body])
            .map_err(backend("inserting an event"))?;
    }
    Ok(())
}

/// An [`Append`] as the writer needs it (see [`EncodedEvent`]).
struct EncodedAppend {
    execution_id: String,
    expected_version: u64,
    events: Vec<EncodedEvent>,
    status: Status,
    output: Option<String>,
    error: Option<String>,
    updated_at: Millis,
    timers: Vec<Timer>,
    notify: Option<NotificationKind>,
}

impl EncodedAppend {
    fn new(a: Append) -> Result<Self> {
        Ok(EncodedAppend {
            events: encode_events(&a.events)?,
            output: encode_optional("output", &a.output)?,
            error: encode_optional("error", &a.error)?,
            execution_id: a.execution_id,
            expected_version: a.expected_version,
            status: a.status,
            updated_at: a.updated_at,
            timers: a.timers,
            notify: a.notify,
        })
    }
}

fn append(conn: &Connection, a: EncodedAppend) -> Result<u64> {
    // Everything that can be refused is checked before the first write; the
    // version check is the UPDATE's own condition (one statement, not two).
    let actual = a.expected_version;
    let version = actual + a.events.len() as u64;
    // Most appends keep the status (running stays running): the first
    // UPDATE, without the status column, leaves the (status, seq) index
    // alone (SQLite rewrites an index entry whenever its column is SET).
    // The second one, with it, runs only when the status changes (or the
    // version check fails).
    let update = |sql: &str| {
        conn.prepare_cached(sql)
            .and_then(|mut s| {
                s.execute(params![
                    a.execution_id,
                    version,
                    a.status.as_str(),
                    a.output,
                    a.error,
                    a.updated_at,
                    actual
                ])
            })
            .map_err(backend("updating an execution"))
    };
    let mut updated = update(
        "UPDATE executions SET events = ?2, output = ?4, error = ?5, updated_at = ?6
         WHERE id = ?1 AND events = ?7 AND status = ?3",
    )?;
    if updated == 0 {
        updated = update(
            "UPDATE executions SET events = ?2, status = ?3, output = ?4, error = ?5, updated_at = ?6
             WHERE id = ?1 AND events = ?7",
        )?;
    }
    if updated == 0 {
        let found: Option<u64> = conn
            .prepare_cached("SELECT events FROM executions WHERE id = ?1")
            .and_then(|mut s| s.query_row([&a.execution_id], |r| r.get(0)).optional())
            .map_err(backend("reading an execution's version"))?;
        return Err(match found {
            None => not_found(&a.execution_id),
            Some(actual) => Error::Conflict {
                id: a.execution_id,
                expected: a.expected_version,
                actual,
            },
        });
    }
    insert_events(conn, &a.execution_id, actual, &a.events)?;
    insert_timers(conn, &a.timers)?;
    if let Some(kind) = a.notify {
        insert_notification(conn, &a.execution_id, a.status, a.updated_at, kind)?;
    }
    Ok(version)
}

fn claim_due_timers(conn: &Connection, now: Millis, limit: usize) -> Result<Vec<Timer>> {
    // SQLite's DELETE has no ORDER BY/LIMIT in the bundled build: select the
    // due rows, then delete exactly those (we are the only writer).
    let rows = conn
        .prepare_cached(
            "SELECT rowid, execution_id, step, task, attempt, fire_at FROM timers
             WHERE fire_at <= ?1 ORDER BY fire_at, rowid LIMIT ?2",
        )
        .and_then(|mut s| {
            s.query_map(
                params![
                    now.min(i64::MAX as u64),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, u32>(4)?,
                        r.get::<_, Millis>(5)?,
                    ))
                },
            )?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(backend("reading due timers"))?;
    let mut delete = conn
        .prepare_cached("DELETE FROM timers WHERE rowid = ?1")
        .map_err(backend("preparing to delete timers"))?;
    let mut timers = Vec::with_capacity(rows.len());
    for (rowid, execution_id, step, task, attempt, fire_at) in rows {
        delete
            .execute([rowid])
            .map_err(backend("deleting a claimed timer"))?;
        timers.push(Timer {
            execution_id,
            step,
            task: parse_task(&task)?,
            attempt,
            fire_at,
        });
    }
    Ok(timers)
}

fn pending_notifications(conn: &Connection, limit: usize) -> Result<Vec<Notification>> {
    conn.prepare_cached(
        "SELECT id, execution_id, status, created_at, kind FROM outbox ORDER BY id LIMIT ?1",
    )
    .and_then(|mut s| {
        s.query_map(
            [i64::try_from(limit).unwrap_or(i64::MAX)],
            RawNotification::read,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()
    })
    .map_err(backend("reading the outbox"))?
    .into_iter()
    .map(RawNotification::parse)
    .collect()
}

/// The columns `id, execution_id, status, created_at, kind` of a
/// notification (from the outbox or the dead letters), before parsing.
struct RawNotification(u64, String, String, Millis, String);

impl RawNotification {
    /// Reads the five columns from the start of `r`.
    fn read(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(RawNotification(
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
        ))
    }

    fn parse(self) -> Result<Notification> {
        let RawNotification(id, execution_id, status, created_at, kind) = self;
        Ok(Notification {
            id,
            execution_id,
            status: Status::parse(&status)
                .ok_or_else(|| Error::Corrupt(format!("notification {id} status: `{status}`")))?,
            created_at,
            kind: NotificationKind::parse(&kind)
                .ok_or_else(|| Error::Corrupt(format!("notification {id} kind: `{kind}`")))?,
        })
    }
}

fn dead_letters(conn: &Connection, limit: usize) -> Result<Vec<DeadLetter>> {
    conn.prepare_cached(
        "SELECT id, execution_id, status, created_at, kind, failed_at, attempts, last_error
         FROM dead_letters ORDER BY id LIMIT ?1",
    )
    .and_then(|mut s| {
        s.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            Ok((
                RawNotification::read(r)?,
                r.get::<_, Millis>(5)?,
                r.get::<_, u32>(6)?,
                r.get::<_, String>(7)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()
    })
    .map_err(backend("reading the dead letters"))?
    .into_iter()
    .map(|(raw, failed_at, attempts, last_error)| {
        Ok(DeadLetter {
            notification: raw.parse()?,
            failed_at,
            attempts,
            last_error,
        })
    })
    .collect()
}

// ---------------------------------------------------------------------------
// The traits

#[async_trait]
impl Executor for SqliteStore {
    async fn put_definition(
        &self,
        name: &str,
        format: &str,
        source: &str,
        digest: &str,
        now: Millis,
    ) -> Result<(DefinitionRecord, bool)> {
        let (name, format, source, digest) = (
            name.to_string(),
            format.to_string(),
            source.to_string(),
            digest.to_string(),
        );
        self.write(move |c| put_definition(c, &name, &format, &source, &digest, now))
            .await
    }

    async fn get_definition(&self, name: &str, version: Option<u32>) -> Result<DefinitionRecord> {
        let name = name.to_string();
        self.read(move |c| {
            let found = match version {
                None => latest_definition(c, &name)?,
                Some(v) => c
                    .prepare_cached(&format!(
                        "SELECT {DEFINITION_COLUMNS} FROM definitions
                         WHERE name = ?1 AND version = ?2"
                    ))
                    .and_then(|mut s| {
                        s.query_row(params![name, v], definition_from_row)
                            .optional()
                    })
                    .map_err(backend("reading a definition"))?,
            };
            found.ok_or_else(|| Error::NotFound {
                what: "definition",
                id: match version {
                    Some(v) => format!("{name}@{v}"),
                    None => name.clone(),
                },
            })
        })
        .await
    }

    async fn delete_definition(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.write(move |c| {
            let changed = c
                .prepare_cached(
                    "UPDATE definitions SET deleted = 1 WHERE name = ?1 AND deleted = 0",
                )
                .and_then(|mut s| s.execute([&name]))
                .map_err(backend("deleting a definition"))?;
            c.prepare_cached("DELETE FROM definition_tags WHERE name = ?1")
                .and_then(|mut s| s.execute([&name]))
                .map_err(backend("deleting a definition's tags"))?;
            for table in ["definition_versions", "definition_aliases"] {
                c.prepare_cached(&format!("DELETE FROM {table} WHERE name = ?1"))
                    .and_then(|mut s| s.execute([&name]))
                    .map_err(backend("deleting a definition's versions and aliases"))?;
            }
            Ok(changed > 0)
        })
        .await
    }

    async fn publish_version(
        &self,
        name: &str,
        version: u32,
        description: &str,
        now: Millis,
    ) -> Result<(PublishedVersion, bool)> {
        let (name, description) = (name.to_string(), description.to_string());
        self.write(move |c| {
            live_definition(c, &name)?;
            let exists: bool = c
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM definitions WHERE name = ?1 AND version = ?2)",
                )
                .and_then(|mut s| s.query_row(params![name, version], |r| r.get(0)))
                .map_err(backend("reading a definition"))?;
            if !exists {
                return Err(Error::NotFound {
                    what: "definition",
                    id: format!("{name}@{version}"),
                });
            }
            if let Some(v) = read_published(c, &name)?
                .into_iter()
                .find(|v| v.version == version)
            {
                return Ok((v, false));
            }
            c.prepare_cached(
                "INSERT INTO definition_versions (name, version, description, published_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![name, version, description, now]))
            .map_err(backend("publishing a version"))?;
            Ok((
                PublishedVersion {
                    name,
                    version,
                    description,
                    published_at: now,
                },
                true,
            ))
        })
        .await
    }

    async fn published_versions(&self, name: &str) -> Result<Vec<PublishedVersion>> {
        let name = name.to_string();
        self.read(move |c| {
            live_definition(c, &name)?;
            read_published(c, &name)
        })
        .await
    }

    async fn unpublish_version(&self, name: &str, version: u32) -> Result<Unpublish> {
        let name = name.to_string();
        self.write(move |c| {
            if let Some(a) = read_aliases(c, &name)?
                .into_iter()
                .find(|a| a.routing.iter().any(|r| r.0 == version))
            {
                return Ok(Unpublish::Routed(a.alias));
            }
            let n = c
                .prepare_cached("DELETE FROM definition_versions WHERE name = ?1 AND version = ?2")
                .and_then(|mut s| s.execute(params![name, version]))
                .map_err(backend("unpublishing a version"))?;
            Ok(if n > 0 {
                Unpublish::Done
            } else {
                Unpublish::Absent
            })
        })
        .await
    }

    async fn put_alias(&self, alias: &AliasRecord, create: bool) -> Result<AliasWrite> {
        let alias = alias.clone();
        let routing = to_json("an alias's routing", &alias.routing)?;
        self.write(move |c| {
            live_definition(c, &alias.name)?;
            let existing = read_aliases(c, &alias.name)?
                .into_iter()
                .find(|a| a.alias == alias.alias);
            let published = read_published(c, &alias.name)?;
            let is_published = |v| published.iter().any(|p| p.version == v);
            let stored = match AliasWrite::plan(&alias, create, existing, is_published)? {
                Ok(stored) => stored,
                Err(answer) => return Ok(answer),
            };
            c.prepare_cached(
                "INSERT INTO definition_aliases
                     (name, alias, description, routing, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (name, alias) DO UPDATE SET description = excluded.description,
                     routing = excluded.routing, updated_at = excluded.updated_at",
            )
            .and_then(|mut s| {
                s.execute(params![
                    stored.name,
                    stored.alias,
                    stored.description,
                    routing,
                    stored.created_at,
                    stored.updated_at
                ])
            })
            .map_err(backend("storing an alias"))?;
            Ok(AliasWrite::Stored(stored))
        })
        .await
    }

    async fn definition_aliases(&self, name: &str) -> Result<Vec<AliasRecord>> {
        let name = name.to_string();
        self.read(move |c| {
            live_definition(c, &name)?;
            read_aliases(c, &name)
        })
        .await
    }

    async fn delete_alias(&self, name: &str, alias: &str) -> Result<bool> {
        let (name, alias) = (name.to_string(), alias.to_string());
        self.write(move |c| {
            let n = c
                .prepare_cached("DELETE FROM definition_aliases WHERE name = ?1 AND alias = ?2")
                .and_then(|mut s| s.execute(params![name, alias]))
                .map_err(backend("deleting an alias"))?;
            Ok(n > 0)
        })
        .await
    }

    async fn record_execution_origin(&self, id: &str, qualifier: &str) -> Result<()> {
        let (id, qualifier) = (id.to_string(), qualifier.to_string());
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO execution_origins (id, qualifier) VALUES (?1, ?2)
                 ON CONFLICT (id) DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![id, qualifier]))
            .map_err(backend("recording an execution's origin"))?;
            Ok(())
        })
        .await
    }

    async fn execution_origin(&self, id: &str) -> Result<Option<String>> {
        let id = id.to_string();
        self.read(move |c| {
            c.prepare_cached("SELECT qualifier FROM execution_origins WHERE id = ?1")
                .and_then(|mut s| s.query_row([&id], |r| r.get(0)).optional())
                .map_err(backend("reading an execution's origin"))
        })
        .await
    }

    async fn create_activity(
        &self,
        name: &str,
        tags: &Tags,
        now: Millis,
    ) -> Result<(ActivityRecord, bool)> {
        let (name, tags) = (name.to_string(), tags.clone());
        let text = to_json("an activity's tags", &tags)?;
        self.write(move |c| {
            if let Some(existing) = read_activity(c, &name)? {
                return Ok((existing, false));
            }
            c.prepare_cached("INSERT INTO activities (name, created_at, tags) VALUES (?1, ?2, ?3)")
                .and_then(|mut s| s.execute(params![name, millis_sql(now), text]))
                .map_err(backend("creating an activity"))?;
            Ok((
                ActivityRecord {
                    name,
                    created_at: now,
                    tags,
                },
                true,
            ))
        })
        .await
    }

    async fn get_activity(&self, name: &str) -> Result<Option<ActivityRecord>> {
        let name = name.to_string();
        self.read(move |c| read_activity(c, &name)).await
    }

    async fn list_activities(&self) -> Result<Vec<ActivityRecord>> {
        self.read(move |c| {
            let rows = c
                .prepare_cached("SELECT name, created_at, tags FROM activities ORDER BY name")
                .and_then(|mut s| {
                    s.query_map([], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, String>(2)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(backend("listing activities"))?;
            rows.into_iter().map(activity_from).collect()
        })
        .await
    }

    async fn delete_activity(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.write(move |c| {
            let n = c
                .prepare_cached("DELETE FROM activities WHERE name = ?1")
                .and_then(|mut s| s.execute([&name]))
                .map_err(backend("deleting an activity"))?;
            Ok(n > 0)
        })
        .await
    }

    async fn tag_activity(
        &self,
        name: &str,
        set: &Tags,
        remove: &[String],
        max: usize,
    ) -> Result<Option<Tags>> {
        let (name, set, remove) = (name.to_string(), set.clone(), remove.to_vec());
        // Checked before anything is written (no savepoint per request).
        self.write(move |c| {
            let Some(activity) = read_activity(c, &name)? else {
                return Err(Error::NotFound {
                    what: "activity",
                    id: name.clone(),
                });
            };
            let tags = activity.tags;
            let Some(tags) = crate::retagged(tags, &set, &remove, max) else {
                return Ok(None);
            };
            let text = to_json("an activity's tags", &tags)?;
            c.prepare_cached("UPDATE activities SET tags = ?2 WHERE name = ?1")
                .and_then(|mut s| s.execute(params![name, text]))
                .map_err(backend("tagging an activity"))?;
            Ok(Some(tags))
        })
        .await
    }

    async fn offer_activity_task(&self, offer: &ActivityOffer) -> Result<bool> {
        let offer = offer.clone();
        let input = to_json("an activity task's input", &offer.input)?;
        self.write(move |c| {
            c.prepare_cached("DELETE FROM activity_offers WHERE expires_at < ?1")
                .and_then(|mut s| s.execute([millis_sql(offer.offered_at)]))
                .map_err(backend("removing expired activity offers"))?;
            let n = c
                .prepare_cached(
                    "INSERT INTO activity_offers
                         (token, activity, execution_id, input, offered_at, expires_at)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6
                     WHERE NOT EXISTS (SELECT 1 FROM activity_tasks WHERE token = ?1)
                     ON CONFLICT (token) DO NOTHING",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        offer.token,
                        offer.activity,
                        offer.execution_id,
                        input,
                        millis_sql(offer.offered_at),
                        millis_sql(offer.expires_at)
                    ])
                })
                .map_err(backend("offering an activity task"))?;
            Ok(n > 0)
        })
        .await
    }

    async fn activity_offers(
        &self,
        activity: &str,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<ActivityOffer>> {
        let activity = activity.to_string();
        self.read(move |c| {
            let rows = c
                .prepare_cached(
                    "SELECT token, execution_id, input, offered_at, expires_at
                     FROM activity_offers WHERE activity = ?1 AND expires_at >= ?2
                     ORDER BY offered_at, token LIMIT ?3",
                )
                .and_then(|mut s| {
                    s.query_map(
                        params![
                            activity,
                            millis_sql(now),
                            limit.min(i64::MAX as usize) as i64
                        ],
                        |r| {
                            Ok((
                                r.get::<_, String>(0)?,
                                r.get::<_, String>(1)?,
                                r.get::<_, String>(2)?,
                                r.get::<_, i64>(3)?,
                                r.get::<_, i64>(4)?,
                            ))
                        },
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(backend("reading activity offers"))?;
            rows.into_iter()
                .map(|(token, execution_id, input, offered_at, expires_at)| {
                    Ok(ActivityOffer {
                        token,
                        activity: activity.clone(),
                        execution_id,
                        input: from_json("an activity task's input", &input)?,
                        offered_at: offered_at.max(0) as Millis,
                        expires_at: expires_at.max(0) as Millis,
                    })
                })
                .collect()
        })
        .await
    }

    async fn claim_activity_task(&self, claim: &ActivityTaskClaim) -> Result<bool> {
        let claim = claim.clone();
        self.write(move |c| {
            c.prepare_cached("DELETE FROM activity_tasks WHERE expires_at < ?1")
                .and_then(|mut s| s.execute([millis_sql(claim.claimed_at)]))
                .map_err(backend("removing expired activity tasks"))?;
            let n = c
                .prepare_cached(
                    "INSERT INTO activity_tasks (token, execution_id, worker, claimed_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (token) DO NOTHING",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        claim.token,
                        claim.execution_id,
                        claim.worker,
                        millis_sql(claim.claimed_at),
                        millis_sql(claim.expires_at)
                    ])
                })
                .map_err(backend("taking an activity task"))?;
            if n > 0 {
                c.prepare_cached("DELETE FROM activity_offers WHERE token = ?1")
                    .and_then(|mut s| s.execute([&claim.token]))
                    .map_err(backend("withdrawing a taken activity task's offer"))?;
            }
            Ok(n > 0)
        })
        .await
    }

    async fn forget_activity_task(&self, token: &str) -> Result<()> {
        let token = token.to_string();
        self.write(move |c| {
            c.prepare_cached("DELETE FROM activity_offers WHERE token = ?1")
                .and_then(|mut s| s.execute([&token]))
                .map_err(backend("withdrawing an activity task's offer"))?;
            c.prepare_cached("DELETE FROM activity_tasks WHERE token = ?1")
                .and_then(|mut s| s.execute([&token]))
                .map_err(backend("forgetting an activity task"))?;
            Ok(())
        })
        .await
    }

    async fn definition_tags(&self, name: &str) -> Result<Tags> {
        let name = name.to_string();
        self.read(move |c| {
            live_definition(c, &name)?;
            read_tags(c, &name)
        })
        .await
    }

    async fn tag_definition(
        &self,
        name: &str,
        set: &Tags,
        remove: &[String],
        max: usize,
    ) -> Result<Option<Tags>> {
        let (name, set, remove) = (name.to_string(), set.clone(), remove.to_vec());
        // Checked before anything is written: a batch has no savepoint per
        // request, so a refusal must leave nothing behind.
        self.write(move |c| {
            live_definition(c, &name)?;
            let tags = read_tags(c, &name)?;
            let Some(tags) = crate::retagged(tags, &set, &remove, max) else {
                return Ok(None);
            };
            for k in &remove {
                c.prepare_cached("DELETE FROM definition_tags WHERE name = ?1 AND key = ?2")
                    .and_then(|mut s| s.execute(params![name, k]))
                    .map_err(backend("removing a tag"))?;
            }
            for (k, v) in &set {
                c.prepare_cached(
                    "INSERT INTO definition_tags (name, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (name, key) DO UPDATE SET value = excluded.value",
                )
                .and_then(|mut s| s.execute(params![name, k, v]))
                .map_err(backend("setting a tag"))?;
            }
            Ok(Some(tags))
        })
        .await
    }

    async fn create_execution(&self, create: Create) -> Result<Created> {
        let Create {
            record,
            events,
            timers,
            notify,
        } = create;
        let n = events.len() as u64;
        let x = NewExecution {
            input: to_json("input", &record.input)?,
            output: encode_optional("output", &record.output)?,
            error: encode_optional("error", &record.error)?,
            events: encode_events(&events)?,
            id: record.id.clone(),
            definition: record.definition.clone(),
            version: record.version,
            status: record.status,
            started_at: record.started_at,
            updated_at: record.updated_at,
            timers,
            notify,
        };
        drop(events);
        let created = self
            .write(move |c| {
                if create_execution(c, &x)? {
                    Ok(None)
                } else {
                    get_execution_row(c, &x.id).map(Some)
                }
            })
            .await?;
        match created {
            None => Ok(Created::New(ExecutionRecord {
                events: n,
                ..record
            })),
            Some(Some(row)) => Ok(Created::Existing(row.decode()?)),
            // Taken, then gone: nothing deletes executions.
            Some(None) => Err(Error::Backend(format!(
                "execution `{}` both exists and does not",
                record.id
            ))),
        }
    }

    async fn append(&self, a: Append) -> Result<u64> {
        let a = EncodedAppend::new(a)?;
        self.write(move |c| append(c, a)).await
    }

    async fn claim_due_timers(&self, now: Millis, limit: usize) -> Result<Vec<Timer>> {
        self.write(move |c| claim_due_timers(c, now, limit)).await
    }

    async fn unfinished(&self) -> Result<Vec<ExecutionRecord>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {EXECUTION_COLUMNS} FROM executions
                 WHERE status IN ('{}', '{}') ORDER BY seq",
                Status::Running.as_str(),
                Status::Compensating.as_str()
            ))
            .and_then(|mut s| {
                s.query_map([], ExecutionRow::from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(backend("listing unfinished executions"))?
            .into_iter()
            .map(ExecutionRow::decode)
            .collect()
        })
        .await
    }

    async fn load_history(&self, id: &str) -> Result<Vec<Event>> {
        let id = id.to_string();
        let entries = self
            .read(move |c| read_history(c, &id, 0, usize::MAX))
            .await?;
        Ok(entries.into_iter().map(|h| h.event).collect())
    }

    async fn pending_notifications(&self, limit: usize) -> Result<Vec<Notification>> {
        self.read(move |c| pending_notifications(c, limit)).await
    }

    async fn ack_notification(&self, id: u64) -> Result<()> {
        // An id beyond SQLite's integer range cannot be in the table.
        let Ok(id) = i64::try_from(id) else {
            return Ok(());
        };
        self.write(move |c| {
            c.prepare_cached("DELETE FROM outbox WHERE id = ?1")
                .and_then(|mut s| s.execute([id]))
                .map(|_| ())
                .map_err(backend("acknowledging a notification"))
        })
        .await
    }

    async fn bury_notification(&self, dead: DeadLetter) -> Result<()> {
        let Ok(id) = i64::try_from(dead.notification.id) else {
            return Ok(());
        };
        self.write(move |c| {
            // Only a notification still in the outbox moves (idempotent);
            // the writer's transaction makes the two statements one.
            c.prepare_cached(
                "INSERT INTO dead_letters
                   (id, execution_id, status, kind, created_at, failed_at, attempts, last_error)
                 SELECT id, execution_id, status, kind, created_at, ?2, ?3, ?4
                 FROM outbox WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.execute(params![id, dead.failed_at, dead.attempts, dead.last_error])
            })
            .and_then(|_| c.prepare_cached("DELETE FROM outbox WHERE id = ?1"))
            .and_then(|mut s| s.execute([id]))
            .map(|_| ())
            .map_err(backend("moving a notification to the dead letters"))
        })
        .await
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        self.read(move |c| dead_letters(c, limit)).await
    }

    async fn replay_dead_letter(&self, id: u64) -> Result<Option<Notification>> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(None);
        };
        self.write(move |c| {
            let moved = c
                .prepare_cached(
                    "INSERT INTO outbox (execution_id, status, created_at, kind)
                     SELECT execution_id, status, created_at, kind FROM dead_letters WHERE id = ?1",
                )
                .and_then(|mut s| s.execute([id]))
                .map_err(backend("replaying a dead letter"))?;
            if moved == 0 {
                return Ok(None);
            }
            let new_id = c.last_insert_rowid();
            c.prepare_cached("DELETE FROM dead_letters WHERE id = ?1")
                .and_then(|mut s| s.execute([id]))
                .map_err(backend("replaying a dead letter"))?;
            c.prepare_cached(
                "SELECT id, execution_id, status, created_at, kind FROM outbox WHERE id = ?1",
            )
            .and_then(|mut s| s.query_row([new_id], RawNotification::read))
            .map_err(backend("replaying a dead letter"))
            .and_then(|raw| raw.parse().map(Some))
        })
        .await
    }
}

#[async_trait]
impl Query for SqliteStore {
    async fn get_execution(&self, id: &str) -> Result<ExecutionRecord> {
        let id = id.to_string();
        self.read(move |c| get_execution(c, &id)).await
    }

    async fn list_executions(&self, f: &ListFilter) -> Result<Page> {
        // The cursor is the `seq` of the last item returned: the next page
        // starts below it, so inserts since do not shift the pages.
        let before = match &f.cursor {
            None => i64::MAX,
            Some(c) => c
                .parse::<u64>()
                .map_err(|_| Error::BadCursor(c.clone()))?
                .min(i64::MAX as u64) as i64,
        };
        let limit = f.limit.max(1);
        let status = f.status.map(|s| s.as_str());
        let definition = f.definition.clone();
        let range = (f.started_after, f.started_before);
        self.read(move |c| {
            // Only the filters in use go into the SQL, so the planner can use
            // the (status, seq) or (definition, seq) index.
            let mut sql = format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE seq < ?");
            let mut args = vec![SqlValue::Integer(before)];
            if let Some(status) = status {
                sql.push_str(" AND status = ?");
                args.push(SqlValue::Text(status.to_string()));
            }
            if let Some(definition) = definition {
                sql.push_str(" AND definition = ?");
                args.push(SqlValue::Text(definition));
            }
            // A time range checks rows along the seq order, which follows
            // the start order: recent ranges stop early.
            if let Some(after) = range.0 {
                sql.push_str(" AND started_at >= ?");
                args.push(SqlValue::Integer(after.min(i64::MAX as u64) as i64));
            }
            if let Some(until) = range.1 {
                sql.push_str(" AND started_at < ?");
                args.push(SqlValue::Integer(until.min(i64::MAX as u64) as i64));
            }
            sql.push_str(" ORDER BY seq DESC LIMIT ?");
            args.push(SqlValue::Integer(
                i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX),
            ));
            let mut rows = c
                .prepare_cached(&sql)
                .and_then(|mut s| {
                    s.query_map(params_from_iter(args), ExecutionRow::from_row)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(backend("listing executions"))?;
            let more = rows.len() > limit;
            rows.truncate(limit);
            let next_cursor = if more {
                rows.last().map(|r| r.seq.to_string())
            } else {
                None
            };
            Ok(Page {
                items: rows
                    .into_iter()
                    .map(ExecutionRow::decode)
                    .collect::<Result<_>>()?,
                next_cursor,
            })
        })
        .await
    }

    async fn event_times(&self, id: &str, kind: &str) -> Result<Vec<Millis>> {
        let (id, kind) = (id.to_string(), kind.to_string());
        self.read(move |c| {
            c.prepare_cached(
                "SELECT at FROM events WHERE execution_id = ?1 AND type = ?2 ORDER BY seq",
            )
            .and_then(|mut s| {
                s.query_map(params![id, kind], |r| r.get::<_, i64>(0))?
                    .map(|at| at.map(|at| at.max(0) as Millis))
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(backend("reading the times of an execution's events"))
        })
        .await
    }

    async fn history_page(&self, id: &str, after: u64, limit: usize) -> Result<Vec<HistoryEntry>> {
        let id = id.to_string();
        self.read(move |c| read_history(c, &id, after, limit)).await
    }

    async fn list_definitions(&self) -> Result<Vec<DefinitionRecord>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {DEFINITION_COLUMNS} FROM definitions AS d
                 WHERE deleted = 0
                   AND version = (SELECT MAX(version) FROM definitions WHERE name = d.name)
                 ORDER BY name"
            ))
            .and_then(|mut s| {
                s.query_map([], definition_from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(backend("listing definitions"))
        })
        .await
    }
}
