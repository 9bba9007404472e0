//! JSONata as the query language of ASL machines (`QueryLanguage:
//! "JSONata"`, issue 18): `Arguments`, `Output`, `Assign` with `$states`,
//! Choice `Condition`, Map `Items`/`ItemSelector`, Catch `Output` with
//! `$states.errorOutput`, `States.QueryEvaluationError`, deploy-time syntax
//! errors, and replays that draw the same `$uuid()`/`$random()`.
//!
//! Sources: AWS's developer guide, "Transforming data with JSONata in Step
//! Functions" (docs.aws.amazon.com/step-functions/latest/dg/transforming-data.html:
//! the JSONPath → JSONata conversion of a Task's `Parameters` into
//! `Arguments`, with `$customerName` a variable and the `"not-evaluated"`
//! string kept as written), "State machine structure"
//! (docs.aws.amazon.com/step-functions/latest/dg/statemachine-structure.html:
//! a JSONPath machine may have JSONata states, a JSONata machine no
//! JSONPath state), and the `ProcessAnimals` Map of asl-validator issue
//! #173 (github.com/ChristopheBougere/asl-validator/issues/173), which its
//! reporter ran on AWS. Every step checks that replaying the history
//! rebuilds the live state.

mod support;

use sagaflow_core::{Effect, Status, TaskKind};
use serde_json::{json, Value};
use support::{lambda, violations, Sim};

fn problems(doc: Value) -> Vec<(String, String, String)> {
    violations(doc)
        .into_iter()
        .map(|v| (v.code, v.location, v.message))
        .collect()
}

fn has_problem(doc: Value, code: &str, location: &str) -> String {
    let found = problems(doc);
    found
        .iter()
        .find(|(c, l, _)| c == code && l == location)
        .map(|(_, _, m)| m.clone())
        .unwrap_or_else(|| panic!("no {code} at {location}: {found:?}"))
}

#[test]
fn the_developer_guides_arguments_example_in_a_jsonpath_machine() {
    // transforming-data.html: the Task's Parameters converted to Arguments;
    // `$customerName` was assigned "María" by an earlier (JSONPath) state,
    // and a string that is not `{% … %}` is kept as written.
    let machine = json!({
        "StartAt": "Remember",
        "States": {
            "Remember": {"Type": "Pass", "Assign": {"customerName": "María"}, "Next": "Greet"},
            "Greet": {
                "QueryLanguage": "JSONata",
                "Type": "Task",
                "Resource": lambda("greet"),
                "Arguments": {
                    "static": "Hello",
                    "title": "{% $states.input.title %}",
                    "name": "{% $customerName %}",
                    "not-evaluated": "$customerName"
                },
                "Output": {"greeting": "{% $states.result.text %}", "for": "{% $customerName %}"},
                "Next": "Done"
            },
            "Done": {"Type": "Pass", "Parameters": {"g.$": "$.greeting"}, "End": true}
        }
    });
    let mut sim = Sim::started(machine, json!({"title": "Doctor"}));
    let expected = json!({"static": "Hello", "title": "Doctor", "name": "María", "not-evaluated": "$customerName"});
    assert_eq!(sim.request_input("Greet"), expected);
    sim.succeed("Greet", json!({"text": "Hello, Doctor María"}));
    assert_eq!(sim.ex.status, Status::Succeeded);
    assert_eq!(sim.ex.output, Some(json!({"g": "Hello, Doctor María"})));
    // The evaluated Arguments are the TaskScheduled parameters.
    let scheduled = sim
        .trace()
        .into_iter()
        .find(|t| t["type"] == "TaskScheduled")
        .expect("a TaskScheduled");
    assert_eq!(scheduled["parameters"], expected);
}

#[test]
fn a_jsonata_machine_runs_the_map_of_asl_validator_issue_173() {
    let machine = json!({
        "QueryLanguage": "JSONata",
        "StartAt": "SetupAnimals",
        "States": {
            "SetupAnimals": {
                "Type": "Pass",
                "Output": {"animals": ["Lion", "Cheetah", "Elephant"]},
                "Next": "ProcessAnimals"
            },
            "ProcessAnimals": {
                "Type": "Map",
                "Items": "{% $states.input.animals %}",
                "ItemSelector": {
                    "animalName": "{% $states.context.Map.Item.Value %}",
                    "index": "{% $states.context.Map.Item.Index %}"
                },
                "ItemProcessor": {
                    "StartAt": "NoOp",
                    "States": {"NoOp": {"Type": "Pass", "End": true}}
                },
                "Output": {"processResults": "{% $states.result %}"},
                "End": true
            }
        }
    });
    let sim = Sim::started(machine, json!({}));
    assert_eq!(sim.ex.status, Status::Succeeded);
    assert_eq!(
        sim.ex.output,
        Some(json!({"processResults": [
            {"animalName": "Lion", "index": 0},
            {"animalName": "Cheetah", "index": 1},
            {"animalName": "Elephant", "index": 2}
        ]}))
    );
}

#[test]
fn map_items_may_be_a_literal_array_and_max_concurrency_an_expression() {
    let machine = json!({
        "QueryLanguage": "JSONata",
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "Items": [1, 2, "{% $states.input.third %}"],
                "MaxConcurrency": "{% $states.input.width %}",
                "ItemProcessor": {
                    "StartAt": "Call",
                    "States": {"Call": {"Type": "Task", "Resource": lambda("f"), "End": true}}
                },
                "End": true
            }
        }
    });
    let mut sim = Sim::started(machine, json!({"third": 3, "width": 1}));
    // One at a time: only the first item's task runs.
    assert_eq!(sim.request_input("M[0]/Call"), json!(1));
    assert!(sim
        .ex
        .request(&sim.plan, "M[1]/Call", TaskKind::Action)
        .is_err());
    sim.succeed("M[0]/Call", json!("a"));
    sim.succeed("M[1]/Call", json!("b"));
    assert_eq!(sim.request_input("M[2]/Call"), json!(3));
    sim.succeed("M[2]/Call", json!("c"));
    assert_eq!(sim.ex.output, Some(json!(["a", "b", "c"])));
}

#[test]
fn choice_conditions_pick_a_rule_with_its_output_and_assign() {
    let machine = json!({
        "QueryLanguage": "JSONata",
        "StartAt": "Route",
        "States": {
            "Route": {
                "Type": "Choice",
                "Choices": [
                    {
                        "Condition": "{% $states.input.total > 100 %}",
                        "Assign": {"tier": "gold"},
                        "Output": {"big": "{% $states.input.total %}"},
                        "Next": "Show"
                    },
                    {"Condition": false, "Next": "Show"}
                ],
                "Default": "Show",
                "Assign": {"tier": "plain"}
            },
            "Show": {"Type": "Pass", "Output": {"in": "{% $states.input %}", "tier": "{% $tier %}"}, "End": true}
        }
    });
    let sim = Sim::started(machine.clone(), json!({"total": 250}));
    assert_eq!(
        sim.ex.output,
        Some(json!({"in": {"big": 250}, "tier": "gold"}))
    );
    let sim = Sim::started(machine, json!({"total": 5}));
    assert_eq!(
        sim.ex.output,
        Some(json!({"in": {"total": 5}, "tier": "plain"}))
    );
}

#[test]
fn a_condition_that_is_not_a_boolean_is_a_query_evaluation_error() {
    let machine = json!({
        "QueryLanguage": "JSONata",
        "StartAt": "Route",
        "States": {
            "Route": {
                "Type": "Choice",
                "Choices": [{"Condition": "{% $states.input.total %}", "Next": "Done"}],
                "Default": "Done"
            },
            "Done": {"Type": "Succeed"}
        }
    });
    let sim = Sim::started(machine, json!({"total": 3}));
    let e = sim.error();
    assert_eq!(e.error, "States.QueryEvaluationError");
    assert!(
        e.cause
            .starts_with("An error occurred while executing the state 'Route'"),
        "{}",
        e.cause
    );
    assert!(e.cause.contains("'Choices/0/Condition'"), "{}", e.cause);
    // AWS's history shows the failure as an EvaluationFailed event.
    let types = sim.trace_types();
    let n = types.len();
    assert_eq!(
        types[n - 2..],
        [
            "EvaluationFailed".to_string(),
            "ExecutionFailed".to_string()
        ],
        "{types:?}"
    );
    let trace = sagaflow_core::trace(&sim.plan, &sim.history).unwrap();
    let failed = serde_json::to_value(&trace[n - 2].kind).unwrap();
    assert_eq!(failed["state"], "Route");
    assert_eq!(failed["location"], "Choices/0/Condition");
    assert_eq!(failed["error"]["error"], "States.QueryEvaluationError");
}

#[test]
fn a_catch_reads_the_error_output_and_assigns_from_it() {
    let machine = json!({
        "QueryLanguage": "JSONata",
        "StartAt": "Charge",
        "States": {
            "Charge": {
                "Type": "Task",
                "Resource": lambda("charge"),
                "Catch": [{
                    "ErrorEquals": ["Card.Declined"],
                    "Output": {"error": "{% $states.errorOutput.Error %}", "order": "{% $states.input.order %}"},
                    "Assign": {"why": "{% $states.errorOutput.Cause %}"},
                    "Next": "Report"
                }],
                "End": true
            },
            "Report": {"Type": "Pass", "Output": "{% $merge([$states.input, {'why': $why}]) %}", "End": true}
        }
    });
    let mut sim = Sim::started(machine, json!({"order": 7}));
    sim.fail_with("Charge", "Card.Declined", "insufficient funds");
    assert_eq!(sim.ex.status, Status::Succeeded);
    assert_eq!(
        sim.ex.output,
        Some(json!({"error": "Card.Declined", "order": 7, "why": "insufficient funds"}))
    );
}

#[test]
fn a_catch_without_output_passes_the_error_output_on() {
    let machine = json!({
        "QueryLanguage": "JSONata",
        "StartAt": "Charge",
        "States": {
            "Charge": {
                "Type": "Task",
                "Resource": lambda("charge"),
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Done"}],
                "End": true
            },
            "Done": {"Type": "Succeed"}
        }
    });
    let mut sim = Sim::started(machine, json!({"order": 7}));
    sim.fail_with("Charge", "Boom", "it broke");
    assert_eq!(
        sim.ex.output,
        Some(json!({"Error": "Boom", "Cause": "it broke"}))
    );
}

#[test]
fn a_query_evaluation_error_in_output_is_retried_then_caught() {
    let machine = json!({
        "QueryLanguage": "JSONata",
        "StartAt": "Fetch",
        "States": {
            "Fetch": {
                "Type": "Task",
                "Resource": lambda("fetch"),
                "Output": "{% $states.result.value %}",
                "Retry": [{"ErrorEquals": ["States.QueryEvaluationError"], "MaxAttempts": 1, "IntervalSeconds": 1}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Output": "{% $states.errorOutput %}", "Next": "Failed"}],
                "End": true
            },
            "Failed": {"Type": "Pass", "End": true}
        }
    });
    let mut sim = Sim::started(machine, json!({}));
    sim.succeed("Fetch", json!({"other": 1}));
    // Retried: a second attempt is due.
    assert_eq!(sim.ex.attempts(&sim.plan, "Fetch", TaskKind::Action), 2);
    sim.fire("Fetch");
    sim.succeed("Fetch", json!({"other": 2}));
    assert_eq!(sim.ex.status, Status::Succeeded);
    let out = sim.ex.output.clone().expect("an output");
    assert_eq!(out["Error"], "States.QueryEvaluationError");
    assert_eq!(
        out["Cause"],
        "An error occurred while executing the state 'Fetch' (entered at the event id #2). \
         The JSONata expression '$states.result.value' specified for the field 'Output' returned nothing (undefined)."
    );
}

#[test]
fn an_arguments_error_fails_the_attempt_for_catch() {
    let machine = json!({
        "QueryLanguage": "JSONata",
        "StartAt": "Call",
        "States": {
            "Call": {
                "Type": "Task",
                "Resource": lambda("f"),
                "Arguments": {"n": "{% $number($states.input.n) + $states.input.missing.x %}", "bad": "{% $error('nope') %}"},
                "Catch": [{"ErrorEquals": ["States.QueryEvaluationError"], "Next": "Caught"}],
                "End": true
            },
            "Caught": {"Type": "Pass", "Output": "{% $states.input.Error %}", "End": true}
        }
    });
    let mut sim = Sim::started(machine, json!({"n": "1"}));
    let e = sim.invoke("Call").expect_err("the Arguments fail");
    assert_eq!(e.error, "States.QueryEvaluationError");
    // The first failing field is reported.
    assert!(
        e.cause
            .ends_with("specified for the field 'Arguments/n' returned nothing (undefined)."),
        "{}",
        e.cause
    );
    assert_eq!(sim.ex.status, Status::Succeeded);
    assert_eq!(sim.ex.output, Some(json!("States.QueryEvaluationError")));
    let types = sim.trace_types();
    let at = types.iter().position(|t| t == "EvaluationFailed");
    assert!(
        at.is_some_and(|i| types[i + 1] == "StateExited"),
        "recorded before the Catch leaves the state: {types:?}"
    );
}

#[test]
fn a_query_evaluation_error_without_a_catch_fails_the_execution() {
    let machine = json!({
        "QueryLanguage": "JSONata",
        "StartAt": "P",
        "States": {"P": {"Type": "Pass", "Output": "{% $states.input.nothing %}", "End": true}}
    });
    let sim = Sim::started(machine, json!({}));
    assert_eq!(sim.ex.status, Status::Failed);
    assert_eq!(sim.error().error, "States.QueryEvaluationError");
}

#[test]
fn wait_seconds_and_fail_error_may_be_expressions() {
    let machine = json!({
        "QueryLanguage": "JSONata",
        "StartAt": "Pause",
        "States": {
            "Pause": {"Type": "Wait", "Seconds": "{% $states.input.delay * 2 %}", "Output": {"waited": true}, "Next": "Stop"},
            "Stop": {"Type": "Fail", "Error": "{% 'Custom.' & $states.input.kind %}", "Cause": "{% $string($states.input) %}"}
        }
    });
    let mut sim = Sim::started(machine, json!({"delay": 3, "kind": "Stop"}));
    let waiting = sim
        .ex
        .outstanding(&sim.plan)
        .into_iter()
        .find_map(|e| match e {
            Effect::StartTimer { fire_at, .. } => Some(fire_at),
            _ => None,
        })
        .expect("a timer");
    assert_eq!(waiting, 1_000_010 + 6_000);
    sim.fire("Pause");
    let e = sim.error();
    // The Wait's Output is the Fail's input: `kind` is gone (JSONata's `&`
    // reads nothing as "").
    assert_eq!(
        (e.error.as_str(), e.cause.as_str()),
        ("Custom.", "{\"waited\":true}")
    );
}

#[test]
fn parallel_arguments_feed_every_branch_and_output_reads_the_results() {
    let branch = |name: &str| json!({"StartAt": name, "States": {name: {"Type": "Pass", "Output": "{% $states.input.x * 10 %}", "End": true}}});
    let machine = json!({
        "QueryLanguage": "JSONata",
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Arguments": {"x": "{% $states.input.n + 1 %}"},
                "Branches": [branch("A"), branch("B")],
                "Assign": {"sum": "{% $sum($states.result) %}"},
                "Output": {"results": "{% $states.result %}"},
                "Next": "Show"
            },
            "Show": {"Type": "Pass", "Output": {"sum": "{% $sum %}", "r": "{% $states.input.results %}"}, "End": true}
        }
    });
    let sim = Sim::started(machine, json!({"n": 1}));
    assert_eq!(sim.ex.output, Some(json!({"sum": 40, "r": [20, 20]})));
}

#[test]
fn every_assign_expression_sees_the_variables_from_before_the_state() {
    let machine = json!({
        "QueryLanguage": "JSONata",
        "StartAt": "First",
        "States": {
            "First": {"Type": "Pass", "Assign": {"x": 1, "y": 10}, "Next": "Swap"},
            "Swap": {"Type": "Pass", "Assign": {"x": "{% $y %}", "y": "{% $x %}"}, "Output": {"x": "{% $x %}"}, "Next": "Show"},
            "Show": {"Type": "Pass", "Output": {"before": "{% $states.input.x %}", "x": "{% $x %}", "y": "{% $y %}"}, "End": true}
        }
    });
    let sim = Sim::started(machine, json!({}));
    // Swap's Output still saw x = 1.
    assert_eq!(sim.ex.output, Some(json!({"before": 1, "x": 10, "y": 1})));
}

/// A machine drawing `$uuid()` and `$random()` in a Pass, a Task's
/// Arguments and a Map's items.
fn random_machine() -> Value {
    json!({
        "QueryLanguage": "JSONata",
        "StartAt": "Draw",
        "States": {
            "Draw": {"Type": "Pass", "Output": {"id": "{% $uuid() %}", "r": "{% $random() %}", "r2": "{% $random() %}"}, "Next": "Call"},
            "Call": {
                "Type": "Task",
                "Resource": lambda("f"),
                "Arguments": {"id": "{% $states.input.id %}", "token": "{% $uuid() %}"},
                "Output": {"first": "{% $states.input %}", "call": "{% $states.result %}"},
                "Next": "Fan"
            },
            "Fan": {
                "Type": "Map",
                "Items": [1, 2],
                "ItemSelector": {"u": "{% $uuid() %}"},
                "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "End": true}}},
                "Output": {"before": "{% $states.input %}", "items": "{% $states.result %}"},
                "End": true
            }
        }
    })
}

fn run_random(id: &str) -> (Value, Value, Vec<Value>) {
    let mut sim = Sim::started_as(id, random_machine(), json!({}));
    let sent = sim.request_input("Call");
    let scheduled = sim
        .trace()
        .into_iter()
        .find(|t| t["type"] == "TaskScheduled")
        .expect("a TaskScheduled")["parameters"]
        .clone();
    assert_eq!(scheduled, sent, "the history shows what was sent");
    sim.succeed("Call", json!("ok"));
    assert_eq!(sim.ex.status, Status::Succeeded);
    // The Step Functions view replays the history: same values again.
    let exited: Vec<Value> = sim
        .trace()
        .into_iter()
        .filter(|t| t["type"] == "StateExited")
        .map(|t| t["output"].clone())
        .collect();
    assert_eq!(exited.last(), sim.ex.output.as_ref());
    (sim.ex.output.clone().expect("an output"), sent, exited)
}

#[test]
fn uuid_and_random_replay_identically_and_differ_between_executions() {
    let (out, sent, exited) = run_random("ex-1");
    let draw = &out["before"]["first"];
    assert!(draw["id"]
        .as_str()
        .is_some_and(|u| u.len() == 36 && u.as_bytes()[14] == b'4'));
    let r = draw["r"].as_f64().expect("a number");
    assert!((0.0..1.0).contains(&r));
    assert_ne!(draw["r"], draw["r2"], "two draws in one evaluation differ");
    assert_ne!(sent["token"], draw["id"]);
    let items = out["items"].as_array().expect("items");
    assert_ne!(items[0]["u"], items[1]["u"], "each item draws its own");
    // The same execution again (a replay from scratch) gives the same values.
    let again = run_random("ex-1");
    assert_eq!((out.clone(), sent.clone(), exited), again);
    // Another execution draws others.
    let (other, _, _) = run_random("ex-2");
    assert_ne!(other["before"]["first"]["id"], draw["id"]);
}

#[test]
fn a_syntax_error_is_reported_at_deploy_with_its_location() {
    let message = has_problem(
        json!({
            "QueryLanguage": "JSONata",
            "StartAt": "S",
            "States": {"S": {"Type": "Pass", "Output": {"a": ["ok", "{% $states.input.x + %}"]}, "End": true}}
        }),
        "invalid_jsonata",
        "/States/S/Output/a/1",
    );
    assert!(
        message.starts_with("The JSONata expression '$states.input.x +' has a syntax error"),
        "{message}"
    );
    has_problem(
        json!({
            "QueryLanguage": "JSONata",
            "StartAt": "C",
            "States": {
                "C": {"Type": "Choice", "Choices": [{"Condition": "{% ( %}", "Next": "D"}], "Default": "D"},
                "D": {"Type": "Succeed"}
            }
        }),
        "invalid_jsonata",
        "/States/C/Choices/0/Condition",
    );
}

#[test]
fn a_jsonata_machine_cannot_have_jsonpath_states() {
    has_problem(
        json!({
            "QueryLanguage": "JSONata",
            "StartAt": "S",
            "States": {"S": {"Type": "Pass", "QueryLanguage": "JSONPath", "End": true}}
        }),
        "wrong_query_language",
        "/States/S/QueryLanguage",
    );
}

#[test]
fn jsonpath_fields_are_refused_in_jsonata_states_and_the_other_way_round() {
    let message = has_problem(
        json!({
            "QueryLanguage": "JSONata",
            "StartAt": "T",
            "States": {"T": {"Type": "Task", "Resource": lambda("f"), "Parameters": {"a.$": "$.a"}, "ResultPath": "$.r", "End": true}}
        }),
        "wrong_query_language",
        "/States/T/Parameters",
    );
    assert!(message.contains("use `Arguments`"), "{message}");
    has_problem(
        json!({
            "QueryLanguage": "JSONata",
            "StartAt": "T",
            "States": {"T": {"Type": "Task", "Resource": lambda("f"), "ResultPath": "$.r", "End": true}}
        }),
        "wrong_query_language",
        "/States/T/ResultPath",
    );
    has_problem(
        json!({
            "QueryLanguage": "JSONata",
            "StartAt": "C",
            "States": {
                "C": {"Type": "Choice", "Choices": [{"Variable": "$.a", "BooleanEquals": true, "Next": "D"}], "Default": "D"},
                "D": {"Type": "Succeed"}
            }
        }),
        "wrong_query_language",
        "/States/C/Choices/0/Variable",
    );
    has_problem(
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Output": {"a": 1}, "End": true}}}),
        "wrong_query_language",
        "/States/P/Output",
    );
}

#[test]
fn a_wait_for_task_token_jsonata_task_hands_out_the_token_in_its_arguments() {
    let machine = json!({
        "QueryLanguage": "JSONata",
        "StartAt": "Approve",
        "States": {
            "Approve": {
                "Type": "Task",
                "Resource": format!("{}.waitForTaskToken", lambda("approve")),
                "Arguments": {"token": "{% $states.context.Task.Token %}", "who": "{% $states.input.who %}"},
                "End": true
            }
        }
    });
    let sim = Sim::started(machine.clone(), json!({"who": "ada"}));
    let sent = sim.request_input("Approve");
    assert_eq!(sent["who"], "ada");
    assert!(sent["token"].as_str().is_some_and(|t| !t.is_empty()));
    let mut without = machine;
    without["States"]["Approve"]["Arguments"] = json!({"who": "{% $states.input.who %}"});
    has_problem(without, "missing_task_token", "/States/Approve/Arguments");
}

/// "Transforming data with JSONata": in a JSONata state, `TimeoutSeconds`
/// and `HeartbeatSeconds` may be expressions (there is no `…Path` form).
#[test]
fn a_jsonata_tasks_timeout_and_heartbeat_may_be_expressions() {
    let (sim, fx) = Sim::start(
        json!({"QueryLanguage": "JSONata", "StartAt": "Ask", "States": {
            "Ask": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Arguments": {"FunctionName": "ask", "Payload": {"token": "{% $states.context.Task.Token %}"}},
                "TimeoutSeconds": "{% $states.input.limit %}",
                "HeartbeatSeconds": "{% $states.input.limit / 10 %}",
                "End": true
            }
        }}),
        json!({"limit": 300}),
    );
    let deadline = fx
        .iter()
        .find_map(|e| match e {
            Effect::Invoke { deadline, .. } => Some(*deadline),
            _ => None,
        })
        .expect("the task is called");
    assert_eq!(deadline, sim.now + 300_000);
    let req = sim
        .ex
        .request(&sim.plan, "Ask", TaskKind::Action)
        .expect("a request");
    assert_eq!(req.heartbeat_ms, Some(30_000));

    // One that is not a whole number fails the state with AWS's error.
    let (sim, _) = Sim::start(
        json!({"QueryLanguage": "JSONata", "StartAt": "Ask", "States": {
            "Ask": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Arguments": {"FunctionName": "ask", "Payload": {"token": "{% $states.context.Task.Token %}"}},
                "HeartbeatSeconds": "{% 'soon' %}",
                "End": true
            }
        }}),
        json!({}),
    );
    let refused = sim
        .ex
        .request(&sim.plan, "Ask", TaskKind::Action)
        .unwrap_err();
    assert_eq!(refused.error, "States.QueryEvaluationError", "{refused:?}");
}

/// As for JSONPath, a variable an expression reads must be assigned by some
/// state of its scope or an enclosing one; names the expression binds
/// itself, `$states`, AWS's functions and JSONata's are not variables.
#[test]
fn an_expression_reading_a_variable_nobody_assigns_is_refused_at_deploy() {
    let machine = |output: &str| {
        json!({"QueryLanguage": "JSONata", "StartAt": "A", "States": {
            "A": {"Type": "Pass", "Assign": {"rate": 2}, "Next": "B"},
            "B": {"Type": "Pass", "Output": output, "End": true}
        }})
    };
    assert_eq!(
        violations(machine("{% $states.input.n * $rat %}"))
            .iter()
            .map(|v| (v.code.as_str(), v.location.as_str()))
            .collect::<Vec<_>>(),
        [("unknown_variable", "/States/B/Output")]
    );
    for fine in [
        "{% $states.input.n * $rate %}",
        "{% ($x := 3; $x * $rate) %}",
        "{% $map([1, 2], function($v) { $v * $rate }) %}",
        "{% $sum($range(1, 3, 1)) & $uuid() & $partition([1,2], 1) & $hash('a', 'SHA-256') %}",
    ] {
        let vs = violations(machine(fine));
        assert!(vs.is_empty(), "{fine}: {vs:?}");
    }
}
