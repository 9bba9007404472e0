//! End to end: `sagaflow server` and `travel-services` as real processes,
//! the travel saga deployed through the API, and every scenario of the seeds
//! checked against both the orchestrator's answer and the travel database.

mod common;

use common::{expected_status, start_server, trip_problems, Api, Travel, RUN_TYPES};
use serde_json::Value;

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

#[test]
fn every_travel_scenario_ends_as_the_saga_promises_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("sagaflow");
    // Cancellations fail 40% of the time, as in the seed: compensations are retried.
    let travel = Travel::start(dir.path(), 0.4, 2);
    let server = start_server(&data_dir, travel.url(), &[]);
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

    // A new server on the same data directory knows every execution and how it ended.
    let server = start_server(&data_dir, travel.url(), &[]);
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

#[test]
fn a_sigterm_in_the_middle_of_work_exits_0_and_a_restarted_server_finishes_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("sagaflow");
    let travel = Travel::start(dir.path(), 0.4, 2);
    let server = start_server(&data_dir, travel.url(), &[]);
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

    let server = start_server(&data_dir, travel.url(), &[]);
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
