//! The travel services over real HTTP: each test starts them on `127.0.0.1:0`
//! with a fresh database file and talks to them with reqwest.

use std::net::SocketAddr;

use serde_json::{json, Value};
use travel_services::{Config, Effect, Row, RunningServices};

/// A running instance of the services on a temporary database.
struct Travel {
    services: RunningServices,
    client: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Travel {
    async fn start() -> Travel {
        Travel::start_with(|_| {}).await
    }

    async fn start_with(tune: impl FnOnce(&mut Config)) -> Travel {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut config = Config::new(dir.path().join("travel.db"));
        tune(&mut config);
        Travel::start_in(dir, config).await
    }

    async fn start_in(dir: tempfile::TempDir, config: Config) -> Travel {
        let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let services = travel_services::start(config, listen)
            .await
            .expect("the services start");
        Travel {
            services,
            client: reqwest::Client::new(),
            dir,
        }
    }

    /// Stops the services and starts them again on the same database.
    async fn restart(self) -> Travel {
        let Travel { services, dir, .. } = self;
        services.stop().await.expect("the services stop");
        let config = Config::new(dir.path().join("travel.db"));
        Travel::start_in(dir, config).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.services.base_url())
    }

    /// POSTs `body` to `route`, with an idempotency key if given.
    async fn post(&self, route: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
        let mut request = self.client.post(self.url(route)).json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        answer(request.send().await.expect("the call is answered")).await
    }

    async fn post_raw(&self, route: &str, body: &'static str) -> (u16, Value) {
        let request = self
            .client
            .post(self.url(route))
            .header("content-type", "application/json")
            .body(body);
        answer(request.send().await.expect("the call is answered")).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        answer(
            self.client
                .get(self.url(path))
                .send()
                .await
                .expect("answered"),
        )
        .await
    }

    /// The trip's rows as `(sk, transaction_status)`, read from the file.
    fn rows_of(&self, trip_id: &str) -> Vec<(String, String)> {
        travel_services::trip_rows(self.dir.path().join("travel.db"), trip_id)
            .expect("the rows can be read")
            .into_iter()
            .map(|row| (row.sk, row.transaction_status))
            .collect()
    }

    fn all_rows(&self) -> Vec<Row> {
        travel_services::rows(self.dir.path().join("travel.db")).expect("the rows can be read")
    }
}

async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json().await.expect("the body is JSON");
    (status, body)
}

/// The travel scenarios' trip input (the cdk-patterns sample's fields).
fn trip(trip_id: &str) -> Value {
    json!({
        "trip_id": trip_id,
        "depart": "London",
        "depart_at": "2021-07-10T06:00:00.000Z",
        "arrive": "Dublin",
        "arrive_at": "2021-07-12T08:00:00.000Z",
        "hotel": "holiday inn",
        "check_in": "2021-07-10T12:00:00.000Z",
        "check_out": "2021-07-12T14:00:00.000Z",
        "rental": "Volvo",
        "rental_from": "2021-07-10T00:00:00.000Z",
        "rental_to": "2021-07-12T00:00:00.000Z",
        "run_type": "success"
    })
}

fn trip_running(trip_id: &str, run_type: &str) -> Value {
    let mut input = trip(trip_id);
    input["run_type"] = json!(run_type);
    input
}

fn row(sk: &str, status: &str) -> (String, String) {
    (sk.to_owned(), status.to_owned())
}

#[tokio::test]
async fn a_reserved_then_confirmed_hotel_leaves_one_confirmed_row() {
    let travel = Travel::start().await;

    let (status, reserved) = travel.post("hotel/reserve", Some("r1"), &trip("t1")).await;
    assert_eq!(status, 200, "{reserved}");
    assert_eq!(reserved["status"], "pending");
    assert_eq!(travel.rows_of("t1"), [row("HOTEL#t1", "pending")]);

    let (status, confirmed) = travel.post("hotel/confirm", Some("c1"), &trip("t1")).await;
    assert_eq!(status, 200, "{confirmed}");
    assert_eq!(confirmed["booking_id"], reserved["booking_id"]);
    assert_eq!(confirmed["status"], "confirmed");
    assert_eq!(travel.rows_of("t1"), [row("HOTEL#t1", "confirmed")]);
}

#[tokio::test]
async fn a_whole_trip_books_every_participant_under_the_trip_id() {
    let travel = Travel::start().await;
    for route in [
        "hotel/reserve",
        "flight/reserve",
        "car/reserve",
        "payment/charge",
    ] {
        let (status, body) = travel.post(route, None, &trip("t1")).await;
        assert_eq!(status, 200, "{route}: {body}");
    }
    for route in ["hotel/confirm", "flight/confirm", "car/confirm"] {
        let (status, body) = travel.post(route, None, &trip("t1")).await;
        assert_eq!(status, 200, "{route}: {body}");
    }

    assert_eq!(
        travel.rows_of("t1"),
        [
            row("CAR#t1", "confirmed"),
            row("FLIGHT#t1", "confirmed"),
            row("HOTEL#t1", "confirmed"),
            row("PAYMENT#t1", "confirmed"),
        ]
    );
    let hotel = travel
        .all_rows()
        .into_iter()
        .find(|r| r.sk == "HOTEL#t1")
        .unwrap();
    assert_eq!(hotel.details["hotel"], "holiday inn");
    assert_eq!(hotel.details.get("depart"), None);
}

#[tokio::test]
async fn a_payment_charge_records_the_amount_and_a_refund_removes_it() {
    let travel = Travel::start().await;
    let mut input = trip("t1");
    input["amount"] = json!(99.5);

    let (status, charged) = travel.post("payment/charge", Some("p1"), &input).await;
    assert_eq!(status, 200, "{charged}");
    assert_eq!(charged["payment_id"], "t1");
    assert_eq!(charged["amount"], 99.5);
    assert_eq!(travel.rows_of("t1"), [row("PAYMENT#t1", "confirmed")]);

    let (status, refunded) = travel.post("payment/refund", Some("p2"), &input).await;
    assert_eq!(status, 200, "{refunded}");
    assert_eq!(refunded["status"], "refunded");
    assert_eq!(refunded["was_charged"], true);
    assert!(travel.rows_of("t1").is_empty());
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_first_response_without_executing_again() {
    let travel = Travel::start().await;
    let (_, first) = travel.post("flight/reserve", Some("k"), &trip("t1")).await;
    travel
        .post("flight/cancel", Some("cancel"), &trip("t1"))
        .await;
    assert!(travel.rows_of("t1").is_empty());

    // Were the reservation executed again, it would re-create the row.
    let (status, again) = travel.post("flight/reserve", Some("k"), &trip("t1")).await;

    assert_eq!(status, 200);
    assert_eq!(again, first);
    assert!(travel.rows_of("t1").is_empty());
    let (_, stats) = travel.get("stats").await;
    assert_eq!(stats["replays"]["flight/reserve"], 1);
}

#[tokio::test]
async fn each_key_is_executed_once_per_route_and_its_replays_and_injected_failures_are_not_effects()
{
    let travel = Travel::start_with(|c| c.cancel_failure_rate = 1.0).await;
    travel.post("hotel/reserve", Some("k"), &trip("t1")).await;
    travel.post("hotel/reserve", Some("k"), &trip("t1")).await;
    travel.post("flight/reserve", Some("k"), &trip("t1")).await;
    travel.post("hotel/reserve", None, &trip("t1")).await;
    let (status, _) = travel.post("hotel/cancel", Some("c"), &trip("t1")).await;
    assert_eq!(status, 503, "the cancel failed before doing anything");

    let effect = |route: &str, key: &str| Effect {
        route: route.into(),
        key: key.into(),
        count: 1,
    };
    let expected = vec![effect("flight/reserve", "k"), effect("hotel/reserve", "k")];
    assert_eq!(
        travel_services::effects(travel.dir.path().join("travel.db")).unwrap(),
        expected
    );
    let (status, served) = travel.get("effects").await;
    assert_eq!(status, 200);
    assert_eq!(served, json!(expected));
}

#[tokio::test]
async fn concurrent_calls_with_one_key_all_get_the_same_answer_and_one_row() {
    let travel = Travel::start().await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let request = travel
            .client
            .post(travel.url("car/reserve"))
            .header("Idempotency-Key", "same")
            .json(&trip("t1"));
        calls.spawn(async move { answer(request.send().await.expect("answered")).await });
    }

    let answers = calls.join_all().await;

    assert!(answers.iter().all(|answer| answer == &answers[0]));
    assert_eq!(answers[0].0, 200);
    assert_eq!(travel.rows_of("t1"), [row("CAR#t1", "pending")]);
}

#[tokio::test]
async fn the_same_key_on_another_route_is_another_call() {
    let travel = Travel::start().await;
    let (_, reserved) = travel.post("hotel/reserve", Some("k"), &trip("t1")).await;
    let (_, flight) = travel.post("flight/reserve", Some("k"), &trip("t1")).await;

    assert_eq!(
        (reserved["type"].as_str(), flight["type"].as_str()),
        (Some("hotel"), Some("flight"))
    );
    assert_eq!(
        travel.rows_of("t1"),
        [row("FLIGHT#t1", "pending"), row("HOTEL#t1", "pending")]
    );
}

#[tokio::test]
async fn calls_without_an_idempotency_key_still_work_and_a_retried_reserve_finds_its_row() {
    let travel = Travel::start().await;
    let (first_status, first) = travel.post("hotel/reserve", None, &trip("t1")).await;
    let (second_status, second) = travel.post("hotel/reserve", None, &trip("t1")).await;

    assert_eq!((first_status, second_status), (200, 200));
    assert_eq!(first, second);
    assert_eq!(travel.rows_of("t1"), [row("HOTEL#t1", "pending")]);
}

#[tokio::test]
async fn idempotent_answers_survive_a_restart() {
    let travel = Travel::start().await;
    let (_, first) = travel.post("hotel/reserve", Some("k"), &trip("t1")).await;
    travel.post("hotel/cancel", Some("c"), &trip("t1")).await;

    let travel = travel.restart().await;
    let (status, again) = travel.post("hotel/reserve", Some("k"), &trip("t1")).await;

    assert_eq!(status, 200);
    assert_eq!(again, first);
    assert!(travel.rows_of("t1").is_empty());
}

#[tokio::test]
async fn cancelling_a_reserved_booking_deletes_its_row() {
    let travel = Travel::start().await;
    travel.post("car/reserve", None, &trip("t1")).await;

    let (status, cancelled) = travel.post("car/cancel", None, &trip("t1")).await;

    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["was_reserved"], true);
    assert!(travel.rows_of("t1").is_empty());
}

#[tokio::test]
async fn cancelling_a_booking_that_never_arrived_succeeds_and_refuses_the_late_reserve() {
    let travel = Travel::start().await;

    let (status, cancelled) = travel.post("hotel/cancel", Some("c"), &trip("t1")).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["was_reserved"], false);

    let (status, refused) = travel.post("hotel/reserve", Some("r"), &trip("t1")).await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"], "BookingCancelled");
    assert!(refused["cause"].is_string());
    assert!(travel.rows_of("t1").is_empty());

    // The other participants of the trip are not affected.
    let (status, _) = travel.post("flight/reserve", None, &trip("t1")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_charge_after_its_own_refund_is_refused() {
    let travel = Travel::start().await;
    travel.post("payment/refund", None, &trip("t1")).await;

    let (status, refused) = travel.post("payment/charge", None, &trip("t1")).await;

    assert_eq!(status, 409);
    assert_eq!(refused["error"], "BookingCancelled");
    assert!(travel.rows_of("t1").is_empty());
}

#[tokio::test]
async fn confirming_a_booking_that_does_not_exist_is_booking_not_found() {
    let travel = Travel::start().await;

    let (status, body) = travel.post("flight/confirm", None, &trip("t1")).await;

    assert_eq!(status, 404);
    assert_eq!(body["error"], "BookingNotFound");
    assert!(travel.rows_of("t1").is_empty());
}

#[tokio::test]
async fn each_reservation_run_type_fails_its_own_participant_and_leaves_no_row() {
    let cases = [
        (
            "failHotelReservation",
            "hotel/reserve",
            "HotelReservationFailed",
        ),
        (
            "failFlightsReservation",
            "flight/reserve",
            "FlightReservationFailed",
        ),
        ("failCarReservation", "car/reserve", "CarReservationFailed"),
        ("failPayment", "payment/charge", "PaymentFailed"),
    ];
    let travel = Travel::start().await;
    for (run_type, failing_route, error) in cases {
        let trip_id = format!("trip-{run_type}");
        let input = trip_running(&trip_id, run_type);
        let key = |route: &str| format!("{trip_id} {route}");
        for (_, route, _) in cases {
            let (status, body) = travel.post(route, Some(&key(route)), &input).await;
            if route == failing_route {
                assert_eq!(status, 422, "{run_type} on {route}: {body}");
                assert_eq!(body["error"], error);
                assert!(body["cause"].as_str().unwrap().contains(run_type));
            } else {
                assert_eq!(status, 200, "{run_type} on {route}: {body}");
            }
        }
        let prefix = failing_route.split('/').next().unwrap().to_uppercase();
        assert!(
            travel
                .rows_of(&trip_id)
                .iter()
                .all(|(sk, _)| !sk.starts_with(&prefix)),
            "{run_type} left a {prefix} row"
        );

        // The failure was not stored under the key: a retry can succeed.
        let (status, body) = travel
            .post(failing_route, Some(failing_route), &trip(&trip_id))
            .await;
        assert_eq!(status, 200, "retry of {failing_route}: {body}");
    }
    let (_, stats) = travel.get("stats").await;
    assert_eq!(stats["injected_failures"]["payment/charge"], 1);
}

#[tokio::test]
async fn confirmation_failures_succeed_after_the_configured_number_of_tries() {
    let travel = Travel::start_with(|config| config.confirm_failures = 3).await;
    for (run_type, service, error) in [
        ("failHotelConfirmation", "hotel", "HotelConfirmationFailed"),
        (
            "failFlightsConfirmation",
            "flight",
            "FlightConfirmationFailed",
        ),
    ] {
        let input = trip_running("t1", run_type);
        let (status, _) = travel
            .post(&format!("{service}/reserve"), None, &input)
            .await;
        assert_eq!(status, 200);

        let confirm = format!("{service}/confirm");
        for attempt in 1..=3 {
            let (status, body) = travel.post(&confirm, Some("one-key"), &input).await;
            assert_eq!(status, 503, "{run_type} attempt {attempt}: {body}");
            assert_eq!(body["error"], error);
        }
        let (status, body) = travel.post(&confirm, Some("one-key"), &input).await;
        assert_eq!(status, 200, "{run_type} after the failures: {body}");
        assert_eq!(body["status"], "confirmed");
    }
    assert_eq!(
        travel.rows_of("t1"),
        [row("FLIGHT#t1", "confirmed"), row("HOTEL#t1", "confirmed")]
    );
}

#[tokio::test]
async fn the_confirmation_failure_count_is_kept_in_the_database() {
    let travel = Travel::start().await; // 2 failures by default
    let input = trip_running("t1", "failHotelConfirmation");
    travel.post("hotel/reserve", None, &input).await;
    let (status, _) = travel.post("hotel/confirm", None, &input).await;
    assert_eq!(status, 503);

    let travel = travel.restart().await;
    let (second, _) = travel.post("hotel/confirm", None, &input).await;
    let (third, _) = travel.post("hotel/confirm", None, &input).await;

    assert_eq!((second, third), (503, 200));
}

#[tokio::test]
async fn zero_confirmation_failures_never_fail_a_confirmation() {
    let travel = Travel::start_with(|config| config.confirm_failures = 0).await;
    let input = trip_running("t1", "failFlightsConfirmation");
    travel.post("flight/reserve", None, &input).await;

    let (status, _) = travel.post("flight/confirm", None, &input).await;

    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_cancel_failure_rate_of_one_always_fails_cancels_and_refunds() {
    let travel = Travel::start_with(|config| config.cancel_failure_rate = 1.0).await;
    travel.post("hotel/reserve", None, &trip("t1")).await;
    for route in [
        "hotel/cancel",
        "flight/cancel",
        "car/cancel",
        "payment/refund",
    ] {
        for _ in 0..5 {
            let (status, body) = travel.post(route, Some("k"), &trip("t1")).await;
            assert_eq!(status, 503, "{route}: {body}");
            assert_eq!(
                body,
                json!({"error": "ServiceUnavailable", "cause": "random failure"})
            );
        }
    }
    // Nothing was done: the hotel is still there, and no tombstone was left.
    assert_eq!(travel.rows_of("t1"), [row("HOTEL#t1", "pending")]);
    let (status, _) = travel.post("flight/reserve", None, &trip("t1")).await;
    assert_eq!(status, 200);
    let (_, stats) = travel.get("stats").await;
    assert_eq!(stats["injected_failures"]["hotel/cancel"], 5);
}

#[tokio::test]
async fn a_cancel_failure_rate_of_zero_never_fails() {
    let travel = Travel::start_with(|config| config.cancel_failure_rate = 0.0).await;
    for n in 0..40 {
        let (status, body) = travel
            .post("car/cancel", None, &trip(&format!("t{n}")))
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test]
async fn a_cancel_failure_rate_outside_zero_to_one_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().join("travel.db"));
    config.cancel_failure_rate = 1.5;

    let started = travel_services::start(config, "127.0.0.1:0".parse().unwrap()).await;

    assert!(started.is_err());
}

#[tokio::test]
async fn a_malformed_body_is_a_bad_request_with_an_error_and_a_cause() {
    let travel = Travel::start().await;
    for body in [
        "{not json",
        "",
        "[1, 2]",
        r#"{"hotel": "inn"}"#,
        r#"{"trip_id": 3}"#,
    ] {
        let (status, answer) = travel.post_raw("hotel/reserve", body).await;
        assert_eq!(status, 400, "{body:?}: {answer}");
        assert_eq!(answer["error"], "BadRequest");
        assert!(answer["cause"].is_string(), "{answer}");
    }
    assert!(travel.all_rows().is_empty());
}

#[tokio::test]
async fn the_trips_routes_list_the_rows() {
    let travel = Travel::start().await;
    travel.post("hotel/reserve", None, &trip("t1")).await;
    travel.post("flight/reserve", None, &trip("t2")).await;

    let (status, one) = travel.get("trips/t1").await;
    assert_eq!(status, 200);
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(one[0]["pk"], "t1");
    assert_eq!(one[0]["sk"], "HOTEL#t1");
    assert_eq!(one[0]["transaction_status"], "pending");

    let (_, all) = travel.get("trips").await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    let (_, none) = travel.get("trips/unknown").await;
    assert_eq!(none, json!([]));
}

#[tokio::test]
async fn health_stats_and_unknown_routes_answer_in_json() {
    let travel = Travel::start().await;
    travel.post("hotel/reserve", None, &trip("t1")).await;

    assert_eq!(travel.get("healthz").await.0, 200);
    let (_, stats) = travel.get("stats").await;
    assert_eq!(stats["calls"]["hotel/reserve"], 1);

    let (status, body) = travel.get("nowhere").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "NotFound");
    let (status, body) = travel.get("hotel/reserve").await;
    assert_eq!(status, 405);
    assert_eq!(body["error"], "MethodNotAllowed");
}

#[tokio::test]
async fn serve_runs_on_a_given_listener_until_its_shutdown_future_completes() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = Config::new(dir.path().join("travel.db"));
    let server = tokio::spawn(travel_services::serve(config, listener, async {
        let _ = stopped.await;
    }));

    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);

    stop.send(()).unwrap();
    server.await.unwrap().expect("serve ends cleanly");
}
