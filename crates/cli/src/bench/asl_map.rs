//! `asl-map`: an Amazon States Language machine whose Map state runs one
//! Task per item (`--items`, an in-process no-op participant), so the cost
//! of one execution with many slots and threads is measured: the CPU per
//! item must not grow with the number of items. A Map this large would
//! exceed the history quota of 25,000 events, so the workload raises it
//! (`Config::max_history_events`) to fit.

use std::sync::Arc;

use sagaflow_core::asl::{ResourceMap, ResourceRule};
use sagaflow_core::Status;
use sagaflow_runtime::{Config, Engine};
use serde_json::{json, Value};

use super::report::{self, Report};
use super::{count_histories, drive, noop, open_store, sagas, Bench, Job, Jobs, Limit, Measured};

const NAME: &str = "bench-asl-map";

/// Items per execution when `--items` is not given.
pub const DEFAULT_ITEMS: usize = 1000;

/// The machine: `Map` over `$.items`, each item a Task of the `noop`
/// function; `max_concurrency` 0 runs every item at once (AWS's default).
pub fn machine(max_concurrency: usize) -> String {
    json!({
        "Comment": "sagaflow bench --workload asl-map",
        "StartAt": "Items",
        "States": {
            "Items": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": max_concurrency,
                "ItemProcessor": {
                    "StartAt": "Work",
                    "States": {
                        "Work": {
                            "Type": "Task",
                            "Resource": format!("arn:aws:lambda:us-east-1:123456789012:function:{}", sagas::NOOP),
                            "End": true
                        }
                    }
                },
                "End": true
            }
        }
    })
    .to_string()
}

pub async fn run(b: &Bench) -> anyhow::Result<Report> {
    let args = &b.args;
    let items = args.items.unwrap_or(DEFAULT_ITEMS);
    let executions = args.sagas.unwrap_or(1);
    let store = open_store(&b.db)?;
    let config = Config {
        resources: ResourceMap {
            rules: vec![ResourceRule {
                pattern: "arn:aws:lambda:*:*:function:{name}".into(),
                target: "handler:{name}".into(),
            }],
        },
        // Two events per item (scheduled, succeeded): beyond 12,000 items
        // the history quota of 25,000 events is raised to fit the Map.
        max_history_events: (items as u64 * 3 + 100)
            .max(sagaflow_core::asl::run::MAX_HISTORY_EVENTS),
        ..super::engine_config()
    };
    let engine = Engine::builder(store.clone())
        .config(config)
        .handler(sagas::NOOP, noop(None))
        .build();
    engine.start().await?;
    engine
        .deploy(Some(NAME), &machine(args.map_concurrency))
        .await?;

    let list: Arc<Value> = Arc::new((0..items).map(|i| json!({ "n": i })).collect());
    let jobs: Jobs = Arc::new(move |_| Job {
        input: json!({ "items": list.as_ref() }),
        expected: Status::Succeeded,
    });
    b.progress
        .phase(&args.workload.to_string(), Some(executions), None);
    let meter = super::Meter::start();
    let mut samples = drive(
        &engine,
        NAME,
        Limit::Count(executions),
        args.concurrency().min(executions as usize),
        jobs,
        None,
        &b.progress,
    )
    .await?;
    let (wall, cpu) = meter.stop();
    let group_commit = store.group_commit_stats();
    let peak = report::peak_rss_mib();
    b.progress.phase("reading histories", None, None);
    let counted =
        count_histories(&store, samples.iter().map(|s| s.id.clone()).collect(), None).await?;
    let concurrency = match args.map_concurrency {
        0 => "all at once".to_string(),
        n => format!("MaxConcurrency {n}"),
    };
    let mut report = b.report(
        format!("an ASL Map of {items} Task items ({concurrency}), in-process no-op participant"),
        None,
        Measured {
            samples: &mut samples,
            counted: &counted,
            wall,
            cpu,
            group_commit,
            overhead: false,
        },
    );
    report.peak_rss_mib = peak;
    let total_items = (items as u64 * executions).max(1) as f64;
    report.asl_map = Some(report::AslMap {
        items,
        map_concurrency: args.map_concurrency,
        cpu_per_item_us: cpu.total().as_secs_f64() * 1e6 / total_items,
        wall_per_item_us: wall.as_secs_f64() * 1e6 / total_items,
    });
    engine.shutdown(std::time::Duration::from_secs(5)).await;
    Ok(report)
}
