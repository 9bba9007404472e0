//! The PostgreSQL backend: the same [`Executor`] and [`Query`] semantics as
//! [`SqliteStore`](crate::sqlite::SqliteStore), pinned down by the shared
//! conformance suite (`conformance.rs`) and a differential test against
//! SQLite (`crates/store/tests/postgres.rs`).
//!
//! **Client.** `tokio-postgres` with a `deadpool-postgres` pool, rather than
//! `sqlx`: it is a much smaller dependency tree (no macros, no compile-time
//! query checking that would need a database at build time, no TLS stack we
//! do not use), it binds Rust `Vec`s as PostgreSQL arrays (so a whole batch of
//! events goes in as one `UNNEST` insert), it takes libpq's `options` startup
//! parameter (how [`PostgresStore::connect_in_schema`] pins `search_path` on
//! every pooled connection), and the pool keeps a prepared-statement cache per
//! connection.
//!
//! **Writes are single statements.** An append is one statement — the
//! optimistic version check is the `WHERE events = $expected` of an `UPDATE`,
//! and data-modifying CTEs insert the events (with their `seq`), the durable
//! timers and the outbox row only if that `UPDATE` matched — so it is one
//! round trip and one implicit transaction: everything or nothing, and a
//! conflict stores nothing. Under `READ COMMITTED` a concurrent append to the
//! same execution makes the `UPDATE` wait for it and re-check the version on
//! the committed row, so of two racing appends (from one store or from two
//! nodes) exactly one wins each version. Creating an execution is likewise
//! one `INSERT … ON CONFLICT (id) DO NOTHING` with its events.
//!
//! **No group commit here.** SQLite has one writer, so batching many appends
//! into one transaction is what makes it fast. PostgreSQL commits from many
//! connections in parallel and already shares WAL flushes between concurrent
//! commits, so appends simply run concurrently over the pool (one commit
//! each); [`Options::max_connections`] bounds the parallelism.
//!
//! **Timers** are claimed with `DELETE … WHERE id = ANY(ARRAY(SELECT id …
//! ORDER BY fire_at, id LIMIT n FOR UPDATE SKIP LOCKED)) RETURNING …`: safe
//! with several nodes polling, each due timer goes to exactly one of them.
//! The `id` (an identity column, unlike SQLite's implicit `rowid`) keeps
//! equal `fire_at`s in insertion order, as SQLite does.
//!
//! **Ordering under concurrency.** `executions.seq` (listing order and the
//! cursor) and `outbox.id` come from sequences, which hand out numbers at
//! insert time, not commit time: with concurrent writers a row can become
//! visible after a row with a larger number. A page read at that moment
//! misses it (the same as if it had been created after the read); nothing is
//! ever listed twice. Numbers are never reused.
//!
//! **Schema.** Versioned by [`MIGRATIONS`] (`migrations/postgres/*.sql`,
//! numbered as SQLite's) in a `schema_migrations` table,
//! applied at connect under a transaction-scoped advisory lock so that nodes
//! starting together do not race; a database with a newer schema is refused.
//! Tables live in the first schema of `search_path`: pass
//! `options=-c search_path=NAME` in the URL, or use
//! [`PostgresStore::connect_in_schema`], which also creates the schema.
//!
//! **Several nodes** share a schema through per-execution leases
//! (`executions.owner`, `lease_until`) and a registry of nodes (`nodes`),
//! all timed by the database's clock, so nodes need not agree on the time. A
//! fenced append ([`Leases::append_fenced`]) adds "this node's lease is live" to the
//! `UPDATE`'s condition, so a node that lost its lease stores nothing, like
//! a conflict. Taking expired leases over and claiming due timers lock rows
//! with `SKIP LOCKED`: each goes to one node. The unfenced append is the
//! statement it always was: a single node pays nothing for leases.
//!
//! **One owner.** A single server (no leases) takes
//! [`PostgresStore::lock_exclusively`] instead, the PostgreSQL counterpart of
//! SQLite's lock file: a session advisory lock, so that a second single
//! server on the same schema is refused rather than resuming the same
//! executions. Several stores may still share a schema (the fencing tests do).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use sagaflow_core::event::Millis;
use sagaflow_core::{ErrorInfo, Event, Status};
use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::encode::{from_json, not_found, parse_task, to_json};
use crate::migrations::{self, Migration};
use crate::{
    ActivityOffer, ActivityRecord, ActivityTaskClaim, AliasRecord, AliasWrite, PublishedVersion,
    Unpublish,
};
use crate::{
    Append, Create, Created, DeadLetter, DefinitionRecord, Error, ExecutionRecord, Executor,
    HistoryEntry, Lease, Leases, ListFilter, Notification, NotificationKind, Page, Query, Result,
    Tags, Timer,
};

/// PostgreSQL's schema migrations, in order (see [`crate::migrations`]).
pub const MIGRATIONS: &[Migration] = migrations::POSTGRES;

/// How the versions PostgreSQL recorded before the numbering was shared
/// translate.
pub const LEGACY: migrations::Legacy = migrations::POSTGRES_LEGACY;

/// The schema version this binary writes: the last migration's.
pub const SCHEMA_VERSION: u32 = migrations::schema_version(MIGRATIONS);

/// First key of Sagaflow's two-key advisory locks (`"SAGA"`); the second is
/// a hash of the schema name, so schemas do not contend with each other.
const LOCK_CLASS_MIGRATE: i32 = 0x5341_4741;
/// The first key of the owner lock ([`PostgresStore::lock_exclusively`]).
const LOCK_CLASS_OWNER: i32 = 0x5341_4742;

/// How often a write that lost a race it could not have lost for good
/// (a definition version taken by another node, say) is tried again.
const MAX_RETRIES: usize = 64;

/// Connection settings beyond the URL.
#[derive(Debug, Clone)]
pub struct Options {
    /// Create this schema if missing and use it (`search_path`) on every
    /// connection. Lowercase letters, digits and `_`, not starting with a
    /// digit. `None`: the URL's `search_path` (by default `public`).
    pub schema: Option<String>,
    /// The most connections the pool opens (the parallelism of appends).
    pub max_connections: usize,
    /// How long to wait for a free connection or a new one.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            schema: None,
            max_connections: 16,
            timeout: Duration::from_secs(30),
        }
    }
}

/// See the module docs.
pub struct PostgresStore {
    pool: Pool,
    /// The settings every pooled connection uses (search_path included).
    config: tokio_postgres::Config,
    schema: String,
    /// The connection holding the owner lock, once [`Self::lock_exclusively`]
    /// took it; dropping it releases the lock.
    owner: Mutex<Option<tokio_postgres::Client>>,
    closed: Arc<AtomicBool>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // The owner lock's connection ends now; that is not an error to log.
        self.closed.store(true, Ordering::Relaxed);
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL or a libpq
    /// `key=value` string, no TLS) and applies missing migrations. Tables go
    /// in the first existing schema of the connection's `search_path`; a URL
    /// can choose it with `options=-c%20search_path%3DNAME`.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, Options::default()).await
    }

    /// Like [`Self::connect`], in `schema`, created if missing. Every pooled
    /// connection has `search_path` set to it, so stores in different schemas
    /// of one database (tests, tenants) never see each other's data.
    pub async fn connect_in_schema(url: &str, schema: &str) -> Result<Self> {
        Self::connect_with(
            url,
            Options {
                schema: Some(schema.to_string()),
                ..Options::default()
            },
        )
        .await
    }

    pub async fn connect_with(url: &str, options: Options) -> Result<Self> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            Error::Backend(format!("invalid PostgreSQL URL `{}`: {e}", redact_url(url)))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("sagaflow");
        }
        if let Some(schema) = &options.schema {
            check_schema_name(schema)?;
            create_schema(&config, schema).await?;
            // Later `-c` settings win, so this overrides one in the URL.
            let pinned = match config.get_options() {
                Some(o) if !o.trim().is_empty() => format!("{o} -c search_path={schema}"),
                _ => format!("-c search_path={schema}"),
            };
            config.options(pinned);
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.timeout))
            .create_timeout(Some(options.timeout))
            .build()
            .map_err(|e| Error::Backend(format!("creating the PostgreSQL pool: {e}")))?;
        let schema = {
            let mut client = get(&pool).await?;
            let schema = current_schema(&client).await?;
            migrate(&mut client).await?;
            schema
        };
        Ok(PostgresStore {
            pool,
            config,
            schema,
            owner: Mutex::new(None),
            closed: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The schema holding this store's tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Makes this store the only one allowed to lock this schema, for the
    /// store's lifetime, the way SQLite's lock file makes one process the
    /// owner of a database file: a single server takes no leases, so two of
    /// them on one schema would both resume the same executions. A second
    /// store's call fails with a message saying so. (Several nodes share a
    /// schema through leases and do not take this lock.)
    ///
    /// The lock is a session advisory lock on a dedicated connection. It is
    /// released when the store is dropped or the process dies (the server
    /// ends the session). If that connection is lost while the store lives
    /// (the database restarted), the loss is logged as an error: from then on
    /// nothing stops a second server.
    pub async fn lock_exclusively(&self) -> Result<()> {
        if self
            .owner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            return Ok(());
        }
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(pg("connecting for the owner lock"))?;
        let closed = self.closed.clone();
        let schema = self.schema.clone();
        tokio::spawn(async move {
            let result = connection.await;
            if !closed.load(Ordering::Relaxed) {
                tracing::error!(
                    schema,
                    error = ?result.err().map(|e| describe(&e)),
                    "lost the connection holding the PostgreSQL owner lock: \
                     another Sagaflow server could now open this schema"
                );
            }
        });
        let locked: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock($1, hashtext($2))",
                &[&LOCK_CLASS_OWNER, &self.schema],
            )
            .await
            .map_err(pg("taking the owner lock"))?
            .get(0);
        if !locked {
            return Err(Error::Backend(format!(
                "schema `{}` is in use by another Sagaflow server (it holds the owner lock); \
                 servers sharing a PostgreSQL schema must all run as nodes (with a node id)",
                self.schema
            )));
        }
        *self.owner.lock().unwrap_or_else(|p| p.into_inner()) = Some(client);
        Ok(())
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        get(&self.pool).await
    }
}

/// `url` with its password replaced by `***`, for messages and logs: the
/// `user:password@` of a URL and any `password=` parameter (URL query or
/// libpq `key=value` string).
pub fn redact_url(url: &str) -> String {
    let url = match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(authority_end);
            match authority
                .rsplit_once('@')
                .and_then(|(userinfo, host)| Some((userinfo.split_once(':')?.0, host)))
            {
                Some((user, host)) => format!("{scheme}://{user}:***@{host}{tail}"),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    };
    let mut out = String::with_capacity(url.len());
    let mut rest = url.as_str();
    while let Some(at) = rest.find("password=") {
        let start = at + "password=".len();
        let preceded_ok = at == 0 || rest[..at].ends_with(['?', '&', ' ']);
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        if preceded_ok {
            let end = rest.find(['&', ' ']).unwrap_or(rest.len());
            out.push_str("***");
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------
// Setup

fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

fn check_schema_name(schema: &str) -> Result<()> {
    let mut chars = schema.chars();
    let ok = schema.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::Backend(format!(
            "invalid schema name `{schema}`: use at most 63 lowercase letters, digits and `_`, \
             not starting with a digit"
        )))
    }
}

async fn get(pool: &Pool) -> Result<deadpool_postgres::Object> {
    pool.get()
        .await
        .map_err(|e| Error::Backend(format!("getting a PostgreSQL connection: {e}")))
}

/// Creates `schema` if it is missing, on a connection of its own (the pool's
/// connections start in it, so it must exist first).
async fn create_schema(config: &tokio_postgres::Config, schema: &str) -> Result<()> {
    let (mut client, connection) = config
        .connect(NoTls)
        .await
        .map_err(pg("connecting to PostgreSQL"))?;
    let connection = tokio::spawn(connection);
    let result = async {
        let tx = client
            .transaction()
            .await
            .map_err(pg("starting to create the schema"))?;
        // Two nodes creating it at once would race in the catalog.
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&LOCK_CLASS_MIGRATE, &schema],
        )
        .await
        .map_err(pg("taking the migration lock"))?;
        tx.batch_execute(&format!(
            "SET LOCAL client_min_messages = warning; CREATE SCHEMA IF NOT EXISTS \"{schema}\""
        ))
        .await
        .map_err(|e| Error::Backend(format!("creating schema `{schema}`: {}", describe(&e))))?;
        tx.commit().await.map_err(pg("committing the new schema"))
    }
    .await;
    drop(client);
    let _ = connection.await;
    result
}

async fn current_schema(client: &tokio_postgres::Client) -> Result<String> {
    let row = client
        .query_one(
            "SELECT current_schema(), current_setting('search_path')",
            &[],
        )
        .await
        .map_err(pg("reading the current schema"))?;
    let schema: Option<String> = row.get(0);
    schema.ok_or_else(|| {
        let path: String = row.get(1);
        Error::Backend(format!(
            "no schema of the search_path `{path}` exists; create it, or connect with a schema"
        ))
    })
}

/// Applies the migrations the schema lacks, in one transaction, under an
/// advisory lock: a node starting at the same time waits, then finds them
/// applied.
async fn migrate(client: &mut deadpool_postgres::Object) -> Result<()> {
    let tx = client
        .transaction()
        .await
        .map_err(pg("starting the migration"))?;
    match apply_migrations(&tx).await {
        Ok(()) => tx.commit().await.map_err(pg("committing the migration")),
        Err(e) => {
            // Explicitly, not on drop: the pool may close this connection
            // before a rollback queued by a drop is sent, leaving the
            // session holding its locks until the socket closes.
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

async fn apply_migrations(tx: &tokio_postgres::Transaction<'_>) -> Result<()> {
    // No "already exists, skipping" notices in the server's log.
    tx.batch_execute("SET LOCAL client_min_messages = warning")
        .await
        .map_err(pg("configuring the migration"))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))",
        &[&LOCK_CLASS_MIGRATE],
    )
    .await
    .map_err(pg("taking the migration lock"))?;
    // `name`: added when the numbering became shared; a table made before
    // gets the column, and its rows (without a name) are translated.
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    BIGINT PRIMARY KEY,
            applied_at BIGINT NOT NULL,
            name       TEXT
        );
        ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS name TEXT",
    )
    .await
    .map_err(pg("creating schema_migrations"))?;
    translate_legacy(tx).await?;
    let applied = tx
        .query("SELECT version FROM schema_migrations", &[])
        .await
        .map_err(pg("reading the schema version"))?
        .iter()
        .map(|r| to_u32("a schema version", r.get(0)))
        .collect::<Result<BTreeSet<u32>>>()?;
    let now = to_i64("the current time", now_millis())?;
    for m in migrations::pending(MIGRATIONS, &applied)? {
        tx.batch_execute(m.sql).await.map_err(|e| {
            Error::Backend(format!("applying migration {}: {}", m.name, describe(&e)))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at, name) VALUES ($1, $2, $3)",
            &[&i64::from(m.version), &now, &m.name],
        )
        .await
        .map_err(|e| Error::Backend(format!("recording migration {}: {}", m.name, describe(&e))))?;
    }
    Ok(())
}

/// Replaces the rows recorded before the numbering was shared (without a
/// name) by the shared versions they stand for ([`LEGACY`]).
async fn translate_legacy(tx: &tokio_postgres::Transaction<'_>) -> Result<()> {
    let old = tx
        .query(
            "SELECT version, applied_at FROM schema_migrations WHERE name IS NULL",
            &[],
        )
        .await
        .map_err(pg("reading the migrations recorded without a name"))?
        .iter()
        .map(|r| Ok((to_u32("a schema version", r.get(0))?, r.get::<_, i64>(1))))
        .collect::<Result<Vec<_>>>()?;
    if old.is_empty() {
        return Ok(());
    }
    let rows = migrations::translate(LEGACY, MIGRATIONS, &old)?;
    tx.execute("DELETE FROM schema_migrations WHERE name IS NULL", &[])
        .await
        .map_err(pg("translating the recorded migrations"))?;
    for (version, applied_at, name) in rows {
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at, name) VALUES ($1, $2, $3)",
            &[&i64::from(version), &applied_at, &name],
        )
        .await
        .map_err(pg("translating the recorded migrations"))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Encoding

/// The server's message for a database error ("db error" alone says nothing).
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.to_string(),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// Milliseconds as a BIGINT (clamped: no time is past `i64::MAX`).
fn pg_millis(ms: Millis) -> i64 {
    ms.min(i64::MAX as u64) as i64
}

fn activity_from_row(r: &Row) -> Result<ActivityRecord> {
    let tags: String = r.get(2);
    Ok(ActivityRecord {
        name: r.get(0),
        created_at: r.get::<_, i64>(1).max(0) as Millis,
        tags: from_json("an activity's tags", &tags)?,
    })
}

async fn read_activity(
    client: &deadpool_postgres::Client,
    name: &str,
) -> Result<Option<ActivityRecord>> {
    client
        .query_opt(
            "SELECT name, created_at, tags FROM activities WHERE name = $1",
            &[&name],
        )
        .await
        .map_err(pg("reading an activity"))?
        .as_ref()
        .map(activity_from_row)
        .transpose()
}

fn pg(context: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| Error::Backend(format!("{context}: {}", describe(&e)))
}

/// Locks the latest row of the live definition `name` for the transaction
/// (writers of its versions and aliases take turns, and a delete waits for
/// them); `false` when it is not live.
async fn lock_live(tx: &tokio_postgres::Transaction<'_>, name: &str) -> Result<bool> {
    Ok(tx
        .query_opt(
            "SELECT version FROM definitions WHERE name = $1 AND NOT deleted
             ORDER BY version DESC LIMIT 1 FOR UPDATE",
            &[&name],
        )
        .await
        .map_err(pg("locking a definition"))?
        .is_some())
}

async fn read_published(
    client: &impl tokio_postgres::GenericClient,
    name: &str,
) -> Result<Vec<PublishedVersion>> {
    client
        .query(
            "SELECT version, description, published_at FROM definition_versions
             WHERE name = $1 ORDER BY version DESC",
            &[&name],
        )
        .await
        .map_err(pg("reading a definition's versions"))?
        .iter()
        .map(|r| {
            Ok(PublishedVersion {
                name: name.to_string(),
                version: to_u32(&format!("version of `{name}`"), r.get(0))?,
                description: r.get(1),
                published_at: to_u64(&format!("publication of `{name}`"), r.get(2))?,
            })
        })
        .collect()
}

async fn read_aliases(
    client: &impl tokio_postgres::GenericClient,
    name: &str,
) -> Result<Vec<AliasRecord>> {
    client
        .query(
            "SELECT alias, description, routing, created_at, updated_at
             FROM definition_aliases WHERE name = $1 ORDER BY alias",
            &[&name],
        )
        .await
        .map_err(pg("reading a definition's aliases"))?
        .iter()
        .map(|r| {
            let alias: String = r.get(0);
            let what = format!("alias `{name}:{alias}`");
            Ok(AliasRecord {
                name: name.to_string(),
                description: r.get(1),
                routing: from_json(&what, r.get::<_, &str>(2))?,
                created_at: to_u64(&what, r.get(3))?,
                updated_at: to_u64(&what, r.get(4))?,
                alias,
            })
        })
        .collect()
}

async fn is_live(client: &impl tokio_postgres::GenericClient, name: &str) -> Result<bool> {
    Ok(client
        .query_opt(
            "SELECT 1 FROM definitions WHERE name = $1 AND NOT deleted LIMIT 1",
            &[&name],
        )
        .await
        .map_err(pg("reading a definition"))?
        .is_some())
}

fn not_live(name: &str) -> Error {
    Error::NotFound {
        what: "definition",
        id: name.to_string(),
    }
}

fn to_i64(what: &str, v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::Backend(format!("{what} {v} is out of range")))
}

fn to_u64(what: &str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::Corrupt(format!("{what}: {v}")))
}

fn to_u32(what: &str, v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Corrupt(format!("{what}: {v}")))
}

/// A limit as SQL wants it (`usize` beyond `i64` means "all").
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

const DEFINITION_COLUMNS: &str = "name, version, format, source, digest, created_at";

fn definition_from_row(r: &Row) -> Result<DefinitionRecord> {
    let name: String = r.get(0);
    Ok(DefinitionRecord {
        version: to_u32(&format!("definition `{name}` version"), r.get(1))?,
        format: r.get(2),
        source: r.get(3),
        digest: r.get(4),
        created_at: to_u64(&format!("definition `{name}` created_at"), r.get(5))?,
        name,
    })
}

const EXECUTION_COLUMNS: &str =
    "seq, id, definition, version, status, input, output, error, started_at, updated_at, events";

/// An `executions` row as stored, decoded and checked.
fn execution_from_row(r: &Row) -> Result<(i64, ExecutionRecord)> {
    let id: String = r.get(1);
    let ctx = |field: &str| format!("execution `{id}` {field}");
    let status: String = r.get(4);
    let input: String = r.get(5);
    let output: Option<String> = r.get(6);
    let error: Option<String> = r.get(7);
    let record = ExecutionRecord {
        definition: r.get(2),
        version: to_u32(&ctx("version"), r.get(3))?,
        status: Status::parse(&status)
            .ok_or_else(|| Error::Corrupt(format!("{}: `{status}`", ctx("status"))))?,
        input: from_json::<Value>(&ctx("input"), &input)?,
        output: output
            .map(|s| from_json::<Value>(&ctx("output"), &s))
            .transpose()?,
        error: error
            .map(|s| from_json::<ErrorInfo>(&ctx("error"), &s))
            .transpose()?,
        started_at: to_u64(&ctx("started_at"), r.get(8))?,
        updated_at: to_u64(&ctx("updated_at"), r.get(9))?,
        events: to_u64(&ctx("events"), r.get(10))?,
        id,
    };
    Ok((r.get(0), record))
}

/// Claimed timers (`id, execution_id, step, task, attempt, fire_at` rows),
/// earliest first: `RETURNING` has no order of its own.
fn timers_from_rows(rows: &[Row]) -> Result<Vec<Timer>> {
    let mut claimed = rows
        .iter()
        .map(|r| {
            let (id, fire_at): (i64, i64) = (r.get(0), r.get(5));
            let task: String = r.get(3);
            Ok((
                (fire_at, id),
                Timer {
                    execution_id: r.get(1),
                    step: r.get(2),
                    task: parse_task(&task)?,
                    attempt: to_u32(&format!("timer {id} attempt"), r.get(4))?,
                    fire_at: to_u64(&format!("timer {id} fire_at"), fire_at)?,
                },
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    claimed.sort_by_key(|(key, _)| *key);
    Ok(claimed.into_iter().map(|(_, t)| t).collect())
}

/// Events as the four arrays the `UNNEST` inserts take, numbered from
/// `version + 1`.
struct EventColumns {
    seq: Vec<i64>,
    at: Vec<i64>,
    kind: Vec<&'static str>,
    body: Vec<String>,
}

fn event_columns(version: u64, events: &[Event]) -> Result<EventColumns> {
    let mut cols = EventColumns {
        seq: Vec::with_capacity(events.len()),
        at: Vec::with_capacity(events.len()),
        kind: Vec::with_capacity(events.len()),
        body: Vec::with_capacity(events.len()),
    };
    for (seq, event) in (version + 1..).zip(events) {
        cols.seq.push(to_i64("an event seq", seq)?);
        cols.at.push(to_i64("an event time", event.at)?);
        cols.kind.push(event.kind.name());
        cols.body.push(to_json("an event", event)?);
    }
    Ok(cols)
}

// ---------------------------------------------------------------------------
// Statements

/// Inserts the execution, its events and its timers if the id is new;
/// `count` is 1 then.
/// `WHERE NOT EXISTS` spares a `seq` for an id that is already there (the
/// identity default is drawn before `ON CONFLICT` looks), so sequential
/// creates number executions without gaps, as SQLite does; `ON CONFLICT`
/// covers a concurrent insert of the same id.
const CREATE_SQL: &str = "
WITH ins AS (
    INSERT INTO executions (id, definition, version, status, input, output, error,
                            started_at, updated_at, events, owner, lease_until)
    SELECT $1::TEXT, $2::TEXT, $3::BIGINT, $4::TEXT, $5::TEXT, $6::TEXT, $7::TEXT,
           $8::BIGINT, $9::BIGINT, $10::BIGINT, $15::TEXT,
           CASE WHEN $15::TEXT IS NULL THEN NULL
                ELSE (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT + $16::BIGINT END
    WHERE NOT EXISTS (SELECT 1 FROM executions WHERE id = $1)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), ev AS (
    INSERT INTO events (execution_id, seq, at, type, body)
    SELECT ins.id, e.seq, e.at, e.type, e.body
    FROM ins, UNNEST($11::BIGINT[], $12::BIGINT[], $13::TEXT[], $14::TEXT[]) AS e(seq, at, type, body)
), tm AS (
    INSERT INTO timers (execution_id, step, task, attempt, fire_at)
    SELECT ins.id, t.step, t.task, t.attempt, t.fire_at
    FROM ins, UNNEST($17::TEXT[], $18::TEXT[], $19::BIGINT[], $20::BIGINT[])
         WITH ORDINALITY AS t(step, task, attempt, fire_at, n)
    ORDER BY t.n
), ob AS (
    INSERT INTO outbox (execution_id, status, created_at, kind)
    SELECT ins.id, $4, $9, $21::TEXT FROM ins WHERE $21::TEXT IS NOT NULL
)
SELECT count(*) FROM ins";

/// The append statement: the checks are the `UPDATE`'s condition and every
/// write selects from `upd`, so it happens only if the checks passed. `$set`
/// and `$check` extend the `UPDATE` for [`FENCED_APPEND_SQL`].
macro_rules! append_sql {
    ($set:literal, $check:literal) => {
        concat!(
            "
WITH upd AS (
    UPDATE executions
    SET events = $3, status = $4, output = $5, error = $6, updated_at = $7",
            $set,
            "
    WHERE id = $1 AND events = $2",
            $check,
            "
    RETURNING id
), ev AS (
    INSERT INTO events (execution_id, seq, at, type, body)
    SELECT upd.id, e.seq, e.at, e.type, e.body
    FROM upd, UNNEST($8::BIGINT[], $9::BIGINT[], $10::TEXT[], $11::TEXT[]) AS e(seq, at, type, body)
), tm AS (
    INSERT INTO timers (execution_id, step, task, attempt, fire_at)
    SELECT t.execution_id, t.step, t.task, t.attempt, t.fire_at
    FROM upd, UNNEST($12::TEXT[], $13::TEXT[], $14::TEXT[], $15::BIGINT[], $16::BIGINT[])
         WITH ORDINALITY AS t(execution_id, step, task, attempt, fire_at, n)
    ORDER BY t.n
), ob AS (
    INSERT INTO outbox (execution_id, status, created_at, kind)
    SELECT upd.id, $4, $7, $17::TEXT FROM upd WHERE $17::TEXT IS NOT NULL
)
SELECT count(*) FROM upd"
        )
    };
}

/// The append of a single node (no fence): only the version is checked.
const APPEND_SQL: &str = append_sql!("", "");

/// The append of one node among several: it also needs the node (`$18`) to
/// hold a live lease, by the database's clock at the moment the row is
/// locked. An append that finishes the execution (`$19`) gives the lease up:
/// a finished execution is never leased. A finished execution, for the same
/// reason, has no lease to check: an append to it (a redrive) needs only the
/// version, which proves the appender saw the finish; of two nodes redriving
/// at once, one gets a conflict.
const FENCED_APPEND_SQL: &str = append_sql!(
    ",
        owner       = CASE WHEN $19 THEN NULL ELSE owner END,
        lease_until = CASE WHEN $19 THEN NULL ELSE lease_until END",
    "
      AND ((owner = $18
            AND lease_until >= (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT)
           OR status NOT IN ('running', 'compensating'))"
);

/// What refused a fenced append: `(events, finished, held by $2 now)`.
const FENCE_STATE_SQL: &str = "
SELECT events, status NOT IN ('running', 'compensating'),
       COALESCE(owner = $2
                AND lease_until >= (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT,
                FALSE)
FROM executions WHERE id = $1";

/// Removes and returns due timers; rows another node is claiming right now
/// are skipped, not waited for.
const CLAIM_SQL: &str = "
DELETE FROM timers WHERE id = ANY(ARRAY(
    SELECT id FROM timers WHERE fire_at <= $1
    ORDER BY fire_at, id LIMIT $2
    FOR UPDATE SKIP LOCKED
))
RETURNING id, execution_id, step, task, attempt, fire_at";

/// The database's clock, in ms. Every lease decision is taken by it, so nodes
/// need not agree on the time. `clock_timestamp()`, not `now()`: the time the
/// row is looked at (after any lock wait), not when the transaction began.
const DB_NOW: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::BIGINT";

/// The statuses of an unfinished execution, as SQL (checked by a test
/// against [`Status::is_terminal`]).
const UNFINISHED: &str = "('running', 'compensating')";

/// The longest lease or registration, so `now + ttl` cannot overflow: a
/// century.
const MAX_TTL_MS: u64 = 100 * 365 * 24 * 3_600 * 1_000;

/// Registrations dead this long are removed by the next heartbeat (nodes
/// that went away for good, such as ones with a fresh id per process).
const FORGET_NODES_AFTER_MS: i64 = 24 * 3_600 * 1_000;

fn ttl(ms: u64) -> i64 {
    ms.min(MAX_TTL_MS) as i64
}

/// Takes the lease of `$1` for `$2` if it is free, in one round trip: the
/// `UPDATE` says whether it did, the `SELECT` (from the statement's snapshot,
/// before the `UPDATE`) says who held it otherwise.
static CLAIM_LEASE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
WITH upd AS (
    UPDATE executions SET owner = $2, lease_until = {DB_NOW} + $3
    WHERE id = $1 AND status IN {UNFINISHED}
      AND (owner IS NULL OR owner = $2 OR lease_until < {DB_NOW})
    RETURNING 1
)
SELECT (SELECT count(*) FROM upd), status IN {UNFINISHED}, owner, lease_until,
       COALESCE(lease_until >= {DB_NOW}, FALSE)
FROM executions WHERE id = $1"
    )
});

/// Extends `$1`'s live leases; an expired one stays expired.
static RENEW_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE executions SET lease_until = {DB_NOW} + $2
         WHERE owner = $1 AND lease_until >= {DB_NOW} AND status IN {UNFINISHED}"
    )
});

/// Leases whose time ran out go to `$1`. The rows are locked with `SKIP
/// LOCKED`, so a concurrent take-over skips them instead of taking them
/// too, and a lease renewed after this statement's snapshot is re-checked
/// on the locked row (and left alone). `= ANY(ARRAY(…))` makes the subquery
/// run once, before the `UPDATE`. Released leases (`owner` NULL,
/// `lease_until` 0) are parked executions: their callback or timer claims
/// them, nobody takes them over. Executions never leased (`lease_until`
/// NULL: created by a single server) are taken over like expired ones.
static TAKE_OVER_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
WITH now AS MATERIALIZED (SELECT {DB_NOW} AS ms)
UPDATE executions SET owner = $1, lease_until = (SELECT ms FROM now) + $2
WHERE seq = ANY(ARRAY(
    SELECT seq FROM executions
    WHERE ((owner IS NOT NULL AND lease_until < (SELECT ms FROM now))
           OR lease_until IS NULL)
      AND status IN {UNFINISHED}
    ORDER BY lease_until NULLS FIRST, seq LIMIT $3
    FOR NO KEY UPDATE SKIP LOCKED
))
RETURNING {EXECUTION_COLUMNS}"
    )
});

/// Due timers (`$1`, the caller's clock, like `fire_at`) of executions that
/// `$3` holds or that are free, and the leases of those executions, in one
/// statement. Both the timer and its execution are locked with `SKIP
/// LOCKED`: a timer another node is claiming, or an execution another node
/// is claiming or appending to right now, is skipped, and the lease check
/// is re-done on the locked execution row, so a lease taken meanwhile by
/// another node keeps its timers from this one. `NO KEY UPDATE` on the
/// execution, as an `UPDATE` of it takes: it does not block the foreign-key
/// checks of its holder's event inserts. (`= ANY(ARRAY(…))`: the writes go
/// by index to the rows `due` locked, never a scan of the tables.)
static CLAIM_TIMERS_FOR_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
WITH now AS MATERIALIZED (SELECT {DB_NOW} AS ms),
due AS MATERIALIZED (
    SELECT t.id, t.execution_id
    FROM timers AS t JOIN executions AS x ON x.id = t.execution_id
    WHERE t.fire_at <= $1
      AND (x.owner IS NULL OR x.owner = $3 OR x.lease_until < (SELECT ms FROM now))
    ORDER BY t.fire_at, t.id LIMIT $2
    FOR UPDATE OF t SKIP LOCKED
    FOR NO KEY UPDATE OF x SKIP LOCKED
), leased AS (
    UPDATE executions SET owner = $3, lease_until = (SELECT ms FROM now) + $4
    WHERE id = ANY(ARRAY(SELECT execution_id FROM due)) AND status IN {UNFINISHED}
)
DELETE FROM timers WHERE id = ANY(ARRAY(SELECT id FROM due))
RETURNING id, execution_id, step, task, attempt, fire_at"
    )
});

/// Registers (or refreshes) node `$1` at `$2` for `$3` ms, and forgets nodes
/// long dead.
static HEARTBEAT_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
WITH forget AS (
    DELETE FROM nodes WHERE alive_until < {DB_NOW} - {FORGET_NODES_AFTER_MS} AND id <> $1
)
INSERT INTO nodes (id, address, alive_until) VALUES ($1, $2, {DB_NOW} + $3)
ON CONFLICT (id) DO UPDATE SET address = EXCLUDED.address, alive_until = EXCLUDED.alive_until"
    )
});

static NODE_ADDRESS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT address FROM nodes WHERE id = $1 AND alive_until >= {DB_NOW}")
});

// ---------------------------------------------------------------------------
// The traits

#[async_trait]
impl Executor for PostgresStore {
    async fn put_definition(
        &self,
        name: &str,
        format: &str,
        source: &str,
        digest: &str,
        now: Millis,
    ) -> Result<(DefinitionRecord, bool)> {
        let client = self.client().await?;
        let created_at = to_i64("a definition time", now)?;
        // The latest version, deleted or not: a deleted name's numbers go on.
        let latest = client
            .prepare_cached(&format!(
                "SELECT {DEFINITION_COLUMNS}, deleted FROM definitions WHERE name = $1
                 ORDER BY version DESC LIMIT 1"
            ))
            .await
            .map_err(pg("preparing to read a definition"))?;
        let insert = client
            .prepare_cached(&format!(
                "INSERT INTO definitions ({DEFINITION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (name, version) DO NOTHING"
            ))
            .await
            .map_err(pg("preparing to insert a definition"))?;
        // Optimistic: read the latest, insert the next version; if another
        // node took that number first, read again (its content may be ours).
        for _ in 0..MAX_RETRIES {
            let latest = match client
                .query_opt(&latest, &[&name])
                .await
                .map_err(pg("reading a definition"))?
            {
                Some(row) => Some((definition_from_row(&row)?, row.get::<_, bool>(6))),
                None => None,
            };
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
            let inserted = client
                .execute(
                    &insert,
                    &[
                        &name,
                        &i64::from(version),
                        &format,
                        &source,
                        &digest,
                        &created_at,
                    ],
                )
                .await
                .map_err(pg("inserting a definition"))?;
            if inserted == 1 {
                let rec = DefinitionRecord {
                    name: name.to_string(),
                    version,
                    format: format.to_string(),
                    source: source.to_string(),
                    digest: digest.to_string(),
                    created_at: now,
                };
                return Ok((rec, true));
            }
        }
        Err(Error::Backend(format!(
            "definition `{name}`: gave up after {MAX_RETRIES} concurrent registrations"
        )))
    }

    async fn get_definition(&self, name: &str, version: Option<u32>) -> Result<DefinitionRecord> {
        let client = self.client().await?;
        let row = match version {
            None => {
                let stmt = client
                    .prepare_cached(&format!(
                        "SELECT {DEFINITION_COLUMNS} FROM definitions
                         WHERE name = $1 AND NOT deleted
                         ORDER BY version DESC LIMIT 1"
                    ))
                    .await
                    .map_err(pg("preparing to read a definition"))?;
                client.query_opt(&stmt, &[&name]).await
            }
            Some(v) => {
                let stmt = client
                    .prepare_cached(&format!(
                        "SELECT {DEFINITION_COLUMNS} FROM definitions
                         WHERE name = $1 AND version = $2"
                    ))
                    .await
                    .map_err(pg("preparing to read a definition"))?;
                client.query_opt(&stmt, &[&name, &i64::from(v)]).await
            }
        }
        .map_err(pg("reading a definition"))?;
        match row {
            Some(row) => definition_from_row(&row),
            None => Err(Error::NotFound {
                what: "definition",
                id: match version {
                    Some(v) => format!("{name}@{v}"),
                    None => name.to_string(),
                },
            }),
        }
    }

    async fn delete_definition(&self, name: &str) -> Result<bool> {
        let client = self.client().await?;
        // One statement: the definition and its tags go together.
        let stmt = client
            .prepare_cached(
                "WITH d AS (UPDATE definitions SET deleted = TRUE
                            WHERE name = $1 AND NOT deleted RETURNING 1),
                      t AS (DELETE FROM definition_tags WHERE name = $1),
                      v AS (DELETE FROM definition_versions WHERE name = $1),
                      a AS (DELETE FROM definition_aliases WHERE name = $1)
                 SELECT COUNT(*) FROM d",
            )
            .await
            .map_err(pg("preparing to delete a definition"))?;
        let changed: i64 = client
            .query_one(&stmt, &[&name])
            .await
            .map_err(pg("deleting a definition"))?
            .get(0);
        Ok(changed > 0)
    }

    async fn definition_tags(&self, name: &str) -> Result<Tags> {
        let client = self.client().await?;
        let live = client
            .query_opt(
                "SELECT 1 FROM definitions WHERE name = $1 AND NOT deleted LIMIT 1",
                &[&name],
            )
            .await
            .map_err(pg("reading a definition"))?;
        if live.is_none() {
            return Err(Error::NotFound {
                what: "definition",
                id: name.to_string(),
            });
        }
        let rows = client
            .query(
                "SELECT key, value FROM definition_tags WHERE name = $1",
                &[&name],
            )
            .await
            .map_err(pg("reading a definition's tags"))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn tag_definition(
        &self,
        name: &str,
        set: &Tags,
        remove: &[String],
        max: usize,
    ) -> Result<Option<Tags>> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(pg("starting to tag a definition"))?;
        // The live version's row, locked: taggers of one definition take
        // turns (so `max` holds), and a delete waits for the tagging.
        let live = tx
            .query_opt(
                "SELECT version FROM definitions WHERE name = $1 AND NOT deleted
                 ORDER BY version DESC LIMIT 1 FOR UPDATE",
                &[&name],
            )
            .await
            .map_err(pg("locking a definition"))?;
        if live.is_none() {
            return Err(Error::NotFound {
                what: "definition",
                id: name.to_string(),
            });
        }
        let tags: Tags = tx
            .query(
                "SELECT key, value FROM definition_tags WHERE name = $1",
                &[&name],
            )
            .await
            .map_err(pg("reading a definition's tags"))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let Some(tags) = crate::retagged(tags, set, remove, max) else {
            return Ok(None);
        };
        tx.execute(
            "DELETE FROM definition_tags WHERE name = $1 AND key = ANY($2)",
            &[&name, &remove],
        )
        .await
        .map_err(pg("removing tags"))?;
        for (k, v) in set {
            tx.execute(
                "INSERT INTO definition_tags (name, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (name, key) DO UPDATE SET value = EXCLUDED.value",
                &[&name, k, v],
            )
            .await
            .map_err(pg("setting a tag"))?;
        }
        tx.commit().await.map_err(pg("tagging a definition"))?;
        Ok(Some(tags))
    }

    async fn publish_version(
        &self,
        name: &str,
        version: u32,
        description: &str,
        now: Millis,
    ) -> Result<(PublishedVersion, bool)> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(pg("starting to publish a version"))?;
        if !lock_live(&tx, name).await? {
            return Err(not_live(name));
        }
        let exists = tx
            .query_opt(
                "SELECT 1 FROM definitions WHERE name = $1 AND version = $2",
                &[&name, &i64::from(version)],
            )
            .await
            .map_err(pg("reading a definition"))?
            .is_some();
        if !exists {
            return Err(Error::NotFound {
                what: "definition",
                id: format!("{name}@{version}"),
            });
        }
        if let Some(v) = read_published(&*tx, name)
            .await?
            .into_iter()
            .find(|v| v.version == version)
        {
            return Ok((v, false));
        }
        tx.execute(
            "INSERT INTO definition_versions (name, version, description, published_at)
             VALUES ($1, $2, $3, $4)",
            &[
                &name,
                &i64::from(version),
                &description,
                &to_i64("a publication time", now)?,
            ],
        )
        .await
        .map_err(pg("publishing a version"))?;
        tx.commit().await.map_err(pg("publishing a version"))?;
        Ok((
            PublishedVersion {
                name: name.to_string(),
                version,
                description: description.to_string(),
                published_at: now,
            },
            true,
        ))
    }

    async fn published_versions(&self, name: &str) -> Result<Vec<PublishedVersion>> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(pg("starting to read versions"))?;
        if !is_live(&*tx, name).await? {
            return Err(not_live(name));
        }
        read_published(&*tx, name).await
    }

    async fn unpublish_version(&self, name: &str, version: u32) -> Result<Unpublish> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(pg("starting to unpublish a version"))?;
        if !lock_live(&tx, name).await? {
            return Ok(Unpublish::Absent);
        }
        if let Some(a) = read_aliases(&*tx, name)
            .await?
            .into_iter()
            .find(|a| a.routing.iter().any(|r| r.0 == version))
        {
            return Ok(Unpublish::Routed(a.alias));
        }
        let n = tx
            .execute(
                "DELETE FROM definition_versions WHERE name = $1 AND version = $2",
                &[&name, &i64::from(version)],
            )
            .await
            .map_err(pg("unpublishing a version"))?;
        tx.commit().await.map_err(pg("unpublishing a version"))?;
        Ok(if n > 0 {
            Unpublish::Done
        } else {
            Unpublish::Absent
        })
    }

    async fn put_alias(&self, alias: &AliasRecord, create: bool) -> Result<AliasWrite> {
        let routing = to_json("an alias's routing", &alias.routing)?;
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(pg("starting to store an alias"))?;
        if !lock_live(&tx, &alias.name).await? {
            return Err(not_live(&alias.name));
        }
        let existing = read_aliases(&*tx, &alias.name)
            .await?
            .into_iter()
            .find(|a| a.alias == alias.alias);
        let published = read_published(&*tx, &alias.name).await?;
        let is_published = |v| published.iter().any(|p| p.version == v);
        let stored = match AliasWrite::plan(alias, create, existing, is_published)? {
            Ok(stored) => stored,
            Err(answer) => return Ok(answer),
        };
        tx.execute(
            "INSERT INTO definition_aliases
                 (name, alias, description, routing, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (name, alias) DO UPDATE SET description = EXCLUDED.description,
                 routing = EXCLUDED.routing, updated_at = EXCLUDED.updated_at",
            &[
                &stored.name,
                &stored.alias,
                &stored.description,
                &routing,
                &to_i64("an alias's creation time", stored.created_at)?,
                &to_i64("an alias's update time", stored.updated_at)?,
            ],
        )
        .await
        .map_err(pg("storing an alias"))?;
        tx.commit().await.map_err(pg("storing an alias"))?;
        Ok(AliasWrite::Stored(stored))
    }

    async fn definition_aliases(&self, name: &str) -> Result<Vec<AliasRecord>> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(pg("starting to read aliases"))?;
        if !is_live(&*tx, name).await? {
            return Err(not_live(name));
        }
        read_aliases(&*tx, name).await
    }

    async fn delete_alias(&self, name: &str, alias: &str) -> Result<bool> {
        let client = self.client().await?;
        let n = client
            .execute(
                "DELETE FROM definition_aliases WHERE name = $1 AND alias = $2",
                &[&name, &alias],
            )
            .await
            .map_err(pg("deleting an alias"))?;
        Ok(n > 0)
    }

    async fn create_activity(
        &self,
        name: &str,
        tags: &Tags,
        now: Millis,
    ) -> Result<(ActivityRecord, bool)> {
        let text = to_json("an activity's tags", tags)?;
        let client = self.client().await?;
        let n = client
            .execute(
                "INSERT INTO activities (name, created_at, tags) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &pg_millis(now), &text],
            )
            .await
            .map_err(pg("creating an activity"))?;
        let rec = read_activity(&client, name)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "activity",
                id: name.to_string(),
            })?;
        Ok((rec, n > 0))
    }

    async fn get_activity(&self, name: &str) -> Result<Option<ActivityRecord>> {
        let client = self.client().await?;
        read_activity(&client, name).await
    }

    async fn list_activities(&self) -> Result<Vec<ActivityRecord>> {
        let client = self.client().await?;
        client
            .query(
                "SELECT name, created_at, tags FROM activities ORDER BY name",
                &[],
            )
            .await
            .map_err(pg("listing activities"))?
            .iter()
            .map(activity_from_row)
            .collect()
    }

    async fn delete_activity(&self, name: &str) -> Result<bool> {
        let client = self.client().await?;
        let n = client
            .execute("DELETE FROM activities WHERE name = $1", &[&name])
            .await
            .map_err(pg("deleting an activity"))?;
        Ok(n > 0)
    }

    async fn tag_activity(
        &self,
        name: &str,
        set: &Tags,
        remove: &[String],
        max: usize,
    ) -> Result<Option<Tags>> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(pg("starting to tag an activity"))?;
        // Locked: taggers of one activity take turns (so `max` holds).
        let row = tx
            .query_opt(
                "SELECT name, created_at, tags FROM activities WHERE name = $1 FOR UPDATE",
                &[&name],
            )
            .await
            .map_err(pg("locking an activity"))?;
        let Some(row) = row else {
            return Err(Error::NotFound {
                what: "activity",
                id: name.to_string(),
            });
        };
        let tags = activity_from_row(&row)?.tags;
        let Some(tags) = crate::retagged(tags, set, remove, max) else {
            return Ok(None);
        };
        let text = to_json("an activity's tags", &tags)?;
        tx.execute(
            "UPDATE activities SET tags = $2 WHERE name = $1",
            &[&name, &text],
        )
        .await
        .map_err(pg("tagging an activity"))?;
        tx.commit().await.map_err(pg("tagging an activity"))?;
        Ok(Some(tags))
    }

    async fn offer_activity_task(&self, offer: &ActivityOffer) -> Result<bool> {
        let input = to_json("an activity task's input", &offer.input)?;
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM activity_offers WHERE expires_at < $1",
                &[&pg_millis(offer.offered_at)],
            )
            .await
            .map_err(pg("removing expired activity offers"))?;
        let n = client
            .execute(
                "INSERT INTO activity_offers
                     (token, activity, execution_id, input, offered_at, expires_at)
                 SELECT $1, $2, $3, $4, $5, $6
                 WHERE NOT EXISTS (SELECT 1 FROM activity_tasks WHERE token = $1)
                 ON CONFLICT (token) DO NOTHING",
                &[
                    &offer.token,
                    &offer.activity,
                    &offer.execution_id,
                    &input,
                    &pg_millis(offer.offered_at),
                    &pg_millis(offer.expires_at),
                ],
            )
            .await
            .map_err(pg("offering an activity task"))?;
        Ok(n > 0)
    }

    async fn activity_offers(
        &self,
        activity: &str,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<ActivityOffer>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT token, execution_id, input, offered_at, expires_at
                 FROM activity_offers WHERE activity = $1 AND expires_at >= $2
                 ORDER BY offered_at, token LIMIT $3",
                &[
                    &activity,
                    &pg_millis(now),
                    &(limit.min(i64::MAX as usize) as i64),
                ],
            )
            .await
            .map_err(pg("reading activity offers"))?;
        rows.iter()
            .map(|r| {
                let input: String = r.get(2);
                Ok(ActivityOffer {
                    token: r.get(0),
                    activity: activity.to_string(),
                    execution_id: r.get(1),
                    input: from_json("an activity task's input", &input)?,
                    offered_at: r.get::<_, i64>(3).max(0) as Millis,
                    expires_at: r.get::<_, i64>(4).max(0) as Millis,
                })
            })
            .collect()
    }

    async fn claim_activity_task(&self, claim: &ActivityTaskClaim) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(pg("starting to take an activity task"))?;
        tx.execute(
            "DELETE FROM activity_tasks WHERE expires_at < $1",
            &[&pg_millis(claim.claimed_at)],
        )
        .await
        .map_err(pg("removing expired activity tasks"))?;
        let n = tx
            .execute(
                "INSERT INTO activity_tasks (token, execution_id, worker, claimed_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (token) DO NOTHING",
                &[
                    &claim.token,
                    &claim.execution_id,
                    &claim.worker,
                    &pg_millis(claim.claimed_at),
                    &pg_millis(claim.expires_at),
                ],
            )
            .await
            .map_err(pg("taking an activity task"))?;
        if n > 0 {
            tx.execute(
                "DELETE FROM activity_offers WHERE token = $1",
                &[&claim.token],
            )
            .await
            .map_err(pg("withdrawing a taken activity task's offer"))?;
        }
        tx.commit().await.map_err(pg("taking an activity task"))?;
        Ok(n > 0)
    }

    async fn forget_activity_task(&self, token: &str) -> Result<()> {
        let client = self.client().await?;
        // One statement: the offer and the record go together.
        client
            .execute(
                "WITH offer AS (DELETE FROM activity_offers WHERE token = $1)
                 DELETE FROM activity_tasks WHERE token = $1",
                &[&token],
            )
            .await
            .map_err(pg("forgetting an activity task"))?;
        Ok(())
    }

    async fn record_execution_origin(&self, id: &str, qualifier: &str) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO execution_origins (id, qualifier) VALUES ($1, $2)
                 ON CONFLICT (id) DO NOTHING",
                &[&id, &qualifier],
            )
            .await
            .map_err(pg("recording an execution's origin"))?;
        Ok(())
    }

    async fn execution_origin(&self, id: &str) -> Result<Option<String>> {
        let client = self.client().await?;
        Ok(client
            .query_opt(
                "SELECT qualifier FROM execution_origins WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(pg("reading an execution's origin"))?
            .map(|r| r.get(0)))
    }

    async fn create_execution(&self, create: Create) -> Result<Created> {
        self.create(create, None).await
    }

    async fn append(&self, a: Append) -> Result<u64> {
        self.append_as(a, None).await
    }

    async fn claim_due_timers(&self, now: Millis, limit: usize) -> Result<Vec<Timer>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(CLAIM_SQL)
            .await
            .map_err(pg("preparing to claim timers"))?;
        let now = now.min(i64::MAX as u64) as i64;
        let rows = client
            .query(&stmt, &[&now, &sql_limit(limit)])
            .await
            .map_err(pg("claiming due timers"))?;
        timers_from_rows(&rows)
    }

    async fn unfinished(&self) -> Result<Vec<ExecutionRecord>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {EXECUTION_COLUMNS} FROM executions
                 WHERE status IN ('{}', '{}') ORDER BY seq",
                Status::Running.as_str(),
                Status::Compensating.as_str()
            ))
            .await
            .map_err(pg("preparing to list unfinished executions"))?;
        client
            .query(&stmt, &[])
            .await
            .map_err(pg("listing unfinished executions"))?
            .iter()
            .map(|r| execution_from_row(r).map(|(_, rec)| rec))
            .collect()
    }

    async fn load_history(&self, id: &str) -> Result<Vec<Event>> {
        let client = self.client().await?;
        let entries = read_history(&client, id, 0, usize::MAX).await?;
        Ok(entries.into_iter().map(|h| h.event).collect())
    }

    async fn pending_notifications(&self, limit: usize) -> Result<Vec<Notification>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT id, execution_id, status, created_at, kind FROM outbox ORDER BY id LIMIT $1",
            )
            .await
            .map_err(pg("preparing to read the outbox"))?;
        client
            .query(&stmt, &[&sql_limit(limit)])
            .await
            .map_err(pg("reading the outbox"))?
            .iter()
            .map(notification)
            .collect()
    }

    async fn ack_notification(&self, id: u64) -> Result<()> {
        // An id beyond BIGINT cannot be in the table.
        let Ok(id) = i64::try_from(id) else {
            return Ok(());
        };
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("DELETE FROM outbox WHERE id = $1")
            .await
            .map_err(pg("preparing to acknowledge a notification"))?;
        client
            .execute(&stmt, &[&id])
            .await
            .map(|_| ())
            .map_err(pg("acknowledging a notification"))
    }

    async fn bury_notification(&self, dead: DeadLetter) -> Result<()> {
        let Ok(id) = i64::try_from(dead.notification.id) else {
            return Ok(());
        };
        let client = self.client().await?;
        // One statement: the row leaves the outbox and enters the dead
        // letters together, or not at all (already moved or acknowledged).
        let stmt = client
            .prepare_cached(
                "WITH gone AS (DELETE FROM outbox WHERE id = $1
                               RETURNING id, execution_id, status, kind, created_at)
                 INSERT INTO dead_letters
                   (id, execution_id, status, kind, created_at, failed_at, attempts, last_error)
                 SELECT id, execution_id, status, kind, created_at, $2, $3, $4 FROM gone",
            )
            .await
            .map_err(pg("preparing to move a notification to the dead letters"))?;
        client
            .execute(
                &stmt,
                &[
                    &id,
                    &to_i64("failed_at", dead.failed_at)?,
                    &i64::from(dead.attempts),
                    &dead.last_error,
                ],
            )
            .await
            .map(|_| ())
            .map_err(pg("moving a notification to the dead letters"))
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT id, execution_id, status, created_at, kind, failed_at, attempts, last_error
                 FROM dead_letters ORDER BY id LIMIT $1",
            )
            .await
            .map_err(pg("preparing to read the dead letters"))?;
        client
            .query(&stmt, &[&sql_limit(limit)])
            .await
            .map_err(pg("reading the dead letters"))?
            .iter()
            .map(|r| {
                let attempts: i64 = r.get(6);
                Ok(DeadLetter {
                    notification: notification(r)?,
                    failed_at: to_u64("a dead letter's failed_at", r.get(5))?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    last_error: r.get(7),
                })
            })
            .collect()
    }

    async fn replay_dead_letter(&self, id: u64) -> Result<Option<Notification>> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(None);
        };
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "WITH gone AS (DELETE FROM dead_letters WHERE id = $1
                               RETURNING execution_id, status, created_at, kind)
                 INSERT INTO outbox (execution_id, status, created_at, kind)
                 SELECT execution_id, status, created_at, kind FROM gone
                 RETURNING id, execution_id, status, created_at, kind",
            )
            .await
            .map_err(pg("preparing to replay a dead letter"))?;
        client
            .query_opt(&stmt, &[&id])
            .await
            .map_err(pg("replaying a dead letter"))?
            .map(|r| notification(&r))
            .transpose()
    }
}

#[async_trait]
impl Leases for PostgresStore {
    async fn append_fenced(&self, a: Append, node: &str) -> Result<u64> {
        self.append_as(a, Some(node)).await
    }

    async fn claim_notifications(
        &self,
        node: &str,
        ttl_ms: u64,
        limit: usize,
    ) -> Result<Vec<Notification>> {
        let _ = node;
        let client = self.client().await?;
        let sql = format!(
            "UPDATE outbox SET claimed_until = {DB_NOW} + $1
             WHERE id IN (
                 SELECT id FROM outbox
                 WHERE claimed_until IS NULL OR claimed_until < {DB_NOW}
                 ORDER BY id LIMIT $2
                 FOR UPDATE SKIP LOCKED)
             RETURNING id, execution_id, status, created_at, kind"
        );
        let stmt = client
            .prepare_cached(&sql)
            .await
            .map_err(pg("preparing to claim notifications"))?;
        let mut out: Vec<Notification> = client
            .query(&stmt, &[&to_i64("a claim ttl", ttl_ms)?, &sql_limit(limit)])
            .await
            .map_err(pg("claiming notifications"))?
            .iter()
            .map(notification)
            .collect::<Result<_>>()?;
        // RETURNING follows no order; deliveries go oldest first.
        out.sort_by_key(|n| n.id);
        Ok(out)
    }

    async fn create_execution_leased(
        &self,
        create: Create,
        node: &str,
        ttl_ms: u64,
    ) -> Result<Created> {
        self.create(create, Some((node, ttl_ms))).await
    }

    async fn heartbeat_node(&self, node: &str, address: &str, ttl_ms: u64) -> Result<()> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&HEARTBEAT_SQL)
            .await
            .map_err(pg("preparing to register a node"))?;
        client
            .execute(&stmt, &[&node, &address, &ttl(ttl_ms)])
            .await
            .map(|_| ())
            .map_err(pg("registering a node"))
    }

    async fn node_address(&self, node: &str) -> Result<Option<String>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&NODE_ADDRESS_SQL)
            .await
            .map_err(pg("preparing to look a node up"))?;
        Ok(client
            .query_opt(&stmt, &[&node])
            .await
            .map_err(pg("looking a node up"))?
            .map(|r| r.get(0)))
    }

    async fn claim(&self, id: &str, node: &str, ttl_ms: u64) -> Result<Option<Lease>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&CLAIM_LEASE_SQL)
            .await
            .map_err(pg("preparing to claim a lease"))?;
        // The snapshot can be older than the row the UPDATE found (another
        // node claimed or released it in between): then it shows a free
        // lease the UPDATE could not take; ask again, the next snapshot
        // shows the new holder.
        for _ in 0..MAX_RETRIES {
            let Some(row) = client
                .query_opt(&stmt, &[&id, &node, &ttl(ttl_ms)])
                .await
                .map_err(pg("claiming a lease"))?
            else {
                return Err(not_found(id));
            };
            let (taken, unfinished): (i64, bool) = (row.get(0), row.get(1));
            if taken == 1 || !unfinished {
                return Ok(None);
            }
            let (owner, until, live): (Option<String>, Option<i64>, bool) =
                (row.get(2), row.get(3), row.get(4));
            match (owner, until) {
                (Some(owner), Some(until)) if live && owner != node => {
                    return Ok(Some(Lease {
                        node: owner,
                        until: to_u64(&format!("execution `{id}` lease_until"), until)?,
                    }))
                }
                _ => continue,
            }
        }
        Err(Error::Backend(format!(
            "execution `{id}`: gave up claiming its lease after {MAX_RETRIES} concurrent changes"
        )))
    }

    async fn renew(&self, node: &str, ttl_ms: u64) -> Result<u64> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&RENEW_SQL)
            .await
            .map_err(pg("preparing to renew leases"))?;
        client
            .execute(&stmt, &[&node, &ttl(ttl_ms)])
            .await
            .map_err(pg("renewing leases"))
    }

    async fn release(&self, id: &str, node: &str) -> Result<()> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE executions SET owner = NULL, lease_until = 0
                 WHERE id = $1 AND owner = $2",
            )
            .await
            .map_err(pg("preparing to release a lease"))?;
        client
            .execute(&stmt, &[&id, &node])
            .await
            .map(|_| ())
            .map_err(pg("releasing a lease"))
    }

    async fn take_over(
        &self,
        node: &str,
        ttl_ms: u64,
        limit: usize,
    ) -> Result<Vec<ExecutionRecord>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&TAKE_OVER_SQL)
            .await
            .map_err(pg("preparing to take executions over"))?;
        let mut taken = client
            .query(&stmt, &[&node, &ttl(ttl_ms), &sql_limit(limit)])
            .await
            .map_err(pg("taking executions over"))?
            .iter()
            .map(execution_from_row)
            .collect::<Result<Vec<_>>>()?;
        // Creation order, as `unfinished` lists them.
        taken.sort_by_key(|(seq, _)| *seq);
        Ok(taken.into_iter().map(|(_, rec)| rec).collect())
    }

    async fn claim_due_timers_for(
        &self,
        node: &str,
        ttl_ms: u64,
        now: Millis,
        limit: usize,
    ) -> Result<Vec<Timer>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&CLAIM_TIMERS_FOR_SQL)
            .await
            .map_err(pg("preparing to claim timers"))?;
        let now = now.min(i64::MAX as u64) as i64;
        let rows = client
            .query(&stmt, &[&now, &sql_limit(limit), &node, &ttl(ttl_ms)])
            .await
            .map_err(pg("claiming due timers"))?;
        timers_from_rows(&rows)
    }
}

#[async_trait]
impl Query for PostgresStore {
    async fn get_execution(&self, id: &str) -> Result<ExecutionRecord> {
        let client = self.client().await?;
        get_execution(&client, id).await
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
        // Only the filters in use go into the SQL, so the planner can use
        // the (status, seq) or (definition, seq) index.
        let mut sql = format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE seq < $1");
        let mut args: Vec<&(dyn ToSql + Sync)> = vec![&before];
        if let Some(status) = &status {
            args.push(status);
            sql.push_str(&format!(" AND status = ${}", args.len()));
        }
        if let Some(definition) = &f.definition {
            args.push(definition);
            sql.push_str(&format!(" AND definition = ${}", args.len()));
        }
        // A time range checks rows along the seq order, which follows the
        // start order: recent ranges (what people look at) stop early.
        let after = f.started_after.map(|ms| ms.min(i64::MAX as u64) as i64);
        let until = f.started_before.map(|ms| ms.min(i64::MAX as u64) as i64);
        if let Some(after) = &after {
            args.push(after);
            sql.push_str(&format!(" AND started_at >= ${}", args.len()));
        }
        if let Some(until) = &until {
            args.push(until);
            sql.push_str(&format!(" AND started_at < ${}", args.len()));
        }
        let fetch = sql_limit(limit.saturating_add(1));
        args.push(&fetch);
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT ${}", args.len()));

        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&sql)
            .await
            .map_err(pg("preparing to list executions"))?;
        let mut rows = client
            .query(&stmt, &args)
            .await
            .map_err(pg("listing executions"))?
            .iter()
            .map(execution_from_row)
            .collect::<Result<Vec<_>>>()?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if more {
            rows.last().map(|(seq, _)| seq.to_string())
        } else {
            None
        };
        Ok(Page {
            items: rows.into_iter().map(|(_, rec)| rec).collect(),
            next_cursor,
        })
    }

    async fn event_times(&self, id: &str, kind: &str) -> Result<Vec<Millis>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT at FROM events WHERE execution_id = $1 AND type = $2 ORDER BY seq",
                &[&id, &kind],
            )
            .await
            .map_err(pg("reading the times of an execution's events"))?;
        Ok(rows
            .iter()
            .map(|r| r.get::<_, i64>(0).max(0) as Millis)
            .collect())
    }

    async fn history_page(&self, id: &str, after: u64, limit: usize) -> Result<Vec<HistoryEntry>> {
        let client = self.client().await?;
        read_history(&client, id, after, limit).await
    }

    async fn list_definitions(&self) -> Result<Vec<DefinitionRecord>> {
        let client = self.client().await?;
        // COLLATE "C": byte order, as SQLite's default (and a BTreeMap) sorts,
        // whatever the database's collation.
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {DEFINITION_COLUMNS} FROM definitions AS d
                 WHERE NOT deleted
                   AND version = (SELECT MAX(version) FROM definitions WHERE name = d.name)
                 ORDER BY name COLLATE \"C\""
            ))
            .await
            .map_err(pg("preparing to list definitions"))?;
        client
            .query(&stmt, &[])
            .await
            .map_err(pg("listing definitions"))?
            .iter()
            .map(definition_from_row)
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Reads shared by several methods

impl PostgresStore {
    /// Appends, fenced by `fence`'s lease when given: the unfenced statement
    /// is the one a single node always ran.
    async fn append_as(&self, a: Append, fence: Option<&str>) -> Result<u64> {
        let client = self.client().await?;
        let Ok(expected) = i64::try_from(a.expected_version) else {
            // No stored version is this large: a conflict (or not found).
            return Err(conflict_or_not_found(&client, &a).await);
        };
        let version = a
            .expected_version
            .checked_add(a.events.len() as u64)
            .ok_or_else(|| Error::Backend("the execution's version overflows".into()))?;
        let cols = event_columns(a.expected_version, &a.events)?;
        let output = a
            .output
            .as_ref()
            .map(|v| to_json("output", v))
            .transpose()?;
        let error = a.error.as_ref().map(|v| to_json("error", v)).transpose()?;
        let mut timer_execution = Vec::with_capacity(a.timers.len());
        let mut timer_step = Vec::with_capacity(a.timers.len());
        let mut timer_task = Vec::with_capacity(a.timers.len());
        let mut timer_attempt = Vec::with_capacity(a.timers.len());
        let mut timer_fire_at = Vec::with_capacity(a.timers.len());
        for t in &a.timers {
            timer_execution.push(t.execution_id.as_str());
            timer_step.push(t.step.as_str());
            timer_task.push(t.task.as_str());
            timer_attempt.push(i64::from(t.attempt));
            timer_fire_at.push(to_i64("a timer's fire_at", t.fire_at)?);
        }
        let fenced = fence.is_some();
        let stmt = client
            .prepare_cached(if fenced {
                FENCED_APPEND_SQL
            } else {
                APPEND_SQL
            })
            .await
            .map_err(pg("preparing an append"))?;
        let new_version = to_i64("the new version", version)?;
        let updated_at = to_i64("updated_at", a.updated_at)?;
        let finishes = a.status.is_terminal();
        let notify = a.notify.map(|k| k.as_str());
        let params: [&(dyn ToSql + Sync); 19] = [
            &a.execution_id,
            &expected,
            &new_version,
            &a.status.as_str(),
            &output,
            &error,
            &updated_at,
            &cols.seq,
            &cols.at,
            &cols.kind,
            &cols.body,
            &timer_execution,
            &timer_step,
            &timer_task,
            &timer_attempt,
            &timer_fire_at,
            &notify,
            &fence,
            &finishes,
        ];
        // The unfenced statement has no $18, $19: the single-node path sends
        // exactly what it always did.
        let params = if fenced { &params[..] } else { &params[..17] };
        // An append that updated nothing is read again to say why. If nothing
        // refuses it any more (the caller was ahead and another append caught
        // up in between, or its lease was renewed meanwhile), it was late, not
        // wrong: run it again rather than report "expected N, actual N".
        for _ in 0..3 {
            let updated: i64 = client
                .query_one(&stmt, params)
                .await
                .map_err(pg("appending"))?
                .get(0);
            if updated == 1 {
                return Ok(version);
            }
            if let Some(refused) = refusal(&client, &a, fence).await? {
                return Err(refused);
            }
        }
        Err(conflict_or_not_found(&client, &a).await)
    }

    /// Inserts an execution with its first events, leased to a node when
    /// `lease` says so, or finds the existing one.
    async fn create(&self, create: Create, lease: Option<(&str, u64)>) -> Result<Created> {
        let Create {
            mut record,
            events,
            timers,
            notify,
        } = create;
        record.events = events.len() as u64;
        // A create's timers are its own execution's (the id comes from `ins`).
        let timer_step: Vec<&str> = timers.iter().map(|t| t.step.as_str()).collect();
        let timer_task: Vec<&str> = timers.iter().map(|t| t.task.as_str()).collect();
        let timer_attempt: Vec<i64> = timers.iter().map(|t| i64::from(t.attempt)).collect();
        let timer_fire_at = timers
            .iter()
            .map(|t| to_i64("a timer's fire_at", t.fire_at))
            .collect::<Result<Vec<i64>>>()?;

        let input = to_json("input", &record.input)?;
        let output = record
            .output
            .as_ref()
            .map(|v| to_json("output", v))
            .transpose()?;
        let error = record
            .error
            .as_ref()
            .map(|v| to_json("error", v))
            .transpose()?;
        let cols = event_columns(0, &events)?;
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(CREATE_SQL)
            .await
            .map_err(pg("preparing to insert an execution"))?;
        let inserted: i64 = client
            .query_one(
                &stmt,
                &[
                    &record.id,
                    &record.definition,
                    &i64::from(record.version),
                    &record.status.as_str(),
                    &input,
                    &output,
                    &error,
                    &to_i64("started_at", record.started_at)?,
                    &to_i64("updated_at", record.updated_at)?,
                    &to_i64("an event count", record.events)?,
                    &cols.seq,
                    &cols.at,
                    &cols.kind,
                    &cols.body,
                    &lease.map(|(node, _)| node),
                    &to_i64("a lease ttl", lease.map_or(0, |(_, ttl)| ttl))?,
                    &timer_step,
                    &timer_task,
                    &timer_attempt,
                    &timer_fire_at,
                    &notify.map(|k| k.as_str()),
                ],
            )
            .await
            .map_err(pg("inserting an execution"))?
            .get(0);
        if inserted == 1 {
            return Ok(Created::New(record));
        }
        // The id was taken (committed: ON CONFLICT waits for the other
        // insert to finish), so this statement's fresh snapshot sees it.
        match get_execution(&client, &record.id).await {
            Ok(existing) => Ok(Created::Existing(existing)),
            Err(Error::NotFound { .. }) => Err(Error::Backend(format!(
                "execution `{}` conflicted on insert but cannot be read",
                record.id
            ))),
            Err(e) => Err(e),
        }
    }
}

async fn get_execution(client: &deadpool_postgres::Object, id: &str) -> Result<ExecutionRecord> {
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1"
        ))
        .await
        .map_err(pg("preparing to read an execution"))?;
    let row = client
        .query_opt(&stmt, &[&id])
        .await
        .map_err(pg("reading an execution"))?
        .ok_or_else(|| not_found(id))?;
    execution_from_row(&row).map(|(_, rec)| rec)
}

async fn read_version(client: &deadpool_postgres::Object, id: &str) -> Result<Option<u64>> {
    let stmt = client
        .prepare_cached("SELECT events FROM executions WHERE id = $1")
        .await
        .map_err(pg("preparing to read a version"))?;
    client
        .query_opt(&stmt, &[&id])
        .await
        .map_err(pg("reading an execution's version"))?
        .map(|r| to_u64(&format!("execution `{id}` events"), r.get(0)))
        .transpose()
}

/// The error of an append that did not apply: the execution's current
/// version as a conflict, or not found.
async fn conflict_or_not_found(client: &deadpool_postgres::Object, a: &Append) -> Error {
    match read_version(client, &a.execution_id).await {
        Ok(Some(actual)) => Error::Conflict {
            id: a.execution_id.clone(),
            expected: a.expected_version,
            actual,
        },
        Ok(None) => not_found(&a.execution_id),
        Err(e) => e,
    }
}

/// Why an append that updated nothing was refused: not found, a conflict,
/// or (fenced) the lease; `None` if, read again, nothing refuses it. The
/// version is checked first, as the append does: a lease is only the reason
/// when the caller was up to date.
async fn refusal(
    client: &deadpool_postgres::Object,
    a: &Append,
    fence: Option<&str>,
) -> Result<Option<Error>> {
    let Some(node) = fence else {
        return Ok(match read_version(client, &a.execution_id).await? {
            None => Some(not_found(&a.execution_id)),
            Some(actual) if actual == a.expected_version => None,
            Some(actual) => Some(Error::Conflict {
                id: a.execution_id.clone(),
                expected: a.expected_version,
                actual,
            }),
        });
    };
    let stmt = client
        .prepare_cached(FENCE_STATE_SQL)
        .await
        .map_err(pg("preparing to read a lease"))?;
    let Some(row) = client
        .query_opt(&stmt, &[&a.execution_id, &node])
        .await
        .map_err(pg("reading a lease"))?
    else {
        return Ok(Some(not_found(&a.execution_id)));
    };
    let actual = to_u64(
        &format!("execution `{}` events", a.execution_id),
        row.get(0),
    )?;
    let (finished, held): (bool, bool) = (row.get(1), row.get(2));
    Ok(if actual != a.expected_version {
        Some(Error::Conflict {
            id: a.execution_id.clone(),
            expected: a.expected_version,
            actual,
        })
    } else if finished || held {
        None
    } else {
        Some(Error::LeaseLost {
            id: a.execution_id.clone(),
            node: node.to_string(),
        })
    })
}

/// History entries of `id` with `seq > after`, oldest first. One statement,
/// so the existence check and the events come from one snapshot.
async fn read_history(
    client: &deadpool_postgres::Object,
    id: &str,
    after: u64,
    limit: usize,
) -> Result<Vec<HistoryEntry>> {
    // The LEFT JOIN gives one row of NULLs for an existing execution with
    // no (more) events, which tells it apart from a missing one.
    let stmt = client
        .prepare_cached(
            "SELECT e.seq, e.body FROM executions AS x
             LEFT JOIN events AS e ON e.execution_id = x.id AND e.seq > $2
             WHERE x.id = $1 ORDER BY e.seq LIMIT $3",
        )
        .await
        .map_err(pg("preparing to read a history"))?;
    let after = after.min(i64::MAX as u64) as i64;
    let page = limit.clamp(1, i64::MAX as usize) as i64;
    let rows = client
        .query(&stmt, &[&id, &after, &page])
        .await
        .map_err(pg("reading a history"))?;
    if rows.is_empty() {
        return Err(not_found(id));
    }
    rows.iter()
        .filter_map(|r| {
            let seq: Option<i64> = r.get(0);
            let body: Option<String> = r.get(1);
            seq.zip(body)
        })
        .take(limit)
        .map(|(seq, body)| {
            Ok(HistoryEntry {
                seq: to_u64(&format!("execution `{id}` event seq"), seq)?,
                event: from_json(&format!("event {seq} of execution `{id}`"), &body)?,
            })
        })
        .collect()
}

/// A notification from a row of `id, execution_id, status, created_at, kind`.
fn notification(r: &Row) -> Result<Notification> {
    let id: i64 = r.get(0);
    let status: String = r.get(2);
    let kind: String = r.get(4);
    Ok(Notification {
        id: to_u64("a notification id", id)?,
        execution_id: r.get(1),
        status: Status::parse(&status)
            .ok_or_else(|| Error::Corrupt(format!("notification {id} status: `{status}`")))?,
        created_at: to_u64(&format!("notification {id} created_at"), r.get(3))?,
        kind: NotificationKind::parse(&kind)
            .ok_or_else(|| Error::Corrupt(format!("notification {id} kind: `{kind}`")))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://app:s3cr%40t@db.example:5432/sagaflow?sslmode=disable"),
            "postgres://app:***@db.example:5432/sagaflow?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5432/test"),
            "postgres://postgres@127.0.0.1:5432/test"
        );
        assert_eq!(
            redact_url("postgresql://h/db?user=a@b"),
            "postgresql://h/db?user=a@b"
        );
        assert_eq!(redact_url("host=/tmp dbname=x"), "host=/tmp dbname=x");
        assert_eq!(
            redact_url("postgres://h/db?user=a&password=p%20w&dbname=x"),
            "postgres://h/db?user=a&password=***&dbname=x"
        );
        assert_eq!(
            redact_url("host=h password=secret user=u"),
            "host=h password=*** user=u"
        );
        assert_eq!(redact_url("password=secret"), "password=***");
    }

    #[test]
    fn the_sql_of_unfinished_statuses_and_of_the_clock_is_the_same_everywhere() {
        let unfinished: Vec<String> = Status::ALL
            .iter()
            .filter(|s| !s.is_terminal())
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        assert_eq!(UNFINISHED, format!("({})", unfinished.join(", ")));
        // The fenced statements spell them out (they are built by concat!).
        for sql in [FENCED_APPEND_SQL, FENCE_STATE_SQL] {
            assert!(sql.contains(UNFINISHED), "{sql}");
            assert!(sql.contains(DB_NOW), "{sql}");
        }
        assert!(
            !APPEND_SQL.contains("owner"),
            "the single-node append changed"
        );
    }

    #[test]
    fn schema_names_are_plain_lowercase_identifiers() {
        for ok in ["sagaflow", "_t", "t_1_abc", &"a".repeat(63)] {
            assert!(check_schema_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1a", "Upper", "a-b", "a b", "a\"b", &"a".repeat(64)] {
            assert!(check_schema_name(bad).is_err(), "{bad}");
        }
    }
}
