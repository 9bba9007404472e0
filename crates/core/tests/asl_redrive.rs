//! Redrive as Step Functions does it (RedriveExecution in the Step Functions
//! API reference: "For workflows that include an Inline Map or Parallel
//! state, RedriveExecution reschedules and redrives only the iterations and
//! branches that failed or aborted"; "Step Functions preserves the results
//! and execution history of the successful steps, and doesn't rerun these
//! steps"). Every decision is replayed and checked against the live state
//! by the harness.

mod support;

use sagaflow_core::{Input, Status};
use serde_json::{json, Value};
use support::{invoked, lambda, Sim};

fn task(name: &str) -> Value {
    json!({"Type": "Task", "Resource": lambda(name), "End": true})
}

fn branch(name: &str) -> Value {
    json!({"StartAt": name, "States": {name: task(name)}})
}

#[test]
fn a_redriven_parallel_runs_only_the_branch_that_failed_and_keeps_the_others_output() {
    let (mut sim, _) = Sim::start(
        json!({"StartAt": "P", "States": {
            "P": {"Type": "Parallel", "Branches": [branch("hotel"), branch("flight")], "ResultPath": "$.booked", "End": true}
        }}),
        json!({"trip": 7}),
    );
    sim.succeed("P[0]/hotel", json!("H-1"));
    sim.fail("P[1]/flight", "NoSeats");
    assert_eq!(sim.ex.status, Status::Failed);

    let fx = sim.feed(Input::Redrive);
    assert_eq!(
        invoked(&fx),
        ["P#2[1]/flight"],
        "the hotel is not booked twice"
    );
    assert_eq!(sim.request_input("P#2[1]/flight"), json!({"trip": 7}));
    sim.succeed("P#2[1]/flight", json!("F-1"));
    assert_eq!(sim.ex.status, Status::Succeeded);
    assert_eq!(
        sim.ex.output,
        Some(json!({"trip": 7, "booked": ["H-1", "F-1"]}))
    );
}

#[test]
fn a_branch_aborted_by_its_siblings_failure_runs_again_from_the_state_it_was_in() {
    let two_steps = json!({"StartAt": "Quote", "States": {
        "Quote": {"Type": "Task", "Resource": lambda("quote"), "Next": "Book"},
        "Book": task("book")
    }});
    let (mut sim, _) = Sim::start(
        json!({"StartAt": "P", "States": {
            "P": {"Type": "Parallel", "Branches": [two_steps, branch("flight")], "End": true}
        }}),
        json!({}),
    );
    sim.succeed("P[0]/Quote", json!({"price": 10}));
    // The first branch waits in `Book` when the second fails: it is aborted.
    sim.fail("P[1]/flight", "NoSeats");
    assert_eq!(sim.ex.status, Status::Failed);

    let fx = sim.feed(Input::Redrive);
    assert_eq!(
        invoked(&fx),
        ["P#2[0]/Book", "P#2[1]/flight"],
        "the quote that succeeded is not asked again"
    );
    assert_eq!(sim.request_input("P#2[0]/Book"), json!({"price": 10}));
    sim.succeed("P#2[0]/Book", json!("B"));
    sim.succeed("P#2[1]/flight", json!("F"));
    assert_eq!(sim.ex.output, Some(json!(["B", "F"])));
}

#[test]
fn a_redriven_map_runs_the_failed_and_the_never_started_items_only() {
    let (mut sim, _) = Sim::start(
        json!({"StartAt": "M", "States": {
            "M": {
                "Type": "Map", "MaxConcurrency": 2,
                "ItemProcessor": {"StartAt": "Do", "States": {"Do": task("do")}},
                "End": true
            }
        }}),
        json!(["a", "b", "c", "d"]),
    );
    sim.succeed("M[0]/Do", json!("A"));
    sim.fail("M[1]/Do", "Bad");
    assert_eq!(sim.ex.status, Status::Failed);

    // Item 2 had started (item 0's slot freed) and was aborted; item 3 never
    // started. Two at a time again: 1 and 2, then 3.
    let fx = sim.feed(Input::Redrive);
    assert_eq!(invoked(&fx), ["M#2[1]/Do", "M#2[2]/Do"]);
    assert_eq!(sim.request_input("M#2[2]/Do"), json!("c"));
    let fx = sim.succeed("M#2[1]/Do", json!("B"));
    assert_eq!(invoked(&fx), ["M#2[3]/Do"]);
    sim.succeed("M#2[2]/Do", json!("C"));
    sim.succeed("M#2[3]/Do", json!("D"));
    assert_eq!(sim.ex.status, Status::Succeeded);
    assert_eq!(sim.ex.output, Some(json!(["A", "B", "C", "D"])));
}

#[test]
fn a_redriven_map_runs_again_the_failures_it_had_tolerated() {
    let (mut sim, _) = Sim::start(
        json!({"StartAt": "M", "States": {
            "M": {
                "Type": "Map", "ToleratedFailureCount": 1,
                "ItemProcessor": {"StartAt": "Do", "States": {"Do": task("do")}},
                "End": true
            }
        }}),
        json!([1, 2, 3]),
    );
    sim.fail("M[0]/Do", "Bad");
    sim.succeed("M[1]/Do", json!("two"));
    sim.fail("M[2]/Do", "Bad");
    assert_eq!(
        sim.ex.error.as_ref().map(|e| e.error.as_str()),
        Some("States.ExceedToleratedFailureThreshold")
    );

    let fx = sim.feed(Input::Redrive);
    assert_eq!(invoked(&fx), ["M#2[0]/Do", "M#2[2]/Do"]);
    sim.succeed("M#2[0]/Do", json!("one"));
    sim.succeed("M#2[2]/Do", json!("three"));
    assert_eq!(sim.ex.output, Some(json!(["one", "two", "three"])));
}

#[test]
fn a_redrive_reaches_into_nested_maps_and_keeps_the_inner_items_that_succeeded() {
    let inner = json!({
        "Type": "Map",
        "ItemProcessor": {"StartAt": "Do", "States": {"Do": task("do")}},
        "End": true
    });
    let (mut sim, _) = Sim::start(
        json!({"StartAt": "P", "States": {
            "P": {"Type": "Parallel", "Branches": [
                {"StartAt": "Inner", "States": {"Inner": inner}},
                branch("other")
            ], "End": true}
        }}),
        json!([10, 20]),
    );
    sim.succeed("P[0]/Inner[0]/Do", json!(11));
    sim.succeed("P[1]/other", json!("O"));
    sim.fail("P[0]/Inner[1]/Do", "Bad");
    assert_eq!(sim.ex.status, Status::Failed);

    let fx = sim.feed(Input::Redrive);
    assert_eq!(invoked(&fx), ["P#2[0]/Inner[1]/Do"]);
    sim.succeed("P#2[0]/Inner[1]/Do", json!(21));
    assert_eq!(sim.ex.output, Some(json!([[11, 21], "O"])));
}

#[test]
fn a_branch_that_ended_in_a_fail_state_runs_again_from_its_start() {
    let checked = json!({"StartAt": "Check", "States": {
        "Check": {"Type": "Task", "Resource": lambda("check"), "Next": "Ok?"},
        "Ok?": {"Type": "Choice", "Choices": [{"Variable": "$.ok", "BooleanEquals": true, "Next": "Done"}], "Default": "No"},
        "No": {"Type": "Fail", "Error": "NotOk"},
        "Done": {"Type": "Succeed"}
    }});
    let (mut sim, _) = Sim::start(
        json!({"StartAt": "P", "States": {
            "P": {"Type": "Parallel", "Branches": [checked, branch("other")], "End": true}
        }}),
        json!({}),
    );
    sim.succeed("P[1]/other", json!("O"));
    sim.succeed("P[0]/Check", json!({"ok": false}));
    assert_eq!(
        sim.ex.error.as_ref().map(|e| e.error.as_str()),
        Some("NotOk")
    );

    let fx = sim.feed(Input::Redrive);
    assert_eq!(invoked(&fx), ["P#2[0]/Check"]);
    sim.succeed("P#2[0]/Check", json!({"ok": true}));
    assert_eq!(sim.ex.output, Some(json!([{"ok": true}, "O"])));
}

#[test]
fn a_redriven_branch_keeps_the_variables_it_had_assigned() {
    let assigning = json!({"StartAt": "Quote", "States": {
        "Quote": {"Type": "Task", "Resource": lambda("quote"), "Assign": {"price.$": "$.price"}, "Next": "Book"},
        "Book": {"Type": "Task", "Resource": lambda("book"), "Parameters": {"paid.$": "$price"}, "End": true}
    }});
    let (mut sim, _) = Sim::start(
        json!({"StartAt": "P", "States": {
            "P": {"Type": "Parallel", "Branches": [assigning], "End": true}
        }}),
        json!({}),
    );
    sim.succeed("P[0]/Quote", json!({"price": 99}));
    sim.fail("P[0]/Book", "Down");

    sim.feed(Input::Redrive);
    assert_eq!(sim.request_input("P#2[0]/Book"), json!({"paid": 99}));
}

#[test]
fn the_history_shows_the_redrive_and_only_the_iterations_that_ran_again() {
    let (mut sim, _) = Sim::start(
        json!({"StartAt": "M", "States": {
            "M": {
                "Type": "Map",
                "ItemProcessor": {"StartAt": "Do", "States": {"Do": task("do")}},
                "End": true
            }
        }}),
        json!([1, 2]),
    );
    sim.succeed("M[0]/Do", json!(1));
    sim.fail("M[1]/Do", "Bad");
    let before = sim.trace_types().len();
    sim.feed(Input::Redrive);
    sim.succeed("M#2[1]/Do", json!(2));
    let after: Vec<String> = sim.trace_types()[before..].to_vec();
    assert_eq!(
        after,
        [
            "ExecutionRedriven",
            "StateEntered",
            "MapStateStarted",
            "MapIterationStarted",
            "StateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSucceeded",
            "StateExited",
            "MapIterationSucceeded",
            "MapStateSucceeded",
            "StateExited",
            "ExecutionSucceeded"
        ]
    );
}

#[test]
fn a_machine_that_failed_in_its_own_fail_state_is_not_redrivable() {
    let (sim, _) = Sim::start(
        json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "No"}}}),
        json!({}),
    );
    assert_eq!(sim.ex.status, Status::Failed);
    let refused = sim.ex.decide_and_preview(
        &sim.plan,
        Input::Redrive,
        sagaflow_core::Ctx {
            now: sim.now + 1,
            random: 0.5,
            entropy: 1,
        },
    );
    assert!(refused.is_err(), "{refused:?}");
}

#[test]
fn an_aborted_execution_is_redriven_from_the_states_it_was_stopped_in() {
    let (mut sim, _) = Sim::start(
        json!({"StartAt": "P", "States": {
            "P": {"Type": "Parallel", "Branches": [branch("hotel"), branch("flight")], "End": true}
        }}),
        json!({}),
    );
    sim.succeed("P[0]/hotel", json!("H"));
    sim.feed(Input::Cancel {
        reason: "by mistake".into(),
    });
    assert_eq!(sim.ex.status, Status::Cancelled);

    let fx = sim.feed(Input::Redrive);
    assert_eq!(sim.ex.status, Status::Running);
    assert_eq!(invoked(&fx), ["P#2[1]/flight"]);
    sim.succeed("P#2[1]/flight", json!("F"));
    assert_eq!(sim.ex.output, Some(json!(["H", "F"])));
}

#[test]
fn a_timed_out_execution_is_redriven_with_a_fresh_time_limit() {
    let (mut sim, _) = Sim::start(
        json!({"StartAt": "A", "TimeoutSeconds": 60, "States": {
            "A": {"Type": "Task", "Resource": lambda("a"), "Next": "B"},
            "B": task("b")
        }}),
        json!({}),
    );
    sim.succeed("A", json!({"a": 1}));
    sim.now += 60_000;
    sim.feed(Input::DeadlinePassed);
    assert_eq!(sim.ex.status, Status::TimedOut);

    let fx = sim.feed(Input::Redrive);
    assert_eq!(invoked(&fx), ["B#2"]);
    assert_eq!(sim.request_input("B#2"), json!({"a": 1}));
    assert!(
        fx.contains(&sagaflow_core::Effect::Deadline {
            at: sim.now + 60_000
        }),
        "{fx:?}"
    );
    sim.succeed("B#2", json!("done"));
    assert_eq!(sim.ex.status, Status::Succeeded);
}

#[test]
fn a_map_item_that_ended_in_a_fail_state_runs_again_from_its_start_with_its_own_input() {
    let (mut sim, _) = Sim::start(
        json!({"StartAt": "M", "States": {
            "M": {
                "Type": "Map",
                "ItemProcessor": {"StartAt": "Check", "States": {
                    "Check": {"Type": "Task", "Resource": lambda("check"), "ResultPath": "$.verdict", "Next": "Ok?"},
                    "Ok?": {"Type": "Choice", "Choices": [{"Variable": "$.verdict", "BooleanEquals": true, "Next": "Done"}], "Default": "No"},
                    "No": {"Type": "Fail", "Error": "NotOk"},
                    "Done": {"Type": "Succeed"}
                }},
                "End": true
            }
        }}),
        json!([{"id": "a"}, {"id": "b"}]),
    );
    sim.succeed("M[0]/Check", json!(true));
    sim.succeed("M[1]/Check", json!(false));
    assert_eq!(sim.ex.status, Status::Failed);

    let fx = sim.feed(Input::Redrive);
    assert_eq!(invoked(&fx), ["M#2[1]/Check"]);
    assert_eq!(sim.request_input("M#2[1]/Check"), json!({"id": "b"}));
}
