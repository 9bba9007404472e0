//! Workflow variables (`Assign`) in JSONPath machines.
//!
//! The rules come from AWS's developer guide, "Passing data between states
//! with variables" (docs.aws.amazon.com/step-functions/latest/dg/workflow-variables.html):
//! the states that take `Assign` (Pass, Task, Map, Parallel, Choice, Wait),
//! `$name` to read a variable, `$states` reserved, 256 KiB per state's
//! Assign. The Choice rule's / Default's Assign, the Catch's Assign and the
//! all-at-once evaluation follow LocalStack's AWS-validated implementation
//! (`state_choice.py`, `assign_decl.py`) and its recorded AWS histories
//! (`test_assign_reference_variables.snapshot.json`: `assignedVariables`
//! holds each value as JSON text, with `assignedVariablesDetails`).
//! Every test checks that replaying the history rebuilds the live state.

mod support;

use sagaflow_core::{Effect, Input, Status};
use serde_json::{json, Value};
use support::{lambda, problems, Sim};

impl Sim {
    /// `assignedVariables` of each `…StateExited` entry that has them.
    fn assigned(&self) -> Vec<(String, Value)> {
        self.trace()
            .into_iter()
            .filter_map(|v| {
                (v["type"] == "StateExited" && v.get("assigned").is_some()).then(|| {
                    (
                        v["name"].as_str().unwrap().to_string(),
                        v["assigned"].clone(),
                    )
                })
            })
            .collect()
    }
}

fn pass_then(assign: Value, then: Value) -> Value {
    json!({
        "StartAt": "Set",
        "States": {
            "Set": {"Type": "Pass", "Assign": assign, "Next": "Use"},
            "Use": then,
        }
    })
}

#[test]
fn a_variable_assigned_by_a_pass_state_is_read_by_a_later_state() {
    let (sim, _) = Sim::start(
        pass_then(
            json!({"greeting": "hello", "count": 42, "copied.$": "$.name"}),
            json!({"Type": "Pass", "Parameters": {"g.$": "$greeting", "n.$": "$count", "who.$": "$copied"}, "End": true}),
        ),
        json!({"name": "Ada"}),
    );
    assert_eq!(sim.ex.status, Status::Succeeded);
    assert_eq!(
        sim.ex.output,
        Some(json!({"g": "hello", "n": 42, "who": "Ada"}))
    );
}

#[test]
fn the_history_shows_assigned_variables_as_json_text() {
    let (sim, _) = Sim::start(
        pass_then(
            json!({"s": "foobar", "n": 4.3, "o": {"a": [1, 2]}}),
            json!({"Type": "Succeed"}),
        ),
        json!({}),
    );
    assert_eq!(
        sim.assigned(),
        [(
            "Set".to_string(),
            json!({"s": "\"foobar\"", "n": "4.3", "o": "{\"a\":[1,2]}"})
        )]
    );
}

#[test]
fn every_expression_of_one_assign_sees_the_values_from_before_it() {
    // assign_decl.py evaluates every binding, then stores them all.
    let machine = json!({
        "StartAt": "First",
        "States": {
            "First": {"Type": "Pass", "Assign": {"x": 1, "y": 10}, "Next": "Swap"},
            "Swap": {"Type": "Pass", "Assign": {"x.$": "$y", "y.$": "$x"}, "Next": "Show"},
            "Show": {"Type": "Pass", "Parameters": {"x.$": "$x", "y.$": "$y"}, "End": true},
        }
    });
    let (sim, _) = Sim::start(machine, json!({}));
    assert_eq!(sim.ex.output, Some(json!({"x": 10, "y": 1})));
}

#[test]
fn a_pass_state_assigns_from_its_result_before_result_path_and_output_path() {
    let machine = json!({
        "StartAt": "P",
        "States": {
            "P": {
                "Type": "Pass",
                "Parameters": {"made.$": "$.in"},
                "ResultPath": "$.placed",
                "OutputPath": "$.placed",
                "Assign": {"fromResult.$": "$.made", "all.$": "$"},
                "Next": "Show"
            },
            "Show": {"Type": "Pass", "Parameters": {"r.$": "$fromResult", "all.$": "$all"}, "End": true},
        }
    });
    let (sim, _) = Sim::start(machine, json!({"in": 7}));
    assert_eq!(sim.ex.output, Some(json!({"r": 7, "all": {"made": 7}})));
}

#[test]
fn a_task_assigns_from_its_result_after_result_selector_and_reads_variables_in_its_parameters() {
    let machine = json!({
        "StartAt": "Set",
        "States": {
            "Set": {"Type": "Pass", "Assign": {"customer": "C-1"}, "Next": "T"},
            "T": {
                "Type": "Task",
                "Resource": lambda("t"),
                "Parameters": {"who.$": "$customer", "tag.$": "States.Format('for {}', $customer)"},
                "ResultSelector": {"id.$": "$.raw.id"},
                "ResultPath": null,
                "Assign": {"bookingId.$": "$.id"},
                "Next": "Show"
            },
            "Show": {"Type": "Pass", "Parameters": {"booking.$": "$bookingId"}, "End": true},
        }
    });
    let (mut sim, _) = Sim::start(machine, json!({}));
    assert_eq!(
        sim.request_input("T"),
        json!({"who": "C-1", "tag": "for C-1"})
    );
    sim.succeed("T", json!({"raw": {"id": "B-9"}}));
    assert_eq!(sim.ex.output, Some(json!({"booking": "B-9"})));
    assert_eq!(
        sim.assigned(),
        [
            ("Set".to_string(), json!({"customer": "\"C-1\""})),
            ("T".to_string(), json!({"bookingId": "\"B-9\""}))
        ]
    );
}

#[test]
fn a_catch_assigns_from_the_error_output_and_the_failed_states_own_assign_is_skipped() {
    let machine = json!({
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": lambda("t"),
                "Assign": {"ok": true},
                "Catch": [{"ErrorEquals": ["States.ALL"], "Assign": {"why.$": "$.Error"}, "ResultPath": null, "Next": "Show"}],
                "Next": "Show"
            },
            "Show": {"Type": "Pass", "Parameters": {"why.$": "$why"}, "End": true},
        }
    });
    let (mut sim, _) = Sim::start(machine, json!({}));
    sim.fail("T", "Boom");
    assert_eq!(sim.ex.output, Some(json!({"why": "Boom"})));
    assert_eq!(
        sim.assigned(),
        [("T".to_string(), json!({"why": "\"Boom\""}))]
    );
}

#[test]
fn a_choice_rule_assigns_when_it_matches_and_the_states_assign_when_default_is_taken() {
    let machine = |input: i64| {
        let m = json!({
            "StartAt": "C",
            "States": {
                "C": {
                    "Type": "Choice",
                    "Choices": [{"Variable": "$.n", "NumericEquals": 1, "Assign": {"path": "rule", "seen.$": "$.n"}, "Next": "Show"}],
                    "Default": "Show",
                    "Assign": {"path": "default", "seen.$": "$.n"}
                },
                "Show": {"Type": "Pass", "Parameters": {"path.$": "$path", "seen.$": "$seen"}, "End": true},
            }
        });
        Sim::start(m, json!({"n": input})).0
    };
    assert_eq!(
        machine(1).ex.output,
        Some(json!({"path": "rule", "seen": 1}))
    );
    assert_eq!(
        machine(2).ex.output,
        Some(json!({"path": "default", "seen": 2}))
    );
}

#[test]
fn a_choice_compares_variables_in_variable_and_in_path_operands() {
    let machine = json!({
        "StartAt": "Set",
        "States": {
            "Set": {"Type": "Pass", "Assign": {"answer": "the_answer", "guess": "the_answer"}, "Next": "C"},
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$guess", "StringEqualsPath": "$answer", "Next": "Right"}],
                "Default": "Wrong"
            },
            "Right": {"Type": "Succeed"},
            "Wrong": {"Type": "Fail", "Error": "Wrong"},
        }
    });
    let (sim, _) = Sim::start(machine, json!({}));
    assert_eq!(sim.ex.status, Status::Succeeded);
}

#[test]
fn a_wait_reads_its_seconds_from_a_variable_and_assigns_from_its_input() {
    let machine = json!({
        "StartAt": "Set",
        "States": {
            "Set": {"Type": "Pass", "Assign": {"delay": 5}, "Next": "W"},
            "W": {"Type": "Wait", "SecondsPath": "$delay", "Assign": {"waited.$": "$.tag"}, "Next": "Show"},
            "Show": {"Type": "Pass", "Parameters": {"w.$": "$waited"}, "End": true},
        }
    });
    let (mut sim, fx) = Sim::start(machine, json!({"tag": "t1"}));
    let fire_at = fx
        .iter()
        .find_map(|e| match e {
            Effect::StartTimer { fire_at, .. } => Some(*fire_at),
            _ => None,
        })
        .expect("a timer");
    assert_eq!(fire_at, sim.now + 5_000);
    sim.fire("W");
    assert_eq!(sim.ex.output, Some(json!({"w": "t1"})));
}

#[test]
fn input_path_output_path_items_path_and_fail_paths_read_variables() {
    let machine = json!({
        "StartAt": "Set",
        "States": {
            "Set": {"Type": "Pass", "Assign": {"doc": {"items": [1, 2]}, "err": "Custom.Error"}, "Next": "P"},
            "P": {"Type": "Pass", "InputPath": "$doc", "OutputPath": "$doc.items", "Next": "M"},
            "M": {
                "Type": "Map",
                "ItemsPath": "$doc.items",
                "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "End": true}}},
                "Next": "F"
            },
            "F": {"Type": "Fail", "ErrorPath": "$err", "CausePath": "States.Format('{} items', States.ArrayLength($doc.items))"},
        }
    });
    let (sim, _) = Sim::start(machine, json!({}));
    assert_eq!(sim.ex.status, Status::Failed);
    let error = sim.ex.error.clone().expect("an error");
    assert_eq!(
        (error.error.as_str(), error.cause.as_str()),
        ("Custom.Error", "2 items")
    );
}

#[test]
fn map_iterations_read_the_outer_variables_and_keep_their_own_to_themselves() {
    let machine = json!({
        "StartAt": "Set",
        "States": {
            "Set": {"Type": "Pass", "Assign": {"bias": 100}, "Next": "M"},
            "M": {
                "Type": "Map",
                "ItemProcessor": {
                    "StartAt": "Own",
                    "States": {
                        "Own": {"Type": "Pass", "Assign": {"mine.$": "States.MathAdd($, $bias)"}, "Next": "Out"},
                        "Out": {"Type": "Pass", "Parameters": {"v.$": "$mine"}, "End": true},
                    }
                },
                "Assign": {"results.$": "$"},
                "Next": "Show"
            },
            "Show": {"Type": "Pass", "Parameters": {"r.$": "$results", "bias.$": "$bias"}, "End": true},
        }
    });
    let (sim, _) = Sim::start(machine, json!([1, 2, 3]));
    assert_eq!(
        sim.ex.output,
        Some(json!({"r": [{"v": 101}, {"v": 102}, {"v": 103}], "bias": 100}))
    );
}

#[test]
fn parallel_branches_read_the_outer_variables_and_the_parallel_assigns_from_their_results() {
    let branch = |name: &str| json!({"StartAt": name, "States": {name: {"Type": "Pass", "Parameters": {"who.$": "$who"}, "End": true}}});
    let machine = json!({
        "StartAt": "Set",
        "States": {
            "Set": {"Type": "Pass", "Assign": {"who": "outer"}, "Next": "Par"},
            "Par": {
                "Type": "Parallel",
                "Branches": [branch("A"), branch("B")],
                "ResultSelector": {"first.$": "$[0].who"},
                "Assign": {"first.$": "$.first"},
                "Next": "Show"
            },
            "Show": {"Type": "Pass", "Parameters": {"f.$": "$first"}, "End": true},
        }
    });
    let (sim, _) = Sim::start(machine, json!({}));
    assert_eq!(sim.ex.output, Some(json!({"f": "outer"})));
}

#[test]
fn a_variable_read_before_any_state_assigned_it_fails_with_states_runtime() {
    let machine = json!({
        "StartAt": "Use",
        "States": {
            "Use": {"Type": "Pass", "Parameters": {"x.$": "$late"}, "Next": "Set"},
            "Set": {"Type": "Pass", "Assign": {"late": 1}, "End": true},
        }
    });
    let (sim, _) = Sim::start(machine, json!({}));
    let error = sim.ex.error.clone().expect("an error");
    assert_eq!(error.error, "States.Runtime");
    assert!(
        error
            .cause
            .ends_with("Invalid path '$late': The variable '$late' is not defined"),
        "{}",
        error.cause
    );
}

#[test]
fn an_assign_over_256_kib_fails_the_state_with_states_runtime() {
    let big = "x".repeat(200 * 1024);
    let machine = json!({
        "StartAt": "Set",
        "States": {
            "Set": {"Type": "Pass", "Parameters": {"a.$": "$.big", "b.$": "$.big"}, "Assign": {"a.$": "$.a", "b.$": "$.b"}, "End": true},
        }
    });
    let (sim, _) = Sim::start(machine, json!({"big": big}));
    let error = sim.ex.error.clone().expect("an error");
    assert_eq!(error.error, "States.Runtime");
    assert!(
        error.cause.contains("over the limit of 262144 bytes"),
        "{}",
        error.cause
    );
}

#[test]
fn a_redrive_keeps_the_variables_the_machine_had_when_it_failed() {
    let machine = json!({
        "StartAt": "Set",
        "States": {
            "Set": {"Type": "Pass", "Assign": {"k": "kept"}, "Next": "T"},
            "T": {"Type": "Task", "Resource": lambda("t"), "Parameters": {"k.$": "$k"}, "End": true},
        }
    });
    let (mut sim, _) = Sim::start(machine, json!({}));
    sim.fail("T", "Boom");
    assert_eq!(sim.ex.status, Status::Failed);
    sim.feed(Input::Redrive);
    assert_eq!(sim.request_input("T#2"), json!({"k": "kept"}));
}

#[test]
fn assign_is_refused_where_aws_does_not_allow_it_and_on_bad_names() {
    let found = problems(json!({
        "StartAt": "S",
        "States": {
            "S": {"Type": "Pass", "Assign": {"1st": 1, "states": 2, "has-dash": 3, "ok": 4}, "Next": "F"},
            "F": {"Type": "Fail", "Assign": {"x": 1}},
        }
    }));
    assert_eq!(
        found,
        [
            (
                "invalid_variable_name".to_string(),
                "/States/S/Assign/1st".to_string()
            ),
            (
                "invalid_variable_name".to_string(),
                "/States/S/Assign/states".to_string()
            ),
            (
                "invalid_variable_name".to_string(),
                "/States/S/Assign/has-dash".to_string()
            ),
            ("unknown_field".to_string(), "/States/F/Assign".to_string()),
        ]
    );
    let long = "v".repeat(81);
    let found = problems(pass_then(
        json!({ long.clone(): 1 }),
        json!({"Type": "Succeed"}),
    ));
    assert_eq!(
        found,
        [(
            "invalid_variable_name".to_string(),
            format!("/States/Set/Assign/{long}")
        )]
    );
}

#[test]
fn a_variable_no_state_of_its_scope_or_an_enclosing_one_assigns_is_refused_at_deploy() {
    let found = problems(json!({
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "Assign": {"inner": 1}, "End": true}}},
                "Next": "Use"
            },
            "Use": {"Type": "Pass", "Parameters": {"a.$": "$inner", "b.$": "States.Format('{}', $nowhere)"}, "End": true},
        }
    }));
    assert_eq!(
        found,
        [
            (
                "unknown_variable".to_string(),
                "/States/Use/Parameters/a.$".to_string()
            ),
            (
                "unknown_variable".to_string(),
                "/States/Use/Parameters/b.$".to_string()
            ),
        ]
    );
}

#[test]
fn a_branch_cannot_assign_a_variable_of_an_enclosing_scope() {
    let found = problems(json!({
        "StartAt": "Set",
        "States": {
            "Set": {"Type": "Pass", "Assign": {"total": 0}, "Next": "Par"},
            "Par": {
                "Type": "Parallel",
                "Branches": [{"StartAt": "B", "States": {"B": {"Type": "Pass", "Assign": {"total": 1}, "End": true}}}],
                "End": true
            },
        }
    }));
    assert_eq!(
        found,
        [(
            "invalid_assign".to_string(),
            "/States/Par/Branches/0/States/B/Assign/total".to_string()
        )]
    );
}

#[test]
fn result_path_cannot_name_a_variable() {
    let found = problems(pass_then(
        json!({"v": 1}),
        json!({"Type": "Pass", "ResultPath": "$v", "End": true}),
    ));
    assert_eq!(
        found,
        [(
            "invalid_reference_path".to_string(),
            "/States/Use/ResultPath".to_string()
        )]
    );
}
