//! Compiling Amazon States Language definitions: every state type compiles
//! into the IR (examples from the ASL spec and the AWS docs), every problem
//! is reported with its code and exact location, all at once, and the saga
//! machines of `examples/step-functions/saga` compile against a resource map.

use std::collections::BTreeMap;

use proptest::prelude::*;
use sagaflow_core::asl::machine::{
    Comparison, Integration, Kind, Machine, Operand, PathField, Rule, Seconds, State, Wait,
};
use sagaflow_core::asl::{compile, is_asl, ResourceMap, ResourceRule};
use sagaflow_core::{Error, Participant};
use serde_json::{json, Value};

/// The resource map the saga machines are deployed with.
fn lambdas() -> ResourceMap {
    ResourceMap {
        rules: vec![ResourceRule {
            pattern: "arn:aws:lambda:*:*:function:{name}".into(),
            target: "http://127.0.0.1:9/{name}".into(),
        }],
    }
}

fn http(url: &str) -> Participant {
    Participant::Http {
        url: url.into(),
        headers: BTreeMap::new(),
    }
}

fn compiles(doc: Value) -> Machine {
    compile(&doc, &lambdas()).unwrap_or_else(|e| panic!("expected {doc} to compile: {e}"))
}

/// `(code, location)` of every violation, in report order.
fn problems_with(doc: Value, resources: &ResourceMap) -> Vec<(String, String)> {
    match compile(&doc, resources) {
        Err(Error::InvalidDefinition(vs)) => vs.into_iter().map(|v| (v.code, v.location)).collect(),
        Err(other) => panic!("unexpected error {other:?}"),
        Ok(_) => panic!("expected {doc} to be refused"),
    }
}

fn problems(doc: Value) -> Vec<(String, String)> {
    problems_with(doc, &lambdas())
}

#[track_caller]
fn assert_reports(doc: Value, code: &str, location: &str) {
    let found = problems(doc);
    assert!(
        found.contains(&(code.to_string(), location.to_string())),
        "expected `{code}` at `{location}`, got {found:?}"
    );
}

/// A one-state machine around `state`, named `S`.
fn single(state: Value) -> Value {
    json!({"StartAt": "S", "States": {"S": state}})
}

/// A one-state machine with a Choice `C` whose rules lead to `Done`.
fn choice(rules: Value) -> Value {
    json!({
        "StartAt": "C",
        "States": {
            "C": {"Type": "Choice", "Choices": rules, "Default": "Done"},
            "Done": {"Type": "Succeed"}
        }
    })
}

fn lambda(name: &str) -> String {
    format!("arn:aws:lambda:us-east-1:123456789012:function:{name}")
}

fn state<'m>(m: &'m Machine, name: &str) -> &'m State {
    let i = m.graph.index(name).expect("state exists");
    &m.graph.states[i]
}

// ---------------------------------------------------------------- valid machines

#[test]
fn hello_world_from_the_spec_compiles_to_a_task_bound_through_the_resource_map() {
    let m = compiles(json!({
        "Comment": "A simple minimal example of the States language",
        "StartAt": "Hello World",
        "States": {
            "Hello World": {"Type": "Task", "Resource": lambda("HelloWorld"), "End": true}
        }
    }));
    assert_eq!(
        m.comment.as_deref(),
        Some("A simple minimal example of the States language")
    );
    assert_eq!(m.resources, lambdas());
    let s = state(&m, "Hello World");
    assert_eq!(s.next, None);
    assert_eq!(s.input_path, PathField::Path("$".into()));
    assert_eq!(s.result_path, PathField::Path("$".into()));
    let Kind::Task(task) = &s.kind else {
        panic!("a Task")
    };
    assert_eq!(task.resource, lambda("HelloWorld"));
    assert_eq!(
        task.integration,
        Integration::Function {
            participant: http("http://127.0.0.1:9/HelloWorld")
        }
    );
    assert!(!task.wait_for_token);
    assert_eq!(task.timeout, None);
}

#[test]
fn a_task_keeps_its_data_flow_fields_and_timeouts() {
    let m = compiles(single(json!({
        "Type": "Task",
        "Resource": lambda("Work"),
        "InputPath": "$.order",
        "Parameters": {"id.$": "$.id", "greeting.$": "States.Format('hi {}', $.name)", "fixed": [1, 2]},
        "ResultSelector": {"status.$": "$.Payload.status"},
        "ResultPath": null,
        "OutputPath": "$.done",
        "TimeoutSeconds": 300,
        "HeartbeatSecondsPath": "$.heartbeat",
        "End": true
    })));
    let s = state(&m, "S");
    assert_eq!(s.input_path, PathField::Path("$.order".into()));
    assert_eq!(s.result_path, PathField::Null);
    assert_eq!(s.output_path, PathField::Path("$.done".into()));
    assert_eq!(s.parameters.as_ref().unwrap()["fixed"], json!([1, 2]));
    assert!(s.result_selector.is_some());
    let Kind::Task(task) = &s.kind else {
        panic!("a Task")
    };
    assert_eq!(task.timeout, Some(Seconds::Fixed(300)));
    assert_eq!(task.heartbeat, Some(Seconds::Path("$.heartbeat".into())));
}

#[test]
fn lambda_invoke_takes_its_function_from_the_parameters() {
    let m = compiles(single(json!({
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": lambda("Charge:prod"), "Payload.$": "$"},
        "End": true
    })));
    let Kind::Task(task) = &state(&m, "S").kind else {
        panic!("a Task")
    };
    assert_eq!(task.integration, Integration::LambdaInvoke);
    assert!(!task.wait_for_token);
    // FunctionName given by a path is only known at run time.
    compiles(single(json!({
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName.$": "$.fn"},
        "End": true
    })));
}

#[test]
fn lambda_invoke_wait_for_task_token_waits_for_the_token_it_hands_out() {
    let m = compiles(single(json!({
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {
            "FunctionName": "approve",
            "Payload": {"token.$": "$$.Task.Token", "order.$": "$.order"}
        },
        "HeartbeatSeconds": 60,
        "TimeoutSeconds": 3600,
        "End": true
    })));
    let Kind::Task(task) = &state(&m, "S").kind else {
        panic!("a Task")
    };
    assert_eq!(task.integration, Integration::LambdaInvoke);
    assert!(task.wait_for_token);
    assert_eq!(task.heartbeat, Some(Seconds::Fixed(60)));
}

#[test]
fn any_other_wait_for_task_token_resource_is_resolved_without_the_suffix() {
    let resources = ResourceMap {
        rules: vec![ResourceRule {
            pattern: "arn:aws:states:::sqs:sendMessage".into(),
            target: "handler:queue".into(),
        }],
    };
    let doc = single(json!({
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"MessageBody": {"token.$": "States.Format('{}', $$.Task.Token)"}},
        "End": true
    }));
    let m = compile(&doc, &resources).expect("compiles");
    let Kind::Task(task) = &state(&m, "S").kind else {
        panic!("a Task")
    };
    assert!(task.wait_for_token);
    assert_eq!(
        task.resource,
        "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
    );
    assert_eq!(
        task.integration,
        Integration::Function {
            participant: Participant::Handler {
                name: "queue".into()
            }
        }
    );
}

#[test]
fn a_pass_state_from_the_spec_keeps_its_result() {
    let m = compiles(json!({
        "StartAt": "No-op",
        "States": {
            "No-op": {
                "Type": "Pass",
                "Result": {"x-datum": 0.381018, "y-datum": 622.2269926397355},
                "ResultPath": "$.coords",
                "Next": "End"
            },
            "End": {"Type": "Succeed"}
        }
    }));
    let s = state(&m, "No-op");
    assert_eq!(s.next, m.graph.index("End"));
    assert_eq!(s.result_path, PathField::Path("$.coords".into()));
    assert_eq!(
        s.kind,
        Kind::Pass {
            result: Some(json!({"x-datum": 0.381018, "y-datum": 622.2269926397355}))
        }
    );
}

#[test]
fn a_choice_state_from_the_spec_compiles_its_rules_and_default() {
    let m = compiles(json!({
        "StartAt": "ChoiceStateX",
        "States": {
            "ChoiceStateX": {
                "Type": "Choice",
                "Choices": [
                    {
                        "Not": {"Variable": "$.type", "StringEquals": "Private"},
                        "Next": "Public"
                    },
                    {
                        "And": [
                            {"Variable": "$.value", "IsPresent": true},
                            {"Variable": "$.value", "NumericGreaterThanEquals": 20},
                            {"Variable": "$.value", "NumericLessThan": 30}
                        ],
                        "Next": "ValueInTwenties"
                    },
                    {
                        "Or": [
                            {"Variable": "$.when", "TimestampLessThan": "2016-03-14T01:59:00Z"},
                            {"Variable": "$.name", "StringMatches": "log-*.txt"},
                            {"Variable": "$.a", "NumericEqualsPath": "$.b"},
                            {"Variable": "$$.Execution.Input.flag", "BooleanEquals": true}
                        ],
                        "Next": "Public"
                    }
                ],
                "Default": "DefaultState"
            },
            "Public": {"Type": "Pass", "Next": "DefaultState"},
            "ValueInTwenties": {"Type": "Pass", "End": true},
            "DefaultState": {"Type": "Fail", "Error": "DefaultStateError", "Cause": "No Matches!"}
        }
    }));
    let s = state(&m, "ChoiceStateX");
    let Kind::Choice { choices, default } = &s.kind else {
        panic!("a Choice")
    };
    assert_eq!(*default, m.graph.index("DefaultState"));
    assert_eq!(choices.len(), 3);
    assert_eq!(Some(choices[0].next), m.graph.index("Public"));
    assert_eq!(
        choices[0].rule,
        Rule::Not(Box::new(Rule::Compare {
            variable: "$.type".into(),
            op: Comparison::StringEquals,
            operand: Operand::Value(json!("Private")),
        }))
    );
    let Rule::And(all) = &choices[1].rule else {
        panic!("And")
    };
    assert_eq!(
        all[0],
        Rule::Compare {
            variable: "$.value".into(),
            op: Comparison::IsPresent,
            operand: Operand::Value(json!(true)),
        }
    );
    let Rule::Or(any) = &choices[2].rule else {
        panic!("Or")
    };
    assert_eq!(
        any[2],
        Rule::Compare {
            variable: "$.a".into(),
            op: Comparison::NumericEquals,
            operand: Operand::Path("$.b".into()),
        }
    );
    // A Choice has no Next of its own.
    assert_eq!(s.next, None);
}

#[test]
fn a_wait_state_takes_seconds_a_timestamp_or_a_path_to_either() {
    let forms = [
        (json!({"Seconds": 10}), Wait::Seconds(10)),
        (
            json!({"Timestamp": "2016-03-14T01:59:00Z"}),
            Wait::Timestamp("2016-03-14T01:59:00Z".into()),
        ),
        (
            json!({"SecondsPath": "$.delay"}),
            Wait::SecondsPath("$.delay".into()),
        ),
        (
            json!({"TimestampPath": "$.expirydate"}),
            Wait::TimestampPath("$.expirydate".into()),
        ),
    ];
    for (field, expected) in forms {
        let mut st = json!({"Type": "Wait", "Next": "Done"});
        st.as_object_mut()
            .unwrap()
            .extend(field.as_object().unwrap().clone());
        let m = compiles(json!({
            "StartAt": "wait_ten_seconds",
            "States": {"wait_ten_seconds": st, "Done": {"Type": "Succeed"}}
        }));
        assert_eq!(state(&m, "wait_ten_seconds").kind, Kind::Wait(expected));
    }
}

#[test]
fn succeed_and_fail_states_end_the_machine() {
    let m = compiles(json!({
        "StartAt": "Check",
        "States": {
            "Check": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.ok", "BooleanEquals": true, "Next": "SuccessState"}],
                "Default": "FailState"
            },
            "SuccessState": {"Type": "Succeed", "InputPath": "$.result"},
            "FailState": {"Type": "Fail", "Error": "ErrorA", "Cause": "Kaiju attack"}
        }
    }));
    let Kind::Fail(fail) = &state(&m, "FailState").kind else {
        panic!("a Fail")
    };
    assert_eq!(fail.error.as_deref(), Some("ErrorA"));
    assert_eq!(fail.cause.as_deref(), Some("Kaiju attack"));
    assert_eq!(state(&m, "SuccessState").kind, Kind::Succeed);

    let m = compiles(single(
        json!({"Type": "Fail", "ErrorPath": "$.error", "CausePath": "$$.Execution.Input.why"}),
    ));
    let Kind::Fail(fail) = &state(&m, "S").kind else {
        panic!("a Fail")
    };
    assert_eq!(fail.error_path.as_deref(), Some("$.error"));
    assert_eq!(fail.cause_path.as_deref(), Some("$$.Execution.Input.why"));
}

#[test]
fn a_parallel_state_from_the_spec_compiles_each_branch_as_its_own_scope() {
    let m = compiles(json!({
        "StartAt": "LookupCustomerInfo",
        "States": {
            "LookupCustomerInfo": {
                "Type": "Parallel",
                "Branches": [
                    {
                        "StartAt": "LookupAddress",
                        "States": {
                            "LookupAddress": {"Type": "Task", "Resource": lambda("AddressFinder"), "End": true}
                        }
                    },
                    {
                        "StartAt": "LookupPhone",
                        "States": {
                            "LookupPhone": {"Type": "Task", "Resource": lambda("PhoneFinder"), "Next": "Format"},
                            "Format": {"Type": "Pass", "End": true}
                        }
                    }
                ],
                "ResultSelector": {"address.$": "$[0]", "phone.$": "$[1]"},
                "Retry": [{"ErrorEquals": ["States.BranchFailed"]}],
                "Next": "NextState"
            },
            "NextState": {"Type": "Succeed"}
        }
    }));
    let s = state(&m, "LookupCustomerInfo");
    let Kind::Parallel { branches } = &s.kind else {
        panic!("a Parallel")
    };
    assert_eq!(branches.len(), 2);
    assert_eq!(branches[1].states.len(), 2);
    assert_eq!(branches[1].index("LookupPhone"), Some(branches[1].start_at));
    assert_eq!(s.retry.len(), 1);
}

#[test]
fn a_map_state_from_the_aws_docs_compiles_its_processor() {
    let m = compiles(json!({
        "StartAt": "Validate-All",
        "States": {
            "Validate-All": {
                "Type": "Map",
                "InputPath": "$.detail",
                "ItemsPath": "$.shipped",
                "MaxConcurrency": 0,
                "ItemSelector": {"parcel.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index"},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "Validate",
                    "States": {"Validate": {"Type": "Task", "Resource": lambda("ship-val"), "End": true}}
                },
                "ToleratedFailurePercentage": 10,
                "ToleratedFailureCount": 2,
                "ResultPath": "$.detail.shipped",
                "End": true
            }
        }
    }));
    let Kind::Map(map) = &state(&m, "Validate-All").kind else {
        panic!("a Map")
    };
    assert_eq!(map.items_path, "$.shipped");
    assert_eq!(map.max_concurrency, 0);
    assert!(map.item_selector.is_some());
    assert_eq!(map.processor.states[0].name, "Validate");
    assert_eq!(map.tolerated_failure_count, Some(2));
    assert_eq!(map.tolerated_failure_percentage, Some(10.0));
}

#[test]
fn a_legacy_map_with_iterator_and_parameters_compiles_with_the_defaults() {
    let m = compiles(single(json!({
        "Type": "Map",
        "Iterator": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}},
        "Parameters": {"item.$": "$$.Map.Item.Value"},
        "End": true
    })));
    let s = state(&m, "S");
    let Kind::Map(map) = &s.kind else {
        panic!("a Map")
    };
    assert_eq!(map.items_path, "$");
    assert_eq!(map.max_concurrency, 0);
    assert_eq!(
        map.item_selector,
        Some(json!({"item.$": "$$.Map.Item.Value"}))
    );
    // Parameters of a Map are its item selector, not the state's.
    assert_eq!(s.parameters, None);
}

#[test]
fn retriers_and_catchers_get_the_aws_defaults() {
    let m = compiles(json!({
        "StartAt": "Work",
        "States": {
            "Work": {
                "Type": "Task",
                "Resource": lambda("work"),
                "Retry": [
                    {"ErrorEquals": ["Lambda.ServiceException", "Lambda.TooManyRequestsException"]},
                    {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 3, "MaxAttempts": 0,
                     "BackoffRate": 1.5, "MaxDelaySeconds": 10, "JitterStrategy": "FULL"}
                ],
                "Catch": [
                    {"ErrorEquals": ["States.TaskFailed"], "Next": "Recover"},
                    {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Recover"}
                ],
                "End": true
            },
            "Recover": {"Type": "Pass", "End": true}
        }
    }));
    let s = state(&m, "Work");
    let (first, second) = (&s.retry[0], &s.retry[1]);
    assert_eq!(
        (
            first.interval_seconds,
            first.max_attempts,
            first.backoff_rate
        ),
        (1, 3, 2.0)
    );
    assert_eq!((first.max_delay_seconds, first.jitter_full), (None, false));
    assert_eq!(
        (
            second.interval_seconds,
            second.max_attempts,
            second.backoff_rate
        ),
        (3, 0, 1.5)
    );
    assert_eq!(
        (second.max_delay_seconds, second.jitter_full),
        (Some(10), true)
    );
    assert_eq!(s.catch[0].result_path, PathField::Path("$".into()));
    assert_eq!(s.catch[1].result_path, PathField::Path("$.error".into()));
    assert_eq!(Some(s.catch[0].next), m.graph.index("Recover"));
}

#[test]
fn the_machine_level_fields_are_accepted() {
    let m = compiles(json!({
        "Comment": "top", "Version": "1.0", "TimeoutSeconds": 300, "QueryLanguage": "JSONPath",
        "StartAt": "S", "States": {"S": {"Type": "Succeed", "QueryLanguage": "JSONPath"}}
    }));
    assert_eq!(m.timeout_seconds, Some(300));
}

#[test]
fn an_asl_document_is_told_apart_from_a_saga_definition() {
    assert!(is_asl(&json!({"StartAt": "S", "States": {}})));
    assert!(!is_asl(&json!({"name": "trip", "steps": []})));
}

// ---------------------------------------------------------------- the saga machines

const SAGAS: [(&str, &str); 3] = [
    (
        "cdk multi-table",
        include_str!("../../../examples/step-functions/saga/cdk-patterns--the-saga-stepfunction--multi-table.RECONSTRUCTED.asl.json"),
    ),
    (
        "cdk single-table",
        include_str!("../../../examples/step-functions/saga/cdk-patterns--the-saga-stepfunction--single-table.asl.json"),
    ),
    (
        "humank",
        include_str!("../../../examples/step-functions/saga/humank--lambda-saga-pattern--stepfunc.asl.json"),
    ),
];

#[test]
fn the_three_saga_machines_compile_with_a_lambda_resource_map() {
    for (name, text) in SAGAS {
        let doc: Value = serde_json::from_str(text).unwrap();
        assert!(is_asl(&doc), "{name}");
        let m = compile(&doc, &lambdas()).unwrap_or_else(|e| panic!("{name}: {e}"));
        for st in &m.graph.states {
            if let Kind::Task(task) = &st.kind {
                let Integration::Function {
                    participant: Participant::Http { url, .. },
                } = &task.integration
                else {
                    panic!("{name}: {} is not bound to a URL", st.name)
                };
                let function = task.resource.rsplit(':').next().unwrap();
                assert_eq!(*url, format!("http://127.0.0.1:9/{function}"));
            }
        }
    }
    let doc: Value = serde_json::from_str(SAGAS[2].1).unwrap();
    let m = compile(&doc, &lambdas()).unwrap();
    assert_eq!(m.graph.states.len(), 7);
    let book = state(&m, "BookHotel");
    assert_eq!(book.catch[0].error_equals, vec!["States.ALL".to_string()]);
    assert_eq!(Some(book.catch[0].next), m.graph.index("CancelHotel"));
    assert_eq!(
        book.catch[0].result_path,
        PathField::Path("$.BookHotelError".into())
    );
}

#[test]
fn a_saga_machine_whose_resources_the_map_does_not_cover_is_refused() {
    let doc: Value = serde_json::from_str(SAGAS[2].1).unwrap();
    let only_hotels = ResourceMap {
        rules: vec![ResourceRule {
            pattern: "arn:aws:lambda:*:*:function:lambda-saga-dev-{name}-hotel".into(),
            target: "http://hotels/{name}".into(),
        }],
    };
    let found = problems_with(doc, &only_hotels);
    assert_eq!(
        found,
        ["BookFlight", "BookRental", "CancelFlight", "CancelRental"]
            .iter()
            .map(|s| (
                "unknown_resource".to_string(),
                format!("/States/{s}/Resource")
            ))
            .collect::<Vec<_>>()
    );
    // With no map at all nothing is bound.
    let doc: Value = serde_json::from_str(SAGAS[0].1).unwrap();
    let found = problems_with(doc, &ResourceMap::default());
    assert_eq!(found.len(), 6);
    assert!(found.iter().all(|(code, _)| code == "unknown_resource"));
}

// ---------------------------------------------------------------- the resource map

#[test]
fn the_resource_map_binds_urls_and_handlers_with_the_captured_name() {
    let map = ResourceMap {
        rules: vec![
            ResourceRule {
                pattern: "arn:aws:lambda:*:*:function:local-{name}".into(),
                target: "handler:{name}".into(),
            },
            ResourceRule {
                pattern: "arn:aws:lambda:*:*:function:{name}".into(),
                target: "https://fn.example/{name}".into(),
            },
        ],
    };
    assert_eq!(
        map.resolve(&lambda("local-pay")),
        Some(Participant::Handler { name: "pay".into() })
    );
    assert_eq!(
        map.resolve(&lambda("pay")),
        Some(http("https://fn.example/pay"))
    );
    // A bare name and a partial ARN, as lambda:invoke's FunctionName allows.
    assert_eq!(map.resolve("pay"), Some(http("https://fn.example/pay")));
    assert_eq!(
        map.resolve("123456789012:function:pay"),
        Some(http("https://fn.example/pay"))
    );
    // A version or alias does not become part of the name.
    assert_eq!(
        map.resolve(&lambda("pay:prod")),
        Some(http("https://fn.example/pay"))
    );
    assert_eq!(map.resolve("pay:7"), Some(http("https://fn.example/pay")));
    // `*` and `{name}` never span a `:`.
    assert_eq!(
        map.resolve("arn:aws:states:::lambda:invoke"),
        None,
        "not a function ARN"
    );
    assert_eq!(map.resolve("arn:aws:lambda:us-east-1:function:pay"), None);
}

#[test]
fn a_more_specific_rule_only_wins_when_it_comes_first() {
    let map = ResourceMap {
        rules: vec![
            ResourceRule {
                pattern: "arn:aws:lambda:*:*:function:{name}".into(),
                target: "http://a/{name}".into(),
            },
            ResourceRule {
                pattern: "arn:aws:lambda:*:*:function:pay".into(),
                target: "http://b".into(),
            },
        ],
    };
    assert_eq!(map.resolve("pay"), Some(http("http://a/pay")));
}

// ---------------------------------------------------------------- violations

#[test]
fn a_document_that_is_not_an_object_is_refused_at_the_root() {
    assert_reports(json!([]), "wrong_type", "/");
}

#[test]
fn missing_fields_are_reported_where_they_belong() {
    assert_reports(
        json!({"States": {"S": {"Type": "Succeed"}}}),
        "missing_field",
        "/StartAt",
    );
    assert_reports(json!({"StartAt": "S"}), "missing_field", "/States");
    assert_reports(
        single(json!({"End": true})),
        "missing_field",
        "/States/S/Type",
    );
    assert_reports(
        single(json!({"Type": "Task", "End": true})),
        "missing_field",
        "/States/S/Resource",
    );
    assert_reports(
        json!({"StartAt": "S", "States": {"S": {"Type": "Pass"}, "T": {"Type": "Succeed"}}}),
        "missing_field",
        "/States/S/Next",
    );
    assert_reports(
        single(json!({"Type": "Wait", "End": true})),
        "missing_field",
        "/States/S",
    );
    assert_reports(
        single(json!({"Type": "Parallel", "End": true})),
        "missing_field",
        "/States/S/Branches",
    );
    assert_reports(
        single(json!({"Type": "Map", "End": true})),
        "missing_field",
        "/States/S/ItemProcessor",
    );
    assert_reports(
        single(json!({"Type": "Choice"})),
        "missing_field",
        "/States/S/Choices",
    );
    assert_reports(
        choice(json!([{"StringEquals": "x", "Next": "Done"}])),
        "missing_field",
        "/States/C/Choices/0/Variable",
    );
    assert_reports(
        choice(json!([{"Variable": "$.x", "Next": "Done"}])),
        "missing_field",
        "/States/C/Choices/0",
    );
    assert_reports(
        choice(json!([{"Variable": "$.x", "IsNull": true}])),
        "missing_field",
        "/States/C/Choices/0/Next",
    );
    assert_reports(
        single(json!({"Type": "Task", "Resource": lambda("a"), "End": true,
                      "Catch": [{"ErrorEquals": ["States.ALL"]}]})),
        "missing_field",
        "/States/S/Catch/0/Next",
    );
    assert_reports(
        single(json!({"Type": "Task", "Resource": lambda("a"), "End": true,
                      "Retry": [{"MaxAttempts": 1}]})),
        "missing_field",
        "/States/S/Retry/0/ErrorEquals",
    );
    assert_reports(
        single(
            json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                      "Parameters": {"Payload.$": "$"}, "End": true}),
        ),
        "missing_field",
        "/States/S/Parameters/FunctionName",
    );
    assert_reports(
        single(json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true})),
        "missing_field",
        "/States/S/Parameters",
    );
}

#[test]
fn fields_a_state_type_does_not_allow_are_unknown() {
    let mut doc = choice(json!([{"Variable": "$.x", "IsNull": true, "Next": "Done"}]));
    doc["States"]["C"]["ResultPath"] = json!("$.r");
    doc["States"]["C"]["Next"] = json!("Done");
    doc["States"]["Done"]["Catch"] = json!([]);
    let found = problems(doc);
    for location in [
        "/States/C/ResultPath",
        "/States/C/Next",
        "/States/Done/Catch",
    ] {
        assert!(
            found.contains(&("unknown_field".into(), location.into())),
            "{location}: {found:?}"
        );
    }
    assert_reports(
        single(json!({"Type": "Wait", "Seconds": 1, "End": true, "Retry": []})),
        "unknown_field",
        "/States/S/Retry",
    );
    assert_reports(
        single(json!({"Type": "Fail", "InputPath": "$"})),
        "unknown_field",
        "/States/S/InputPath",
    );
    assert_reports(
        single(json!({"Type": "Succeed", "Colour": "red"})),
        "unknown_field",
        "/States/S/Colour",
    );
    assert_reports(
        json!({"StartAt": "S", "States": {"S": {"Type": "Succeed"}}, "Name": "x"}),
        "unknown_field",
        "/Name",
    );
    assert_reports(
        choice(
            json!([{"Not": {"Variable": "$.x", "IsNull": true, "Next": "Done"}, "Next": "Done"}]),
        ),
        "unknown_field",
        "/States/C/Choices/0/Not/Next",
    );
    assert_reports(
        single(json!({"Type": "Task", "Resource": lambda("a"), "End": true,
                      "Retry": [{"ErrorEquals": ["X"], "Delay": 1}]})),
        "unknown_field",
        "/States/S/Retry/0/Delay",
    );
}

#[test]
fn fields_of_the_wrong_json_type_are_reported() {
    assert_reports(
        single(json!({"Type": 7, "End": true})),
        "wrong_type",
        "/States/S/Type",
    );
    assert_reports(
        single(json!({"Type": "Succeed", "Comment": 5})),
        "wrong_type",
        "/States/S/Comment",
    );
    assert_reports(
        single(json!({"Type": "Pass", "End": "yes"})),
        "wrong_type",
        "/States/S/End",
    );
    assert_reports(
        single(json!({"Type": "Pass", "Parameters": "x", "End": true})),
        "wrong_type",
        "/States/S/Parameters",
    );
    assert_reports(
        single(json!({"Type": "Pass", "InputPath": 3, "End": true})),
        "wrong_type",
        "/States/S/InputPath",
    );
    assert_reports(
        json!({"StartAt": "S", "TimeoutSeconds": "ten", "States": {"S": {"Type": "Succeed"}}}),
        "wrong_type",
        "/TimeoutSeconds",
    );
    assert_reports(
        single(json!({"Type": "Task", "Resource": lambda("a"), "End": true,
                      "Retry": [{"ErrorEquals": ["X"], "MaxAttempts": 1.5}]})),
        "wrong_type",
        "/States/S/Retry/0/MaxAttempts",
    );
    assert_reports(
        choice(json!([{"Variable": "$.n", "NumericEquals": "1", "Next": "Done"}])),
        "wrong_type",
        "/States/C/Choices/0/NumericEquals",
    );
    assert_reports(
        choice(json!([{"Variable": "$.n", "IsPresent": "yes", "Next": "Done"}])),
        "wrong_type",
        "/States/C/Choices/0/IsPresent",
    );
    assert_reports(
        choice(json!([{"Variable": "$.s", "StringEquals": 1, "Next": "Done"}])),
        "wrong_type",
        "/States/C/Choices/0/StringEquals",
    );
    assert_reports(
        choice(json!([{"Variable": "$.b", "BooleanEquals": "true", "Next": "Done"}])),
        "wrong_type",
        "/States/C/Choices/0/BooleanEquals",
    );
    assert_reports(
        choice(json!([{"Not": [], "Next": "Done"}])),
        "wrong_type",
        "/States/C/Choices/0/Not",
    );
    assert_reports(
        choice(json!([{"And": {}, "Next": "Done"}])),
        "wrong_type",
        "/States/C/Choices/0/And",
    );
    assert_reports(
        single(json!({"Type": "Parallel", "Branches": {}, "End": true})),
        "wrong_type",
        "/States/S/Branches",
    );
}

#[test]
fn out_of_range_values_are_invalid() {
    let task = |extra: Value| {
        let mut t = json!({"Type": "Task", "Resource": lambda("a"), "End": true});
        t.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        single(t)
    };
    let retry = |r: Value| task(json!({"Retry": [r]}));
    assert_reports(
        single(json!({"Type": "Rocket", "End": true})),
        "invalid_value",
        "/States/S/Type",
    );
    assert_reports(
        retry(json!({"ErrorEquals": ["X"], "IntervalSeconds": 0})),
        "invalid_value",
        "/States/S/Retry/0/IntervalSeconds",
    );
    assert_reports(
        retry(json!({"ErrorEquals": ["X"], "MaxAttempts": -1})),
        "invalid_value",
        "/States/S/Retry/0/MaxAttempts",
    );
    assert_reports(
        retry(json!({"ErrorEquals": ["X"], "BackoffRate": 0.5})),
        "invalid_value",
        "/States/S/Retry/0/BackoffRate",
    );
    assert_reports(
        retry(json!({"ErrorEquals": ["X"], "MaxDelaySeconds": 0})),
        "invalid_value",
        "/States/S/Retry/0/MaxDelaySeconds",
    );
    assert_reports(
        retry(json!({"ErrorEquals": ["X"], "JitterStrategy": "HALF"})),
        "invalid_value",
        "/States/S/Retry/0/JitterStrategy",
    );
    assert_reports(
        retry(json!({"ErrorEquals": []})),
        "invalid_value",
        "/States/S/Retry/0/ErrorEquals",
    );
    assert_reports(
        retry(json!({"ErrorEquals": ["States.All"]})),
        "invalid_value",
        "/States/S/Retry/0/ErrorEquals/0",
    );
    assert_reports(
        retry(json!({"ErrorEquals": ["X", "States.ALL"]})),
        "invalid_value",
        "/States/S/Retry/0/ErrorEquals/1",
    );
    assert_reports(
        task(json!({"Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]})),
        "invalid_value",
        "/States/S/Retry/0/ErrorEquals",
    );
    assert_reports(
        json!({"StartAt": "S", "States": {
            "S": {"Type": "Task", "Resource": lambda("a"), "End": true,
                  "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "R"}, {"ErrorEquals": ["X"], "Next": "R"}]},
            "R": {"Type": "Succeed"}}}),
        "invalid_value",
        "/States/S/Catch/0/ErrorEquals",
    );
    assert_reports(
        task(json!({"TimeoutSeconds": 0})),
        "invalid_value",
        "/States/S/TimeoutSeconds",
    );
    assert_reports(
        task(json!({"TimeoutSeconds": 10, "HeartbeatSeconds": 10})),
        "invalid_value",
        "/States/S/HeartbeatSeconds",
    );
    assert_reports(choice(json!([])), "invalid_value", "/States/C/Choices");
    assert_reports(
        choice(json!([{"Or": [], "Next": "Done"}])),
        "invalid_value",
        "/States/C/Choices/0/Or",
    );
    assert_reports(
        choice(json!([{"Variable": "$.t", "TimestampEquals": "yesterday", "Next": "Done"}])),
        "invalid_value",
        "/States/C/Choices/0/TimestampEquals",
    );
    assert_reports(
        single(json!({"Type": "Wait", "Timestamp": "2016-03-14 01:59", "End": true})),
        "invalid_value",
        "/States/S/Timestamp",
    );
    assert_reports(
        single(
            json!({"Type": "Map", "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Succeed"}}},
                      "ToleratedFailurePercentage": 150, "End": true}),
        ),
        "invalid_value",
        "/States/S/ToleratedFailurePercentage",
    );
    assert_reports(
        single(
            json!({"Type": "Map", "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Succeed"}}},
                      "MaxConcurrency": -1, "End": true}),
        ),
        "invalid_value",
        "/States/S/MaxConcurrency",
    );
    assert_reports(
        json!({"Version": "2.0", "StartAt": "S", "States": {"S": {"Type": "Succeed"}}}),
        "invalid_value",
        "/Version",
    );
    assert_reports(
        json!({"StartAt": "S", "States": {}}),
        "invalid_value",
        "/States",
    );
    assert_reports(
        single(json!({"Type": "Parallel", "Branches": [], "End": true})),
        "invalid_value",
        "/States/S/Branches",
    );
}

#[test]
fn fields_that_exclude_each_other_conflict() {
    assert_reports(
        json!({"StartAt": "S", "States": {"S": {"Type": "Pass", "Next": "T", "End": true}, "T": {"Type": "Succeed"}}}),
        "conflicting_fields",
        "/States/S/End",
    );
    assert_reports(
        single(
            json!({"Type": "Wait", "Seconds": 1, "Timestamp": "2016-03-14T01:59:00Z", "End": true}),
        ),
        "conflicting_fields",
        "/States/S/Timestamp",
    );
    assert_reports(
        single(json!({"Type": "Fail", "Error": "E", "ErrorPath": "$.e"})),
        "conflicting_fields",
        "/States/S/ErrorPath",
    );
    assert_reports(
        single(json!({"Type": "Fail", "Cause": "C", "CausePath": "$.c"})),
        "conflicting_fields",
        "/States/S/CausePath",
    );
    assert_reports(
        single(json!({"Type": "Task", "Resource": lambda("a"), "End": true,
                      "TimeoutSeconds": 5, "TimeoutSecondsPath": "$.t"})),
        "conflicting_fields",
        "/States/S/TimeoutSecondsPath",
    );
    assert_reports(
        single(json!({"Type": "Task", "Resource": lambda("a"), "End": true,
                      "HeartbeatSeconds": 5, "HeartbeatSecondsPath": "$.h"})),
        "conflicting_fields",
        "/States/S/HeartbeatSecondsPath",
    );
    assert_reports(
        choice(json!([{"Variable": "$.x", "IsNull": true, "StringEquals": "a", "Next": "Done"}])),
        "conflicting_fields",
        "/States/C/Choices/0/StringEquals",
    );
    assert_reports(
        single(json!({"Type": "Map",
                      "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Succeed"}}},
                      "Iterator": {"StartAt": "Q", "States": {"Q": {"Type": "Succeed"}}},
                      "End": true})),
        "conflicting_fields",
        "/States/S/Iterator",
    );
    assert_reports(
        single(json!({"Type": "Map",
                      "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Succeed"}}},
                      "ItemSelector": {}, "Parameters": {}, "End": true})),
        "conflicting_fields",
        "/States/S/Parameters",
    );
}

#[test]
fn a_transition_to_no_state_of_its_scope_is_an_unknown_state() {
    assert_reports(
        json!({"StartAt": "Nope", "States": {"S": {"Type": "Succeed"}}}),
        "unknown_state",
        "/StartAt",
    );
    assert_reports(
        json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "C": {"Type": "Succeed"}}}),
        "unknown_state",
        "/States/A/Next",
    );
    let mut doc = choice(json!([{"Variable": "$.x", "IsNull": true, "Next": "Gone"}]));
    doc["States"]["C"]["Default"] = json!("Elsewhere");
    let found = problems(doc);
    assert!(found.contains(&("unknown_state".into(), "/States/C/Choices/0/Next".into())));
    assert!(found.contains(&("unknown_state".into(), "/States/C/Default".into())));
    assert_reports(
        json!({"StartAt": "BookHotel", "States": {
            "BookHotel": {"Type": "Task", "Resource": lambda("book"), "End": true,
                          "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "CancelHotell"}]},
            "CancelHotel": {"Type": "Fail"}}}),
        "unknown_state",
        "/States/BookHotel/Catch/0/Next",
    );
}

#[test]
fn a_transition_cannot_leave_its_parallel_branch_or_map_processor() {
    let doc = json!({"StartAt": "P", "States": {
        "P": {"Type": "Parallel", "Next": "After", "Branches": [
            {"StartAt": "B1", "States": {"B1": {"Type": "Pass", "Next": "After"}}}
        ]},
        "After": {"Type": "Succeed"}
    }});
    let err = compile(&doc, &lambdas()).unwrap_err();
    let Error::InvalidDefinition(vs) = err else {
        panic!()
    };
    let v = vs
        .iter()
        .find(|v| v.location == "/States/P/Branches/0/States/B1/Next")
        .expect("reported");
    assert_eq!(v.code, "unknown_state");
    assert!(v.message.contains("/States/After"), "{}", v.message);

    assert_reports(
        json!({"StartAt": "M", "States": {
            "M": {"Type": "Map", "End": true, "ItemProcessor": {"StartAt": "Nowhere", "States": {"I": {"Type": "Succeed"}}}}
        }}),
        "unknown_state",
        "/States/M/ItemProcessor/StartAt",
    );
}

#[test]
fn a_state_no_transition_reaches_is_unreachable() {
    assert_eq!(
        problems(json!({"StartAt": "A", "States": {
            "A": {"Type": "Succeed"},
            "Orphan": {"Type": "Pass", "Next": "A"}
        }})),
        vec![(
            "unreachable_state".to_string(),
            "/States/Orphan".to_string()
        )]
    );
    // Catch and Default targets count as reached.
    compiles(json!({"StartAt": "A", "States": {
        "A": {"Type": "Task", "Resource": lambda("a"), "Next": "C",
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]},
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "IsNull": true, "Next": "Caught"}], "Default": "D"},
        "D": {"Type": "Succeed"},
        "Caught": {"Type": "Fail"}
    }}));
}

#[test]
fn a_state_with_a_broken_type_still_leads_to_its_targets() {
    assert_eq!(
        problems(json!({"StartAt": "A", "States": {
            "A": {"Type": "Tsak", "Next": "B", "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "C"}]},
            "B": {"Type": "Succeed"},
            "C": {"Type": "Fail"}
        }})),
        vec![("invalid_value".to_string(), "/States/A/Type".to_string())]
    );
}

#[test]
fn a_scope_where_no_state_ends_has_no_terminal_state() {
    assert_eq!(
        problems(json!({"StartAt": "A", "States": {
            "A": {"Type": "Pass", "Next": "B"},
            "B": {"Type": "Pass", "Next": "A"}
        }})),
        vec![("no_terminal_state".to_string(), "/".to_string())]
    );
    assert_reports(
        json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "L", "States": {"L": {"Type": "Pass", "Next": "L"}}}
        ]}}}),
        "no_terminal_state",
        "/States/P/Branches/0",
    );
}

#[test]
fn a_state_name_used_twice_in_the_machine_is_a_duplicate() {
    let doc = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
        {"StartAt": "Work", "States": {"Work": {"Type": "Succeed"}}},
        {"StartAt": "Work", "States": {"Work": {"Type": "Succeed"}}}
    ]}}});
    assert_eq!(
        problems(doc),
        vec![(
            "duplicate_state".to_string(),
            "/States/P/Branches/1/States/Work".to_string()
        )]
    );
}

#[test]
fn malformed_paths_are_reported_by_kind() {
    assert_reports(
        single(json!({"Type": "Pass", "InputPath": "input", "End": true})),
        "invalid_path",
        "/States/S/InputPath",
    );
    assert_reports(
        single(json!({"Type": "Pass", "OutputPath": "$.a[", "End": true})),
        "invalid_path",
        "/States/S/OutputPath",
    );
    assert_reports(
        single(json!({"Type": "Pass", "ResultPath": "$.a[*]", "End": true})),
        "invalid_reference_path",
        "/States/S/ResultPath",
    );
    assert_reports(
        single(json!({"Type": "Pass", "ResultPath": "$$.Execution", "End": true})),
        "invalid_reference_path",
        "/States/S/ResultPath",
    );
    assert_reports(
        json!({"StartAt": "S", "States": {
            "S": {"Type": "Task", "Resource": lambda("a"), "End": true,
                  "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "error", "Next": "R"}]},
            "R": {"Type": "Succeed"}}}),
        "invalid_reference_path",
        "/States/S/Catch/0/ResultPath",
    );
    assert_reports(
        choice(json!([{"Variable": "x", "IsNull": true, "Next": "Done"}])),
        "invalid_path",
        "/States/C/Choices/0/Variable",
    );
    assert_reports(
        choice(json!([{"Variable": "$.x", "StringEqualsPath": "y", "Next": "Done"}])),
        "invalid_path",
        "/States/C/Choices/0/StringEqualsPath",
    );
    assert_reports(
        single(json!({"Type": "Wait", "SecondsPath": "$.a[?(@.x)]", "End": true})),
        "invalid_path",
        "/States/S/SecondsPath",
    );
    assert_reports(
        single(json!({"Type": "Map", "ItemsPath": "items", "End": true,
                      "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Succeed"}}}})),
        "invalid_path",
        "/States/S/ItemsPath",
    );
    assert_reports(
        single(json!({"Type": "Fail", "ErrorPath": "error"})),
        "invalid_path",
        "/States/S/ErrorPath",
    );
}

#[test]
fn template_keys_ending_in_dollar_must_hold_a_path_or_an_intrinsic_call() {
    assert_reports(
        single(json!({"Type": "Pass", "Parameters": {"x.$": 5}, "End": true})),
        "invalid_template",
        "/States/S/Parameters/x.$",
    );
    assert_reports(
        single(json!({"Type": "Pass", "Parameters": {"x.$": "$.a", "x": 1}, "End": true})),
        "invalid_template",
        "/States/S/Parameters/x.$",
    );
    assert_reports(
        single(json!({"Type": "Task", "Resource": lambda("a"), "End": true,
                      "ResultSelector": {"Payload": {"list": [{"a.$": "a"}]}}})),
        "invalid_path",
        "/States/S/ResultSelector/Payload/list/0/a.$",
    );
    assert_reports(
        single(json!({"Type": "Pass", "Parameters": {"x.$": "States.Nope($.a)"}, "End": true})),
        "invalid_intrinsic",
        "/States/S/Parameters/x.$",
    );
    assert_reports(
        single(
            json!({"Type": "Pass", "Parameters": {"x.$": "States.Format('{}', $.a"}, "End": true}),
        ),
        "invalid_intrinsic",
        "/States/S/Parameters/x.$",
    );
    assert_reports(
        single(
            json!({"Type": "Map", "ItemSelector": {"v.$": 1}, "End": true,
                      "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Succeed"}}}}),
        ),
        "invalid_template",
        "/States/S/ItemSelector/v.$",
    );
}

#[test]
fn a_resource_the_map_does_not_bind_is_unknown() {
    assert_reports(
        single(
            json!({"Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem", "End": true}),
        ),
        "unknown_resource",
        "/States/S/Resource",
    );
    let narrow = ResourceMap {
        rules: vec![ResourceRule {
            pattern: "arn:aws:lambda:*:*:function:known".into(),
            target: "http://known".into(),
        }],
    };
    let found = problems_with(
        single(
            json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                      "Parameters": {"FunctionName": "unknown"}, "End": true}),
        ),
        &narrow,
    );
    assert_eq!(
        found,
        vec![(
            "unknown_resource".to_string(),
            "/States/S/Parameters/FunctionName".to_string()
        )]
    );
}

#[test]
fn a_wait_for_task_token_task_must_hand_out_the_token() {
    assert_reports(
        single(
            json!({"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                      "Parameters": {"FunctionName": "approve", "Payload.$": "$"}, "End": true}),
        ),
        "missing_task_token",
        "/States/S/Parameters",
    );
    assert_reports(
        single(
            json!({"Type": "Task", "Resource": format!("{}.waitForTaskToken", lambda("a")), "End": true}),
        ),
        "missing_task_token",
        "/States/S",
    );
}

#[test]
fn valid_asl_that_sagaflow_does_not_run_is_unsupported() {
    let refuse = |doc: Value, location: &str, needle: &str| {
        let Err(Error::InvalidDefinition(vs)) = compile(&doc, &lambdas()) else {
            panic!("{doc} compiled")
        };
        let v = vs
            .iter()
            .find(|v| v.location == location)
            .unwrap_or_else(|| panic!("nothing at {location}: {vs:?}"));
        assert_eq!(v.code, "unsupported");
        assert!(v.message.contains(needle), "{}", v.message);
    };
    // JSONata machines and states are run: see asl_jsonata_machines.rs.
    refuse(
        single(json!({"Type": "Task", "Resource": lambda("a"), "Credentials": {}, "End": true})),
        "/States/S/Credentials",
        "Credentials",
    );
}

#[test]
fn state_names_are_escaped_in_locations() {
    assert_reports(
        json!({"StartAt": "a/b~c", "States": {"a/b~c": {"Type": "Pass", "End": 1}}}),
        "wrong_type",
        "/States/a~1b~0c/End",
    );
}

#[test]
fn every_problem_of_a_broken_machine_is_reported_at_once() {
    let doc = json!({
        "StartAt": "BookHotel",
        "Colour": "blue",
        "States": {
            "BookHotel": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish",
                "ResultPath": "$.hotel[*]",
                "Retry": [{"ErrorEquals": ["States.ALL"], "BackoffRate": 0.5}, {"ErrorEquals": ["X"]}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "CancelHotell"}],
                "Next": "Decide"
            },
            "Decide": {
                "Type": "Choice",
                "ResultPath": "$.x",
                "Choices": [{"Variable": "$.n", "NumericEquals": "1", "Next": "Done"}],
                "Default": "Nowhere"
            },
            "Pause": {"Type": "Wait", "End": true},
            "CancelHotel": {"Type": "Fail", "Error": "E", "ErrorPath": "$.e"},
            "Done": {"Type": "Succeed"}
        }
    });
    let mut found = problems(doc);
    found.sort();
    let mut expected: Vec<(String, String)> = [
        ("unknown_field", "/Colour"),
        ("unknown_resource", "/States/BookHotel/Resource"),
        ("invalid_reference_path", "/States/BookHotel/ResultPath"),
        ("invalid_value", "/States/BookHotel/Retry/0/ErrorEquals"),
        ("invalid_value", "/States/BookHotel/Retry/0/BackoffRate"),
        ("unknown_state", "/States/BookHotel/Catch/0/Next"),
        ("unknown_field", "/States/Decide/ResultPath"),
        ("wrong_type", "/States/Decide/Choices/0/NumericEquals"),
        ("unknown_state", "/States/Decide/Default"),
        ("missing_field", "/States/Pause"),
        ("conflicting_fields", "/States/CancelHotel/ErrorPath"),
        ("unreachable_state", "/States/Pause"),
        ("unreachable_state", "/States/CancelHotel"),
    ]
    .iter()
    .map(|(c, l)| (c.to_string(), l.to_string()))
    .collect();
    expected.sort();
    assert_eq!(found, expected);
}

#[test]
fn every_violation_says_what_is_wrong() {
    let Err(Error::InvalidDefinition(vs)) = compile(
        &single(json!({"Type": "Pass", "Next": "T", "End": true, "InputPath": 1})),
        &lambdas(),
    ) else {
        panic!()
    };
    assert!(vs.iter().all(|v| !v.message.is_empty()));
    assert!(vs.iter().all(|v| v.location.starts_with('/')));
}

// ---------------------------------------------------------------- robustness

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        prop::sample::select(vec![
            "$",
            "$$",
            "$.a",
            "$[0]",
            "States.ALL",
            "End",
            "S",
            "T",
            "Task",
            "Pass",
            "Choice",
            "Wait",
            "Succeed",
            "Fail",
            "Parallel",
            "Map",
            "States.Format('{}', $.a)",
            "$$.Task.Token",
            "arn:aws:states:::lambda:invoke",
            "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "2016-03-14T01:59:00Z",
            "",
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "Type",
                        "Next",
                        "End",
                        "StartAt",
                        "States",
                        "Choices",
                        "Variable",
                        "Not",
                        "And",
                        "Or",
                        "Branches",
                        "ItemProcessor",
                        "Iterator",
                        "Retry",
                        "Catch",
                        "ErrorEquals",
                        "Resource",
                        "Parameters",
                        "x.$",
                        "S",
                        "T",
                        "Seconds",
                        "TimeoutSeconds",
                        "HeartbeatSeconds",
                        "Default",
                        "IsNull",
                        "NumericEquals",
                        "ResultPath",
                    ]),
                    inner
                ),
                0..5
            )
            .prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever the document, the compiler answers (and a refusal explains itself).
    #[test]
    fn any_document_is_compiled_or_refused_without_panicking(
        doc in any_json(),
        state in any_json(),
    ) {
        for d in [doc, json!({"StartAt": "S", "States": {"S": state.clone()}}),
                  json!({"StartAt": "S", "States": {"S": state, "T": {"Type": "Succeed"}}})] {
            if let Err(Error::InvalidDefinition(vs)) = compile(&d, &lambdas()) {
                prop_assert!(!vs.is_empty());
            }
        }
    }
}

/// AWS accepts a `ProcessorConfig` in a Map's legacy `Iterator` as in its
/// `ItemProcessor`, in either mode.
#[test]
fn a_legacy_iterator_may_carry_a_processor_config() {
    let m = compiles(single(json!({"Type": "Map", "End": true,
        "Iterator": {"ProcessorConfig": {"Mode": "INLINE"},
                     "StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}})));
    assert!(matches!(state(&m, "S").kind, Kind::Map(_)));
    let doc = single(json!({"Type": "Map", "End": true,
        "Iterator": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                     "StartAt": "P", "States": {"P": {"Type": "Succeed"}}}}));
    let m = compiles(doc);
    let Kind::Map(map) = &state(&m, "S").kind else {
        panic!("a Map")
    };
    assert_eq!(
        map.distributed.as_ref().map(|d| d.execution_type.as_str()),
        Some("STANDARD")
    );
}
