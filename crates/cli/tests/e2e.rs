//! End to end: `sagaflow server` and `travel-services` as real processes,
//! the travel saga deployed through the API, and every travel scenario
//! checked against both the orchestrator's answer and the travel database.
//!
//! Each scenario runs on the embedded SQLite database and, when
//! `DATABASE_URL` is set (CI sets it), on PostgreSQL in a schema of its own
//! (`…_on_postgres`), and as a node of a cluster. Two cluster nodes also show
//! that a callback or a cancel sent to the node that does not own the
//! execution is forwarded to the one that does.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    database_url, expected_status, start_node, start_server_on, trip_input, trip_problems, Api,
    Backend, PgSchema, Travel, RUN_TYPES,
};
use serde_json::{json, Value};

/// The steps whose compensation must have run for a run type, in order.
fn expected_compensations(run_type: &str) -> &'static [&'static str] {
    match run_type {
        "failFlightsReservation" => &["reserve_hotel"],
        "failCarReservation" => &["reserve_flight", "reserve_hotel"],
        "failPayment" => &["reserve_car", "reserve_flight", "reserve_hotel"],
        _ => &[],
    }
}

fn compensated_steps(history: &Value) -> Vec<String> {
    history["events"]
        .as_array()
        .expect("a history has events")
        .iter()
        .filter(|e| e["type"] == "compensation_succeeded")
        .map(|e| e["step"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Every run type of the travel saga ends as it must, the travel database
/// agrees, and a server started again on the same database (after a
/// SIGTERM, which exits 0) knows every execution and how it ended.
fn every_travel_scenario(backend: &Backend, dir: &Path, extra: &[&str]) {
    let logs = dir.join("logs");
    // Cancellations fail 40% of the time, as in the cdk-patterns sample: compensations are retried.
    let travel = Travel::start(dir, 0.4, 2);
    let server = start_server_on(backend, &logs, travel.url(), extra);
    let api = Api::new(&server.url);

    let deployed = api.deploy_travel_saga();
    assert_eq!(deployed["name"], "trip-booking");
    assert_eq!(deployed["created"], true);

    let mut started = Vec::new();
    for (n, (run_type, status)) in RUN_TYPES.iter().enumerate() {
        let trip_id = format!("e2e-{n}-{run_type}");
        let ex = api.start_trip(&trip_id, run_type, Some(60));
        assert_eq!(ex["id"], trip_id.as_str());
        assert_eq!(ex["status"], *status, "{run_type} ends {status}: {ex}");

        let history = api.get(&format!("/v1/executions/{trip_id}/history"));
        assert_eq!(
            compensated_steps(&history),
            expected_compensations(run_type),
            "{run_type} compensates exactly what was done, in reverse order"
        );

        let problems = trip_problems(status, &travel.rows(&trip_id));
        assert!(
            problems.is_empty(),
            "the travel database agrees that {run_type} {status}: {problems:?}"
        );
        started.push((trip_id, *status));
    }

    // Nothing else was booked: every row belongs to a trip that succeeded.
    let succeeded: Vec<&str> = started
        .iter()
        .filter(|(_, s)| *s == "succeeded")
        .map(|(t, _)| t.as_str())
        .collect();
    let booked: Vec<String> = travel.all_rows().into_keys().collect();
    assert_eq!(booked, succeeded, "only the succeeded trips hold bookings");

    // SIGTERM is a graceful shutdown.
    let status = server.sigterm();
    assert!(
        status.success(),
        "the server exits 0 on SIGTERM, not {status}"
    );

    // A new server on the same database knows every execution and how it ended.
    let server = start_server_on(backend, &logs, travel.url(), extra);
    let api = Api::new(&server.url);
    let listed = api.get("/v1/executions?limit=100");
    let items = listed["items"].as_array().expect("a list has items");
    assert_eq!(
        items.len(),
        started.len(),
        "the restarted server lists every execution: {listed}"
    );
    for (trip_id, status) in &started {
        let item = items
            .iter()
            .find(|i| i["id"] == trip_id.as_str())
            .unwrap_or_else(|| panic!("{trip_id} is listed after the restart"));
        assert_eq!(
            item["status"], *status,
            "{trip_id} is still {status} after the restart"
        );
    }
    for (trip_id, _) in &started {
        let ex = api.get(&format!("/v1/executions/{trip_id}"));
        let run_type = ex["input"]["run_type"].as_str().unwrap();
        assert_eq!(ex["status"], expected_status(run_type));
    }
}

/// Executions in flight when the server gets SIGTERM: it exits 0, and a
/// server started again on the same database finishes every one of them.
fn sigterm_in_the_middle_of_work(backend: &Backend, dir: &Path, extra: &[&str]) {
    let logs = dir.join("logs");
    let travel = Travel::start(dir, 0.4, 2);
    let server = start_server_on(backend, &logs, travel.url(), extra);
    let api = Api::new(&server.url);
    api.deploy_travel_saga();

    let trips: Vec<(String, &str)> = RUN_TYPES
        .iter()
        .cycle()
        .take(14)
        .enumerate()
        .map(|(n, (run_type, _))| (format!("term-{n}"), *run_type))
        .collect();
    for (trip_id, run_type) in &trips {
        api.start_trip(trip_id, run_type, None);
    }
    let status = server.sigterm();
    assert!(
        status.success(),
        "the server exits 0 on SIGTERM while executions are in flight, not {status}"
    );

    let server = start_server_on(backend, &logs, travel.url(), extra);
    let api = Api::new(&server.url);
    for (trip_id, run_type) in &trips {
        let ex = api.get(&format!("/v1/executions/{trip_id}?wait=60"));
        let status = ex["status"].as_str().unwrap();
        assert_eq!(
            status,
            expected_status(run_type),
            "{trip_id} ({run_type}) ends as its run type says: {ex}"
        );
        let problems = trip_problems(status, &travel.rows(trip_id));
        assert!(
            problems.is_empty(),
            "{trip_id} ({run_type}, {status}): {problems:?}"
        );
    }
}

/// A single node of a cluster: started again after a SIGTERM it is a new
/// node (a fresh id), which takes over what the old one left once its
/// leases run out.
const CLUSTER_NODE: &[&str] = &["--cluster", "--lease-ttl", "1s"];

#[test]
fn every_travel_scenario_ends_as_the_saga_promises_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::Sqlite(dir.path().join("sagaflow"));
    every_travel_scenario(&backend, dir.path(), &[]);
}

#[test]
fn every_travel_scenario_ends_as_the_saga_promises_and_survives_a_restart_on_postgres() {
    let Some(url) = database_url() else { return };
    let schema = PgSchema::create(&url);
    let dir = tempfile::tempdir().unwrap();
    every_travel_scenario(&Backend::Postgres(schema.server_url()), dir.path(), &[]);
}

#[test]
fn every_travel_scenario_ends_as_the_saga_promises_and_survives_a_restart_on_a_cluster_node() {
    let Some(url) = database_url() else { return };
    let schema = PgSchema::create(&url);
    let dir = tempfile::tempdir().unwrap();
    every_travel_scenario(
        &Backend::Postgres(schema.server_url()),
        dir.path(),
        CLUSTER_NODE,
    );
}

#[test]
fn a_sigterm_in_the_middle_of_work_exits_0_and_a_restarted_server_finishes_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Backend::Sqlite(dir.path().join("sagaflow"));
    sigterm_in_the_middle_of_work(&backend, dir.path(), &[]);
}

#[test]
fn a_sigterm_in_the_middle_of_work_exits_0_and_a_restarted_server_finishes_the_work_on_postgres() {
    let Some(url) = database_url() else { return };
    let schema = PgSchema::create(&url);
    let dir = tempfile::tempdir().unwrap();
    sigterm_in_the_middle_of_work(&Backend::Postgres(schema.server_url()), dir.path(), &[]);
}

#[test]
fn a_sigterm_in_the_middle_of_work_exits_0_and_a_new_cluster_node_takes_the_work_over() {
    let Some(url) = database_url() else { return };
    let schema = PgSchema::create(&url);
    let dir = tempfile::tempdir().unwrap();
    sigterm_in_the_middle_of_work(
        &Backend::Postgres(schema.server_url()),
        dir.path(),
        CLUSTER_NODE,
    );
}

/// The travel saga with an approval between the hotel and the payment: a
/// callback step (acknowledged by the car reservation) whose heartbeat keeps
/// the execution in its node's memory, so the node keeps its lease.
const APPROVAL_SAGA: &str = r#"
name: trip-approval
steps:
  - name: reserve_hotel
    action: { http: { url: "${TRAVEL_URL}/hotel/reserve" } }
    compensation: { http: { url: "${TRAVEL_URL}/hotel/cancel" } }
  - name: approve
    callback: true
    heartbeat: 60s
    timeout: 120s
    action: { http: { url: "${TRAVEL_URL}/car/reserve" } }
    compensation: { http: { url: "${TRAVEL_URL}/car/cancel" } }
  - name: take_payment
    pivot: true
    action: { http: { url: "${TRAVEL_URL}/payment/charge" } }
"#;

/// The same without a heartbeat: waiting for the approval, the execution
/// leaves memory and its node gives up the lease.
fn parked_saga() -> String {
    APPROVAL_SAGA
        .replace("name: trip-approval", "name: trip-approval-parked")
        .replace("    heartbeat: 60s\n", "")
}

/// Waits until `id` waits for its approval; returns the approval's task
/// token, made from the nonce its history recorded.
fn approval_token(api: &Api, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let history = api.get(&format!("/v1/executions/{id}/history"));
        let events = history["events"].as_array().cloned().unwrap_or_default();
        if events
            .iter()
            .any(|e| e["type"] == "task_parked" && e["step"] == "approve")
        {
            let scheduled = events
                .iter()
                .rev()
                .find(|e| e["type"] == "step_scheduled" && e["step"] == "approve")
                .expect("the approval was scheduled");
            return sagaflow_core::task_token(
                id,
                "approve",
                sagaflow_core::TaskKind::Action,
                scheduled["attempt"].as_u64().unwrap() as u32,
                scheduled["nonce"]
                    .as_str()
                    .expect("a callback step has a nonce"),
            );
        }
        assert!(
            Instant::now() < deadline,
            "{id} waits for its approval within 30s: {history}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (`?wait=`) on every node at once for `id` to end; returns the
/// status each node saw.
fn statuses_seen_by(urls: &[&str], id: &str) -> Vec<String> {
    let waiters: Vec<_> = urls
        .iter()
        .map(|url| {
            let (url, id) = (url.to_string(), id.to_string());
            std::thread::spawn(move || {
                let ex = Api::new(&url).get(&format!("/v1/executions/{id}?wait=30"));
                ex["status"].as_str().unwrap_or_default().to_string()
            })
        })
        .collect();
    waiters.into_iter().map(|w| w.join().unwrap()).collect()
}

/// The nodes that called `route` for execution `id`, by the travel
/// services' log of cluster calls.
fn callers(travel: &Travel, id: &str, route: &str) -> Vec<String> {
    travel_services::calls(&travel.db)
        .expect("the travel database is readable")
        .into_iter()
        .filter(|c| c.execution_id.as_deref() == Some(id) && c.route == route)
        .map(|c| c.node)
        .collect()
}

#[test]
fn two_cluster_nodes_forward_callbacks_and_cancels_to_the_owner_and_both_see_the_end() {
    let Some(url) = database_url() else { return };
    let schema = PgSchema::create(&url);
    let db_url = schema.server_url();
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let travel = Travel::start(dir.path(), 0.0, 0);
    let a = start_node(&db_url, &logs, travel.url(), "node-a", "2s");
    let b = start_node(&db_url, &logs, travel.url(), "node-b", "2s");
    let (api_a, api_b) = (Api::new(&a.url), Api::new(&b.url));
    api_a.deploy("trip-approval", APPROVAL_SAGA);
    api_a.deploy("trip-approval-parked", &parked_saga());
    let start = |definition: &str, id: &str| {
        let body = json!({
            "definition": definition,
            "input": trip_input(id, "success"),
            "execution_id": id,
        });
        api_a.call(reqwest::Method::POST, "/v1/executions", Some(body));
    };
    let explain = || {
        format!(
            "log of node a:\n{}\nlog of node b:\n{}",
            a.log_tail(),
            b.log_tail()
        )
    };

    // Approved through node b while node a holds the execution: node b
    // forwards the callback, node a records it and goes on.
    start("trip-approval", "approved");
    let token = approval_token(&api_a, "approved");
    assert_eq!(
        schema.lease_owner("approved").as_deref(),
        Some("node-a"),
        "the starting node holds a resident execution"
    );
    let answer = api_b
        .try_call(
            reqwest::Method::POST,
            &format!("/v1/callbacks/{token}/success"),
            Some(json!({"approved_by": "test"})),
        )
        .expect("node b answers");
    assert_eq!(
        answer.status,
        200,
        "the callback sent to node b succeeds: {}\n{}",
        answer.body,
        explain()
    );
    assert_eq!(
        statuses_seen_by(&[&a.url, &b.url], "approved"),
        ["succeeded", "succeeded"],
        "both nodes see the end\n{}",
        explain()
    );
    assert_eq!(
        callers(&travel, "approved", "payment/charge"),
        ["node-a"],
        "the owner took the payment after the forwarded callback"
    );
    let booked: Vec<String> = travel
        .rows("approved")
        .iter()
        .map(|r| r.sk.split('#').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(booked, ["CAR", "HOTEL", "PAYMENT"], "each booked once");

    // Cancelled through node b: forwarded too, node a compensates.
    start("trip-approval", "cancelled");
    approval_token(&api_a, "cancelled");
    let answer = api_b
        .try_call(
            reqwest::Method::POST,
            "/v1/executions/cancelled/cancel",
            Some(json!({"reason": "the customer changed their mind"})),
        )
        .expect("node b answers");
    assert_eq!(
        answer.status,
        200,
        "the cancel sent to node b succeeds: {}\n{}",
        answer.body,
        explain()
    );
    assert_eq!(
        statuses_seen_by(&[&b.url, &a.url], "cancelled"),
        ["cancelled", "cancelled"],
        "both nodes see the end\n{}",
        explain()
    );
    for route in ["car/cancel", "hotel/cancel"] {
        assert_eq!(
            callers(&travel, "cancelled", route),
            ["node-a"],
            "the owner ran the compensation {route}"
        );
    }
    assert!(
        travel.rows("cancelled").is_empty(),
        "nothing is left booked"
    );

    // Parked: node a gave the lease up, so node b takes the callback itself.
    start("trip-approval-parked", "parked");
    let token = approval_token(&api_a, "parked");
    let deadline = Instant::now() + Duration::from_secs(10);
    while schema.lease_owner("parked").is_some() {
        assert!(
            Instant::now() < deadline,
            "a parked execution's lease is released: {:?}",
            schema.lease_owner("parked")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let answer = api_b
        .try_call(
            reqwest::Method::POST,
            &format!("/v1/callbacks/{token}/success"),
            Some(json!({})),
        )
        .expect("node b answers");
    assert_eq!(answer.status, 200, "{}\n{}", answer.body, explain());
    assert_eq!(
        statuses_seen_by(&[&a.url, &b.url], "parked"),
        ["succeeded", "succeeded"],
        "both nodes see the end\n{}",
        explain()
    );
    assert_eq!(
        callers(&travel, "parked", "payment/charge"),
        ["node-b"],
        "the node that took the callback went on"
    );
    assert_eq!(
        callers(&travel, "parked", "hotel/reserve"),
        ["node-a"],
        "the node that started it made the first call"
    );

    for node in [a, b] {
        let status = node.sigterm();
        assert!(status.success(), "a node exits 0 on SIGTERM, not {status}");
    }
}

/// An execution that no node has ever leased — left running by a server
/// that ran alone on the schema before the cluster (its executions have no
/// owner), or by a node that died between creating an execution and claiming
/// it — must still be resumed by the cluster's nodes.
#[test]
fn an_execution_no_node_ever_leased_is_resumed_by_a_cluster_node() {
    let Some(url) = database_url() else { return };
    let schema = PgSchema::create(&url);
    let db = Backend::Postgres(schema.server_url());
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let travel = Travel::start(dir.path(), 0.0, 0);
    // A participant that takes calls and never answers.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hole = format!("http://{}", black_hole.local_addr().unwrap());
    let saga = r#"
name: hold
steps:
  - name: reserve_hotel
    action: { http: { url: "${TRAVEL_URL}/hotel/reserve" } }
    timeout: 60s
"#;
    // The server alone on the schema (no lease) starts it; its call hangs.
    let single = start_server_on(&db, &logs, &hole, &[]);
    let api = Api::new(&single.url);
    api.deploy("hold", saga);
    let body = json!({"definition": "hold", "input": trip_input("unleased", "success"), "execution_id": "unleased"});
    api.call(reqwest::Method::POST, "/v1/executions", Some(body));
    assert_eq!(schema.lease_owner("unleased"), None);
    single.sigkill();

    // A cluster node on the same schema, whose participant answers.
    let node = start_node(&schema.server_url(), &logs, travel.url(), "node-a", "1s");
    let ex = Api::new(&node.url).get("/v1/executions/unleased?wait=30");
    assert_eq!(
        ex["status"],
        "succeeded",
        "the cluster resumed it: {ex}\nlog of the node:\n{}",
        node.log_tail()
    );
}
