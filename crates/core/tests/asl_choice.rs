//! Choice rules, checked against the examples of the AWS documentation of
//! the Choice state.

use serde_json::{json, Value};

use sagaflow_core::asl::choice::{evaluate, matches_pattern};
use sagaflow_core::asl::machine::{Comparison, Operand, Rule};
use sagaflow_core::event::ErrorInfo;

fn cmp(variable: &str, op: Comparison, operand: Value) -> Rule {
    Rule::Compare {
        variable: variable.to_string(),
        op,
        operand: Operand::Value(operand),
    }
}

fn cmp_path(variable: &str, op: Comparison, other: &str) -> Rule {
    Rule::Compare {
        variable: variable.to_string(),
        op,
        operand: Operand::Path(other.to_string()),
    }
}

fn holds(rule: &Rule, input: Value) -> bool {
    evaluate(rule, &input, &json!({})).unwrap_or_else(|e| panic!("{rule:?}: {e:?}"))
}

fn fails(rule: &Rule, input: Value) -> ErrorInfo {
    evaluate(rule, &input, &json!({})).expect_err("the rule should fail")
}

/// The `Next` of the first rule that holds, as the Choice state picks it.
fn choose<'a>(choices: &'a [(Rule, &'a str)], default: &'a str, input: &Value) -> &'a str {
    choices
        .iter()
        .find(|(rule, _)| evaluate(rule, input, &json!({})).unwrap())
        .map_or(default, |(_, next)| *next)
}

#[test]
fn the_documented_choice_state_picks_value_in_twenties() {
    let choices = [
        (
            Rule::Not(Box::new(cmp(
                "$.type",
                Comparison::StringEquals,
                json!("Private"),
            ))),
            "Public",
        ),
        (
            cmp("$.value", Comparison::NumericEquals, json!(0)),
            "ValueIsZero",
        ),
        (
            Rule::And(vec![
                cmp("$.value", Comparison::NumericGreaterThanEquals, json!(20)),
                cmp("$.value", Comparison::NumericLessThan, json!(30)),
            ]),
            "ValueInTwenties",
        ),
    ];
    let pick = |input: Value| choose(&choices, "DefaultState", &input).to_string();
    assert_eq!(
        pick(json!({ "type": "Private", "value": 22 })),
        "ValueInTwenties"
    );
    assert_eq!(pick(json!({ "type": "Public", "value": 22 })), "Public");
    assert_eq!(
        pick(json!({ "type": "Private", "value": 0 })),
        "ValueIsZero"
    );
    assert_eq!(
        pick(json!({ "type": "Private", "value": 30 })),
        "DefaultState"
    );
}

#[test]
fn the_documented_choice_state_fails_when_type_is_missing() {
    let rule = Rule::Not(Box::new(cmp(
        "$.type",
        Comparison::StringEquals,
        json!("Private"),
    )));
    let err = fails(&rule, json!({ "value": 22 }));
    assert_eq!(err.error, "States.Runtime");
    assert!(err.cause.contains("$.type"), "{}", err.cause);
}

#[test]
fn numeric_equals_checks_whether_the_value_is_one() {
    let rule = cmp("$.foo", Comparison::NumericEquals, json!(1));
    assert!(holds(&rule, json!({ "foo": 1 })));
    assert!(holds(&rule, json!({ "foo": 1.0 })), "1.0 is numerically 1");
    assert!(!holds(&rule, json!({ "foo": 2 })));
}

#[test]
fn numeric_comparisons_of_large_integers_are_exact() {
    let rule = cmp(
        "$.n",
        Comparison::NumericLessThan,
        json!(9_007_199_254_740_993u64),
    );
    assert!(holds(&rule, json!({ "n": 9_007_199_254_740_992u64 })));
    let rule = cmp("$.n", Comparison::NumericGreaterThan, json!(-1));
    assert!(holds(&rule, json!({ "n": u64::MAX })));
}

#[test]
fn string_equals_checks_whether_the_string_is_my_string() {
    let rule = cmp("$.foo", Comparison::StringEquals, json!("MyString"));
    assert!(holds(&rule, json!({ "foo": "MyString" })));
    assert!(!holds(&rule, json!({ "foo": "mystring" })));
}

#[test]
fn string_greater_than_compares_lexically() {
    let rule = cmp("$.foo", Comparison::StringGreaterThan, json!("MyStringABC"));
    assert!(holds(&rule, json!({ "foo": "MyStringABD" })));
    assert!(!holds(&rule, json!({ "foo": "MyStringAB" })));
    let rule = cmp("$.foo", Comparison::StringLessThanEquals, json!("b"));
    assert!(holds(&rule, json!({ "foo": "b" })));
    assert!(holds(&rule, json!({ "foo": "a" })));
    let rule = cmp("$.foo", Comparison::StringGreaterThanEquals, json!("b"));
    assert!(!holds(&rule, json!({ "foo": "a" })));
}

#[test]
fn strings_compare_by_utf16_code_units_as_java_does() {
    // U+1F600 is a surrogate pair (D83D DE00) in UTF-16, below U+FF61.
    let rule = cmp("$.s", Comparison::StringLessThan, json!("\u{FF61}"));
    assert!(holds(&rule, json!({ "s": "\u{1F600}" })));
}

#[test]
fn is_null_checks_whether_the_value_is_null() {
    let rule = cmp("$.possiblyNullValue", Comparison::IsNull, json!(true));
    assert!(holds(&rule, json!({ "possiblyNullValue": null })));
    assert!(!holds(&rule, json!({ "possiblyNullValue": 0 })));
    assert!(!holds(&rule, json!({})), "a missing field is not null");
}

#[test]
fn is_present_guards_a_comparison_on_a_key_that_might_not_exist() {
    let rule = Rule::And(vec![
        cmp("$.keyThatMightNotExist", Comparison::IsPresent, json!(true)),
        cmp(
            "$.keyThatMightNotExist",
            Comparison::StringEquals,
            json!("foo"),
        ),
    ]);
    assert!(
        !holds(&rule, json!({})),
        "no error: IsPresent stops the And"
    );
    assert!(holds(&rule, json!({ "keyThatMightNotExist": "foo" })));
    assert!(!holds(&rule, json!({ "keyThatMightNotExist": "bar" })));
}

#[test]
fn is_present_false_matches_a_missing_field() {
    let rule = cmp("$.x", Comparison::IsPresent, json!(false));
    assert!(holds(&rule, json!({})));
    assert!(!holds(&rule, json!({ "x": null })));
}

#[test]
fn or_holds_when_any_rule_holds_and_stops_there() {
    let rule = Rule::Or(vec![
        cmp("$.a", Comparison::BooleanEquals, json!(true)),
        cmp(
            "$.missing",
            Comparison::StringEquals,
            json!("never evaluated"),
        ),
    ]);
    assert!(holds(&rule, json!({ "a": true })));
    fails(&rule, json!({ "a": false }));
}

#[test]
fn string_matches_checks_a_pattern_with_a_wildcard() {
    let rule = cmp("$.foo", Comparison::StringMatches, json!("log-*.txt"));
    assert!(holds(&rule, json!({ "foo": "log-2024-01-01.txt" })));
    assert!(holds(&rule, json!({ "foo": "log-.txt" })));
    assert!(!holds(&rule, json!({ "foo": "log-1.txt.gz" })));
    assert!(!holds(&rule, json!({ "foo": "mylog-1.txt" })));
}

#[test]
fn string_matches_treats_an_escaped_star_literally() {
    assert!(matches_pattern("log-*.txt", r"log-\*.txt"));
    assert!(!matches_pattern("log-1.txt", r"log-\*.txt"));
    assert!(matches_pattern(r"a\b", r"a\\b"));
    assert!(matches_pattern("a?b", "a?b"), "only * is special");
    assert!(!matches_pattern("axb", "a?b"));
    assert!(matches_pattern("", "*"));
    assert!(matches_pattern("abcabcabd", "*abc*abd"));
    assert!(!matches_pattern(
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
        "*a*a*a*a*a*a*a*c"
    ));
}

#[test]
fn timestamp_equals_checks_a_timestamp() {
    let rule = cmp(
        "$.foo",
        Comparison::TimestampEquals,
        json!("2001-01-01T12:00:00Z"),
    );
    assert!(holds(&rule, json!({ "foo": "2001-01-01T12:00:00Z" })));
    assert!(
        holds(&rule, json!({ "foo": "2001-01-01T13:00:00+01:00" })),
        "same instant"
    );
    assert!(holds(&rule, json!({ "foo": "2001-01-01T12:00:00.000Z" })));
    assert!(!holds(&rule, json!({ "foo": "2001-01-01T12:00:01Z" })));
}

#[test]
fn timestamps_must_use_uppercase_t_and_z() {
    let rule = cmp(
        "$.foo",
        Comparison::TimestampEquals,
        json!("2001-01-01T12:00:00Z"),
    );
    assert!(!holds(&rule, json!({ "foo": "2001-01-01t12:00:00z" })));
    assert!(!holds(&rule, json!({ "foo": "2001-01-01 12:00:00Z" })));
}

#[test]
fn timestamp_ordering_compares_instants() {
    let earlier = json!({ "t": "2016-08-18T17:33:00Z" });
    let rule = cmp(
        "$.t",
        Comparison::TimestampLessThan,
        json!("2016-08-18T17:33:00.5Z"),
    );
    assert!(holds(&rule, earlier.clone()));
    let rule = cmp(
        "$.t",
        Comparison::TimestampGreaterThanEquals,
        json!("2016-08-18T17:33:00Z"),
    );
    assert!(holds(&rule, earlier.clone()));
    let rule = cmp(
        "$.t",
        Comparison::TimestampGreaterThan,
        json!("2016-08-18T17:33:00Z"),
    );
    assert!(!holds(&rule, earlier.clone()));
    let rule = cmp(
        "$.t",
        Comparison::TimestampLessThanEquals,
        json!("2016-08-18T18:33:00+01:00"),
    );
    assert!(holds(&rule, earlier));
}

#[test]
fn a_timestamp_is_logically_a_string_too() {
    let rule = cmp(
        "$.t",
        Comparison::StringEquals,
        json!("2016-08-18T17:33:00Z"),
    );
    assert!(holds(&rule, json!({ "t": "2016-08-18T17:33:00Z" })));
}

#[test]
fn string_equals_path_compares_with_another_value_of_the_input() {
    let rule = cmp_path("$.foo", Comparison::StringEquals, "$.bar");
    assert!(holds(&rule, json!({ "foo": "x", "bar": "x" })));
    assert!(!holds(&rule, json!({ "foo": "x", "bar": "y" })));
}

#[test]
fn path_operands_work_for_every_kind_of_comparison() {
    let input = json!({ "a": 3, "b": 5, "t": true, "u": true,
                        "s": "2020-01-01T00:00:00Z", "e": "2021-01-01T00:00:00Z" });
    assert!(holds(
        &cmp_path("$.a", Comparison::NumericLessThan, "$.b"),
        input.clone()
    ));
    assert!(holds(
        &cmp_path("$.t", Comparison::BooleanEquals, "$.u"),
        input.clone()
    ));
    assert!(holds(
        &cmp_path("$.s", Comparison::TimestampLessThan, "$.e"),
        input
    ));
}

#[test]
fn a_missing_path_operand_is_a_runtime_error() {
    let err = fails(
        &cmp_path("$.foo", Comparison::StringEquals, "$.bar"),
        json!({ "foo": "x" }),
    );
    assert_eq!(err.error, "States.Runtime");
    assert!(err.cause.contains("$.bar"), "{}", err.cause);
}

#[test]
fn a_comparison_with_the_wrong_type_does_not_match() {
    assert!(!holds(
        &cmp("$.v", Comparison::NumericEquals, json!(1)),
        json!({ "v": "1" })
    ));
    assert!(!holds(
        &cmp("$.v", Comparison::StringEquals, json!("1")),
        json!({ "v": 1 })
    ));
    assert!(!holds(
        &cmp("$.v", Comparison::BooleanEquals, json!(true)),
        json!({ "v": "true" })
    ));
    assert!(!holds(
        &cmp(
            "$.v",
            Comparison::TimestampEquals,
            json!("2001-01-01T12:00:00Z")
        ),
        json!({ "v": "yesterday" })
    ));
    assert!(!holds(
        &cmp("$.v", Comparison::StringMatches, json!("*")),
        json!({ "v": 5 })
    ));
}

#[test]
fn type_tests_tell_what_a_value_is() {
    let input = json!({ "n": 1.5, "s": "x", "b": false, "z": null,
                        "t": "2016-08-18T17:33:00Z", "o": {} });
    let is = |path: &str, op: Comparison| holds(&cmp(path, op, json!(true)), input.clone());
    assert!(is("$.n", Comparison::IsNumeric));
    assert!(!is("$.s", Comparison::IsNumeric));
    assert!(is("$.s", Comparison::IsString));
    assert!(!is("$.o", Comparison::IsString));
    assert!(is("$.b", Comparison::IsBoolean));
    assert!(!is("$.z", Comparison::IsBoolean));
    assert!(is("$.t", Comparison::IsTimestamp));
    assert!(!is("$.s", Comparison::IsTimestamp));
    assert!(is("$.z", Comparison::IsNull));
    assert!(
        !is("$.missing", Comparison::IsNumeric),
        "missing is not numeric, and no error"
    );
    assert!(holds(
        &cmp("$.s", Comparison::IsNumeric, json!(false)),
        input
    ));
}

#[test]
fn boolean_equals_compares_booleans() {
    let rule = cmp("$.ok", Comparison::BooleanEquals, json!(false));
    assert!(holds(&rule, json!({ "ok": false })));
    assert!(!holds(&rule, json!({ "ok": true })));
}

#[test]
fn a_variable_can_read_the_context_object() {
    let rule = cmp(
        "$$.Execution.Name",
        Comparison::StringEquals,
        json!("run-1"),
    );
    let ctx = json!({ "Execution": { "Name": "run-1" } });
    assert!(evaluate(&rule, &json!({}), &ctx).unwrap());
}

#[test]
fn not_negates_a_rule() {
    let rule = Rule::Not(Box::new(cmp(
        "$.n",
        Comparison::NumericGreaterThan,
        json!(10),
    )));
    assert!(holds(&rule, json!({ "n": 10 })));
    assert!(!holds(&rule, json!({ "n": 11 })));
}
