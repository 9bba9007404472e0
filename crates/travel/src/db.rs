//! The services' own SQLite database (never the orchestrator's).
//!
//! One file holds:
//! - `bookings`: the single table of the reference application, one row per
//!   hotel, flight, car or payment of a trip (`pk` = trip id, `sk` =
//!   `HOTEL#id | FLIGHT#id | CAR#id | PAYMENT#id`);
//! - `idempotency`: the first response given for each `Idempotency-Key`,
//!   written in the same transaction as the effect it describes;
//! - `effects`: how many times a call was executed (its rule applied and its
//!   outcome committed) per route and `Idempotency-Key`, written in the same
//!   transaction as the effect: more than 1 would mean a repeated call was
//!   executed again instead of being answered from `idempotency`;
//! - `calls`: every call made by a node of a Sagaflow cluster (it carries a
//!   `Sagaflow-Node` header): the node, the route, the execution, step, task
//!   and attempt, the status answered and when the call arrived and ended, so
//!   tests can check that no two nodes worked on one step at the same time;
//! - `tombstones`: cancellations that found nothing to cancel, so that a
//!   reservation arriving after its own cancellation is refused (anti-hanging);
//! - `confirm_failures`: how many confirmation failures were injected per trip
//!   and kind, so "fail N times, then succeed" survives a restart.
//!
//! The connection is opened in WAL mode and used behind a `Mutex`. Calls
//! ([`Db::in_transaction`]) are **group-committed** by a writer thread: it
//! takes every call queued meanwhile, runs each in its own savepoint of one
//! transaction (a call that fails undoes only its own writes) and commits
//! once; a call hears back only after that commit. A call is thus still
//! all-or-nothing and durable when answered, and many calls share one
//! commit's WAL writes. Everything else here is synchronous, for blocking
//! threads.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, Context};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::oneshot;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS bookings (
    pk TEXT NOT NULL,                  -- trip_id
    sk TEXT NOT NULL,                  -- HOTEL#id | FLIGHT#id | CAR#id | PAYMENT#id
    transaction_status TEXT NOT NULL   -- pending | confirmed
        CHECK (transaction_status IN ('pending', 'confirmed')),
    details TEXT NOT NULL DEFAULT '{}' -- JSON
        CHECK (json_valid(details)),
    PRIMARY KEY (pk, sk)
);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    status INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS effects (
    route TEXT NOT NULL,               -- e.g. hotel/reserve
    key TEXT NOT NULL,                 -- the caller's Idempotency-Key
    count INTEGER NOT NULL,
    PRIMARY KEY (route, key)
);
CREATE TABLE IF NOT EXISTS calls (
    node TEXT NOT NULL,                -- the caller's Sagaflow-Node
    route TEXT NOT NULL,
    key TEXT,                          -- Idempotency-Key
    execution_id TEXT,                 -- Sagaflow-Execution-Id
    step TEXT,                         -- Sagaflow-Step
    task TEXT,                         -- Sagaflow-Task
    attempt INTEGER,                   -- Sagaflow-Attempt
    status INTEGER NOT NULL,           -- the HTTP status answered
    started_us INTEGER NOT NULL,       -- when the call arrived (µs since the epoch)
    ended_us INTEGER NOT NULL          -- when its answer was ready
);
CREATE TABLE IF NOT EXISTS tombstones (
    pk TEXT NOT NULL,
    kind TEXT NOT NULL,
    PRIMARY KEY (pk, kind)
);
CREATE TABLE IF NOT EXISTS confirm_failures (
    pk TEXT NOT NULL,
    kind TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (pk, kind)
);
";

/// One row of the `bookings` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The trip id.
    pub pk: String,
    /// `HOTEL#id`, `FLIGHT#id`, `CAR#id` or `PAYMENT#id`.
    pub sk: String,
    /// `pending` or `confirmed`.
    pub transaction_status: String,
    /// What was booked (hotel name and dates, flight legs, amount, ...).
    pub details: Value,
}

/// One row of the `effects` table: how many times calls with this
/// `Idempotency-Key` on this route were executed rather than answered from
/// the idempotency store (at most 1 for a participant that deduplicates).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effect {
    /// The route, e.g. `hotel/reserve` or `payment/refund`.
    pub route: String,
    /// The caller's `Idempotency-Key`.
    pub key: String,
    /// How many times a call with this key was executed on this route.
    pub count: u64,
}

/// One row of the `calls` table: a call made by a node of a Sagaflow cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// The caller's `Sagaflow-Node` header.
    pub node: String,
    /// The route, e.g. `hotel/reserve`.
    pub route: String,
    /// `Idempotency-Key`, `Sagaflow-Execution-Id`, `Sagaflow-Step`,
    /// `Sagaflow-Task` and `Sagaflow-Attempt`, when sent.
    pub key: Option<String>,
    pub execution_id: Option<String>,
    pub step: Option<String>,
    pub task: Option<String>,
    pub attempt: Option<u32>,
    /// The HTTP status answered.
    pub status: u16,
    /// When the call arrived and when its answer was ready, in microseconds
    /// since the Unix epoch (the services' clock).
    pub started_us: i64,
    pub ended_us: i64,
}

/// A booking as the business rules see it.
pub(crate) struct Booking {
    pub status: String,
    pub details: Value,
}

/// The most calls one commit covers.
const MAX_BATCH: usize = 256;

/// The database of a running service: one connection, used by one thread at
/// a time (the writer thread for calls, blocking threads for the rest).
pub(crate) struct Db {
    conn: Arc<Mutex<Connection>>,
    /// `None` only while dropping: closing it stops the writer.
    calls: Option<mpsc::Sender<Box<dyn Work>>>,
    writer: Option<JoinHandle<()>>,
}

/// A call's transaction, queued for the writer thread.
trait Work: Send {
    /// Runs inside the batch's transaction. `false`: the call failed; its
    /// writes are undone.
    fn run(&mut self, tx: &Transaction<'_>) -> bool;
    /// Answers the caller once the batch's commit is known.
    fn answer(self: Box<Self>, committed: Result<(), &str>);
}

struct Job<T, F> {
    op: Option<F>,
    result: Option<anyhow::Result<T>>,
    reply: oneshot::Sender<anyhow::Result<T>>,
}

impl<T, F> Work for Job<T, F>
where
    T: Send,
    F: FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send,
{
    fn run(&mut self, tx: &Transaction<'_>) -> bool {
        let result = match self.op.take() {
            // A panicking call fails alone, as it did on its blocking thread.
            Some(op) => match std::panic::catch_unwind(AssertUnwindSafe(|| op(tx))) {
                Ok(result) => result.map_err(anyhow::Error::from),
                Err(_) => Err(anyhow!("the call panicked")),
            },
            None => Err(anyhow!("a call ran twice")),
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, committed: Result<(), &str>) {
        let result = match (self.result, committed) {
            // Its own error stands whatever the batch did.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (_, Err(e)) => Err(anyhow!("the call's transaction was rolled back: {e}")),
            (None, Ok(())) => Err(anyhow!("the call was never run")),
        };
        // The caller may have gone (its client hung up); the call stands.
        let _ = self.reply.send(result);
    }
}

fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding the lock cannot leave a half-applied change
    // behind (the transaction rolls back on drop), so a poisoned lock is
    // still safe to use.
    conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn run_writer(conn: &Mutex<Connection>, calls: &mpsc::Receiver<Box<dyn Work>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = calls.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match calls.try_recv() {
                Ok(work) => batch.push(work),
                Err(_) => break,
            }
        }
        let committed = run_batch(&mut lock(conn), &mut batch);
        for work in batch.drain(..) {
            work.answer(committed.as_ref().map(|_| ()).map_err(String::as_str));
        }
    }
}

/// Runs a batch of calls in one immediate transaction, each in its own
/// savepoint (but a lone call), and commits it.
fn run_batch(conn: &mut Connection, batch: &mut [Box<dyn Work>]) -> Result<(), String> {
    let text = |e: rusqlite::Error| e.to_string();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(text)?;
    if let [lone] = batch {
        if !lone.run(&tx) {
            return Err("the call failed".into()); // dropping `tx` rolls it back
        }
    } else {
        for work in batch.iter_mut() {
            tx.execute_batch("SAVEPOINT call").map_err(text)?;
            if !work.run(&tx) {
                tx.execute_batch("ROLLBACK TO call").map_err(text)?;
            }
            tx.execute_batch("RELEASE call").map_err(text)?;
        }
    }
    tx.commit().map_err(text)
}

impl Db {
    /// Opens (creating if needed) the database file and its tables.
    pub fn open(path: &Path) -> anyhow::Result<Db> {
        let conn = Connection::open(path)
            .with_context(|| format!("opening travel database {}", path.display()))?;
        configure(&conn)?;
        conn.execute_batch(SCHEMA)
            .with_context(|| format!("creating tables in {}", path.display()))?;
        let conn = Arc::new(Mutex::new(conn));
        let (calls, queued) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("travel-db-writer".into())
            .spawn({
                let conn = conn.clone();
                move || run_writer(&conn, &queued)
            })
            .context("starting the travel database's writer thread")?;
        Ok(Db {
            conn,
            calls: Some(calls),
            writer: Some(writer),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        lock(&self.conn)
    }

    /// Runs `f` as one call: its writes are kept, all of them, if it returns
    /// `Ok` and the commit it shares with the calls queued meanwhile succeeds;
    /// the answer comes after that commit.
    pub async fn in_transaction<T, F>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        let stopped = || anyhow!("the travel database's writer has stopped");
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Job {
            op: Some(f),
            result: None,
            reply,
        });
        self.calls
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// The rows of one trip, or of every trip.
    pub fn rows(&self, trip_id: Option<&str>) -> rusqlite::Result<Vec<Row>> {
        read_rows(&self.lock(), trip_id)
    }

    /// Every row of the `effects` table.
    pub fn effects(&self) -> rusqlite::Result<Vec<Effect>> {
        read_effects(&self.lock())
    }

    /// Logs one call of a cluster node in the `calls` table.
    pub fn record_call(&self, call: &Call) -> rusqlite::Result<()> {
        self.lock().execute(
            "INSERT INTO calls (node, route, key, execution_id, step, task, attempt, status, \
             started_us, ended_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                call.node,
                call.route,
                call.key,
                call.execution_id,
                call.step,
                call.task,
                call.attempt,
                call.status,
                call.started_us,
                call.ended_us
            ],
        )?;
        Ok(())
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // The writer finishes what is queued and stops; once joined, the
        // database is closed when the last connection handle goes.
        self.calls = None;
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!("the travel database's writer thread panicked");
            }
        }
    }
}

fn configure(conn: &Connection) -> anyhow::Result<()> {
    conn.busy_timeout(Duration::from_secs(5))?;
    // Every statement of a call is prepared once and reused (there are
    // about a dozen): parsing them for every call was a fifth of a call's
    // time in SQLite.
    conn.set_prepared_statement_cache_capacity(32);
    // WAL with synchronous=NORMAL: a committed transaction survives the
    // process being killed (it is in the WAL, in the OS), which is the failure
    // the crash tests inject.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

/// Reads the `bookings` rows of a database file, ordered by trip then sort key.
pub(crate) fn read_rows_from(path: &Path, trip_id: Option<&str>) -> anyhow::Result<Vec<Row>> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening travel database {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    read_rows(&conn, trip_id).with_context(|| format!("reading bookings of {}", path.display()))
}

/// Reads the `effects` rows of a database file, ordered by route then key.
pub(crate) fn read_effects_from(path: &Path) -> anyhow::Result<Vec<Effect>> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening travel database {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    read_effects(&conn).with_context(|| format!("reading effects of {}", path.display()))
}

/// Reads the `calls` rows of a database file, in the order they arrived.
pub(crate) fn read_calls_from(path: &Path) -> anyhow::Result<Vec<Call>> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening travel database {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mut stmt = conn
        .prepare(
            "SELECT node, route, key, execution_id, step, task, attempt, status, started_us, \
             ended_us FROM calls ORDER BY started_us, rowid",
        )
        .with_context(|| format!("reading calls of {}", path.display()))?;
    let calls = stmt.query_map([], |row| {
        Ok(Call {
            node: row.get(0)?,
            route: row.get(1)?,
            key: row.get(2)?,
            execution_id: row.get(3)?,
            step: row.get(4)?,
            task: row.get(5)?,
            attempt: row.get(6)?,
            status: row.get(7)?,
            started_us: row.get(8)?,
            ended_us: row.get(9)?,
        })
    })?;
    calls
        .collect::<rusqlite::Result<_>>()
        .with_context(|| format!("reading calls of {}", path.display()))
}

fn read_effects(conn: &Connection) -> rusqlite::Result<Vec<Effect>> {
    let mut stmt =
        conn.prepare_cached("SELECT route, key, count FROM effects ORDER BY route, key")?;
    let effects = stmt.query_map([], |row| {
        Ok(Effect {
            route: row.get(0)?,
            key: row.get(1)?,
            count: row.get(2)?,
        })
    })?;
    effects.collect()
}

fn read_rows(conn: &Connection, trip_id: Option<&str>) -> rusqlite::Result<Vec<Row>> {
    let mut stmt = conn.prepare_cached(
        "SELECT pk, sk, transaction_status, details FROM bookings
         WHERE ?1 IS NULL OR pk = ?1 ORDER BY pk, sk",
    )?;
    let rows = stmt.query_map(params![trip_id], |row| {
        let details: String = row.get(3)?;
        Ok(Row {
            pk: row.get(0)?,
            sk: row.get(1)?,
            transaction_status: row.get(2)?,
            details: serde_json::from_str(&details).unwrap_or(Value::String(details)),
        })
    })?;
    rows.collect()
}

/// The response first given for an idempotency key, if any.
pub(crate) fn remembered(
    tx: &Transaction<'_>,
    key: &str,
) -> rusqlite::Result<Option<(u16, String)>> {
    tx.prepare_cached("SELECT status, body FROM idempotency WHERE key = ?1")?
        .query_row(params![key], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
}

/// Stores the response given for an idempotency key.
pub(crate) fn remember(
    tx: &Transaction<'_>,
    key: &str,
    status: u16,
    body: &str,
) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT INTO idempotency (key, status, body) VALUES (?1, ?2, ?3)")?
        .execute(params![key, status, body])?;
    Ok(())
}

/// Counts one execution of a call with `key` on `route`.
pub(crate) fn record_effect(tx: &Transaction<'_>, route: &str, key: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO effects (route, key, count) VALUES (?1, ?2, 1)
         ON CONFLICT (route, key) DO UPDATE SET count = count + 1",
    )?
    .execute(params![route, key])?;
    Ok(())
}

pub(crate) fn booking(
    tx: &Transaction<'_>,
    pk: &str,
    sk: &str,
) -> rusqlite::Result<Option<Booking>> {
    tx.prepare_cached("SELECT transaction_status, details FROM bookings WHERE pk = ?1 AND sk = ?2")?
        .query_row(params![pk, sk], |row| {
            let details: String = row.get(1)?;
            Ok(Booking {
                status: row.get(0)?,
                details: serde_json::from_str(&details).unwrap_or(Value::Null),
            })
        })
        .optional()
}

pub(crate) fn insert_booking(
    tx: &Transaction<'_>,
    pk: &str,
    sk: &str,
    status: &str,
    details: &Value,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO bookings (pk, sk, transaction_status, details) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![pk, sk, status, details.to_string()])?;
    Ok(())
}

pub(crate) fn set_status(
    tx: &Transaction<'_>,
    pk: &str,
    sk: &str,
    status: &str,
) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE bookings SET transaction_status = ?3 WHERE pk = ?1 AND sk = ?2")?
        .execute(params![pk, sk, status])?;
    Ok(())
}

/// Deletes a booking; tells whether there was one.
pub(crate) fn delete_booking(tx: &Transaction<'_>, pk: &str, sk: &str) -> rusqlite::Result<bool> {
    let deleted = tx
        .prepare_cached("DELETE FROM bookings WHERE pk = ?1 AND sk = ?2")?
        .execute(params![pk, sk])?;
    Ok(deleted > 0)
}

pub(crate) fn has_tombstone(tx: &Transaction<'_>, pk: &str, kind: &str) -> rusqlite::Result<bool> {
    tx.prepare_cached("SELECT 1 FROM tombstones WHERE pk = ?1 AND kind = ?2")?
        .query_row(params![pk, kind], |_| Ok(()))
        .optional()
        .map(|found| found.is_some())
}

pub(crate) fn add_tombstone(tx: &Transaction<'_>, pk: &str, kind: &str) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT OR IGNORE INTO tombstones (pk, kind) VALUES (?1, ?2)")?
        .execute(params![pk, kind])?;
    Ok(())
}

/// How many confirmation failures were already injected for this trip and kind.
pub(crate) fn confirm_failures(
    tx: &Transaction<'_>,
    pk: &str,
    kind: &str,
) -> rusqlite::Result<u32> {
    tx.prepare_cached("SELECT count FROM confirm_failures WHERE pk = ?1 AND kind = ?2")?
        .query_row(params![pk, kind], |row| row.get(0))
        .optional()
        .map(|count| count.unwrap_or(0))
}

/// Counts one more injected confirmation failure; returns the new count.
pub(crate) fn add_confirm_failure(
    tx: &Transaction<'_>,
    pk: &str,
    kind: &str,
) -> rusqlite::Result<u32> {
    tx.prepare_cached(
        "INSERT INTO confirm_failures (pk, kind, count) VALUES (?1, ?2, 1)
         ON CONFLICT (pk, kind) DO UPDATE SET count = count + 1
         RETURNING count",
    )?
    .query_row(params![pk, kind], |row| row.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tombstones(db: &Db) -> Vec<String> {
        let conn = db.lock();
        let mut stmt = conn
            .prepare("SELECT pk FROM tombstones ORDER BY pk")
            .unwrap();
        let rows = stmt.query_map([], |row| row.get(0)).unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_sharing_a_commit_keep_their_own_writes_and_a_failed_one_none() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Db::open(&dir.path().join("travel.db")).unwrap());
        // Many calls at once, so that most share commits; every third one
        // writes and then fails.
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..60 {
            let db = db.clone();
            calls.spawn(async move {
                let pk = format!("t{i:02}");
                let answer = db
                    .in_transaction(move |tx| {
                        add_tombstone(tx, &pk, "HOTEL")?;
                        if i % 3 == 0 {
                            // Any error: the row above must not stay.
                            tx.execute("INSERT INTO no_such_table VALUES (1)", [])?;
                        }
                        Ok(i)
                    })
                    .await;
                (i, answer.is_ok())
            });
        }
        while let Some(done) = calls.join_next().await {
            let (i, ok) = done.unwrap();
            assert_eq!(ok, i % 3 != 0, "call {i}");
        }
        let expected: Vec<String> = (0..60)
            .filter(|i| i % 3 != 0)
            .map(|i| format!("t{i:02}"))
            .collect();
        assert_eq!(tombstones(&db), expected);
        // The file holds them after a reopen too.
        drop(Arc::into_inner(db).expect("the last handle"));
        let db = Db::open(&dir.path().join("travel.db")).unwrap();
        assert_eq!(tombstones(&db), expected);
    }
}
