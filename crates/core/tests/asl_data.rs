//! Input and output processing of ASL states (InputPath, Parameters,
//! ResultSelector, ResultPath, OutputPath), checked against the examples of
//! the AWS Step Functions developer guide.

use serde_json::{json, Value};

use sagaflow_core::asl::data::{
    check_path, check_reference_path, check_template, filter, place, render, select,
};
use sagaflow_core::asl::machine::PathField;

fn path(p: &str) -> PathField {
    PathField::Path(p.to_string())
}

fn no_context() -> Value {
    json!({})
}

fn no_randomness() -> impl FnMut() -> u64 {
    || 4 // chosen by fair dice roll
}

fn rendered(template: Value, input: Value) -> Value {
    render(&template, &input, &no_context(), &mut no_randomness()).expect("renders")
}

// --- InputPath -------------------------------------------------------------

#[test]
fn input_path_selects_one_dataset_of_the_input() {
    let input = json!({
        "comment": "Example for InputPath.",
        "dataset1": { "val1": 1, "val2": 2, "val3": 3 },
        "dataset2": { "val1": "a", "val2": "b", "val3": "c" }
    });
    let effective = filter(&path("$.dataset2"), &input, &no_context()).unwrap();
    assert_eq!(effective, json!({ "val1": "a", "val2": "b", "val3": "c" }));
}

#[test]
fn a_path_can_yield_a_selection_of_values() {
    let input = json!({ "a": [1, 2, 3, 4] });
    assert_eq!(
        filter(&path("$.a[0:2]"), &input, &no_context()).unwrap(),
        json!([1, 2])
    );
}

#[test]
fn input_path_dollar_passes_the_whole_input() {
    let input = json!({ "who": "AWS Step Functions" });
    assert_eq!(filter(&path("$"), &input, &no_context()).unwrap(), input);
}

#[test]
fn input_path_null_gives_an_empty_object() {
    let input = json!({ "who": "AWS Step Functions" });
    assert_eq!(
        filter(&PathField::Null, &input, &no_context()).unwrap(),
        json!({})
    );
}

/// AWS's recorded cause for an InputPath/OutputPath that selects nothing
/// (a failed execution's `ExecutionFailed`: "… Invalid path '$.Payload' :
/// No results for path: $['Payload']"): Jayway's message, no input quoted.
/// The state's prefix is added by the interpreter (see asl_run.rs).
#[test]
fn a_path_that_matches_nothing_is_a_runtime_error_naming_the_path() {
    let input = json!({ "a": 1, "l": [1] });
    let err = filter(&path("$.x"), &input, &no_context()).unwrap_err();
    assert_eq!(err.error, "States.Runtime");
    assert_eq!(
        err.cause,
        "Invalid path '$.x' : No results for path: $['x']"
    );
    let err = filter(&path("$.a.b"), &input, &no_context()).unwrap_err();
    assert_eq!(
        err.cause,
        "Invalid path '$.a.b' : No results for path: $['a']['b']"
    );
    let err = filter(&path("$.l[3]"), &input, &no_context()).unwrap_err();
    assert_eq!(
        err.cause,
        "Invalid path '$.l[3]' : No results for path: $['l'][3]"
    );
}

// --- Paths -----------------------------------------------------------------

#[test]
fn reference_paths_identify_single_nodes_as_documented() {
    let input = json!({
        "foo": 123,
        "bar": ["a", "b", "c"],
        "car": { "cdr": true }
    });
    let ctx = no_context();
    assert_eq!(select("$.foo", &input, &ctx).unwrap(), json!(123));
    assert_eq!(
        select("$.bar", &input, &ctx).unwrap(),
        json!(["a", "b", "c"])
    );
    assert_eq!(select("$.car.cdr", &input, &ctx).unwrap(), json!(true));
}

fn store() -> Value {
    json!({
        "store": {
            "book": [
                { "category": "reference", "author": "Nigel Rees", "title": "Sayings of the Century", "price": 8.95 },
                { "category": "fiction", "author": "Evelyn Waugh", "title": "Sword of Honour", "price": 12.99 },
                { "category": "fiction", "author": "Herman Melville", "title": "Moby Dick", "isbn": "0-553-21311-3", "price": 8.99 }
            ],
            "bicycle": { "color": "red", "price": 19.95 },
            "opening hours": "9-5"
        },
        "detail-type": "Order Placed"
    })
}

#[test]
fn bracket_notation_reaches_keys_with_spaces() {
    assert_eq!(
        select("$.store['opening hours']", &store(), &no_context()).unwrap(),
        json!("9-5")
    );
}

#[test]
fn dot_notation_accepts_names_jayway_accepts_such_as_detail_type() {
    assert_eq!(
        select("$.detail-type", &store(), &no_context()).unwrap(),
        json!("Order Placed")
    );
}

#[test]
fn an_index_selects_one_item_and_a_negative_index_counts_from_the_end() {
    let s = store();
    let ctx = no_context();
    assert_eq!(
        select("$.store.book[0].author", &s, &ctx).unwrap(),
        json!("Nigel Rees")
    );
    assert_eq!(
        select("$.store.book[-1].title", &s, &ctx).unwrap(),
        json!("Moby Dick")
    );
}

#[test]
fn a_wildcard_gives_an_array_of_every_match() {
    assert_eq!(
        select("$.store.book[*].author", &store(), &no_context()).unwrap(),
        json!(["Nigel Rees", "Evelyn Waugh", "Herman Melville"])
    );
}

#[test]
fn recursive_descent_collects_matches_at_any_depth() {
    let prices = select("$..price", &store(), &no_context()).unwrap();
    let mut prices: Vec<f64> = prices
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap())
        .collect();
    prices.sort_by(|a, b| a.partial_cmp(b).unwrap());
    assert_eq!(prices, vec![8.95, 8.99, 12.99, 19.95]);
}

#[test]
fn unions_and_slices_give_arrays() {
    let s = store();
    let ctx = no_context();
    assert_eq!(
        select("$.store.book[0,2].price", &s, &ctx).unwrap(),
        json!([8.95, 8.99])
    );
    assert_eq!(
        select("$.store.book[1:].category", &s, &ctx).unwrap(),
        json!(["fiction", "fiction"])
    );
}

#[test]
fn filters_select_the_items_that_satisfy_them() {
    let s = store();
    let ctx = no_context();
    assert_eq!(
        select("$.store.book[?(@.price < 10)].title", &s, &ctx).unwrap(),
        json!(["Sayings of the Century", "Moby Dick"])
    );
    assert_eq!(
        select("$.store.book[?(@.isbn)].author", &s, &ctx).unwrap(),
        json!(["Herman Melville"])
    );
    assert_eq!(
        select("$.store.book[?(@.category == 'fiction')].price", &s, &ctx).unwrap(),
        json!([12.99, 8.99])
    );
}

#[test]
fn an_indefinite_path_that_matches_nothing_gives_an_empty_array() {
    assert_eq!(
        select("$.store.book[?(@.price > 100)]", &store(), &no_context()).unwrap(),
        json!([])
    );
}

#[test]
fn a_double_dollar_path_reads_the_context_object() {
    let ctx =
        json!({ "Execution": { "Id": "arn:aws:states:us-east-1:123456789012:execution:m:e1" } });
    assert_eq!(
        select("$$.Execution.Id", &json!({}), &ctx).unwrap(),
        json!("arn:aws:states:us-east-1:123456789012:execution:m:e1")
    );
    let err = select("$$.Task.Token", &json!({}), &ctx).unwrap_err();
    assert!(err.cause.contains("context object"), "{}", err.cause);
}

#[test]
fn check_path_accepts_the_jsonpath_forms_aws_uses() {
    for ok in [
        "$",
        "$$",
        "$.a",
        "$$.Map.Item.Value",
        "$.a.b[0]",
        "$['key with spaces']",
        "$.a[-1]",
        "$.a[*]",
        "$..price",
        "$.a[0:2]",
        "$.a[0,1]",
        "$.a[?(@.price < 10)]",
        "$.detail-type",
        "$[*][*]",
    ] {
        assert_eq!(check_path(ok), Ok(()), "{ok}");
    }
}

#[test]
fn check_path_rejects_what_is_not_a_path() {
    for bad in ["", "foo", "$.", "$..", "$[", "$.a[?(@.x <)]", "$ .a"] {
        assert!(check_path(bad).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn check_reference_path_accepts_only_single_node_paths() {
    for ok in ["$", "$.a.b", "$['a b']", "$.a[0]", "$.a[0].b", "$[\"x\"]"] {
        assert_eq!(check_reference_path(ok), Ok(()), "{ok}");
    }
    for bad in [
        "a",
        "$$.Execution",
        "$..a",
        "$.a[*]",
        "$.*",
        "$.a[0:1]",
        "$.a[0,1]",
        "$.a[?(@.x)]",
        "$.a[-1]",
        "$.",
        "$['unclosed",
    ] {
        assert!(
            check_reference_path(bad).is_err(),
            "{bad:?} should be rejected"
        );
    }
}

// --- Parameters --------------------------------------------------------------

#[test]
fn parameters_select_values_with_keys_ending_in_dot_dollar() {
    let input = json!({
        "comment": "Example for Parameters.",
        "product": {
            "details": { "color": "blue", "size": "small", "material": "cotton" },
            "availability": "in stock",
            "sku": "2317",
            "cost": "$23"
        }
    });
    let parameters = json!({
        "comment": "Selecting what I care about.",
        "MyDetails": {
            "size.$": "$.product.details.size",
            "exists.$": "$.product.availability",
            "StaticValue": "foo"
        }
    });
    assert_eq!(
        rendered(parameters, input),
        json!({
            "comment": "Selecting what I care about.",
            "MyDetails": { "size": "small", "exists": "in stock", "StaticValue": "foo" }
        })
    );
}

#[test]
fn parameters_read_the_context_object_with_double_dollar() {
    let ctx = json!({ "Execution": { "Id": "exec-1", "Name": "e1" }, "Task": { "Token": "tok" } });
    let parameters =
        json!({ "MyInput.$": "$", "ExecutionId.$": "$$.Execution.Id", "token.$": "$$.Task.Token" });
    let out = render(&parameters, &json!({ "a": 1 }), &ctx, &mut no_randomness()).unwrap();
    assert_eq!(
        out,
        json!({ "MyInput": { "a": 1 }, "ExecutionId": "exec-1", "token": "tok" })
    );
}

#[test]
fn parameters_evaluate_intrinsic_functions() {
    let parameters = json!({ "greeting.$": "States.Format('Hello, my name is {}.', $.name)" });
    assert_eq!(
        rendered(parameters, json!({ "name": "Arnav" })),
        json!({ "greeting": "Hello, my name is Arnav." })
    );
}

#[test]
fn nested_objects_and_arrays_in_templates_are_rendered_too() {
    let parameters = json!({
        "EnvironmentVariablesOverride": [
            { "Name": "BUCKET_NAME", "Type": "PLAINTEXT", "Value.$": "$.bucket" },
            { "Name": "OBJECT_KEY", "Type": "PLAINTEXT", "Value.$": "$.key" }
        ],
        "Item": { "sessionId": { "S.$": "$.sessionId" }, "status": { "S": "processing" } }
    });
    let input = json!({ "bucket": "b1", "key": "k1", "sessionId": "s1" });
    assert_eq!(
        rendered(parameters, input),
        json!({
            "EnvironmentVariablesOverride": [
                { "Name": "BUCKET_NAME", "Type": "PLAINTEXT", "Value": "b1" },
                { "Name": "OBJECT_KEY", "Type": "PLAINTEXT", "Value": "k1" }
            ],
            "Item": { "sessionId": { "S": "s1" }, "status": { "S": "processing" } }
        })
    );
}

#[test]
fn a_value_that_looks_like_a_path_is_literal_without_the_suffix() {
    assert_eq!(
        rendered(json!({ "cost": "$.price" }), json!({ "price": 23 })),
        json!({ "cost": "$.price" })
    );
}

#[test]
fn a_parameter_whose_path_matches_nothing_fails_naming_path_and_field() {
    let err = render(
        &json!({ "size.$": "$.product.size" }),
        &json!({ "product": {} }),
        &no_context(),
        &mut no_randomness(),
    )
    .unwrap_err();
    assert_eq!(err.error, "States.Runtime");
    assert!(err.cause.contains("'$.product.size'"), "{}", err.cause);
    assert!(err.cause.contains("'size.$'"), "{}", err.cause);
}

#[test]
fn check_template_reports_each_bad_field_with_its_location() {
    let template = json!({
        "FunctionName": "f",
        "Payload": {
            "token.$": "$$.Task.Token",
            "bad.$": "not a path",
            "num.$": 3,
            "items": [ { "x.$": "States.Nope()" } ]
        },
        "id": 1,
        "id.$": "$.id"
    });
    let problems = check_template(&template);
    let locations: Vec<&str> = problems.iter().map(|(l, _)| l.as_str()).collect();
    assert!(locations.contains(&".Payload.bad.$"), "{problems:?}");
    assert!(locations.contains(&".Payload.num.$"), "{problems:?}");
    assert!(locations.contains(&".Payload.items[0].x.$"), "{problems:?}");
    assert!(locations.contains(&".id.$"), "{problems:?}");
    assert!(!locations.contains(&".Payload.token.$"), "{problems:?}");
    assert_eq!(problems.len(), 4, "{problems:?}");
}

#[test]
fn check_template_accepts_a_valid_template() {
    let template = json!({
        "FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:f",
        "Payload": {
            "input.$": "$",
            "token.$": "$$.Task.Token",
            "when.$": "States.Format('{} at {}', $.who, $$.State.EnteredTime)"
        }
    });
    assert_eq!(check_template(&template), vec![]);
}

// --- ResultSelector ----------------------------------------------------------

#[test]
fn result_selector_reshapes_the_result_before_result_path_places_it() {
    let result = json!({
        "resourceType": "elasticmapreduce",
        "resource": "createCluster.sync",
        "output": {
            "SdkHttpMetadata": { "HttpStatusCode": 200 },
            "SdkResponseMetadata": { "RequestId": "1234-5678-9012" },
            "ClusterId": "AKIAIOSFODNN7EXAMPLE"
        }
    });
    let selector = json!({
        "ClusterId.$": "$.output.ClusterId",
        "ResourceType.$": "$.resourceType"
    });
    let effective = rendered(selector, result);
    let output = place(
        &path("$.EMROutput"),
        json!({ "OtherDataFromInput": {} }),
        effective,
    )
    .unwrap();
    assert_eq!(
        output,
        json!({
            "OtherDataFromInput": {},
            "EMROutput": { "ClusterId": "AKIAIOSFODNN7EXAMPLE", "ResourceType": "elasticmapreduce" }
        })
    );
}

#[test]
fn result_selector_flattens_an_array_of_arrays() {
    let result = json!([[1, 2, 3], [4, 5, 6]]);
    assert_eq!(
        rendered(json!({ "flattenArray.$": "$[*][*]" }), result),
        json!({ "flattenArray": [1, 2, 3, 4, 5, 6] })
    );
}

// --- ResultPath --------------------------------------------------------------

fn lambda_input() -> Value {
    json!({
        "comment": "This is a test of the input and output of a Task state.",
        "details": "Default example",
        "who": "AWS Step Functions"
    })
}

fn hello() -> Value {
    json!("Hello, AWS Step Functions!")
}

#[test]
fn result_path_dollar_replaces_the_input_with_the_result() {
    assert_eq!(place(&path("$"), lambda_input(), hello()).unwrap(), hello());
}

#[test]
fn result_path_null_discards_the_result_and_keeps_the_input() {
    assert_eq!(
        place(&PathField::Null, lambda_input(), hello()).unwrap(),
        lambda_input()
    );
}

#[test]
fn result_path_includes_the_result_with_the_input() {
    assert_eq!(
        place(&path("$.taskresult"), lambda_input(), hello()).unwrap(),
        json!({
            "comment": "This is a test of the input and output of a Task state.",
            "details": "Default example",
            "who": "AWS Step Functions",
            "taskresult": "Hello, AWS Step Functions!"
        })
    );
}

#[test]
fn result_path_inserts_the_result_as_a_child_node() {
    let input = json!({
        "comment": "An input comment.",
        "strings": { "string1": "foo", "string2": "bar", "string3": "baz" },
        "who": "AWS Step Functions"
    });
    assert_eq!(
        place(&path("$.strings.lambdaresult"), input, hello()).unwrap(),
        json!({
            "comment": "An input comment.",
            "strings": {
                "string1": "foo",
                "string2": "bar",
                "string3": "baz",
                "lambdaresult": "Hello, AWS Step Functions!"
            },
            "who": "AWS Step Functions"
        })
    );
}

#[test]
fn result_path_updates_an_existing_node() {
    assert_eq!(
        place(&path("$.comment"), lambda_input(), hello()).unwrap(),
        json!({
            "comment": "Hello, AWS Step Functions!",
            "details": "Default example",
            "who": "AWS Step Functions"
        })
    );
}

#[test]
fn result_path_in_a_catcher_keeps_the_input_with_the_error() {
    let error = json!({ "Error": "Error here" });
    assert_eq!(
        place(&path("$.error"), json!({ "foo": "bar" }), error).unwrap(),
        json!({ "foo": "bar", "error": { "Error": "Error here" } })
    );
}

#[test]
fn result_path_creates_missing_intermediate_objects() {
    assert_eq!(
        place(&path("$.a.b['c d']"), json!({ "x": 1 }), json!(true)).unwrap(),
        json!({ "x": 1, "a": { "b": { "c d": true } } })
    );
}

#[test]
fn result_path_can_replace_an_item_of_an_array() {
    assert_eq!(
        place(
            &path("$.items[1]"),
            json!({ "items": [1, 2, 3] }),
            json!("two")
        )
        .unwrap(),
        json!({ "items": [1, "two", 3] })
    );
}

#[test]
fn result_path_through_a_non_object_is_a_result_path_match_failure() {
    let err = place(&path("$.a.b"), json!({ "a": 5 }), json!(1)).unwrap_err();
    assert_eq!(err.error, "States.ResultPathMatchFailure");
    assert!(err.cause.contains("$.a.b"), "{}", err.cause);

    let err = place(&path("$.x"), json!("just a string"), json!(1)).unwrap_err();
    assert_eq!(err.error, "States.ResultPathMatchFailure");

    let err = place(&path("$.items[5]"), json!({ "items": [] }), json!(1)).unwrap_err();
    assert_eq!(err.error, "States.ResultPathMatchFailure");
}

// --- OutputPath --------------------------------------------------------------

#[test]
fn input_path_result_path_and_output_path_work_together() {
    let raw = json!({
        "comment": "An input comment.",
        "data": { "val1": 23, "val2": 17 },
        "extra": "foo",
        "lambda": { "who": "AWS Step Functions" }
    });
    let ctx = no_context();

    let effective = filter(&path("$.lambda"), &raw, &ctx).unwrap();
    assert_eq!(effective, json!({ "who": "AWS Step Functions" }));

    let result = json!(format!("Hello, {}!", effective["who"].as_str().unwrap()));
    let combined = place(&path("$.data.lambdaresult"), raw, result).unwrap();
    assert_eq!(
        combined,
        json!({
            "comment": "An input comment.",
            "data": { "val1": 23, "val2": 17, "lambdaresult": "Hello, AWS Step Functions!" },
            "extra": "foo",
            "lambda": { "who": "AWS Step Functions" }
        })
    );

    let output = filter(&path("$.data"), &combined, &ctx).unwrap();
    assert_eq!(
        output,
        json!({ "val1": 23, "val2": 17, "lambdaresult": "Hello, AWS Step Functions!" })
    );
}

#[test]
fn output_path_null_gives_an_empty_object() {
    assert_eq!(
        filter(&PathField::Null, &lambda_input(), &no_context()).unwrap(),
        json!({})
    );
}

proptest::proptest! {
    #[test]
    fn no_path_makes_selection_or_placement_panic(text in "\\$\\$?([-.'\"\\\\(),\\[\\]?@*:<=a-z0-9 ]){0,30}") {
        let input = json!({ "a": [1, { "b": 2 }], "c": { "d": null } });
        let _ = check_path(&text);
        let _ = select(&text, &input, &no_context());
        let _ = check_reference_path(&text);
        let _ = place(&path(&text), input, json!(1));
    }
}

/// Jayway (AWS's JSONPath) accepts escaped quotes in a bracketed member
/// name: `$['a\"b']` selects the member `a"b`, `$["it\'s"]` the member
/// `it's`; RFC 9535 alone would refuse `\"` inside single quotes.
#[test]
fn member_names_with_escaped_quotes_select_the_member() {
    let input = json!({ "a\"b": 1, "it's": 2, "x\ny": 3, "c\\d": 4 });
    for (p, want) in [
        (r#"$['a\"b']"#, json!(1)),
        (r#"$["a\"b"]"#, json!(1)),
        (r#"$["it\'s"]"#, json!(2)),
        (r#"$['it\'s']"#, json!(2)),
        (r#"$['x\ny']"#, json!(3)),
        (r#"$['c\\d']"#, json!(4)),
    ] {
        assert_eq!(check_path(p), Ok(()), "{p}");
        assert_eq!(
            filter(&path(p), &input, &no_context()).unwrap(),
            want,
            "{p}"
        );
    }
    let nested = json!({ "o": { "q\"r": [10, 20] } });
    assert_eq!(
        filter(&path(r#"$.o['q\"r'][1]"#), &nested, &no_context()).unwrap(),
        json!(20)
    );
}
