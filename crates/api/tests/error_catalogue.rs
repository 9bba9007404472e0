//! `docs/errors.md` has one entry for every error code the APIs can answer
//! with, and no entry for a code that no longer exists.
//!
//! The codes are found in the source, not in a list kept by hand: the `.rs`
//! files of the core, store, runtime and API crates are scanned for the
//! shapes the code writes them in (see [`scan`]). Each shape must find
//! something and the whole scan a sane number, so that a shape the code
//! stops using fails here instead of silently finding nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates whose errors reach a client (the CLI and the travel services
/// are clients themselves).
const SCANNED: &[&str] = &[
    "crates/core/src",
    "crates/store/src",
    "crates/runtime/src",
    "crates/api/src",
];

/// Fewer codes than this means a shape broke (there were 100 when this
/// test was written).
const AT_LEAST: usize = 90;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn catalogue() -> String {
    std::fs::read_to_string(root().join("docs/errors.md")).expect("docs/errors.md is readable")
}

/// A code found in the source: by which shape, and where.
#[derive(Debug, Clone)]
struct Found {
    shape: &'static str,
    file: String,
}

/// Every code of the scanned crates, with where it was first found.
fn scan() -> BTreeMap<String, Found> {
    let mut found = BTreeMap::new();
    for dir in SCANNED {
        for file in rust_files(&root().join(dir)) {
            let text = std::fs::read_to_string(&file).expect("a source file is readable");
            let name = file
                .strip_prefix(root())
                .unwrap_or(&file)
                .display()
                .to_string();
            for (shape, code) in codes_in(without_unit_tests(&text)) {
                found.entry(code).or_insert(Found {
                    shape,
                    file: name.clone(),
                });
            }
        }
    }
    found
}

/// The shapes a code is written in, each as `(shape, code)` pairs.
///
/// - `code field`: `code: "past_pivot"` (core `Error::NotAllowed`,
///   `Violation` literals) and `"code": "storage_unavailable"` (a JSON body);
/// - `fn code`: the `=> "execution_not_found"` arms of a `fn code(` body;
/// - `violation`: the first argument of the validators' `.err("wrong_type", …)`
///   and `.refuse("duplicate_key", …)`, and `problems.push(("invalid_reference", …))`;
/// - `let code`: every snake_case literal of a `let` statement that binds `code`
///   (`let code = if … { "malformed_json" } else { "invalid_request" };`);
/// - `ApiError`: the literal among the first two arguments of
///   `ApiError::new(status, "route_not_found", …)` and `ApiError::bad_request(…)`;
/// - `AwsError`: the first argument of `AwsError::new("InvalidArn", …)` and
///   `Self::new(…)` in the Step Functions API.
fn codes_in(text: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for needle in ["code:", "\"code\":"] {
        for at in occurrences(text, needle) {
            if needle == "code:" && at > 0 && is_ident(text.as_bytes()[at - 1]) {
                continue;
            }
            if let Some(lit) = literal_at(text, at + needle.len()) {
                out.push(("code field", lit));
            }
        }
    }
    for at in occurrences(text, "fn code(") {
        let Some(body) = braced_after(text, at) else {
            continue;
        };
        for arm in occurrences(body, "=>") {
            if let Some(lit) = literal_at(body, arm + 2) {
                out.push(("fn code", lit));
            }
        }
    }
    for needle in [".err(", ".refuse(", "problems.push(("] {
        for at in occurrences(text, needle) {
            if let Some(lit) = literal_at(text, at + needle.len()) {
                out.push(("violation", lit));
            }
        }
    }
    for at in occurrences(text, "let ") {
        if at > 0 && is_ident(text.as_bytes()[at - 1]) {
            continue;
        }
        let Some(eq) = text[at..].find('=').map(|i| at + i) else {
            continue;
        };
        let binds_code = text[at + 4..eq]
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .any(|w| w == "code");
        if !binds_code {
            continue;
        }
        let end = text[eq..].find(';').map_or(text.len(), |i| eq + i);
        // Only the code-shaped ones: the statement may test other strings
        // (`p.starts_with("$$")`).
        for lit in literals(&text[eq..end])
            .into_iter()
            .filter(|l| is_snake_code(l))
        {
            out.push(("let code", lit));
        }
    }
    // `Self::new(` builds an `AwsError` (or a `LambdaError`) only in the
    // file that defines it.
    let aws = text.contains("pub struct AwsError");
    let lambda = text.contains("pub(crate) struct LambdaError");
    for (needle, shape) in [
        ("ApiError::new(", "ApiError"),
        ("ApiError::bad_request(", "ApiError"),
        ("AwsError::new(", "AwsError"),
        ("Self::new(", "AwsError"),
        ("LambdaError::new(", "LambdaError"),
        ("Self::new(", "LambdaError"),
    ] {
        if needle == "Self::new("
            && !(aws && shape == "AwsError" || lambda && shape == "LambdaError")
        {
            continue;
        }
        for at in occurrences(text, needle) {
            let args = arguments(text, at + needle.len());
            // ApiError and LambdaError take the status first.
            let first_two = args.iter().take(if shape == "AwsError" { 1 } else { 2 });
            if let Some(lit) = first_two.filter_map(|a| literal_at(a, 0)).next() {
                out.push((shape, lit));
            }
        }
    }
    out
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_aws_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase()) && s.chars().all(|c| c.is_ascii_alphanumeric())
}

fn is_snake_code(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn occurrences<'a>(text: &'a str, needle: &'a str) -> impl Iterator<Item = usize> + 'a {
    text.match_indices(needle).map(|(i, _)| i)
}

/// The string literal starting at `at` after whitespace, if there is one.
fn literal_at(text: &str, at: usize) -> Option<String> {
    let rest = text[at..].trim_start();
    let rest = rest.strip_prefix('"')?;
    let end = rest.find('"')?;
    Some(rest[..end].to_string())
}

/// Every string literal in `text` (codes contain no escapes).
fn literals(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The text between the first `{` after `at` and its matching `}`.
fn braced_after(text: &str, at: usize) -> Option<&str> {
    let open = at + text[at..].find('{')?;
    let mut depth = 0;
    for (i, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&text[open + 1..open + i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// The top-level arguments of a call whose `(` ends just before `at`.
fn arguments(text: &str, at: usize) -> Vec<&str> {
    let mut args = Vec::new();
    let (mut depth, mut start, mut in_str) = (0usize, at, false);
    for (i, c) in text[at..].char_indices() {
        let i = at + i;
        match c {
            '"' => in_str = !in_str,
            _ if in_str => {}
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth == 0 => {
                args.push(&text[start..i]);
                break;
            }
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                args.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    args
}

/// A file's text without its `#[cfg(test)]` module (its last item by this
/// project's convention): a test's literals are not codes.
fn without_unit_tests(text: &str) -> &str {
    text.find("\n#[cfg(test)]\nmod tests")
        .map_or(text, |i| &text[..i])
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).expect("a source directory is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The codes the catalogue has an entry for, with how many entries each:
/// the first cell of a table row, or a heading, written as `` `code` ``.
fn entries(markdown: &str) -> BTreeMap<String, usize> {
    let mut entries = BTreeMap::new();
    for line in markdown.lines() {
        let cell = if let Some(row) = line.strip_prefix('|') {
            row.split('|').next().unwrap_or("").trim()
        } else if line.starts_with('#') {
            line.trim_start_matches('#').trim()
        } else {
            continue;
        };
        if let Some(code) = cell.strip_prefix('`').and_then(|c| c.strip_suffix('`')) {
            *entries.entry(code.to_string()).or_insert(0) += 1;
        }
    }
    entries
}

/// What is wrong with a catalogue against the codes found: one line each.
fn problems(found: &BTreeMap<String, Found>, markdown: &str) -> Vec<String> {
    let entries = entries(markdown);
    let mut problems = Vec::new();
    for (code, at) in found {
        if !entries.contains_key(code) {
            problems.push(format!(
                "`{code}` ({}, {}) has no entry in docs/errors.md: add a row with its HTTP status, meaning and what to do",
                at.shape, at.file
            ));
        }
    }
    for (code, n) in &entries {
        if !found.contains_key(code) {
            problems.push(format!(
                "docs/errors.md has an entry for `{code}`, which the source no longer has (or writes in a shape this test does not know: teach `codes_in` it)"
            ));
        }
        if *n > 1 {
            problems.push(format!("docs/errors.md has {n} entries for `{code}`"));
        }
    }
    problems
}

#[test]
fn every_error_code_in_the_source_has_exactly_one_entry_in_the_catalogue() {
    let found = scan();
    let problems = problems(&found, &catalogue());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_scan_finds_codes_of_every_shape_and_every_kind() {
    let found = scan();
    assert!(
        found.len() >= AT_LEAST,
        "the scan found only {} codes (at least {AT_LEAST} expected): a shape in `codes_in` no longer matches the code\n{:?}",
        found.len(),
        found.keys().collect::<Vec<_>>()
    );
    let shapes: BTreeSet<_> = found.values().map(|f| f.shape).collect();
    for shape in [
        "code field",
        "fn code",
        "violation",
        "let code",
        "ApiError",
        "AwsError",
    ] {
        assert!(
            shapes.contains(shape),
            "no code found by the shape `{shape}`"
        );
    }
    // One of each source: the core's refusals, the runtime's errors, the
    // validators of both formats, the document reader, the API's own codes
    // and the Step Functions API's names.
    for code in [
        "past_pivot",
        "history_unreplayable",
        "storage_unavailable",
        "wrong_type",
        "unknown_variable",
        "duplicate_key",
        "invalid_reference_path",
        "payload_too_large",
        "malformed_json",
        "ExecutionDoesNotExist",
        "InvalidDefinition",
    ] {
        assert!(found.contains_key(code), "the scan misses `{code}`");
    }
    for (code, at) in &found {
        assert!(
            is_snake_code(code) || is_aws_name(code),
            "`{code}` ({}, {}) is neither a snake_case code nor an AWS error name",
            at.shape,
            at.file
        );
    }
}

#[test]
fn a_catalogue_without_an_entry_is_reported() {
    let found = scan();
    let full = catalogue();
    let without: String = full
        .lines()
        .filter(|l| !l.starts_with("| `history_unreplayable` |"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(
        without, full,
        "the catalogue has a row for `history_unreplayable`"
    );
    let problems = problems(&found, &without);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("`history_unreplayable`"),
        "{problems:?}"
    );
}

#[test]
fn the_wrong_json_type_has_one_code_in_both_formats() {
    let found = scan();
    assert!(found.contains_key("wrong_type"));
    assert!(
        !found.contains_key("invalid_type"),
        "one code for a field of the wrong JSON type: `wrong_type`"
    );
}
