//! The execution state machine, one decision at a time: `decide` turns an input
//! into events, `apply` folds them into the state and names the effects.

use sagaflow_core::error_name::{RUNTIME, TASK_FAILED, TIMEOUT};
use sagaflow_core::saga::TaskState;
use sagaflow_core::{
    compile, Ctx, Effect, Error, ErrorInfo, Event, EventKind, Execution, Input, Participant, Plan,
    Status, TaskKind,
};
use serde_json::{json, Value};

use TaskKind::{Action, Compensation};

/// The travel saga: hotel, then flight and car in parallel, then the payment
/// (the pivot), then a confirmation retried forward.
const TRIP: &str = r#"
name: trip
steps:
  - name: hotel
    action: { handler: hotel }
    compensation: { handler: cancel_hotel }
    timeout: 5s
  - parallel:
      name: transport
      branches:
        - name: flight
          action: { handler: flight }
          compensation: { handler: cancel_flight }
        - name: car
          action: { handler: car }
          compensation: { handler: cancel_car }
  - name: pay
    pivot: true
    action: { handler: pay }
  - name: confirm
    action: { handler: confirm }
"#;

/// An execution driven the way the runtime drives it: decide, make the events
/// durable (here: push them on `history`), apply them.
struct Saga {
    plan: Plan,
    ex: Execution,
    history: Vec<Event>,
    now: u64,
    random: f64,
}

impl Saga {
    fn new(definition: &str) -> Self {
        let plan = compile(definition, None).expect("valid definition");
        let ex = Execution::empty(&plan);
        Saga {
            plan,
            ex,
            history: Vec::new(),
            now: 1_000,
            random: 0.5,
        }
    }

    fn ctx(&self) -> Ctx {
        Ctx {
            now: self.now,
            random: self.random,
            entropy: 7,
        }
    }

    /// Decides without applying (for requests the state refuses).
    fn decide(&self, input: Input) -> Result<Vec<Event>, Error> {
        self.ex.decide(&self.plan, input, self.ctx())
    }

    /// Decides, then applies the decided events; returns them and their effects.
    fn on_with_effects(&mut self, input: Input) -> (Vec<EventKind>, Vec<Effect>) {
        let events = self.decide(input).expect("a legal decision");
        let mut effects = Vec::new();
        for e in &events {
            assert_eq!(e.at, self.now, "events carry the decision's time");
            effects.extend(self.ex.apply(&self.plan, e).expect("decided events apply"));
            self.history.push(e.clone());
        }
        (events.into_iter().map(|e| e.kind).collect(), effects)
    }

    /// Decides and applies; returns the decided events in brief.
    fn on(&mut self, input: Input) -> Vec<String> {
        brief(&self.on_with_effects(input).0)
    }

    fn start(&mut self, input: Value) -> Vec<String> {
        self.on(Input::Start {
            execution_id: "ex-1".into(),
            definition: self.plan.name.clone(),
            version: 1,
            input,
        })
    }

    fn ok(&mut self, step: &str, attempt: u32) -> Vec<String> {
        self.ok_with(step, attempt, json!({ "id": format!("{step}-{attempt}") }))
    }

    fn ok_with(&mut self, step: &str, attempt: u32, output: Value) -> Vec<String> {
        self.on(Input::TaskSucceeded {
            step: step.into(),
            task: Action,
            attempt,
            output,
        })
    }

    fn fail(&mut self, step: &str, attempt: u32, error: &str) -> Vec<String> {
        self.on(Input::TaskFailed {
            step: step.into(),
            task: Action,
            attempt,
            error: ErrorInfo::new(error, format!("{step} said no")),
        })
    }

    fn undone(&mut self, step: &str, attempt: u32) -> Vec<String> {
        self.on(Input::TaskSucceeded {
            step: step.into(),
            task: Compensation,
            attempt,
            output: json!({}),
        })
    }

    fn undo_fails(&mut self, step: &str, attempt: u32) -> Vec<String> {
        self.on(Input::TaskFailed {
            step: step.into(),
            task: Compensation,
            attempt,
            error: ErrorInfo::new(TASK_FAILED, "503"),
        })
    }

    fn timer(&mut self, step: &str, task: TaskKind, attempt: u32) -> Vec<String> {
        self.on(Input::TimerFired {
            step: step.into(),
            task,
            attempt,
        })
    }

    /// Runs the trip up to the point where flight and car are both running.
    fn trip_with_transport_running() -> Self {
        let mut s = Saga::new(TRIP);
        s.start(json!({ "trip_id": "t1" }));
        assert_eq!(
            s.ok("hotel", 1),
            ["hotel#1 succeeded", "schedule flight#1", "schedule car#1"]
        );
        s
    }

    fn compensations_in_history(&self) -> Vec<String> {
        self.history
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::CompensationSucceeded { step, .. } => Some(step.clone()),
                _ => None,
            })
            .collect()
    }

    fn assert_state_unchanged_by(&mut self, kind: EventKind) {
        let before = self.ex.clone();
        let event = Event { at: self.now, kind };
        let err = self
            .ex
            .apply(&self.plan, &event)
            .expect_err("the event is illegal here");
        assert!(
            matches!(err, Error::IllegalTransition { .. }),
            "expected an illegal transition, got {err:?}"
        );
        assert_eq!(err.code(), "illegal_transition");
        assert_eq!(
            self.ex, before,
            "a refused event leaves the state unchanged"
        );
    }
}

/// One line per event, so a decision reads like a sentence.
fn brief(events: &[EventKind]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            EventKind::ExecutionStarted { .. } => "started".to_string(),
            EventKind::StepScheduled { step, attempt, .. } => format!("schedule {step}#{attempt}"),
            EventKind::StepSucceeded { step, attempt, .. } => format!("{step}#{attempt} succeeded"),
            EventKind::StepFailed {
                step,
                attempt,
                error,
            } => format!("{step}#{attempt} failed with {}", error.error),
            EventKind::RetryScheduled {
                step,
                task,
                attempt,
                ..
            } => format!("retry {step} {}#{attempt}", task.as_str()),
            EventKind::RollbackStarted { step, .. } => format!("roll back after {step}"),
            EventKind::CancelRequested { .. } => "cancel requested".to_string(),
            EventKind::TimerFired { step, attempt } => format!("timer {step}#{attempt} fired"),
            EventKind::CompensationScheduled { step, attempt, .. } => {
                format!("compensate {step}#{attempt}")
            }
            EventKind::CompensationSucceeded { step, attempt, .. } => {
                format!("{step} compensated by #{attempt}")
            }
            EventKind::CompensationFailed {
                step,
                attempt,
                error,
            } => format!("compensation {step}#{attempt} failed with {}", error.error),
            EventKind::TaskParked { step, attempt, .. } => format!("{step}#{attempt} parked"),
            EventKind::ExecutionTimedOut {} => "timed out".to_string(),
            EventKind::ExecutionRedriven {} => "redriven".to_string(),
            EventKind::MapRunUpdated { update } => format!("map run {} updated", update.map_run),
            EventKind::ExecutionFinished { status, .. } => format!("finished {}", status.as_str()),
            EventKind::DurableOperation { fact } => format!("durable {fact:?}"),
            EventKind::DurableInvocation { fact } => format!("durable {fact:?}"),
        })
        .collect()
}

const NOTHING: [&str; 0] = [];

// ---------------------------------------------------------------- moving forward

#[test]
fn start_records_the_input_and_schedules_the_first_stage() {
    let mut s = Saga::new(TRIP);
    let (events, effects) = s.on_with_effects(Input::Start {
        execution_id: "ex-1".into(),
        definition: "trip".into(),
        version: 3,
        input: json!({ "trip_id": "t1" }),
    });
    assert_eq!(brief(&events), ["started", "schedule hotel#1"]);
    assert_eq!(
        events[1],
        EventKind::StepScheduled {
            step: "hotel".into(),
            attempt: 1,
            deadline: 1_000 + 5_000,
            nonce: None,
        }
    );
    assert_eq!(
        effects,
        [Effect::Invoke {
            step: "hotel".into(),
            task: Action,
            attempt: 1,
            deadline: 6_000
        }]
    );
    assert_eq!(s.ex.id, "ex-1");
    assert_eq!(s.ex.version, 3);
    assert_eq!(s.ex.input, json!({ "trip_id": "t1" }));
    assert_eq!(s.ex.status, Status::Running);
    assert_eq!(s.ex.started_at, 1_000);
    assert_eq!(s.ex.events, 2);
}

#[test]
fn starting_an_execution_twice_is_not_allowed() {
    let mut s = Saga::new(TRIP);
    s.start(json!({}));
    let err = s
        .decide(Input::Start {
            execution_id: "ex-1".into(),
            definition: "trip".into(),
            version: 1,
            input: json!({}),
        })
        .unwrap_err();
    assert_eq!(err.code(), "already_started");
}

#[test]
fn a_parallel_stage_schedules_all_its_branches_at_once() {
    let mut s = Saga::new(TRIP);
    s.start(json!({}));
    s.now = 2_000;
    let (events, effects) = s.on_with_effects(Input::TaskSucceeded {
        step: "hotel".into(),
        task: Action,
        attempt: 1,
        output: json!({}),
    });
    assert_eq!(
        brief(&events),
        ["hotel#1 succeeded", "schedule flight#1", "schedule car#1"]
    );
    let invoked: Vec<(&str, u64)> = effects
        .iter()
        .map(|e| match e {
            Effect::Invoke { step, deadline, .. } => (step.as_str(), *deadline),
            other => panic!("unexpected effect {other:?}"),
        })
        .collect();
    assert_eq!(
        invoked,
        [("flight", 32_000), ("car", 32_000)],
        "default timeout is 30s"
    );
}

#[test]
fn the_next_stage_waits_until_every_branch_of_a_parallel_stage_has_succeeded() {
    let mut s = Saga::trip_with_transport_running();
    assert_eq!(s.ok("car", 1), ["car#1 succeeded"]);
    assert_eq!(s.ok("flight", 1), ["flight#1 succeeded", "schedule pay#1"]);
}

#[test]
fn success_of_all_steps_finishes_succeeded_with_every_output() {
    let mut s = Saga::trip_with_transport_running();
    s.ok("flight", 1);
    s.ok("car", 1);
    assert_eq!(s.ok("pay", 1), ["pay#1 succeeded", "schedule confirm#1"]);
    let (events, effects) = s.on_with_effects(Input::TaskSucceeded {
        step: "confirm".into(),
        task: Action,
        attempt: 1,
        output: json!({ "confirmed": true }),
    });
    assert_eq!(
        brief(&events),
        ["confirm#1 succeeded", "finished succeeded"]
    );
    assert_eq!(
        effects,
        [Effect::Finished {
            status: Status::Succeeded
        }]
    );
    assert_eq!(s.ex.status, Status::Succeeded);
    assert_eq!(s.ex.error, None);
    assert_eq!(
        s.ex.output,
        Some(json!({
            "hotel": { "id": "hotel-1" },
            "flight": { "id": "flight-1" },
            "car": { "id": "car-1" },
            "pay": { "id": "pay-1" },
            "confirm": { "confirmed": true },
        }))
    );
    assert!(s.compensations_in_history().is_empty());
    assert!(s.ex.outstanding(&s.plan).is_empty());
}

#[test]
fn a_transient_failure_schedules_a_retry_after_the_jittered_delay() {
    let mut s = Saga::new(TRIP);
    s.start(json!({}));
    s.now = 10_000;
    s.random = 0.25;
    let (events, effects) = s.on_with_effects(Input::TaskFailed {
        step: "hotel".into(),
        task: Action,
        attempt: 1,
        error: ErrorInfo::new(TASK_FAILED, "503"),
    });
    assert_eq!(
        brief(&events),
        [
            "hotel#1 failed with States.TaskFailed",
            "retry hotel action#2"
        ]
    );
    // forward default: 100ms, jitter 0.2 of it scaled by ctx.random = 0.25 → 95ms.
    let expected_fire_at = 10_000 + 95;
    assert_eq!(
        events[1],
        EventKind::RetryScheduled {
            step: "hotel".into(),
            task: Action,
            attempt: 2,
            fire_at: expected_fire_at
        }
    );
    assert_eq!(
        effects,
        [Effect::StartTimer {
            step: "hotel".into(),
            task: Action,
            attempt: 2,
            fire_at: expected_fire_at
        }]
    );
}

#[test]
fn the_retry_timer_reschedules_the_step_as_attempt_two_and_the_delay_grows() {
    let mut s = Saga::new(TRIP);
    s.start(json!({}));
    s.random = 0.0;
    s.fail("hotel", 1, TASK_FAILED);
    s.now = 1_100;
    assert_eq!(s.timer("hotel", Action, 2), ["schedule hotel#2"]);
    assert_eq!(
        s.history.last().unwrap().kind,
        EventKind::StepScheduled {
            step: "hotel".into(),
            attempt: 2,
            deadline: 1_100 + 5_000,
            nonce: None,
        }
    );
    let (events, _) = s.on_with_effects(Input::TaskFailed {
        step: "hotel".into(),
        task: Action,
        attempt: 2,
        error: ErrorInfo::new(TIMEOUT, "no answer in 5s"),
    });
    assert!(
        matches!(events[1], EventKind::RetryScheduled { attempt: 3, fire_at, .. } if fire_at == 1_100 + 200),
        "second delay doubles: {events:?}"
    );
    s.timer("hotel", Action, 3);
    assert_eq!(
        s.ok("hotel", 3),
        ["hotel#3 succeeded", "schedule flight#1", "schedule car#1"]
    );
}

// ---------------------------------------------------------------- rolling back

#[test]
fn a_business_error_rolls_back_and_compensates_in_reverse_completion_order() {
    let mut s = Saga::trip_with_transport_running();
    s.ok("car", 1);
    s.ok("flight", 1);
    assert_eq!(
        s.fail("pay", 1, "CardDeclined"),
        [
            "pay#1 failed with CardDeclined",
            "roll back after pay",
            "compensate flight#1"
        ],
        "a business error is not retried by the default policy"
    );
    assert_eq!(s.ex.status, Status::Compensating);
    assert_eq!(
        s.undone("flight", 1),
        ["flight compensated by #1", "compensate car#1"]
    );
    assert_eq!(
        s.undone("car", 1),
        ["car compensated by #1", "compensate hotel#1"]
    );
    assert_eq!(
        s.undone("hotel", 1),
        ["hotel compensated by #1", "finished compensated"]
    );
    assert_eq!(s.ex.status, Status::Compensated);
    assert_eq!(s.ex.error.as_ref().unwrap().error, "CardDeclined");
    assert_eq!(s.compensations_in_history(), ["flight", "car", "hotel"]);
}

#[test]
fn a_step_that_timed_out_after_exhausting_its_retries_is_compensated_too() {
    let mut s = Saga::trip_with_transport_running();
    s.ok("flight", 1);
    s.fail("car", 1, TIMEOUT);
    s.timer("car", Action, 2);
    s.fail("car", 2, TIMEOUT);
    s.timer("car", Action, 3);
    assert_eq!(
        s.fail("car", 3, TIMEOUT),
        [
            "car#3 failed with States.Timeout",
            "roll back after car",
            "compensate car#1"
        ],
        "the car may have been booked by an attempt that timed out"
    );
    s.undone("car", 1);
    s.undone("flight", 1);
    assert_eq!(
        s.undone("hotel", 1),
        ["hotel compensated by #1", "finished compensated"]
    );
    assert_eq!(s.compensations_in_history(), ["car", "flight", "hotel"]);
    assert_eq!(s.ex.error.as_ref().unwrap().error, TIMEOUT);
}

#[test]
fn a_step_that_failed_with_a_business_error_is_not_compensated() {
    let mut s = Saga::trip_with_transport_running();
    s.ok("flight", 1);
    assert_eq!(
        s.fail("car", 1, "NoCars"),
        [
            "car#1 failed with NoCars",
            "roll back after car",
            "compensate flight#1"
        ]
    );
    s.undone("flight", 1);
    s.undone("hotel", 1);
    assert_eq!(s.compensations_in_history(), ["flight", "hotel"]);
    assert_eq!(s.ex.status, Status::Compensated);
}

#[test]
fn an_engine_runtime_error_is_never_retried() {
    let mut s = Saga::new(
        r#"
name: trip
steps:
  - name: a
    action: { handler: a }
    retry: { retry_on: [ States.ALL ], max_attempts: 5 }
"#,
    );
    s.start(json!({}));
    assert_eq!(
        s.fail("a", 1, RUNTIME),
        [
            "a#1 failed with States.Runtime",
            "roll back after a",
            "finished compensated"
        ]
    );
}

#[test]
fn a_step_without_a_compensation_is_skipped_when_rolling_back() {
    let mut s = Saga::new(
        r#"
name: trip
steps:
  - name: a
    action: { handler: a }
    compensation: { handler: undo_a }
  - name: audit
    action: { handler: audit }
  - name: b
    action: { handler: b }
"#,
    );
    s.start(json!({}));
    s.ok("a", 1);
    s.ok("audit", 1);
    assert_eq!(
        s.fail("b", 1, "Nope"),
        [
            "b#1 failed with Nope",
            "roll back after b",
            "compensate a#1"
        ]
    );
    assert_eq!(
        s.undone("a", 1),
        ["a compensated by #1", "finished compensated"]
    );
}

#[test]
fn a_failing_compensation_is_retried_until_it_succeeds_by_default() {
    let mut s = Saga::trip_with_transport_running();
    s.ok("flight", 1);
    s.fail("car", 1, "NoCars");
    for attempt in 1..=6 {
        assert_eq!(
            s.undo_fails("flight", attempt),
            [
                format!("compensation flight#{attempt} failed with States.TaskFailed"),
                format!("retry flight compensation#{}", attempt + 1)
            ]
        );
        assert_eq!(s.ex.status, Status::Compensating);
        assert_eq!(
            s.timer("flight", Compensation, attempt + 1),
            [format!("compensate flight#{}", attempt + 1)]
        );
    }
    assert_eq!(
        s.undone("flight", 7),
        ["flight compensated by #7", "compensate hotel#1"]
    );
    s.undone("hotel", 1);
    assert_eq!(s.ex.status, Status::Compensated);
}

const BOUNDED_UNDO: &str = r#"
name: trip
steps:
  - name: hotel
    action: { handler: hotel }
    compensation: { handler: cancel_hotel }
  - name: flight
    action: { handler: flight }
    compensation: { handler: cancel_flight, retry: { max_attempts: 2 } }
  - name: car
    action: { handler: car }
"#;

#[test]
fn an_exhausted_compensation_finishes_failed_and_a_redrive_resumes_it() {
    let mut s = Saga::new(BOUNDED_UNDO);
    s.start(json!({}));
    s.ok("hotel", 1);
    s.ok("flight", 1);
    s.fail("car", 1, "NoCars");
    s.undo_fails("flight", 1);
    s.timer("flight", Compensation, 2);
    assert_eq!(
        s.undo_fails("flight", 2),
        [
            "compensation flight#2 failed with States.TaskFailed",
            "finished failed"
        ]
    );
    assert_eq!(s.ex.status, Status::Failed);
    assert!(s.ex.error.as_ref().unwrap().cause.contains("flight"));
    assert!(s.ex.outstanding(&s.plan).is_empty());

    assert_eq!(s.on(Input::Redrive), ["redriven", "compensate flight#3"]);
    assert_eq!(s.ex.status, Status::Compensating);
    assert_eq!(
        s.undo_fails("flight", 3),
        [
            "compensation flight#3 failed with States.TaskFailed",
            "retry flight compensation#4"
        ],
        "a redrive gives a fresh retry budget"
    );
    s.timer("flight", Compensation, 4);
    assert_eq!(
        s.undone("flight", 4),
        ["flight compensated by #4", "compensate hotel#1"]
    );
    assert_eq!(
        s.undone("hotel", 1),
        ["hotel compensated by #1", "finished compensated"]
    );
    assert_eq!(
        s.ex.error.as_ref().unwrap().error,
        "NoCars",
        "the cause of the rollback stays"
    );
    assert_eq!(s.compensations_in_history(), ["flight", "hotel"]);
}

// ---------------------------------------------------------------- after the pivot

#[test]
fn a_retriable_step_after_the_pivot_retries_forward_and_never_compensates() {
    let mut s = Saga::trip_with_transport_running();
    s.ok("flight", 1);
    s.ok("car", 1);
    s.ok("pay", 1);
    for attempt in 1..=10 {
        assert_eq!(
            s.fail("confirm", attempt, "HotelNotReady"),
            [
                format!("confirm#{attempt} failed with HotelNotReady"),
                format!("retry confirm action#{}", attempt + 1)
            ]
        );
        s.timer("confirm", Action, attempt + 1);
    }
    assert_eq!(
        s.ok("confirm", 11),
        ["confirm#11 succeeded", "finished succeeded"]
    );
    assert!(s.compensations_in_history().is_empty());
    assert!(!s
        .history
        .iter()
        .any(|e| matches!(e.kind, EventKind::RollbackStarted { .. })));
}

#[test]
fn an_exhausted_retriable_step_finishes_failed_and_a_redrive_retries_it_forward() {
    let mut s = Saga::new(
        r#"
name: trip
steps:
  - name: pay
    pivot: true
    action: { handler: pay }
  - name: confirm
    action: { handler: confirm }
    retry: { max_attempts: 2 }
"#,
    );
    s.start(json!({}));
    s.ok("pay", 1);
    s.fail("confirm", 1, "NotYet");
    s.timer("confirm", Action, 2);
    assert_eq!(
        s.fail("confirm", 2, "NotYet"),
        ["confirm#2 failed with NotYet", "finished failed"]
    );
    assert_eq!(s.on(Input::Redrive), ["redriven", "schedule confirm#3"]);
    assert_eq!(s.ex.status, Status::Running);
    assert_eq!(
        s.ok("confirm", 3),
        ["confirm#3 succeeded", "finished succeeded"]
    );
}

#[test]
fn a_pivot_that_timed_out_for_good_stops_for_a_human_instead_of_rolling_back() {
    let mut s = Saga::new(
        r#"
name: trip
steps:
  - name: hotel
    action: { handler: hotel }
    compensation: { handler: cancel_hotel }
  - name: pay
    pivot: true
    action: { handler: pay }
    retry: { max_attempts: 1 }
  - name: confirm
    action: { handler: confirm }
"#,
    );
    s.start(json!({}));
    s.ok("hotel", 1);
    assert_eq!(
        s.fail("pay", 1, TIMEOUT),
        [
            format!("pay#1 failed with {TIMEOUT}"),
            "finished failed".to_string()
        ]
    );
    assert!(s.compensations_in_history().is_empty());
    assert!(s
        .ex
        .error
        .as_ref()
        .unwrap()
        .cause
        .contains("may have taken effect"));
    assert_eq!(s.on(Input::Redrive), ["redriven", "schedule pay#2"]);
    s.ok("pay", 2);
    assert_eq!(
        s.ok("confirm", 1),
        ["confirm#1 succeeded", "finished succeeded"]
    );
}

// ---------------------------------------------------------------- cancel and redrive

#[test]
fn cancel_before_the_pivot_compensates_what_was_done_and_ends_cancelled() {
    let mut s = Saga::trip_with_transport_running();
    assert_eq!(
        s.on(Input::Cancel {
            reason: "customer changed their mind".into()
        }),
        ["cancel requested"],
        "flight and car are still running: nothing is compensated yet"
    );
    assert_eq!(s.ex.status, Status::Compensating);
    assert_eq!(s.ok("flight", 1), ["flight#1 succeeded"]);
    assert_eq!(s.ok("car", 1), ["car#1 succeeded", "compensate car#1"]);
    s.undone("car", 1);
    s.undone("flight", 1);
    assert_eq!(
        s.undone("hotel", 1),
        ["hotel compensated by #1", "finished cancelled"]
    );
    assert_eq!(s.ex.status, Status::Cancelled);
    assert_eq!(s.compensations_in_history(), ["car", "flight", "hotel"]);
    assert!(s
        .ex
        .error
        .as_ref()
        .unwrap()
        .cause
        .contains("changed their mind"));
}

#[test]
fn cancelling_again_while_rolling_back_changes_nothing() {
    let mut s = Saga::trip_with_transport_running();
    s.on(Input::Cancel { reason: "a".into() });
    assert_eq!(s.on(Input::Cancel { reason: "b".into() }), NOTHING);
}

#[test]
fn cancel_drops_a_pending_retry_and_its_timer_then_does_nothing() {
    let mut s = Saga::trip_with_transport_running();
    s.ok("flight", 1);
    s.fail("car", 1, TASK_FAILED);
    assert_eq!(
        s.on(Input::Cancel {
            reason: "stop".into()
        }),
        ["cancel requested", "compensate flight#1"]
    );
    assert_eq!(s.timer("car", Action, 2), NOTHING);
    s.undone("flight", 1);
    s.undone("hotel", 1);
    assert_eq!(s.ex.status, Status::Cancelled);
}

#[test]
fn cancel_after_the_pivot_is_not_allowed() {
    let mut s = Saga::trip_with_transport_running();
    s.ok("flight", 1);
    s.ok("car", 1);
    let err = s
        .decide(Input::Cancel {
            reason: "too late".into(),
        })
        .unwrap_err();
    assert!(matches!(err, Error::NotAllowed { .. }));
    assert_eq!(err.code(), "past_pivot");
}

#[test]
fn cancel_of_a_finished_execution_is_not_allowed() {
    let mut s = Saga::new(TRIP);
    s.start(json!({}));
    s.fail("hotel", 1, "Full");
    assert_eq!(s.ex.status, Status::Compensated);
    let err = s
        .decide(Input::Cancel {
            reason: "late".into(),
        })
        .unwrap_err();
    assert_eq!(err.code(), "execution_finished");
}

#[test]
fn redrive_of_a_succeeded_or_running_execution_is_not_redrivable() {
    let mut s = Saga::new("name: one\nsteps: [ { name: a, action: { handler: a } } ]\n");
    s.start(json!({}));
    assert_eq!(
        s.decide(Input::Redrive).unwrap_err().code(),
        "not_redrivable"
    );
    s.ok("a", 1);
    assert_eq!(s.ex.status, Status::Succeeded);
    assert_eq!(
        s.decide(Input::Redrive).unwrap_err().code(),
        "not_redrivable"
    );
}

// ---------------------------------------------------------------- stale inputs

#[test]
fn an_answer_for_an_old_attempt_is_ignored() {
    let mut s = Saga::new(TRIP);
    s.start(json!({}));
    s.fail("hotel", 1, TASK_FAILED);
    assert_eq!(s.ok("hotel", 1), NOTHING, "attempt 1 already failed");
    s.timer("hotel", Action, 2);
    assert_eq!(s.fail("hotel", 1, TASK_FAILED), NOTHING);
    assert_eq!(
        s.ok("hotel", 2),
        ["hotel#2 succeeded", "schedule flight#1", "schedule car#1"]
    );
}

#[test]
fn a_duplicate_answer_is_ignored() {
    let mut s = Saga::trip_with_transport_running();
    assert_eq!(s.ok("flight", 1), ["flight#1 succeeded"]);
    assert_eq!(s.ok("flight", 1), NOTHING);
    assert_eq!(s.fail("flight", 1, "Late"), NOTHING);
}

#[test]
fn a_timer_for_a_task_that_is_not_waiting_is_ignored() {
    let mut s = Saga::trip_with_transport_running();
    assert_eq!(s.timer("flight", Action, 2), NOTHING, "flight is running");
    assert_eq!(s.timer("pay", Action, 1), NOTHING, "pay was never tried");
    assert_eq!(s.timer("hotel", Compensation, 1), NOTHING);
    s.fail("car", 1, TASK_FAILED);
    assert_eq!(s.timer("car", Action, 3), NOTHING, "the retry is attempt 2");
    assert_eq!(s.timer("car", Action, 2), ["schedule car#2"]);
    assert_eq!(s.timer("car", Action, 2), NOTHING, "a timer fires once");
}

#[test]
fn answers_about_unknown_steps_or_finished_executions_are_ignored() {
    let mut s = Saga::new(TRIP);
    s.start(json!({}));
    assert_eq!(s.ok("spa", 1), NOTHING);
    assert_eq!(s.timer("spa", Action, 1), NOTHING);
    s.fail("hotel", 1, "Full");
    assert_eq!(s.ex.status, Status::Compensated);
    assert_eq!(s.ok("hotel", 1), NOTHING);
    assert_eq!(s.timer("hotel", Action, 2), NOTHING);
}

// ---------------------------------------------------------------- illegal events

#[test]
fn applying_step_succeeded_for_a_step_never_scheduled_is_illegal() {
    let mut s = Saga::trip_with_transport_running();
    for kind in [
        EventKind::StepSucceeded {
            step: "pay".into(),
            attempt: 1,
            output: json!({}),
        },
        EventKind::StepSucceeded {
            step: "flight".into(),
            attempt: 2,
            output: json!({}),
        },
        EventKind::StepFailed {
            step: "confirm".into(),
            attempt: 1,
            error: ErrorInfo::new("X", "y"),
        },
        EventKind::StepSucceeded {
            step: "spa".into(),
            attempt: 1,
            output: json!({}),
        },
        EventKind::CompensationSucceeded {
            step: "hotel".into(),
            attempt: 1,
            output: json!({}),
        },
    ] {
        s.assert_state_unchanged_by(kind);
    }
}

#[test]
fn applying_execution_started_twice_is_illegal() {
    let mut s = Saga::new(TRIP);
    s.start(json!({}));
    s.assert_state_unchanged_by(EventKind::ExecutionStarted {
        execution_id: "ex-2".into(),
        definition: "trip".into(),
        version: 1,
        input: json!({}),
        keys: Default::default(),
    });
}

#[test]
fn applying_any_event_before_the_start_is_illegal() {
    let mut s = Saga::new(TRIP);
    s.assert_state_unchanged_by(EventKind::StepScheduled {
        step: "hotel".into(),
        attempt: 1,
        deadline: 0,
        nonce: None,
    });
    s.assert_state_unchanged_by(EventKind::ExecutionFinished {
        status: Status::Succeeded,
        error: None,
        output: None,
    });
}

#[test]
fn applying_any_event_after_the_execution_finished_is_illegal() {
    let mut s = Saga::new(TRIP);
    s.start(json!({}));
    s.fail("hotel", 1, "Full");
    assert_eq!(s.ex.status, Status::Compensated);
    for kind in [
        EventKind::StepScheduled {
            step: "hotel".into(),
            attempt: 2,
            deadline: 0,
            nonce: None,
        },
        EventKind::CancelRequested { reason: "x".into() },
        EventKind::RollbackStarted {
            step: "hotel".into(),
            error: ErrorInfo::new("X", "y"),
        },
        EventKind::ExecutionFinished {
            status: Status::Succeeded,
            error: None,
            output: None,
        },
        EventKind::ExecutionRedriven {},
    ] {
        s.assert_state_unchanged_by(kind);
    }
}

#[test]
fn applying_events_out_of_order_is_illegal() {
    let mut s = Saga::new(TRIP);
    s.start(json!({}));
    // A later stage before the current one succeeded.
    s.assert_state_unchanged_by(EventKind::StepScheduled {
        step: "flight".into(),
        attempt: 1,
        deadline: 0,
        nonce: None,
    });
    // The same attempt twice, or skipping an attempt.
    s.assert_state_unchanged_by(EventKind::StepScheduled {
        step: "hotel".into(),
        attempt: 1,
        deadline: 0,
        nonce: None,
    });
    // A retry of a task that did not fail.
    s.assert_state_unchanged_by(EventKind::RetryScheduled {
        step: "hotel".into(),
        task: Action,
        attempt: 2,
        fire_at: 0,
    });
    // A compensation while moving forward.
    s.assert_state_unchanged_by(EventKind::CompensationScheduled {
        step: "hotel".into(),
        attempt: 1,
        deadline: 0,
        nonce: None,
    });
    // A finish with a status that is not terminal.
    s.assert_state_unchanged_by(EventKind::ExecutionFinished {
        status: Status::Running,
        error: None,
        output: None,
    });
}

#[test]
fn applying_a_compensation_of_a_step_that_never_ran_is_illegal() {
    let mut s = Saga::trip_with_transport_running();
    s.ok("flight", 1);
    s.fail("car", 1, "NoCars");
    assert_eq!(s.ex.saga().unwrap().stack.len(), 2);
    s.assert_state_unchanged_by(EventKind::CompensationScheduled {
        step: "car".into(),
        attempt: 1,
        deadline: 0,
        nonce: None,
    });
    s.assert_state_unchanged_by(EventKind::StepScheduled {
        step: "car".into(),
        attempt: 2,
        deadline: 0,
        nonce: None,
    });
}

// ---------------------------------------------------------------- replay and recovery

#[test]
fn replaying_the_decided_events_yields_the_same_state_as_applying_them_live() {
    let mut s = Saga::trip_with_transport_running();
    s.ok("car", 1);
    s.fail("flight", 1, TIMEOUT);
    s.timer("flight", Action, 2);
    s.ok("flight", 2);
    s.fail("pay", 1, "CardDeclined");
    s.undo_fails("flight", 1);
    let mid = Execution::replay(&s.plan, &s.history).unwrap();
    assert_eq!(mid, s.ex);
    s.timer("flight", Compensation, 2);
    s.undone("flight", 2);
    s.undone("car", 1);
    s.undone("hotel", 1);
    let replayed = Execution::replay(&s.plan, &s.history).unwrap();
    assert_eq!(replayed, s.ex);
    assert_eq!(replayed.status, Status::Compensated);
    assert_eq!(replayed.events, s.history.len() as u64);
}

#[test]
fn replay_stops_at_the_first_illegal_event() {
    let s = Saga::trip_with_transport_running();
    let mut history = s.history.clone();
    history.insert(1, history[0].clone());
    let err = Execution::replay(&s.plan, &history).unwrap_err();
    assert_eq!(err.code(), "illegal_transition");
}

#[test]
fn outstanding_after_replay_lists_the_calls_in_flight_and_the_armed_timers() {
    let mut s = Saga::trip_with_transport_running();
    s.now = 4_000;
    s.random = 0.0;
    s.fail("car", 1, TASK_FAILED);
    let recovered = Execution::replay(&s.plan, &s.history).unwrap();
    assert_eq!(
        recovered.outstanding(&s.plan),
        [
            Effect::Invoke {
                step: "flight".into(),
                task: Action,
                attempt: 1,
                deadline: 1_000 + 30_000
            },
            Effect::StartTimer {
                step: "car".into(),
                task: Action,
                attempt: 2,
                fire_at: 4_000 + 100
            },
        ]
    );
}

#[test]
fn outstanding_lists_a_running_compensation_and_nothing_once_finished() {
    let mut s = Saga::trip_with_transport_running();
    s.fail("flight", 1, "NoSeats");
    s.ok("car", 1);
    let recovered = Execution::replay(&s.plan, &s.history).unwrap();
    assert!(matches!(
        recovered.outstanding(&s.plan).as_slice(),
        [Effect::Invoke { step, task: Compensation, attempt: 1, .. }] if step == "car"
    ));
    s.undone("car", 1);
    s.undone("hotel", 1);
    assert!(Execution::replay(&s.plan, &s.history)
        .unwrap()
        .outstanding(&s.plan)
        .is_empty());
}

// ---------------------------------------------------------------- requests

const TEMPLATED: &str = r#"
name: trip
steps:
  - name: hotel
    action: { http: { url: "${TRAVEL_URL}/hotel", headers: { X-Team: travel } } }
    input: { trip: "$.input.trip_id", execution: "$.execution.id", nights: 3 }
    compensation: { handler: cancel_hotel }
  - name: flight
    action: { handler: flight }
    input: { booking: "$.steps.hotel.output.booking.id", first: "$.input.travellers[0]" }
    compensation:
      handler: cancel_flight
      input: { ticket: "$.steps.flight.output.ticket" }
  - name: car
    action: { handler: car }
    input: { driver: "$.input.driver.name" }
"#;

fn templated() -> Saga {
    let mut s = Saga::new(TEMPLATED);
    s.start(json!({ "trip_id": "t1", "travellers": ["ann", "bob"] }));
    s
}

#[test]
fn request_renders_the_input_template_from_the_execution_input() {
    let s = templated();
    let r = s.ex.request(&s.plan, "hotel", Action).unwrap();
    assert_eq!(r.execution_id, "ex-1");
    assert_eq!(r.step, "hotel");
    assert_eq!(r.task, Action);
    assert_eq!(r.attempt, 1);
    assert_eq!(r.deadline, 1_000 + 30_000);
    assert_eq!(
        r.input,
        json!({ "trip": "t1", "execution": "ex-1", "nights": 3 })
    );
    assert!(matches!(
        &r.participant,
        Participant::Http { url, headers } if url == "${TRAVEL_URL}/hotel" && headers["X-Team"] == "travel"
    ));
}

#[test]
fn request_renders_earlier_steps_outputs() {
    let mut s = templated();
    s.ok_with("hotel", 1, json!({ "booking": { "id": "H-7" } }));
    let r = s.ex.request(&s.plan, "flight", Action).unwrap();
    assert_eq!(r.input, json!({ "booking": "H-7", "first": "ann" }));
}

#[test]
fn the_idempotency_key_is_the_same_for_every_attempt_and_after_recovery() {
    let mut s = templated();
    let first = s.ex.request(&s.plan, "hotel", Action).unwrap();
    s.fail("hotel", 1, TASK_FAILED);
    s.timer("hotel", Action, 2);
    let second = s.ex.request(&s.plan, "hotel", Action).unwrap();
    assert_eq!(second.attempt, 2);
    assert_eq!(first.idempotency_key, second.idempotency_key);
    let recovered = Execution::replay(&s.plan, &s.history).unwrap();
    assert_eq!(recovered.request(&s.plan, "hotel", Action).unwrap(), second);
}

#[test]
fn the_idempotency_key_differs_between_action_and_compensation_and_between_steps() {
    let mut s = templated();
    let hotel = s.ex.request(&s.plan, "hotel", Action).unwrap();
    s.ok_with("hotel", 1, json!({ "booking": { "id": "H-7" } }));
    let flight = s.ex.request(&s.plan, "flight", Action).unwrap();
    s.fail("flight", 1, "NoSeats");
    let undo = s.ex.request(&s.plan, "hotel", Compensation).unwrap();
    assert_ne!(hotel.idempotency_key, flight.idempotency_key);
    assert_ne!(hotel.idempotency_key, undo.idempotency_key);
}

#[test]
fn the_compensation_input_defaults_to_the_actions_input() {
    let mut s = templated();
    s.ok("hotel", 1);
    s.fail("flight", 1, "NoSeats");
    let undo = s.ex.request(&s.plan, "hotel", Compensation).unwrap();
    assert_eq!(
        undo.input,
        json!({ "trip": "t1", "execution": "ex-1", "nights": 3 })
    );
    assert_eq!(
        undo.participant,
        Participant::Handler {
            name: "cancel_hotel".into()
        }
    );
}

#[test]
fn a_compensation_template_may_read_its_own_steps_output() {
    let mut s = templated();
    s.ok_with("hotel", 1, json!({ "booking": { "id": "H-7" } }));
    s.ok_with("flight", 1, json!({ "ticket": "F-1" }));
    s.fail("car", 1, "NoCars");
    let undo = s.ex.request(&s.plan, "flight", Compensation).unwrap();
    assert_eq!(undo.input, json!({ "ticket": "F-1" }));
}

#[test]
fn a_template_referencing_a_missing_field_is_a_runtime_error_that_rolls_back() {
    let mut s = templated();
    s.ok_with("hotel", 1, json!({ "booking": { "id": "H-7" } }));
    s.ok("flight", 1);
    let err = s.ex.request(&s.plan, "car", Action).unwrap_err();
    assert_eq!(err.error, RUNTIME);
    assert!(err.cause.contains("$.input.driver.name"), "{}", err.cause);
    // The runtime reports it as the attempt's failure; it is never retried.
    let events = s.on(Input::TaskFailed {
        step: "car".into(),
        task: Action,
        attempt: 1,
        error: err,
    });
    assert_eq!(
        events,
        [
            "car#1 failed with States.Runtime",
            "roll back after car",
            "compensate flight#1"
        ]
    );
}

#[test]
fn a_request_for_a_task_that_is_not_running_is_a_runtime_error() {
    let s = templated();
    assert_eq!(
        s.ex.request(&s.plan, "flight", Action).unwrap_err().error,
        RUNTIME
    );
    assert_eq!(
        s.ex.request(&s.plan, "spa", Action).unwrap_err().error,
        RUNTIME
    );
    assert_eq!(
        s.ex.request(&s.plan, "hotel", Compensation)
            .unwrap_err()
            .error,
        RUNTIME
    );
}

// ---------------------------------------------------------------- parallel rollback

#[test]
fn when_a_branch_fails_for_good_nothing_is_compensated_until_the_running_branch_finishes() {
    let mut s = Saga::trip_with_transport_running();
    assert_eq!(
        s.fail("flight", 1, "NoSeats"),
        ["flight#1 failed with NoSeats", "roll back after flight"],
        "car is still running"
    );
    assert_eq!(s.ex.status, Status::Compensating);
    assert!(s
        .ex
        .outstanding(&s.plan)
        .iter()
        .all(|e| matches!(e, Effect::Invoke { step, task: Action, .. } if step == "car")));
    assert_eq!(
        s.ok("car", 1),
        ["car#1 succeeded", "compensate car#1"],
        "the car finished after the turn and is undone first"
    );
    assert_eq!(
        s.undone("car", 1),
        ["car compensated by #1", "compensate hotel#1"]
    );
    assert_eq!(
        s.undone("hotel", 1),
        ["hotel compensated by #1", "finished compensated"]
    );
    assert_eq!(s.compensations_in_history(), ["car", "hotel"]);
}

#[test]
fn a_branch_still_running_at_the_turn_is_compensated_in_reverse_completion_order() {
    let mut s = Saga::new(
        r#"
name: trip
steps:
  - parallel:
      name: all
      branches:
        - { name: a, action: { handler: a }, compensation: { handler: ua } }
        - { name: b, action: { handler: b }, compensation: { handler: ub } }
        - { name: c, action: { handler: c }, compensation: { handler: uc } }
        - { name: d, action: { handler: d }, compensation: { handler: ud } }
"#,
    );
    s.start(json!({}));
    s.ok("c", 1);
    s.fail("b", 1, "Broken");
    assert_eq!(s.ok("d", 1), ["d#1 succeeded"], "a is still running");
    assert_eq!(s.ok("a", 1), ["a#1 succeeded", "compensate a#1"]);
    s.undone("a", 1);
    s.undone("d", 1);
    assert_eq!(
        s.undone("c", 1),
        ["c compensated by #1", "finished compensated"]
    );
    assert_eq!(s.compensations_in_history(), ["a", "d", "c"]);
}

#[test]
fn a_branch_still_running_at_the_turn_that_then_fails_is_not_retried_nor_compensated() {
    let mut s = Saga::trip_with_transport_running();
    s.fail("flight", 1, "NoSeats");
    assert_eq!(
        s.fail("car", 1, TASK_FAILED),
        ["car#1 failed with States.TaskFailed", "compensate hotel#1"],
        "no retry once the saga turned back"
    );
    s.undone("hotel", 1);
    assert_eq!(s.compensations_in_history(), ["hotel"]);
}

#[test]
fn a_branch_still_running_at_the_turn_that_then_times_out_is_compensated() {
    let mut s = Saga::trip_with_transport_running();
    s.fail("flight", 1, "NoSeats");
    assert_eq!(
        s.fail("car", 1, TIMEOUT),
        ["car#1 failed with States.Timeout", "compensate car#1"]
    );
    s.undone("car", 1);
    s.undone("hotel", 1);
    assert_eq!(s.compensations_in_history(), ["car", "hotel"]);
    assert_eq!(s.ex.error.as_ref().unwrap().error, "NoSeats");
}

#[test]
fn a_branch_waiting_for_a_retry_at_the_turn_is_abandoned_and_its_timer_ignored() {
    let mut s = Saga::trip_with_transport_running();
    s.fail("car", 1, TASK_FAILED);
    assert_eq!(
        s.fail("flight", 1, "NoSeats"),
        [
            "flight#1 failed with NoSeats",
            "roll back after flight",
            "compensate hotel#1"
        ]
    );
    let car = s.plan.saga().unwrap().step_index("car").unwrap();
    assert_eq!(
        s.ex.saga().unwrap().steps[car].action.state,
        TaskState::Abandoned
    );
    assert_eq!(s.timer("car", Action, 2), NOTHING);
    s.undone("hotel", 1);
    assert_eq!(s.ex.status, Status::Compensated);
}

#[test]
fn a_branch_that_timed_out_and_waits_for_a_retry_at_the_turn_is_compensated() {
    let mut s = Saga::trip_with_transport_running();
    s.fail("car", 1, TIMEOUT);
    assert_eq!(
        s.fail("flight", 1, "NoSeats"),
        [
            "flight#1 failed with NoSeats",
            "roll back after flight",
            "compensate car#1"
        ],
        "the timed-out attempt may have booked the car"
    );
    s.undone("car", 1);
    s.undone("hotel", 1);
    assert_eq!(s.compensations_in_history(), ["car", "hotel"]);
}

// ---------------------------------------------------------------- execution timeout

const TIMED: &str = r#"
name: timed
timeout: 10s
steps:
  - name: hotel
    action: { handler: hotel }
    compensation: { handler: cancel_hotel }
  - name: flight
    action: { handler: flight }
    compensation: { handler: cancel_flight }
  - name: pay
    pivot: true
    action: { handler: pay }
  - name: confirm
    action: { handler: confirm }
"#;

#[test]
fn an_execution_that_outlives_its_timeout_before_the_pivot_rolls_back_and_ends_timed_out() {
    let mut s = Saga::new(TIMED);
    let (_, effects) = s.on_with_effects(Input::Start {
        execution_id: "ex-1".into(),
        definition: "timed".into(),
        version: 1,
        input: json!({}),
    });
    assert!(effects.contains(&Effect::Deadline { at: 1_000 + 10_000 }));
    s.ok("hotel", 1);
    // Before the deadline, a deadline input is stale.
    assert_eq!(s.on(Input::DeadlinePassed), NOTHING);
    s.now = 1_000 + 10_000;
    // The flight is still running: its outcome decides whether it is undone.
    assert_eq!(s.on(Input::DeadlinePassed), ["timed out"]);
    assert_eq!(s.ex.status, Status::Compensating);
    assert_eq!(
        s.ok("flight", 1),
        ["flight#1 succeeded", "compensate flight#1"]
    );
    assert_eq!(
        s.undone("flight", 1),
        ["flight compensated by #1", "compensate hotel#1"]
    );
    assert_eq!(
        s.undone("hotel", 1),
        ["hotel compensated by #1", "finished timed_out"]
    );
    assert_eq!(s.ex.error.as_ref().unwrap().error, TIMEOUT);
}

#[test]
fn a_deadline_after_the_pivot_changes_nothing_because_there_is_no_way_back() {
    let mut s = Saga::new(TIMED);
    s.start(json!({}));
    s.ok("hotel", 1);
    s.ok("flight", 1);
    s.ok("pay", 1);
    s.now = 1_000 + 10_000;
    assert_eq!(s.on(Input::DeadlinePassed), NOTHING);
    assert_eq!(
        s.ok("confirm", 1),
        ["confirm#1 succeeded", "finished succeeded"]
    );
}

#[test]
fn a_recovered_execution_rearms_its_deadline() {
    let mut s = Saga::new(TIMED);
    s.start(json!({}));
    let replayed = Execution::replay(&s.plan, &s.history).unwrap();
    assert!(replayed
        .outstanding(&s.plan)
        .contains(&Effect::Deadline { at: 11_000 }));
}

// ---------------------------------------------------------------- parked callbacks

const PARKED: &str = r#"
name: approval
steps:
  - name: reserve
    action: { handler: ok }
    compensation: { handler: undo }
  - name: approve
    callback: true
    timeout: 1h
    retry: { max_attempts: 1 }
    action: { handler: ask }
    compensation: { handler: undo }
"#;

#[test]
fn an_acknowledged_callback_parks_with_a_durable_deadline_and_can_leave_memory() {
    let mut s = Saga::new(PARKED);
    s.start(json!({}));
    s.ok("reserve", 1);
    assert!(!s.ex.is_parked(&s.plan), "the call is not acknowledged yet");
    let (events, effects) = s.on_with_effects(Input::TaskParked {
        step: "approve".into(),
        task: Action,
        attempt: 1,
    });
    assert_eq!(brief(&events), ["approve#1 parked"]);
    let deadline = s.now + 3_600_000;
    assert!(effects.contains(&Effect::StartTimer {
        step: "approve".into(),
        task: Action,
        attempt: 1,
        fire_at: deadline,
    }));
    assert!(s.ex.is_parked(&s.plan));
    // Reloaded from history, it is not called again: it only re-arms its deadline.
    let replayed = Execution::replay(&s.plan, &s.history).unwrap();
    assert_eq!(
        replayed.outstanding(&s.plan),
        [Effect::StartTimer {
            step: "approve".into(),
            task: Action,
            attempt: 1,
            fire_at: deadline,
        }]
    );
}

#[test]
fn the_deadline_timer_of_a_parked_callback_times_it_out_and_an_early_one_is_ignored() {
    let mut s = Saga::new(PARKED);
    s.start(json!({}));
    s.ok("reserve", 1);
    s.on(Input::TaskParked {
        step: "approve".into(),
        task: Action,
        attempt: 1,
    });
    assert_eq!(
        s.timer("approve", Action, 1),
        NOTHING,
        "before the deadline"
    );
    s.now += 3_600_000;
    assert_eq!(
        s.timer("approve", Action, 1),
        [
            "approve#1 failed with States.Timeout",
            "roll back after approve",
            "compensate approve#1"
        ]
    );
}
