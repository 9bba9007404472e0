//! The durable-functions operation model: each row of the checkpoint
//! transition table, the refusals, atomic batches, execution timeout and
//! stop, the invocation loop as facts (checkpoint tokens, `ClientToken`
//! replay, never two invocations at once, a lost invocation after a
//! crash), and two seeded property tests (decide = fold, live = replay,
//! tokens as valid after a restart).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sagaflow_core::durable::{
    Applied, CallbackOptions, CallbackOutcome, ChainedInvokeOptions, Checkpoint, CheckpointReply,
    CheckpointToken, ContextOptions, Details, ErrorObject, InvocationEvent, InvocationOutcome,
    Invocations, InvokeOutcome, Operation, OperationAction as A, OperationEvent,
    OperationStatus as S, OperationType as T, OperationUpdate, Operations, Outcome, Refusal,
    StepOptions, Timer, WaitOptions, INVALID_TOKEN,
};

const T0: u64 = 1_700_000_000_000;

fn started() -> Operations {
    let mut ops = Operations::default();
    ops.apply(&OperationEvent::ExecutionStarted {
        id: "exec".into(),
        input_payload: Some("{\"x\":1}".into()),
        at: T0,
    })
    .unwrap();
    ops
}

/// Decides a batch and, if accepted, folds its facts in (as the runtime will).
fn checkpoint(
    ops: &mut Operations,
    updates: &[OperationUpdate],
    now: u64,
) -> Result<Applied, Refusal> {
    let applied = ops.apply_checkpoint(updates, now, 42)?;
    for event in &applied.events {
        ops.apply(event).unwrap();
    }
    Ok(applied)
}

fn update(id: &str, t: T, a: A) -> OperationUpdate {
    let mut u = OperationUpdate::new(id, t, a);
    u.name = Some(format!("name-{id}"));
    u
}

fn succeed(id: &str, t: T, payload: &str) -> OperationUpdate {
    let mut u = update(id, t, A::Succeed);
    u.payload = Some(payload.into());
    u
}

fn error(message: &str) -> ErrorObject {
    ErrorObject {
        error_type: Some("Exception".into()),
        error_message: Some(message.into()),
        ..Default::default()
    }
}

fn fail(id: &str, t: T, message: &str) -> OperationUpdate {
    let mut u = update(id, t, A::Fail);
    u.error = Some(error(message));
    u
}

fn retry(id: &str, delay: u64) -> OperationUpdate {
    let mut u = update(id, T::Step, A::Retry);
    u.error = Some(error("boom"));
    u.step_options = Some(StepOptions {
        next_attempt_delay_seconds: Some(delay),
    });
    u
}

fn wait(id: &str, seconds: u64) -> OperationUpdate {
    let mut u = update(id, T::Wait, A::Start);
    u.wait_options = Some(WaitOptions {
        wait_seconds: Some(seconds),
    });
    u
}

fn invoke(id: &str, function: &str) -> OperationUpdate {
    let mut u = update(id, T::ChainedInvoke, A::Start);
    u.sub_type = Some("ChainedInvoke".into());
    u.payload = Some("{\"a\":1}".into());
    u.chained_invoke_options = Some(ChainedInvokeOptions {
        function_name: function.into(),
        tenant_id: None,
    });
    u
}

fn child(mut u: OperationUpdate, parent: &str) -> OperationUpdate {
    u.parent_id = Some(parent.into());
    u
}

fn step(ops: &Operations, id: &str) -> (S, sagaflow_core::durable::StepDetails) {
    let op = ops.get(id).unwrap();
    match &op.details {
        Details::Step(d) => (op.status, d.clone()),
        other => panic!("not a step: {other:?}"),
    }
}

fn refused(ops: &Operations, updates: &[OperationUpdate]) -> Refusal {
    let before = ops.clone();
    let refusal = ops.apply_checkpoint(updates, T0 + 5, 1).unwrap_err();
    assert_eq!(ops, &before);
    refusal
}

#[test]
fn a_step_started_and_succeeded_in_one_batch_is_succeeded_with_its_result() {
    let mut ops = started();
    let applied = checkpoint(
        &mut ops,
        &[
            update("s1", T::Step, A::Start),
            succeed("s1", T::Step, "{\"t\":\"m\"}"),
        ],
        T0 + 10,
    )
    .unwrap();
    let (status, details) = step(&ops, "s1");
    assert_eq!(status, S::Succeeded);
    assert_eq!(details.result.as_deref(), Some("{\"t\":\"m\"}"));
    assert_eq!(details.attempt, 0);
    assert_eq!(ops.get("s1").unwrap().end_timestamp, Some(T0 + 10));
    assert_eq!(applied.operations, vec![ops.get("s1").unwrap().clone()]);
    assert!(matches!(
        applied.events[0],
        OperationEvent::StepStarted { .. }
    ));
    assert!(matches!(
        applied.events[1],
        OperationEvent::StepSucceeded { .. }
    ));
    assert!(applied.timers.is_empty());
}

#[test]
fn a_step_that_fails_for_good_is_failed_with_its_error() {
    let mut ops = started();
    checkpoint(
        &mut ops,
        &[update("s1", T::Step, A::Start), fail("s1", T::Step, "no")],
        T0,
    )
    .unwrap();
    let (status, details) = step(&ops, "s1");
    assert_eq!(status, S::Failed);
    assert_eq!(details.error, Some(error("no")));
}

#[test]
fn a_retried_step_is_pending_until_its_timer_makes_it_ready_and_starts_again_keeping_its_attempt() {
    let mut ops = started();
    let applied = checkpoint(
        &mut ops,
        &[update("s1", T::Step, A::Start), retry("s1", 3)],
        T0,
    )
    .unwrap();
    let (status, details) = step(&ops, "s1");
    assert_eq!(status, S::Pending);
    assert_eq!(details.attempt, 1);
    assert_eq!(details.next_attempt_timestamp, Some(T0 + 3000));
    assert_eq!(details.error, Some(error("boom")));
    assert_eq!(
        ops.get("s1").unwrap().end_timestamp,
        None,
        "a retried step is not over"
    );
    assert_eq!(
        applied.timers,
        vec![Timer::RetryDue {
            id: "s1".into(),
            at: T0 + 3000
        }]
    );

    assert_eq!(ops.fire_timer("s1", T0 + 2999), None, "not due yet");
    let ready = ops.fire_timer("s1", T0 + 3000).unwrap();
    assert!(matches!(ready, OperationEvent::StepReady { .. }));
    ops.apply(&ready).unwrap();
    assert_eq!(step(&ops, "s1").0, S::Ready);

    checkpoint(&mut ops, &[update("s1", T::Step, A::Start)], T0 + 4000).unwrap();
    let (status, details) = step(&ops, "s1");
    assert_eq!((status, details.attempt), (S::Started, 1));
}

#[test]
fn a_retry_with_a_payload_keeps_it_as_the_steps_result_for_the_next_attempt() {
    // wait_for_condition carries its state from one check to the next in
    // the RETRY's Payload, and reads it back from StepDetails.Result.
    let mut ops = started();
    let mut again = retry("s1", 1);
    again.payload = Some("2".into());
    checkpoint(&mut ops, &[update("s1", T::Step, A::Start), again], T0).unwrap();
    assert_eq!(step(&ops, "s1").1.result.as_deref(), Some("2"));
}

#[test]
fn a_retry_delay_out_of_range_is_refused() {
    let ops = started();
    let r = refused(&ops, &[update("s1", T::Step, A::Start), retry("s1", 0)]);
    assert_eq!((r.code, r.update), ("invalid_duration", Some(1)));
}

#[test]
fn a_wait_is_started_until_its_scheduled_end_then_succeeds() {
    let mut ops = started();
    let applied = checkpoint(&mut ops, &[wait("w1", 5)], T0).unwrap();
    let op = ops.get("w1").unwrap();
    assert_eq!(op.status, S::Started);
    assert!(
        matches!(&op.details, Details::Wait(w) if w.scheduled_end_timestamp == Some(T0 + 5000))
    );
    assert_eq!(
        applied.timers,
        vec![Timer::WaitEnd {
            id: "w1".into(),
            at: T0 + 5000
        }]
    );
    let done = ops.fire_timer("w1", T0 + 5000).unwrap();
    ops.apply(&done).unwrap();
    assert_eq!(ops.get("w1").unwrap().status, S::Succeeded);
    assert_eq!(ops.fire_timer("w1", T0 + 6000), None, "a timer fires once");
}

#[test]
fn a_cancelled_wait_is_cancelled_and_its_timer_is_stale() {
    let mut ops = started();
    checkpoint(&mut ops, &[wait("w1", 5)], T0).unwrap();
    checkpoint(&mut ops, &[update("w1", T::Wait, A::Cancel)], T0 + 1).unwrap();
    assert_eq!(ops.get("w1").unwrap().status, S::Cancelled);
    assert_eq!(ops.fire_timer("w1", T0 + 5000), None);
}

#[test]
fn a_wait_needs_its_seconds_and_accepts_only_start_and_cancel() {
    let mut ops = started();
    let r = refused(&ops, &[update("w1", T::Wait, A::Start)]);
    assert_eq!(r.code, "invalid_duration");
    checkpoint(&mut ops, &[wait("w1", 5)], T0).unwrap();
    let r = refused(&ops, &[succeed("w1", T::Wait, "x")]);
    assert_eq!(r.message, "Invalid action for WAIT operation.");
}

#[test]
fn a_callback_start_mints_a_callback_id_in_the_aws_alphabet() {
    let mut ops = started();
    let mut u = update("c1", T::Callback, A::Start);
    u.callback_options = Some(CallbackOptions {
        timeout_seconds: Some(60),
        heartbeat_timeout_seconds: Some(0),
    });
    let applied = checkpoint(&mut ops, &[u], T0).unwrap();
    let Details::Callback(d) = &ops.get("c1").unwrap().details else {
        panic!()
    };
    let id = d.callback_id.clone().unwrap();
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'));
    assert!(matches!(&applied.events[0],
        OperationEvent::CallbackStarted { callback_id, timeout_seconds: Some(60), .. } if *callback_id == id));
    let r = refused(&ops, &[succeed("c1", T::Callback, "x")]);
    assert_eq!(r.message, "Invalid action for CALLBACK operation.");
}

/// Starts callback `c1` with these clocks; returns its callback id and timers.
fn start_callback(ops: &mut Operations, timeout: u64, heartbeat: u64) -> (String, Vec<Timer>) {
    let mut u = update("c1", T::Callback, A::Start);
    u.callback_options = Some(CallbackOptions {
        timeout_seconds: Some(timeout),
        heartbeat_timeout_seconds: Some(heartbeat),
    });
    let applied = checkpoint(ops, &[u], T0).unwrap();
    let Details::Callback(d) = &ops.get("c1").unwrap().details else {
        panic!()
    };
    (d.callback_id.clone().unwrap(), applied.timers)
}

#[test]
fn a_callback_completed_through_the_api_succeeds_with_the_raw_body_and_closes() {
    let mut ops = started();
    let (callback_id, timers) = start_callback(&mut ops, 0, 0);
    assert!(timers.is_empty(), "no clocks, no timers");
    let success = CallbackOutcome::Succeeded {
        result: Some("raw body".into()),
    };
    let fact = ops
        .complete_callback(&callback_id, success.clone(), T0 + 1)
        .unwrap();
    ops.apply(&fact).unwrap();
    let op = ops.get("c1").unwrap();
    assert_eq!(op.status, S::Succeeded);
    assert!(matches!(&op.details, Details::Callback(d) if d.result.as_deref() == Some("raw body")));
    let again = ops
        .complete_callback(&callback_id, success, T0 + 2)
        .unwrap_err();
    assert_eq!(again.code, "callback_closed");
    assert_eq!(
        ops.heartbeat_callback(&callback_id, T0 + 2)
            .unwrap_err()
            .code,
        "callback_closed"
    );
    let unknown = ops.complete_callback("AAAA/0", CallbackOutcome::Succeeded { result: None }, T0);
    assert_eq!(unknown.unwrap_err().code, "callback_not_found");
}

#[test]
fn a_callback_failure_keeps_the_error_verbatim() {
    let mut ops = started();
    let (callback_id, _) = start_callback(&mut ops, 0, 0);
    let outcome = CallbackOutcome::Failed {
        error: error("nope"),
    };
    let fact = ops
        .complete_callback(&callback_id, outcome, T0 + 1)
        .unwrap();
    ops.apply(&fact).unwrap();
    let op = ops.get("c1").unwrap();
    assert_eq!(op.status, S::Failed);
    assert!(matches!(&op.details, Details::Callback(d) if d.error == Some(error("nope"))));
}

#[test]
fn a_callback_times_out_after_its_timeout() {
    let mut ops = started();
    let (_, timers) = start_callback(&mut ops, 60, 0);
    assert_eq!(
        timers,
        vec![Timer::CallbackTimeout {
            id: "c1".into(),
            at: T0 + 60_000
        }]
    );
    assert_eq!(ops.fire_timer("c1", T0 + 59_999), None);
    let fact = ops.fire_timer("c1", T0 + 60_000).unwrap();
    ops.apply(&fact).unwrap();
    let op = ops.get("c1").unwrap();
    assert_eq!(op.status, S::TimedOut);
    assert!(matches!(&op.details,
        Details::Callback(d) if d.error.as_ref().unwrap().error_type.as_deref() == Some("Callback.Timeout")));
}

#[test]
fn a_heartbeat_moves_the_heartbeat_timeout_and_a_missed_one_times_the_callback_out() {
    let mut ops = started();
    let (callback_id, timers) = start_callback(&mut ops, 60, 10);
    assert!(timers.contains(&Timer::CallbackHeartbeat {
        id: "c1".into(),
        at: T0 + 10_000
    }));
    let (beat, timer) = ops.heartbeat_callback(&callback_id, T0 + 5_000).unwrap();
    ops.apply(&beat).unwrap();
    assert_eq!(
        timer,
        Some(Timer::CallbackHeartbeat {
            id: "c1".into(),
            at: T0 + 15_000
        })
    );
    assert_eq!(
        ops.fire_timer("c1", T0 + 10_000),
        None,
        "the first heartbeat timer is stale"
    );
    let fact = ops.fire_timer("c1", T0 + 15_000).unwrap();
    ops.apply(&fact).unwrap();
    let Details::Callback(d) = &ops.get("c1").unwrap().details else {
        panic!()
    };
    assert_eq!(
        d.error.as_ref().unwrap().error_type.as_deref(),
        Some("Callback.Heartbeat")
    );
}

#[test]
fn two_callbacks_of_one_batch_get_different_ids() {
    let mut ops = started();
    let updates = [
        update("c1", T::Callback, A::Start),
        update("c2", T::Callback, A::Start),
    ];
    checkpoint(&mut ops, &updates, T0).unwrap();
    let id = |op: &Operation| match &op.details {
        Details::Callback(d) => d.callback_id.clone(),
        _ => None,
    };
    assert_ne!(id(ops.get("c1").unwrap()), id(ops.get("c2").unwrap()));
}

#[test]
fn a_chained_invoke_start_records_its_target_and_payload() {
    let mut ops = started();
    let applied = checkpoint(&mut ops, &[invoke("i1", "reserve-hotel")], T0).unwrap();
    assert_eq!(ops.get("i1").unwrap().status, S::Started);
    assert_eq!(
        ops.get("i1").unwrap().sub_type.as_deref(),
        Some("ChainedInvoke")
    );
    assert!(matches!(&applied.events[0],
        OperationEvent::ChainedInvokeStarted { function_name, payload: Some(p), .. }
            if function_name == "reserve-hotel" && p == "{\"a\":1}"));
}

#[test]
fn a_chained_invoke_is_called_once_its_start_is_recorded_and_ends_with_its_targets_answer() {
    let mut ops = started();
    checkpoint(&mut ops, &[invoke("i1", "reserve-hotel")], T0).unwrap();
    let calls = ops.invokes_to_dispatch();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, "i1");
    assert_eq!(calls[0].1.function_name, "reserve-hotel");
    assert_eq!(calls[0].1.payload.as_deref(), Some("{\"a\":1}"));

    let answer = InvokeOutcome::Succeeded {
        result: Some("{\"id\":7}".into()),
    };
    let fact = ops
        .end_chained_invoke("i1", answer.clone(), T0 + 9)
        .unwrap();
    ops.apply(&fact).unwrap();
    let op = ops.get("i1").unwrap();
    assert_eq!((op.status, op.end_timestamp), (S::Succeeded, Some(T0 + 9)));
    assert!(matches!(&op.details,
        Details::ChainedInvoke(d) if d.result.as_deref() == Some("{\"id\":7}")));
    assert!(ops.invokes_to_dispatch().is_empty());
    assert_eq!(
        ops.end_chained_invoke("i1", answer, T0 + 10),
        None,
        "a second answer is dropped"
    );
}

#[test]
fn a_chained_invoke_that_times_out_keeps_its_error_verbatim() {
    let mut ops = started();
    checkpoint(&mut ops, &[invoke("i1", "f")], T0).unwrap();
    let timeout = ErrorObject {
        error_type: Some("ChainedInvoke.Timeout".into()),
        ..Default::default()
    };
    let outcome = InvokeOutcome::TimedOut {
        error: timeout.clone(),
    };
    let fact = ops.end_chained_invoke("i1", outcome, T0 + 1).unwrap();
    ops.apply(&fact).unwrap();
    let op = ops.get("i1").unwrap();
    assert_eq!(op.status, S::TimedOut);
    assert!(matches!(&op.details, Details::ChainedInvoke(d) if d.error == Some(timeout.clone())));
}

#[test]
fn only_a_started_chained_invoke_of_a_running_execution_takes_an_outcome() {
    let mut ops = started();
    checkpoint(
        &mut ops,
        &[invoke("i1", "f"), update("s1", T::Step, A::Start)],
        T0,
    )
    .unwrap();
    let ok = || InvokeOutcome::Succeeded { result: None };
    assert_eq!(
        ops.end_chained_invoke("s1", ok(), T0),
        None,
        "not a chained invoke"
    );
    assert_eq!(ops.end_chained_invoke("nope", ok(), T0), None);
    checkpoint(&mut ops, &[fail("exec", T::Execution, "x")], T0).unwrap();
    assert_eq!(
        ops.end_chained_invoke("i1", ok(), T0),
        None,
        "the execution is over"
    );
    assert!(ops.invokes_to_dispatch().is_empty());
}

#[test]
fn a_chained_invoke_started_again_with_another_payload_is_recorded_as_a_divergence_and_keeps_the_first(
) {
    let mut ops = started();
    let mut first = invoke("i1", "saga-reserve-flight");
    first.payload = Some("{\"bookingId\":\"a\"}".into());
    checkpoint(&mut ops, &[first.clone()], T0).unwrap();
    let same = checkpoint(&mut ops, &[first.clone()], T0 + 1).unwrap();
    assert!(
        same.events.is_empty(),
        "the same START again records nothing"
    );
    let mut replayed = first;
    replayed.payload = Some("{\"bookingId\":\"b\"}".into());
    let diverged = checkpoint(&mut ops, &[replayed], T0 + 2).unwrap();
    match diverged.events.as_slice() {
        [OperationEvent::ReplayDiverged {
            id,
            field,
            recorded,
            sent,
            ..
        }] => {
            assert_eq!((id.as_str(), field.as_str()), ("i1", "Payload"));
            assert_ne!(recorded, sent);
        }
        other => panic!("expected one divergence, got {other:?}"),
    }
    assert_eq!(
        ops.invoke_target("i1").unwrap().payload.as_deref(),
        Some("{\"bookingId\":\"a\"}"),
        "the recorded payload is what the target gets"
    );
    assert_eq!(ops.get("i1").unwrap().status, S::Started);
}

#[test]
fn a_chained_invoke_without_a_function_name_is_refused() {
    let ops = started();
    let r = refused(&ops, &[update("i1", T::ChainedInvoke, A::Start)]);
    assert_eq!(r.code, "missing_function_name");
}

#[test]
fn every_other_action_on_a_chained_invoke_is_refused_with_the_aws_message() {
    let mut ops = started();
    checkpoint(&mut ops, &[invoke("i1", "f")], T0).unwrap();
    for action in [A::Succeed, A::Fail, A::Retry, A::Cancel] {
        let r = refused(&ops, &[update("i1", T::ChainedInvoke, action)]);
        assert_eq!(r.message, "Invalid action for CHAINED_INVOKE operation.");
        assert_eq!(r.code, "invalid_action");
    }
}

#[test]
fn a_context_starts_and_succeeds_with_its_result_and_replay_children() {
    let mut ops = started();
    let mut done = succeed("ctx", T::Context, "\"r\"");
    done.context_options = Some(ContextOptions {
        replay_children: Some(true),
    });
    checkpoint(&mut ops, &[update("ctx", T::Context, A::Start)], T0).unwrap();
    checkpoint(
        &mut ops,
        &[child(update("s1", T::Step, A::Start), "ctx")],
        T0,
    )
    .unwrap();
    checkpoint(&mut ops, &[done], T0 + 1).unwrap();
    let op = ops.get("ctx").unwrap();
    assert_eq!(op.status, S::Succeeded);
    assert!(matches!(&op.details,
        Details::Context(c) if c.result.as_deref() == Some("\"r\"") && c.replay_children == Some(true)));
}

#[test]
fn a_context_fails_with_its_error() {
    let mut ops = started();
    checkpoint(
        &mut ops,
        &[
            update("ctx", T::Context, A::Start),
            fail("ctx", T::Context, "x"),
        ],
        T0,
    )
    .unwrap();
    assert_eq!(ops.get("ctx").unwrap().status, S::Failed);
}

#[test]
fn updates_under_a_finished_or_unknown_parent_are_refused() {
    let mut ops = started();
    checkpoint(&mut ops, &[update("ctx", T::Context, A::Start)], T0).unwrap();
    checkpoint(
        &mut ops,
        &[child(update("s1", T::Step, A::Start), "ctx")],
        T0,
    )
    .unwrap();
    checkpoint(&mut ops, &[succeed("ctx", T::Context, "1")], T0).unwrap();
    let r = refused(&ops, &[child(update("s2", T::Step, A::Start), "ctx")]);
    assert_eq!(r.code, "parent_ended");
    let r = refused(&ops, &[succeed("s1", T::Step, "1")]);
    assert_eq!(r.code, "parent_ended", "the recorded parent counts");
    let r = refused(&ops, &[child(update("s3", T::Step, A::Start), "nope")]);
    assert_eq!(r.code, "unknown_parent");
}

#[test]
fn succeed_fail_retry_or_cancel_of_an_unknown_operation_is_refused() {
    let ops = started();
    for u in [
        succeed("x", T::Step, "1"),
        fail("x", T::Step, "e"),
        retry("x", 1),
        update("x", T::Wait, A::Cancel),
    ] {
        assert_eq!(refused(&ops, &[u]).code, "unknown_operation");
    }
}

#[test]
fn a_start_of_an_existing_operation_with_another_type_or_name_is_refused() {
    let mut ops = started();
    checkpoint(&mut ops, &[update("s1", T::Step, A::Start)], T0).unwrap();
    assert_eq!(refused(&ops, &[wait("s1", 1)]).code, "type_mismatch");
    let mut renamed = update("s1", T::Step, A::Start);
    renamed.name = Some("other".into());
    assert_eq!(refused(&ops, &[renamed]).code, "name_mismatch");
}

#[test]
fn a_start_of_an_unfinished_operation_again_changes_nothing_but_is_in_the_answer() {
    let mut ops = started();
    checkpoint(&mut ops, &[invoke("i1", "f")], T0).unwrap();
    let before = ops.clone();
    let applied = checkpoint(&mut ops, &[invoke("i1", "f")], T0 + 1).unwrap();
    assert!(applied.events.is_empty());
    assert_eq!(ops, before);
    assert_eq!(applied.operations, vec![ops.get("i1").unwrap().clone()]);
}

#[test]
fn a_finished_operation_accepts_nothing_more() {
    let mut ops = started();
    checkpoint(
        &mut ops,
        &[update("s1", T::Step, A::Start), succeed("s1", T::Step, "1")],
        T0,
    )
    .unwrap();
    assert_eq!(
        refused(&ops, &[update("s1", T::Step, A::Start)]).code,
        "operation_ended"
    );
    assert_eq!(
        refused(&ops, &[fail("s1", T::Step, "e")]).code,
        "operation_ended"
    );
}

#[test]
fn the_execution_succeeds_whatever_id_the_update_names_and_then_accepts_nothing() {
    let mut ops = started();
    let applied = checkpoint(
        &mut ops,
        &[succeed("execution-result-17", T::Execution, "\"done\"")],
        T0 + 9,
    )
    .unwrap();
    assert!(applied.execution_ended);
    assert_eq!(ops.execution().unwrap().status, S::Succeeded);
    assert_eq!(applied.operations, vec![ops.execution().unwrap().clone()]);
    let r = refused(&ops, &[update("s1", T::Step, A::Start)]);
    assert_eq!(r.code, "execution_ended");
}

#[test]
fn the_execution_fails_with_its_error_and_accepts_no_other_action() {
    let mut ops = started();
    assert_eq!(
        refused(&ops, &[update("exec", T::Execution, A::Start)]).code,
        "invalid_action"
    );
    checkpoint(&mut ops, &[fail("exec", T::Execution, "bad")], T0).unwrap();
    assert_eq!(ops.execution().unwrap().status, S::Failed);
}

#[test]
fn a_batch_with_one_bad_update_changes_nothing_and_names_the_bad_update() {
    let ops = started();
    let batch = [
        update("s1", T::Step, A::Start),
        succeed("s1", T::Step, "1"),
        wait("w1", 5),
        update("i9", T::ChainedInvoke, A::Succeed),
        update("s2", T::Step, A::Start),
    ];
    let r = refused(&ops, &batch);
    assert_eq!(r.update, Some(3));
    assert_eq!(r.message, "Invalid action for CHAINED_INVOKE operation.");
    assert!(ops.get("s1").is_none() && ops.get("w1").is_none());
}

#[test]
fn an_invalid_operation_id_is_refused() {
    let ops = started();
    assert_eq!(
        refused(&ops, &[update("a.b", T::Step, A::Start)]).code,
        "invalid_operation_id"
    );
    assert_eq!(
        refused(&ops, &[update(&"x".repeat(65), T::Step, A::Start)]).code,
        "invalid_operation_id"
    );
}

#[test]
fn a_payload_over_six_mebibytes_is_refused() {
    let mut big = succeed("s1", T::Step, "");
    big.payload = Some("x".repeat(sagaflow_core::durable::MAX_PAYLOAD_BYTES + 1));
    let r = refused(&started(), &[update("s1", T::Step, A::Start), big]);
    assert_eq!((r.code, r.update), ("payload_too_large", Some(1)));
}

#[test]
fn operations_round_trip_the_json_the_sdk_sends_and_reads() {
    let body = r#"{"Id":"abc","ParentId":"p","Name":"reserve","Type":"CHAINED_INVOKE","SubType":"ChainedInvoke",
        "Action":"START","Payload":"{}","ChainedInvokeOptions":{"FunctionName":"f","XAmznTraceId":"t"}}"#;
    let u: OperationUpdate = serde_json::from_str(body).unwrap();
    assert_eq!((u.op_type, u.action), (T::ChainedInvoke, A::Start));
    assert_eq!(
        u.chained_invoke_options.as_ref().unwrap().function_name,
        "f"
    );
    let retry: OperationUpdate = serde_json::from_str(
        r#"{"Id":"s","Type":"STEP","Action":"RETRY","Error":{"ErrorMessage":"m","ErrorType":"E","StackTrace":["a"]},
            "StepOptions":{"NextAttemptDelaySeconds":2}}"#,
    )
    .unwrap();
    assert_eq!(
        retry.step_options.unwrap().next_attempt_delay_seconds,
        Some(2)
    );

    let mut ops = started();
    checkpoint(
        &mut ops,
        &[update("s1", T::Step, A::Start), retry_with_error("s1")],
        T0,
    )
    .unwrap();
    let json = serde_json::to_value(ops.get("s1").unwrap()).unwrap();
    assert_eq!(json["Type"], "STEP");
    assert_eq!(json["Status"], "PENDING");
    assert_eq!(json["StepDetails"]["Attempt"], 1);
    assert_eq!(json["StepDetails"]["NextAttemptTimestamp"], T0 + 1000);
    assert!(json.get("WaitDetails").is_none());
    let back: Operation = serde_json::from_value(json).unwrap();
    assert_eq!(&back, ops.get("s1").unwrap());
    let exec = serde_json::to_value(ops.execution().unwrap()).unwrap();
    assert_eq!(exec["ExecutionDetails"]["InputPayload"], "{\"x\":1}");
}

fn retry_with_error(id: &str) -> OperationUpdate {
    retry(id, 1)
}

// ---- the invocation loop: tokens, ClientToken replay, invocations as facts --------

/// Folds a decided fact in (as the runtime will) and keeps it in `facts`.
fn record(inv: &mut Invocations, facts: &mut Vec<InvocationEvent>, fact: InvocationEvent) {
    inv.apply(&fact).unwrap();
    facts.push(fact);
}

/// The invocations rebuilt from their facts, read back from JSON.
fn replay(facts: &[InvocationEvent]) -> Invocations {
    let mut inv = Invocations::new("exec");
    for fact in facts {
        let read: InvocationEvent =
            serde_json::from_str(&serde_json::to_string(fact).unwrap()).unwrap();
        inv.apply(&read).unwrap();
    }
    inv
}

/// Execution `exec` with its first invocation started (nonce `nonce`).
fn invoked(nonce: u64) -> (Invocations, Vec<InvocationEvent>) {
    let mut inv = Invocations::new("exec");
    let mut facts = vec![];
    let start = inv.start(nonce, T0).unwrap();
    record(&mut inv, &mut facts, start);
    (inv, facts)
}

/// Decides a checkpoint and folds its facts in; the reply.
fn decide(
    inv: &mut Invocations,
    facts: &mut Vec<InvocationEvent>,
    ops: &mut Operations,
    token: &str,
    client_token: Option<&str>,
    updates: &[OperationUpdate],
) -> Result<CheckpointReply, Refusal> {
    match inv.checkpoint(ops, token, client_token, updates, T0, 1)? {
        Checkpoint::Decided {
            applied,
            accepted,
            reply,
        } => {
            for e in &applied.events {
                ops.apply(e).unwrap();
            }
            record(inv, facts, *accepted);
            Ok(reply)
        }
        Checkpoint::Replayed(reply) => Ok(reply),
    }
}

fn is_invalid_token(inv: &Invocations, token: &str) -> bool {
    inv.check_token(token)
        .is_err_and(|r| r.message.starts_with(INVALID_TOKEN))
}

#[test]
fn only_the_latest_token_of_the_current_invocation_is_accepted() {
    let mut ops = started();
    let (mut inv, mut facts) = invoked(99);
    let first = inv.token().unwrap().encode();
    assert!(inv.check_token(&first).is_ok());
    let reply = decide(&mut inv, &mut facts, &mut ops, &first, None, &[]).unwrap();
    let second = reply.checkpoint_token.unwrap();
    assert_ne!(first, second);
    assert!(is_invalid_token(&inv, &first));
    assert!(inv.check_token(&second).is_ok());
    assert!(is_invalid_token(&inv, "not a token!"));
    let forged = CheckpointToken {
        nonce: 100,
        ..CheckpointToken::parse(&second).unwrap()
    };
    assert!(is_invalid_token(&inv, &forged.encode()));

    let done = inv.complete(InvocationOutcome::Pending, T0).unwrap();
    record(&mut inv, &mut facts, done);
    let next = inv.start(5, T0).unwrap();
    record(&mut inv, &mut facts, next);
    assert_eq!(inv.current(), Some(2));
    assert!(
        is_invalid_token(&inv, &second),
        "a token of an earlier invocation"
    );
}

#[test]
fn a_token_is_in_the_aws_alphabet_and_reads_back() {
    let mut inv = Invocations::new("arn-ish/exec:1");
    let start = inv.start(u64::MAX, T0).unwrap();
    inv.apply(&start).unwrap();
    let text = inv.token().unwrap().encode();
    assert!(text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)));
    assert_eq!(CheckpointToken::parse(&text).as_ref(), inv.token());
}

#[test]
fn a_retried_checkpoint_with_the_same_client_token_gets_the_same_answer() {
    let mut ops = started();
    let (mut inv, mut facts) = invoked(7);
    let token = inv.token().unwrap().encode();
    let batch = [update("s1", T::Step, A::Start)];
    let reply = decide(&mut inv, &mut facts, &mut ops, &token, Some("ct-1"), &batch).unwrap();
    let again = inv
        .checkpoint(&ops, &token, Some("ct-1"), &batch, T0 + 50, 4)
        .unwrap();
    assert_eq!(again, Checkpoint::Replayed(reply.clone()));
    let other = inv
        .checkpoint(&ops, &token, Some("ct-2"), &batch, T0 + 50, 4)
        .unwrap_err();
    assert!(
        other.message.starts_with(INVALID_TOKEN),
        "a new ClientToken with a stale token"
    );
    let json = serde_json::to_value(&reply).unwrap();
    assert!(json["CheckpointToken"].is_string());
    assert_eq!(json["NewExecutionState"]["Operations"][0]["Id"], "s1");
}

#[test]
fn a_restart_rebuilds_the_invocations_from_their_facts_and_tokens_stay_valid_or_invalid() {
    let mut ops = started();
    let (mut inv, mut facts) = invoked(11);
    let token = inv.token().unwrap().encode();
    let batch = [update("s1", T::Step, A::Start)];
    let reply = decide(&mut inv, &mut facts, &mut ops, &token, Some("ct"), &batch).unwrap();
    let latest = reply.checkpoint_token.clone().unwrap();

    let read = replay(&facts);
    assert_eq!(read, inv);
    assert!(read.check_token(&latest).is_ok());
    assert!(is_invalid_token(&read, &token));
    let again = read
        .checkpoint(&ops, &token, Some("ct"), &batch, T0, 2)
        .unwrap();
    assert_eq!(again, Checkpoint::Replayed(reply), "ClientToken replay too");
}

#[test]
fn the_answer_that_ends_the_execution_has_no_token_and_no_token_works_after() {
    let mut ops = started();
    let (mut inv, mut facts) = invoked(7);
    let token = inv.token().unwrap().encode();
    let end = [succeed("exec", T::Execution, "1")];
    let reply = decide(&mut inv, &mut facts, &mut ops, &token, None, &end).unwrap();
    assert_eq!(reply.checkpoint_token, None);
    assert!(serde_json::to_value(&reply)
        .unwrap()
        .get("CheckpointToken")
        .is_none());
    assert!(is_invalid_token(&inv, &token));
    assert!(is_invalid_token(&replay(&facts), &token));
}

#[test]
fn a_refused_checkpoint_keeps_the_token_and_records_nothing() {
    let ops = started();
    let (inv, _) = invoked(7);
    let token = inv.token().unwrap().encode();
    inv.checkpoint(
        &ops,
        &token,
        Some("c"),
        &[succeed("nope", T::Step, "1")],
        T0,
        1,
    )
    .unwrap_err();
    assert!(inv.check_token(&token).is_ok());
}

#[test]
fn never_two_invocations_of_one_execution_at_once() {
    let (mut inv, mut facts) = invoked(1);
    let refused = inv.start(2, T0).unwrap_err();
    assert_eq!(refused.code, "invocation_open");
    let done = inv.complete(InvocationOutcome::Succeeded, T0).unwrap();
    record(&mut inv, &mut facts, done);
    assert_eq!(inv.outcome(1), Some(&InvocationOutcome::Succeeded));
    assert_eq!(inv.current(), None);
    assert!(inv.token().is_none());
    assert_eq!(
        inv.complete(InvocationOutcome::Failed, T0)
            .unwrap_err()
            .code,
        "no_invocation"
    );
    let next = inv.start(2, T0).unwrap();
    assert!(matches!(
        next,
        InvocationEvent::InvocationStarted { number: 2, .. }
    ));
    // A history with two open invocations is not one this fold accepts.
    let mut twice = replay(&facts[..1]);
    assert!(twice.apply(&next).is_err());
}

#[test]
fn an_invocation_started_but_not_completed_is_closed_after_a_crash_as_lost() {
    let (inv, mut facts) = invoked(3);
    let token = inv.token().unwrap().encode();
    // The process dies; the service comes back and replays the facts.
    let mut read = replay(&facts);
    assert!(
        read.check_token(&token).is_ok(),
        "still open by the history"
    );
    let lost = read.recover(T0 + 10).unwrap();
    record(&mut read, &mut facts, lost);
    let Some(InvocationOutcome::Error {
        error_type,
        error_message,
    }) = read.outcome(1)
    else {
        panic!("the lost invocation has an error outcome")
    };
    assert_eq!(error_type, "Sagaflow.InvocationLost");
    assert!(!error_message.is_empty());
    assert!(is_invalid_token(&read, &token));
    assert_eq!(read.recover(T0 + 20), None, "nothing open, nothing lost");
    assert!(read.start(4, T0).is_ok(), "the next invocation may start");
}

#[test]
fn revoked_tokens_refuse_every_checkpoint_and_every_new_invocation() {
    let ops = started();
    let (mut inv, mut facts) = invoked(3);
    let token = inv.token().unwrap().encode();
    let revoked = inv.revoke(T0);
    record(&mut inv, &mut facts, revoked);
    let refused = inv.checkpoint(&ops, &token, None, &[], T0, 1).unwrap_err();
    assert!(refused.message.starts_with(INVALID_TOKEN));
    assert!(is_invalid_token(&replay(&facts), &token));
    let done = inv.complete(InvocationOutcome::Pending, T0).unwrap();
    record(&mut inv, &mut facts, done);
    assert_eq!(inv.start(4, T0).unwrap_err().code, "execution_ended");
}

// ---- execution timeout and stop ------------------------------------------------------

/// An execution with a started step, a wait and a chained invoke, and its
/// invocation's latest token.
fn busy() -> (Operations, Invocations, Vec<InvocationEvent>, String) {
    let mut ops = started();
    let (mut inv, mut facts) = invoked(5);
    let token = inv.token().unwrap().encode();
    let batch = [
        update("s1", T::Step, A::Start),
        wait("w1", 60),
        invoke("i1", "target"),
    ];
    let reply = decide(&mut inv, &mut facts, &mut ops, &token, None, &batch).unwrap();
    (ops, inv, facts, reply.checkpoint_token.unwrap())
}

#[test]
fn a_timed_out_execution_is_timed_out_and_its_open_operations_are_left_as_they_are() {
    let (mut ops, ..) = busy();
    let fact = ops.time_out(None, T0 + 5).unwrap();
    ops.apply(&fact).unwrap();
    assert_eq!(ops.execution().unwrap().status, S::TimedOut);
    assert_eq!(ops.outcome(), Some(&Outcome::TimedOut(None)));
    assert!(ops.is_ended());
    assert_eq!(ops.get("s1").unwrap().status, S::Started);
    assert_eq!(ops.get("w1").unwrap().status, S::Started);
    assert_eq!(ops.get("i1").unwrap().status, S::Started);
    // Nothing changes any more.
    assert_eq!(
        ops.fire_timer("w1", T0 + 120_000),
        None,
        "the wait's timer is stale"
    );
    assert!(
        ops.invokes_to_dispatch().is_empty(),
        "the invoke is not called"
    );
    let answer = InvokeOutcome::Succeeded { result: None };
    assert_eq!(ops.end_chained_invoke("i1", answer, T0 + 6), None);
    assert_eq!(ops.time_out(None, T0 + 7), None);
    assert_eq!(ops.stop(None, T0 + 7), None);
}

#[test]
fn a_stopped_execution_is_stopped_with_the_stop_error_and_accepts_nothing_more() {
    let (mut ops, ..) = busy();
    let fact = ops.stop(Some(error("by hand")), T0 + 5).unwrap();
    ops.apply(&fact).unwrap();
    let read: OperationEvent =
        serde_json::from_str(&serde_json::to_string(&fact).unwrap()).unwrap();
    assert_eq!(read, fact);
    assert_eq!(ops.execution().unwrap().status, S::Stopped);
    assert_eq!(
        ops.outcome(),
        Some(&Outcome::Stopped(Some(error("by hand"))))
    );
    assert_eq!(ops.get("s1").unwrap().status, S::Started);
    let r = refused(&ops, &[succeed("s1", T::Step, "1")]);
    assert_eq!(r.update, Some(0));
    assert!(ops.apply(&fact).is_err(), "it ends once");
}

#[test]
fn after_a_timeout_or_a_stop_the_running_invocations_checkpoint_is_an_invalid_token() {
    for end in ["time out", "stop"] {
        let (mut ops, mut inv, mut facts, token) = busy();
        let fact = if end == "stop" {
            ops.stop(None, T0 + 5)
        } else {
            ops.time_out(None, T0 + 5)
        };
        ops.apply(&fact.unwrap()).unwrap();
        // Even before its revocation is recorded, the token is refused.
        let early = inv.checkpoint(&ops, &token, None, &[], T0, 1).unwrap_err();
        assert!(early.message.starts_with(INVALID_TOKEN), "{end}");
        let revoked = inv.revoke(T0 + 5);
        record(&mut inv, &mut facts, revoked);
        let after = inv.checkpoint(&ops, &token, None, &[], T0, 1).unwrap_err();
        assert!(after.message.starts_with(INVALID_TOKEN), "{end}");
        assert!(
            is_invalid_token(&replay(&facts), &token),
            "{end}: after a restart"
        );
        let done = inv.complete(InvocationOutcome::Pending, T0).unwrap();
        record(&mut inv, &mut facts, done);
        assert_eq!(
            inv.start(9, T0).unwrap_err().code,
            "execution_ended",
            "{end}"
        );
    }
}

// ---- the seeded property test --------------------------------------------------------

/// A random update: half the time one about an operation that exists (its
/// own type, name and parent, a plausible action), otherwise a random one
/// (a new operation, a clash of types, a bad action, a missing option, an
/// unknown parent …).
fn random_update(rng: &mut StdRng, live: &Operations) -> OperationUpdate {
    let existing: Vec<&Operation> = live.iter().skip(1).collect();
    if !existing.is_empty() && rng.gen_bool(0.5) {
        let op = existing[rng.gen_range(0..existing.len())];
        let mut u = random_update_of(rng, op.op_type(), op.id.clone());
        u.name = op.name.clone();
        u.parent_id = op.parent_id.clone();
        return u;
    }
    let types = [T::Step, T::Wait, T::Callback, T::ChainedInvoke, T::Context];
    let t = if rng.gen_bool(0.03) {
        T::Execution
    } else {
        types[rng.gen_range(0..types.len())]
    };
    let id = random_id(rng, t);
    let mut u = random_update_of(rng, t, id.clone());
    if rng.gen_bool(0.9) {
        u.name = Some(format!("n-{id}"));
    }
    if rng.gen_bool(0.2) {
        u.parent_id = Some(random_id(rng, T::Context));
    }
    u
}

/// An update of an operation of type `t`: mostly an action the type
/// takes, with its options, now and then anything.
fn random_update_of(rng: &mut StdRng, t: T, id: String) -> OperationUpdate {
    let actions = [A::Start, A::Succeed, A::Fail, A::Retry, A::Cancel];
    let plausible: &[A] = match t {
        T::Step => &[
            A::Start,
            A::Succeed,
            A::Succeed,
            A::Fail,
            A::Retry,
            A::Retry,
        ],
        T::Wait => &[A::Start, A::Cancel],
        T::Context => &[A::Start, A::Succeed, A::Fail],
        T::Execution => &[A::Succeed, A::Fail],
        _ => &[A::Start],
    };
    let a = if rng.gen_bool(0.05) {
        actions[rng.gen_range(0..actions.len())]
    } else {
        plausible[rng.gen_range(0..plausible.len())]
    };
    let mut u = OperationUpdate::new(id, t, a);
    if rng.gen_bool(0.5) {
        u.callback_options = Some(CallbackOptions {
            timeout_seconds: Some(rng.gen_range(0..10)),
            heartbeat_timeout_seconds: Some(rng.gen_range(0..5)),
        });
    }
    u.payload = rng.gen_bool(0.5).then(|| format!("{}", rng.gen::<u8>()));
    if rng.gen_bool(0.97) {
        let seconds = if rng.gen_bool(0.03) {
            0
        } else {
            rng.gen_range(1..4)
        };
        // Waits long enough that some are cancelled before they end.
        u.wait_options = Some(WaitOptions {
            wait_seconds: Some(seconds * 5),
        });
        u.step_options = Some(StepOptions {
            next_attempt_delay_seconds: Some(seconds),
        });
    }
    if rng.gen_bool(0.97) {
        u.chained_invoke_options = Some(ChainedInvokeOptions {
            function_name: "f".into(),
            tenant_id: None,
        });
    }
    u
}

/// An id from a small pool per type (`s0`..`s3` for steps …), now and then
/// one of another type's.
fn random_id(rng: &mut StdRng, t: T) -> String {
    let prefixes = ["s", "w", "c", "i", "x"];
    let prefix = match t {
        _ if rng.gen_bool(0.05) => prefixes[rng.gen_range(0..prefixes.len())],
        T::Step => "s",
        T::Wait => "w",
        T::Callback => "c",
        T::ChainedInvoke => "i",
        _ => "x",
    };
    format!("{prefix}{}", rng.gen_range(0..4))
}

#[test]
fn random_checkpoints_replay_to_the_live_state_and_refusals_change_nothing() {
    let seed = proptest_seed();
    println!("DURABLE_PROPTEST_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut accepted, mut refusals) = (0, 0);
    let mut kinds = std::collections::BTreeSet::new();
    for _run in 0..200 {
        let mut live = started();
        let mut history = vec![OperationEvent::ExecutionStarted {
            id: "exec".into(),
            input_payload: Some("{\"x\":1}".into()),
            at: T0,
        }];
        let mut now = T0;
        for _batch in 0..25 {
            now += rng.gen_range(0..3000);
            fire_due_timers(&mut live, &mut history, now, &mut rng);
            let outside = match rng.gen_range(0..400) {
                0 => live.time_out(None, now),
                1 => live.stop(Some(error("stop")), now),
                _ => None,
            };
            if let Some(fact) = outside {
                live.apply(&fact).unwrap();
                history.push(fact);
            }
            let batch: Vec<_> = (0..rng.gen_range(0..4))
                .map(|_| random_update(&mut rng, &live))
                .collect();
            let before = live.clone();
            match live.apply_checkpoint(&batch, now, rng.gen()) {
                Err(refusal) => {
                    refusals += 1;
                    assert_eq!(live, before, "seed {seed}: a refusal changes nothing");
                    assert!(
                        refusal.update.is_some_and(|i| i < batch.len()),
                        "seed {seed}"
                    );
                }
                Ok(applied) => {
                    accepted += 1;
                    for e in &applied.events {
                        live.apply(e)
                            .unwrap_or_else(|err| panic!("seed {seed}: {err}"));
                        history.push(e.clone());
                    }
                    check_touched(&live, &batch, &applied, seed);
                }
            }
            kinds.extend(history.iter().map(kind));
            // Replayed as it will be stored: through JSON.
            let mut replayed = Operations::default();
            for e in &history {
                let stored = serde_json::to_string(e).unwrap();
                let read: OperationEvent = serde_json::from_str(&stored)
                    .unwrap_or_else(|err| panic!("seed {seed}: {stored}: {err}"));
                replayed.apply(&read).unwrap();
            }
            assert_eq!(replayed, live, "seed {seed}: replay equals the live state");
        }
    }
    assert!(
        accepted > 100 && refusals > 100,
        "seed {seed}: {accepted} accepted, {refusals} refused"
    );
    // Every kind of fact came up (20; 21 when a re-sent chained invoke
    // happened to carry another payload): the walk goes deep enough.
    assert!(
        kinds.len() >= 20,
        "seed {seed}: too few kinds of facts: {kinds:?}"
    );
}

/// The name of a fact's kind (`step_started`).
fn kind(event: &OperationEvent) -> String {
    serde_json::to_value(event).unwrap()["type"]
        .as_str()
        .unwrap()
        .to_string()
}

fn fire_due_timers(
    live: &mut Operations,
    history: &mut Vec<OperationEvent>,
    now: u64,
    rng: &mut StdRng,
) {
    let ids: Vec<String> = live.iter().map(|op| op.id.clone()).collect();
    for id in ids {
        if rng.gen_bool(0.7) {
            if let Some(fact) = live.fire_timer(&id, now) {
                live.apply(&fact).unwrap();
                history.push(fact);
            }
            let outcome = match rng.gen_range(0..4) {
                0 => InvokeOutcome::Succeeded { result: None },
                1 => InvokeOutcome::Failed { error: error("f") },
                2 => InvokeOutcome::TimedOut { error: error("t") },
                _ => InvokeOutcome::Stopped { error: error("s") },
            };
            if let Some(fact) = live.end_chained_invoke(&id, outcome, now) {
                live.apply(&fact).unwrap();
                history.push(fact);
            }
            poke_callback(live, history, &id, now, rng);
        }
    }
}

/// Now and then completes a callback, or beats its heartbeat.
fn poke_callback(
    live: &mut Operations,
    history: &mut Vec<OperationEvent>,
    id: &str,
    now: u64,
    rng: &mut StdRng,
) {
    let Some(Details::Callback(d)) = live.get(id).map(|op| op.details.clone()) else {
        return;
    };
    let callback_id = d.callback_id.unwrap();
    let fact = match rng.gen_range(0..4) {
        0 => live
            .complete_callback(
                &callback_id,
                CallbackOutcome::Succeeded { result: None },
                now,
            )
            .ok(),
        1 => live
            .complete_callback(
                &callback_id,
                CallbackOutcome::Failed { error: error("x") },
                now,
            )
            .ok(),
        2 => live
            .heartbeat_callback(&callback_id, now)
            .ok()
            .map(|(fact, _)| fact),
        _ => None,
    };
    if let Some(fact) = fact {
        live.apply(&fact).unwrap();
        history.push(fact);
    }
}

/// Every operation the batch named is in the answer, as it now is.
fn check_touched(live: &Operations, batch: &[OperationUpdate], applied: &Applied, seed: u64) {
    for u in batch {
        let id = if u.op_type == T::Execution {
            "exec"
        } else {
            u.id.as_str()
        };
        let now = live.get(id).unwrap();
        assert!(
            applied.operations.contains(now),
            "seed {seed}: {id} missing from the answer"
        );
    }
    for op in &applied.operations {
        assert_eq!(
            Some(op),
            live.get(&op.id),
            "seed {seed}: the answer shows the new state"
        );
        let wire: Operation = serde_json::from_value(serde_json::to_value(op).unwrap()).unwrap();
        assert_eq!(
            &wire, op,
            "seed {seed}: an operation round-trips AWS's JSON"
        );
    }
}

/// The seed of a property test: `DURABLE_PROPTEST_SEED`, or the clock.
fn proptest_seed() -> u64 {
    std::env::var("DURABLE_PROPTEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
        })
}

#[test]
fn random_invocation_loops_replay_to_the_live_state_and_tokens_survive_a_restart() {
    let seed = proptest_seed();
    println!("DURABLE_PROPTEST_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut kinds = std::collections::BTreeSet::new();
    let (mut accepted, mut stale, mut restarts) = (0, 0, 0);
    for _run in 0..100 {
        let mut ops = started();
        let mut inv = Invocations::new("exec");
        let mut facts: Vec<InvocationEvent> = vec![];
        let mut handed: Vec<String> = vec![];
        let client_tokens = ["a", "b", "c"];
        for _step in 0..40 {
            let roll = rng.gen_range(0..10);
            let decided = match roll {
                0 | 1 => inv.start(rng.gen(), T0).ok(),
                2 => inv
                    .complete(InvocationOutcome::Pending, T0)
                    .ok()
                    .filter(|_| rng.gen_bool(0.5)),
                3 if rng.gen_bool(0.1) => Some(inv.revoke(T0)),
                _ => None,
            };
            if let Some(fact) = decided {
                let open_before = inv.current();
                if let InvocationEvent::InvocationStarted { .. } = fact {
                    assert_eq!(open_before, None, "seed {seed}: never two at once");
                }
                record(&mut inv, &mut facts, fact);
                if let Some(t) = inv.token() {
                    handed.push(t.encode());
                }
            } else if roll >= 4 && !handed.is_empty() {
                let token = handed[rng.gen_range(0..handed.len())].clone();
                let client = rng
                    .gen_bool(0.5)
                    .then(|| client_tokens[rng.gen_range(0..3)]);
                let batch: Vec<_> = (0..rng.gen_range(0..3))
                    .map(|_| random_update(&mut rng, &ops))
                    .collect();
                let valid = inv.check_token(&token).is_ok();
                match decide(&mut inv, &mut facts, &mut ops, &token, client, &batch) {
                    Ok(reply) => {
                        accepted += 1;
                        if let Some(next) = reply.checkpoint_token {
                            handed.push(next);
                        }
                    }
                    Err(refusal) if !valid => {
                        stale += 1;
                        assert!(refusal.message.starts_with(INVALID_TOKEN), "seed {seed}");
                    }
                    Err(_) => {}
                }
            }
            kinds.extend(facts.iter().map(|f| {
                serde_json::to_value(f).unwrap()["type"]
                    .as_str()
                    .unwrap()
                    .to_string()
            }));
            // A restart: the state comes back from the facts alone.
            let read = replay(&facts);
            assert_eq!(read, inv, "seed {seed}: replay equals the live state");
            let valid: std::collections::BTreeSet<_> = handed
                .iter()
                .filter(|t| inv.check_token(t).is_ok())
                .collect();
            assert!(valid.len() <= 1, "seed {seed}: at most the latest is valid");
            for t in &handed {
                assert_eq!(
                    read.check_token(t).is_ok(),
                    inv.check_token(t).is_ok(),
                    "seed {seed}: a token is as valid after a restart"
                );
            }
            if rng.gen_bool(0.05) {
                restarts += 1;
                inv = read;
                if let Some(lost) = inv.recover(T0) {
                    record(&mut inv, &mut facts, lost);
                    assert!(
                        handed.iter().all(|t| inv.check_token(t).is_err()),
                        "seed {seed}: a lost invocation's tokens are dead"
                    );
                }
            }
        }
    }
    assert!(
        accepted > 100 && stale > 100 && restarts > 20,
        "seed {seed}: {accepted} accepted, {stale} stale, {restarts} restarts"
    );
    assert_eq!(kinds.len(), 4, "seed {seed}: every kind of fact: {kinds:?}");
}
