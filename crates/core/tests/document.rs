//! Reading definition text: JSON as JSON, YAML as YAML, both strictly (no
//! duplicate key, at most `MAX_NESTING` levels) and in bounded time, however
//! hostile the text.

use std::time::{Duration, Instant};

use sagaflow_core::document::{parse, parse_json_only, parse_stored, yaml_nesting, MAX_NESTING};
use sagaflow_core::{Error, Violation};
use serde_json::{json, Value};

/// A generous bound: a refusal costs milliseconds; the defect took seconds.
const QUICK: Duration = Duration::from_secs(2);

#[track_caller]
fn refused(source: &str) -> Violation {
    match parse(source) {
        Err(Error::InvalidDefinition(mut v)) => {
            assert_eq!(v.len(), 1, "{v:#?}");
            v.remove(0)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[track_caller]
fn refused_quickly(source: &str) -> Violation {
    let started = Instant::now();
    let v = refused(source);
    assert!(
        started.elapsed() < QUICK,
        "refusing took {:?}",
        started.elapsed()
    );
    v
}

fn nested_flow(levels: usize) -> String {
    format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
}

fn nested_block(levels: usize) -> String {
    let mut s = String::new();
    for i in 0..levels {
        s.push_str(&"  ".repeat(i));
        s.push_str("a:\n");
    }
    s.push_str(&"  ".repeat(levels));
    s.push_str("b: 1\n");
    s
}

#[test]
fn a_megabyte_of_json_brackets_is_refused_in_milliseconds_naming_the_limit() {
    let v = refused_quickly(&nested_flow(500_000));
    assert_eq!(v.code, "nesting_too_deep");
    assert!(v.message.contains(&MAX_NESTING.to_string()), "{v:?}");
}

#[test]
fn a_megabyte_of_yaml_flow_nesting_is_refused_in_milliseconds() {
    for source in [
        format!("name: x\nsteps: {}", nested_flow(500_000)),
        format!("# YAML\n{}", "{a: ".repeat(250_000)),
        format!("- {}", "[".repeat(1_000_000)),
    ] {
        assert_eq!(refused_quickly(&source).code, "nesting_too_deep");
    }
}

#[test]
fn a_megabyte_of_yaml_block_nesting_is_refused_in_milliseconds() {
    for source in [
        format!("{}a", "- ".repeat(500_000)),
        format!("{}a", "? ".repeat(500_000)),
        nested_block(1_000),
    ] {
        assert_eq!(refused_quickly(&source).code, "nesting_too_deep");
    }
}

#[test]
fn nesting_up_to_the_limit_is_accepted_and_one_more_level_is_refused() {
    for (text, levels) in [
        (nested_flow(MAX_NESTING), MAX_NESTING),
        (nested_block(MAX_NESTING - 1), MAX_NESTING),
    ] {
        assert!(parse(&text).is_ok(), "{levels} levels must be accepted");
    }
    assert_eq!(
        refused(&nested_flow(MAX_NESTING + 1)).code,
        "nesting_too_deep"
    );
    assert_eq!(
        refused(&format!("a: {}", nested_flow(MAX_NESTING))).code,
        "nesting_too_deep"
    );
    assert_eq!(refused(&nested_block(MAX_NESTING)).code, "nesting_too_deep");
}

#[test]
fn brackets_inside_strings_comments_and_block_scalars_do_not_count() {
    // Unbalanced, but fewer than the quote-blind guard's four times the limit.
    let many = "[".repeat(3 * MAX_NESTING);
    for source in [
        format!("{{\"a\": \"{many}\"}}"),
        format!("a: '{many}'\n"),
        format!("a: \"{many}\"\n"),
        format!("a: x{many}\n"),
        format!("# {many}\na: 1\n"),
        format!("a: |\n  {many}\n  x\nb: 1\n"),
    ] {
        assert!(parse(&source).is_ok(), "{source:.80}");
    }
}

#[test]
fn brackets_hidden_from_a_naive_scan_are_still_counted() {
    let levels = 2_000;
    // Closers in strings that would balance a quote-blind count.
    let balanced = format!("a: {}", "[ \"]\", ".repeat(levels));
    // A quote libyaml takes as part of a plain scalar that runs on over a line break.
    let continued = format!("a: [x\n'{}", "[".repeat(levels));
    // A comment that a line separator ends.
    let separated = format!("a: 1 # c\u{2028}b: {}", "[".repeat(levels));
    for source in [balanced, continued, separated] {
        assert_eq!(
            refused_quickly(&source).code,
            "nesting_too_deep",
            "{source:.40}"
        );
    }
}

#[test]
fn the_nesting_scan_reports_the_line_and_column_past_the_limit() {
    let text = format!("a: 1\nb: {}", "[".repeat(MAX_NESTING + 5));
    let (depth, line, column) = yaml_nesting(&text, MAX_NESTING).unwrap_err();
    // The document's mapping is the first level: the 100th bracket is the 101st.
    assert_eq!((depth, line), (MAX_NESTING + 1, 2));
    assert_eq!(column, "b: ".len() + MAX_NESTING);
}

#[test]
fn every_example_definition_reads_as_it_did_with_the_plain_yaml_parser() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let mut seen = 0;
    let mut dirs = vec![std::path::PathBuf::from(root)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            // An example's installed packages (examples/durable-node's
            // node_modules after `npm ci`) are not its definitions.
            if path.is_dir() {
                if !path.ends_with("node_modules") {
                    dirs.push(path);
                }
                continue;
            }
            let definition = path
                .extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json");
            if !definition {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let Ok(plain) = serde_yaml::from_str::<Value>(&text) else {
                continue;
            };
            // JSON numbers keep their digits (`150.00`), YAML's are floats
            // (`150.0`): the same values, compared as numbers.
            assert_eq!(
                numbers_as_floats(parse(&text).unwrap()),
                numbers_as_floats(plain),
                "{}",
                path.display()
            );
            seen += 1;
        }
    }
    assert!(seen >= 5, "only {seen} examples read");
}

#[test]
fn a_key_given_twice_in_asl_json_is_refused_with_its_json_pointer() {
    let source = r#"{"StartAt": "A", "States": {
        "A": {"Type": "Pass", "End": true},
        "A": {"Type": "Succeed"}}}"#;
    let v = refused(source);
    assert_eq!(
        (v.code.as_str(), v.location.as_str()),
        ("duplicate_key", "/States/A")
    );
    assert!(v.message.contains("line 3"), "{v:?}");
    let nested = r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": {"x": 1, "x": 2}, "End": true}}}"#;
    assert_eq!(refused(nested).location, "/States/A/Result/x");
}

#[test]
fn a_key_given_twice_in_a_yaml_or_json_saga_is_refused_with_its_path() {
    let yaml = "name: trip\nsteps:\n  - name: a\n    action: {handler: a}\n    name: b\n";
    let v = refused(yaml);
    assert_eq!(
        (v.code.as_str(), v.location.as_str()),
        ("duplicate_key", "steps[0].name")
    );
    assert!(v.message.contains("line "), "{v:?}");
    let json = r#"{"name": "trip", "name": "other", "steps": []}"#;
    assert_eq!(refused(json).location, "name");
    assert_eq!(refused("a: 1\nb: 2\na: 3\n").location, "a");
}

#[test]
fn escaped_surrogate_pairs_in_json_are_one_character() {
    let source =
        r#"{"name": "t", "steps": [{"name": "a", "action": {"handler": "\ud83c\udd97 ok"}}]}"#;
    let doc = parse(source).unwrap();
    assert_eq!(doc["steps"][0]["action"]["handler"], json!("\u{1f197} ok"));
    assert_eq!(parse_json_only(source).unwrap(), doc);
}

#[test]
fn a_yaml_flow_document_is_still_yaml_and_bad_json_keeps_the_json_error() {
    assert_eq!(
        parse("{name: x, steps: []}").unwrap(),
        json!({"name": "x", "steps": []})
    );
    let v = refused(r#"{"name": "trip", "steps": [}"#);
    assert_eq!(v.code, "parse_error");
    assert!(v.message.contains("JSON"), "{v:?}");
    assert!(parse_json_only("name: x").is_err());
}

#[test]
fn numbers_keys_and_nulls_read_as_before() {
    let yaml = "a: 1\nb: -2\nc: 1.5\nd: ~\ne: true\n1: x\nf: 18446744073709551615\ng: .inf\n";
    assert_eq!(
        parse(yaml).unwrap(),
        serde_yaml::from_str::<Value>(yaml).unwrap()
    );
    let json = r#"{"a": 1, "b": -2, "c": 1.5, "d": null, "e": [true, {}], "f": 1e400}"#;
    assert!(parse(json).is_err() || parse(json).unwrap()["a"] == json!(1));
    let json = r#"{"a": 1, "b": -2, "c": 1.5, "d": null, "e": [true, {}]}"#;
    assert_eq!(
        parse(json).unwrap(),
        serde_json::from_str::<Value>(json).unwrap()
    );
}

#[test]
fn a_definition_stored_before_the_strict_reading_still_reads_as_it_did() {
    let twice = r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": {"x": 1, "x": 2}, "End": true}}}"#;
    assert_eq!(
        parse_stored(twice).unwrap()["States"]["A"]["Result"],
        json!({"x": 2})
    );
    // What serde refused before (128 levels) stays refused; less still reads.
    assert!(parse_stored(&nested_flow(127)).is_ok());
    assert!(parse_stored(&format!("a: {}", nested_flow(126))).is_ok());
    assert_eq!(
        match parse_stored(&nested_flow(500_000)) {
            Err(Error::InvalidDefinition(v)) => v[0].code.clone(),
            other => panic!("{other:?}"),
        },
        "nesting_too_deep"
    );
}

/// `v` with every number as the nearest float, so numbers that differ only
/// in how their digits were written compare equal.
fn numbers_as_floats(v: Value) -> Value {
    match v {
        Value::Number(n) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::Number(n)),
        Value::Array(items) => Value::Array(items.into_iter().map(numbers_as_floats).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, numbers_as_floats(v)))
                .collect(),
        ),
        other => other,
    }
}

/// A definition's identity must not depend on the order of its keys (the
/// workspace's serde_json keeps objects in insertion order since the JSONata
/// engine turned `preserve_order` on), and must stay what earlier releases
/// computed with sorted maps: the SHA-256 of the compact JSON with every
/// object's keys sorted. Otherwise every unchanged definition deployed again
/// would become a new version.
#[test]
fn the_digest_is_of_the_sorted_compact_json_whatever_the_key_order() {
    use sagaflow_core::document::{canonical_json, digest};
    let written = parse(r#"{"z": null, "b": [{"d": "é", "c": 1}], "a": 2}"#).unwrap();
    let sorted = parse(r#"{"a": 2, "b": [{"c": 1, "d": "é"}], "z": null}"#).unwrap();
    assert_eq!(
        canonical_json(&written),
        r#"{"a":2,"b":[{"c":1,"d":"é"}],"z":null}"#
    );
    // sha256 of the text above, as the releases before preserve_order computed it.
    let pinned = "d0d0e4a5ad54527c404c12f55be86fbe128c86226a9c7c409aa3f8b99dcd47dd";
    assert_eq!(digest(&written), pinned);
    assert_eq!(digest(&sorted), pinned);
}
