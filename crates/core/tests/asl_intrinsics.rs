//! The intrinsic functions, each with the example the AWS documentation
//! gives for it (and its documented result), plus the errors.

use serde_json::{json, Value};

use sagaflow_core::asl::data::render;
use sagaflow_core::asl::intrinsic::{check, evaluate, is_call};
use sagaflow_core::event::ErrorInfo;

/// A fixed stream of "random" numbers, so results are reproducible.
fn counter() -> impl FnMut() -> u64 {
    let mut n = 0u64;
    move || {
        n += 1;
        n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

fn eval(text: &str, input: Value) -> Result<Value, ErrorInfo> {
    assert_eq!(check(text), Ok(()), "{text} should pass the static check");
    evaluate(text, &input, &json!({}), &mut counter())
}

fn ok(text: &str, input: Value) -> Value {
    eval(text, input).unwrap_or_else(|e| panic!("{text}: {e:?}"))
}

fn failure(text: &str, input: Value) -> ErrorInfo {
    let err =
        evaluate(text, &input, &json!({}), &mut counter()).expect_err("evaluation should fail");
    assert_eq!(err.error, "States.IntrinsicFailure", "{err:?}");
    err
}

// --- States.Format -----------------------------------------------------------

#[test]
fn format_fills_placeholders_from_a_literal_template() {
    let input = json!({ "name": "Arnav", "template": "Hello, my name is {}." });
    assert_eq!(
        ok("States.Format('Hello, my name is {}.', $.name)", input),
        json!("Hello, my name is Arnav.")
    );
}

#[test]
fn format_takes_its_template_from_a_path_too() {
    let input = json!({ "name": "Arnav", "template": "Hello, my name is {}." });
    assert_eq!(
        ok("States.Format($.template, $.name)", input),
        json!("Hello, my name is Arnav.")
    );
}

#[test]
fn format_writes_numbers_booleans_and_null_naturally() {
    let input = json!({ "name": "Foo", "zebra": "stripe" });
    assert_eq!(
        ok(
            "States.Format('Your name is {}, we are in the year {}', $.name, 2020)",
            input
        ),
        json!("Your name is Foo, we are in the year 2020")
    );
    assert_eq!(
        ok("States.Format('{} {} {}', true, null, -1.5)", json!({})),
        json!("true null -1.5")
    );
}

#[test]
fn format_keeps_escaped_braces_and_quotes_literal() {
    assert_eq!(
        ok(
            r"States.Format('It\'s \{{}\} and \\', $.x)",
            json!({ "x": "in" })
        ),
        json!(r"It's {in} and \")
    );
}

#[test]
fn format_with_too_few_values_is_refused_before_running() {
    let err = check("States.Format('{} and {}', 'one')").unwrap_err();
    assert!(err.contains("2 placeholders"), "{err}");
}

#[test]
fn format_with_a_template_from_the_input_counts_placeholders_at_run_time() {
    let err = failure("States.Format($.t, 1)", json!({ "t": "{} {}" }));
    assert!(err.cause.contains("States.Format"), "{}", err.cause);
}

#[test]
fn format_refuses_to_format_an_object() {
    let err = failure("States.Format('{}', $.o)", json!({ "o": { "a": 1 } }));
    assert!(err.cause.contains("an object"), "{}", err.cause);
}

/// Developer guide, "Intrinsic functions", States.Format: the values are
/// "string, boolean, number, or null"; an object or an array is a
/// `States.IntrinsicFailure`, never a Java-style `{a=1}` / `[1, 2]` text.
#[test]
fn format_refuses_objects_and_arrays_with_an_intrinsic_failure() {
    for v in [json!({ "a": 1 }), json!([1, 2]), json!([]), json!({})] {
        let err = failure("States.Format('x {}', $.v)", json!({ "v": v }));
        assert!(!err.cause.contains("a=1"), "{}", err.cause);
    }
    failure("States.Format('{}', States.Array(1, 2))", json!({}));
}

/// Developer guide, "Intrinsic functions": the characters `' { } \` are
/// escaped with a backslash in string literals; `\\{}` is a backslash
/// followed by a placeholder, `\{}` a literal `{}`.
#[test]
fn string_literal_escapes_follow_the_developer_guide() {
    assert_eq!(ok(r"States.Format('it\'s')", json!({})), json!("it's"));
    assert_eq!(
        ok(r"States.Format('\\{}', $.x)", json!({ "x": 1 })),
        json!(r"\1")
    );
    assert_eq!(ok(r"States.Format('\{\}')", json!({})), json!("{}"));
    assert_eq!(
        ok(r"States.StringSplit('a\'b', '\'')", json!({})),
        json!(["a", "b"])
    );
    assert!(check(r"States.Format('\n')").is_err(), "not an escape");
}

/// A path argument that selects nothing fails the state with
/// `States.Runtime`, the cause naming the whole expression — AWS's recorded
/// text: "The function 'States.Format('{}', States.Format('{}', $.nope))' had
/// the following error: The JsonPath argument for the field '$.nope' could
/// not be found in the input '{"other":1}'".
#[test]
fn a_missing_path_argument_is_a_runtime_error_naming_the_whole_call() {
    let text = "States.Format('{}', States.Format('{}', $.nope))";
    let err = evaluate(text, &json!({ "other": 1 }), &json!({}), &mut counter()).unwrap_err();
    assert_eq!(err.error, "States.Runtime");
    assert_eq!(
        err.cause,
        "The function 'States.Format('{}', States.Format('{}', $.nope))' had the following error: \
         The JsonPath argument for the field '$.nope' could not be found in the input '{\"other\":1}'"
    );
    // Present but null is a value, not a miss.
    assert_eq!(
        ok("States.Format('{}', $.n)", json!({ "n": null })),
        json!("null")
    );
}

// --- JSON --------------------------------------------------------------------

#[test]
fn string_to_json_parses_an_escaped_json_string() {
    let input = json!({ "escapedJsonString": "{\"foo\": \"bar\"}" });
    assert_eq!(
        ok("States.StringToJson($.escapedJsonString)", input),
        json!({ "foo": "bar" })
    );
    let input = json!({ "someString": "{\"number\": 20}", "zebra": "stripe" });
    assert_eq!(
        ok("States.StringToJson($.someString)", input),
        json!({ "number": 20 })
    );
}

#[test]
fn string_to_json_of_invalid_json_fails() {
    let err = failure("States.StringToJson($.s)", json!({ "s": "{not json" }));
    assert!(err.cause.contains("not valid JSON"), "{}", err.cause);
    failure("States.StringToJson($.n)", json!({ "n": 5 }));
}

/// An empty or blank string is not JSON: AWS fails `States.StringToJson`
/// of it (`States.IntrinsicFailure`) instead of returning null.
#[test]
fn string_to_json_of_an_empty_or_blank_string_fails() {
    for s in ["", " ", "\n\t "] {
        failure("States.StringToJson($.s)", json!({ "s": s }));
    }
    failure("States.StringToJson('')", json!({}));
}

#[test]
fn json_to_string_serializes_the_selected_data() {
    let input = json!({ "someJson": { "name": "Foo", "year": 2020 }, "zebra": "stripe" });
    assert_eq!(
        ok("States.JsonToString($.someJson)", input),
        json!("{\"name\":\"Foo\",\"year\":2020}")
    );
    let input = json!({ "unescapedJson": { "foo": "bar" } });
    assert_eq!(
        ok("States.JsonToString($.unescapedJson)", input),
        json!("{\"foo\":\"bar\"}")
    );
}

#[test]
fn json_merge_is_shallow_and_the_second_object_wins() {
    let input = json!({
        "json1": { "a": { "a1": 1, "a2": 2 }, "b": 2 },
        "json2": { "a": { "a3": 1, "a4": 2 }, "c": 3 }
    });
    assert_eq!(
        ok("States.JsonMerge($.json1, $.json2, false)", input),
        json!({ "a": { "a3": 1, "a4": 2 }, "b": 2, "c": 3 })
    );
}

#[test]
fn json_merge_refuses_deep_merging_and_non_objects() {
    assert!(check("States.JsonMerge($.a, $.b, true)").is_err());
    let err = failure(
        "States.JsonMerge($.a, $.b, $.deep)",
        json!({ "a": {}, "b": {}, "deep": true }),
    );
    assert!(err.cause.contains("shallow"), "{}", err.cause);
    failure(
        "States.JsonMerge($.a, $.b, false)",
        json!({ "a": [], "b": {} }),
    );
}

// --- Arrays ------------------------------------------------------------------

#[test]
fn array_collects_its_arguments() {
    assert_eq!(
        ok("States.Array($.Id)", json!({ "Id": 123456 })),
        json!([123456])
    );
    let input = json!({ "someJson": { "random": "abcdefg" }, "zebra": "stripe" });
    assert_eq!(
        ok("States.Array('Foo', 2020, $.someJson, null)", input),
        json!(["Foo", 2020, { "random": "abcdefg" }, null])
    );
    assert_eq!(ok("States.Array()", json!({})), json!([]));
}

#[test]
fn array_in_a_template_builds_the_build_id_field() {
    let out = render(
        &json!({ "BuildId.$": "States.Array($.Id)" }),
        &json!({ "Id": 123456 }),
        &json!({}),
        &mut counter(),
    )
    .unwrap();
    assert_eq!(out, json!({ "BuildId": [123456] }));
}

#[test]
fn array_partition_chunks_an_array() {
    let input = json!({ "inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9] });
    assert_eq!(
        ok("States.ArrayPartition($.inputArray,4)", input),
        json!([[1, 2, 3, 4], [5, 6, 7, 8], [9]])
    );
}

#[test]
fn array_partition_needs_a_positive_chunk_size() {
    assert!(check("States.ArrayPartition($.a, 0)").is_err());
    assert!(check("States.ArrayPartition('abc', 2)").is_err());
    let err = failure(
        "States.ArrayPartition($.a, $.size)",
        json!({ "a": [1], "size": -1 }),
    );
    assert!(err.cause.contains("positive"), "{}", err.cause);
}

#[test]
fn array_contains_finds_a_value() {
    let input = json!({ "inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9], "lookingFor": 5 });
    assert_eq!(
        ok("States.ArrayContains($.inputArray, $.lookingFor)", input),
        json!(true)
    );
    let input = json!({ "inputArray": [1, 2, { "id": "b" }] });
    assert_eq!(
        ok("States.ArrayContains($.inputArray, 'b')", input.clone()),
        json!(false)
    );
    assert_eq!(
        ok(
            r#"States.ArrayContains($.inputArray, States.StringToJson('{"id":"b"}'))"#,
            input
        ),
        json!(true)
    );
}

#[test]
fn array_range_counts_from_start_to_end_by_step() {
    assert_eq!(
        ok("States.ArrayRange(1, 9, 2)", json!({})),
        json!([1, 3, 5, 7, 9])
    );
    assert_eq!(
        ok("States.ArrayRange(5, 1, -2)", json!({})),
        json!([5, 3, 1])
    );
    assert_eq!(ok("States.ArrayRange(1, 5, -1)", json!({})), json!([]));
}

#[test]
fn array_range_is_limited_to_a_thousand_items_and_a_non_zero_step() {
    assert_eq!(
        ok(
            "States.ArrayLength(States.ArrayRange(1, 1000, 1))",
            json!({})
        ),
        json!(1000)
    );
    let err = failure("States.ArrayRange(1, 1001, 1)", json!({}));
    assert!(err.cause.contains("1000"), "{}", err.cause);
    assert!(check("States.ArrayRange(1, 9, 0)").is_err());
    failure("States.ArrayRange(1, 9, $.step)", json!({ "step": 0 }));
}

#[test]
fn array_get_item_returns_the_item_at_an_index() {
    let input = json!({ "inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9], "index": 5 });
    assert_eq!(
        ok("States.ArrayGetItem($.inputArray, $.index)", input),
        json!(6)
    );
}

#[test]
fn array_get_item_outside_the_array_fails() {
    let err = failure("States.ArrayGetItem($.a, 3)", json!({ "a": [1, 2, 3] }));
    assert!(err.cause.contains("outside"), "{}", err.cause);
    assert!(check("States.ArrayGetItem($.a, -1)").is_err());
}

#[test]
fn array_length_counts_the_items() {
    let input = json!({ "inputArray": [1, 2, 3, 4, 5, 6, 7, 8, 9] });
    assert_eq!(ok("States.ArrayLength($.inputArray)", input), json!(9));
    failure("States.ArrayLength($.s)", json!({ "s": "abc" }));
}

#[test]
fn array_unique_removes_duplicates_keeping_first_occurrences() {
    let input = json!({ "inputArray": [1, 2, 3, 3, 3, 3, 3, 3, 4] });
    assert_eq!(
        ok("States.ArrayUnique($.inputArray)", input),
        json!([1, 2, 3, 4])
    );
    let input = json!({ "mixed": [{ "a": 1 }, "x", { "a": 1 }, 1, "x", [1], [1]] });
    assert_eq!(
        ok("States.ArrayUnique($.mixed)", input),
        json!([{ "a": 1 }, "x", 1, [1]])
    );
}

// --- Encoding and hashing ----------------------------------------------------

#[test]
fn base64_encode_encodes_a_string() {
    assert_eq!(
        ok(
            "States.Base64Encode($.input)",
            json!({ "input": "Data to encode" })
        ),
        json!("RGF0YSB0byBlbmNvZGU=")
    );
}

#[test]
fn base64_decode_decodes_a_string() {
    // The documentation prints "Decoded data" as the result, but the
    // example's input is the encoding of "Data to encode".
    assert_eq!(
        ok(
            "States.Base64Decode($.base64)",
            json!({ "base64": "RGF0YSB0byBlbmNvZGU=" })
        ),
        json!("Data to encode")
    );
    assert_eq!(
        ok("States.Base64Decode('RGF0YSB0byBlbmNvZGU')", json!({})),
        json!("Data to encode"),
        "missing padding is accepted"
    );
}

#[test]
fn base64_refuses_long_strings_and_invalid_input() {
    let long = "x".repeat(10_001);
    let err = failure("States.Base64Encode($.s)", json!({ "s": long }));
    assert!(err.cause.contains("10000"), "{}", err.cause);
    failure("States.Base64Decode('not base64!')", json!({}));
    assert!(check("States.Base64Encode(42)").is_err());
}

#[test]
fn hash_computes_the_digest_with_the_named_algorithm() {
    // The documentation's digest drops a digit ("…d18d7485e8…"); this is
    // the SHA-1 of "input data".
    let input = json!({ "Data": "input data", "Algorithm": "SHA-1" });
    assert_eq!(
        ok("States.Hash($.Data, $.Algorithm)", input),
        json!("aaff4a450a104cd177d28d18d74485e8cae074b7")
    );
}

#[test]
fn hash_supports_md5_and_the_sha_family() {
    let cases = [
        ("MD5", "900150983cd24fb0d6963f7d28e17f72"),
        ("SHA-1", "a9993e364706816aba3e25717850c26c9cd0d89d"),
        (
            "SHA-256",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        (
            "SHA-384",
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
        ),
        (
            "SHA-512",
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        ),
    ];
    for (algorithm, digest) in cases {
        assert_eq!(
            ok(&format!("States.Hash('abc', '{algorithm}')"), json!({})),
            json!(digest),
            "{algorithm}"
        );
    }
}

#[test]
fn hash_with_an_unknown_algorithm_fails() {
    assert!(check("States.Hash('abc', 'SHA-3')").is_err());
    let err = failure("States.Hash('abc', $.alg)", json!({ "alg": "CRC32" }));
    assert!(err.cause.contains("CRC32"), "{}", err.cause);
}

// --- Math --------------------------------------------------------------------

#[test]
fn math_random_returns_a_number_between_start_and_end() {
    let input = json!({ "start": 1, "end": 999 });
    for seed in 0..50u64 {
        let mut random = move || seed.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let v = evaluate(
            "States.MathRandom($.start, $.end)",
            &input,
            &json!({}),
            &mut random,
        )
        .unwrap();
        let v = v.as_i64().unwrap();
        assert!((1..=999).contains(&v), "{v}");
    }
}

#[test]
fn math_random_with_a_seed_returns_the_same_number_every_time() {
    let a = evaluate(
        "States.MathRandom(1, 999, 7)",
        &json!({}),
        &json!({}),
        &mut || 1,
    )
    .unwrap();
    let b = evaluate(
        "States.MathRandom(1, 999, 7)",
        &json!({}),
        &json!({}),
        &mut || 2,
    )
    .unwrap();
    assert_eq!(a, b);
}

#[test]
fn math_random_with_start_after_end_fails() {
    failure("States.MathRandom(10, 1)", json!({}));
    assert!(check("States.MathRandom('a', 1)").is_err());
}

#[test]
fn math_add_adds_two_integers() {
    let input = json!({ "value1": 111, "step": -1 });
    assert_eq!(ok("States.MathAdd($.value1, $.step)", input), json!(110));
    assert_eq!(ok("States.MathAdd(1.6, 1)", json!({})), json!(3), "rounded");
    failure("States.MathAdd($.s, 1)", json!({ "s": "1" }));
}

/// AWS's recorded results for non-integers: `States.MathAdd(-1.5, 0)` is
/// -1 and `States.MathAdd(-0.5, 0.5)` is 1, although the developer guide
/// ("Intrinsic functions", States.MathAdd) says the arguments must be
/// integers. Each operand is rounded on its own, halves toward positive
/// infinity (Java's `Math.round`, `floor(x + 0.5)`), then added.
#[test]
fn math_add_rounds_each_operand_half_up_as_aws_recorded() {
    let add = |a: Value, b: Value| ok("States.MathAdd($.a, $.b)", json!({ "a": a, "b": b }));
    assert_eq!(add(json!(-1.5), json!(0)), json!(-1), "recorded by AWS");
    assert_eq!(add(json!(-0.5), json!(0.5)), json!(1), "recorded by AWS");
    assert_eq!(add(json!(0.5), json!(0)), json!(1));
    assert_eq!(add(json!(-2.5), json!(-2.5)), json!(-4));
    assert_eq!(add(json!(2.4), json!(-0.6)), json!(1));
    assert_eq!(add(json!(1.5), json!(1.5)), json!(4));
    assert_eq!(ok("States.MathAdd(-1.5, 0)", json!({})), json!(-1));
}

// --- Strings and UUIDs -------------------------------------------------------

#[test]
fn string_split_divides_a_string_at_the_delimiter() {
    let input = json!({ "inputString": "1,2,3,4,5", "splitter": "," });
    assert_eq!(
        ok("States.StringSplit($.inputString, $.splitter)", input),
        json!(["1", "2", "3", "4", "5"])
    );
}

#[test]
fn string_split_splits_at_every_delimiter_character_and_drops_empty_pieces() {
    let input = json!({ "inputString": "This.is+a,test=string", "splitter": ".+,=" });
    assert_eq!(
        ok("States.StringSplit($.inputString, $.splitter)", input),
        json!(["This", "is", "a", "test", "string"])
    );
    assert_eq!(
        ok("States.StringSplit('a,,b,', ',')", json!({})),
        json!(["a", "b"])
    );
}

#[test]
fn uuid_returns_a_version_4_uuid_drawn_from_the_given_randomness() {
    let v = ok("States.UUID()", json!({}));
    let s = v.as_str().unwrap();
    let groups: Vec<&str> = s.split('-').collect();
    assert_eq!(
        groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12]
    );
    assert!(s
        .chars()
        .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_eq!(&groups[2][..1], "4", "version 4");
    assert!("89ab".contains(&groups[3][..1]), "RFC 4122 variant");
    assert_eq!(
        ok("States.UUID()", json!({})),
        v,
        "same randomness, same UUID"
    );
}

// --- Nesting and syntax ------------------------------------------------------

#[test]
fn calls_nest_as_in_the_documented_arn_example() {
    let input = json!({
        "ImageRecipe": { "Arn": "arn:aws:imagebuilder:us-east-1:123456789012:image-recipe/my-recipe/1.2.3" }
    });
    let get = |i: usize| {
        format!(
            "States.ArrayGetItem(States.StringSplit(States.ArrayGetItem(States.StringSplit($.ImageRecipe.Arn, '/'), 2), '.'), {i})"
        )
    };
    // The documented field has three placeholders for two values, which the
    // static check catches.
    let documented = format!("States.Format('{{}}.{{}}.{{}}', {}, {})", get(0), get(1));
    assert!(check(&documented).is_err());
    let fixed = format!("States.Format('{{}}.{{}}', {}, {})", get(0), get(1));
    assert_eq!(ok(&fixed, input), json!("1.2"));
}

#[test]
fn at_most_ten_calls_may_nest() {
    let nest = |n: usize| {
        let mut text = "$.a".to_string();
        for _ in 0..n {
            text = format!("States.Array({text})");
        }
        text
    };
    assert_eq!(check(&nest(10)), Ok(()));
    assert!(check(&nest(11)).unwrap_err().contains("nested"));
}

#[test]
fn arguments_may_be_context_paths_and_the_whole_input() {
    let ctx = json!({ "Execution": { "Name": "run-1" } });
    let v = evaluate(
        "States.Array($$.Execution.Name, $, $.list[1])",
        &json!({ "list": [1, 2] }),
        &ctx,
        &mut counter(),
    )
    .unwrap();
    assert_eq!(v, json!(["run-1", { "list": [1, 2] }, 2]));
}

#[test]
fn a_path_argument_that_matches_nothing_is_a_runtime_error() {
    let err = evaluate(
        "States.Array($.missing)",
        &json!({}),
        &json!({}),
        &mut counter(),
    )
    .unwrap_err();
    assert_eq!(err.error, "States.Runtime");
    assert!(err.cause.contains("$.missing"), "{}", err.cause);
}

#[test]
fn is_call_tells_intrinsics_from_paths() {
    assert!(is_call("States.Array(1)"));
    assert!(!is_call("$.States"));
}

#[test]
fn the_static_check_rejects_malformed_calls() {
    for bad in [
        "States.Nope()",
        "States.Array(",
        "States.Array(1,)",
        "States.Array(1) trailing",
        "States.Array('unclosed)",
        r"States.Array('bad \n escape')",
        "States.Array(\"double quotes\")",
        "States.Array(undefined)",
        "States.UUID(1)",
        "States.ArrayLength()",
        "States.MathRandom(1, 2, 3, 4)",
        "States.Array($.a[)",
        "Array(1)",
    ] {
        assert!(check(bad).is_err(), "{bad:?} should be rejected");
    }
}

#[test]
fn evaluating_a_malformed_call_is_an_intrinsic_failure_not_a_panic() {
    failure("States.Format(", json!({}));
    failure("States.Unknown(1)", json!({}));
}

#[test]
fn whitespace_between_arguments_is_allowed() {
    assert_eq!(
        ok("States.Array( 1 ,'a' ,  $.b )", json!({ "b": true })),
        json!([1, "a", true])
    );
}

#[test]
fn paths_with_brackets_and_filters_are_single_arguments() {
    let input = json!({ "items": [{ "p": 5, "n": "a, b" }, { "p": 20, "n": "c" }] });
    assert_eq!(
        ok("States.ArrayLength($.items[?(@.p < 10)])", input.clone()),
        json!(1)
    );
    assert_eq!(
        ok("States.Array($.items[0]['n'], 1)", input),
        json!(["a, b", 1])
    );
}

proptest::proptest! {
    #[test]
    fn no_text_makes_the_checker_or_the_evaluator_panic(text in "States\\.[A-Za-z]{0,12}\\(([-$.'\\\\{}(),\\[\\]?@*:a-z0-9 ]){0,40}") {
        let _ = check(&text);
        let _ = evaluate(&text, &json!({ "a": [1, 2], "b": "x" }), &json!({}), &mut counter());
    }
}
