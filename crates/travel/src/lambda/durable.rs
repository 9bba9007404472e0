//! The six service functions of aws-samples' saga pattern with Lambda
//! durable functions (`saga-reserve-flight`, `saga-cancel-flight`, …), the
//! targets of the durable orchestrator's `context.invoke` calls
//! (`examples/durable/saga/index.py`).
//!
//! Unlike the Step Functions samples, their input carries no `trip_id`: the
//! orchestrator generates the booking's own id (`bookingId`,
//! `reservationId`, `rentalId`) and the row is keyed by it (`pk = id`,
//! `sk = FLIGHT#id`, …). Their contract is the sample's, so that the
//! orchestrator's results and its final error are the same text on Sagaflow
//! as on AWS:
//!
//! - reserve answers 200 `{"bookingId", "flightNumber", "status": "RESERVED",
//!   "price"}` (hotel: `{"reservationId", "hotelName", "roomType", "status",
//!   "price"}`, car: `{"rentalId", "carType", "status", "price"}`) and stores
//!   a `pending` row; `failBookFlight: true` (`failBookHotel`,
//!   `failBookCar`) makes it a 422 `{"error": "RuntimeError", "cause": …}`
//!   with the sample's message, which Sagaflow's participant protocol turns
//!   into the chained invoke's `{ErrorType: "RuntimeError", ErrorMessage}`,
//!   what the sample's `raise RuntimeError(…)` gives on AWS;
//! - cancel deletes the row and leaves a tombstone (the crate's rule: a
//!   rolled-back booking leaves no row, and a reservation arriving after its
//!   own cancellation is refused); cancelling a cancelled booking answers as
//!   the sample's repeated `update_item` does; a missing id is a 400
//!   `ValueError`, an unknown one a 404 `LookupError`, the sample's
//!   exceptions.
//!
//! None of them fails at random: the sample has no random failure.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use rusqlite::Transaction;
use serde_json::{json, Map, Value};

use crate::db;
use crate::http::{idempotency_key, read_body, ApiError, App};
use crate::service::{self, Action, Kind, Op, Outcome, Reply};

use super::FUNCTION_ERROR;

/// The sample, as `GET /lambda` names it.
pub(super) const SAMPLE: &str = "aws-samples/saga-pattern-lambda-durable-functions";

/// The status the sample stores and answers for a reservation.
const RESERVED: &str = "RESERVED";
/// The status the sample answers for a cancellation.
const CANCELLED: &str = "CANCELLED";

/// One of the sample's six service functions.
#[derive(Clone, Copy, Debug)]
pub(super) struct SagaFunction {
    /// The function name (the sample's CDK name, the orchestrator's default).
    pub name: &'static str,
    /// `lambda/NAME`: its route in the stats and in `effects`.
    pub route: &'static str,
    pub op: Op,
}

macro_rules! saga_function {
    ($name:literal, $kind:ident, $action:ident) => {
        SagaFunction {
            name: $name,
            route: concat!("lambda/", $name),
            op: Op::new(Kind::$kind, Action::$action),
        }
    };
}

/// Every function of the sample.
pub(super) const SAGA_FUNCTIONS: [SagaFunction; 6] = [
    saga_function!("saga-reserve-flight", Flight, Reserve),
    saga_function!("saga-cancel-flight", Flight, Cancel),
    saga_function!("saga-reserve-hotel", Hotel, Reserve),
    saga_function!("saga-cancel-hotel", Hotel, Cancel),
    saga_function!("saga-reserve-car", Car, Reserve),
    saga_function!("saga-cancel-car", Car, Cancel),
];

pub(super) fn find(name: &str) -> Option<&'static SagaFunction> {
    SAGA_FUNCTIONS.iter().find(|f| f.name == name)
}

/// What the sample's functions of one kind read, store and answer.
struct Shape {
    /// The id field of the input and the answer.
    id_field: &'static str,
    /// The noun of the `LookupError` (`Booking X not found`).
    noun: &'static str,
    /// The input flag that fails the reservation.
    flag: &'static str,
    /// The sample's message for that failure, byte for byte.
    failure: &'static str,
    /// The stored fields with the sample's defaults (`None`: today's date,
    /// `Some("")` with `generated`: a generated value).
    fields: &'static [(&'static str, Option<&'static str>)],
    /// The fields of the answer besides the id, `status` and `price`.
    answered: &'static [&'static str],
    /// The default price.
    price: f64,
}

const FLIGHT: Shape = Shape {
    id_field: "bookingId",
    noun: "Booking",
    flag: "failBookFlight",
    failure: "Simulated flight booking failure for testing saga compensation",
    fields: &[
        ("passengerName", Some("John Doe")),
        // Generated: `FL` and six hex digits, as the sample does.
        ("flightNumber", Some("")),
        ("departure", Some("JFK")),
        ("destination", Some("LAX")),
    ],
    answered: &["flightNumber"],
    price: 299.99,
};

const HOTEL: Shape = Shape {
    id_field: "reservationId",
    noun: "Reservation",
    flag: "failBookHotel",
    failure: "Simulated hotel reservation failure for testing saga compensation",
    fields: &[
        ("guestName", Some("John Doe")),
        ("hotelName", Some("Grand Hotel")),
        ("roomType", Some("Deluxe Suite")),
        ("checkIn", None),
        ("checkOut", None),
    ],
    answered: &["hotelName", "roomType"],
    price: 199.99,
};

const CAR: Shape = Shape {
    id_field: "rentalId",
    noun: "Rental",
    flag: "failBookCar",
    failure: "Simulated car rental failure for testing saga compensation",
    fields: &[
        ("driverName", Some("John Doe")),
        ("carType", Some("Sedan")),
        ("pickupLocation", Some("Airport")),
        ("dropoffLocation", Some("Airport")),
        ("pickupDate", None),
        ("dropoffDate", None),
    ],
    answered: &["carType"],
    price: 89.99,
};

impl SagaFunction {
    fn shape(&self) -> &'static Shape {
        match self.op.kind {
            Kind::Flight => &FLIGHT,
            Kind::Hotel => &HOTEL,
            // The sample has no payment; only the car is left.
            Kind::Car | Kind::Payment => &CAR,
        }
    }

    /// What fails this function on purpose, for `GET /lambda`.
    pub(super) fn fails_on(&self) -> Value {
        match self.op.action {
            Action::Reserve => json!({ "flag": self.shape().flag }),
            // Only a missing or unknown id: never at random.
            Action::Confirm | Action::Cancel => json!({ "probability": 0.0 }),
        }
    }

    /// One invocation: the input is read before anything (a malformed one
    /// is a 400, not remembered), then the rule runs with idempotency.
    pub(super) async fn invoke(
        &'static self,
        app: &App,
        headers: &HeaderMap,
        body: Result<Bytes, BytesRejection>,
    ) -> Result<Outcome, ApiError> {
        let input = parse(&read_body(body)?)
            .map_err(|cause| ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", cause))?;
        let key = idempotency_key(headers)?;
        service::execute_rule(&app.db, self.route, key, move |tx| self.rule(tx, &input))
            .await
            .map_err(ApiError::internal)
    }

    fn rule(&self, tx: &Transaction<'_>, input: &Map<String, Value>) -> rusqlite::Result<Reply> {
        match self.op.action {
            Action::Reserve => self.reserve(tx, input),
            Action::Confirm | Action::Cancel => self.cancel(tx, input),
        }
    }

    fn reserve(&self, tx: &Transaction<'_>, input: &Map<String, Value>) -> rusqlite::Result<Reply> {
        let shape = self.shape();
        if input.get(shape.flag).is_some_and(truthy) {
            // The sample raises before touching its table: nothing stored,
            // and not remembered, like the other functions' triggered
            // failures.
            return Ok(Reply::injected(
                FUNCTION_ERROR,
                "RuntimeError",
                shape.failure.to_owned(),
            ));
        }
        let id = match input.get(shape.id_field) {
            None | Some(Value::Null) => uuid::Uuid::new_v4().to_string(),
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            Some(_) => {
                return Ok(Reply::error(
                    400,
                    "ValueError",
                    format!("{} must be a non-empty string", shape.id_field),
                ))
            }
        };
        let Some(price) = price(input.get("price"), shape.price) else {
            return Ok(Reply::error(
                400,
                "ValueError",
                "price must be a number".to_owned(),
            ));
        };
        let kind = self.op.kind;
        let sk = format!("{}#{id}", kind.prefix());
        if db::has_tombstone(tx, &id, kind.prefix())? {
            return Ok(Reply::error(
                409,
                "BookingCancelled",
                format!(
                    "{} {id} was cancelled before it was made",
                    shape.noun.to_lowercase()
                ),
            ));
        }
        if let Some(existing) = db::booking(tx, &id, &sk)? {
            // The same id again under another key: the booking made.
            return Ok(Reply::ok(answer(shape, &id, &existing.details)));
        }
        let details = item(shape, kind, input, price);
        db::insert_booking(tx, &id, &sk, "pending", &details)?;
        Ok(Reply::ok(answer(shape, &id, &details)))
    }

    fn cancel(&self, tx: &Transaction<'_>, input: &Map<String, Value>) -> rusqlite::Result<Reply> {
        let shape = self.shape();
        let id = match input.get(shape.id_field) {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            // The sample's `if not id: raise ValueError(...)`.
            _ => {
                return Ok(Reply::error(
                    400,
                    "ValueError",
                    format!("{} is required", shape.id_field),
                ))
            }
        };
        let kind = self.op.kind;
        let sk = format!("{}#{id}", kind.prefix());
        let existed = db::delete_booking(tx, &id, &sk)?;
        if existed {
            db::add_tombstone(tx, &id, kind.prefix())?;
        } else if !db::has_tombstone(tx, &id, kind.prefix())? {
            // Only a booking made (and perhaps already cancelled) can be
            // cancelled: the sample's `get_item` finds nothing otherwise.
            return Ok(Reply::error(
                404,
                "LookupError",
                format!("{} {id} not found", shape.noun),
            ));
        }
        Ok(Reply::ok(
            json!({ shape.id_field: id, "status": CANCELLED }),
        ))
    }
}

/// The input as a JSON object; an API Gateway-style `body` (an object or
/// its JSON text) is unwrapped, as the sample's functions do.
fn parse(body: &[u8]) -> Result<Map<String, Value>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("the body is empty; expected a JSON object".into());
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    let Value::Object(input) = value else {
        return Err("the body must be a JSON object".into());
    };
    match input.get("body") {
        Some(Value::Object(inner)) => Ok(inner.clone()),
        Some(Value::String(text)) => match serde_json::from_str(text) {
            Ok(Value::Object(inner)) => Ok(inner),
            _ => Err("the body field must hold a JSON object".into()),
        },
        _ => Ok(input),
    }
}

/// Python's truth of a JSON value, as the sample's `if body.get(flag):`.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// The price as the sample answers it (`float(Decimal(str(price)))`): a
/// number or a numeric string; `None` for anything else.
fn price(value: Option<&Value>, default: f64) -> Option<f64> {
    match value {
        None | Some(Value::Null) => Some(default),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse().ok().filter(|p: &f64| p.is_finite()),
        Some(_) => None,
    }
}

/// The stored row's details: the sample's item (its fields with its
/// defaults, the price and `status: RESERVED`) and the participant's `type`.
fn item(shape: &Shape, kind: Kind, input: &Map<String, Value>, price: f64) -> Value {
    let mut details = Map::new();
    details.insert("type".into(), json!(kind.noun()));
    for (field, default) in shape.fields {
        let value = match (input.get(*field), default) {
            (Some(value), _) if !value.is_null() => value.clone(),
            (_, Some("")) => json!(format!(
                "FL{}",
                &uuid::Uuid::new_v4().simple().to_string()[..6].to_uppercase()
            )),
            (_, Some(default)) => json!(default),
            (_, None) => json!(today()),
        };
        details.insert((*field).into(), value);
    }
    details.insert("price".into(), json!(price));
    details.insert("status".into(), json!(RESERVED));
    Value::Object(details)
}

/// The sample's answer to a reservation, from the stored details.
fn answer(shape: &Shape, id: &str, details: &Value) -> Value {
    let mut answer = Map::new();
    answer.insert(shape.id_field.into(), json!(id));
    for field in shape.answered {
        answer.insert(
            (*field).into(),
            details.get(*field).cloned().unwrap_or(Value::Null),
        );
    }
    answer.insert("status".into(), json!(RESERVED));
    answer.insert(
        "price".into(),
        details.get("price").cloned().unwrap_or(Value::Null),
    );
    Value::Object(answer)
}

/// Today's UTC date, `YYYY-MM-DD` (the sample's default dates), without a
/// date crate: days since the epoch to a civil date (Howard Hinnant's
/// algorithm).
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    civil_date((secs / 86_400) as i64)
}

fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_is_found_by_its_name_and_reserves_or_cancels() {
        for function in &SAGA_FUNCTIONS {
            assert_eq!(find(function.name).unwrap().route, function.route);
            let reserve = function.name.starts_with("saga-reserve-");
            assert_eq!(function.op.action == Action::Reserve, reserve);
        }
        assert!(find("saga-durable-function").is_none());
    }

    #[test]
    fn flags_are_true_as_python_sees_them() {
        for yes in [json!(true), json!(1), json!("yes"), json!([0])] {
            assert!(truthy(&yes), "{yes}");
        }
        for no in [json!(false), json!(0), json!(""), json!(null), json!({})] {
            assert!(!truthy(&no), "{no}");
        }
    }

    #[test]
    fn a_price_is_a_number_or_a_numeric_string() {
        assert_eq!(price(None, 1.5), Some(1.5));
        assert_eq!(price(Some(&json!(420)), 1.5), Some(420.0));
        assert_eq!(price(Some(&json!("320.00")), 1.5), Some(320.0));
        assert_eq!(price(Some(&json!("cheap")), 1.5), None);
        assert_eq!(price(Some(&json!([1])), 1.5), None);
    }

    #[test]
    fn an_api_gateway_body_is_unwrapped() {
        let inner = parse(br#"{"body":"{\"bookingId\":\"b\"}"}"#).unwrap();
        assert_eq!(inner.get("bookingId"), Some(&json!("b")));
        let object = parse(br#"{"body":{"rentalId":"r"}}"#).unwrap();
        assert_eq!(object.get("rentalId"), Some(&json!("r")));
        assert!(parse(b"[]").is_err());
        assert!(parse(b" ").is_err());
    }

    #[test]
    fn civil_dates_are_right_around_leap_days() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(11_016), "2000-02-29");
        assert_eq!(civil_date(20_513), "2026-03-01");
    }

    #[test]
    fn a_generated_flight_number_is_fl_and_six_hex_digits() {
        let details = item(&FLIGHT, Kind::Flight, &Map::new(), 1.0);
        let number = details["flightNumber"].as_str().unwrap();
        assert_eq!(number.len(), 8);
        assert!(number.starts_with("FL"));
        assert!(number[2..]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
        assert_eq!(details["checkIn"], Value::Null);
        assert_eq!(details["status"], "RESERVED");
    }
}
