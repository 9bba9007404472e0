//! Reading the JSONata test suite (jsonata-js `test/test-suite`, described in its
//! TESTSUITE.md) and judging an engine's answer against a case's expectation.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// What a case expects.
#[derive(Debug, Clone)]
pub enum Expect {
    /// `result`: this JSON value.
    Result(Value),
    /// `undefinedResult: true`: JSONata's *undefined* (no value at all).
    Undefined,
    /// `code` (or `error.code`): an error with this code.
    Code(String),
}

/// One test case. Files under `groups/<group>/` hold either one case or an
/// array of cases; each array element counts as a case of its own, as in
/// jsonata-js's own runner.
#[derive(Debug, Clone)]
pub struct Case {
    /// `group/caseNNN` or `group/file[i]` for an element of an array file.
    pub id: String,
    pub group: String,
    pub expr: String,
    /// `None` is *undefined* input (`"dataset": null` and no `data`).
    pub input: Option<Value>,
    pub bindings: Map<String, Value>,
    pub expect: Expect,
    /// `unordered: true`: the result array's order does not matter.
    pub unordered: bool,
    /// `timelimit` (ms) and `depth`: the limits jsonata-js's runner puts on
    /// the evaluation (it throws U1001 past either).
    pub timelimit_ms: Option<u64>,
    pub depth: Option<usize>,
}

/// All cases of the suite at `root` (the folder holding `groups/` and
/// `datasets/`), sorted by id so that every run sees the same order.
pub fn load(root: &Path) -> Result<Vec<Case>, String> {
    let mut datasets = BTreeMap::new();
    let ds_dir = root.join("datasets");
    for entry in fs::read_dir(&ds_dir).map_err(|e| format!("{}: {e}", ds_dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        datasets.insert(name, read_json(&path)?);
    }

    let groups_dir = root.join("groups");
    let mut group_dirs: Vec<_> = fs::read_dir(&groups_dir)
        .map_err(|e| format!("{}: {e}", groups_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    group_dirs.sort();

    let mut cases = Vec::new();
    for dir in group_dirs {
        let group = dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut files: Vec<_> = fs::read_dir(&dir)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
            .collect();
        files.sort();
        for file in files {
            let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
            match read_json(&file)? {
                Value::Array(items) => {
                    for (i, item) in items.into_iter().enumerate() {
                        let id = format!("{group}/{stem}[{i}]");
                        cases.push(case(&id, &group, &dir, item, &datasets)?);
                    }
                }
                item => {
                    let id = format!("{group}/{stem}");
                    cases.push(case(&id, &group, &dir, item, &datasets)?);
                }
            }
        }
    }
    cases.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(cases)
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .or_else(|_| serde_json::from_str(&escape_lone_surrogates(&text)))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Two cases (`function-encodeUrl*/case002`) put a lone surrogate (`\uD800`)
/// in their expression, which a Rust string cannot hold. Such an escape is
/// kept as the six characters `\uD800`, so that the expression's own string
/// literal carries the escape and the engine decodes it (or rejects it).
fn escape_lone_surrogates(text: &str) -> String {
    let b = text.as_bytes();
    let hex = |i: usize| -> Option<u32> {
        let s = text.get(i..i + 4)?;
        u32::from_str_radix(s, 16).ok()
    };
    let mut out = String::with_capacity(text.len() + 8);
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'u') {
            if let Some(c) = hex(i + 2) {
                let low_next = b.get(i + 6) == Some(&b'\\')
                    && b.get(i + 7) == Some(&b'u')
                    && hex(i + 8).is_some_and(|d| (0xDC00..0xE000).contains(&d));
                if (0xD800..0xDC00).contains(&c) && low_next {
                    out.push_str(&text[i..i + 12]);
                    i += 12;
                    continue;
                }
                if (0xD800..0xE000).contains(&c) {
                    out.push('\\');
                }
                out.push_str(&text[i..i + 6]);
                i += 6;
                continue;
            }
        }
        if b[i] == b'\\' && i + 1 < b.len() {
            out.push_str(&text[i..i + 2]);
            i += 2;
            continue;
        }
        let ch = text[i..].chars().next().unwrap();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn case(
    id: &str,
    group: &str,
    dir: &Path,
    v: Value,
    datasets: &BTreeMap<String, Value>,
) -> Result<Case, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("{id}: not an object"))?;
    let expr = match (obj.get("expr"), obj.get("expr-file")) {
        (Some(Value::String(e)), _) => e.clone(),
        (_, Some(Value::String(f))) => {
            fs::read_to_string(dir.join(f)).map_err(|e| format!("{id}: expr-file {f}: {e}"))?
        }
        _ => return Err(format!("{id}: no expr")),
    };
    // As jsonata-js's runner: `data` when present (even null), else the named
    // dataset, else (dataset null) undefined.
    let input = if let Some(d) = obj.get("data") {
        Some(d.clone())
    } else {
        match obj.get("dataset") {
            Some(Value::String(name)) => Some(
                datasets
                    .get(name)
                    .cloned()
                    .ok_or_else(|| format!("{id}: no dataset {name}"))?,
            ),
            _ => None,
        }
    };
    let bindings = match obj.get("bindings") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    let expect = if let Some(r) = obj.get("result") {
        Expect::Result(r.clone())
    } else if obj.get("undefinedResult").is_some() {
        Expect::Undefined
    } else if let Some(Value::String(c)) = obj.get("code") {
        Expect::Code(c.clone())
    } else if let Some(Value::String(c)) = obj.get("error").and_then(|e| e.get("code")) {
        Expect::Code(c.clone())
    } else {
        return Err(format!("{id}: no result, undefinedResult, code or error"));
    };
    Ok(Case {
        id: id.to_string(),
        group: group.to_string(),
        expr,
        input,
        bindings,
        expect,
        unordered: obj
            .get("unordered")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        timelimit_ms: obj.get("timelimit").and_then(Value::as_u64),
        depth: obj.get("depth").and_then(Value::as_u64).map(|d| d as usize),
    })
}

/// JSON equality with numbers compared as f64 within a tiny relative
/// tolerance (engines print 0.1+0.2 and friends through different paths).
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-10 * x.abs().max(y.abs()).max(1.0),
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Equality ignoring the order of a top-level array (cases marked `unordered`).
pub fn json_eq_unordered(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            let mut used = vec![false; y.len()];
            x.iter().all(
                |item| match (0..y.len()).find(|&j| !used[j] && json_eq(item, &y[j])) {
                    Some(j) => {
                        used[j] = true;
                        true
                    }
                    None => false,
                },
            )
        }
        _ => json_eq(a, b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lone_surrogates_stay_escaped() {
        let v: Value = serde_json::from_str(&escape_lone_surrogates(
            r#"{"e": "f('\uD800') \ud83d\ude00"}"#,
        ))
        .unwrap();
        assert_eq!(v["e"], json!("f('\\uD800') \u{1F600}"));
    }

    #[test]
    fn numbers_within_tolerance() {
        assert!(json_eq(&json!(0.30000000000000004), &json!(0.3)));
        assert!(json_eq(&json!([1, 2.0]), &json!([1.0, 2])));
        assert!(!json_eq(&json!(1), &json!(1.001)));
        assert!(!json_eq(&json!(null), &json!(0)));
    }

    #[test]
    fn objects_ignore_key_order_arrays_do_not() {
        assert!(json_eq(&json!({"a": 1, "b": 2}), &json!({"b": 2, "a": 1})));
        assert!(!json_eq(&json!([1, 2]), &json!([2, 1])));
        assert!(json_eq_unordered(&json!([1, 2, 2]), &json!([2, 1, 2])));
        assert!(!json_eq_unordered(&json!([1, 1, 2]), &json!([2, 1, 2])));
    }
}
