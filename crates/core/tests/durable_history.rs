//! `GetDurableExecutionHistory` from recorded facts: the failBookCar
//! history of the spec (§4.11) built from real decisions (checkpoints
//! through `Invocations`, chained invokes ended by `Operations`), its
//! event types, ids and details, the history without execution data, the
//! vocabulary of retries, waits, callbacks and lost invocations, and
//! paging either way round behind opaque markers.

use sagaflow_core::durable::{
    first_page, history, history_page, request_id, CallbackOptions, ChainedInvokeOptions,
    Checkpoint, CheckpointToken, DurableExecutionArn, ErrorObject, Fact, HistoryEvent,
    InvocationEvent, InvocationOutcome, Invocations, InvokeOutcome, OperationAction as A,
    OperationEvent, OperationType as T, OperationUpdate, Operations, StepOptions, WaitOptions,
    INVALID_MARKER, INVALID_MAX_ITEMS,
};
use serde_json::{json, Value};

const T0: u64 = 1_700_000_000_000;
const INPUT: &str = "{\"scenario\": \"failBookCar\"}";

/// One stored fact, owned (the history reads them as [`Fact`]s).
enum Stored {
    Op(OperationEvent),
    Inv(InvocationEvent),
}

/// An execution driven the way the runtime drives it: decisions made by
/// `Operations`/`Invocations`, their facts folded in and kept in order.
struct Run {
    ops: Operations,
    inv: Invocations,
    facts: Vec<Stored>,
    now: u64,
    nonces: Vec<u64>,
}

impl Run {
    fn new() -> Run {
        let mut run = Run {
            ops: Operations::default(),
            inv: Invocations::new("exec"),
            facts: vec![],
            now: T0,
            nonces: vec![],
        };
        run.op(OperationEvent::ExecutionStarted {
            id: "exec".into(),
            input_payload: Some(INPUT.into()),
            at: T0,
        });
        run
    }

    fn tick(&mut self) -> u64 {
        self.now += 250;
        self.now
    }

    fn op(&mut self, fact: OperationEvent) {
        self.ops.apply(&fact).unwrap();
        self.facts.push(Stored::Op(fact));
    }

    fn invocation_fact(&mut self, fact: InvocationEvent) {
        self.inv.apply(&fact).unwrap();
        self.facts.push(Stored::Inv(fact));
    }

    fn start_invocation(&mut self) {
        let nonce = 0x5EED_0000 + self.nonces.len() as u64;
        self.nonces.push(nonce);
        let at = self.tick();
        let fact = self.inv.start(nonce, at).unwrap();
        self.invocation_fact(fact);
    }

    /// One checkpoint of the open invocation, accepted.
    fn checkpoint(&mut self, updates: &[OperationUpdate]) {
        let token = self.inv.token().map(CheckpointToken::encode).unwrap();
        let now = self.tick();
        let decided = self
            .inv
            .checkpoint(&self.ops, &token, Some("client"), updates, now, 7)
            .unwrap();
        let Checkpoint::Decided {
            applied, accepted, ..
        } = decided
        else {
            panic!("a new checkpoint is decided");
        };
        for fact in applied.events {
            self.op(fact);
        }
        self.invocation_fact(*accepted);
    }

    fn complete(&mut self, outcome: InvocationOutcome) {
        let at = self.tick();
        let fact = self.inv.complete(outcome, at).unwrap();
        self.invocation_fact(fact);
    }

    fn end_invoke(&mut self, id: &str, outcome: InvokeOutcome) {
        let at = self.tick();
        let fact = self.ops.end_chained_invoke(id, outcome, at).unwrap();
        self.op(fact);
    }

    fn facts(&self) -> impl Iterator<Item = Fact<'_>> {
        self.facts.iter().map(|f| match f {
            Stored::Op(e) => Fact::Operation(e),
            Stored::Inv(e) => Fact::Invocation(e),
        })
    }

    fn history(&self, include_data: bool) -> Vec<HistoryEvent> {
        history(self.facts(), Some(3600), include_data)
    }
}

fn step(id: &str, name: &str, action: A) -> OperationUpdate {
    let mut u = OperationUpdate::new(id, T::Step, action);
    u.name = Some(name.into());
    u.sub_type = Some("Step".into());
    u
}

fn invoke(id: &str, name: &str, function: &str, payload: &str) -> OperationUpdate {
    let mut u = OperationUpdate::new(id, T::ChainedInvoke, A::Start);
    u.name = Some(name.into());
    u.sub_type = Some("ChainedInvoke".into());
    u.payload = Some(payload.into());
    u.chained_invoke_options = Some(ChainedInvokeOptions {
        function_name: function.into(),
        tenant_id: None,
    });
    u
}

fn car_error() -> ErrorObject {
    ErrorObject {
        error_type: Some("RuntimeError".into()),
        error_message: Some("Simulated car rental failure for testing saga compensation".into()),
        error_data: None,
        stack_trace: Some(vec![
            "  File \"/var/task/app.py\", line 12, in handler".into(),
            "    raise RuntimeError(...)".into(),
        ]),
    }
}

fn saga_error() -> ErrorObject {
    ErrorObject {
        error_type: Some("Exception".into()),
        error_message: Some(
            "Saga transaction failed and compensated. Details: {\"transactionId\": \"t-1\", \"originalError\": \"Simulated car rental failure for testing saga compensation\"}".into(),
        ),
        ..ErrorObject::default()
    }
}

/// The failBookCar run of §4.11: six invocations, three reservations (the
/// car's failing), two compensations, then the function fails.
fn fail_book_car() -> Run {
    let mut run = Run::new();
    run.start_invocation();
    let mut ids = step("op-1", "generate-ids", A::Succeed);
    ids.payload = Some("{\"transactionId\": \"t-1\"}".into());
    run.checkpoint(&[step("op-1", "generate-ids", A::Start), ids]);
    let calls = [
        ("op-2", "reserve_flight_invocation", "saga-reserve-flight"),
        ("op-3", "reserve_hotel_invocation", "saga-reserve-hotel"),
        ("op-4", "reserve_car_invocation", "saga-reserve-car"),
        ("op-5", "cancel_hotel_invocation", "saga-cancel-hotel"),
        ("op-6", "cancel_flight_invocation", "saga-cancel-flight"),
    ];
    for (k, (id, name, function)) in calls.into_iter().enumerate() {
        if k > 0 {
            run.start_invocation();
        }
        run.checkpoint(&[invoke(id, name, function, "{\"transactionId\": \"t-1\"}")]);
        run.complete(InvocationOutcome::Pending);
        let outcome = match id {
            "op-4" => InvokeOutcome::Failed { error: car_error() },
            "op-2" => InvokeOutcome::Succeeded {
                result: Some("{\"bookingId\": \"b-1\", \"status\": \"RESERVED\"}".into()),
            },
            _ => InvokeOutcome::Succeeded {
                result: Some(format!("{{\"{id}\": \"done\"}}")),
            },
        };
        run.end_invoke(id, outcome);
    }
    // The sixth invocation answers FAILED: its completion, then the
    // execution's end (as the host records them, §4.3).
    run.start_invocation();
    run.complete(InvocationOutcome::Failed);
    let mut fail = OperationUpdate::new("exec", T::Execution, A::Fail);
    fail.error = Some(saga_error());
    let at = run.tick();
    let applied = run.ops.apply_checkpoint(&[fail], at, 0).unwrap();
    for fact in applied.events {
        run.op(fact);
    }
    run
}

fn json_of(events: &[HistoryEvent]) -> Vec<Value> {
    events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect()
}

#[test]
fn the_fail_book_car_history_has_the_twenty_events_of_the_spec_in_order() {
    let run = fail_book_car();
    let events = json_of(&run.history(true));
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["EventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "ExecutionStarted",
            "StepStarted",
            "StepSucceeded",
            "ChainedInvokeStarted",
            "InvocationCompleted",
            "ChainedInvokeSucceeded",
            "ChainedInvokeStarted",
            "InvocationCompleted",
            "ChainedInvokeSucceeded",
            "ChainedInvokeStarted",
            "InvocationCompleted",
            "ChainedInvokeFailed",
            "ChainedInvokeStarted",
            "InvocationCompleted",
            "ChainedInvokeSucceeded",
            "ChainedInvokeStarted",
            "InvocationCompleted",
            "ChainedInvokeSucceeded",
            "InvocationCompleted",
            "ExecutionFailed",
        ]
    );
    let ids: Vec<u64> = events
        .iter()
        .map(|e| e["EventId"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, (1..=20).collect::<Vec<_>>());
    let names: Vec<Option<&str>> = events.iter().map(|e| e["Name"].as_str()).collect();
    assert_eq!(names[1], Some("generate-ids"));
    assert_eq!(names[3], Some("reserve_flight_invocation"));
    assert_eq!(names[5], Some("reserve_flight_invocation"));
    assert_eq!(names[11], Some("reserve_car_invocation"));
    assert_eq!(names[17], Some("cancel_flight_invocation"));
    for e in &events {
        // Exactly one details object, named after the type.
        let key = format!("{}Details", e["EventType"].as_str().unwrap());
        assert!(e[&key].is_object(), "{e}");
        let detail_keys = e
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| k.ends_with("Details"))
            .count();
        assert_eq!(detail_keys, 1, "{e}");
        assert!(e["EventTimestamp"].as_f64().unwrap() >= 1.7e9, "{e}");
    }
}

#[test]
fn the_fail_book_car_events_carry_the_spec_details_verbatim() {
    let run = fail_book_car();
    let events = json_of(&run.history(true));
    assert_eq!(
        events[0],
        json!({
            "EventType": "ExecutionStarted", "EventId": 1, "Id": "exec",
            "EventTimestamp": 1_700_000_000.0,
            "ExecutionStartedDetails": {
                "Input": {"Payload": INPUT, "Truncated": false},
                "ExecutionTimeout": 3600
            }
        })
    );
    assert_eq!(events[1]["SubType"], "Step");
    assert_eq!(events[1]["Id"], "op-1");
    assert_eq!(events[1]["StepStartedDetails"], json!({}));
    assert_eq!(
        events[2]["StepSucceededDetails"],
        json!({
            "Result": {"Payload": "{\"transactionId\": \"t-1\"}", "Truncated": false},
            "RetryDetails": {"CurrentAttempt": 1}
        })
    );
    assert_eq!(events[3]["SubType"], "ChainedInvoke");
    assert_eq!(
        events[3]["ChainedInvokeStartedDetails"],
        json!({
            "FunctionName": "saga-reserve-flight",
            "Input": {"Payload": "{\"transactionId\": \"t-1\"}", "Truncated": false}
        })
    );
    // The first invocation: from its start to its completion, by its id.
    let first = &events[4];
    assert!(first.get("Id").is_none() && first.get("SubType").is_none());
    let details = &first["InvocationCompletedDetails"];
    assert_eq!(details["StartTimestamp"], 1_700_000_000.25);
    assert_eq!(details["EndTimestamp"], first["EventTimestamp"]);
    assert_eq!(details["RequestId"], request_id(run.nonces[0], 1));
    assert!(details.get("Error").is_none());
    assert_eq!(
        events[5]["ChainedInvokeSucceededDetails"]["Result"]["Payload"],
        "{\"bookingId\": \"b-1\", \"status\": \"RESERVED\"}"
    );
    assert_eq!(
        events[11]["ChainedInvokeFailedDetails"],
        json!({"Error": {"Payload": serde_json::to_value(car_error()).unwrap(), "Truncated": false}})
    );
    assert_eq!(
        events[19]["ExecutionFailedDetails"]["Error"]["Payload"],
        serde_json::to_value(saga_error()).unwrap()
    );
    assert_eq!(
        events[18]["InvocationCompletedDetails"]["RequestId"],
        request_id(run.nonces[5], 6)
    );
    // Timestamps never go back.
    let times: Vec<f64> = events
        .iter()
        .map(|e| e["EventTimestamp"].as_f64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

#[test]
fn without_execution_data_payloads_are_left_out_and_errors_keep_only_their_type() {
    let run = fail_book_car();
    let full = json_of(&run.history(true));
    let bare = json_of(&run.history(false));
    assert_eq!(full.len(), bare.len());
    for (f, b) in full.iter().zip(&bare) {
        assert_eq!(f["EventType"], b["EventType"]);
        assert_eq!(f["EventId"], b["EventId"]);
        assert_eq!(f["Name"], b["Name"]);
    }
    assert_eq!(
        bare[0]["ExecutionStartedDetails"],
        json!({"ExecutionTimeout": 3600})
    );
    assert_eq!(
        bare[3]["ChainedInvokeStartedDetails"],
        json!({"FunctionName": "saga-reserve-flight"})
    );
    assert_eq!(bare[5]["ChainedInvokeSucceededDetails"], json!({}));
    assert_eq!(
        bare[11]["ChainedInvokeFailedDetails"],
        json!({"Error": {"Payload": {"ErrorType": "RuntimeError"}, "Truncated": false}})
    );
    assert_eq!(
        bare[19]["ExecutionFailedDetails"]["Error"]["Payload"],
        json!({"ErrorType": "Exception"})
    );
    let text = serde_json::to_string(&bare).unwrap();
    assert!(
        !text.contains("Simulated") && !text.contains("t-1"),
        "{text}"
    );
}

#[test]
fn request_ids_are_uuid_shaped_and_differ_by_invocation_and_nonce() {
    let id = request_id(42, 1);
    assert_eq!(id, request_id(42, 1));
    let parts: Vec<&str> = id.split('-').collect();
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12]
    );
    assert!(id
        .chars()
        .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)));
    assert!(parts[2].starts_with('4'), "{id}");
    assert!("89ab".contains(&parts[3][..1]), "{id}");
    assert_ne!(id, request_id(42, 2));
    assert_ne!(id, request_id(43, 1));
}

#[test]
fn retries_waits_callbacks_and_a_lost_invocation_use_the_aws_vocabulary() {
    let mut run = Run::new();
    run.start_invocation();
    let mut retry = step("s", "flaky", A::Retry);
    retry.error = Some(car_error());
    retry.step_options = Some(StepOptions {
        next_attempt_delay_seconds: Some(2),
    });
    let mut wait = OperationUpdate::new("w", T::Wait, A::Start);
    wait.sub_type = Some("Wait".into());
    wait.wait_options = Some(WaitOptions {
        wait_seconds: Some(1),
    });
    let mut callback = OperationUpdate::new("c", T::Callback, A::Start);
    callback.sub_type = Some("Callback".into());
    callback.callback_options = Some(CallbackOptions {
        timeout_seconds: Some(60),
        heartbeat_timeout_seconds: Some(0),
    });
    run.checkpoint(&[step("s", "flaky", A::Start), retry, wait, callback]);
    // The worker died: the restart closes the invocation as lost.
    let lost = run.inv.recover(run.now + 500).unwrap();
    run.invocation_fact(lost);
    run.now += 5000;
    for id in ["s", "w"] {
        let fact = run.ops.fire_timer(id, run.now).unwrap();
        run.op(fact);
    }
    let callback_id = match &run.ops.get("c").unwrap().details {
        sagaflow_core::durable::Details::Callback(d) => d.callback_id.clone().unwrap(),
        _ => unreachable!(),
    };
    let (beat, _) = run.ops.heartbeat_callback(&callback_id, run.now).unwrap();
    run.op(beat);
    run.start_invocation();
    let mut done = step("s", "flaky", A::Succeed);
    done.payload = Some("\"ok\"".into());
    run.checkpoint(&[step("s", "flaky", A::Start), done]);
    run.complete(InvocationOutcome::Pending);
    let events = json_of(&run.history(true));
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["EventType"].as_str().unwrap())
        .collect();
    // StepReady and the heartbeat have no AWS event.
    assert_eq!(
        types,
        [
            "ExecutionStarted",
            "StepStarted",
            "StepFailed",
            "WaitStarted",
            "CallbackStarted",
            "InvocationCompleted",
            "WaitSucceeded",
            "StepStarted",
            "StepSucceeded",
            "InvocationCompleted",
        ]
    );
    assert_eq!(
        events[2]["StepFailedDetails"]["RetryDetails"],
        json!({"CurrentAttempt": 1, "NextAttemptDelaySeconds": 2})
    );
    assert_eq!(events[2]["Name"], "flaky");
    assert_eq!(events[3]["WaitStartedDetails"]["Duration"], 1);
    assert_eq!(
        events[3]["WaitStartedDetails"]["ScheduledEndTimestamp"],
        events[3]["EventTimestamp"].as_f64().unwrap() + 1.0
    );
    assert_eq!(
        events[4]["CallbackStartedDetails"],
        json!({"CallbackId": callback_id, "Timeout": 60})
    );
    assert_eq!(
        events[5]["InvocationCompletedDetails"]["Error"]["Payload"]["ErrorType"],
        "Sagaflow.InvocationLost"
    );
    assert_eq!(events[6]["WaitSucceededDetails"], json!({"Duration": 1}));
    // The second start of the step keeps its name; the success is attempt 2.
    assert_eq!(events[7]["Name"], "flaky");
    assert_eq!(
        events[8]["StepSucceededDetails"]["RetryDetails"],
        json!({"CurrentAttempt": 2})
    );
}

#[test]
fn a_retry_without_an_error_is_a_step_succeeded_with_its_next_delay() {
    let mut run = Run::new();
    run.start_invocation();
    let mut again = step("s", "condition", A::Retry);
    again.step_options = Some(StepOptions {
        next_attempt_delay_seconds: Some(2),
    });
    run.checkpoint(&[step("s", "condition", A::Start), again]);
    let events = json_of(&run.history(true));
    assert_eq!(events[2]["EventType"], "StepSucceeded");
    assert_eq!(
        events[2]["StepSucceededDetails"],
        json!({"RetryDetails": {"CurrentAttempt": 1, "NextAttemptDelaySeconds": 2}})
    );
}

#[test]
fn pages_forward_and_backward_give_every_event_once_in_order() {
    let events = fail_book_car().history(true);
    for max in [1, 3, 7, 19, 20, 1000] {
        for reverse in [false, true] {
            let mut seen = vec![];
            let mut marker: Option<String> = None;
            loop {
                let (page, next) =
                    history_page(&events, marker.as_deref(), Some(max), reverse).unwrap();
                assert!(!page.is_empty() && page.len() <= max as usize);
                seen.extend(page);
                match next {
                    Some(next) => marker = Some(next),
                    None => break,
                }
            }
            let mut expected = events.clone();
            if reverse {
                expected.reverse();
            }
            assert_eq!(seen, expected, "max {max}, reverse {reverse}");
        }
    }
    let (all, next) = history_page(&events, None, None, false).unwrap();
    assert_eq!((all.len(), next), (20, None));
}

#[test]
fn a_foreign_marker_or_max_items_out_of_range_is_refused() {
    let events = fail_book_car().history(true);
    let (_, forward) = history_page(&events, None, Some(5), false).unwrap();
    let forward = forward.unwrap();
    let (_, backward) = history_page(&events, None, Some(5), true).unwrap();
    let backward = backward.unwrap();
    // A state marker (GetDurableExecutionState's) is not a history marker.
    let arn = DurableExecutionArn::parse(
        "arn:aws:lambda:us-east-1:123456789012:function:saga:$LATEST/durable-execution/n/exec",
    )
    .unwrap();
    let ops: Vec<_> = fail_book_car().ops.iter().cloned().collect();
    let state_marker = first_page(&arn, "token", &ops, 1)
        .initial_execution_state
        .next_marker
        .unwrap();
    for marker in [
        "garbage".to_string(),
        state_marker,
        // A marker of the other direction.
        backward,
        forward.clone() + "A",
    ] {
        let refusal = history_page(&events, Some(&marker), Some(5), false).unwrap_err();
        assert_eq!(refusal.code, INVALID_MARKER, "{marker}");
    }
    let refusal = history_page(&events, Some(&forward), None, true).unwrap_err();
    assert_eq!(refusal.code, INVALID_MARKER);
    // A marker past the end of a shorter history is not one of its own.
    let refusal = history_page(&events[..3], Some(&forward), None, false).unwrap_err();
    assert_eq!(refusal.code, INVALID_MARKER);
    for max in [0, 1001] {
        let refusal = history_page(&events, None, Some(max), false).unwrap_err();
        assert_eq!(refusal.code, INVALID_MAX_ITEMS);
    }
}

#[test]
fn a_chained_invoke_shows_its_executed_version_and_child_arn_as_aws_does() {
    // conformance invoke/5-1: ChainedInvokeStartedDetails{FunctionName,
    // Input, ExecutedVersion, DurableExecutionArn}; a fact stored before
    // the dispatch was kept reads back without them.
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:echo:$LATEST/durable-execution/n/i";
    let stored = json!({
        "type": "chained_invoke_started",
        "op": {"id": "op-1", "sub_type": "ChainedInvoke"},
        "function_name": "echo",
        "tenant_id": "t-1",
        "payload": "\"hi\"",
        "at": T0 + 1,
    });
    let old: OperationEvent = serde_json::from_value(stored.clone()).unwrap();
    let mut with_dispatch = stored;
    with_dispatch["executed_version"] = json!("$LATEST");
    with_dispatch["durable_execution_arn"] = json!(arn);
    let new: OperationEvent = serde_json::from_value(with_dispatch.clone()).unwrap();
    assert_eq!(serde_json::to_value(&new).unwrap(), with_dispatch);
    let mut run = Run::new();
    run.op(new);
    run.op(OperationEvent::ExecutionSucceeded {
        id: "exec".into(),
        result: None,
        at: T0 + 2,
    });
    let mut old_run = Run::new();
    old_run.op(old);
    let started = &json_of(&run.history(true))[1];
    assert_eq!(
        started["ChainedInvokeStartedDetails"],
        json!({
            "FunctionName": "echo",
            "TenantId": "t-1",
            "Input": {"Payload": "\"hi\"", "Truncated": false},
            "ExecutedVersion": "$LATEST",
            "DurableExecutionArn": arn,
        })
    );
    let started = &json_of(&old_run.history(true))[1];
    assert!(started["ChainedInvokeStartedDetails"]
        .get("ExecutedVersion")
        .is_none());
}
