//! `sagaflow demo`: the travel reference app end to end.
//!
//! Starts the travel services (their own SQLite database) and a Sagaflow
//! server (embedded database) on free ports, deploys the travel saga, runs a
//! success and every failure scenario through the real HTTP API, prints what
//! happened, and checks each outcome against what the saga promises.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::{json, Value};

use crate::client::{describe_event, Api, Body};
use crate::server;

mod durable;
mod rust;

/// The travel saga shipped in `examples/`.
pub const TRAVEL_SAGA: &str = include_str!("../../../examples/travel-saga.yaml");

#[derive(Args, Clone)]
pub struct DemoArgs {
    /// Probability that a cancellation fails transiently (40% in the cdk-patterns saga sample).
    #[arg(long, default_value_t = 0.4)]
    pub cancel_failure_rate: f64,
    /// Keep the databases in this directory instead of a temporary one.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Run only the scenarios with these run types (repeatable).
    #[arg(long = "only")]
    pub only: Vec<String>,
}

/// What a scenario must end as.
struct Scenario {
    run_type: &'static str,
    what: &'static str,
    status: &'static str,
    /// Steps whose compensation must have run, in order.
    compensated: &'static [&'static str],
    /// Rows left for the trip: all confirmed, or none.
    rows_confirmed: bool,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        run_type: "success",
        what: "everything works",
        status: "succeeded",
        compensated: &[],
        rows_confirmed: true,
    },
    Scenario {
        run_type: "failHotelReservation",
        what: "the hotel is full",
        status: "compensated",
        compensated: &[],
        rows_confirmed: false,
    },
    Scenario {
        run_type: "failFlightsReservation",
        what: "no seat on the flight",
        status: "compensated",
        compensated: &["reserve_hotel"],
        rows_confirmed: false,
    },
    Scenario {
        run_type: "failCarReservation",
        what: "no car available",
        status: "compensated",
        compensated: &["reserve_flight", "reserve_hotel"],
        rows_confirmed: false,
    },
    Scenario {
        run_type: "failPayment",
        what: "the payment is declined (the pivot fails)",
        status: "compensated",
        compensated: &["reserve_car", "reserve_flight", "reserve_hotel"],
        rows_confirmed: false,
    },
    Scenario {
        run_type: "failHotelConfirmation",
        what: "hotel confirmation fails twice after payment: retried forward",
        status: "succeeded",
        compensated: &[],
        rows_confirmed: true,
    },
    Scenario {
        run_type: "failFlightsConfirmation",
        what: "flight confirmation fails twice after payment: retried forward",
        status: "succeeded",
        compensated: &[],
        rows_confirmed: true,
    },
];

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let travel_db = dir.join("travel.db");

    let mut travel_cfg = travel_services::Config::new(&travel_db);
    travel_cfg.cancel_failure_rate = args.cancel_failure_rate;
    let travel = travel_services::start(travel_cfg, "127.0.0.1:0".parse()?)
        .await
        .context("starting the travel services")?;
    eprintln!(
        "travel services on {} (database {}, cancel failure rate {})",
        travel.base_url(),
        travel_db.display(),
        args.cancel_failure_rate
    );

    let mut settings = server::resolve(server::ServerArgs {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.clone()),
        vars: vec![format!("TRAVEL_URL={}", travel.base_url())],
        ..Default::default()
    })?;
    // The saga as code too, when a Python can run it.
    let with_durable = args.only.is_empty() || args.only.iter().any(|o| o == "durable");
    let python = if with_durable {
        durable::python()
    } else {
        Err("not asked for (--only)".into())
    };
    let mut lambda = None;
    if let Ok(python) = &python {
        lambda = Some(durable::settings(python.clone(), &dir)?);
        settings
            .engine
            .resources
            .rules
            .push(sagaflow_core::asl::ResourceRule {
                pattern: "arn:aws:lambda:*:*:function:saga-{name}".into(),
                target: format!("{}/lambda/saga-{{name}}", travel.base_url()),
            });
    }
    // And written in Rust with sagaflow-saga, when its executable is built.
    let with_rust = args.only.is_empty() || args.only.iter().any(|o| o == "rust");
    let rust_saga = if with_rust {
        rust::executable()
    } else {
        Err("not asked for (--only)".into())
    };
    if let Ok(exe) = &rust_saga {
        let lambda = lambda.get_or_insert_with(|| crate::functions::LambdaSettings {
            // Only Python functions use it; the Rust saga is an executable.
            python: PathBuf::from("python3"),
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            log_dir: Some(dir.join("function-logs")),
            functions: Vec::new(),
        });
        lambda.functions.push(rust::function(exe)?);
        settings
            .engine
            .resources
            .rules
            .extend(rust::resource_rules(&travel.base_url()));
    }
    if let Some(lambda) = lambda {
        settings.engine.lambda = lambda.engine_config();
        settings.lambda = Some(lambda);
    }
    let running = server::start(settings)
        .await
        .context("starting the sagaflow server")?;
    let base = format!("http://{}", running.addr);
    eprintln!(
        "sagaflow server on {base} (database {})",
        dir.join("sagaflow.db").display()
    );
    let api = Api::at(&base, None);

    let d = api
        .call(
            reqwest::Method::PUT,
            "/v1/definitions/trip-booking",
            Some(Body::Text(TRAVEL_SAGA.to_string())),
        )
        .await?;
    println!("Deployed the travel saga `trip-booking` version {}: reserve hotel → flight → car → take payment (pivot) → confirm all three in parallel.\n", d["version"]);

    let base_input: Value =
        serde_json::from_str(include_str!("../../../examples/trip-success.json"))?;
    // Trip ids are unique per run: the travel services remember cancelled trips.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() % 100_000_000)
        .unwrap_or(0);
    let mut failures = 0;
    let mut ran = 0;
    for (n, sc) in SCENARIOS.iter().enumerate() {
        if !args.only.is_empty() && !args.only.iter().any(|o| o == sc.run_type) {
            continue;
        }
        ran += 1;
        let trip_id = format!("trip-{run}-{}", n + 1);
        let mut input = base_input.clone();
        input["trip_id"] = json!(trip_id);
        input["run_type"] = json!(sc.run_type);
        println!("━━ Scenario {}: {} — {} ━━", n + 1, sc.run_type, sc.what);
        let body = json!({ "definition": "trip-booking", "input": input, "execution_id": trip_id });
        let ex = api
            .call(
                reqwest::Method::POST,
                "/v1/executions?wait=60",
                Some(Body::Json(body)),
            )
            .await?;
        let h = api
            .call(
                reqwest::Method::GET,
                &format!("/v1/executions/{trip_id}/history"),
                None,
            )
            .await?;
        let events = h["events"].as_array().cloned().unwrap_or_default();
        for e in &events {
            if e["type"] == "execution_started" {
                continue;
            }
            println!("   {}", describe_event(e));
        }
        let compensated: Vec<String> = events
            .iter()
            .filter(|e| e["type"] == "compensation_succeeded")
            .filter_map(|e| e["step"].as_str().map(String::from))
            .collect();
        let comp_retries = events
            .iter()
            .filter(|e| e["type"] == "compensation_failed")
            .count();
        let fwd_retries = events
            .iter()
            .filter(|e| e["type"] == "retry_scheduled" && e["task"] == "action")
            .count();
        let rows = travel_services::trip_rows(&travel_db, &trip_id)?;
        let status = ex["status"].as_str().unwrap_or("?").to_string();
        println!("   status: {status}   compensations: {}   compensation retries: {comp_retries}   forward retries: {fwd_retries}", if compensated.is_empty() { "none".into() } else { compensated.join(" → ") });
        if rows.is_empty() {
            println!("   travel database: no rows left for {trip_id}");
        } else {
            println!("   travel database:");
            for r in &rows {
                println!("     {}  {:<40}  {}", r.pk, r.sk, r.transaction_status);
            }
        }
        let mut problems = Vec::new();
        if status != sc.status {
            problems.push(format!("expected status {}, got {status}", sc.status));
        }
        if compensated != sc.compensated {
            problems.push(format!(
                "expected compensations {:?}, got {:?}",
                sc.compensated, compensated
            ));
        }
        problems.extend(row_problems(sc, &rows));
        failures += report(&problems);
    }
    match &python {
        Ok(_) => {
            println!("The same saga as code: an AWS Lambda durable function (examples/durable/saga/index.py), hosted by this server.\n");
            failures += durable::run(&base, run).await?;
            ran += 4;
        }
        Err(why) if with_durable => {
            println!("Skipping the saga as a durable function: {why}\n");
        }
        Err(_) => {}
    }
    match &rust_saga {
        Ok(exe) => {
            println!(
                "The same saga written in Rust with sagaflow-saga ({}), hosted by this server.\n",
                exe.display()
            );
            let scenarios: Vec<&Scenario> = SCENARIOS
                .iter()
                .filter(|sc| {
                    args.only.is_empty()
                        || args.only.iter().any(|o| o == sc.run_type || o == "rust")
                })
                .collect();
            failures += rust::run(&base, run, &scenarios, &travel_db).await?;
            ran += scenarios.len();
        }
        Err(why) if with_rust => println!("Skipping the saga written in Rust: {why}\n"),
        Err(_) => {}
    }
    let _ = running.stop.send(());
    let _ = running.done.await;
    let _ = travel.stop().await;
    if failures == 0 {
        println!("All {ran} scenarios ended as the saga promises.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{failures} of {ran} scenarios did not end as expected.");
        Ok(ExitCode::FAILURE)
    }
}

/// What is wrong with the rows a scenario left in the travel database: all
/// four bookings confirmed once, or none after a rollback.
fn row_problems(sc: &Scenario, rows: &[travel_services::Row]) -> Vec<String> {
    let mut problems = Vec::new();
    if sc.rows_confirmed {
        let kinds: Vec<&str> = rows
            .iter()
            .map(|r| r.sk.split('#').next().unwrap_or(""))
            .collect();
        for k in ["HOTEL", "FLIGHT", "CAR", "PAYMENT"] {
            if kinds.iter().filter(|x| **x == k).count() != 1 {
                problems.push(format!("expected exactly one {k} row"));
            }
        }
        if rows.iter().any(|r| r.transaction_status != "confirmed") {
            problems.push("a row is not confirmed".into());
        }
    } else if !rows.is_empty() {
        problems.push(format!(
            "expected no rows after the rollback, found {}",
            rows.len()
        ));
    }
    problems
}

/// Prints a scenario's verdict; 1 if it did not end as expected.
fn report(problems: &[String]) -> usize {
    if problems.is_empty() {
        println!("   ✔ as expected\n");
        return 0;
    }
    for p in problems {
        println!("   ✘ {p}");
    }
    println!();
    1
}
