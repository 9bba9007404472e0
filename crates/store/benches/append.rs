//! Micro-benchmarks of the SQLite store's append path, on a temporary
//! directory with the durability it ships with (`synchronous=FULL`).
//!
//! - `sequential`: one append at a time: each is its own commit and fsync;
//! - `64 concurrent`: 64 executions append at once and share commits
//!   (group commit): the time is for all 64.
//!
//! `cargo bench -p sagaflow-store` (add `-- --quick` for a rough number fast).

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sagaflow_core::event::Millis;
use sagaflow_core::{Event, EventKind, Status};
use sagaflow_store::sqlite::SqliteStore;
use sagaflow_store::{Append, Create, ExecutionRecord, Executor};
use serde_json::json;

const AT: Millis = 1_700_000_000_000;
const CONCURRENT: usize = 64;

fn record(id: &str) -> ExecutionRecord {
    ExecutionRecord {
        id: id.into(),
        definition: "bench".into(),
        version: 1,
        status: Status::Running,
        input: json!({ "trip_id": id }),
        output: None,
        error: None,
        started_at: AT,
        updated_at: AT,
        events: 1,
    }
}

fn started(id: &str) -> Event {
    Event {
        at: AT,
        kind: EventKind::ExecutionStarted {
            execution_id: id.into(),
            definition: "bench".into(),
            version: 1,
            input: json!({ "trip_id": id }),
            keys: Default::default(),
        },
    }
}

/// What an actor appends for one step: its success and the next scheduling.
fn step(id: &str, version: u64) -> Append {
    let step = format!("s{version}");
    Append {
        execution_id: id.into(),
        expected_version: version,
        events: vec![
            Event {
                at: AT,
                kind: EventKind::StepSucceeded {
                    step: step.clone(),
                    attempt: 1,
                    output: json!({ "booking_id": format!("{id}-{step}") }),
                },
            },
            Event {
                at: AT,
                kind: EventKind::StepScheduled {
                    step: format!("s{}", version + 1),
                    attempt: 1,
                    deadline: AT + 5_000,
                    nonce: None,
                },
            },
        ],
        status: Status::Running,
        output: None,
        error: None,
        updated_at: AT,
        timers: Vec::new(),
        notify: None,
    }
}

fn append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Arc::new(SqliteStore::open(dir.path().join("bench.db")).expect("opening"));
    let ids: Vec<String> = (0..CONCURRENT).map(|i| format!("bench-{i}")).collect();
    rt.block_on(async {
        for id in &ids {
            store
                .create_execution(Create::new(record(id), vec![started(id)], Vec::new()))
                .await
                .expect("creating an execution");
        }
    });
    let mut versions = vec![1u64; CONCURRENT];

    let mut g = c.benchmark_group("sqlite_append");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    g.bench_function("sequential", |b| {
        b.iter(|| {
            let v = rt
                .block_on(store.append(step(&ids[0], versions[0])))
                .expect("append");
            versions[0] = v;
        })
    });
    g.throughput(Throughput::Elements(CONCURRENT as u64));
    g.bench_function("64 concurrent", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut tasks = tokio::task::JoinSet::new();
                for (i, id) in ids.iter().enumerate() {
                    let (store, append) = (store.clone(), step(id, versions[i]));
                    tasks.spawn(async move { (i, store.append(append).await) });
                }
                while let Some(done) = tasks.join_next().await {
                    let (i, v) = done.expect("append task");
                    versions[i] = v.expect("append");
                }
            })
        })
    });
    g.finish();
    let (commits, writes) = store.group_commit_stats();
    eprintln!(
        "group commit over the whole run: {commits} commits for {writes} writes ({:.1} writes per commit)",
        writes as f64 / commits.max(1) as f64
    );
}

criterion_group!(benches, append);
criterion_main!(benches);
