//! A durable function's execution behind the envelope: the start, the
//! checkpoints of an invocation, the invocation loop (chained invokes
//! called when the invocation that started them ends, the next invocation
//! when something changed), the failBookCar history end to end, failed
//! invocations retried after a capped backoff, recovery of an invocation
//! lost in a crash, waits, stops, cancels and the `ExecutionTimeout`.
//!
//! Every decision is checked against a replay of the history so far: the
//! live state and the state rebuilt from the events are equal.

use std::collections::BTreeMap;

use sagaflow_core::asl::ResourceMap;
use sagaflow_core::durable::{
    Answer, CallbackOptions, CallbackOutcome, ChainedInvokeOptions, CheckpointReply, Details,
    Effect as Durable, ErrorObject, Input as DurableInput, InvocationEvent, InvocationOutcome,
    InvokeDispatch, InvokeOutcome, OperationAction as A, OperationEvent, OperationStatus as S,
    OperationType as T, OperationUpdate, Run, StepOptions, WaitOptions, FIRST_RETRY_DELAY_MS,
    INVALID_TOKEN, INVOCATION_RETRY, MAX_RETRY_DELAY_MS, SAGA_COMPENSATED,
};
use sagaflow_core::error_name::{CANCELLED, INVOCATION_LOST, TIMEOUT};
use sagaflow_core::{
    compile_definition, Applied, Ctx, Effect, Error, Event, EventKind, Execution, Input, Plan,
    Status, TaskKind,
};
use serde_json::json;

const T0: u64 = 1_700_000_000_000;
const EXECUTION: &str = "ex-1";
const TIMEOUT_SECONDS: u64 = 3_600;

/// One durable execution driven decision by decision, its history kept.
struct Trip {
    plan: Plan,
    ex: Execution,
    history: Vec<Event>,
    now: u64,
    entropy: u64,
}

impl Trip {
    /// A started execution of `saga-durable-function`, and what the start asked for.
    fn start() -> (Trip, Applied) {
        let plan = compile_definition(
            &json!({"DurableFunction": {
                "FunctionName": "saga-durable-function",
                "ExecutionTimeout": TIMEOUT_SECONDS,
                "RetentionPeriodInDays": 30,
            }})
            .to_string(),
            Some("saga-durable-function"),
            &ResourceMap::default(),
        )
        .expect("the durable function compiles");
        let mut trip = Trip {
            ex: Execution::empty(&plan),
            plan,
            history: Vec::new(),
            now: T0,
            entropy: 0x5eed,
        };
        let start = Input::Start {
            execution_id: EXECUTION.into(),
            definition: "saga-durable-function".into(),
            version: 1,
            input: json!({"DurableExecutionName": "trip-1", "InputPayload": "{\"a\":1}"}),
        };
        let applied = trip.decide(start).expect("starts");
        (trip, applied)
    }

    /// Moves the clock to `T0 + ms`.
    fn at(&mut self, ms: u64) -> &mut Self {
        self.now = T0 + ms;
        self
    }

    /// Decides `input` now and keeps its events; the live state must equal
    /// the replay of the whole history after every decision (refused or not).
    fn decide(&mut self, input: Input) -> Result<Applied, Error> {
        self.entropy = self
            .entropy
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let ctx = Ctx {
            now: self.now,
            random: 0.5,
            entropy: self.entropy,
        };
        let before = self.ex.events;
        let decided = self.ex.decide_in_place(&self.plan, input, ctx);
        match &decided {
            Ok(applied) => self.history.extend(applied.events.iter().cloned()),
            Err(_) => assert_eq!(self.ex.events, before, "a refusal changes nothing"),
        }
        let replayed = Execution::replay(&self.plan, &self.history).expect("the history replays");
        assert_eq!(replayed, self.ex, "live state = replay of the history");
        decided
    }

    fn durable(&mut self, input: DurableInput) -> Result<Applied, Error> {
        self.decide(Input::Durable(input))
    }

    fn run(&self) -> &Run {
        self.ex.durable().expect("a durable execution")
    }

    /// The open invocation's latest token, as sent.
    fn token(&self) -> String {
        self.run()
            .invocations()
            .token()
            .expect("an invocation is open")
            .encode()
    }

    /// A checkpoint of the open invocation with its latest token.
    fn checkpoint(&mut self, client_token: &str, updates: Vec<OperationUpdate>) -> CheckpointReply {
        let token = self.token();
        self.checkpoint_with(&token, client_token, updates, BTreeMap::new())
            .expect("the checkpoint is accepted");
        self.run()
            .invocations()
            .reply_to(client_token, &token)
            .expect("the reply is kept for the ClientToken")
            .clone()
    }

    fn checkpoint_with(
        &mut self,
        token: &str,
        client_token: &str,
        updates: Vec<OperationUpdate>,
        unresolvable: BTreeMap<String, ErrorObject>,
    ) -> Result<Applied, Error> {
        self.durable(DurableInput::Checkpoint {
            token: token.into(),
            client_token: client_token.into(),
            updates,
            unresolvable,
            dispatched: BTreeMap::new(),
        })
    }

    /// The open invocation answers.
    fn answer(&mut self, answer: Answer) -> Applied {
        let number = self.open().expect("an invocation is open");
        self.durable(DurableInput::InvocationEnded { number, answer })
            .expect("the answer is decided")
    }

    /// Chained invoke `op`'s target answers.
    fn invoke_ended(&mut self, op: &str, outcome: InvokeOutcome) -> Applied {
        self.durable(DurableInput::InvokeEnded {
            op: op.into(),
            outcome,
        })
        .expect("the outcome is decided")
    }

    fn open(&self) -> Option<u32> {
        self.run().invocations().current()
    }

    fn status(&self, op: &str) -> S {
        self.run()
            .operations()
            .get(op)
            .expect("the operation")
            .status
    }

    /// The durable effects of a decision.
    fn asked(applied: &Applied) -> Vec<Durable> {
        applied
            .effects
            .iter()
            .filter_map(|e| match e {
                Effect::Durable(d) => Some(d.clone()),
                _ => None,
            })
            .collect()
    }
}

fn invoke(number: u32) -> Durable {
    Durable::Invoke { number }
}

fn call(op: &str) -> Durable {
    Durable::Call { op: op.into() }
}

fn step_done(id: &str, result: &str) -> Vec<OperationUpdate> {
    let mut start = OperationUpdate::new(id, T::Step, A::Start);
    start.name = Some(id.into());
    let mut succeed = OperationUpdate::new(id, T::Step, A::Succeed);
    succeed.name = Some(id.into());
    succeed.payload = Some(result.into());
    vec![start, succeed]
}

fn chained_invoke(id: &str, function: &str) -> OperationUpdate {
    let mut u = OperationUpdate::new(id, T::ChainedInvoke, A::Start);
    u.name = Some(id.into());
    u.sub_type = Some("ChainedInvoke".into());
    u.payload = Some("{\"tripId\":\"t-1\"}".into());
    u.chained_invoke_options = Some(ChainedInvokeOptions {
        function_name: function.into(),
        tenant_id: None,
    });
    u
}

fn wait(id: &str, seconds: u64) -> OperationUpdate {
    let mut u = OperationUpdate::new(id, T::Wait, A::Start);
    u.name = Some(id.into());
    u.wait_options = Some(WaitOptions {
        wait_seconds: Some(seconds),
    });
    u
}

fn error(error_type: &str, message: &str) -> ErrorObject {
    ErrorObject {
        error_type: Some(error_type.into()),
        error_message: Some(message.into()),
        ..Default::default()
    }
}

fn succeeded(result: &str) -> InvokeOutcome {
    InvokeOutcome::Succeeded {
        result: Some(result.into()),
    }
}

fn crashed() -> Answer {
    Answer::Error {
        error_type: "Runtime.ExitError".into(),
        error_message: "the worker exited".into(),
    }
}

fn retry_timer(attempt: u32, fire_at: u64) -> Effect {
    Effect::StartTimer {
        step: INVOCATION_RETRY.into(),
        task: TaskKind::Action,
        attempt,
        fire_at,
    }
}

fn retry_fired(attempt: u32) -> Input {
    Input::TimerFired {
        step: INVOCATION_RETRY.into(),
        task: TaskKind::Action,
        attempt,
    }
}

/// The operation and invocation facts of a history, by short name.
fn facts(history: &[Event]) -> Vec<String> {
    history
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::DurableOperation { fact } => Some(match fact {
                OperationEvent::ChainedInvokeStarted { op, .. } => {
                    format!("ChainedInvokeStarted {}", op.id)
                }
                OperationEvent::ChainedInvokeEnded { id, outcome, .. } => {
                    format!("ChainedInvoke{:?} {id}", outcome.status())
                }
                other => {
                    let debug = format!("{other:?}");
                    debug.split([' ', '{']).next().unwrap_or("").to_string()
                }
            }),
            EventKind::DurableInvocation {
                fact: InvocationEvent::InvocationCompleted { .. },
            } => Some("InvocationCompleted".into()),
            _ => None,
        })
        .collect()
}

/// The start, the invocation's two checkpoints (a step; a chained invoke)
/// and its PENDING answer: the chained invoke is to be called.
fn pending_on_flight() -> (Trip, Applied) {
    let (mut trip, _) = Trip::start();
    trip.at(100)
        .checkpoint("c-1", step_done("generate-ids", "{\"t\":\"t-1\"}"));
    trip.checkpoint("c-2", vec![chained_invoke("flight", "saga-reserve-flight")]);
    let ended = trip.at(200).answer(Answer::Pending);
    (trip, ended)
}

#[test]
fn a_start_records_the_execution_operation_and_invocation_one_and_asks_for_it() {
    let (trip, applied) = Trip::start();
    let run = trip.run();
    let execution = run
        .operations()
        .execution()
        .expect("the EXECUTION operation");
    assert_eq!(execution.id, EXECUTION);
    assert_eq!(execution.status, S::Started);
    match &execution.details {
        Details::Execution(d) => assert_eq!(d.input_payload.as_deref(), Some("{\"a\":1}")),
        other => panic!("not an execution: {other:?}"),
    }
    assert_eq!(trip.open(), Some(1));
    assert_eq!(run.invocations().token().unwrap().invocation, 1);
    assert_eq!(Trip::asked(&applied), vec![invoke(1)]);
    let deadline = T0 + TIMEOUT_SECONDS * 1_000;
    assert_eq!(trip.ex.deadline(), Some(deadline));
    assert!(applied.effects.contains(&Effect::Deadline { at: deadline }));
    assert_eq!(trip.ex.status, Status::Running);
}

#[test]
fn a_checkpoint_is_stored_and_its_reply_holds_every_operation_it_touched() {
    let (mut trip, _) = Trip::start();
    let token = trip.token();
    let mut updates = step_done("generate-ids", "{\"t\":\"t-1\"}");
    updates.push(chained_invoke("flight", "saga-reserve-flight"));
    let applied = trip
        .at(100)
        .checkpoint_with(&token, "c-1", updates, BTreeMap::new())
        .unwrap();
    assert_eq!(
        facts(&applied.events),
        [
            "StepStarted",
            "StepSucceeded",
            "ChainedInvokeStarted flight"
        ]
    );
    assert_eq!(trip.status("generate-ids"), S::Succeeded);
    assert_eq!(trip.status("flight"), S::Started);
    let reply = trip.run().invocations().reply_to("c-1", &token).unwrap();
    let touched: Vec<_> = reply
        .new_execution_state
        .operations
        .iter()
        .map(|op| (op.id.as_str(), op.status))
        .collect();
    assert_eq!(
        touched,
        [("generate-ids", S::Succeeded), ("flight", S::Started)]
    );
    assert_eq!(reply.checkpoint_token, Some(trip.token()));
    assert_ne!(trip.token(), token, "each checkpoint hands out a new token");
    assert!(
        Trip::asked(&applied).is_empty(),
        "called when the invocation ends"
    );
}

#[test]
fn a_retried_checkpoint_with_the_same_client_token_records_nothing_and_gets_the_same_reply() {
    let (mut trip, _) = Trip::start();
    let token = trip.token();
    let first = trip.at(100).checkpoint("c-1", step_done("s", "1"));
    let again = trip
        .at(150)
        .checkpoint_with(&token, "c-1", step_done("s", "1"), BTreeMap::new())
        .expect("a retry is answered");
    assert!(again.events.is_empty() && again.effects.is_empty());
    assert_eq!(
        trip.run().invocations().reply_to("c-1", &token),
        Some(&first)
    );
}

#[test]
fn a_stale_or_bogus_checkpoint_token_is_refused_as_invalid() {
    let (mut trip, _) = Trip::start();
    let first = trip.token();
    trip.at(100).checkpoint("c-1", step_done("s", "1"));
    for token in [first.as_str(), "bogus", ""] {
        let refused = trip
            .checkpoint_with(token, "c-2", step_done("t", "2"), BTreeMap::new())
            .unwrap_err();
        match refused {
            Error::NotAllowed { message, .. } => {
                assert!(message.starts_with(INVALID_TOKEN), "{message}")
            }
            other => panic!("not a refusal: {other:?}"),
        }
    }
    assert!(trip.run().operations().get("t").is_none());
}

#[test]
fn an_invocation_ending_pending_has_its_chained_invoke_called_after_it_ends_and_no_new_invocation()
{
    let (trip, ended) = pending_on_flight();
    assert_eq!(Trip::asked(&ended), vec![call("flight")]);
    assert_eq!(facts(&ended.events), ["InvocationCompleted"]);
    assert_eq!(trip.open(), None);
    assert_eq!(trip.run().invocations().last(), 1);
    assert_eq!(
        trip.run().invocations().outcome(1),
        Some(&InvocationOutcome::Pending)
    );
    assert!(trip.run().invocations().token().is_none());
}

#[test]
fn a_chained_invoke_ending_while_no_invocation_is_open_starts_the_next_invocation() {
    let (mut trip, _) = pending_on_flight();
    let ended = trip
        .at(300)
        .invoke_ended("flight", succeeded("{\"bookingId\":\"b-1\"}"));
    assert_eq!(facts(&ended.events), ["ChainedInvokeSucceeded flight"]);
    assert_eq!(Trip::asked(&ended), vec![invoke(2)]);
    assert_eq!(trip.open(), Some(2));
    let again = trip
        .at(310)
        .invoke_ended("flight", succeeded("{\"bookingId\":\"b-1\"}"));
    assert!(
        again.events.is_empty(),
        "a second answer of one call is stale"
    );
}

#[test]
fn a_chained_invoke_ending_while_an_invocation_is_open_starts_the_next_only_when_that_one_ends() {
    let (mut trip, _) = Trip::start();
    trip.at(100).checkpoint(
        "c-1",
        vec![
            chained_invoke("flight", "saga-reserve-flight"),
            chained_invoke("hotel", "saga-reserve-hotel"),
        ],
    );
    let pending = trip.at(200).answer(Answer::Pending);
    assert_eq!(Trip::asked(&pending), vec![call("flight"), call("hotel")]);
    trip.at(300).invoke_ended("flight", succeeded("{}"));
    assert_eq!(trip.open(), Some(2));
    // The hotel ends while invocation 2 runs: nothing starts now.
    let hotel = trip.at(400).invoke_ended("hotel", succeeded("{}"));
    assert_eq!(facts(&hotel.events), ["ChainedInvokeSucceeded hotel"]);
    assert!(Trip::asked(&hotel).is_empty(), "{:?}", hotel.effects);
    assert_eq!(trip.open(), Some(2));
    // Invocation 2 began before the hotel ended: when it suspends, the
    // next one starts at once to see it.
    let ended = trip.at(500).answer(Answer::Pending);
    assert_eq!(Trip::asked(&ended), vec![invoke(3)]);
    // Invocation 3 saw everything: when it suspends, nothing starts.
    trip.at(600)
        .checkpoint("c-3", vec![chained_invoke("car", "saga-reserve-car")]);
    let ended = trip.at(700).answer(Answer::Pending);
    assert_eq!(Trip::asked(&ended), vec![call("car")]);
    assert_eq!(trip.open(), None);
}

#[test]
fn a_change_during_an_open_invocation_starts_the_next_one_only_when_it_ends() {
    let (mut trip, _) = Trip::start();
    trip.at(100)
        .checkpoint("c-1", vec![wait("w", 1), chained_invoke("flight", "f")]);
    // The wait ends while invocation 1 is still open: nothing starts.
    let fired = trip.at(1_100).decide(timer_of("w")).unwrap();
    assert_eq!(facts(&fired.events), ["WaitSucceeded"]);
    assert!(Trip::asked(&fired).is_empty());
    assert_eq!(trip.open(), Some(1));
    let ended = trip.at(1_200).answer(Answer::Pending);
    assert_eq!(Trip::asked(&ended), vec![call("flight"), invoke(2)]);
    assert_eq!(trip.open(), Some(2));
}

#[test]
fn an_unresolvable_chained_invoke_fails_in_the_same_reply_and_is_never_called() {
    let (mut trip, _) = Trip::start();
    let token = trip.token();
    let not_found = error("ResourceNotFoundException", "Function not found: nowhere");
    let unresolvable = BTreeMap::from([("lost".to_string(), not_found.clone())]);
    let applied = trip
        .at(100)
        .checkpoint_with(
            &token,
            "c-1",
            vec![chained_invoke("lost", "nowhere")],
            unresolvable,
        )
        .unwrap();
    assert_eq!(
        facts(&applied.events),
        ["ChainedInvokeStarted lost", "ChainedInvokeFailed lost"]
    );
    let reply = trip.run().invocations().reply_to("c-1", &token).unwrap();
    let op = &reply.new_execution_state.operations[0];
    assert_eq!((op.id.as_str(), op.status), ("lost", S::Failed));
    // The SDK suspends on the invoke anyway: it is invoked again at once to
    // see the failure, and the target is never called.
    let ended = trip.at(200).answer(Answer::Pending);
    assert_eq!(Trip::asked(&ended), vec![invoke(2)]);
    let replayed = Execution::replay(&trip.plan, &trip.history).unwrap();
    assert!(!replayed
        .outstanding(&trip.plan)
        .contains(&Effect::Durable(call("lost"))));
}

#[test]
fn a_chained_invoke_records_where_the_runtime_dispatches_it() {
    // AWS's ChainedInvokeStartedDetails show the version the target runs
    // and the child execution's ARN: the runtime resolves them before the
    // decision, and the started fact keeps them (and replays with them).
    let (mut trip, _) = Trip::start();
    let token = trip.token();
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:echo:$LATEST/durable-execution/n/i";
    let dispatch = InvokeDispatch {
        executed_version: Some("$LATEST".into()),
        durable_execution_arn: Some(arn.into()),
    };
    let applied = trip
        .at(100)
        .durable(DurableInput::Checkpoint {
            token,
            client_token: "c-1".into(),
            updates: vec![chained_invoke("echo-it", "echo")],
            unresolvable: BTreeMap::new(),
            dispatched: BTreeMap::from([("echo-it".to_string(), dispatch.clone())]),
        })
        .unwrap();
    let started: Vec<_> = applied
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::DurableOperation {
                fact: OperationEvent::ChainedInvokeStarted { dispatch, .. },
            } => Some(dispatch.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(started, [dispatch]);
}

/// The failBookCar loop: a step and three reservations, the car fails,
/// two compensations, then the function fails with its own error.
fn fail_book_car() -> (Trip, Applied) {
    let (mut trip, _) = Trip::start();
    let mut t = 0;
    let mut tick = |trip: &mut Trip| {
        t += 100;
        trip.at(t);
    };
    tick(&mut trip);
    trip.checkpoint(
        "c-1",
        step_done("generate-ids", "{\"transactionId\":\"t-1\"}"),
    );
    let rounds = [
        ("reserve_flight_invocation", "saga-reserve-flight", true),
        ("reserve_hotel_invocation", "saga-reserve-hotel", true),
        ("reserve_car_invocation", "saga-reserve-car", false),
        ("cancel_hotel_invocation", "saga-cancel-hotel", true),
        ("cancel_flight_invocation", "saga-cancel-flight", true),
    ];
    for (n, (op, function, ok)) in rounds.into_iter().enumerate() {
        tick(&mut trip);
        trip.checkpoint(&format!("i-{n}"), vec![chained_invoke(op, function)]);
        tick(&mut trip);
        let pending = trip.answer(Answer::Pending);
        assert_eq!(Trip::asked(&pending), vec![call(op)]);
        tick(&mut trip);
        let outcome = if ok {
            succeeded("{\"status\":\"DONE\"}")
        } else {
            InvokeOutcome::Failed {
                error: error("RuntimeError", "Simulated car rental failure"),
            }
        };
        let ended = trip.invoke_ended(op, outcome);
        assert_eq!(Trip::asked(&ended), vec![invoke(n as u32 + 2)]);
    }
    tick(&mut trip);
    let end = trip.answer(Answer::Failed(Some(error(
        "Exception",
        "Saga transaction failed and compensated.",
    ))));
    (trip, end)
}

#[test]
fn the_fail_book_car_loop_takes_six_invocations_and_fails_with_the_functions_error() {
    let (trip, end) = fail_book_car();
    assert_eq!(trip.run().invocations().last(), 6);
    assert_eq!(
        facts(&trip.history),
        [
            "ExecutionStarted",
            "StepStarted",
            "StepSucceeded",
            "ChainedInvokeStarted reserve_flight_invocation",
            "InvocationCompleted",
            "ChainedInvokeSucceeded reserve_flight_invocation",
            "ChainedInvokeStarted reserve_hotel_invocation",
            "InvocationCompleted",
            "ChainedInvokeSucceeded reserve_hotel_invocation",
            "ChainedInvokeStarted reserve_car_invocation",
            "InvocationCompleted",
            "ChainedInvokeFailed reserve_car_invocation",
            "ChainedInvokeStarted cancel_hotel_invocation",
            "InvocationCompleted",
            "ChainedInvokeSucceeded cancel_hotel_invocation",
            "ChainedInvokeStarted cancel_flight_invocation",
            "InvocationCompleted",
            "ChainedInvokeSucceeded cancel_flight_invocation",
            "InvocationCompleted",
            "ExecutionFailed",
        ]
    );
    assert_eq!(trip.ex.status, Status::Failed);
    let error = trip.ex.error.as_ref().expect("the function's error");
    assert_eq!(error.error, "Exception");
    assert_eq!(error.cause, "Saga transaction failed and compensated.");
    assert!(end.effects.contains(&Effect::Finished {
        status: Status::Failed
    }));
    assert!(trip.run().invocations().token().is_none());
    assert!(trip.ex.outstanding(&trip.plan).is_empty());
}

#[test]
fn the_fail_book_car_execution_is_drawn_as_its_operations_with_six_invocations() {
    let (trip, _) = fail_book_car();
    let drawn = sagaflow_core::graph::of_execution(
        &trip.plan,
        &trip.history,
        &sagaflow_core::StuckPolicy::default(),
    )
    .expect("the history draws");
    let g = &drawn.graph;
    assert_eq!(g.kind, "durable");
    let state = |id: &str| {
        g.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
            .state
    };
    use sagaflow_core::graph::NodeState as N;
    assert_eq!(state("saga-durable-function"), Some(N::Failed));
    assert_eq!(state("generate-ids"), Some(N::Succeeded));
    assert_eq!(state("reserve_flight_invocation"), Some(N::Succeeded));
    assert_eq!(state("reserve_car_invocation"), Some(N::Failed));
    let car = g
        .nodes
        .iter()
        .find(|n| n.id == "reserve_car_invocation")
        .unwrap();
    assert_eq!(car.node_type, "CHAINED_INVOKE");
    assert_eq!(
        car.error.as_ref().map(|e| e.cause.as_str()),
        Some("Simulated car rental failure")
    );
    // Siblings in the order they started.
    assert!(g
        .edges
        .iter()
        .any(|e| e.from == "reserve_car_invocation" && e.to == "cancel_hotel_invocation"));
    assert_eq!(drawn.invocations.len(), 6);
    assert!(drawn.invocations[..5]
        .iter()
        .all(|i| i.outcome == "pending"));
    assert_eq!(drawn.invocations[5].outcome, "failed");
    let why = drawn.why.expect("a failed execution says why");
    assert!(
        why.contains("Saga transaction failed and compensated."),
        "{why}"
    );
}

#[test]
fn a_succeeded_answer_ends_the_execution_with_its_result_as_json_output() {
    let (mut trip, _) = pending_on_flight();
    trip.at(300).invoke_ended("flight", succeeded("{}"));
    let end = trip
        .at(400)
        .answer(Answer::Succeeded(Some("{\"trip\":\"booked\"}".into())));
    assert_eq!(
        facts(&end.events),
        ["InvocationCompleted", "ExecutionSucceeded"]
    );
    assert_eq!(trip.ex.status, Status::Succeeded);
    assert_eq!(trip.ex.output, Some(json!({"trip": "booked"})));
    assert_eq!(trip.ex.error, None);
}

#[test]
fn a_failed_invocation_is_retried_after_a_doubling_backoff_capped_at_its_maximum() {
    let (mut trip, _) = Trip::start();
    let mut t = 0;
    let mut expected_delay = FIRST_RETRY_DELAY_MS;
    for number in 1..=8u32 {
        t += 50;
        let failed = trip.at(t).answer(crashed());
        assert_eq!(
            trip.run().invocations().outcome(number),
            Some(&InvocationOutcome::Error {
                error_type: "Runtime.ExitError".into(),
                error_message: "the worker exited".into(),
            })
        );
        let fire_at = T0 + t + expected_delay;
        assert_eq!(
            failed.effects,
            vec![retry_timer(number, fire_at)],
            "invocation {number}"
        );
        assert_eq!(trip.open(), None);
        t += expected_delay;
        let fired = trip.at(t).decide(retry_fired(number)).unwrap();
        assert_eq!(Trip::asked(&fired), vec![invoke(number + 1)]);
        expected_delay = (expected_delay * 2).min(MAX_RETRY_DELAY_MS);
    }
    assert_eq!(expected_delay, MAX_RETRY_DELAY_MS, "the cap was reached");
    // An answer resets the backoff.
    trip.at(t + 10)
        .checkpoint("c", vec![chained_invoke("flight", "f")]);
    trip.answer(Answer::Pending);
    trip.at(t + 20).invoke_ended("flight", succeeded("{}"));
    let failed = trip.at(t + 30).answer(crashed());
    assert_eq!(
        failed.effects,
        vec![retry_timer(10, T0 + t + 30 + FIRST_RETRY_DELAY_MS)]
    );
}

#[test]
fn a_stale_invocation_retry_timer_does_nothing() {
    let (mut trip, _) = Trip::start();
    trip.at(100).answer(crashed());
    trip.at(1_100).decide(retry_fired(1)).unwrap();
    assert_eq!(trip.open(), Some(2));
    // Fired again (a duplicate), while invocation 2 runs or after it failed.
    for _ in 0..2 {
        let stale = trip.at(1_200).decide(retry_fired(1)).unwrap();
        assert!(stale.events.is_empty(), "{:?}", stale.events);
        if trip.open().is_some() {
            trip.answer(crashed());
        }
    }
    // An invocation that answered leaves no retry to fire.
    let fired = trip.at(5_000).decide(retry_fired(2)).unwrap();
    assert_eq!(Trip::asked(&fired), vec![invoke(3)]);
    trip.checkpoint("c", vec![chained_invoke("flight", "f")]);
    trip.answer(Answer::Pending);
    let stale = trip.at(9_000).decide(retry_fired(3)).unwrap();
    assert!(stale.events.is_empty());
}

/// The start and invocation 1 with a chained invoke: then the process
/// dies; the state is rebuilt from the stored history.
fn crashed_with_invocation_open() -> (Trip, String) {
    let (mut trip, _) = Trip::start();
    trip.at(100)
        .checkpoint("c-1", vec![chained_invoke("flight", "f")]);
    let token = trip.token();
    trip.ex = Execution::replay(&trip.plan, &trip.history).unwrap();
    (trip, token)
}

#[test]
fn a_replayed_history_with_an_open_invocation_asks_for_recovery() {
    let (trip, _) = crashed_with_invocation_open();
    let outstanding = trip.ex.outstanding(&trip.plan);
    assert!(outstanding
        .iter()
        .any(|e| matches!(e, Effect::Durable(Durable::Recover { .. }))));
    assert!(
        !outstanding.contains(&Effect::Durable(call("flight"))),
        "called when the lost invocation is closed: {outstanding:?}"
    );
    assert!(outstanding.contains(&Effect::Deadline {
        at: T0 + TIMEOUT_SECONDS * 1_000
    }));
}

#[test]
fn recovery_closes_the_lost_invocation_and_starts_the_next_at_once() {
    let (mut trip, token) = crashed_with_invocation_open();
    let recovered = {
        let number = trip.run().invocations().current().unwrap();
        trip.at(5_000).durable(DurableInput::Recover { number })
    }
    .unwrap();
    match &recovered.events[0].kind {
        EventKind::DurableInvocation {
            fact:
                InvocationEvent::InvocationCompleted {
                    number: 1,
                    outcome: InvocationOutcome::Error { error_type, .. },
                    ..
                },
        } => assert_eq!(error_type, INVOCATION_LOST),
        other => panic!("not the lost invocation's end: {other:?}"),
    }
    let asked = Trip::asked(&recovered);
    assert!(asked.contains(&call("flight")), "{asked:?}");
    assert!(asked.contains(&invoke(2)), "{asked:?}");
    assert_eq!(trip.open(), Some(2));
    let refused = trip
        .checkpoint_with(&token, "c-9", step_done("s", "1"), BTreeMap::new())
        .unwrap_err();
    assert!(refused.to_string().contains(INVALID_TOKEN), "{refused}");
}

/// A checkpoint whose EXECUTION update ends the execution (a large result
/// goes this way), then the process dies before the invocation answers.
fn crashed_after_the_execution_update(update: OperationUpdate) -> Trip {
    let (mut trip, _) = Trip::start();
    let token = trip.token();
    let applied = trip
        .at(100)
        .checkpoint_with(&token, "c-1", vec![update], BTreeMap::new())
        .unwrap();
    assert!(!applied.events.is_empty());
    assert!(trip.run().operations().is_ended());
    assert_eq!(trip.ex.status, Status::Running, "ended when it answers");
    trip.ex = Execution::replay(&trip.plan, &trip.history).unwrap();
    assert!(trip
        .ex
        .outstanding(&trip.plan)
        .iter()
        .any(|e| matches!(e, Effect::Durable(Durable::Recover { .. }))));
    trip
}

#[test]
fn an_execution_its_checkpoint_succeeded_ends_succeeded_when_its_lost_invocation_is_recovered() {
    let mut update = OperationUpdate::new(EXECUTION, T::Execution, A::Succeed);
    update.payload = Some("{\"trip\":\"booked\"}".into());
    let mut trip = crashed_after_the_execution_update(update);
    let recovered = {
        let number = trip.run().invocations().current().unwrap();
        trip.at(5_000).durable(DurableInput::Recover { number })
    }
    .unwrap();
    assert!(
        Trip::asked(&recovered).is_empty(),
        "no invocation after the end"
    );
    assert_eq!(trip.ex.status, Status::Succeeded);
    assert_eq!(trip.ex.output, Some(json!({"trip": "booked"})));
    assert!(trip.ex.outstanding(&trip.plan).is_empty());
}

#[test]
fn an_execution_its_checkpoint_failed_ends_failed_when_its_lost_invocation_is_recovered() {
    let mut update = OperationUpdate::new(EXECUTION, T::Execution, A::Fail);
    update.error = Some(error("Exception", "compensated"));
    let mut trip = crashed_after_the_execution_update(update);
    {
        let number = trip.run().invocations().current().unwrap();
        trip.at(5_000).durable(DurableInput::Recover { number })
    }
    .unwrap();
    assert_eq!(trip.ex.status, Status::Failed);
    let e = trip.ex.error.as_ref().unwrap();
    assert_eq!(
        (e.error.as_str(), e.cause.as_str()),
        ("Exception", "compensated")
    );
}

#[test]
fn an_execution_its_checkpoint_succeeded_ends_succeeded_when_its_invocation_crashes() {
    let (mut trip, _) = Trip::start();
    let mut update = OperationUpdate::new(EXECUTION, T::Execution, A::Succeed);
    update.payload = Some("1".into());
    let reply = trip.at(100).checkpoint("c-1", vec![update]);
    assert_eq!(reply.checkpoint_token, None, "no token once it ended");
    let crash = trip.at(200).answer(crashed());
    assert_eq!(trip.ex.status, Status::Succeeded);
    assert_eq!(trip.ex.output, Some(json!(1)));
    assert!(crash.effects.contains(&Effect::Finished {
        status: Status::Succeeded
    }));
}

#[test]
fn a_second_recovery_signal_for_the_same_invocation_leaves_the_next_one_alone() {
    let (mut trip, _) = crashed_with_invocation_open();
    let number = trip.run().invocations().current().unwrap();
    trip.at(5_000)
        .durable(DurableInput::Recover { number })
        .unwrap();
    let next = trip.run().invocations().current();
    assert_eq!(next, Some(number + 1), "the next invocation runs");
    let again = trip
        .at(5_100)
        .durable(DurableInput::Recover { number })
        .unwrap();
    assert!(again.events.is_empty(), "a stale signal records nothing");
    assert_eq!(trip.run().invocations().current(), next);
}

#[test]
fn chained_invokes_of_a_completed_invocation_not_yet_ended_are_called_again_after_a_restart() {
    let (mut trip, _) = pending_on_flight();
    trip.ex = Execution::replay(&trip.plan, &trip.history).unwrap();
    let outstanding = trip.ex.outstanding(&trip.plan);
    assert!(outstanding.contains(&Effect::Durable(call("flight"))));
    assert!(!outstanding
        .iter()
        .any(|e| matches!(e, Effect::Durable(Durable::Recover { .. }))));
    let ended = trip.at(300).invoke_ended("flight", succeeded("{}"));
    assert_eq!(Trip::asked(&ended), vec![invoke(2)]);
}

fn timer_of(op: &str) -> Input {
    Input::TimerFired {
        step: op.into(),
        task: TaskKind::Action,
        attempt: 0,
    }
}

#[test]
fn a_wait_arms_its_timer_and_succeeds_at_its_end_starting_an_invocation() {
    let (mut trip, _) = Trip::start();
    let token = trip.token();
    let started = trip
        .at(100)
        .checkpoint_with(&token, "c-1", vec![wait("w", 5)], BTreeMap::new())
        .unwrap();
    let end = T0 + 100 + 5_000;
    assert_eq!(
        started.effects,
        vec![Effect::StartTimer {
            step: "w".into(),
            task: TaskKind::Action,
            attempt: 0,
            fire_at: end,
        }]
    );
    trip.at(200).answer(Answer::Pending);
    let early = trip.at(5_099).decide(timer_of("w")).unwrap();
    assert!(early.events.is_empty(), "early: nothing");
    assert_eq!(trip.status("w"), S::Started);
    let fired = trip.at(5_100).decide(timer_of("w")).unwrap();
    assert_eq!(facts(&fired.events), ["WaitSucceeded"]);
    assert_eq!(trip.status("w"), S::Succeeded);
    assert_eq!(Trip::asked(&fired), vec![invoke(2)]);
    let late = trip.at(6_000).decide(timer_of("w")).unwrap();
    assert!(late.events.is_empty(), "a second firing is stale");
}

#[test]
fn a_stop_ends_the_execution_cancelled_and_revokes_the_open_invocations_token() {
    let (mut trip, _) = Trip::start();
    let token = trip.token();
    let stopped = trip
        .at(100)
        .durable(DurableInput::Stop {
            error: Some(error("UserStop", "no more trips")),
        })
        .unwrap();
    assert!(stopped.effects.contains(&Effect::Finished {
        status: Status::Cancelled
    }));
    assert_eq!(trip.ex.status, Status::Cancelled);
    let e = trip.ex.error.as_ref().unwrap();
    assert_eq!(
        (e.error.as_str(), e.cause.as_str()),
        ("UserStop", "no more trips")
    );
    assert!(trip.run().invocations().is_revoked());
    assert!(trip
        .run()
        .invocations()
        .check_token(&token)
        .is_err_and(|r| r.message.starts_with(INVALID_TOKEN)));
    // The execution is over: a late checkpoint is refused as an invalid
    // token (the SDK stops), a late answer is ignored.
    let late = trip
        .checkpoint_with(&token, "c-1", step_done("s", "1"), BTreeMap::new())
        .unwrap_err();
    assert!(
        late.to_string().starts_with(INVALID_TOKEN),
        "refused as an invalid token: {late}"
    );
    let late = trip.at(200).answer(Answer::Succeeded(Some("1".into())));
    assert!(late.events.is_empty());
    assert_eq!(trip.ex.status, Status::Cancelled);
}

#[test]
fn after_the_end_callbacks_and_stops_are_refused_so_their_callers_hear_it() {
    let (mut trip, _) = Trip::start();
    trip.at(100)
        .durable(DurableInput::Stop { error: None })
        .unwrap();
    let callback = trip
        .at(200)
        .durable(DurableInput::CallbackCompleted {
            callback_id: "any".into(),
            outcome: CallbackOutcome::Succeeded { result: None },
        })
        .unwrap_err();
    assert_eq!(callback.code(), "callback_closed");
    let stop = trip
        .at(300)
        .durable(DurableInput::Stop { error: None })
        .unwrap_err();
    assert_eq!(stop.code(), "execution_finished");
}

/// The names of every operation and invocation fact of a decision.
fn every_fact(events: &[Event]) -> Vec<String> {
    let name = |debug: String| debug.split([' ', '{']).next().unwrap_or("").to_string();
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::DurableOperation { fact } => Some(name(format!("{fact:?}"))),
            EventKind::DurableInvocation { fact } => Some(name(format!("{fact:?}"))),
            _ => None,
        })
        .collect()
}

/// A callback update, as the SDK's `create_callback` sends it.
fn callback(id: &str) -> OperationUpdate {
    let mut start = OperationUpdate::new(id, T::Callback, A::Start);
    start.name = Some(id.into());
    start.callback_options = Some(CallbackOptions {
        timeout_seconds: Some(3_600),
        heartbeat_timeout_seconds: None,
    });
    start
}

#[test]
fn a_cancel_fails_what_the_suspended_code_waits_on_and_invokes_it_to_compensate() {
    let (mut trip, _) = Trip::start();
    let token = trip.token();
    trip.at(100)
        .checkpoint_with(
            &token,
            "c-1",
            vec![wait("hold", 600), callback("approval")],
            BTreeMap::new(),
        )
        .unwrap();
    trip.at(200).answer(Answer::Pending);
    let cancelled = trip
        .at(300)
        .decide(Input::Cancel {
            reason: "changed plans".into(),
        })
        .unwrap();
    assert_eq!(
        every_fact(&cancelled.events),
        [
            "CancelRequested",
            "WaitCancelled",
            "CallbackEnded",
            "CancelDelivered",
            "InvocationStarted"
        ]
    );
    assert_eq!(Trip::asked(&cancelled), vec![invoke(2)]);
    assert_eq!(trip.status("hold"), S::Cancelled);
    assert_eq!(trip.status("approval"), S::Failed);
    let Details::Callback(approval) = &trip.run().operations().get("approval").unwrap().details
    else {
        panic!("a callback");
    };
    let failure = approval.error.as_ref().unwrap();
    assert_eq!(
        (
            failure.error_type.as_deref(),
            failure.error_message.as_deref()
        ),
        (Some(CANCELLED), Some("changed plans"))
    );
    assert_eq!(trip.ex.status, Status::Running, "the code decides the end");
    // The wait's timer is stale now.
    let fired = trip.at(600_100).decide(timer_of("hold")).unwrap();
    assert!(fired.events.is_empty());
    // The code compensated and says so: the execution ends compensated.
    trip.at(700).answer(Answer::Failed(Some(error(
        SAGA_COMPENSATED,
        "SagaCompensated: {}",
    ))));
    assert_eq!(trip.ex.status, Status::Compensated);
}

#[test]
fn a_cancelled_code_that_suspends_again_with_nothing_to_wake_it_is_stopped() {
    let (mut trip, _) = Trip::start();
    let token = trip.token();
    trip.at(100)
        .checkpoint_with(&token, "c-1", vec![wait("w", 30)], BTreeMap::new())
        .unwrap();
    trip.at(200).answer(Answer::Pending);
    trip.at(300)
        .decide(Input::Cancel {
            reason: "changed plans".into(),
        })
        .unwrap();
    assert_eq!(trip.status("w"), S::Cancelled);
    // An SDK that does not treat a cancelled wait as an error suspends on
    // it again: nothing would ever invoke it, so the cancel stops it.
    let suspended = trip.at(400).answer(Answer::Pending);
    assert!(suspended.effects.contains(&Effect::Finished {
        status: Status::Cancelled
    }));
    let e = trip.ex.error.as_ref().unwrap();
    assert_eq!(
        (e.error.as_str(), e.cause.as_str()),
        (CANCELLED, "changed plans")
    );
}

#[test]
fn a_cancel_while_the_code_waits_on_a_chained_invoke_reaches_it_at_its_next_wait() {
    let (mut trip, _) = pending_on_flight();
    let asked = trip
        .at(300)
        .decide(Input::Cancel {
            reason: "changed plans".into(),
        })
        .unwrap();
    assert_eq!(every_fact(&asked.events), ["CancelRequested"]);
    assert!(asked.effects.is_empty(), "the booking call goes on");
    let again = trip
        .decide(Input::Cancel {
            reason: "again".into(),
        })
        .unwrap();
    assert!(again.events.is_empty(), "asked already: nothing new");
    // The flight answers: the code runs on and waits.
    let ended = trip.at(400).invoke_ended("flight", succeeded("{}"));
    let number = trip.open().expect("the code is invoked with the answer");
    assert_eq!(Trip::asked(&ended), vec![invoke(number)]);
    let token = trip.token();
    trip.at(500)
        .checkpoint_with(&token, "c-9", vec![wait("hold", 600)], BTreeMap::new())
        .unwrap();
    let suspended = trip.at(600).answer(Answer::Pending);
    assert_eq!(
        every_fact(&suspended.events),
        [
            "InvocationCompleted",
            "WaitCancelled",
            "CancelDelivered",
            "InvocationStarted"
        ]
    );
    assert_eq!(trip.status("hold"), S::Cancelled);
}

#[test]
fn a_cancelled_execution_that_never_waits_again_ends_as_its_code_decides() {
    let (mut trip, _) = pending_on_flight();
    trip.at(300)
        .decide(Input::Cancel {
            reason: "too late".into(),
        })
        .unwrap();
    trip.at(400).invoke_ended("flight", succeeded("{}"));
    trip.at(500)
        .answer(Answer::Succeeded(Some("\"booked\"".into())));
    assert_eq!(trip.ex.status, Status::Succeeded);
    let after = trip.decide(Input::Cancel {
        reason: "again".into(),
    });
    assert!(after.is_err(), "a cancel after the end is refused");
}

#[test]
fn the_deadline_passing_ends_the_execution_timed_out_and_revokes_its_token() {
    let (mut trip, _) = Trip::start();
    let token = trip.token();
    let deadline = TIMEOUT_SECONDS * 1_000;
    let early = trip.at(deadline - 1).decide(Input::DeadlinePassed).unwrap();
    assert!(early.events.is_empty(), "before the deadline: stale");
    let timed_out = trip.at(deadline).decide(Input::DeadlinePassed).unwrap();
    assert!(timed_out.effects.contains(&Effect::Finished {
        status: Status::TimedOut
    }));
    assert_eq!(trip.ex.status, Status::TimedOut);
    assert_eq!(trip.ex.error.as_ref().unwrap().error, TIMEOUT);
    assert!(trip.run().invocations().check_token(&token).is_err());
    let late = trip.at(deadline + 10).answer(Answer::Pending);
    assert!(late.events.is_empty());
}

#[test]
fn a_durable_execution_cannot_be_redriven() {
    let (mut trip, _) = fail_book_car();
    assert_eq!(trip.ex.status, Status::Failed);
    let refused = trip.at(100_000).decide(Input::Redrive).unwrap_err();
    assert!(matches!(
        refused,
        Error::NotAllowed {
            code: "not_redrivable",
            ..
        }
    ));
    assert_eq!(trip.ex.status, Status::Failed);
}

#[test]
fn a_retried_step_arms_its_timer_and_its_next_attempt_due_starts_an_invocation() {
    let (mut trip, _) = Trip::start();
    let mut start = OperationUpdate::new("charge", T::Step, A::Start);
    start.name = Some("charge".into());
    let mut retry = OperationUpdate::new("charge", T::Step, A::Retry);
    retry.error = Some(error("Exception", "declined"));
    retry.step_options = Some(StepOptions {
        next_attempt_delay_seconds: Some(2),
    });
    let token = trip.token();
    let applied = trip
        .at(100)
        .checkpoint_with(&token, "c-1", vec![start, retry], BTreeMap::new())
        .unwrap();
    let due = T0 + 100 + 2_000;
    assert_eq!(
        applied.effects,
        vec![Effect::StartTimer {
            step: "charge".into(),
            task: TaskKind::Action,
            attempt: 0,
            fire_at: due,
        }]
    );
    assert_eq!(trip.status("charge"), S::Pending);
    trip.at(200).answer(Answer::Pending);
    let early = trip.at(2_099).decide(timer_of("charge")).unwrap();
    assert!(early.events.is_empty());
    let fired = trip.at(2_100).decide(timer_of("charge")).unwrap();
    assert_eq!(facts(&fired.events), ["StepReady"]);
    assert_eq!(trip.status("charge"), S::Ready);
    assert_eq!(Trip::asked(&fired), vec![invoke(2)]);
}

#[test]
fn a_completed_callback_starts_an_invocation_and_an_unknown_one_is_refused() {
    let (mut trip, _) = Trip::start();
    let mut start = OperationUpdate::new("approval", T::Callback, A::Start);
    start.name = Some("approval".into());
    start.callback_options = Some(CallbackOptions {
        timeout_seconds: None,
        heartbeat_timeout_seconds: None,
    });
    trip.at(100).checkpoint("c-1", vec![start]);
    trip.at(200).answer(Answer::Pending);
    assert_eq!(trip.open(), None);
    let callback_id = match &trip.run().operations().get("approval").unwrap().details {
        Details::Callback(d) => d.callback_id.clone().expect("a minted callback id"),
        other => panic!("not a callback: {other:?}"),
    };
    let unknown = trip.durable(DurableInput::CallbackCompleted {
        callback_id: "nope".into(),
        outcome: CallbackOutcome::Succeeded { result: None },
    });
    assert!(unknown.is_err());
    let heartbeat = trip
        .at(250)
        .durable(DurableInput::CallbackHeartbeat {
            callback_id: callback_id.clone(),
        })
        .unwrap();
    assert!(
        Trip::asked(&heartbeat).is_empty(),
        "a heartbeat wakes nothing"
    );
    let done = trip
        .at(300)
        .durable(DurableInput::CallbackCompleted {
            callback_id,
            outcome: CallbackOutcome::Succeeded {
                result: Some("\"yes\"".into()),
            },
        })
        .unwrap();
    assert_eq!(trip.status("approval"), S::Succeeded);
    assert_eq!(Trip::asked(&done), vec![invoke(2)]);
}

#[test]
fn a_code_saga_that_undid_everything_ends_compensated_and_one_that_could_not_ends_failed() {
    for (error_type, status) in [
        (SAGA_COMPENSATED, Status::Compensated),
        ("SagaFailed", Status::Failed),
    ] {
        let (mut trip, _) = Trip::start();
        trip.answer(Answer::Failed(Some(error(
            error_type,
            "SagaCompensated: {\"status\":\"compensated\"}",
        ))));
        assert_eq!(trip.ex.status, status, "{error_type}");
        let recorded = trip.ex.error.as_ref().expect("the function's error");
        assert_eq!(recorded.error, error_type);
    }
}
