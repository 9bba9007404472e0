//! The executions list with 100,000 executions in the store: how long one
//! page takes, read from the store (`list_executions`) and through the API
//! (`GET /v1/executions` over loopback HTTP, what the console's list view
//! asks: the page read, rendered as JSON, sent and parsed by the client),
//! on SQLite (a temporary directory, the durability it ships with) and,
//! when `DATABASE_URL` is set, PostgreSQL (in a schema of its own, dropped
//! afterwards).
//!
//! Each shape of query — the newest page, a status filter, a definition
//! filter, both, a start-time range, and the 100th page through cursors —
//! is asked `ROUNDS` times; the latency percentiles are printed. A
//! benchmark, not a test: nothing is asserted about the times.
//!
//! `cargo bench -p sagaflow-api --bench list` (`EXECUTIONS=N` for another
//! count).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sagaflow_core::event::Millis;
use sagaflow_core::{Event, EventKind, Status};
use sagaflow_runtime::Engine;
use sagaflow_store::postgres::PostgresStore;
use sagaflow_store::sqlite::SqliteStore;
use sagaflow_store::{Create, ExecutionRecord, Executor, ListFilter, Query, Store};
use serde_json::json;

const AT: Millis = 1_700_000_000_000;
const ROUNDS: usize = 300;
const DEFINITIONS: usize = 10;
/// Statuses in the mix: most finished, some running or compensated.
const STATUSES: [Status; 5] = [
    Status::Succeeded,
    Status::Succeeded,
    Status::Succeeded,
    Status::Compensated,
    Status::Running,
];

fn record(n: usize) -> ExecutionRecord {
    let id = format!("ex-{n:07}");
    ExecutionRecord {
        definition: format!("def-{}", n % DEFINITIONS),
        version: 1,
        status: STATUSES[n % STATUSES.len()],
        input: json!({ "trip_id": id }),
        output: None,
        error: None,
        started_at: AT + n as Millis,
        updated_at: AT + n as Millis,
        events: 1,
        id,
    }
}

fn started(r: &ExecutionRecord) -> Event {
    Event {
        at: r.started_at,
        kind: EventKind::ExecutionStarted {
            execution_id: r.id.clone(),
            definition: r.definition.clone(),
            version: 1,
            input: r.input.clone(),
            keys: Default::default(),
        },
    }
}

async fn fill<S: Executor + 'static>(store: Arc<S>, count: usize) {
    let started_at = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..64 {
        let store = store.clone();
        tasks.spawn(async move {
            for n in (worker..count).step_by(64) {
                let r = record(n);
                let events = vec![started(&r)];
                store
                    .create_execution(Create::new(r, events, Vec::new()))
                    .await
                    .expect("creating an execution");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a filling task");
    }
    eprintln!(
        "  {count} executions stored in {:.1} s",
        started_at.elapsed().as_secs_f64()
    );
}

fn filter(status: Option<Status>, definition: Option<&str>, cursor: Option<String>) -> ListFilter {
    ListFilter {
        status,
        definition: definition.map(str::to_string),
        limit: 50,
        cursor,
        ..ListFilter::default()
    }
}

/// The cursor of the 100th page of the unfiltered list.
async fn deep_cursor(store: &dyn Query) -> Option<String> {
    let mut cursor = None;
    for _ in 0..99 {
        cursor = store
            .list_executions(&filter(None, None, cursor))
            .await
            .expect("a page")
            .next_cursor;
    }
    cursor
}

fn pick(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// The query shapes: a name, the store's filter, the API's query string.
fn shapes(deep: Option<String>, count: usize) -> Vec<(&'static str, ListFilter, String)> {
    // The newest tenth of the executions, by start time.
    let recent = AT + (count - count / 10) as Millis;
    let recent_rfc = time::OffsetDateTime::from_unix_timestamp_nanos(recent as i128 * 1_000_000)
        .expect("a time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339")
        .replace(':', "%3A");
    vec![
        ("newest page", filter(None, None, None), String::new()),
        (
            "status=running",
            filter(Some(Status::Running), None, None),
            "status=running".into(),
        ),
        (
            "definition=def-3",
            filter(None, Some("def-3"), None),
            "definition=def-3".into(),
        ),
        (
            "status=compensated&definition=def-3",
            filter(Some(Status::Compensated), Some("def-3"), None),
            "status=compensated&definition=def-3".into(),
        ),
        (
            "started_after (newest tenth)",
            ListFilter {
                started_after: Some(recent),
                ..filter(None, None, None)
            },
            format!("started_after={recent_rfc}"),
        ),
        (
            "100th page (cursor)",
            filter(None, None, deep.clone()),
            format!("cursor={}", deep.unwrap_or_default()),
        ),
    ]
}

fn report(backend: &str, via: &str, name: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{backend:<10} {via:<5} {name:<38} p50 {:>8.2?}  p99 {:>8.2?}  max {:>8.2?}",
        pick(&times, 0.50),
        pick(&times, 0.99),
        times[times.len() - 1]
    );
}

async fn measure(backend: &str, store: Arc<dyn Store>, count: usize) {
    let deep = deep_cursor(store.as_ref()).await;
    // The API over the same store: the router alone (no engine started,
    // so nothing else runs), served on a loopback port.
    let engine = Engine::builder(store.clone()).build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let base = format!("http://{}", listener.local_addr().expect("its address"));
    let app = sagaflow_api::router(engine, sagaflow_api::ApiConfig::default());
    let served = tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    for (name, f, query) in shapes(deep, count) {
        let mut times = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let t = Instant::now();
            let page = store.list_executions(&f).await.expect("a page");
            times.push(t.elapsed());
            assert!(!page.items.is_empty(), "{backend} {name}: an empty page");
        }
        report(backend, "store", name, times);
        let url = format!("{base}/v1/executions?{query}");
        let mut times = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let t = Instant::now();
            let page: serde_json::Value = http
                .get(&url)
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .expect("GET /v1/executions")
                .json()
                .await
                .expect("a JSON page");
            times.push(t.elapsed());
            assert!(
                page["items"].as_array().is_some_and(|i| !i.is_empty()),
                "{backend} {name}: an empty page over HTTP"
            );
        }
        report(backend, "http", name, times);
    }
    served.abort();
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then
    // it only checks that the benchmark builds and runs, on a small store.
    let benching = std::env::args().any(|a| a == "--bench");
    let count = std::env::var("EXECUTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 100_000 } else { 2_000 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        let dir = tempfile::tempdir().expect("a temporary directory");
        eprintln!("sqlite:");
        let sqlite = Arc::new(SqliteStore::open(dir.path().join("list.db")).expect("opening"));
        fill(sqlite.clone(), count).await;
        measure("sqlite", sqlite, count).await;
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => {
                let schema = format!("bench_list_{}", std::process::id());
                eprintln!("postgres (schema {schema}):");
                let pg = Arc::new(
                    PostgresStore::connect_in_schema(&url, &schema)
                        .await
                        .expect("connecting to DATABASE_URL"),
                );
                fill(pg.clone(), count).await;
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .expect("connecting beside the store");
                tokio::spawn(conn);
                // Fresh statistics, as autovacuum would give a table this
                // size soon after it was filled.
                client
                    .batch_execute(&format!("ANALYZE {schema}.executions"))
                    .await
                    .expect("analyzing");
                measure("postgres", pg.clone(), count).await;
                // Before and after migration 0007, in one sitting: the
                // combined filter again without its index.
                client
                    .batch_execute(&format!(
                        "DROP INDEX {schema}.executions_by_definition_status; ANALYZE {schema}.executions"
                    ))
                    .await
                    .expect("dropping the 0007 index");
                let both = filter(Some(Status::Compensated), Some("def-3"), None);
                let mut times = Vec::with_capacity(ROUNDS);
                for _ in 0..ROUNDS {
                    let t = Instant::now();
                    pg.list_executions(&both).await.expect("a page");
                    times.push(t.elapsed());
                }
                report(
                    "postgres",
                    "store",
                    "status=compensated&definition=def-3 without 0007",
                    times,
                );
                drop(pg);
                let _ = client
                    .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                    .await;
            }
            _ => eprintln!("DATABASE_URL is not set: PostgreSQL not measured"),
        }
    });
}
