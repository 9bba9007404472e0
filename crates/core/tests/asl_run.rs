//! The ASL interpreter, driven through the same `decide`/`apply` contract as
//! sagas: every test feeds inputs, keeps the recorded events, and checks
//! that replaying them rebuilds exactly the live state.

mod support;

use sagaflow_core::{
    compile_definition, Ctx, Effect, Event, Execution, Input, Participant, Plan, Status, TaskKind,
};
use serde_json::{json, Value};
use support::{invoked, lambda, resources, timers, Sim};

impl Sim {
    fn event_names(&self) -> Vec<String> {
        self.history
            .iter()
            .map(|e| match e.kind.step() {
                Some(s) => format!("{} {s}", e.kind.name()),
                None => e.kind.name().to_string(),
            })
            .collect()
    }
}

#[test]
fn a_machine_of_pass_states_succeeds_at_once_with_the_results_placed() {
    let (sim, _) = Sim::start(
        json!({
            "StartAt": "A",
            "States": {
                "A": { "Type": "Pass", "Result": {"x": 1}, "ResultPath": "$.a", "Next": "B" },
                "B": { "Type": "Pass", "Parameters": {"sum.$": "States.MathAdd($.n, 2)", "a.$": "$.a"}, "End": true }
            }
        }),
        json!({"n": 40}),
    );
    assert_eq!(sim.ex.status, Status::Succeeded);
    assert_eq!(sim.ex.output, Some(json!({"sum": 42, "a": {"x": 1}})));
}

#[test]
fn a_task_calls_its_participant_with_the_effective_input_and_places_the_answer() {
    let (mut sim, fx) = Sim::start(
        json!({
            "StartAt": "Book",
            "States": {
                "Book": {
                    "Type": "Task", "Resource": lambda("book"),
                    "InputPath": "$.trip",
                    "ResultSelector": {"id.$": "$.booking"},
                    "ResultPath": "$.result",
                    "OutputPath": "$.result",
                    "End": true
                }
            }
        }),
        json!({"trip": {"to": "Dublin"}}),
    );
    assert_eq!(invoked(&fx), ["Book"]);
    let req = sim
        .ex
        .request(&sim.plan, "Book", TaskKind::Action)
        .expect("a request");
    assert_eq!(req.input, json!({"to": "Dublin"}));
    assert_eq!(
        req.participant,
        Participant::Handler {
            name: "book".into()
        }
    );
    assert_eq!(req.idempotency_key, "ex-1:Book:action");
    sim.succeed("Book", json!({"booking": "B-1", "noise": true}));
    assert_eq!(sim.ex.status, Status::Succeeded);
    assert_eq!(sim.ex.output, Some(json!({"id": "B-1"})));
}

#[test]
fn a_failed_task_is_retried_with_backoff_then_caught() {
    let (mut sim, _) = Sim::start(
        json!({
            "StartAt": "Pay",
            "States": {
                "Pay": {
                    "Type": "Task", "Resource": lambda("pay"),
                    "Retry": [{"ErrorEquals": ["Busy"], "IntervalSeconds": 2, "MaxAttempts": 2, "BackoffRate": 3.0}],
                    "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Refund"}],
                    "End": true
                },
                "Refund": { "Type": "Pass", "End": true }
            }
        }),
        json!({"amount": 5}),
    );
    let fx = sim.fail("Pay", "Busy");
    let now = sim.now;
    assert_eq!(timers(&fx), [("Pay".to_string(), now + 2_000)]);
    let fx = sim.fire("Pay");
    assert_eq!(invoked(&fx), ["Pay"]);
    assert_eq!(sim.attempt("Pay"), 2);
    let fx = sim.fail("Pay", "Busy");
    let now = sim.now;
    assert_eq!(timers(&fx), [("Pay".to_string(), now + 6_000)], "2 s × 3.0");
    sim.fire("Pay");
    sim.fail("Pay", "Busy");
    assert_eq!(
        sim.ex.status,
        Status::Succeeded,
        "caught after the retries ran out"
    );
    assert_eq!(
        sim.ex.output,
        Some(json!({"amount": 5, "error": {"Error": "Busy", "Cause": "it broke"}}))
    );
}

#[test]
fn an_uncaught_task_failure_fails_the_execution_with_its_error() {
    let (mut sim, _) = Sim::start(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": lambda("t"), "End": true}}}),
        json!({}),
    );
    sim.fail("T", "HotelFull");
    assert_eq!(sim.ex.status, Status::Failed);
    assert_eq!(
        sim.ex.error.as_ref().map(|e| e.error.as_str()),
        Some("HotelFull")
    );
}

#[test]
fn a_choice_routes_by_its_first_matching_rule_and_fails_when_none_matches() {
    let machine = json!({
        "StartAt": "C",
        "States": {
            "C": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.n", "NumericGreaterThan": 10, "Next": "Big"},
                    {"And": [{"Variable": "$.n", "NumericGreaterThanEquals": 0}, {"Variable": "$.n", "NumericLessThanEquals": 10}], "Next": "Small"}
                ]
            },
            "Big": {"Type": "Pass", "Result": "big", "End": true},
            "Small": {"Type": "Pass", "Result": "small", "End": true}
        }
    });
    let (sim, _) = Sim::start(machine.clone(), json!({"n": 11}));
    assert_eq!(sim.ex.output, Some(json!("big")));
    let (sim, _) = Sim::start(machine.clone(), json!({"n": 3}));
    assert_eq!(sim.ex.output, Some(json!("small")));
    let (sim, _) = Sim::start(machine, json!({"n": -1}));
    assert_eq!(sim.ex.status, Status::Failed);
    assert_eq!(
        sim.ex.error.as_ref().map(|e| e.error.as_str()),
        Some("States.NoChoiceMatched")
    );
}

#[test]
fn a_wait_arms_a_timer_and_continues_when_it_fires() {
    let (mut sim, fx) = Sim::start(
        json!({
            "StartAt": "W",
            "States": {
                "W": {"Type": "Wait", "SecondsPath": "$.delay", "Next": "Done"},
                "Done": {"Type": "Succeed"}
            }
        }),
        json!({"delay": 30}),
    );
    let now = sim.now;
    assert_eq!(timers(&fx), [("W".to_string(), now + 30_000)]);
    assert_eq!(sim.ex.status, Status::Running);
    sim.fire("W");
    assert_eq!(sim.ex.status, Status::Succeeded);
    assert_eq!(sim.ex.output, Some(json!({"delay": 30})));
}

#[test]
fn a_parallel_runs_its_branches_at_once_and_collects_their_outputs_in_order() {
    let branch = |name: &str| json!({"StartAt": name, "States": {name: {"Type": "Task", "Resource": lambda(name), "End": true}}});
    let (mut sim, fx) = Sim::start(
        json!({
            "StartAt": "P",
            "States": {
                "P": {"Type": "Parallel", "Branches": [branch("flight"), branch("car")], "ResultPath": "$.both", "End": true}
            }
        }),
        json!({"trip": 1}),
    );
    assert_eq!(invoked(&fx), ["P[0]/flight", "P[1]/car"]);
    sim.succeed("P[1]/car", json!("C"));
    assert_eq!(sim.ex.status, Status::Running);
    sim.succeed("P[0]/flight", json!("F"));
    assert_eq!(sim.ex.output, Some(json!({"trip": 1, "both": ["F", "C"]})));
}

#[test]
fn a_failing_branch_stops_the_others_and_the_parallel_catch_runs() {
    let branch = |name: &str| json!({"StartAt": name, "States": {name: {"Type": "Task", "Resource": lambda(name), "End": true}}});
    let (mut sim, _) = Sim::start(
        json!({
            "StartAt": "P",
            "States": {
                "P": {
                    "Type": "Parallel", "Branches": [branch("flight"), branch("car")],
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Undo"}],
                    "End": true
                },
                "Undo": {"Type": "Pass", "End": true}
            }
        }),
        json!({}),
    );
    sim.fail("P[0]/flight", "NoSeats");
    assert_eq!(sim.ex.status, Status::Succeeded);
    assert_eq!(
        sim.ex.output,
        Some(json!({"Error": "NoSeats", "Cause": "it broke"}))
    );
    // The car's late answer is stale: nothing is recorded for it.
    let before = sim.history.len();
    sim.feed(Input::TaskSucceeded {
        step: "P[1]/car".into(),
        task: TaskKind::Action,
        attempt: 1,
        output: json!("late"),
    });
    assert_eq!(sim.history.len(), before);
}

#[test]
fn a_map_runs_at_most_max_concurrency_items_at_a_time() {
    let (mut sim, fx) = Sim::start(
        json!({
            "StartAt": "M",
            "States": {
                "M": {
                    "Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 1,
                    "ItemSelector": {"item.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index"},
                    "ItemProcessor": {"StartAt": "Do", "States": {"Do": {"Type": "Task", "Resource": lambda("do"), "End": true}}},
                    "End": true
                }
            }
        }),
        json!({"items": ["a", "b"]}),
    );
    assert_eq!(invoked(&fx), ["M[0]/Do"]);
    assert_eq!(
        sim.request_input("M[0]/Do"),
        json!({"item": "a", "index": 0})
    );
    let fx = sim.succeed("M[0]/Do", json!(1));
    assert_eq!(invoked(&fx), ["M[1]/Do"]);
    sim.succeed("M[1]/Do", json!(2));
    assert_eq!(sim.ex.output, Some(json!([1, 2])));
}

#[test]
fn a_map_tolerates_failures_up_to_its_threshold() {
    let machine = |count: u64| {
        json!({
            "StartAt": "M",
            "States": {
                "M": {
                    "Type": "Map", "ToleratedFailureCount": count,
                    "ItemProcessor": {"StartAt": "Do", "States": {"Do": {"Type": "Task", "Resource": lambda("do"), "End": true}}},
                    "End": true
                }
            }
        })
    };
    let (mut sim, _) = Sim::start(machine(1), json!([1, 2]));
    sim.fail("M[0]/Do", "Bad");
    sim.succeed("M[1]/Do", json!("ok"));
    assert_eq!(sim.ex.status, Status::Succeeded);
    let (mut sim, _) = Sim::start(machine(0), json!([1, 2]));
    sim.fail("M[0]/Do", "Bad");
    assert_eq!(sim.ex.status, Status::Failed);
    assert_eq!(
        sim.ex.error.as_ref().map(|e| e.error.as_str()),
        Some("States.ExceedToleratedFailureThreshold")
    );
}

#[test]
fn a_wait_for_task_token_task_hands_out_a_token_and_parks() {
    let (mut sim, fx) = Sim::start(
        json!({
            "StartAt": "Approve",
            "States": {
                "Approve": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                    "Parameters": {"FunctionName": "ask", "Payload": {"token.$": "$$.Task.Token", "who.$": "$.who"}},
                    "End": true
                }
            }
        }),
        json!({"who": "ann"}),
    );
    assert_eq!(invoked(&fx), ["Approve"]);
    let req = sim
        .ex
        .request(&sim.plan, "Approve", TaskKind::Action)
        .expect("a request");
    let token = req.task_token.clone().expect("a token");
    assert_eq!(req.input, json!({"token": token, "who": "ann"}));
    assert_eq!(req.participant, Participant::Handler { name: "ask".into() });
    sim.feed(Input::TaskParked {
        step: "Approve".into(),
        task: TaskKind::Action,
        attempt: 1,
    });
    assert!(sim.ex.is_parked(&sim.plan), "only waits for its callback");
    sim.succeed("Approve", json!({"approved": true}));
    assert_eq!(
        sim.ex.output,
        Some(json!({"approved": true})),
        "not wrapped"
    );
}

#[test]
fn lambda_invoke_returns_the_payload_wrapped_as_aws_does() {
    let (mut sim, _) = Sim::start(
        json!({
            "StartAt": "Call",
            "States": {
                "Call": {
                    "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": lambda("calc"), "Payload.$": "$"},
                    "OutputPath": "$.Payload",
                    "End": true
                }
            }
        }),
        json!({"x": 1}),
    );
    assert_eq!(sim.request_input("Call"), json!({"x": 1}));
    sim.succeed("Call", json!({"y": 2}));
    assert_eq!(sim.ex.output, Some(json!({"y": 2})));
}

#[test]
fn a_state_entered_again_gets_a_new_key_so_its_call_is_not_deduplicated() {
    // humank's cancel states catch their own failure and loop back to themselves.
    let (mut sim, fx) = Sim::start(
        json!({
            "StartAt": "Cancel",
            "States": {
                "Cancel": {
                    "Type": "Task", "Resource": lambda("cancel"),
                    "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.err", "Next": "Cancel"}],
                    "ResultPath": "$.res",
                    "Next": "Failed"
                },
                "Failed": {"Type": "Fail", "Error": "BookingFailed"}
            }
        }),
        json!({}),
    );
    assert_eq!(invoked(&fx), ["Cancel"]);
    let fx = sim.fail("Cancel", "Oops");
    assert_eq!(invoked(&fx), ["Cancel#2"]);
    sim.succeed("Cancel#2", json!("done"));
    assert_eq!(sim.ex.status, Status::Failed);
    assert_eq!(
        sim.ex.error.as_ref().map(|e| e.error.as_str()),
        Some("BookingFailed")
    );
}

#[test]
fn cancelling_aborts_the_execution_and_the_deadline_times_it_out() {
    let machine = json!({
        "StartAt": "T", "TimeoutSeconds": 60,
        "States": {"T": {"Type": "Task", "Resource": lambda("t"), "End": true}}
    });
    let (mut sim, fx) = Sim::start(machine.clone(), json!({}));
    assert!(fx.iter().any(|e| matches!(e, Effect::Deadline { .. })));
    sim.feed(Input::Cancel {
        reason: "user".into(),
    });
    assert_eq!(sim.ex.status, Status::Cancelled);
    let (mut sim, _) = Sim::start(machine, json!({}));
    sim.now += 60_000;
    sim.feed(Input::DeadlinePassed);
    assert_eq!(sim.ex.status, Status::TimedOut);
    assert!(sim.ex.outstanding(&sim.plan).is_empty());
}

#[test]
fn a_redrive_restarts_the_machine_timeout_live_and_after_a_replay_alike() {
    // As in AWS, a redrive resets the state machine's TimeoutSeconds.
    let (mut sim, _) = Sim::start(
        json!({"StartAt": "T", "TimeoutSeconds": 60, "States": {
            "T": {"Type": "Task", "Resource": lambda("t"), "End": true}
        }}),
        json!({}),
    );
    sim.fail("T", "Down");
    // The first deadline passes while the execution is failed: nothing happens.
    sim.now += 120_000;
    sim.feed(Input::DeadlinePassed);
    assert_eq!(sim.ex.status, Status::Failed);
    let fx = sim.feed(Input::Redrive);
    let due = sim.now + 60_000;
    assert!(fx.contains(&Effect::Deadline { at: due }), "{fx:?}");
    // A process recovered from the history arms the same deadline.
    let recovered = Execution::replay(&sim.plan, &sim.history).expect("replays");
    let deadlines: Vec<Effect> = recovered
        .outstanding(&sim.plan)
        .into_iter()
        .filter(|e| matches!(e, Effect::Deadline { .. }))
        .collect();
    assert_eq!(deadlines, [Effect::Deadline { at: due }]);
    // A deadline armed before the redrive is stale.
    sim.feed(Input::DeadlinePassed);
    assert_eq!(sim.ex.status, Status::Running);
    sim.now = due;
    sim.feed(Input::DeadlinePassed);
    assert_eq!(sim.ex.status, Status::TimedOut);
}

#[test]
fn a_redrive_retries_the_state_that_failed() {
    let (mut sim, _) = Sim::start(
        json!({"StartAt": "A", "States": {
            "A": {"Type": "Pass", "Result": 1, "ResultPath": "$.a", "Next": "T"},
            "T": {"Type": "Task", "Resource": lambda("t"), "End": true}
        }}),
        json!({}),
    );
    sim.fail("T", "Down");
    assert_eq!(sim.ex.status, Status::Failed);
    let fx = sim.feed(Input::Redrive);
    assert_eq!(invoked(&fx), ["T#2"]);
    assert_eq!(sim.request_input("T#2"), json!({"a": 1}));
    sim.succeed("T#2", json!("ok"));
    assert_eq!(sim.ex.status, Status::Succeeded);
}

#[test]
fn the_step_functions_history_is_rendered_from_the_stored_events() {
    let (mut sim, _) = Sim::start(
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": lambda("t"), "End": true}}}),
        json!({"a": 1}),
    );
    sim.succeed("T", json!({"b": 2}));
    let trace = sagaflow_core::trace(&sim.plan, &sim.history).expect("a trace");
    let names = support::types(&trace);
    assert_eq!(
        names,
        [
            "ExecutionStarted",
            "StateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSucceeded",
            "StateExited",
            "ExecutionSucceeded"
        ]
    );
    assert_eq!(
        sim.event_names(),
        [
            "execution_started",
            "step_scheduled T",
            "step_succeeded T",
            "execution_finished"
        ]
    );
}

#[test]
fn a_loop_of_pass_and_choice_states_fails_instead_of_spinning_forever() {
    let (sim, _) = Sim::start(
        json!({"StartAt": "A", "States": {
            "A": {"Type": "Pass", "Next": "B"},
            "B": {"Type": "Choice", "Choices": [{"Variable": "$.stop", "IsPresent": true, "Next": "End"}], "Default": "A"},
            "End": {"Type": "Succeed"}
        }}),
        json!({}),
    );
    assert_eq!(sim.ex.status, Status::Failed);
    let error = sim.ex.error.clone().expect("an error");
    assert_eq!(error.error, "States.Runtime");
    assert!(error.cause.contains("loops"), "{}", error.cause);
}

#[test]
fn a_map_of_many_items_that_finish_at_once_does_not_recurse_per_item() {
    let items: Vec<u32> = (0..20_000).collect();
    let (sim, _) = Sim::start(
        json!({"StartAt": "M", "States": {
            "M": {"Type": "Map", "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}, "End": true}
        }}),
        json!(items),
    );
    assert_eq!(sim.ex.status, Status::Succeeded);
    assert_eq!(
        sim.ex
            .output
            .as_ref()
            .and_then(Value::as_array)
            .map(Vec::len),
        Some(20_000)
    );
}

/// A Wait of 0 seconds looping on itself: one `timer_fired` per turn, forever.
fn wait_loop() -> Plan {
    let machine = json!({"StartAt": "Loop", "States": {
        "Loop": {"Type": "Wait", "Seconds": 0, "Next": "Again"},
        "Again": {"Type": "Choice", "Default": "Loop", "Choices": [
            {"Variable": "$.stop", "BooleanEquals": true, "Next": "Done"}
        ]},
        "Done": {"Type": "Succeed"}
    }});
    compile_definition(&machine.to_string(), Some("m"), &resources()).expect("compiles")
}

/// Feeds every timer the execution arms back to it (decided in place, as the
/// runtime does) until it finishes or `turns` inputs were fed. Returns the history.
fn spin(plan: &Plan, ex: &mut Execution, turns: usize) -> Vec<Event> {
    let mut history = Vec::new();
    let mut inputs = vec![Input::Start {
        execution_id: "ex-1".into(),
        definition: "m".into(),
        version: 1,
        input: json!({ "stop": false }),
    }];
    for turn in 0..turns as u64 {
        let Some(input) = inputs.pop() else { break };
        let now = 1_000_000 + turn;
        let ctx = Ctx {
            now,
            random: 0.5,
            entropy: 42,
        };
        let applied = ex
            .decide_in_place(plan, input, ctx)
            .unwrap_or_else(|e| panic!("the input is allowed: {e}"));
        history.extend(applied.events);
        for fx in applied.effects {
            if let Effect::StartTimer { step, attempt, .. } = fx {
                inputs.push(Input::TimerFired {
                    step,
                    task: TaskKind::Action,
                    attempt,
                });
            }
        }
    }
    history
}

#[test]
fn a_wait_loop_fails_with_states_runtime_when_its_history_reaches_25000_events() {
    let plan = wait_loop();
    let mut ex = Execution::empty(&plan);
    let history = spin(&plan, &mut ex, 100_000);
    assert_eq!(ex.status, Status::Failed);
    let error = ex.error.clone().expect("an error");
    assert_eq!(error.error, "States.Runtime");
    assert!(
        error
            .cause
            .contains("history reached the limit of 25000 events"),
        "{}",
        error.cause
    );
    // The quota counts stored events, and the failure is the last of them.
    assert_eq!(history.len(), 25_000);
    assert_eq!(ex.events, 25_000);
    assert!(matches!(
        history.last().map(|e| &e.kind),
        Some(sagaflow_core::EventKind::ExecutionFinished { .. })
    ));
    assert_eq!(
        Execution::replay(&plan, &history).expect("replays"),
        ex,
        "replay diverged from the live state"
    );
    // Nothing is left to do, and it cannot be redriven (as AWS).
    assert!(ex.outstanding(&plan).is_empty());
    let redrive = ex.decide_in_place(
        &plan,
        Input::Redrive,
        Ctx {
            now: 2_000_000,
            random: 0.5,
            entropy: 1,
        },
    );
    assert!(matches!(redrive, Err(e) if e.code() == "not_redrivable"));
}

#[test]
fn a_decision_that_reaches_the_history_limit_performs_none_of_what_it_started() {
    // A Map of 50 Tasks with a limit of 30 events: the decision that starts
    // the Map reaches it, so no Task is called.
    let machine = json!({"StartAt": "M", "States": {"M": {
        "Type": "Map", "End": true,
        "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": lambda("work"), "End": true}}}
    }}});
    let mut plan =
        compile_definition(&machine.to_string(), Some("m"), &resources()).expect("compiles");
    plan.limit(sagaflow_core::Limits {
        max_history_events: 30,
    });
    let mut ex = Execution::empty(&plan);
    let items: Vec<u32> = (0..50).collect();
    let applied = ex
        .decide_in_place(
            &plan,
            Input::Start {
                execution_id: "ex-1".into(),
                definition: "m".into(),
                version: 1,
                input: json!(items),
            },
            Ctx {
                now: 1_000_000,
                random: 0.5,
                entropy: 42,
            },
        )
        .expect("decides");
    assert_eq!(applied.events.len(), 30);
    assert_eq!(ex.status, Status::Failed);
    assert!(
        applied
            .effects
            .iter()
            .all(|e| matches!(e, Effect::Finished { .. })),
        "{:?}",
        applied.effects
    );
    assert_eq!(
        Execution::replay(&plan, &applied.events).expect("replays"),
        ex
    );
}

#[test]
fn deciding_in_place_gives_the_same_events_state_and_effects_as_the_preview() {
    let machine = json!({"StartAt": "M", "States": {"M": {
        "Type": "Map", "MaxConcurrency": 3, "End": true,
        "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": lambda("work"), "End": true}}}
    }}});
    let plan = compile_definition(&machine.to_string(), Some("m"), &resources()).expect("compiles");
    let mut live = Execution::empty(&plan);
    let mut inputs = vec![Input::Start {
        execution_id: "ex-1".into(),
        definition: "m".into(),
        version: 1,
        input: json!([1, 2, 3, 4, 5, 6, 7]),
    }];
    let ctx = Ctx {
        now: 1_000_000,
        random: 0.5,
        entropy: 42,
    };
    while let Some(input) = inputs.pop() {
        let preview = live
            .decide_and_preview(&plan, input.clone(), ctx)
            .expect("decides");
        let applied = live.decide_in_place(&plan, input, ctx).expect("decides");
        assert_eq!(applied.events, preview.events);
        assert_eq!(applied.effects, preview.effects);
        assert_eq!(live, preview.state);
        for fx in applied.effects {
            if let Effect::Invoke { step, attempt, .. } = fx {
                inputs.push(Input::TaskSucceeded {
                    step,
                    task: TaskKind::Action,
                    attempt,
                    output: json!("ok"),
                });
            }
        }
    }
    assert_eq!(live.status, Status::Succeeded);
}
