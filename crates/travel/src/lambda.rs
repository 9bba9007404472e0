//! The Lambda functions of the public Step Functions saga samples, as HTTP
//! participants under `POST /lambda/{function}`, so that the samples' state
//! machines run unchanged with a resource map such as
//! `arn:aws:lambda:*:*:function:{name}` → `http://HOST/lambda/{name}`.
//!
//! - humank/lambda-saga-pattern (`lambda-saga-dev-book-hotel`, …): the book
//!   functions insert a booking, `breakAtRental: true` makes
//!   `book-rental` fail; the cancel functions fail at random (60%).
//! - cdk-patterns the-saga-stepfunction, single table
//!   (`reserveHotelLambdaHandler020AE24A`, …) and the reconstructed
//!   multi-table version (`bookHotelLambdaHandler`, …): each function fails
//!   when `run_type` names it (`failHotelReservation`,
//!   `failFlightsReservation`, `failPayment`, `failHotelConfirmation`,
//!   `failFlightsConfirmation`; `failRentalReservation` or
//!   `failCarReservation` for `bookRentalLambdaHandler`, which the sample has
//!   no switch for); the compensators fail at random (40%).
//! - aws-samples saga pattern with Lambda durable functions
//!   (`saga-reserve-flight`, `saga-cancel-flight`, …, see [`durable`]): the
//!   targets of a durable orchestrator's `context.invoke`, keyed by the
//!   sample's own booking ids rather than a trip; `failBookFlight`,
//!   `failBookHotel`, `failBookCar` fail the reservations with the sample's
//!   messages as a `RuntimeError`; no random failures.
//!
//! Each function is one of the participants' rules (reserve, confirm, cancel
//! of the hotel, flight, car — the samples' "rental" — or payment) applied to
//! the travel database, so a rolled-back trip leaves no row. Calls are
//! deduplicated by `Idempotency-Key` per function, like the other routes.
//! A function's answer is shaped like the sample's: `{"status": "ok",
//! "booking_id": …}` (`payment_id` for the payment), `{"status": "ok"}` for a
//! confirmation or a cancellation; a failure is a 422 `{"error", "cause"}`
//! whose `error` names it (the samples throw a plain `Error`; a name says
//! more in a history and matches `States.ALL` all the same), and the
//! participants' own refusals keep their answer (409 `BookingCancelled` for
//! a reservation after its own cancellation, 404 `BookingNotFound` for a
//! confirmation of nothing). A malformed input is a 400, an unknown function
//! a 404 `ResourceNotFoundException`.
//!
//! The random failures are reproducible: a decision is a hash of the seed
//! (`--lambda-failure-seed`), the function, the `Idempotency-Key`, the
//! `Sagaflow-Attempt` header and how many identical calls this process saw
//! before (0 unless a caller repeats a key and attempt), so the same calls
//! fail the same way in every run with the same seed.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rusqlite::Transaction;
use serde_json::{json, Value};

use crate::http::{answer_call, read_call, ApiError, App};
use crate::service::{self, Action, Kind, Op, Outcome, Reply, Trip};

mod durable;

/// The status of a function error (the function ran and threw).
const FUNCTION_ERROR: u16 = 422;

/// The error name of a compensator's random failure.
const RANDOM_FAILURE: &str = "InternalServerError";

/// At most this many (function, key, attempt) triples are remembered to
/// tell repeated calls apart; past it the memory starts again.
const MAX_REMEMBERED_CALLS: usize = 100_000;

/// The sample a function comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sample {
    /// humank/lambda-saga-pattern.
    Humank,
    /// cdk-patterns the-saga-stepfunction (both versions).
    CdkPatterns,
}

impl Sample {
    /// How often the sample's compensators fail at random.
    fn cancel_failure_rate(self) -> f64 {
        match self {
            Sample::Humank => 0.6,
            Sample::CdkPatterns => 0.4,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Sample::Humank => "humank/lambda-saga-pattern",
            Sample::CdkPatterns => "cdk-patterns/the-saga-stepfunction",
        }
    }
}

/// What makes a function fail on purpose.
#[derive(Clone, Copy, Debug)]
enum Trigger {
    /// The input's `run_type` (or `runType`) is one of these.
    RunType(&'static [&'static str]),
    /// The input has this field set to `true`.
    Flag(&'static str),
    /// Chance: the compensators.
    Random,
}

/// One of the samples' functions.
#[derive(Clone, Copy, Debug)]
struct Function {
    /// The function name of the ARN.
    name: &'static str,
    /// `lambda/NAME`: its route in the stats and in `effects`.
    route: &'static str,
    sample: Sample,
    op: Op,
    trigger: Trigger,
}

macro_rules! function {
    ($name:literal, $sample:ident, $kind:ident, $action:ident, $trigger:expr) => {
        Function {
            name: $name,
            route: concat!("lambda/", $name),
            sample: Sample::$sample,
            op: Op::new(Kind::$kind, Action::$action),
            trigger: $trigger,
        }
    };
}

const FAIL_HOTEL: Trigger = Trigger::RunType(&["failHotelReservation"]);
const FAIL_FLIGHT: Trigger = Trigger::RunType(&["failFlightsReservation"]);
const FAIL_RENTAL: Trigger = Trigger::RunType(&["failRentalReservation", "failCarReservation"]);

/// Every function served, by sample.
const FUNCTIONS: [Function; 20] = [
    // humank/lambda-saga-pattern
    function!(
        "lambda-saga-dev-book-hotel",
        Humank,
        Hotel,
        Reserve,
        Trigger::RunType(&[])
    ),
    function!(
        "lambda-saga-dev-book-flight",
        Humank,
        Flight,
        Reserve,
        Trigger::RunType(&[])
    ),
    function!(
        "lambda-saga-dev-book-rental",
        Humank,
        Car,
        Reserve,
        Trigger::Flag("breakAtRental")
    ),
    function!(
        "lambda-saga-dev-cancel-hotel",
        Humank,
        Hotel,
        Cancel,
        Trigger::Random
    ),
    function!(
        "lambda-saga-dev-cancel-flight",
        Humank,
        Flight,
        Cancel,
        Trigger::Random
    ),
    function!(
        "lambda-saga-dev-cancel-rental",
        Humank,
        Car,
        Cancel,
        Trigger::Random
    ),
    // cdk-patterns the-saga-stepfunction, single table
    function!(
        "reserveHotelLambdaHandler020AE24A",
        CdkPatterns,
        Hotel,
        Reserve,
        FAIL_HOTEL
    ),
    function!(
        "reserveFlightLambdaHandler3C75473D",
        CdkPatterns,
        Flight,
        Reserve,
        FAIL_FLIGHT
    ),
    function!(
        "takePaymentLambdaHandlerB96529D4",
        CdkPatterns,
        Payment,
        Reserve,
        Trigger::RunType(&["failPayment"])
    ),
    function!(
        "confirmHotelLambdaHandler882ACF2D",
        CdkPatterns,
        Hotel,
        Confirm,
        Trigger::RunType(&["failHotelConfirmation"])
    ),
    function!(
        "confirmFlightLambdaHandler96C3663F",
        CdkPatterns,
        Flight,
        Confirm,
        Trigger::RunType(&["failFlightsConfirmation"])
    ),
    function!(
        "refundPaymentLambdaHandler932D11D5",
        CdkPatterns,
        Payment,
        Cancel,
        Trigger::Random
    ),
    function!(
        "cancelFlightLambdaHandler437EEC76",
        CdkPatterns,
        Flight,
        Cancel,
        Trigger::Random
    ),
    function!(
        "cancelHotelLambdaHandler09F13EF6",
        CdkPatterns,
        Hotel,
        Cancel,
        Trigger::Random
    ),
    // cdk-patterns the-saga-stepfunction, multi-table (reconstructed)
    function!(
        "bookHotelLambdaHandler",
        CdkPatterns,
        Hotel,
        Reserve,
        FAIL_HOTEL
    ),
    function!(
        "bookFlightLambdaHandler",
        CdkPatterns,
        Flight,
        Reserve,
        FAIL_FLIGHT
    ),
    function!(
        "bookRentalLambdaHandler",
        CdkPatterns,
        Car,
        Reserve,
        FAIL_RENTAL
    ),
    function!(
        "cancelHotelLambdaHandler",
        CdkPatterns,
        Hotel,
        Cancel,
        Trigger::Random
    ),
    function!(
        "cancelFlightLambdaHandler",
        CdkPatterns,
        Flight,
        Cancel,
        Trigger::Random
    ),
    function!(
        "cancelRentalLambdaHandler",
        CdkPatterns,
        Car,
        Cancel,
        Trigger::Random
    ),
];

fn find(name: &str) -> Option<&'static Function> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

impl Function {
    /// How likely a call fails at random: the configured or the sample's
    /// rate for a compensator, 0 for the other functions.
    fn failure_rate(&self, lambdas: &Lambdas) -> f64 {
        match self.trigger {
            Trigger::Random => lambdas
                .cancel_failure_rate
                .unwrap_or_else(|| self.sample.cancel_failure_rate()),
            Trigger::RunType(_) | Trigger::Flag(_) => 0.0,
        }
    }

    /// The failure `trip` asks of this function, if any: its error and cause.
    fn triggered(&self, trip: &Trip) -> Option<(&'static str, String)> {
        let why = match self.trigger {
            Trigger::RunType(run_types) => {
                let run_type = run_types.iter().find(|r| trip.runs(r))?;
                format!("run_type {run_type}")
            }
            Trigger::Flag(field) if trip.flag(field) => format!("{field}: true"),
            Trigger::Flag(_) | Trigger::Random => return None,
        };
        let kind = self.op.kind;
        let error = match self.op.action {
            Action::Confirm => kind
                .confirmation_failure()
                .map_or("ConfirmationFailed", |(_, error)| error),
            Action::Reserve | Action::Cancel => kind.reservation_failure().1,
        };
        let cause = format!(
            "{why}: {} failed the {} of trip {}",
            self.name,
            kind.noun(),
            trip.trip_id
        );
        Some((error, cause))
    }

    /// The function's rule, in the call's transaction: a triggered failure
    /// (not remembered, nothing done), else the participant's rule with the
    /// sample's answer in place of the participant's.
    fn rule(&self, tx: &Transaction<'_>, trip: &Trip) -> rusqlite::Result<Reply> {
        if let Some((error, cause)) = self.triggered(trip) {
            return Ok(Reply::injected(FUNCTION_ERROR, error, cause));
        }
        let reply = service::apply(tx, self.op, trip, 0)?;
        if !(200..300).contains(&reply.status) {
            // The participant refused (a late reservation after its own
            // cancellation, a confirmation of nothing): a function error.
            return Ok(reply);
        }
        let mut answer = json!({ "status": "ok" });
        if self.op.action == Action::Reserve {
            answer[self.op.kind.id_field()] = json!(service::booking_id(trip));
        }
        Ok(Reply::ok(answer))
    }
}

/// The functions' settings and the memory of calls seen.
pub(crate) struct Lambdas {
    seed: u64,
    /// `None`: each sample's own rate.
    cancel_failure_rate: Option<f64>,
    /// How many times each (function, key, attempt) was called.
    seen: Mutex<HashMap<(&'static str, String, String), u64>>,
}

impl Lambdas {
    pub fn new(seed: u64, cancel_failure_rate: Option<f64>) -> Lambdas {
        Lambdas {
            seed,
            cancel_failure_rate,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this call of a compensator fails at random.
    fn fails_at_random(
        &self,
        function: &Function,
        key: Option<&str>,
        attempt: Option<&str>,
    ) -> bool {
        let rate = function.failure_rate(self);
        if rate <= 0.0 {
            return false;
        }
        let (key, attempt) = (key.unwrap_or(""), attempt.unwrap_or(""));
        let repeat = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.len() >= MAX_REMEMBERED_CALLS {
                seen.clear();
            }
            let count = seen
                .entry((function.name, key.to_owned(), attempt.to_owned()))
                .or_insert(0);
            *count += 1;
            *count - 1
        };
        draw(self.seed, &[function.name, key, attempt], repeat) < rate
    }
}

/// A number in `[0, 1)` determined by `seed`, `parts` and `repeat` (FNV-1a
/// over the parts, finished with SplitMix64): stable across builds and
/// platforms, unlike the standard library's hashers.
pub(crate) fn draw(seed: u64, parts: &[&str], repeat: u64) -> f64 {
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ mix(seed);
    for part in parts {
        for b in part.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(PRIME);
        }
        // A separator, so ("ab", "c") and ("a", "bc") differ.
        h = (h ^ 0xff).wrapping_mul(PRIME);
    }
    h = mix(h ^ mix(repeat));
    // The top 53 bits, as a fraction.
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// SplitMix64's finalizer.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `GET /lambda`: the functions served, what fails them, and how often the
/// compensators fail.
pub(crate) async fn list(State(app): State<App>) -> Json<Value> {
    let functions: Vec<Value> = FUNCTIONS
        .iter()
        .map(|f| {
            let fails_on = match f.trigger {
                Trigger::RunType(run_types) => json!({ "run_type": run_types }),
                Trigger::Flag(field) => json!({ "flag": field }),
                Trigger::Random => json!({ "probability": f.failure_rate(&app.lambdas) }),
            };
            json!({
                "name": f.name,
                "sample": f.sample.name(),
                "participant": f.op.route(),
                "fails_on": fails_on,
            })
        })
        .chain(durable::SAGA_FUNCTIONS.iter().map(|f| {
            json!({
                "name": f.name,
                "sample": durable::SAMPLE,
                "participant": f.op.route(),
                "fails_on": f.fails_on(),
            })
        }))
        .collect();
    Json(json!({ "seed": app.lambdas.seed, "functions": functions }))
}

/// `POST /lambda/{function}`: one invocation.
pub(crate) async fn call(
    State(app): State<App>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Some(function) = durable::find(&name) {
        app.stats.bump(|c| &mut c.calls, function.route);
        let answer = function.invoke(&app, &headers, body).await;
        return answer_call(&app.stats, function.route, &headers, answer);
    }
    let Some(function) = find(&name) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            format!("Function not found: {name}"),
        )
        .into_response();
    };
    app.stats.bump(|c| &mut c.calls, function.route);
    let answer = invoke(&app, function, &headers, body).await;
    answer_call(&app.stats, function.route, &headers, answer)
}

async fn invoke(
    app: &App,
    function: &'static Function,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Outcome, ApiError> {
    let (trip, key) = read_call(headers, body)?;
    let attempt = crate::http::header_str(headers, "sagaflow-attempt");
    if app
        .lambdas
        .fails_at_random(function, key.as_deref(), attempt)
    {
        // Before anything, as the samples' `Math.random()` check: nothing
        // done, nothing remembered, so another attempt may succeed.
        return Err(ApiError {
            injected: true,
            ..ApiError::new(
                StatusCode::from_u16(FUNCTION_ERROR).unwrap_or(StatusCode::BAD_REQUEST),
                RANDOM_FAILURE,
                format!(
                    "Internal Server Error: {} failed at random (probability {}, seed {})",
                    function.name,
                    function.failure_rate(&app.lambdas),
                    app.lambdas.seed
                ),
            )
        });
    }
    service::execute_rule(&app.db, function.route, key, move |tx| {
        function.rule(tx, &trip)
    })
    .await
    .map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_has_its_own_name() {
        let mut names: Vec<_> = FUNCTIONS.iter().map(|f| f.name).collect();
        names.extend(durable::SAGA_FUNCTIONS.iter().map(|f| f.name));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FUNCTIONS.len() + durable::SAGA_FUNCTIONS.len());
    }

    #[test]
    fn a_draw_depends_on_every_input_and_on_nothing_else() {
        let a = draw(7, &["f", "key", "1"], 0);
        assert_eq!(a, draw(7, &["f", "key", "1"], 0));
        assert_ne!(a, draw(8, &["f", "key", "1"], 0));
        assert_ne!(a, draw(7, &["f", "key", "2"], 0));
        assert_ne!(a, draw(7, &["f", "key", "1"], 1));
        assert_ne!(draw(7, &["ab", "c"], 0), draw(7, &["a", "bc"], 0));
        assert!((0.0..1.0).contains(&a));
    }

    #[test]
    fn draws_are_spread_evenly_enough_to_give_the_configured_rate() {
        let n = 20_000;
        let below = (0..n)
            .filter(|i| draw(42, &["cancel", &i.to_string(), "1"], 0) < 0.4)
            .count();
        let rate = below as f64 / f64::from(n);
        assert!((0.37..0.43).contains(&rate), "{rate}");
    }

    #[test]
    fn a_repeated_call_draws_again_while_a_new_process_repeats_the_first_draws() {
        let function = find("cancelHotelLambdaHandler09F13EF6").unwrap();
        let decisions = |lambdas: &Lambdas| -> Vec<bool> {
            (0..64)
                .map(|_| lambdas.fails_at_random(function, Some("k"), Some("1")))
                .collect()
        };
        let first = decisions(&Lambdas::new(3, Some(0.5)));
        assert!(first.contains(&true) && first.contains(&false), "{first:?}");
        assert_eq!(first, decisions(&Lambdas::new(3, Some(0.5))));
    }

    #[test]
    fn only_compensators_fail_at_random_and_a_rate_of_zero_never_fails() {
        let never = Lambdas::new(1, Some(0.0));
        let always = Lambdas::new(1, Some(1.0));
        for function in &FUNCTIONS {
            let random = matches!(function.trigger, Trigger::Random);
            assert!(!never.fails_at_random(function, Some("k"), Some("1")));
            assert_eq!(
                always.fails_at_random(function, Some("k"), Some("1")),
                random,
                "{}",
                function.name
            );
        }
    }

    #[test]
    fn each_sample_keeps_its_own_rate_unless_one_is_configured() {
        let samples = Lambdas::new(0, None);
        let humank = find("lambda-saga-dev-cancel-hotel").unwrap();
        let cdk = find("cancelHotelLambdaHandler").unwrap();
        assert_eq!(humank.failure_rate(&samples), 0.6);
        assert_eq!(cdk.failure_rate(&samples), 0.4);
        assert_eq!(cdk.failure_rate(&Lambdas::new(0, Some(0.1))), 0.1);
    }

    #[test]
    fn run_types_and_flags_fail_only_their_own_functions() {
        let trip = |body: &str| Trip::parse(body.as_bytes()).unwrap();
        let rental = find("lambda-saga-dev-book-rental").unwrap();
        let hotel = find("lambda-saga-dev-book-hotel").unwrap();
        let broken = trip(r#"{"trip_id":"t","breakAtRental":true}"#);
        assert_eq!(rental.triggered(&broken).unwrap().0, "CarReservationFailed");
        assert!(hotel.triggered(&broken).is_none());
        assert!(rental
            .triggered(&trip(r#"{"trip_id":"t","breakAtRental":"yes"}"#))
            .is_none());

        let confirm = find("confirmFlightLambdaHandler96C3663F").unwrap();
        let failing = trip(r#"{"trip_id":"t","run_type":"failFlightsConfirmation"}"#);
        assert_eq!(
            confirm.triggered(&failing).unwrap().0,
            "FlightConfirmationFailed"
        );
        assert!(find("reserveFlightLambdaHandler3C75473D")
            .unwrap()
            .triggered(&failing)
            .is_none());
    }
}
