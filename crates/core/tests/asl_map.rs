//! The inline Map state: `MaxConcurrencyPath`, tolerated failures and their
//! paths, `ItemBatcher` and `Label`, in JSONPath and JSONata machines.
//!
//! Each test names the page of AWS's Step Functions developer guide
//! (docs.aws.amazon.com/step-functions/latest/dg/…) it follows. The
//! `States.Runtime` causes of a bad `…Path` value follow LocalStack's
//! AWS-validated implementation (`max_concurrency_decl.py`,
//! `tolerated_failure.py`). Every test checks that replaying the history
//! rebuilds the live state (`Sim::feed`).

mod support;

use sagaflow_core::Status;
use serde_json::{json, Value};
use support::{invoked, lambda, problems, Sim};

/// A machine of one Map `M` (its fields `fields`) over Task items `Do`.
fn task_map(fields: Value) -> Value {
    let mut m = json!({
        "Type": "Map",
        "ItemProcessor": {
            "StartAt": "Do",
            "States": {"Do": {"Type": "Task", "Resource": lambda("work"), "End": true}}
        },
        "End": true
    });
    for (k, v) in fields.as_object().unwrap() {
        m[k] = v.clone();
    }
    json!({"StartAt": "M", "States": {"M": m}})
}

/// A machine of one Map `M` (its fields `fields`) whose iterations output
/// their input.
fn pass_map(fields: Value) -> Value {
    let mut m = json!({
        "Type": "Map",
        "ItemProcessor": {"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "End": true}}},
        "End": true
    });
    for (k, v) in fields.as_object().unwrap() {
        m[k] = v.clone();
    }
    json!({"StartAt": "M", "States": {"M": m}})
}

fn jsonata(mut machine: Value) -> Value {
    machine["QueryLanguage"] = json!("JSONata");
    machine
}

// ---- MaxConcurrency / MaxConcurrencyPath (state-map.html, "Map state
// fields": MaxConcurrencyPath "a reference path to a positive integer";
// 0 means no limit) ----

#[test]
fn max_concurrency_path_limits_the_iterations_running_at_once() {
    // state-map.html: MaxConcurrencyPath
    let machine = task_map(json!({"ItemsPath": "$.items", "MaxConcurrencyPath": "$.limit"}));
    let (mut sim, fx) = Sim::start(machine, json!({"limit": 2, "items": [1, 2, 3, 4]}));
    assert_eq!(invoked(&fx), ["M[0]/Do", "M[1]/Do"]);
    let fx = sim.succeed("M[0]/Do", json!("a"));
    assert_eq!(invoked(&fx), ["M[2]/Do"]);
    assert_eq!(sim.request_input("M[2]/Do"), json!(3));
    sim.succeed("M[1]/Do", json!("b"));
    sim.succeed("M[2]/Do", json!("c"));
    sim.succeed("M[3]/Do", json!("d"));
    assert_eq!(sim.ex.status, Status::Succeeded);
    assert_eq!(sim.ex.output, Some(json!(["a", "b", "c", "d"])));
}

#[test]
fn max_concurrency_path_zero_means_no_limit() {
    // state-map.html: "a value of 0 places no limit"
    let machine = task_map(json!({"ItemsPath": "$.items", "MaxConcurrencyPath": "$.limit"}));
    let (_, fx) = Sim::start(machine, json!({"limit": 0, "items": [1, 2, 3]}));
    assert_eq!(invoked(&fx), ["M[0]/Do", "M[1]/Do", "M[2]/Do"]);
}

#[test]
fn max_concurrency_path_reads_a_variable() {
    // workflow-variables.html: paths may start with `$name`
    let machine = json!({
        "StartAt": "Set",
        "States": {
            "Set": {"Type": "Pass", "Assign": {"lim": 1}, "Next": "M"},
            "M": task_map(json!({"MaxConcurrencyPath": "$lim"}))["States"]["M"].clone(),
        }
    });
    let (_, fx) = Sim::start(machine, json!([1, 2]));
    assert_eq!(invoked(&fx), ["M[0]/Do"]);
}

#[test]
fn a_bad_max_concurrency_path_value_fails_with_states_runtime() {
    // state-map.html (MaxConcurrencyPath); causes as AWS gives them
    let machine = || task_map(json!({"ItemsPath": "$.items", "MaxConcurrencyPath": "$.limit"}));
    let cases = [
        (
            json!({"limit": "abc", "items": [1]}),
            "The MaxConcurrencyPath field refers to value \"abc\" which is not a valid integer: $.limit",
        ),
        (
            json!({"limit": 1.5, "items": [1]}),
            "The MaxConcurrencyPath field refers to value \"1.5\" which is not a valid integer: $.limit",
        ),
        (
            json!({"limit": -1, "items": [1]}),
            "Expected non-negative integer for MaxConcurrency, got '-1' instead.",
        ),
        (
            json!({"items": [1]}),
            "The JSONPath '$.limit' could not be found in the input '{\"items\":[1]}'",
        ),
    ];
    for (input, cause) in cases {
        let (sim, fx) = Sim::start(machine(), input.clone());
        assert!(invoked(&fx).is_empty());
        let (error, got) = sim.failure();
        assert_eq!(error, "States.Runtime", "{input}");
        assert!(got.ends_with(cause), "{input}: {got}");
        assert!(
            got.starts_with("An error occurred while executing the state 'M'"),
            "{got}"
        );
    }
}

#[test]
fn max_concurrency_as_a_jsonata_expression() {
    // transforming-data.html / state-map.html: MaxConcurrency in JSONata
    let machine = jsonata(task_map(json!({
        "Items": "{% $states.input.items %}",
        "MaxConcurrency": "{% $states.input.limit %}"
    })));
    let (_, fx) = Sim::start(machine, json!({"limit": 1, "items": [1, 2]}));
    assert_eq!(invoked(&fx), ["M[0]/Do"]);
}

#[test]
fn max_concurrency_fields_are_checked_at_deploy() {
    // state-map.html: MaxConcurrency and MaxConcurrencyPath exclude each other
    let both = task_map(json!({"MaxConcurrency": 1, "MaxConcurrencyPath": "$.l"}));
    assert_eq!(
        problems(both),
        [(
            "conflicting_fields".to_string(),
            "/States/M/MaxConcurrencyPath".to_string()
        )]
    );
    let bad = task_map(json!({"MaxConcurrencyPath": "$..l"}));
    assert_eq!(problems(bad).len(), 1);
    let js = jsonata(task_map(json!({"MaxConcurrencyPath": "$.l"})));
    assert_eq!(
        problems(js),
        [(
            "wrong_query_language".to_string(),
            "/States/M/MaxConcurrencyPath".to_string()
        )]
    );
}

// ---- Tolerated failures (maprun-fail-threshold.html, "Setting failure
// thresholds for Distributed Map states") ----

#[test]
fn tolerated_failure_count_lets_the_map_succeed_up_to_the_count() {
    // maprun-fail-threshold.html: ToleratedFailureCount
    let machine = task_map(json!({"ToleratedFailureCount": 1}));
    let (mut sim, _) = Sim::start(machine, json!([1, 2, 3]));
    sim.fail("M[0]/Do", "Boom");
    sim.succeed("M[1]/Do", json!("b"));
    sim.succeed("M[2]/Do", json!("c"));
    assert_eq!(sim.ex.status, Status::Succeeded);
    assert_eq!(
        sim.ex.output,
        Some(json!([{"Error": "Boom", "Cause": "it broke"}, "b", "c"]))
    );
}

#[test]
fn tolerated_failure_count_path_exceeded_fails_with_exceed_tolerated_failure_threshold() {
    // maprun-fail-threshold.html: ToleratedFailureCountPath;
    // States.ExceedToleratedFailureThreshold (concepts-error-handling.html)
    let machine = task_map(json!({"ItemsPath": "$.items", "ToleratedFailureCountPath": "$.tol"}));
    let (mut sim, _) = Sim::start(machine, json!({"tol": 1, "items": [1, 2, 3]}));
    sim.fail("M[0]/Do", "Boom");
    assert_eq!(sim.ex.status, Status::Running);
    sim.fail("M[1]/Do", "Boom");
    let (error, cause) = sim.failure();
    assert_eq!(error, "States.ExceedToleratedFailureThreshold");
    assert!(cause.contains("Boom"), "{cause}");
}

#[test]
fn tolerated_failure_percentage_path_counts_against_all_items() {
    // maprun-fail-threshold.html: ToleratedFailurePercentagePath
    let machine =
        task_map(json!({"ItemsPath": "$.items", "ToleratedFailurePercentagePath": "$.pct"}));
    let (mut sim, _) = Sim::start(machine.clone(), json!({"pct": 50, "items": [1, 2, 3, 4]}));
    sim.fail("M[0]/Do", "Boom");
    sim.fail("M[1]/Do", "Boom");
    sim.succeed("M[2]/Do", json!("c"));
    sim.succeed("M[3]/Do", json!("d"));
    assert_eq!(sim.ex.status, Status::Succeeded);

    let (mut sim, _) = Sim::start(machine, json!({"pct": 50, "items": [1, 2, 3, 4]}));
    sim.fail("M[0]/Do", "Boom");
    sim.fail("M[1]/Do", "Boom");
    sim.fail("M[2]/Do", "Boom");
    assert_eq!(sim.failure().0, "States.ExceedToleratedFailureThreshold");
}

#[test]
fn a_bad_tolerated_failure_path_value_fails_with_states_runtime() {
    // maprun-fail-threshold.html; causes as AWS gives them
    let cases = [
        (
            json!({"ToleratedFailureCountPath": "$.t"}),
            json!({"t": "x", "items": [1]}),
            "The ToleratedFailureCountPath field refers to value \"x\" which is not a valid integer: $.t",
        ),
        (
            json!({"ToleratedFailureCountPath": "$.t"}),
            json!({"t": -2, "items": [1]}),
            "ToleratedFailureCount cannot be negative.",
        ),
        (
            json!({"ToleratedFailurePercentagePath": "$.t"}),
            json!({"t": {"a": 1}, "items": [1]}),
            "The ToleratedFailurePercentagePath field refers to value \"{\"a\":1}\" which is not a valid float: $.t",
        ),
        (
            json!({"ToleratedFailurePercentagePath": "$.t"}),
            json!({"t": 101, "items": [1]}),
            "ToleratedFailurePercentage must be between 0 and 100.",
        ),
    ];
    for (fields, input, cause) in cases {
        let mut fields = fields;
        fields["ItemsPath"] = json!("$.items");
        let (sim, _) = Sim::start(task_map(fields), input.clone());
        let (error, got) = sim.failure();
        assert_eq!(error, "States.Runtime");
        assert!(got.ends_with(cause), "{input}: {got}");
    }
}

#[test]
fn tolerated_failures_as_jsonata_expressions() {
    // maprun-fail-threshold.html, transforming-data.html: the thresholds of
    // a JSONata Map may be expressions
    let machine = jsonata(task_map(json!({
        "ToleratedFailureCount": "{% $states.input.tol %}",
        "ToleratedFailurePercentage": "{% $states.input.pct %}",
        "Items": "{% $states.input.items %}"
    })));
    let (mut sim, _) = Sim::start(
        machine.clone(),
        json!({"tol": 1, "pct": 0, "items": [1, 2]}),
    );
    sim.fail("M[0]/Do", "Boom");
    sim.succeed("M[1]/Do", json!("b"));
    assert_eq!(sim.ex.status, Status::Succeeded);

    let (sim, _) = Sim::start(machine, json!({"tol": 1, "pct": 101, "items": [1]}));
    let (error, cause) = sim.failure();
    assert_eq!(error, "States.QueryEvaluationError");
    assert!(cause.contains("ToleratedFailurePercentage"), "{cause}");
}

#[test]
fn tolerated_failure_fields_are_checked_at_deploy() {
    // maprun-fail-threshold.html: a number or a path, not both
    let both = task_map(json!({"ToleratedFailureCount": 1, "ToleratedFailureCountPath": "$.t"}));
    assert_eq!(
        problems(both),
        [(
            "conflicting_fields".to_string(),
            "/States/M/ToleratedFailureCountPath".to_string()
        )]
    );
    let both =
        task_map(json!({"ToleratedFailurePercentage": 1, "ToleratedFailurePercentagePath": "$.t"}));
    assert_eq!(problems(both).len(), 1);
    let js = jsonata(task_map(json!({"ToleratedFailurePercentagePath": "$.t"})));
    assert_eq!(
        problems(js),
        [(
            "wrong_query_language".to_string(),
            "/States/M/ToleratedFailurePercentagePath".to_string()
        )]
    );
}

// ---- ItemBatcher (input-output-itembatcher.html, "ItemBatcher (Map)") ----

#[test]
fn item_batcher_groups_items_into_batches_with_the_batch_input() {
    // input-output-itembatcher.html: MaxItemsPerBatch, BatchInput
    let machine = pass_map(json!({
        "ItemsPath": "$.items",
        "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"factCheck": true, "k.$": "$.k"}}
    }));
    let (sim, _) = Sim::start(machine, json!({"k": 7, "items": [1, 2, 3, 4, 5]}));
    assert_eq!(sim.ex.status, Status::Succeeded);
    let bi = json!({"factCheck": true, "k": 7});
    assert_eq!(
        sim.ex.output,
        Some(json!([
            {"BatchInput": bi, "Items": [1, 2]},
            {"BatchInput": bi, "Items": [3, 4]},
            {"BatchInput": bi, "Items": [5]},
        ]))
    );
}

#[test]
fn item_batcher_without_batch_input_passes_only_items_and_applies_the_item_selector_first() {
    // input-output-itembatcher.html: "Step Functions adds the items to an
    // Items array"; input-output-itemselector.html
    let machine = pass_map(json!({
        "ItemSelector": {"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"},
        "ItemBatcher": {"MaxItemsPerBatchPath": "$[0]"}
    }));
    let (sim, _) = Sim::start(machine, json!([3, 4, 5]));
    assert_eq!(
        sim.ex.output,
        Some(json!([
            {"Items": [{"v": 3, "i": 0}, {"v": 4, "i": 1}, {"v": 5, "i": 2}]},
        ]))
    );
}

#[test]
fn max_input_bytes_per_batch_bounds_each_batch_text() {
    // input-output-itembatcher.html: MaxInputBytesPerBatch
    // {"Items":["aaaa","bbbb"]} is 24 bytes; a third item makes it 31.
    let machine = pass_map(json!({
        "ItemBatcher": {"MaxInputBytesPerBatchPath": "$$.Execution.Input.max"}
    }));
    let machine = {
        let mut m = machine;
        m["States"]["M"]["ItemsPath"] = json!("$.items");
        m
    };
    let (sim, _) = Sim::start(
        machine,
        json!({"max": 30, "items": ["aaaa", "bbbb", "cccc", "dddd", "eeee"]}),
    );
    assert_eq!(sim.ex.status, Status::Succeeded, "{:?}", sim.ex.error);
    assert_eq!(
        sim.ex.output,
        Some(json!([
            {"Items": ["aaaa", "bbbb"]},
            {"Items": ["cccc", "dddd"]},
            {"Items": ["eeee"]},
        ]))
    );
    for batch in sim.ex.output.as_ref().unwrap().as_array().unwrap() {
        assert!(batch.to_string().len() <= 30);
    }
}

#[test]
fn an_item_larger_than_max_input_bytes_per_batch_fails_the_map() {
    // input-output-itembatcher.html: MaxInputBytesPerBatch
    let machine = pass_map(json!({"ItemBatcher": {"MaxInputBytesPerBatch": 20}}));
    let (sim, _) = Sim::start(machine, json!(["a", "this item is far too long"]));
    let (error, cause) = sim.failure();
    assert_eq!(error, "States.Runtime");
    assert!(cause.contains("index 1"), "{cause}");
}

#[test]
fn batches_are_iterations_limited_by_max_concurrency() {
    // input-output-itembatcher.html with state-map.html MaxConcurrency
    let machine = task_map(json!({"MaxConcurrency": 1, "ItemBatcher": {"MaxItemsPerBatch": 2}}));
    let (mut sim, fx) = Sim::start(machine, json!([1, 2, 3]));
    assert_eq!(invoked(&fx), ["M[0]/Do"]);
    assert_eq!(sim.request_input("M[0]/Do"), json!({"Items": [1, 2]}));
    let fx = sim.succeed("M[0]/Do", json!(3));
    assert_eq!(invoked(&fx), ["M[1]/Do"]);
    assert_eq!(sim.request_input("M[1]/Do"), json!({"Items": [3]}));
    sim.succeed("M[1]/Do", json!(3));
    assert_eq!(sim.ex.output, Some(json!([3, 3])));
}

#[test]
fn a_bad_max_items_per_batch_path_value_fails_with_states_runtime() {
    // input-output-itembatcher.html: MaxItemsPerBatchPath (a positive integer)
    let machine = pass_map(json!({
        "ItemsPath": "$.items",
        "ItemBatcher": {"MaxItemsPerBatchPath": "$.n"}
    }));
    let (sim, _) = Sim::start(machine.clone(), json!({"n": 0, "items": [1]}));
    assert!(sim
        .failure()
        .1
        .ends_with("Expected positive integer for MaxItemsPerBatch, got '0' instead."));
    let (sim, _) = Sim::start(machine, json!({"n": "two", "items": [1]}));
    assert!(sim.failure().1.ends_with(
        "The MaxItemsPerBatchPath field refers to value \"two\" which is not a valid integer: $.n"
    ));
}

#[test]
fn item_batcher_in_a_jsonata_map() {
    // input-output-itembatcher.html, transforming-data.html
    let machine = jsonata(pass_map(json!({
        "Items": "{% $states.input.items %}",
        "ItemBatcher": {
            "MaxItemsPerBatch": "{% $states.input.n %}",
            "BatchInput": {"tag": "{% $states.input.tag %}"}
        }
    })));
    let (sim, _) = Sim::start(machine, json!({"n": 2, "tag": "t", "items": [1, 2, 3]}));
    assert_eq!(
        sim.ex.output,
        Some(json!([
            {"BatchInput": {"tag": "t"}, "Items": [1, 2]},
            {"BatchInput": {"tag": "t"}, "Items": [3]},
        ]))
    );
}

#[test]
fn item_batcher_fields_are_checked_at_deploy() {
    // input-output-itembatcher.html: at least one limit; MaxInputBytesPerBatch
    // up to 256 KiB; a number or its path, not both
    let codes = |b: Value| -> Vec<String> {
        problems(pass_map(json!({"ItemBatcher": b})))
            .into_iter()
            .map(|(c, _)| c)
            .collect()
    };
    assert_eq!(codes(json!({"BatchInput": {}})), ["missing_field"]);
    assert_eq!(codes(json!({"MaxItemsPerBatch": 0})), ["invalid_value"]);
    assert_eq!(
        codes(json!({"MaxInputBytesPerBatch": 262_145})),
        ["invalid_value"]
    );
    assert_eq!(
        codes(json!({"MaxItemsPerBatch": 1, "MaxItemsPerBatchPath": "$.n"})),
        ["conflicting_fields"]
    );
    assert_eq!(
        codes(json!({"MaxItems": 1})),
        ["unknown_field", "missing_field"]
    );
    assert_eq!(
        codes(json!({"MaxItemsPerBatch": 1, "BatchInput": 3})),
        ["wrong_type"]
    );
    assert!(
        codes(json!({"MaxInputBytesPerBatch": 262_144, "BatchInput": {"a.$": "$.b"}})).is_empty()
    );
    let js = jsonata(pass_map(
        json!({"ItemBatcher": {"MaxItemsPerBatchPath": "$.n"}}),
    ));
    assert_eq!(
        problems(js),
        [(
            "wrong_query_language".to_string(),
            "/States/M/ItemBatcher/MaxItemsPerBatchPath".to_string()
        )]
    );
}

// ---- Label (state-map.html / concepts-examine-map-run.html: "Label" names
// the map runs; up to 40 characters, no whitespace or special characters) ----

#[test]
fn label_is_accepted_and_validated() {
    // state-map.html: Label
    assert!(problems(pass_map(json!({"Label": "Batch-42_ok"}))).is_empty());
    let (sim, _) = Sim::start(pass_map(json!({"Label": "Fine"})), json!([1]));
    assert_eq!(sim.ex.output, Some(json!([1])));
    for bad in [
        json!("has space"),
        json!("a/b"),
        json!("x".repeat(41)),
        json!(""),
        json!("tab\there"),
        json!("star*"),
    ] {
        assert_eq!(
            problems(pass_map(json!({"Label": bad.clone()}))),
            [("invalid_value".to_string(), "/States/M/Label".to_string())],
            "{bad}"
        );
    }
    assert_eq!(
        problems(pass_map(json!({"Label": 3}))),
        [("wrong_type".to_string(), "/States/M/Label".to_string())]
    );
    assert!(problems(pass_map(json!({"Label": "x".repeat(40)}))).is_empty());
}

#[test]
fn an_inline_map_may_not_have_a_reader_or_a_writer() {
    // state-map-distributed.html: ItemReader and ResultWriter are fields
    // of the distributed Map.
    for field in ["ItemReader", "ResultWriter"] {
        let mut fields = json!({});
        fields[field] = json!({"Resource": "arn:aws:lambda:us-east-1:123456789012:function:io"});
        assert_eq!(
            problems(pass_map(fields)),
            [("invalid_value".to_string(), format!("/States/M/{field}"))]
        );
    }
}
