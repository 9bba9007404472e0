//! The real Step Functions sagas of `examples/step-functions/saga`
//! (humank/lambda-saga-pattern, cdk-patterns the-saga-stepfunction single-
//! and multi-table) deployed UNCHANGED to a real `sagaflow server` whose
//! resource map sends their Lambda ARNs to the samples' functions served by
//! a real `travel-services` (`POST /lambda/{name}`), run with each of their
//! inputs, and checked three ways: how the execution ended, which tasks ran
//! in which order (from the history), and what the travel database holds.
//!
//! The first test runs with the compensators never failing, so every task
//! sequence is exact. The second lets them fail at random as in the samples
//! (60% for humank's cancels, 40% for cdk-patterns'), from a fixed seed it
//! prints (`SAGAFLOW_TEST_SEED` replays another): humank's cancel loops must
//! still undo everything; cdk-patterns' retries (`MaxAttempts 3`; none in the
//! multi-table version) either undo everything or stop the execution at the
//! compensator that ran out of attempts, with exactly what was not undone
//! left in the database.
//!
//! The machines are read from `SAGAFLOW_ASL_SAGAS` when set, else from
//! `examples/step-functions/saga` (copied unchanged, see its `SOURCES.md`). Each
//! execution gets its own trip id (its execution id): the humank inputs share
//! one, and the travel services key bookings by trip.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{start_server, Api, Proc, Travel};
use serde_json::{json, Value};

const HUMANK: &str = "humank--lambda-saga-pattern--stepfunc.asl.json";
const SINGLE_TABLE: &str = "cdk-patterns--the-saga-stepfunction--single-table.asl.json";
const MULTI_TABLE: &str = "cdk-patterns--the-saga-stepfunction--multi-table.RECONSTRUCTED.asl.json";

/// The seed of the compensators' random failures when `SAGAFLOW_TEST_SEED`
/// is not set.
const DEFAULT_SEED: u64 = 20_240_606;

/// Where the machines and their inputs are.
fn saga_dir() -> PathBuf {
    let dir = std::env::var_os("SAGAFLOW_ASL_SAGAS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/step-functions/saga"),
        PathBuf::from,
    );
    assert!(
        dir.is_dir(),
        "the saga state machines are in {} (set SAGAFLOW_ASL_SAGAS to their directory)",
        dir.display()
    );
    dir
}

fn read_saga_file(name: &str) -> String {
    let path = saga_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{} is readable: {e}", path.display()))
}

/// One state machine under test: its file and the definition name it is
/// deployed under.
struct Machine {
    file: &'static str,
    name: &'static str,
}

const MACHINES: [Machine; 3] = [
    Machine {
        file: HUMANK,
        name: "humank-lambda-saga",
    },
    Machine {
        file: SINGLE_TABLE,
        name: "cdk-saga-single-table",
    },
    Machine {
        file: MULTI_TABLE,
        name: "cdk-saga-multi-table",
    },
];

/// One execution: a machine, an input, and how it must go when no
/// compensator fails at random.
struct Scenario {
    /// The execution id, also the trip id.
    id: String,
    machine: &'static str,
    input: Value,
    /// `succeeded`, or `failed` after a complete rollback.
    status: &'static str,
    /// Every task outcome in order: the state name, `!` after it if it failed.
    tasks: &'static [&'static str],
}

/// humank's input file with the execution's own trip id.
fn humank_input(file: &str, trip_id: &str) -> Value {
    let mut input: Value = serde_json::from_str(&read_saga_file(file))
        .unwrap_or_else(|e| panic!("{file} is JSON: {e}"));
    input["trip_id"] = json!(trip_id);
    input
}

/// The input of cdk-patterns' saga (the shape in the state machines'
/// README, the values of its article).
fn cdk_input(trip_id: &str, run_type: &str) -> Value {
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
        "run_type": run_type
    })
}

/// Every machine with each of its inputs; `tag` keeps the ids of two runs apart.
fn scenarios(tag: &str) -> Vec<Scenario> {
    let mut all = Vec::new();
    let mut add = |machine: &'static str,
                   label: &str,
                   input: &dyn Fn(&str) -> Value,
                   status: &'static str,
                   tasks: &'static [&'static str]| {
        let id = format!("{tag}-{machine}-{label}");
        all.push(Scenario {
            input: input(&id),
            id,
            machine,
            status,
            tasks,
        });
    };

    let humank = "humank-lambda-saga";
    add(
        humank,
        "input-success",
        &|id| humank_input("humank--lambda-saga-pattern--input-success.json", id),
        "succeeded",
        &["BookHotel", "BookFlight", "BookRental"],
    );
    add(
        humank,
        "input-fail-at-rental",
        &|id| humank_input("humank--lambda-saga-pattern--input-fail-at-rental.json", id),
        "failed",
        &[
            "BookHotel",
            "BookFlight",
            "BookRental!",
            "CancelRental",
            "CancelFlight",
            "CancelHotel",
        ],
    );

    let single: [(&str, &str, &[&str]); 6] = [
        (
            "success",
            "succeeded",
            &[
                "ReserveHotel",
                "ReserveFlight",
                "TakePayment",
                "ConfirmHotelBooking",
                "ConfirmFlight",
            ],
        ),
        (
            "failHotelReservation",
            "failed",
            &["ReserveHotel!", "CancelHotelReservation"],
        ),
        (
            "failFlightsReservation",
            "failed",
            &[
                "ReserveHotel",
                "ReserveFlight!",
                "CancelFlightReservation",
                "CancelHotelReservation",
            ],
        ),
        (
            "failPayment",
            "failed",
            &[
                "ReserveHotel",
                "ReserveFlight",
                "TakePayment!",
                "RefundPayment",
                "CancelFlightReservation",
                "CancelHotelReservation",
            ],
        ),
        (
            "failHotelConfirmation",
            "failed",
            &[
                "ReserveHotel",
                "ReserveFlight",
                "TakePayment",
                "ConfirmHotelBooking!",
                "RefundPayment",
                "CancelFlightReservation",
                "CancelHotelReservation",
            ],
        ),
        (
            "failFlightsConfirmation",
            "failed",
            &[
                "ReserveHotel",
                "ReserveFlight",
                "TakePayment",
                "ConfirmHotelBooking",
                "ConfirmFlight!",
                "RefundPayment",
                "CancelFlightReservation",
                "CancelHotelReservation",
            ],
        ),
    ];
    for (run_type, status, tasks) in single {
        add(
            "cdk-saga-single-table",
            run_type,
            &|id| cdk_input(id, run_type),
            status,
            tasks,
        );
    }

    // The multi-table sample has no run_type for the rental: the travel
    // services' `failRentalReservation` stands in for it.
    let multi: [(&str, &str, &[&str]); 4] = [
        (
            "success",
            "succeeded",
            &["BookHotel", "BookFlight", "BookRental"],
        ),
        (
            "failHotelReservation",
            "failed",
            &["BookHotel!", "CancelHotel"],
        ),
        (
            "failFlightsReservation",
            "failed",
            &["BookHotel", "BookFlight!", "CancelFlight", "CancelHotel"],
        ),
        (
            "failRentalReservation",
            "failed",
            &[
                "BookHotel",
                "BookFlight",
                "BookRental!",
                "CancelRental",
                "CancelFlight",
                "CancelHotel",
            ],
        ),
    ];
    for (run_type, status, tasks) in multi {
        add(
            "cdk-saga-multi-table",
            run_type,
            &|id| cdk_input(id, run_type),
            status,
            tasks,
        );
    }
    all
}

/// The travel services with the samples' functions, their compensators
/// failing with `rate` (`None`: each sample's own) from `seed`, and a
/// sagaflow server whose resource map sends every Lambda ARN to them.
struct Setup {
    _dir: tempfile::TempDir,
    travel: Travel,
    server: Proc,
    api: Api,
}

impl Setup {
    fn start(seed: u64, rate: Option<f64>) -> Setup {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut args = vec!["--lambda-failure-seed".to_string(), seed.to_string()];
        if let Some(rate) = rate {
            args.extend(["--lambda-cancel-failure-rate".to_string(), rate.to_string()]);
        }
        let travel = Travel::start_with_args(dir.path(), 0.0, 0, &args);
        let resource = format!(
            "arn:aws:lambda:*:*:function:{{name}}={}/lambda/{{name}}",
            travel.url()
        );
        let server = start_server(
            &dir.path().join("sagaflow"),
            travel.url(),
            &["--resource", &resource],
        );
        let api = Api::new(&server.url);
        for machine in &MACHINES {
            let source = read_saga_file(machine.file);
            let deployed = api.deploy(machine.name, &source);
            assert_eq!(deployed["name"], machine.name, "{deployed}");
        }
        Setup {
            _dir: dir,
            travel,
            server,
            api,
        }
    }

    /// Starts every scenario at once, then waits for each to end; returns
    /// each scenario's final execution and history events.
    fn run_all(&self, scenarios: &[Scenario]) -> Vec<(Value, Vec<Value>)> {
        for s in scenarios {
            let started = self.api.call(
                reqwest::Method::POST,
                "/v1/executions",
                Some(json!({ "definition": s.machine, "input": s.input, "execution_id": s.id })),
            );
            assert_eq!(started["id"], s.id.as_str(), "{started}");
        }
        scenarios
            .iter()
            .map(|s| {
                let execution = self.wait_for(&s.id);
                let history = self.api.get(&format!("/v1/executions/{}/history", s.id));
                let events = history["events"]
                    .as_array()
                    .unwrap_or_else(|| panic!("the history of {} has events: {history}", s.id))
                    .clone();
                (execution, events)
            })
            .collect()
    }

    fn wait_for(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let execution = self.api.get(&format!("/v1/executions/{id}?wait=20"));
            let status = execution["status"].as_str().unwrap_or_default();
            if common::is_terminal(status) {
                return execution;
            }
            assert!(
                Instant::now() < deadline,
                "{id} ends within 180s, but is {status}; the server's log:\n{}\nthe travel log:\n{}",
                self.server.log_tail(),
                self.travel.log_tail()
            );
        }
    }

    /// The trip's rows as `SK (status)`.
    fn rows(&self, trip_id: &str) -> BTreeSet<String> {
        self.travel
            .rows(trip_id)
            .into_iter()
            .map(|r| format!("{} ({})", r.sk, r.transaction_status))
            .collect()
    }
}

/// A task's outcome, read from a `step_succeeded` or `step_failed` event.
#[derive(Debug, Clone, PartialEq)]
struct Outcome {
    state: String,
    ok: bool,
    error: String,
}

impl Outcome {
    /// `State`, or `State!` for a failure.
    fn shown(&self) -> String {
        if self.ok {
            self.state.clone()
        } else {
            format!("{}!", self.state)
        }
    }
}

/// The task outcomes of a history, in order. An event's `step` is the
/// state's name, with `#N` for the N-th visit of a state a loop re-enters.
fn outcomes(events: &[Value]) -> Vec<Outcome> {
    events
        .iter()
        .filter_map(|e| {
            let ok = match e["type"].as_str()? {
                "step_succeeded" => true,
                "step_failed" => false,
                _ => return None,
            };
            let step = e["step"].as_str()?;
            let state = step.split_once('#').map_or(step, |(name, _)| name);
            Some(Outcome {
                state: state.to_string(),
                ok,
                error: e["error"]["error"].as_str().unwrap_or_default().to_string(),
            })
        })
        .collect()
}

/// The participant a state works on (the sort-key prefix of its row).
fn participant(state: &str) -> &'static str {
    if state.contains("Hotel") {
        "HOTEL"
    } else if state.contains("Flight") {
        "FLIGHT"
    } else if state.contains("Rental") {
        "CAR"
    } else if state.contains("Payment") {
        "PAYMENT"
    } else {
        panic!("no participant for state {state}")
    }
}

fn is_compensation(state: &str) -> bool {
    state.starts_with("Cancel") || state.starts_with("Refund")
}

/// The rows the travel database must hold after these outcomes: what was
/// booked and not undone, confirmed if its confirmation succeeded (a
/// payment is confirmed when taken).
fn rows_after(trip_id: &str, outcomes: &[Outcome]) -> BTreeSet<String> {
    let mut rows = std::collections::BTreeMap::new();
    for o in outcomes.iter().filter(|o| o.ok) {
        let kind = participant(&o.state);
        if is_compensation(&o.state) {
            rows.remove(kind);
        } else if o.state.starts_with("Confirm") || kind == "PAYMENT" {
            rows.insert(kind, "confirmed");
        } else {
            rows.entry(kind).or_insert("pending");
        }
    }
    rows.into_iter()
        .map(|(kind, status)| format!("{kind}#{trip_id} ({status})"))
        .collect()
}

/// The states of the outcomes with consecutive repeats (retries, loops) merged.
fn states_in_order(outcomes: &[Outcome]) -> Vec<String> {
    let mut states: Vec<String> = outcomes.iter().map(|o| o.state.clone()).collect();
    states.dedup();
    states
}

/// The task order of a scenario without its failure marks.
fn expected_states(s: &Scenario) -> Vec<String> {
    s.tasks
        .iter()
        .map(|t| t.trim_end_matches('!').to_string())
        .collect()
}

fn the_seed() -> u64 {
    match std::env::var("SAGAFLOW_TEST_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("SAGAFLOW_TEST_SEED is a number, not {text:?}")),
        Err(_) => DEFAULT_SEED,
    }
}

#[test]
fn each_sample_saga_runs_unchanged_and_ends_with_exactly_its_tasks_and_bookings() {
    let setup = Setup::start(the_seed(), Some(0.0));
    let scenarios = scenarios("exact");
    let results = setup.run_all(&scenarios);

    for (s, (execution, events)) in scenarios.iter().zip(&results) {
        let outcomes = outcomes(events);
        let shown: Vec<String> = outcomes.iter().map(Outcome::shown).collect();
        eprintln!(
            "{}: {} after {}",
            s.id,
            execution["status"],
            shown.join(" → ")
        );

        assert_eq!(
            execution["status"], s.status,
            "{} ends {}: {execution}",
            s.id, s.status
        );
        assert_eq!(shown, s.tasks, "{} runs exactly its tasks, in order", s.id);

        let rows = setup.rows(&s.id);
        assert_eq!(
            rows,
            rows_after(&s.id, &outcomes),
            "{}: the travel database agrees with the history",
            s.id
        );
        if s.status == "succeeded" {
            assert_eq!(
                rows.len(),
                3,
                "{}: a successful trip holds three bookings: {rows:?}",
                s.id
            );
            for state in s.tasks {
                assert_eq!(
                    execution["output"][format!("{state}Result")]["status"],
                    "ok",
                    "{}: the output holds {state}'s answer at its ResultPath: {}",
                    s.id,
                    execution["output"]
                );
            }
        } else {
            assert!(
                rows.is_empty(),
                "{}: nothing stays booked after the rollback: {rows:?}",
                s.id
            );
            assert_eq!(
                execution["error"]["error"], "States.Fail",
                "{} ends in the machine's Fail state: {execution}",
                s.id
            );
        }
    }
    every_call_was_executed_once(&setup);
}

#[test]
fn random_compensation_failures_are_retried_until_each_rollback_ends_where_the_sample_says() {
    let seed = the_seed();
    println!("lambda failure seed: {seed} (SAGAFLOW_TEST_SEED={seed} replays this run)");
    eprintln!("lambda failure seed: {seed} (SAGAFLOW_TEST_SEED={seed} replays this run)");
    let setup = Setup::start(seed, None);
    let mut scenarios = scenarios("random");
    // humank's rollback twice more, so its cancel loop is surely exercised.
    for n in 2..=3 {
        let id = format!("random-humank-lambda-saga-input-fail-at-rental-{n}");
        let input = humank_input(
            "humank--lambda-saga-pattern--input-fail-at-rental.json",
            &id,
        );
        let template = &scenarios[1];
        scenarios.push(Scenario {
            id,
            input,
            ..*template
        });
    }
    let results = setup.run_all(&scenarios);

    // Compensator failures (all random) and how many were recovered from
    // (the same compensator succeeded next), per machine.
    let mut random_failures: std::collections::BTreeMap<&str, (usize, usize)> =
        std::collections::BTreeMap::new();
    for (s, (execution, events)) in scenarios.iter().zip(&results) {
        let outcomes = outcomes(events);
        let shown: Vec<String> = outcomes.iter().map(Outcome::shown).collect();
        eprintln!(
            "{}: {} after {}",
            s.id,
            execution["status"],
            shown.join(" → ")
        );
        let compensator_failures: Vec<&Outcome> = outcomes
            .iter()
            .filter(|o| !o.ok && is_compensation(&o.state))
            .collect();
        for failure in &compensator_failures {
            assert_eq!(
                failure.error, "InternalServerError",
                "{}: only random failures fail a compensator",
                s.id
            );
        }
        let recovered = outcomes
            .windows(2)
            .filter(|w| {
                !w[0].ok && is_compensation(&w[0].state) && w[1].ok && w[1].state == w[0].state
            })
            .count();
        let counts = random_failures.entry(s.machine).or_default();
        counts.0 += compensator_failures.len();
        counts.1 += recovered;

        let states = states_in_order(&outcomes);
        let expected = expected_states(s);
        let rows = setup.rows(&s.id);
        assert_eq!(
            rows,
            rows_after(&s.id, &outcomes),
            "{}: the travel database agrees with the history",
            s.id
        );

        let undone = outcomes
            .last()
            .is_some_and(|last| last.ok || !is_compensation(&last.state));
        if s.status == "succeeded" || undone {
            // Every compensator that ran ended up succeeding: the saga ends
            // as it does without random failures.
            assert_eq!(
                execution["status"], s.status,
                "{} ends {}: {execution}",
                s.id, s.status
            );
            assert_eq!(
                states, expected,
                "{} runs its tasks in order, retrying only compensators",
                s.id
            );
            if s.status == "failed" {
                assert!(
                    rows.is_empty(),
                    "{}: nothing stays booked after the rollback: {rows:?}",
                    s.id
                );
            }
            continue;
        }
        // A compensator ran out of attempts: only cdk-patterns' sagas give
        // up (3 retries in the single table, none in the multi-table one).
        let last = outcomes.last().expect("a compensator failed");
        let attempts = outcomes
            .iter()
            .rev()
            .take_while(|o| o.state == last.state)
            .count();
        let allowed = match s.machine {
            "cdk-saga-single-table" => 4,
            "cdk-saga-multi-table" => 1,
            _ => panic!(
                "{}: humank's cancels loop until they succeed, but {} gave up",
                s.id, last.state
            ),
        };
        assert_eq!(
            attempts, allowed,
            "{}: {} gives up after exactly its attempts",
            s.id, last.state
        );
        assert_eq!(execution["status"], "failed", "{}: {execution}", s.id);
        assert_eq!(
            execution["error"]["error"], "InternalServerError",
            "{}: {execution}",
            s.id
        );
        assert!(
            expected.starts_with(&states),
            "{}: {states:?} is the start of {expected:?}",
            s.id
        );
    }
    eprintln!("random compensator failures (and recoveries) with seed {seed}: {random_failures:?}");
    for machine in ["humank-lambda-saga", "cdk-saga-single-table"] {
        let (failures, recovered) = random_failures.get(machine).copied().unwrap_or_default();
        assert!(
            failures > 0 && recovered > 0,
            "with seed {seed}, {machine}'s compensators failed at random and recovered, so its cancel loops or retries were exercised: {random_failures:?}"
        );
    }
    every_call_was_executed_once(&setup);
}

/// The travel services executed each function call once per
/// `Idempotency-Key`: a repeated key was answered from their store.
fn every_call_was_executed_once(setup: &Setup) {
    let effects = setup.travel.effects();
    assert!(!effects.is_empty(), "the functions recorded their effects");
    for effect in effects {
        assert_eq!(
            effect.count, 1,
            "each call was executed once per key: {effect:?}"
        );
    }
}
