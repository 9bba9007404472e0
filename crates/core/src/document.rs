//! Reading a definition's text into a JSON value, strictly and in bounded time.
//!
//! - JSON is parsed as JSON (serde_json: linear, and escaped surrogate pairs
//!   such as `"\ud83c\udd97"` are combined as JSON requires); only a text that
//!   does not start with `{` or `[`, or that serde_json refuses as a syntax
//!   error, goes to the YAML parser (a JSON-looking text keeps the JSON error).
//! - The YAML parser (libyaml, under serde_yaml) costs time in the square of
//!   the *flow* nesting (`[[[[…`): 100,000 levels took 17 s of CPU. So a YAML
//!   text is first measured by [`yaml_nesting`], a linear scan that follows
//!   libyaml's tokenizer (quotes, comments, plain and block scalars, block
//!   indentation), and refused past [`MAX_NESTING`] before it is parsed.
//! - Both parsers build the value through `Strict`, which refuses a
//!   container nested deeper than [`MAX_NESTING`] (block nesting is linear to
//!   load, so it is counted here) and a key given twice in one object
//!   (serde_json and serde_yaml would silently keep the last one; AWS refuses
//!   such a definition).
//!
//! Codes: `parse_error`, `nesting_too_deep`, `duplicate_key`.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::Error;
use crate::Violation;

/// How many objects and arrays a definition may nest inside each other.
/// Real definitions use about ten; the limit bounds the parsers' time.
pub const MAX_NESTING: usize = 100;

/// The nesting serde_json and serde_yaml themselves allowed (they refuse
/// 128 levels): what a definition stored before [`MAX_NESTING`] may have.
const STORED_NESTING: usize = 127;

/// How strictly a text is read.
#[derive(Clone, Copy)]
struct Rules {
    /// Refuse a key given twice (else the last one wins, as it used to).
    duplicates: bool,
    max_nesting: usize,
}

const NEW: Rules = Rules {
    duplicates: true,
    max_nesting: MAX_NESTING,
};

/// Parses a definition written in JSON or YAML. See the module documentation.
pub fn parse(source: &str) -> Result<Value, Error> {
    read(source, NEW)
}

/// Parses a definition that was accepted and stored earlier, as it was
/// read then: a key given twice keeps its last value, and nesting is
/// bounded by what the parsers allowed (127 levels), so that executions of
/// definitions stored before these rules keep running after an upgrade.
/// Still in bounded time.
pub fn parse_stored(source: &str) -> Result<Value, Error> {
    read(
        source,
        Rules {
            duplicates: false,
            max_nesting: STORED_NESTING,
        },
    )
}

fn read(source: &str, rules: Rules) -> Result<Value, Error> {
    let text = source.strip_prefix('\u{feff}').unwrap_or(source);
    if looks_like_json(text) {
        match parse_json(text, rules) {
            Ok(v) => return Ok(v),
            Err(Refusal::Parser(json_error)) => {
                // A YAML flow document (`{name: x}`) is not JSON; keep the
                // JSON error for a text that is not YAML either.
                return parse_yaml(text, rules).map_err(|e| match e {
                    Refusal::Parser(_) => Error::InvalidDefinition(vec![json_error]),
                    other => other.into_error(),
                });
            }
            Err(other) => return Err(other.into_error()),
        }
    }
    parse_yaml(text, rules).map_err(Refusal::into_error)
}

/// Parses a definition that must be JSON (the Step Functions API).
pub fn parse_json_only(source: &str) -> Result<Value, Error> {
    parse_json(source, NEW).map_err(Refusal::into_error)
}

/// The JSON type of a value with its article (`an object`, `a string`),
/// for messages. The one such helper: both validators, the ASL data flow
/// and the Step Functions API name types with it, so a message says the
/// same thing wherever a value has the wrong type (code `wrong_type`).
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn looks_like_json(text: &str) -> bool {
    matches!(text.trim_start().chars().next(), Some('{' | '['))
}

/// Why a text was refused, before it becomes a [`Violation`].
enum Refusal {
    /// The parser's own error (syntax), with its position if it has one.
    Parser(Violation),
    /// Refused by [`Strict`] or the nesting scan.
    Strict(Violation),
}

impl Refusal {
    fn into_error(self) -> Error {
        match self {
            Refusal::Parser(v) | Refusal::Strict(v) => Error::InvalidDefinition(vec![v]),
        }
    }
}

fn position(line: usize, column: usize) -> String {
    format!("line {line}, column {column}")
}

fn parse_json(text: &str, rules: Rules) -> Result<Value, Refusal> {
    let ctx = Ctx::new(rules);
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = Strict {
        ctx: &ctx,
        depth: 0,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    parsed.map_err(|e| match ctx.refusal(position(e.line(), e.column())) {
        Some(v) => Refusal::Strict(v),
        None => Refusal::Parser(Violation {
            code: "parse_error".into(),
            location: position(e.line(), e.column()),
            message: format!("not valid JSON: {e}"),
        }),
    })
}

fn parse_yaml(text: &str, rules: Rules) -> Result<Value, Refusal> {
    if let Err((depth, line, column)) = yaml_nesting(text, rules.max_nesting) {
        return Err(Refusal::Strict(too_deep(
            depth,
            rules.max_nesting,
            position(line, column),
        )));
    }
    let ctx = Ctx::new(rules);
    let parsed = Strict {
        ctx: &ctx,
        depth: 0,
    }
    .deserialize(serde_yaml::Deserializer::from_str(text));
    parsed.map_err(|e| {
        let at = e
            .location()
            .map(|l| position(l.line(), l.column()))
            .unwrap_or_else(|| "document".into());
        match ctx.refusal(at.clone()) {
            Some(v) => Refusal::Strict(v),
            None => Refusal::Parser(Violation {
                code: "parse_error".into(),
                location: at,
                message: e.to_string(),
            }),
        }
    })
}

/// A document's identity: the SHA-256 of its canonical JSON, in hex. A
/// changed digest is a new version of a definition, whatever its format.
///
/// Canonical: compact, every object's keys sorted by their bytes, whatever
/// order the document wrote them in. The workspace's `serde_json` keeps
/// objects in insertion order (`preserve_order`, which the JSONata engine
/// turns on); the digest must not depend on it, and must stay the digest
/// earlier releases computed with sorted maps, or every deployment of an
/// unchanged definition would become a new version.
pub fn digest(doc: &Value) -> String {
    use sha2::Digest as _;
    hex(&sha2::Sha256::digest(canonical_json(doc).as_bytes()))
}

/// `value` as compact JSON text with every object's keys in sorted (byte)
/// order, at any depth: the same text for the same value, whatever the
/// order of its keys.
pub fn canonical_json(value: &Value) -> String {
    serde_json::to_string(&Sorted(value)).unwrap_or_default()
}

/// Serializes a value with its objects' keys sorted.
struct Sorted<'a>(&'a Value);

impl serde::Serialize for Sorted<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap as _, SerializeSeq as _};
        match self.0 {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                let mut out = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    out.serialize_entry(k, &Sorted(v))?;
                }
                out.end()
            }
            Value::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for v in items {
                    out.serialize_element(&Sorted(v))?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn too_deep(depth: usize, max: usize, location: String) -> Violation {
    Violation {
        code: "nesting_too_deep".into(),
        location,
        message: format!(
            "objects and arrays nest {depth} levels deep here; a definition may nest at most {max}"
        ),
    }
}

// ---------------------------------------------------------------------------
// The strict value builder

/// A step of the path from the document to a value.
enum Segment {
    Key(String),
    Index(usize),
}

struct Ctx {
    rules: Rules,
    path: RefCell<Vec<Segment>>,
    /// What [`Strict`] refused, recorded where it happened (the parser's
    /// error only carries our message and its own position).
    problem: RefCell<Option<(&'static str, usize, String)>>,
}

impl Ctx {
    fn new(rules: Rules) -> Ctx {
        Ctx {
            rules,
            path: RefCell::default(),
            problem: RefCell::default(),
        }
    }

    fn refuse<E: de::Error>(&self, code: &'static str, depth: usize, what: String) -> E {
        *self.problem.borrow_mut() = Some((code, depth, self.location()));
        E::custom(what)
    }

    /// The path as a JSON pointer for ASL (`/States/A`), as the saga
    /// format's own locations otherwise (`steps[1].action`).
    fn location(&self) -> String {
        let path = self.path.borrow();
        let asl = matches!(path.first(), Some(Segment::Key(k)) if k == "States" || k == "StartAt");
        let mut out = String::new();
        for segment in path.iter() {
            match (segment, asl) {
                (Segment::Key(k), true) => {
                    out.push('/');
                    out.push_str(&k.replace('~', "~0").replace('/', "~1"));
                }
                (Segment::Index(i), true) => out.push_str(&format!("/{i}")),
                (Segment::Key(k), false) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                (Segment::Index(i), false) => out.push_str(&format!("[{i}]")),
            }
        }
        if out.is_empty() {
            if asl { "/" } else { "document" }.into()
        } else {
            out
        }
    }

    fn refusal(&self, position: String) -> Option<Violation> {
        let (code, depth, location) = self.problem.borrow_mut().take()?;
        Some(match code {
            "nesting_too_deep" => too_deep(
                depth,
                self.rules.max_nesting,
                format!("{location} ({position})"),
            ),
            _ => Violation {
                code: code.into(),
                location,
                message: format!(
                    "this key is given twice in the same object (near {position}); the definition would silently keep only the last one"
                ),
            },
        })
    }
}

/// Builds a [`Value`] like serde_json's own, refusing duplicate keys and
/// nesting past [`MAX_NESTING`]. `depth` counts the containers around it.
struct Strict<'c> {
    ctx: &'c Ctx,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// The key serde_json's `arbitrary_precision` feature hands a number under.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

impl Strict<'_> {
    fn inner(&self) -> Strict<'_> {
        Strict {
            ctx: self.ctx,
            depth: self.depth + 1,
        }
    }

    fn enter<E: de::Error>(&self) -> Result<(), E> {
        let max = self.ctx.rules.max_nesting;
        if self.depth + 1 > max {
            return Err(self.ctx.refuse(
                "nesting_too_deep",
                self.depth + 1,
                format!("nested deeper than {max} levels"),
            ));
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or_else(|_| Value::from(v as f64), Value::from))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
        Ok(u64::try_from(v).map_or_else(|_| Value::from(v as f64), Value::from))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut items = Vec::new();
        loop {
            self.ctx.path.borrow_mut().push(Segment::Index(items.len()));
            let item = seq.next_element_seed(self.inner());
            self.ctx.path.borrow_mut().pop();
            match item? {
                Some(v) => items.push(v),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == NUMBER_TOKEN && object.is_empty() {
                // A number in serde_json's arbitrary-precision form.
                let digits: String = map.next_value()?;
                return serde_json::from_str(&digits).map_err(de::Error::custom);
            }
            self.ctx.path.borrow_mut().push(Segment::Key(key.clone()));
            if self.ctx.rules.duplicates && object.contains_key(&key) {
                return Err(self.ctx.refuse(
                    "duplicate_key",
                    self.depth,
                    format!("duplicate key `{key}`"),
                ));
            }
            let value = map.next_value_seed(self.inner());
            self.ctx.path.borrow_mut().pop();
            object.insert(key, value?);
        }
        Ok(Value::Object(object))
    }
}

// ---------------------------------------------------------------------------
// The nesting scan

fn is_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Measures how deep a YAML text nests, in one pass, without parsing it:
/// `Err((depth, line, column))` at the first place deeper than `limit`.
///
/// It follows libyaml's tokenizer where that decides what is structure: a
/// `[` or `{` opens a flow collection only where a token starts (not inside
/// a quoted, plain or block scalar, nor in a comment), and plain scalars run
/// on over line breaks as libyaml's do. As a guard against any place where
/// the two could still disagree, brackets are also counted regardless of
/// quotes, against a limit four times as high.
pub fn yaml_nesting(text: &str, limit: usize) -> Result<(), (usize, usize, usize)> {
    bracket_guard(text, limit.saturating_mul(4))?;
    let mut scan = Scan {
        chars: text.chars().collect(),
        i: 0,
        line: 1,
        column: 0,
        flow: 0,
        indents: Vec::new(),
        key_allowed: true,
        key: None,
    };
    scan.run(limit)
}

fn bracket_guard(text: &str, limit: usize) -> Result<(), (usize, usize, usize)> {
    let (mut depth, mut line, mut column) = (0usize, 1, 0);
    for c in text.chars() {
        column += 1;
        match c {
            '[' | '{' => {
                depth += 1;
                if depth > limit {
                    return Err((depth, line, column));
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            '\n' => {
                line += 1;
                column = 0;
            }
            _ => {}
        }
    }
    Ok(())
}

struct Scan {
    chars: Vec<char>,
    i: usize,
    line: usize,
    /// Characters since the line's start (libyaml counts columns so).
    column: usize,
    flow: usize,
    /// Columns of the open block collections (libyaml's indentation stack).
    indents: Vec<usize>,
    /// Whether a token starting here could be a mapping key.
    key_allowed: bool,
    /// Where the possible key of the block mapping starts: (line, index, column).
    key: Option<(usize, usize, usize)>,
}

impl Scan {
    fn at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.i + offset).copied()
    }

    fn blankz_at(&self, offset: usize) -> bool {
        self.at(offset).is_none_or(|c| is_blank(c) || is_break(c))
    }

    fn advance(&mut self) {
        let Some(c) = self.at(0) else { return };
        self.i += 1;
        if is_break(c) {
            if c == '\r' && self.at(0) == Some('\n') {
                self.i += 1;
            }
            self.line += 1;
            self.column = 0;
        } else {
            self.column += 1;
        }
    }

    /// libyaml's indentation: the innermost block collection's column, or -1.
    fn indent(&self) -> isize {
        self.indents.last().map_or(-1, |&c| c as isize)
    }

    fn roll_indent(&mut self, column: usize) {
        if self.flow == 0 && self.indent() < column as isize {
            self.indents.push(column);
        }
    }

    fn depth(&self) -> usize {
        self.flow + self.indents.len()
    }

    fn check(&self, limit: usize) -> Result<(), (usize, usize, usize)> {
        if self.depth() > limit {
            return Err((self.depth(), self.line, self.column + 1));
        }
        Ok(())
    }

    /// Remembers where a mapping key could start (only block mappings
    /// change the indentation).
    fn save_key(&mut self) {
        if self.key_allowed && self.flow == 0 {
            self.key = Some((self.line, self.i, self.column));
        }
    }

    fn run(&mut self, limit: usize) -> Result<(), (usize, usize, usize)> {
        loop {
            self.skip_to_token();
            let Some(c) = self.at(0) else { return Ok(()) };
            if self.flow == 0 {
                while self.indent() > self.column as isize {
                    self.indents.pop();
                }
            }
            let next_blank = self.blankz_at(1);
            if self.column == 0 && self.document_marker() {
                self.indents.clear();
                self.key = None;
                self.key_allowed = false;
                (0..3).for_each(|_| self.advance());
                continue;
            }
            match c {
                '%' if self.column == 0 => self.skip_line(),
                '[' | '{' => {
                    self.save_key();
                    self.flow += 1;
                    self.check(limit)?;
                    self.key_allowed = true;
                    self.advance();
                }
                ']' | '}' => {
                    self.flow = self.flow.saturating_sub(1);
                    self.key_allowed = false;
                    self.advance();
                }
                ',' => {
                    self.key_allowed = true;
                    self.advance();
                }
                '-' if next_blank => {
                    if self.flow == 0 {
                        self.roll_indent(self.column);
                        self.check(limit)?;
                    }
                    self.key = None;
                    self.key_allowed = true;
                    self.advance();
                }
                '?' if self.flow > 0 || next_blank => {
                    if self.flow == 0 {
                        self.roll_indent(self.column);
                        self.check(limit)?;
                    }
                    self.key = None;
                    self.key_allowed = self.flow == 0;
                    self.advance();
                }
                ':' if self.flow > 0 || next_blank => {
                    if self.flow == 0 {
                        let column = match self.key.take() {
                            Some((line, i, column)) if line == self.line && i + 1024 >= self.i => {
                                column
                            }
                            _ => self.column,
                        };
                        self.roll_indent(column);
                        self.check(limit)?;
                    }
                    self.key_allowed = self.flow == 0;
                    self.advance();
                }
                '*' | '&' | '!' => {
                    self.save_key();
                    self.key_allowed = false;
                    self.advance();
                    // Anchors end at a blank or an indicator; a tag is cut
                    // at a bracket too, so that a bracket is never hidden.
                    while self
                        .at(0)
                        .is_some_and(|c| !(is_blank(c) || is_break(c) || "[]{},".contains(c)))
                    {
                        self.advance();
                    }
                }
                '|' | '>' if self.flow == 0 => self.block_scalar(),
                '\'' | '"' => {
                    self.save_key();
                    self.quoted(c);
                    self.key_allowed = false;
                }
                _ => {
                    self.save_key();
                    self.plain();
                }
            }
        }
    }

    fn document_marker(&self) -> bool {
        let three = |c| self.at(0) == Some(c) && self.at(1) == Some(c) && self.at(2) == Some(c);
        (three('-') || three('.')) && self.blankz_at(3)
    }

    /// Blanks, line breaks and comments up to the next token.
    fn skip_to_token(&mut self) {
        loop {
            if self.column == 0 && self.at(0) == Some('\u{feff}') {
                self.advance();
            }
            while self.at(0).is_some_and(is_blank) {
                self.advance();
            }
            if self.at(0) == Some('#') {
                while self.at(0).is_some_and(|c| !is_break(c)) {
                    self.advance();
                }
            }
            if !self.at(0).is_some_and(is_break) {
                return;
            }
            self.advance();
            if self.flow == 0 {
                self.key_allowed = true;
            }
        }
    }

    fn skip_line(&mut self) {
        while self.at(0).is_some_and(|c| !is_break(c)) {
            self.advance();
        }
    }

    fn quoted(&mut self, quote: char) {
        self.advance();
        while let Some(c) = self.at(0) {
            self.advance();
            if quote == '"' && c == '\\' {
                self.advance();
            } else if c == quote {
                if quote == '\'' && self.at(0) == Some('\'') {
                    self.advance();
                } else {
                    return;
                }
            }
        }
    }

    /// A plain scalar, as libyaml's `scan_plain_scalar` delimits it.
    fn plain(&mut self) {
        let indent = self.indent() + 1;
        let mut leading_break = false;
        loop {
            if self.column == 0 && self.document_marker() || self.at(0) == Some('#') {
                break;
            }
            while let Some(c) = self.at(0) {
                if is_blank(c) || is_break(c) {
                    break;
                }
                if c == ':' && self.blankz_at(1)
                    || self.flow > 0
                        && (":,[]{}".contains(c))
                        && (c != ':' || self.at(1).is_some_and(|n| ",?[]{}".contains(n)))
                {
                    // `x:[` in a flow is an error to libyaml: stopping here
                    // only ever counts more.
                    self.key_allowed = leading_break;
                    return;
                }
                self.advance();
            }
            if !self.at(0).is_some_and(|c| is_blank(c) || is_break(c)) {
                break;
            }
            while let Some(c) = self.at(0) {
                if is_break(c) {
                    leading_break = true;
                } else if !is_blank(c) {
                    break;
                }
                self.advance();
            }
            if self.flow == 0 && (self.column as isize) < indent {
                break;
            }
        }
        self.key_allowed = leading_break;
    }

    /// A `|` or `>` scalar: its header line, then every line indented at
    /// least as much as its first non-empty one (libyaml's rule).
    fn block_scalar(&mut self) {
        self.advance();
        let mut increment = None;
        while let Some(c) = self.at(0) {
            match c {
                '1'..='9' => increment = c.to_digit(10).map(|d| d as isize),
                '+' | '-' => {}
                _ => break,
            }
            self.advance();
        }
        self.skip_line();
        let parent = self.indent();
        let mut indent = increment.map(|d| if parent >= 0 { parent + d } else { d });
        let mut max_empty = 0isize;
        loop {
            if !self.at(0).is_some_and(is_break) {
                break;
            }
            self.advance();
            let start = self.i;
            while self.at(0) == Some(' ') {
                self.advance();
            }
            let spaces = (self.i - start) as isize;
            let empty = self.at(0).is_none_or(is_break);
            let needed = match indent {
                Some(n) => n,
                None if empty => {
                    max_empty = max_empty.max(spaces);
                    continue;
                }
                None => {
                    let n = spaces.max(max_empty).max(parent + 1).max(1);
                    indent = Some(n);
                    n
                }
            };
            if !empty && spaces < needed {
                // The scalar ended: this line is tokenized again.
                self.i = start;
                self.column = 0;
                break;
            }
            self.skip_line();
        }
        self.key_allowed = true;
        self.key = None;
    }
}
