//! The samples' Lambda functions under `POST /lambda/{function}`, over real
//! HTTP: what each one books, when it fails, its idempotency, and the
//! reproducible random failures of the compensators.

use std::net::SocketAddr;

use serde_json::{json, Value};
use travel_services::{Config, RunningServices};

/// The services on a temporary database.
struct Travel {
    services: RunningServices,
    client: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Travel {
    /// The services with the compensators never failing at random.
    async fn start() -> Travel {
        Travel::start_with(|config| config.lambda_cancel_failure_rate = Some(0.0)).await
    }

    async fn start_with(tune: impl FnOnce(&mut Config)) -> Travel {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut config = Config::new(dir.path().join("travel.db"));
        tune(&mut config);
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

    /// Invokes a function with the input, an idempotency key and an attempt.
    async fn invoke(
        &self,
        function: &str,
        key: Option<&str>,
        attempt: u32,
        input: &Value,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}/lambda/{function}", self.services.base_url()))
            .header("Sagaflow-Attempt", attempt.to_string())
            .json(input);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        answer(request.send().await.expect("the call is answered")).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let url = format!("{}/{path}", self.services.base_url());
        answer(self.client.get(url).send().await.expect("answered")).await
    }

    /// The trip's rows as `(sk, transaction_status)`.
    fn rows_of(&self, trip_id: &str) -> Vec<(String, String)> {
        travel_services::trip_rows(self.dir.path().join("travel.db"), trip_id)
            .expect("the rows can be read")
            .into_iter()
            .map(|row| (row.sk, row.transaction_status))
            .collect()
    }
}

async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json().await.expect("the body is JSON");
    (status, body)
}

/// humank's input (`trip_id` replaced).
fn humank_trip(trip_id: &str) -> Value {
    json!({
        "trip_id": trip_id,
        "depart": "london",
        "depart_at": "2019-03-01",
        "arrive": "dublin",
        "arrive_at": "2019-02-26",
        "hotel": "holiday inn",
        "check_in": "2019-02-26",
        "check_out": "2019-03-01",
        "rental": "volvo",
        "rental_from": "2019-02-26",
        "rental_to": "2019-03-01"
    })
}

fn cdk_trip(trip_id: &str, run_type: &str) -> Value {
    let mut input = humank_trip(trip_id);
    input["run_type"] = json!(run_type);
    input
}

fn row(sk: &str, status: &str) -> (String, String) {
    (sk.to_owned(), status.to_owned())
}

#[tokio::test]
async fn humanks_book_functions_record_the_trip_and_answer_like_the_sample() {
    let travel = Travel::start().await;
    let trip = humank_trip("h1");
    for function in [
        "lambda-saga-dev-book-hotel",
        "lambda-saga-dev-book-flight",
        "lambda-saga-dev-book-rental",
    ] {
        let (status, body) = travel.invoke(function, Some(function), 1, &trip).await;
        assert_eq!(status, 200, "{function}: {body}");
        assert_eq!(body, json!({"status": "ok", "booking_id": "h1"}));
    }
    assert_eq!(
        travel.rows_of("h1"),
        [
            row("CAR#h1", "pending"),
            row("FLIGHT#h1", "pending"),
            row("HOTEL#h1", "pending")
        ]
    );
}

#[tokio::test]
async fn break_at_rental_fails_only_the_rental_and_books_nothing() {
    let travel = Travel::start().await;
    let mut trip = humank_trip("h2");
    trip["breakAtRental"] = json!(true);

    let (status, body) = travel
        .invoke("lambda-saga-dev-book-rental", Some("k"), 1, &trip)
        .await;

    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "CarReservationFailed");
    assert!(body["cause"].as_str().unwrap().contains("breakAtRental"));
    assert!(travel.rows_of("h2").is_empty());
    let (status, _) = travel
        .invoke("lambda-saga-dev-book-hotel", Some("k"), 1, &trip)
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn humanks_cancel_functions_delete_what_was_booked() {
    let travel = Travel::start().await;
    let trip = humank_trip("h3");
    travel
        .invoke("lambda-saga-dev-book-hotel", Some("b"), 1, &trip)
        .await;
    travel
        .invoke("lambda-saga-dev-book-flight", Some("b"), 1, &trip)
        .await;
    for function in [
        "lambda-saga-dev-cancel-rental",
        "lambda-saga-dev-cancel-flight",
        "lambda-saga-dev-cancel-hotel",
    ] {
        let (status, body) = travel.invoke(function, Some("c"), 1, &trip).await;
        assert_eq!((status, body), (200, json!({"status": "ok"})), "{function}");
    }
    assert!(travel.rows_of("h3").is_empty());
}

#[tokio::test]
async fn the_single_table_functions_take_a_whole_trip_to_confirmed() {
    let travel = Travel::start().await;
    let trip = cdk_trip("c1", "success");
    let steps = [
        (
            "reserveHotelLambdaHandler020AE24A",
            json!({"status": "ok", "booking_id": "c1"}),
        ),
        (
            "reserveFlightLambdaHandler3C75473D",
            json!({"status": "ok", "booking_id": "c1"}),
        ),
        (
            "takePaymentLambdaHandlerB96529D4",
            json!({"status": "ok", "payment_id": "c1"}),
        ),
        ("confirmHotelLambdaHandler882ACF2D", json!({"status": "ok"})),
        (
            "confirmFlightLambdaHandler96C3663F",
            json!({"status": "ok"}),
        ),
    ];
    for (function, expected) in steps {
        let (status, body) = travel.invoke(function, Some("k"), 1, &trip).await;
        assert_eq!((status, body), (200, expected), "{function}");
    }
    assert_eq!(
        travel.rows_of("c1"),
        [
            row("FLIGHT#c1", "confirmed"),
            row("HOTEL#c1", "confirmed"),
            row("PAYMENT#c1", "confirmed")
        ]
    );
}

/// The single-table functions in the order of the saga, then the
/// multi-table ones.
const SINGLE_TABLE: [&str; 5] = [
    "reserveHotelLambdaHandler020AE24A",
    "reserveFlightLambdaHandler3C75473D",
    "takePaymentLambdaHandlerB96529D4",
    "confirmHotelLambdaHandler882ACF2D",
    "confirmFlightLambdaHandler96C3663F",
];
const MULTI_TABLE: [&str; 3] = [
    "bookHotelLambdaHandler",
    "bookFlightLambdaHandler",
    "bookRentalLambdaHandler",
];

#[tokio::test]
async fn each_run_type_fails_its_own_function_with_a_named_error() {
    let travel = Travel::start().await;
    let cases = [
        (
            &SINGLE_TABLE[..],
            "failHotelReservation",
            0,
            "HotelReservationFailed",
        ),
        (
            &SINGLE_TABLE[..],
            "failFlightsReservation",
            1,
            "FlightReservationFailed",
        ),
        (&SINGLE_TABLE[..], "failPayment", 2, "PaymentFailed"),
        (
            &SINGLE_TABLE[..],
            "failHotelConfirmation",
            3,
            "HotelConfirmationFailed",
        ),
        (
            &SINGLE_TABLE[..],
            "failFlightsConfirmation",
            4,
            "FlightConfirmationFailed",
        ),
        (
            &MULTI_TABLE[..],
            "failHotelReservation",
            0,
            "HotelReservationFailed",
        ),
        (
            &MULTI_TABLE[..],
            "failFlightsReservation",
            1,
            "FlightReservationFailed",
        ),
        (
            &MULTI_TABLE[..],
            "failRentalReservation",
            2,
            "CarReservationFailed",
        ),
        (
            &MULTI_TABLE[..],
            "failCarReservation",
            2,
            "CarReservationFailed",
        ),
    ];
    for (n, (saga, run_type, failing, error)) in cases.into_iter().enumerate() {
        let trip_id = format!("r{n}");
        let trip = cdk_trip(&trip_id, run_type);
        // What comes before the failing function succeeds.
        for before in &saga[..failing] {
            let (status, body) = travel.invoke(before, Some(&trip_id), 1, &trip).await;
            assert_eq!(status, 200, "{run_type}: {before} succeeds: {body}");
        }
        // A retry fails again: the switch holds for every attempt.
        let function = saga[failing];
        for attempt in 1..=2 {
            let (status, body) = travel
                .invoke(function, Some(&trip_id), attempt, &trip)
                .await;
            assert_eq!(status, 422, "{run_type} fails {function}: {body}");
            assert_eq!(body["error"], error, "{run_type}");
            assert!(body["cause"].as_str().unwrap().contains(run_type), "{body}");
        }
    }
    let (_, stats) = travel.get("stats").await;
    assert_eq!(
        stats["injected_failures"]["lambda/takePaymentLambdaHandlerB96529D4"],
        2
    );
}

#[tokio::test]
async fn a_repeated_key_gets_the_first_answer_and_is_executed_once() {
    let travel = Travel::start().await;
    let trip = cdk_trip("i1", "success");
    let hotel = "reserveHotelLambdaHandler020AE24A";
    let first = travel
        .invoke(hotel, Some("exec:ReserveHotel:action"), 1, &trip)
        .await;
    let again = travel
        .invoke(hotel, Some("exec:ReserveHotel:action"), 2, &trip)
        .await;
    assert_eq!(first, again);

    let effects = travel_services::effects(travel.dir.path().join("travel.db")).unwrap();
    let counted: Vec<_> = effects
        .iter()
        .map(|e| (e.route.as_str(), e.key.as_str(), e.count))
        .collect();
    assert_eq!(
        counted,
        [(
            "lambda/reserveHotelLambdaHandler020AE24A",
            "exec:ReserveHotel:action",
            1
        )]
    );
    let (_, stats) = travel.get("stats").await;
    assert_eq!(
        stats["replays"]["lambda/reserveHotelLambdaHandler020AE24A"],
        1
    );
}

#[tokio::test]
async fn a_reservation_after_its_own_cancellation_is_refused() {
    let travel = Travel::start().await;
    let trip = cdk_trip("late", "success");
    let (status, _) = travel
        .invoke("cancelHotelLambdaHandler09F13EF6", Some("c"), 1, &trip)
        .await;
    assert_eq!(status, 200);

    let (status, body) = travel
        .invoke("reserveHotelLambdaHandler020AE24A", Some("r"), 1, &trip)
        .await;

    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "BookingCancelled");
    assert!(travel.rows_of("late").is_empty());
}

#[tokio::test]
async fn confirming_a_booking_that_was_never_made_is_booking_not_found() {
    let travel = Travel::start().await;
    let (status, body) = travel
        .invoke(
            "confirmHotelLambdaHandler882ACF2D",
            Some("k"),
            1,
            &cdk_trip("none", "success"),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "BookingNotFound");
}

#[tokio::test]
async fn a_compensator_failing_at_random_does_nothing_and_a_later_attempt_succeeds() {
    let travel = Travel::start_with(|config| config.lambda_cancel_failure_rate = Some(1.0)).await;
    let trip = cdk_trip("x1", "success");
    travel
        .invoke("reserveHotelLambdaHandler020AE24A", Some("r"), 1, &trip)
        .await;

    let (status, body) = travel
        .invoke("cancelHotelLambdaHandler09F13EF6", Some("c"), 1, &trip)
        .await;

    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "InternalServerError");
    assert_eq!(travel.rows_of("x1"), [row("HOTEL#x1", "pending")]);
    // The book functions never fail at random.
    let (status, _) = travel
        .invoke("reserveFlightLambdaHandler3C75473D", Some("r"), 1, &trip)
        .await;
    assert_eq!(status, 200);
}

/// The attempts (1 to 40) at which a compensator fails, calling it with
/// the same key as a retrying orchestrator would.
async fn failing_attempts(travel: &Travel, function: &str) -> Vec<u32> {
    let mut failed = Vec::new();
    for attempt in 1..=40 {
        let (status, _) = travel
            .invoke(
                function,
                Some("e:CancelHotel:action"),
                attempt,
                &cdk_trip("s", "x"),
            )
            .await;
        if status != 200 {
            failed.push(attempt);
        }
    }
    failed
}

#[tokio::test]
async fn the_same_seed_fails_the_same_attempts_and_another_seed_others() {
    let with_seed = |seed| {
        move |config: &mut Config| {
            config.lambda_failure_seed = seed;
            config.lambda_cancel_failure_rate = Some(0.5);
        }
    };
    let function = "cancelHotelLambdaHandler";
    let first = failing_attempts(&Travel::start_with(with_seed(11)).await, function).await;
    let again = failing_attempts(&Travel::start_with(with_seed(11)).await, function).await;
    let other = failing_attempts(&Travel::start_with(with_seed(12)).await, function).await;

    assert!(!first.is_empty() && first.len() < 40, "{first:?}");
    assert_eq!(first, again);
    assert_ne!(first, other);
}

#[tokio::test]
async fn each_sample_fails_its_compensators_at_its_own_rate_by_default() {
    let travel = Travel::start_with(|config| config.lambda_failure_seed = 5).await;
    let humank = failing_attempts(&travel, "lambda-saga-dev-cancel-hotel")
        .await
        .len();
    let cdk = failing_attempts(&travel, "cancelHotelLambdaHandler09F13EF6")
        .await
        .len();
    // 60% and 40% of 40 attempts, give or take.
    assert!((14..=34).contains(&humank), "{humank}");
    assert!((6..=26).contains(&cdk), "{cdk}");

    let (_, listed) = travel.get("lambda").await;
    assert_eq!(listed["seed"], 5);
    let functions = listed["functions"].as_array().unwrap();
    assert_eq!(functions.len(), 26);
    let rate_of = |name: &str| {
        functions.iter().find(|f| f["name"] == name).unwrap()["fails_on"]["probability"].clone()
    };
    assert_eq!(rate_of("lambda-saga-dev-cancel-rental"), 0.6);
    assert_eq!(rate_of("refundPaymentLambdaHandler932D11D5"), 0.4);
}

#[tokio::test]
async fn an_unknown_function_is_resource_not_found() {
    let travel = Travel::start().await;
    let (status, body) = travel
        .invoke("no-such-function", Some("k"), 1, &humank_trip("t"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "ResourceNotFoundException");
    assert_eq!(body["cause"], "Function not found: no-such-function");
}

#[tokio::test]
async fn a_malformed_input_is_a_bad_request_even_for_a_compensator_that_would_fail() {
    let travel = Travel::start_with(|config| config.lambda_cancel_failure_rate = Some(1.0)).await;
    for (body, cause) in [
        (json!({"hotel": "inn"}), "trip_id is required"),
        (
            json!([1, 2]),
            "the body must be a JSON object with a trip_id",
        ),
    ] {
        let (status, answer) = travel
            .invoke("lambda-saga-dev-cancel-hotel", Some("k"), 1, &body)
            .await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"], "BadRequest");
        assert_eq!(answer["cause"], cause);
    }
}

#[tokio::test]
async fn a_lambda_cancel_failure_rate_outside_zero_to_one_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().join("travel.db"));
    config.lambda_cancel_failure_rate = Some(-0.1);

    let started = travel_services::start(config, "127.0.0.1:0".parse().unwrap()).await;

    assert!(started.is_err());
}

// aws-samples saga pattern with Lambda durable functions: the six
// `saga-*` functions a durable orchestrator invokes.

/// The messages the sample's reserve functions raise, byte for byte.
const FLIGHT_FAILURE: &str = "Simulated flight booking failure for testing saga compensation";
const HOTEL_FAILURE: &str = "Simulated hotel reservation failure for testing saga compensation";
const CAR_FAILURE: &str = "Simulated car rental failure for testing saga compensation";

/// The payloads the sample's orchestrator sends, with the given ids.
fn saga_flight(booking_id: &str) -> Value {
    json!({
        "bookingId": booking_id,
        "passengerName": "Michael Johnson",
        "flightNumber": "AA456",
        "departure": "LAX",
        "destination": "MIA",
        "price": 380.0,
        "failBookFlight": false
    })
}

fn saga_hotel(reservation_id: &str) -> Value {
    json!({
        "reservationId": reservation_id,
        "guestName": "Michael Johnson",
        "hotelName": "Hilton Downtown Miami",
        "roomType": "Ocean View Suite",
        "checkIn": "2026-04-10",
        "checkOut": "2026-04-15",
        "price": 320.0,
        "failBookHotel": false
    })
}

fn saga_car(rental_id: &str) -> Value {
    json!({
        "rentalId": rental_id,
        "driverName": "Michael Johnson",
        "carType": "Convertible",
        "pickupLocation": "Miami Airport",
        "dropoffLocation": "Miami Airport",
        "pickupDate": "2026-04-10",
        "dropoffDate": "2026-04-15",
        "price": 150.0,
        "failBookCar": false
    })
}

#[tokio::test]
async fn the_saga_reserve_functions_store_a_row_and_answer_like_the_sample() {
    let travel = Travel::start().await;
    let (status, flight) = travel
        .invoke("saga-reserve-flight", Some("f"), 1, &saga_flight("b-1"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        flight,
        json!({"bookingId": "b-1", "flightNumber": "AA456", "status": "RESERVED", "price": 380.0})
    );
    let (status, hotel) = travel
        .invoke("saga-reserve-hotel", Some("h"), 1, &saga_hotel("r-1"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        hotel,
        json!({
            "reservationId": "r-1",
            "hotelName": "Hilton Downtown Miami",
            "roomType": "Ocean View Suite",
            "status": "RESERVED",
            "price": 320.0
        })
    );
    let (status, car) = travel
        .invoke("saga-reserve-car", Some("c"), 1, &saga_car("c-1"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        car,
        json!({"rentalId": "c-1", "carType": "Convertible", "status": "RESERVED", "price": 150.0})
    );
    assert_eq!(travel.rows_of("b-1"), [row("FLIGHT#b-1", "pending")]);
    assert_eq!(travel.rows_of("r-1"), [row("HOTEL#r-1", "pending")]);
    assert_eq!(travel.rows_of("c-1"), [row("CAR#c-1", "pending")]);

    let stored = travel_services::trip_rows(travel.dir.path().join("travel.db"), "r-1").unwrap();
    assert_eq!(stored[0].details["guestName"], "Michael Johnson");
    assert_eq!(stored[0].details["checkOut"], "2026-04-15");
    assert_eq!(stored[0].details["status"], "RESERVED");
}

#[tokio::test]
async fn a_saga_reservation_without_optional_fields_takes_the_samples_defaults() {
    let travel = Travel::start().await;
    let (status, flight) = travel
        .invoke(
            "saga-reserve-flight",
            Some("f"),
            1,
            &json!({"bookingId": "b-2"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(flight["price"], 299.99);
    let number = flight["flightNumber"].as_str().unwrap();
    assert!(number.starts_with("FL") && number.len() == 8, "{number}");
    let (_, hotel) = travel
        .invoke(
            "saga-reserve-hotel",
            Some("h"),
            1,
            &json!({"reservationId": "r-2"}),
        )
        .await;
    assert_eq!(
        (&hotel["hotelName"], &hotel["roomType"], &hotel["price"]),
        (
            &json!("Grand Hotel"),
            &json!("Deluxe Suite"),
            &json!(199.99)
        )
    );
    let (_, car) = travel
        .invoke("saga-reserve-car", Some("c"), 1, &json!({"price": "95.50"}))
        .await;
    assert_eq!(
        (&car["carType"], &car["price"]),
        (&json!("Sedan"), &json!(95.5))
    );
    let rental_id = car["rentalId"].as_str().unwrap();
    assert_eq!(rental_id.len(), 36, "a generated UUID: {rental_id}");
    assert_eq!(
        travel.rows_of(rental_id),
        [row(&format!("CAR#{rental_id}"), "pending")]
    );
}

#[tokio::test]
async fn each_fail_book_flag_fails_its_own_reservation_with_the_samples_message() {
    let travel = Travel::start().await;
    let cases = [
        (
            "saga-reserve-flight",
            saga_flight("b-3"),
            "failBookFlight",
            FLIGHT_FAILURE,
            "b-3",
        ),
        (
            "saga-reserve-hotel",
            saga_hotel("r-3"),
            "failBookHotel",
            HOTEL_FAILURE,
            "r-3",
        ),
        (
            "saga-reserve-car",
            saga_car("c-3"),
            "failBookCar",
            CAR_FAILURE,
            "c-3",
        ),
    ];
    for (function, mut input, flag, message, id) in cases {
        input[flag] = json!(true);
        let (status, body) = travel.invoke(function, Some("k"), 1, &input).await;
        assert_eq!(status, 422, "{function}");
        assert_eq!(body, json!({"error": "RuntimeError", "cause": message}));
        assert!(travel.rows_of(id).is_empty(), "{function} stored nothing");
    }
    // A flag fails only its own function: the whole test-fail-car input's
    // flight and hotel parts go through.
    let mut flight = saga_flight("b-4");
    flight["failBookCar"] = json!(true);
    let (status, _) = travel
        .invoke("saga-reserve-flight", Some("k"), 1, &flight)
        .await;
    assert_eq!(status, 200);

    let (_, stats) = travel.get("stats").await;
    assert_eq!(stats["injected_failures"]["lambda/saga-reserve-car"], 1);
    // Not remembered: the same key without the flag books.
    let (status, _) = travel
        .invoke("saga-reserve-car", Some("k"), 2, &saga_car("c-3"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(travel.rows_of("c-3"), [row("CAR#c-3", "pending")]);
}

#[tokio::test]
async fn the_saga_cancel_functions_cancel_what_was_reserved() {
    let travel = Travel::start().await;
    let bookings = [
        (
            "saga-reserve-flight",
            "saga-cancel-flight",
            saga_flight("b-5"),
            "bookingId",
            "b-5",
        ),
        (
            "saga-reserve-hotel",
            "saga-cancel-hotel",
            saga_hotel("r-5"),
            "reservationId",
            "r-5",
        ),
        (
            "saga-reserve-car",
            "saga-cancel-car",
            saga_car("c-5"),
            "rentalId",
            "c-5",
        ),
    ];
    for (reserve, cancel, input, field, id) in bookings {
        assert_eq!(travel.invoke(reserve, Some("r"), 1, &input).await.0, 200);
        let (status, body) = travel
            .invoke(cancel, Some("c"), 1, &json!({ field: id }))
            .await;
        assert_eq!(status, 200, "{cancel}");
        assert_eq!(body, json!({ field: id, "status": "CANCELLED" }));
        assert!(travel.rows_of(id).is_empty(), "{cancel} leaves no row");
        // Cancelling again under another key answers the same, as the
        // sample's repeated update does.
        let again = travel
            .invoke(cancel, Some("c2"), 1, &json!({ field: id }))
            .await;
        assert_eq!(again, (200, body));
        // And the reservation cannot come back after its cancellation.
        let (status, late) = travel.invoke(reserve, Some("r2"), 1, &input).await;
        assert_eq!((status, &late["error"]), (409, &json!("BookingCancelled")));
    }
}

#[tokio::test]
async fn a_saga_cancel_without_an_id_or_of_an_unknown_one_fails_like_the_sample() {
    let travel = Travel::start().await;
    let cases = [
        ("saga-cancel-flight", "bookingId", "Booking"),
        ("saga-cancel-hotel", "reservationId", "Reservation"),
        ("saga-cancel-car", "rentalId", "Rental"),
    ];
    for (function, field, noun) in cases {
        for missing in [json!({}), json!({ field: "" }), json!({ field: null })] {
            let (status, body) = travel.invoke(function, Some("m"), 1, &missing).await;
            assert_eq!(status, 400, "{function} {missing}");
            assert_eq!(
                body,
                json!({"error": "ValueError", "cause": format!("{field} is required")})
            );
        }
        let (status, body) = travel
            .invoke(function, Some("u"), 1, &json!({ field: "nope" }))
            .await;
        assert_eq!(status, 404);
        assert_eq!(
            body,
            json!({"error": "LookupError", "cause": format!("{noun} nope not found")})
        );
    }
}

#[tokio::test]
async fn a_repeated_saga_call_gets_the_first_answer_and_is_executed_once() {
    let travel = Travel::start().await;
    // No bookingId: the id is generated, so only the key makes a retry the
    // same call.
    let input = json!({"passengerName": "Jane Smith", "departure": "SFO", "destination": "NYC"});
    let first = travel
        .invoke(
            "saga-reserve-flight",
            Some("exec:reserve_flight"),
            1,
            &input,
        )
        .await;
    let again = travel
        .invoke(
            "saga-reserve-flight",
            Some("exec:reserve_flight"),
            2,
            &input,
        )
        .await;
    assert_eq!(first.0, 200);
    assert_eq!(first, again);
    let id = first.1["bookingId"].as_str().unwrap();
    let cancel = json!({ "bookingId": id });
    let cancelled = travel
        .invoke("saga-cancel-flight", Some("exec:cancel_flight"), 1, &cancel)
        .await;
    let replayed = travel
        .invoke("saga-cancel-flight", Some("exec:cancel_flight"), 2, &cancel)
        .await;
    assert_eq!(cancelled, replayed);

    let effects = travel_services::effects(travel.dir.path().join("travel.db")).unwrap();
    let counted: Vec<_> = effects
        .iter()
        .map(|e| (e.route.as_str(), e.key.as_str(), e.count))
        .collect();
    assert_eq!(
        counted,
        [
            ("lambda/saga-cancel-flight", "exec:cancel_flight", 1),
            ("lambda/saga-reserve-flight", "exec:reserve_flight", 1)
        ]
    );
    let (_, stats) = travel.get("stats").await;
    assert_eq!(stats["replays"]["lambda/saga-reserve-flight"], 1);
    assert_eq!(stats["replays"]["lambda/saga-cancel-flight"], 1);
    assert_eq!(stats["calls"]["lambda/saga-reserve-flight"], 2);
}

#[tokio::test]
async fn the_saga_functions_are_listed_with_what_fails_them() {
    let travel = Travel::start().await;
    let (_, listed) = travel.get("lambda").await;
    let functions = listed["functions"].as_array().unwrap();
    let saga: Vec<_> = functions
        .iter()
        .filter(|f| f["sample"] == "aws-samples/saga-pattern-lambda-durable-functions")
        .map(|f| {
            (
                f["name"].as_str().unwrap(),
                f["participant"].as_str().unwrap(),
                f["fails_on"].clone(),
            )
        })
        .collect();
    assert_eq!(
        saga,
        [
            (
                "saga-reserve-flight",
                "flight/reserve",
                json!({"flag": "failBookFlight"})
            ),
            (
                "saga-cancel-flight",
                "flight/cancel",
                json!({"probability": 0.0})
            ),
            (
                "saga-reserve-hotel",
                "hotel/reserve",
                json!({"flag": "failBookHotel"})
            ),
            (
                "saga-cancel-hotel",
                "hotel/cancel",
                json!({"probability": 0.0})
            ),
            (
                "saga-reserve-car",
                "car/reserve",
                json!({"flag": "failBookCar"})
            ),
            ("saga-cancel-car", "car/cancel", json!({"probability": 0.0})),
        ]
    );
}

#[tokio::test]
async fn a_malformed_saga_input_is_a_bad_request() {
    let travel = Travel::start().await;
    for body in [json!([1]), json!("text")] {
        let (status, answer) = travel
            .invoke("saga-reserve-hotel", Some("k"), 1, &body)
            .await;
        assert_eq!((status, &answer["error"]), (400, &json!("BadRequest")));
    }
    let (status, answer) = travel
        .invoke(
            "saga-reserve-hotel",
            Some("k"),
            1,
            &json!({"price": "cheap"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        answer,
        json!({"error": "ValueError", "cause": "price must be a number"})
    );
}
