//! The business rules of the four participants, independent of HTTP.
//!
//! Every call is one SQLite transaction (a savepoint of the commit it shares
//! with the calls made meanwhile, see [`crate::db`]) that
//! 1. returns the stored response if the idempotency key was seen before;
//! 2. otherwise applies the rule (reserve, confirm, cancel) and, unless the
//!    outcome is an injected (transient) failure, stores the response under the
//!    key and counts the execution in `effects`, in the same transaction, so a
//!    crash can never separate an effect from the record that it happened.
//!
//! Rules:
//! - reserve inserts a `pending` row whose id is derived from the trip id, so a
//!   retry finds the row instead of creating a second one (payment/charge
//!   inserts a `confirmed` `PAYMENT#` row);
//! - confirm sets the row to `confirmed`, `BookingNotFound` if there is none;
//! - cancel (and refund) deletes the row; cancelling something that never
//!   arrived succeeds and leaves a tombstone, and a reservation arriving after
//!   its own cancellation is refused with `BookingCancelled` (anti-hanging);
//! - `run_type` injects the travel scenarios' failures (those of the
//!   cdk-patterns saga sample, `examples/step-functions/SOURCES.md`): a reservation failure is a 422
//!   that leaves no row, a confirmation failure is a 503 returned the first N
//!   times per trip (counted in the database) and then the call succeeds.

use rusqlite::Transaction;
use serde_json::{json, Map, Value};

use crate::db::{self, Db};

/// The longest trip id accepted (it is a primary key, not a document).
const MAX_TRIP_ID_LEN: usize = 256;

/// What the payment row records when the input carries no `amount`.
const DEFAULT_AMOUNT: &str = "450.00";

/// One of the four participants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Hotel,
    Flight,
    Car,
    Payment,
}

impl Kind {
    /// The prefix of the sort key (`HOTEL` in `HOTEL#id`), also the tombstone kind.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Hotel => "HOTEL",
            Kind::Flight => "FLIGHT",
            Kind::Car => "CAR",
            Kind::Payment => "PAYMENT",
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            Kind::Hotel => "hotel",
            Kind::Flight => "flight",
            Kind::Car => "car",
            Kind::Payment => "payment",
        }
    }

    /// The `run_type` that fails the reservation (the charge, for payment) and
    /// the error it produces.
    pub fn reservation_failure(self) -> (&'static str, &'static str) {
        match self {
            Kind::Hotel => ("failHotelReservation", "HotelReservationFailed"),
            Kind::Flight => ("failFlightsReservation", "FlightReservationFailed"),
            Kind::Car => ("failCarReservation", "CarReservationFailed"),
            Kind::Payment => ("failPayment", "PaymentFailed"),
        }
    }

    /// The `run_type` that fails the confirmation a few times, and its error.
    pub fn confirmation_failure(self) -> Option<(&'static str, &'static str)> {
        match self {
            Kind::Hotel => Some(("failHotelConfirmation", "HotelConfirmationFailed")),
            Kind::Flight => Some(("failFlightsConfirmation", "FlightConfirmationFailed")),
            Kind::Car => Some(("failCarConfirmation", "CarConfirmationFailed")),
            Kind::Payment => None,
        }
    }

    /// The fields of the trip input this participant keeps in `details`.
    fn detail_fields(self) -> &'static [&'static str] {
        match self {
            Kind::Hotel => &["hotel", "check_in", "check_out"],
            Kind::Flight => &["depart", "depart_at", "arrive", "arrive_at"],
            Kind::Car => &["rental", "rental_from", "rental_to"],
            Kind::Payment => &["amount", "currency"],
        }
    }

    /// The name of the id field in responses.
    pub fn id_field(self) -> &'static str {
        match self {
            Kind::Payment => "payment_id",
            _ => "booking_id",
        }
    }
}

/// What a call asks of a participant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// reserve (payment: charge).
    Reserve,
    /// confirm (hotel, flight and car only).
    Confirm,
    /// cancel (payment: refund).
    Cancel,
}

/// One route: a participant and an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Op {
    pub kind: Kind,
    pub action: Action,
}

impl Op {
    pub const fn new(kind: Kind, action: Action) -> Op {
        Op { kind, action }
    }

    /// The route's path without its leading slash, e.g. `payment/charge`.
    pub fn route(self) -> &'static str {
        match (self.kind, self.action) {
            (Kind::Hotel, Action::Reserve) => "hotel/reserve",
            (Kind::Hotel, Action::Confirm) => "hotel/confirm",
            (Kind::Hotel, Action::Cancel) => "hotel/cancel",
            (Kind::Flight, Action::Reserve) => "flight/reserve",
            (Kind::Flight, Action::Confirm) => "flight/confirm",
            (Kind::Flight, Action::Cancel) => "flight/cancel",
            (Kind::Car, Action::Reserve) => "car/reserve",
            (Kind::Car, Action::Confirm) => "car/confirm",
            (Kind::Car, Action::Cancel) => "car/cancel",
            (Kind::Payment, Action::Reserve) => "payment/charge",
            (Kind::Payment, Action::Confirm) => "payment/confirm",
            (Kind::Payment, Action::Cancel) => "payment/refund",
        }
    }
}

/// Every route a participant serves.
pub(crate) const OPS: [Op; 11] = [
    Op::new(Kind::Hotel, Action::Reserve),
    Op::new(Kind::Hotel, Action::Confirm),
    Op::new(Kind::Hotel, Action::Cancel),
    Op::new(Kind::Flight, Action::Reserve),
    Op::new(Kind::Flight, Action::Confirm),
    Op::new(Kind::Flight, Action::Cancel),
    Op::new(Kind::Car, Action::Reserve),
    Op::new(Kind::Car, Action::Confirm),
    Op::new(Kind::Car, Action::Cancel),
    Op::new(Kind::Payment, Action::Reserve),
    Op::new(Kind::Payment, Action::Cancel),
];

/// The trip input (`{trip_id, depart, ..., run_type, amount?}`); only
/// `trip_id` is required, other fields are kept as given.
#[derive(Clone, Debug)]
pub(crate) struct Trip {
    pub trip_id: String,
    pub run_type: Option<String>,
    input: Map<String, Value>,
}

impl Trip {
    /// Parses a request body; the error is the `cause` of a 400.
    pub fn parse(body: &[u8]) -> Result<Trip, String> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err("the body is empty; expected a JSON object with a trip_id".into());
        }
        let value: Value =
            serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
        let Value::Object(input) = value else {
            return Err("the body must be a JSON object with a trip_id".into());
        };
        let trip_id = match input.get("trip_id") {
            Some(Value::String(id)) if !id.trim().is_empty() => id.clone(),
            Some(Value::String(_)) => return Err("trip_id must not be empty".into()),
            Some(_) => return Err("trip_id must be a string".into()),
            None => return Err("trip_id is required".into()),
        };
        if trip_id.len() > MAX_TRIP_ID_LEN {
            return Err(format!("trip_id is longer than {MAX_TRIP_ID_LEN} bytes"));
        }
        let run_type = ["run_type", "runType"]
            .iter()
            .find_map(|field| input.get(*field).and_then(Value::as_str))
            .map(str::to_owned);
        Ok(Trip {
            trip_id,
            run_type,
            input,
        })
    }

    /// Whether the input's `run_type` (or `runType`) is `run_type`.
    pub fn runs(&self, run_type: &str) -> bool {
        self.run_type.as_deref() == Some(run_type)
    }

    /// Whether the input has `field: true` (e.g. `breakAtRental`).
    pub fn flag(&self, field: &str) -> bool {
        self.input.get(field) == Some(&Value::Bool(true))
    }

    fn details(&self, kind: Kind) -> Value {
        let mut details = Map::new();
        details.insert("type".into(), json!(kind.noun()));
        for field in kind.detail_fields() {
            if let Some(value) = self.input.get(*field) {
                details.insert((*field).into(), value.clone());
            }
        }
        if kind == Kind::Payment {
            details
                .entry("amount")
                .or_insert_with(|| json!(DEFAULT_AMOUNT));
            details.entry("currency").or_insert_with(|| json!("USD"));
        }
        Value::Object(details)
    }
}

/// The booking id of a participant for a trip: derived from the trip id, so
/// every retry of a reservation names the same row.
pub(crate) fn booking_id(trip: &Trip) -> &str {
    &trip.trip_id
}

fn sort_key(kind: Kind, trip: &Trip) -> String {
    format!("{}#{}", kind.prefix(), booking_id(trip))
}

/// The answer to one call.
#[derive(Clone, Debug)]
pub(crate) struct Outcome {
    /// HTTP status.
    pub status: u16,
    /// JSON body, already serialized (a replay returns the stored text as is).
    pub body: String,
    /// The response was the one stored under the idempotency key.
    pub replayed: bool,
    /// The response is an injected failure (not stored, a retry may succeed).
    pub injected: bool,
}

/// A response before it is stored.
pub(crate) struct Reply {
    pub status: u16,
    pub body: Value,
    /// Store under the idempotency key (false for transient, injected failures).
    pub remember: bool,
}

impl Reply {
    pub fn ok(body: Value) -> Reply {
        Reply {
            status: 200,
            body,
            remember: true,
        }
    }

    pub fn error(status: u16, error: &str, cause: String) -> Reply {
        Reply {
            status,
            body: json!({ "error": error, "cause": cause }),
            remember: true,
        }
    }

    pub fn injected(status: u16, error: &str, cause: String) -> Reply {
        Reply {
            remember: false,
            ..Reply::error(status, error, cause)
        }
    }
}

/// Executes one call, with idempotency, in one transaction.
///
/// `key` is the caller's `Idempotency-Key` (or `None` for a call without the
/// header, which is executed every time). It is scoped to the route: the same
/// key on another route is another call. An executed call is counted in
/// `effects` under its route and key, in the same transaction.
pub(crate) async fn execute(
    db: &Db,
    key: Option<String>,
    op: Op,
    trip: Trip,
    confirm_failures: u32,
) -> anyhow::Result<Outcome> {
    execute_rule(db, op.route(), key, move |tx| {
        apply(tx, op, &trip, confirm_failures)
    })
    .await
}

/// Executes `rule` as the call of `route`, with idempotency, in one
/// transaction (see [`Db::in_transaction`]): a key already answered on this
/// route gets its stored response; otherwise the rule runs and its reply
/// (unless injected) is stored under the key and counted in `effects`, in
/// the same transaction.
pub(crate) async fn execute_rule(
    db: &Db,
    route: &'static str,
    key: Option<String>,
    rule: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<Reply> + Send + 'static,
) -> anyhow::Result<Outcome> {
    let scoped = key.as_ref().map(|key| format!("{route} {key}"));
    db.in_transaction(move |tx| {
        if let Some(scoped) = &scoped {
            if let Some((status, body)) = db::remembered(tx, scoped)? {
                return Ok(Outcome {
                    status,
                    body,
                    replayed: true,
                    injected: false,
                });
            }
        }
        let reply = rule(tx)?;
        let body = reply.body.to_string();
        if let (Some(key), Some(scoped), true) = (&key, &scoped, reply.remember) {
            db::remember(tx, scoped, reply.status, &body)?;
            db::record_effect(tx, route, key)?;
        }
        Ok(Outcome {
            status: reply.status,
            body,
            replayed: false,
            injected: !reply.remember,
        })
    })
    .await
}

/// Applies the rule of `op` (reserve, confirm or cancel) to `trip`.
pub(crate) fn apply(
    tx: &Transaction<'_>,
    op: Op,
    trip: &Trip,
    confirm_failures: u32,
) -> rusqlite::Result<Reply> {
    match op.action {
        Action::Reserve => reserve(tx, op.kind, trip),
        Action::Confirm => confirm(tx, op.kind, trip, confirm_failures),
        Action::Cancel => cancel(tx, op.kind, trip),
    }
}

fn booking_body(kind: Kind, trip: &Trip, status: &str, details: &Value) -> Value {
    let mut body = Map::new();
    body.insert(kind.id_field().into(), json!(booking_id(trip)));
    body.insert("trip_id".into(), json!(trip.trip_id));
    body.insert("type".into(), json!(kind.noun()));
    body.insert("status".into(), json!(status));
    if kind == Kind::Payment {
        for field in ["amount", "currency"] {
            if let Some(value) = details.get(field) {
                body.insert(field.into(), value.clone());
            }
        }
    }
    Value::Object(body)
}

fn reserve(tx: &Transaction<'_>, kind: Kind, trip: &Trip) -> rusqlite::Result<Reply> {
    let pk = trip.trip_id.as_str();
    if db::has_tombstone(tx, pk, kind.prefix())? {
        return Ok(Reply::error(
            409,
            "BookingCancelled",
            format!(
                "the {} of trip {pk} was cancelled before it was made",
                kind.noun()
            ),
        ));
    }
    let (run_type, error) = kind.reservation_failure();
    if trip.runs(run_type) {
        return Ok(Reply::injected(
            422,
            error,
            format!(
                "run_type {run_type} failed the {} of trip {pk}",
                kind.noun()
            ),
        ));
    }
    let sk = sort_key(kind, trip);
    if let Some(existing) = db::booking(tx, pk, &sk)? {
        return Ok(Reply::ok(booking_body(
            kind,
            trip,
            &existing.status,
            &existing.details,
        )));
    }
    let status = if kind == Kind::Payment {
        "confirmed"
    } else {
        "pending"
    };
    let details = trip.details(kind);
    db::insert_booking(tx, pk, &sk, status, &details)?;
    Ok(Reply::ok(booking_body(kind, trip, status, &details)))
}

fn confirm(
    tx: &Transaction<'_>,
    kind: Kind,
    trip: &Trip,
    confirm_failures: u32,
) -> rusqlite::Result<Reply> {
    let pk = trip.trip_id.as_str();
    let sk = sort_key(kind, trip);
    let Some(existing) = db::booking(tx, pk, &sk)? else {
        return Ok(Reply::error(
            404,
            "BookingNotFound",
            format!("trip {pk} has no {} booking to confirm", kind.noun()),
        ));
    };
    if let Some((run_type, error)) = kind.confirmation_failure() {
        if trip.runs(run_type) && db::confirm_failures(tx, pk, kind.prefix())? < confirm_failures {
            let count = db::add_confirm_failure(tx, pk, kind.prefix())?;
            return Ok(Reply::injected(
                503,
                error,
                format!(
                    "run_type {run_type}: injected failure {count} of {confirm_failures} \
                     for the {} of trip {pk}",
                    kind.noun()
                ),
            ));
        }
    }
    if existing.status != "confirmed" {
        db::set_status(tx, pk, &sk, "confirmed")?;
    }
    Ok(Reply::ok(booking_body(
        kind,
        trip,
        "confirmed",
        &existing.details,
    )))
}

fn cancel(tx: &Transaction<'_>, kind: Kind, trip: &Trip) -> rusqlite::Result<Reply> {
    let pk = trip.trip_id.as_str();
    let sk = sort_key(kind, trip);
    let existed = db::delete_booking(tx, pk, &sk)?;
    if !existed {
        // Empty compensation: the reservation never arrived (or failed). Make
        // sure it is refused if it arrives now.
        db::add_tombstone(tx, pk, kind.prefix())?;
    }
    let (status, found_field) = if kind == Kind::Payment {
        ("refunded", "was_charged")
    } else {
        ("cancelled", "was_reserved")
    };
    let mut body = booking_body(kind, trip, status, &Value::Null);
    if let Value::Object(fields) = &mut body {
        fields.insert(found_field.into(), json!(existed));
    }
    Ok(Reply::ok(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trip_needs_a_non_empty_string_trip_id() {
        assert!(Trip::parse(br#"{"trip_id":"t1"}"#).is_ok());
        assert_eq!(
            Trip::parse(br#"{"hotel":"inn"}"#).unwrap_err(),
            "trip_id is required"
        );
        assert_eq!(
            Trip::parse(br#"{"trip_id":""}"#).unwrap_err(),
            "trip_id must not be empty"
        );
        assert_eq!(
            Trip::parse(br#"{"trip_id":7}"#).unwrap_err(),
            "trip_id must be a string"
        );
        assert!(Trip::parse(b"[1]").is_err());
        assert!(Trip::parse(b"{").is_err());
        assert!(Trip::parse(b"  ").is_err());
    }

    #[test]
    fn the_run_type_is_read_from_either_spelling() {
        let snake = Trip::parse(br#"{"trip_id":"t","run_type":"failPayment"}"#).unwrap();
        let camel = Trip::parse(br#"{"trip_id":"t","runType":"failPayment"}"#).unwrap();
        assert!(snake.runs("failPayment") && camel.runs("failPayment"));
    }

    #[test]
    fn details_keep_only_the_participants_own_fields() {
        let trip =
            Trip::parse(br#"{"trip_id":"t","hotel":"inn","check_in":"a","depart":"London"}"#)
                .unwrap();
        assert_eq!(
            trip.details(Kind::Hotel),
            json!({"type":"hotel","hotel":"inn","check_in":"a"})
        );
        assert_eq!(
            trip.details(Kind::Payment),
            json!({"type":"payment","amount":"450.00","currency":"USD"})
        );
    }

    #[test]
    fn every_route_has_its_own_path() {
        let mut routes: Vec<_> = OPS.iter().map(|op| op.route()).collect();
        routes.sort_unstable();
        routes.dedup();
        assert_eq!(routes.len(), OPS.len());
    }
}
