//! Reference paths used in input templates: `$.input.trip_id`,
//! `$.steps.reserve_hotel.output.booking_id`, `$.execution.id`, `$.input.items[0]`.
//!
//! Hand-written rather than a full JSONPath engine because validation needs to
//! see the structure of every reference (which step it names) before anything
//! runs, and the grammar we accept is deliberately tiny.

use serde_json::Value;

/// One segment of a path: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A parsed reference. `segments` starts after the leading `$`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub text: String,
    pub segments: Vec<Segment>,
}

impl Path {
    /// Parses `$`, `$.a.b`, `$.a[0].b`. Returns a message naming the problem.
    pub fn parse(text: &str) -> Result<Path, String> {
        let rest = text
            .strip_prefix('$')
            .ok_or_else(|| format!("path `{text}` must start with `$`"))?;
        let mut segments = Vec::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '.' => {
                    let mut key = String::new();
                    while let Some(&n) = chars.peek() {
                        if n == '.' || n == '[' {
                            break;
                        }
                        key.push(n);
                        chars.next();
                    }
                    if key.is_empty() {
                        return Err(format!("path `{text}` has an empty segment"));
                    }
                    segments.push(Segment::Key(key));
                }
                '[' => {
                    let mut num = String::new();
                    for n in chars.by_ref() {
                        if n == ']' {
                            break;
                        }
                        num.push(n);
                    }
                    let idx = num
                        .parse::<usize>()
                        .map_err(|_| format!("path `{text}` has a bad index `[{num}]`"))?;
                    segments.push(Segment::Index(idx));
                }
                other => return Err(format!("path `{text}` has an unexpected `{other}`")),
            }
        }
        Ok(Path {
            text: text.to_string(),
            segments,
        })
    }

    /// Looks the path up in `root`; `None` if any segment is missing.
    pub fn lookup<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        let mut cur = root;
        for seg in &self.segments {
            cur = match seg {
                Segment::Key(k) => cur.get(k.as_str())?,
                Segment::Index(i) => cur.get(*i)?,
            };
        }
        Some(cur)
    }
}

/// Calls `f` for every reference string (`"$..."`) inside a template, with its
/// location relative to the template.
pub fn visit_references(template: &Value, loc: &str, f: &mut dyn FnMut(&str, &str)) {
    match template {
        Value::String(s) if s.starts_with('$') => f(s, loc),
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                visit_references(v, &format!("{loc}[{i}]"), f);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                visit_references(v, &format!("{loc}.{k}"), f);
            }
        }
        _ => {}
    }
}

/// Renders a template against `context`: every `"$..."` string is replaced by
/// the value it references. A missing reference is an error naming the path.
pub fn render(template: &Value, context: &Value) -> Result<Value, String> {
    match template {
        Value::String(s) if s.starts_with('$') => {
            let path = Path::parse(s)?;
            path.lookup(context)
                .cloned()
                .ok_or_else(|| format!("reference `{s}` matched nothing"))
        }
        Value::Array(items) => items
            .iter()
            .map(|v| render(v, context))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                out.insert(k.clone(), render(v, context)?);
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_dotted_path_with_an_index_finds_the_nested_value() {
        let p = Path::parse("$.input.items[1].id").unwrap();
        assert_eq!(
            p.lookup(&json!({"input": {"items": [{"id": 1}, {"id": 2}]}})),
            Some(&json!(2))
        );
    }

    #[test]
    fn malformed_paths_are_rejected_with_a_reason() {
        assert!(Path::parse("input.a").unwrap_err().contains("must start"));
        assert!(Path::parse("$..a").unwrap_err().contains("empty segment"));
        assert!(Path::parse("$.a[x]").unwrap_err().contains("bad index"));
    }

    #[test]
    fn rendering_replaces_references_and_keeps_literals() {
        let ctx = json!({"input": {"trip": "t1"}});
        let out = render(
            &json!({"trip_id": "$.input.trip", "n": 3, "s": "lit"}),
            &ctx,
        )
        .unwrap();
        assert_eq!(out, json!({"trip_id": "t1", "n": 3, "s": "lit"}));
        assert!(render(&json!("$.input.nope"), &ctx)
            .unwrap_err()
            .contains("$.input.nope"));
    }
}
