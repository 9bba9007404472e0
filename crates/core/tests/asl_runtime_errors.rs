//! AWS's exact runtime errors (issue 18, item 4): the `States.Runtime`
//! failures of paths that select nothing and of bad Wait values, with the
//! cause texts AWS records, prefixed as AWS prefixes them: `An error
//! occurred while executing the state 'NAME' (entered at the event id #N).`
//! where N is the id of the state's `…StateEntered` event in the Step
//! Functions history (`GetExecutionHistory`, numbered from 1, rendered by
//! `sagaflow_core::trace`).

mod support;

use sagaflow_core::asl::ResourceMap;
use sagaflow_core::{compile_definition, ErrorInfo, Status};
use serde_json::{json, Value};
use support::{lambda, Sim};

impl Sim {
    /// The id (position from 1) of the last `…StateEntered` event of
    /// `state` in the rendered Step Functions history.
    fn entered_id(&self, state: &str) -> usize {
        self.trace()
            .iter()
            .enumerate()
            .filter(|(_, v)| v["type"] == "StateEntered" && v["name"] == state)
            .map(|(i, _)| i + 1)
            .next_back()
            .unwrap_or_else(|| panic!("`{state}` was entered"))
    }

    /// The error, checked to be `States.Runtime` with AWS's prefix naming
    /// `state` and its entered event; returns the cause after the prefix.
    fn runtime_cause(&self, state: &str) -> String {
        let e = self.error();
        assert_eq!(e.error, "States.Runtime", "{e:?}");
        let prefix = format!(
            "An error occurred while executing the state '{state}' (entered at the event id #{}). ",
            self.entered_id(state)
        );
        e.cause
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("`{}` should start with `{prefix}`", e.cause))
            .to_string()
    }
}

fn pass_then(state: Value) -> Value {
    json!({
        "StartAt": "First",
        "States": {
            "First": { "Type": "Pass", "Next": "S" },
            "S": state
        }
    })
}

/// Recorded by AWS: `… (entered at the event id #2). Invalid path '$.x' :
/// No results for path: $['x']` for an InputPath in the first state
/// (ExecutionStarted is #1, its PassStateEntered #2).
#[test]
fn an_input_path_that_selects_nothing_names_the_state_and_event_2() {
    let sim = Sim::started(
        json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "InputPath": "$.x", "End": true}}}),
        json!({"a": 1}),
    );
    assert_eq!(
        sim.error().cause,
        "An error occurred while executing the state 'P' (entered at the event id #2). \
         Invalid path '$.x' : No results for path: $['x']"
    );
}

/// Recorded by AWS (failed executions quoted in bug reports): `… Invalid
/// path '$.force': The choice state's condition path references an invalid
/// value.` The Choice follows a Pass: #1 ExecutionStarted, #2
/// PassStateEntered, #3 PassStateExited, #4 ChoiceStateEntered.
#[test]
fn a_choice_variable_that_selects_nothing_has_aws_cause_and_event_id() {
    let sim = Sim::started(
        pass_then(json!({
            "Type": "Choice",
            "Choices": [{ "Variable": "$.missing", "BooleanEquals": true, "Next": "Done" }],
            "Default": "Done"
        }))
        .as_object()
        .map(|m| {
            let mut m = m.clone();
            m["States"]["Done"] = json!({"Type": "Succeed"});
            Value::Object(m)
        })
        .unwrap(),
        json!({}),
    );
    assert_eq!(sim.entered_id("S"), 4);
    assert_eq!(
        sim.runtime_cause("S"),
        "Invalid path '$.missing': The choice state's condition path references an invalid value."
    );
}

/// OutputPath of a Task that ran: the state was entered at #2 (then
/// TaskScheduled, TaskStarted, TaskSucceeded); the failure names #2.
#[test]
fn an_output_path_that_selects_nothing_after_a_task_names_its_entered_event() {
    let mut sim = Sim::started(
        json!({"StartAt": "T", "States": {"T": {
            "Type": "Task", "Resource": lambda("t"), "OutputPath": "$.Payload", "End": true
        }}}),
        json!({}),
    );
    sim.succeed("T", json!({ "other": false }));
    assert_eq!(sim.entered_id("T"), 2);
    assert_eq!(
        sim.runtime_cause("T"),
        "Invalid path '$.Payload' : No results for path: $['Payload']"
    );
}

/// A later state's id counts every event before it: a Task (5 events with
/// its exit) then a Pass entered at #7.
#[test]
fn the_event_id_of_a_later_state_counts_the_events_before_it() {
    let mut sim = Sim::started(
        json!({"StartAt": "T", "States": {
            "T": { "Type": "Task", "Resource": lambda("t"), "Next": "P" },
            "P": { "Type": "Pass", "OutputPath": "$.nope.deep", "End": true }
        }}),
        json!({}),
    );
    sim.succeed("T", json!({ "nope": {} }));
    assert_eq!(sim.entered_id("P"), 7);
    assert_eq!(
        sim.runtime_cause("P"),
        "Invalid path '$.nope.deep' : No results for path: $['nope']['deep']"
    );
}

/// Inside a Map iteration and a Parallel branch the id is the branch
/// state's own entered event (AWS numbers one history for all of them).
#[test]
fn states_inside_a_map_or_a_parallel_name_their_own_entered_event() {
    let sim = Sim::started(
        json!({"StartAt": "M", "States": {"M": {
            "Type": "Map", "ItemsPath": "$.items",
            "ItemProcessor": { "StartAt": "In", "States": {
                "In": { "Type": "Pass", "InputPath": "$.v", "End": true }
            }},
            "End": true
        }}}),
        json!({ "items": [{ "v": 1 }, { "w": 2 }] }),
    );
    assert_eq!(
        sim.runtime_cause("In"),
        "Invalid path '$.v' : No results for path: $['v']"
    );
    let sim = Sim::started(
        json!({"StartAt": "Par", "States": {"Par": {
            "Type": "Parallel",
            "Branches": [
                { "StartAt": "A", "States": { "A": { "Type": "Pass", "End": true } } },
                { "StartAt": "B", "States": { "B": { "Type": "Pass", "InputPath": "$.q", "End": true } } }
            ],
            "End": true
        }}}),
        json!({}),
    );
    assert_eq!(
        sim.runtime_cause("B"),
        "Invalid path '$.q' : No results for path: $['q']"
    );
}

/// AWS's recorded cause for a Parameters `.$` path that selects nothing:
/// `… The JSONPath '$.application.address' specified for the field
/// 'address.$' could not be found in the input '{"flagged":false}'`.
#[test]
fn a_parameters_path_that_selects_nothing_has_aws_cause() {
    let sim = Sim::started(
        pass_then(json!({
            "Type": "Pass", "Parameters": { "address.$": "$.application.address" }, "End": true
        })),
        json!({ "flagged": false }),
    );
    assert_eq!(
        sim.runtime_cause("S"),
        "The JSONPath '$.application.address' specified for the field 'address.$' could not be found in the input '{\"flagged\":false}'"
    );
    // A Task's Parameters are rendered for its request: the same cause.
    let sim = Sim::started(
        json!({"StartAt": "T", "States": {"T": {
            "Type": "Task", "Resource": lambda("t"),
            "Parameters": { "address.$": "$.application.address" }, "End": true
        }}}),
        json!({ "flagged": false }),
    );
    let err = sim.request("T").unwrap_err();
    assert_eq!(err.error, "States.Runtime");
    assert_eq!(
        err.cause,
        "An error occurred while executing the state 'T' (entered at the event id #2). \
         The JSONPath '$.application.address' specified for the field 'address.$' could not be found in the input '{\"flagged\":false}'"
    );
}

/// ResultSelector resolves its `.$` paths against the task's result, with
/// the same cause.
#[test]
fn a_result_selector_path_that_selects_nothing_has_aws_cause() {
    let mut sim = Sim::started(
        json!({"StartAt": "T", "States": {"T": {
            "Type": "Task", "Resource": lambda("t"),
            "ResultSelector": { "missing.$": "$.nope" }, "End": true
        }}}),
        json!({}),
    );
    sim.succeed("T", json!([1, 2]));
    assert_eq!(
        sim.runtime_cause("T"),
        "The JSONPath '$.nope' specified for the field 'missing.$' could not be found in the input '[1,2]'"
    );
}

/// ResultPath into a value that cannot hold it: the developer guide's
/// `States.ResultPathMatchFailure` ("A state's ResultPath field cannot be
/// applied to the input the state received"), not `States.Runtime`.
#[test]
fn a_result_path_through_a_non_object_is_a_result_path_match_failure() {
    let sim = Sim::started(
        pass_then(json!({ "Type": "Pass", "Result": 1, "ResultPath": "$.a.b", "End": true })),
        json!({ "a": "text" }),
    );
    assert_eq!(sim.error().error, "States.ResultPathMatchFailure");
}

fn wait(field: &str, path: &str, input: Value) -> Sim {
    Sim::started(
        json!({"StartAt": "W", "States": {"W": { "Type": "Wait", field: path, "End": true }}}),
        input,
    )
}

/// SecondsPath: AWS's `States.Runtime` causes for nothing selected, a value
/// that is not a long (fraction, string, beyond a long) and a negative one.
#[test]
fn seconds_path_values_that_are_not_non_negative_integers_fail_as_aws_does() {
    let cause = |input: Value| wait("SecondsPath", "$.s", input).runtime_cause("W");
    assert_eq!(
        cause(json!({})),
        "The SecondsPath parameter does not reference an input value: $.s"
    );
    assert_eq!(
        cause(json!({ "s": -1 })),
        "The SecondsPath parameter references a negative value: $.s == -1"
    );
    assert_eq!(
        cause(json!({ "s": 1.5 })),
        "The SecondsPath parameter cannot be parsed as a long value: $.s == 1.5"
    );
    assert_eq!(
        cause(json!({ "s": "10" })),
        "The SecondsPath parameter cannot be parsed as a long value: $.s == 10"
    );
    assert_eq!(
        cause(json!({ "s": 18446744073709551615u64 })),
        "The SecondsPath parameter cannot be parsed as a long value: $.s == 18446744073709551615"
    );
    // Zero and a very long wait are fine (the execution's timeout ends it).
    for ok in [json!(0), json!(9_000_000_000_000_000_000u64)] {
        let sim = wait("SecondsPath", "$.s", json!({ "s": ok }));
        assert_eq!(sim.ex.status, Status::Running);
    }
}

/// TimestampPath: nothing selected, or not an ISO-8601 timestamp.
#[test]
fn timestamp_path_values_that_are_not_timestamps_fail_as_aws_does() {
    let cause = |input: Value| wait("TimestampPath", "$.t", input).runtime_cause("W");
    assert_eq!(
        cause(json!({})),
        "The TimestampPath parameter does not reference an input value: $.t"
    );
    assert_eq!(
        cause(json!({ "t": "tomorrow" })),
        "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: $.t == tomorrow"
    );
    assert_eq!(
        cause(json!({ "t": 5 })),
        "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: $.t == 5"
    );
    let sim = wait(
        "TimestampPath",
        "$.t",
        json!({ "t": "2030-01-01T00:00:00Z" }),
    );
    assert_eq!(sim.ex.status, Status::Running);
}

/// Fail state: ErrorPath and CausePath take a path or an intrinsic function
/// (developer guide, "Fail workflow state"); one that selects nothing is a
/// `States.Runtime` failure instead of the default error.
#[test]
fn fail_error_path_and_cause_path_take_paths_and_intrinsics() {
    let sim = Sim::started(
        json!({"StartAt": "F", "States": {"F": {
            "Type": "Fail",
            "ErrorPath": "States.Format('{}.Error', $.kind)",
            "CausePath": "$.why"
        }}}),
        json!({ "kind": "Hotel", "why": "full" }),
    );
    assert_eq!(sim.error(), ErrorInfo::new("Hotel.Error", "full"));

    let sim = Sim::started(
        json!({"StartAt": "F", "States": {"F": { "Type": "Fail", "ErrorPath": "$.nope", "Cause": "c" }}}),
        json!({}),
    );
    assert_eq!(
        sim.runtime_cause("F"),
        "Invalid path '$.nope' : No results for path: $['nope']"
    );
    let sim = Sim::started(
        json!({"StartAt": "F", "States": {"F": { "Type": "Fail", "Error": "E", "CausePath": "States.Format('{}', $.nope)" }}}),
        json!({}),
    );
    let cause = sim.runtime_cause("F");
    assert!(
        cause.starts_with("The function 'States.Format('{}', $.nope)' had the following error"),
        "{cause}"
    );
}

/// The context object: `$$.State` of a Pass has only `EnteredTime` and
/// `Name`; a Task's has `RetryCount` too (developer guide, "Accessing the
/// Context object").
#[test]
fn state_retry_count_is_only_in_the_context_of_states_that_retry() {
    let sim = Sim::started(
        json!({"StartAt": "P", "States": {"P": {
            "Type": "Pass", "Parameters": { "s.$": "$$.State" }, "End": true
        }}}),
        json!({}),
    );
    let state = &sim.ex.output.as_ref().expect("an output")["s"];
    let mut keys: Vec<&String> = state.as_object().expect("an object").keys().collect();
    keys.sort();
    assert_eq!(keys, ["EnteredTime", "Name"]);

    let sim = Sim::started(
        json!({"StartAt": "T", "States": {"T": {
            "Type": "Task", "Resource": lambda("t"),
            "Parameters": { "s.$": "$$.State" }, "End": true
        }}}),
        json!({}),
    );
    let input = sim.request("T").expect("a request");
    assert_eq!(input["s"]["RetryCount"], json!(0));
    assert_eq!(input["s"]["Name"], json!("T"));
}

/// An intrinsic function in ErrorPath/CausePath is checked at deploy like
/// any other: a malformed one is `invalid_intrinsic` at its location.
#[test]
fn a_malformed_intrinsic_in_cause_path_is_refused_at_deploy() {
    let machine = json!({"StartAt": "F", "States": {"F": {
        "Type": "Fail", "Error": "E", "CausePath": "States.Format('{} {}', $.a)"
    }}});
    let err = compile_definition(&machine.to_string(), Some("m"), &ResourceMap::default())
        .expect_err("refused")
        .to_string();
    assert!(err.contains("invalid_intrinsic"), "{err}");
    assert!(err.contains("/States/F/CausePath"), "{err}");
}
