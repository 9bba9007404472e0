//! What DescribeExecution reads to count an execution's redrives, on the
//! SQLite store: an execution with a 10,000-event history.
//!
//! - `whole history`: the history loaded and decoded, then filtered (what
//!   DescribeExecution did before `event_times`);
//! - `event_times`: the times of its `execution_redriven` events only,
//!   read from the `type` column without decoding a body.
//!
//! `cargo bench -p sagaflow-store --bench redrives` (add `-- --quick` for a
//! rough number fast).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use sagaflow_core::event::Millis;
use sagaflow_core::{Event, EventKind, Status};
use sagaflow_store::sqlite::SqliteStore;
use sagaflow_store::{Append, Create, ExecutionRecord, Executor, Query};
use serde_json::json;

const AT: Millis = 1_700_000_000_000;
const EVENTS: u64 = 10_000;
const BATCH: u64 = 500;

fn step(i: u64) -> Event {
    let step = format!("Book[{i}]/Reserve");
    if i.is_multiple_of(2) {
        Event {
            at: AT + i,
            kind: EventKind::StepScheduled {
                step,
                attempt: 1,
                deadline: AT + 900_000,
                nonce: None,
            },
        }
    } else {
        Event {
            at: AT + i,
            kind: EventKind::StepSucceeded {
                step,
                attempt: 1,
                output: json!({ "booking_id": format!("b-{i}"), "city": "Lisbon", "nights": 3 }),
            },
        }
    }
}

fn redrives(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(dir.path().join("bench.db")).expect("opening");
    let id = "long";
    rt.block_on(async {
        let record = ExecutionRecord {
            id: id.into(),
            definition: "bench".into(),
            version: 1,
            status: Status::Running,
            input: json!({}),
            output: None,
            error: None,
            started_at: AT,
            updated_at: AT,
            events: 1,
        };
        let started = Event {
            at: AT,
            kind: EventKind::ExecutionStarted {
                execution_id: id.into(),
                definition: "bench".into(),
                version: 1,
                input: json!({}),
                keys: Default::default(),
            },
        };
        store
            .create_execution(Create::new(record, vec![started], Vec::new()))
            .await
            .expect("creating the execution");
        let mut version = 1;
        while version < EVENTS {
            let events: Vec<Event> = (version..version + BATCH).map(step).collect();
            version = store
                .append(Append {
                    execution_id: id.into(),
                    expected_version: version,
                    events,
                    status: Status::Running,
                    output: None,
                    error: None,
                    updated_at: AT,
                    timers: Vec::new(),
                    notify: None,
                })
                .await
                .expect("appending");
        }
    });
    let redriven = EventKind::ExecutionRedriven {}.name();
    let mut g = c.benchmark_group("describe_redrives_10000_events");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    g.bench_function("whole history", |b| {
        b.iter(|| {
            let history = rt.block_on(store.load_history(id)).expect("history");
            history
                .iter()
                .filter(|e| matches!(e.kind, EventKind::ExecutionRedriven {}))
                .count()
        })
    });
    g.bench_function("event_times", |b| {
        b.iter(|| {
            rt.block_on(store.event_times(id, redriven))
                .expect("times")
                .len()
        })
    });
    g.finish();
}

criterion_group!(benches, redrives);
criterion_main!(benches);
