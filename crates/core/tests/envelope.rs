//! What the envelope decides once for every kind of program: a start, a
//! cancel or redrive the status does not allow, stale inputs, a deadline
//! before its time — and that each program names what differs (a silent
//! heartbeat) while the runtime hands over the same input.

use sagaflow_core::asl::{ResourceMap, ResourceRule};
use sagaflow_core::error_name::{HEARTBEAT_TIMEOUT, TIMEOUT};
use sagaflow_core::{
    compile_definition, Ctx, Effect, EventKind, Execution, Input, Plan, Status, TaskKind,
};
use serde_json::json;

const SAGA: &str = r#"
name: trip
steps:
  - name: hotel
    callback: true
    heartbeat: 1s
    timeout: 1h
    action: { handler: hotel }
    compensation: { handler: cancel_hotel }
"#;

fn saga() -> Plan {
    compile_definition(SAGA, None, &ResourceMap::default()).expect("the saga compiles")
}

fn machine() -> Plan {
    let resources = ResourceMap {
        rules: vec![ResourceRule {
            pattern: "arn:aws:lambda:*:*:function:{name}".into(),
            target: "handler:{name}".into(),
        }],
    };
    let machine = json!({"StartAt": "hotel", "TimeoutSeconds": 60, "States": {"hotel": {
        "Type": "Task", "End": true, "HeartbeatSeconds": 1,
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"FunctionName": "hotel", "Payload": {"token.$": "$$.Task.Token"}}
    }}});
    compile_definition(&machine.to_string(), Some("trip"), &resources)
        .expect("the machine compiles")
}

fn at(now: u64) -> Ctx {
    Ctx {
        now,
        random: 0.5,
        entropy: 7,
    }
}

/// Starts `plan` and acknowledges its first task's call (it is parked).
fn started_and_parked(plan: &Plan) -> Execution {
    let mut ex = Execution::empty(plan);
    let start = Input::Start {
        execution_id: "ex-1".into(),
        definition: "trip".into(),
        version: 1,
        input: json!({}),
    };
    ex.decide_in_place(plan, start, at(1_000)).expect("starts");
    let parked = Input::TaskParked {
        step: "hotel".into(),
        task: TaskKind::Action,
        attempt: 1,
    };
    let applied = ex.decide_in_place(plan, parked, at(1_010)).expect("parks");
    assert_eq!(applied.events.len(), 1, "{:?}", applied.events);
    ex
}

fn silence() -> Input {
    Input::HeartbeatStopped {
        step: "hotel".into(),
        task: TaskKind::Action,
        attempt: 1,
        silence_ms: 1_000,
    }
}

fn failure_of_the_silent_task(plan: &Plan) -> String {
    let mut ex = started_and_parked(plan);
    let applied = ex
        .decide_in_place(plan, silence(), at(2_100))
        .expect("decides");
    applied
        .events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::StepFailed { error, .. } => Some(error.error.clone()),
            _ => None,
        })
        .expect("the silent task failed")
}

#[test]
fn a_silent_heartbeat_is_a_timeout_for_a_saga_and_a_heartbeat_timeout_for_asl() {
    assert_eq!(failure_of_the_silent_task(&saga()), TIMEOUT);
    assert_eq!(failure_of_the_silent_task(&machine()), HEARTBEAT_TIMEOUT);
}

#[test]
fn a_silence_reported_for_a_task_that_was_answered_is_stale() {
    for plan in [saga(), machine()] {
        let mut ex = started_and_parked(&plan);
        let done = Input::TaskSucceeded {
            step: "hotel".into(),
            task: TaskKind::Action,
            attempt: 1,
            output: json!({"booked": true}),
        };
        ex.decide_in_place(&plan, done, at(1_500)).expect("answers");
        let late = ex
            .decide_in_place(&plan, silence(), at(2_100))
            .expect("decides");
        assert!(late.events.is_empty(), "{:?}", late.events);
    }
}

#[test]
fn a_second_start_is_refused_whatever_the_program() {
    for plan in [saga(), machine()] {
        let mut ex = started_and_parked(&plan);
        let again = Input::Start {
            execution_id: "ex-1".into(),
            definition: "trip".into(),
            version: 1,
            input: json!({}),
        };
        let refused = ex.decide_in_place(&plan, again, at(1_100)).unwrap_err();
        assert_eq!(refused.code(), "already_started", "{}", plan.format());
    }
}

#[test]
fn a_redrive_of_an_execution_that_did_not_fail_is_refused_whatever_the_program() {
    for plan in [saga(), machine()] {
        let mut ex = started_and_parked(&plan);
        let refused = ex
            .decide_in_place(&plan, Input::Redrive, at(1_100))
            .unwrap_err();
        assert_eq!(refused.code(), "not_redrivable", "{}", plan.format());
        assert_eq!(ex.status, Status::Running);
    }
}

#[test]
fn a_cancel_after_the_end_is_refused_and_answers_after_it_are_ignored() {
    let plan = machine();
    let mut ex = started_and_parked(&plan);
    let cancel = Input::Cancel {
        reason: "changed my mind".into(),
    };
    ex.decide_in_place(&plan, cancel.clone(), at(1_100))
        .expect("cancels");
    assert_eq!(ex.status, Status::Cancelled);
    let refused = ex.decide_in_place(&plan, cancel, at(1_200)).unwrap_err();
    assert_eq!(refused.code(), "execution_finished");
    let late = Input::TaskSucceeded {
        step: "hotel".into(),
        task: TaskKind::Action,
        attempt: 1,
        output: json!({}),
    };
    let ignored = ex.decide_in_place(&plan, late, at(1_300)).expect("decides");
    assert!(ignored.events.is_empty(), "{:?}", ignored.events);
}

#[test]
fn a_deadline_input_before_the_deadline_is_stale() {
    let plan = machine();
    let mut ex = started_and_parked(&plan);
    assert_eq!(ex.deadline(), Some(1_000 + 60_000));
    let early = ex
        .decide_in_place(&plan, Input::DeadlinePassed, at(30_000))
        .expect("decides");
    assert!(early.events.is_empty(), "{:?}", early.events);
    let due = ex
        .decide_in_place(&plan, Input::DeadlinePassed, at(61_000))
        .expect("decides");
    assert_eq!(ex.status, Status::TimedOut, "{:?}", due.events);
    assert!(due.effects.contains(&Effect::Finished {
        status: Status::TimedOut
    }));
}

#[test]
fn a_history_replayed_against_a_definition_of_another_kind_is_refused_not_a_panic() {
    let (saga, machine) = (saga(), machine());
    let mut fresh = Execution::empty(&saga);
    let start = Input::Start {
        execution_id: "ex-1".into(),
        definition: "trip".into(),
        version: 1,
        input: json!({}),
    };
    let history = fresh
        .decide_in_place(&saga, start, at(1_000))
        .expect("starts")
        .events;
    let mut wrong = Execution::empty(&saga);
    let refused = wrong.apply(&machine, &history[0]).unwrap_err();
    assert_eq!(refused.code(), "illegal_transition");
    assert_eq!(wrong.events, 0, "a refused event changes nothing");
    assert_eq!(fresh.outstanding(&machine), Vec::new());
    assert!(!fresh.is_parked(&machine));
}
