//! JSONata templates (`{% … %}`): parsing with located syntax errors,
//! `$states`, workflow variables, the functions Step Functions adds (each
//! with the example AWS's developer guide gives), errors as AWS words them,
//! and the replay determinism of `$uuid()` / `$random()`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use sagaflow_core::asl::jsonata::{
    is_expression, Entropy, Scope, Template, INVALID_JSONATA, QUERY_EVALUATION_ERROR,
};
use sagaflow_core::event::ErrorInfo;

const NOW: i64 = 1_700_000_000_000;

fn template(value: Value, location: &str) -> Template {
    Template::parse(&value, location).unwrap_or_else(|v| panic!("{value}: {v:?}"))
}

struct Env {
    input: Value,
    result: Option<Value>,
    error_output: Option<Value>,
    context: Value,
    variables: BTreeMap<String, Value>,
    entropy: Entropy,
}

impl Env {
    fn new(input: Value) -> Env {
        Env {
            input,
            result: None,
            error_output: None,
            context: json!({"Execution": {"Id": "exec-1"}, "State": {"Name": "T"}}),
            variables: BTreeMap::new(),
            entropy: Entropy::from_seed("exec-1:5"),
        }
    }

    fn scope(&self) -> Scope<'_> {
        Scope {
            input: &self.input,
            result: self.result.as_ref(),
            error_output: self.error_output.as_ref(),
            context: &self.context,
            variables: &self.variables,
            entropy: self.entropy,
            now_ms: NOW,
        }
    }

    fn eval(&self, value: Value) -> Result<Value, ErrorInfo> {
        template(value, "/States/T/Output").evaluate(&self.scope())
    }

    fn ok(&self, value: Value) -> Value {
        let text = value.to_string();
        self.eval(value).unwrap_or_else(|e| panic!("{text}: {e:?}"))
    }
}

fn ok(expr: &str) -> Value {
    Env::new(json!({})).ok(json!(format!("{{% {expr} %}}")))
}

fn fails(expr: &str) -> ErrorInfo {
    Env::new(json!({}))
        .eval(json!(format!("{{% {expr} %}}")))
        .expect_err(expr)
}

// --- templates ------------------------------------------------------------

#[test]
fn only_a_whole_string_between_the_delimiters_is_an_expression() {
    assert!(is_expression("{% 1 %}"));
    assert!(is_expression("{%1%}"));
    assert!(!is_expression(" {% 1 %}"));
    assert!(!is_expression("{% 1 %} "));
    assert!(!is_expression("{% 1"));
    assert!(!is_expression("$states.input"));
    let env = Env::new(json!({"a": 1}));
    assert_eq!(
        env.ok(json!(" {% $states.input.a %}")),
        json!(" {% $states.input.a %}")
    );
    assert_eq!(env.ok(json!("$states.input.a")), json!("$states.input.a"));
}

#[test]
fn a_whole_field_expression_gives_any_json_value() {
    let env = Env::new(json!({"title": "Doctor", "items": [1, 2, 3]}));
    assert_eq!(env.ok(json!("{% $states.input.title %}")), json!("Doctor"));
    assert_eq!(env.ok(json!("{% $sum($states.input.items) %}")), json!(6));
    assert_eq!(
        env.ok(json!(
            "{% {'n': $count($states.input.items), 'ok': true} %}"
        )),
        json!({"n": 3, "ok": true})
    );
    assert_eq!(env.ok(json!("{% null %}")), Value::Null);
    assert_eq!(env.ok(json!("{% 1.5 * 3 %}")), json!(4.5));
}

#[test]
fn strings_at_any_depth_are_evaluated_and_the_rest_is_kept() {
    let env = Env::new(json!({"title": "Doctor", "n": 2}));
    let out = env.ok(json!({
        "static": "Hello",
        "title": "{% $states.input.title %}",
        "not-evaluated": "$customerName",
        "nested": {"deeper": [1, "{% $states.input.n * 10 %}", {"x": "{% $uppercase($states.input.title) %}"}]},
        "number": 7,
        "flag": false,
        "nothing": null
    }));
    assert_eq!(
        out,
        json!({
            "static": "Hello",
            "title": "Doctor",
            "not-evaluated": "$customerName",
            "nested": {"deeper": [1, 20, {"x": "DOCTOR"}]},
            "number": 7,
            "flag": false,
            "nothing": null
        })
    );
    // The object keeps the template's key order (as AWS's output does).
    let keys: Vec<&String> = out.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "static",
            "title",
            "not-evaluated",
            "nested",
            "number",
            "flag",
            "nothing"
        ]
    );
}

#[test]
fn a_template_without_expressions_is_itself() {
    let value = json!({"a": [1, {"b": "c"}], "d": "{ % not one % }"});
    let t = template(value.clone(), "/States/T/Arguments");
    assert!(!t.has_expressions());
    assert_eq!(t.evaluate(&Env::new(json!({})).scope()).unwrap(), value);
    assert!(template(json!([["{% 1 %}"]]), "/States/T/Output").has_expressions());
}

// --- $states and variables ----------------------------------------------------

#[test]
fn states_gives_input_result_error_output_and_context() {
    let mut env = Env::new(json!({"customer": {"name": "María"}}));
    env.result = Some(json!({"Payload": {"total": 42}}));
    env.error_output = Some(json!({"Error": "States.TaskFailed", "Cause": "boom"}));
    assert_eq!(
        env.ok(json!({
            "name": "{% $states.input.customer.name %}",
            "total": "{% $states.result.Payload.total %}",
            "error": "{% $states.errorOutput.Error %}",
            "execution": "{% $states.context.Execution.Id %}",
            "state": "{% $states.context.State.Name %}"
        })),
        json!({"name": "María", "total": 42, "error": "States.TaskFailed",
               "execution": "exec-1", "state": "T"})
    );
}

#[test]
fn result_and_error_output_are_absent_where_not_given() {
    let env = Env::new(json!({}));
    assert_eq!(ok("$exists($states.result)"), json!(false));
    assert_eq!(ok("$exists($states.errorOutput)"), json!(false));
    assert_eq!(ok("$keys($states)"), json!(["input", "context"]));
    assert!(env.eval(json!("{% $states.result %}")).is_err());
}

#[test]
fn the_expression_has_no_input_document_of_its_own() {
    // AWS: reach the input through $states.input; a bare name is undefined.
    let env = Env::new(json!({"a": 1}));
    let err = env.eval(json!("{% a %}")).unwrap_err();
    assert_eq!(err.error, QUERY_EVALUATION_ERROR);
}

#[test]
fn workflow_variables_are_bound_by_name() {
    let mut env = Env::new(json!({"title": "Doctor"}));
    env.variables.insert("customerName".into(), json!("María"));
    env.variables
        .insert("limits".into(), json!({"max": 3, "tiers": [1, 2]}));
    assert_eq!(
        env.ok(json!({
            "static": "Hello",
            "title": "{% $states.input.title %}",
            "name": "{% $customerName %}",
            "not-evaluated": "$customerName",
            "max": "{% $limits.max + $sum($limits.tiers) %}"
        })),
        json!({"static": "Hello", "title": "Doctor", "name": "María",
               "not-evaluated": "$customerName", "max": 6})
    );
}

#[test]
fn a_variable_cannot_hide_states_or_aws_functions() {
    let mut env = Env::new(json!({"a": 1}));
    env.variables.insert("states".into(), json!("mine"));
    env.variables.insert("uuid".into(), json!("mine"));
    assert_eq!(env.ok(json!("{% $states.input.a %}")), json!(1));
    assert_eq!(env.ok(json!("{% $length($uuid()) %}")), json!(36));
}

#[test]
fn local_bindings_and_functions_work() {
    assert_eq!(
        ok("( $f := function($x) { $x * 2 }; $map([1, 2, 3], $f) )"),
        json!([2, 4, 6])
    );
    assert_eq!(ok("$now()"), json!("2023-11-14T22:13:20.000Z"));
    assert_eq!(ok("$millis()"), json!(NOW));
}

// --- AWS's functions ----------------------------------------------------------

#[test]
fn partition_as_documented() {
    // AWS: $partition([1,2,3,4], 2) → [[1,2], [3,4]].
    assert_eq!(ok("$partition([1,2,3,4], 2)"), json!([[1, 2], [3, 4]]));
    // The last chunk is shorter when the items do not divide evenly.
    assert_eq!(
        ok("$partition([1,2,3,4,5,6,7,8,9], 4)"),
        json!([[1, 2, 3, 4], [5, 6, 7, 8], [9]])
    );
    assert_eq!(ok("$partition([1,2,3], 10)"), json!([[1, 2, 3]]));
    assert_eq!(ok("$partition([], 2)"), json!([]));
    let env = {
        let mut e = Env::new(json!({}));
        e.variables.insert("chunk".into(), json!(3));
        e
    };
    assert_eq!(
        env.ok(json!("{% $partition([1,2,3,4,5,6,7,8,9], $chunk) %}")),
        json!([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    );
    for bad in ["$partition([1,2], 0)", "$partition([1,2], -1)"] {
        let e = fails(bad);
        assert_eq!(e.error, QUERY_EVALUATION_ERROR);
        assert!(e.cause.contains("positive integer"), "{}", e.cause);
    }
}

#[test]
fn range_as_documented() {
    // AWS: $range(0, 10, 2) → [0, 2, 4, 6, 8, 10] (end included).
    assert_eq!(ok("$range(0, 10, 2)"), json!([0, 2, 4, 6, 8, 10]));
    assert_eq!(ok("$range(1, 9, 3)"), json!([1, 4, 7]));
    assert_eq!(ok("$range(10, 0, -5)"), json!([10, 5, 0]));
    assert_eq!(ok("$range(3, 3, 1)"), json!([3]));
    assert_eq!(ok("$range(3, 1, 1)"), json!([]));
    assert_eq!(ok("$count($range(1, 1000, 1))"), json!(1000));
    let e = fails("$range(0, 10, 0)");
    assert_eq!(e.error, QUERY_EVALUATION_ERROR);
    assert!(e.cause.contains("must not be 0"), "{}", e.cause);
    let e = fails("$range(0, 10000000, 1)");
    assert!(e.cause.contains("more than"), "{}", e.cause);
    // Its signature: three numbers.
    let e = fails("$range('0', 4, 1)");
    assert!(e.cause.contains("T0410"), "{}", e.cause);
}

#[test]
fn hash_as_documented() {
    // AWS's example for States.Hash, the same data and algorithm.
    assert_eq!(
        ok("$hash('input data', 'SHA-1')"),
        json!("aaff4a450a104cd177d28d18d74485e8cae074b7")
    );
    for (alg, digest) in [
        ("MD5", "812f45842bc6d66ee14572ce20db8e86"),
        ("SHA-256", "b4a697a057313163aee33cd8d40c66e9f0f177e00cac2de32475ffff6169c3e3"),
        ("SHA-384", "d28a7d5cf25a74f11a50a18452b75e04bb3d70c9dd0510d6123aa008c756511b87525bdc835ebb27e1fb9e9374a15562"),
        ("SHA-512", "6ce4adb348546d4f449c4d25aad9a7c9cb711d9e91982d3f0b29ca2f3f47d4ce2deba23bf2954f0f1d593fc50283731a533d30d425402d4f91316d871303aac4"),
    ] {
        assert_eq!(ok(&format!("$hash('input data', '{alg}')")), json!(digest), "{alg}");
    }
    // As AWS shows it: the data from the input, the algorithm from a variable.
    let mut env = Env::new(json!({"content": "input data"}));
    env.variables
        .insert("hashAlgorithmName".into(), json!("SHA-1"));
    assert_eq!(
        env.ok(json!(
            "{% $hash($states.input.content, $hashAlgorithmName) %}"
        )),
        json!("aaff4a450a104cd177d28d18d74485e8cae074b7")
    );
    let e = fails("$hash('x', 'SHA-3')");
    assert_eq!(e.error, QUERY_EVALUATION_ERROR);
    assert!(
        e.cause.contains("MD5, SHA-1, SHA-256, SHA-384, SHA-512"),
        "{}",
        e.cause
    );
}

#[test]
fn random_as_documented() {
    // AWS: $random() and $random(seed) give 0 <= n < 1; a seed gives the same
    // number every time.
    let n = ok("$random()").as_f64().unwrap();
    assert!((0.0..1.0).contains(&n), "{n}");
    let mut env = Env::new(json!({"seed": 42}));
    let a = env.ok(json!("{% $random($states.input.seed) %}"));
    env.entropy = Entropy::from_seed("another execution");
    let b = env.ok(json!("{% $random($states.input.seed) %}"));
    assert_eq!(a, b, "a seed gives the same number in any execution");
    assert_eq!(ok("$random(42)"), ok("$random(42.0)"));
    assert_ne!(ok("$random(42)"), ok("$random(43)"));
    let s = a.as_f64().unwrap();
    assert!((0.0..1.0).contains(&s), "{s}");
    // Two unseeded calls in one evaluation differ.
    let pair = ok("[$random(), $random()]");
    assert_ne!(pair[0], pair[1]);
}

#[test]
fn uuid_as_documented() {
    // AWS: $uuid() → a version 4 UUID.
    let u = ok("$uuid()");
    let u = u.as_str().unwrap();
    assert_eq!(u.len(), 36);
    let parts: Vec<&str> = u.split('-').collect();
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12]
    );
    assert!(parts[2].starts_with('4'), "{u}: version 4");
    assert!("89ab".contains(&parts[3][..1]), "{u}: RFC 4122 variant");
    assert!(u
        .chars()
        .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    let pair = ok("[$uuid(), $uuid()]");
    assert_ne!(pair[0], pair[1]);
}

#[test]
fn parse_as_documented() {
    // AWS: $parse turns a JSON string into its value (in place of $eval).
    let env = Env::new(json!({"json_string": "{\"foo\": \"bar\", \"n\": [1, 2.5]}"}));
    assert_eq!(
        env.ok(json!("{% $parse($states.input.json_string) %}")),
        json!({"foo": "bar", "n": [1, 2.5]})
    );
    assert_eq!(ok("$parse('[1,2,3]')"), json!([1, 2, 3]));
    assert_eq!(ok("$parse('\"text\"')"), json!("text"));
    let e = fails("$parse('{not json')");
    assert_eq!(e.error, QUERY_EVALUATION_ERROR);
    assert!(e.cause.contains("not JSON"), "{}", e.cause);
}

#[test]
fn eval_is_not_available_as_in_aws() {
    let e = fails("$eval('1 + 1')");
    assert_eq!(e.error, QUERY_EVALUATION_ERROR);
    assert!(e.cause.contains("T1006"), "{}", e.cause);
}

// --- replay determinism ----------------------------------------------------------

#[test]
fn uuid_and_random_are_the_same_on_replay() {
    let field = json!({
        "id": "{% $uuid() %}",
        "ids": "{% [$uuid(), $uuid()] %}",
        "r": "{% $random() %}",
        "shuffled": "{% $shuffle([1,2,3,4,5,6,7,8]) %}"
    });
    let first = Env::new(json!({})).ok(field.clone());
    // A replay: a new template parsed from the same definition, the same
    // entropy (from the same history).
    let replay = Env::new(json!({})).ok(field.clone());
    assert_eq!(first, replay);
    // Another state entry (another entropy) draws other values.
    let mut other = Env::new(json!({}));
    other.entropy = Entropy::from_seed("exec-1:9");
    let third = other.ok(field.clone());
    assert_ne!(first["id"], third["id"]);
    assert_ne!(first["r"], third["r"]);
    // Within one evaluation every draw is fresh.
    assert_ne!(first["id"], first["ids"][0]);
    assert_ne!(first["ids"][0], first["ids"][1]);
}

#[test]
fn two_fields_of_one_state_draw_different_values_from_one_entropy() {
    let env = Env::new(json!({}));
    let scope = env.scope();
    let a = template(json!("{% $uuid() %}"), "/States/T/Arguments")
        .evaluate(&scope)
        .unwrap();
    let b = template(json!("{% $uuid() %}"), "/States/T/Output")
        .evaluate(&scope)
        .unwrap();
    assert_ne!(a, b);
    // And each is the same on replay.
    let again = template(json!("{% $uuid() %}"), "/States/T/Arguments")
        .evaluate(&scope)
        .unwrap();
    assert_eq!(a, again);
}

// --- syntax errors ------------------------------------------------------------

#[test]
fn a_syntax_error_is_reported_with_its_location_code_and_position() {
    let v = Template::parse(&json!("{% $states.input.items[ %}"), "/States/T/Output").unwrap_err();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].code, INVALID_JSONATA);
    assert_eq!(v[0].location, "/States/T/Output");
    assert!(
        v[0].message.starts_with(
            "The JSONata expression '$states.input.items[' has a syntax error at position "
        ),
        "{}",
        v[0].message
    );
    assert!(v[0].message.contains("S0203"), "{}", v[0].message);
}

#[test]
fn every_syntax_error_of_a_template_is_reported_at_its_own_location() {
    let v = Template::parse(
        &json!({
            "ok": "{% 1 + 1 %}",
            "a/b": {"list": ["fine", "{% 1 + %}"]},
            "c": "{% ) %}",
            "empty": "{%  %}"
        }),
        "/States/My~State/Arguments",
    )
    .unwrap_err();
    let at: Vec<&str> = v.iter().map(|v| v.location.as_str()).collect();
    assert_eq!(
        at,
        [
            "/States/My~State/Arguments/a~1b/list/1",
            "/States/My~State/Arguments/c",
            "/States/My~State/Arguments/empty"
        ]
    );
    assert!(v.iter().all(|v| v.code == INVALID_JSONATA));
    assert!(v[0].message.contains("'1 +'"), "{}", v[0].message);
    assert!(
        v[1].message.contains("S0211") || v[1].message.contains("S02"),
        "{}",
        v[1].message
    );
}

#[test]
fn the_position_counts_from_the_start_of_the_expression() {
    let v = Template::parse(&json!("{% 'abc' & & 'd' %}"), "/Output").unwrap_err();
    // `'abc' & & 'd'`: the second `&` (offset 8 to 9) is where it breaks.
    assert!(v[0].message.contains("at position 9"), "{}", v[0].message);
}

// --- evaluation errors ----------------------------------------------------------

#[test]
fn an_undefined_result_is_a_query_evaluation_error_in_aws_words() {
    let env = Env::new(json!({}));
    let err = env.eval(json!("{% $states.input.missing %}")).unwrap_err();
    assert_eq!(err.error, QUERY_EVALUATION_ERROR);
    assert_eq!(
        err.cause,
        "The JSONata expression '$states.input.missing' specified for the field 'Output' returned nothing (undefined)."
    );
}

#[test]
fn a_nested_undefined_names_the_nested_field_as_aws_does() {
    // As in an AWS execution: 'Arguments/Input/pushLocation'.
    let t = template(
        json!({"Input": {"pushLocation": "{% $states.input.pushLocation %}"}}),
        "/States/Run S3 Data Push/Arguments",
    );
    let err = t.evaluate(&Env::new(json!({})).scope()).unwrap_err();
    assert_eq!(
        err.cause,
        "The JSONata expression '$states.input.pushLocation' specified for the field 'Arguments/Input/pushLocation' returned nothing (undefined)."
    );
    assert_eq!(t.field(), "Arguments");
    assert_eq!(t.location(), "/States/Run S3 Data Push/Arguments");
}

#[test]
fn the_field_is_named_inside_the_innermost_state() {
    let cases = [
        ("/States/P/Branches/1/States/T/Output", "Output"),
        ("/States/M/ItemProcessor/States/T/Arguments", "Arguments"),
        ("/States/M/Iterator/States/In~1ner/Assign", "Assign"),
        ("/States/M/Items", "Items"),
        ("/States/T/Catch/0/Output", "Catch/0/Output"),
    ];
    for (location, field) in cases {
        assert_eq!(
            template(json!("{% 1 %}"), location).field(),
            field,
            "{location}"
        );
    }
}

#[test]
fn an_object_constructor_drops_an_undefined_member_as_jsonata_does() {
    assert_eq!(ok("{'k': $states.input.missing, 'v': 1}"), json!({"v": 1}));
}

#[test]
fn an_evaluation_error_is_a_query_evaluation_error_with_jsonatas_code() {
    let env = Env::new(json!({"name": "x"}));
    let err = env
        .eval(json!({"a": "{% $states.input.name + 1 %}"}))
        .unwrap_err();
    assert_eq!(err.error, QUERY_EVALUATION_ERROR);
    assert_eq!(
        err.cause,
        "The JSONata expression '$states.input.name + 1' specified for the field 'Output/a' threw an error during evaluation. T2001: The left side of the \"+\" operator must evaluate to a number"
    );
    let err = fails("$error('custom failure')");
    assert!(
        err.cause
            .ends_with("threw an error during evaluation. D3137: custom failure"),
        "{}",
        err.cause
    );
}

#[test]
fn a_runaway_expression_stops_with_an_error() {
    let err = fails("( $f := function($n) { $n = 0 ? 0 : $f($n - 1) + 0 }; $f(100000000) )");
    assert_eq!(err.error, QUERY_EVALUATION_ERROR);
    let err = fails("$count([1..100000000].($ * 2))");
    assert_eq!(err.error, QUERY_EVALUATION_ERROR);
}

#[test]
fn the_syntax_message_as_the_readme_shows_it() {
    let v = Template::parse(&json!("{% $x + %}"), "/States/T/Output").unwrap_err();
    assert_eq!(
        v[0].message,
        "The JSONata expression '$x +' has a syntax error at position 4: S0207: Unexpected end of expression"
    );
}
