//! Saga definitions (YAML or JSON) and their compilation into a [`Plan`].
//!
//! The document is walked by hand, not derived with serde, so that validation
//! can report *every* problem with its exact location (`steps[2].compensation.http.url`)
//! and a stable code, instead of stopping at the first type error.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value};

use crate::document::type_name;
use crate::exchange::Participant;
use crate::path::{visit_references, Path, Segment};
use crate::plan::{Plan, Program};
use crate::retry::RetryPolicy;
use crate::saga::{Role, Saga, Stage, Step, Task};
use crate::{Error, Violation};

/// Timeout of one attempt when a definition does not set one.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;

/// Parses YAML or JSON into a document, strictly and in bounded time:
/// duplicate keys and nesting past [`crate::document::MAX_NESTING`] are
/// refused (see [`crate::document`]).
pub fn parse_document(source: &str) -> Result<Value, Error> {
    crate::document::parse(source)
}

/// Parses and validates a definition. `name_hint` is used when the document
/// has no `name` (e.g. the name comes from the URL it was PUT to); when both
/// are present they must agree.
pub fn compile(source: &str, name_hint: Option<&str>) -> Result<Plan, Error> {
    let doc = parse_document(source)?;
    compile_document(&doc, name_hint)
}

/// Validates an already parsed document. See [`compile`].
pub fn compile_document(doc: &Value, name_hint: Option<&str>) -> Result<Plan, Error> {
    compile_document_as(doc, name_hint, false)
}

/// [`compile_document`]; `stored`: a definition accepted before protocol
/// headers were reserved — such a header is left out (the engine's own value
/// is sent) instead of refusing the definition its executions run on.
pub(crate) fn compile_document_as(
    doc: &Value,
    name_hint: Option<&str>,
    stored: bool,
) -> Result<Plan, Error> {
    let mut c = Compiler {
        stored,
        ..Compiler::default()
    };
    let plan = c.document(doc, name_hint);
    if c.violations.is_empty() {
        if let Some(plan) = plan {
            return Ok(plan);
        }
    }
    Err(Error::InvalidDefinition(c.violations))
}

/// Validity of step and group names: they appear in URLs, keys and paths.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 80
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[derive(Default)]
struct Compiler {
    violations: Vec<Violation>,
    variables: BTreeSet<String>,
    variable_uses: Vec<(String, String)>,
    /// Reading a stored definition (see [`compile_document_as`]).
    stored: bool,
}

struct RawStep {
    step: Step,
    loc: String,
    explicit_retriable: bool,
    action_inputs: Option<Value>,
    compensation_inputs: Option<Value>,
}

impl Compiler {
    fn err(&mut self, code: &str, location: impl Into<String>, message: impl Into<String>) {
        self.violations.push(Violation {
            code: code.into(),
            location: location.into(),
            message: message.into(),
        });
    }

    fn object<'a>(&mut self, v: &'a Value, loc: &str) -> Option<&'a Map<String, Value>> {
        match v.as_object() {
            Some(m) => Some(m),
            None => {
                self.err(
                    "wrong_type",
                    loc,
                    format!("expected an object, found {}", type_name(v)),
                );
                None
            }
        }
    }

    fn check_fields(&mut self, m: &Map<String, Value>, loc: &str, allowed: &[&str]) {
        for k in m.keys() {
            if !allowed.contains(&k.as_str()) {
                self.err(
                    "unknown_field",
                    join(loc, k),
                    format!(
                        "unknown field `{k}`; expected one of: {}",
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    fn string(
        &mut self,
        m: &Map<String, Value>,
        key: &str,
        loc: &str,
        required: bool,
    ) -> Option<String> {
        match m.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.err(
                        "missing_field",
                        join(loc, key),
                        format!("`{key}` is required"),
                    );
                }
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.err(
                    "wrong_type",
                    join(loc, key),
                    format!("expected a string, found {}", type_name(other)),
                );
                None
            }
        }
    }

    fn duration(&mut self, m: &Map<String, Value>, key: &str, loc: &str) -> Option<u64> {
        let v = m.get(key)?;
        let at = join(loc, key);
        match v {
            Value::String(s) => match humantime::parse_duration(s.trim()) {
                Ok(d) if d.as_millis() > 0 => Some(d.as_millis() as u64),
                Ok(_) => {
                    self.err("invalid_duration", at, "a duration must be positive");
                    None
                }
                Err(e) => {
                    self.err(
                        "invalid_duration",
                        at,
                        format!("`{s}` is not a duration like `200ms` or `5s`: {e}"),
                    );
                    None
                }
            },
            other => {
                self.err(
                    "invalid_duration",
                    at,
                    format!(
                        "expected a duration string like `5s`, found {}",
                        type_name(other)
                    ),
                );
                None
            }
        }
    }

    fn document(&mut self, doc: &Value, name_hint: Option<&str>) -> Option<Plan> {
        let m = self.object(doc, "$")?;
        self.check_fields(m, "", &["name", "description", "timeout", "steps"]);
        let doc_name = self.string(m, "name", "", false);
        let name = match (doc_name, name_hint) {
            (Some(d), Some(h)) if d != h => {
                self.err(
                    "name_mismatch",
                    "name",
                    format!("the document is named `{d}` but is registered as `{h}`"),
                );
                d
            }
            (Some(d), _) => d,
            (None, Some(h)) => h.to_string(),
            (None, None) => {
                self.err("missing_field", "name", "`name` is required");
                String::new()
            }
        };
        if !name.is_empty() && !valid_name(&name) {
            self.err(
                "invalid_name",
                "name",
                format!("`{name}` may only use letters, digits, `_` and `-` (at most 80)"),
            );
        }
        let description = self.string(m, "description", "", false);
        let timeout_ms = self.duration(m, "timeout", "");

        let mut raw: Vec<RawStep> = Vec::new();
        let mut stages: Vec<Stage> = Vec::new();
        // Names of parallel groups with the location of each name.
        let mut groups: Vec<(String, String)> = Vec::new();
        match m.get("steps") {
            None => self.err("missing_field", "steps", "`steps` is required"),
            Some(Value::Array(items)) if items.is_empty() => {
                self.err("empty_steps", "steps", "a saga needs at least one step")
            }
            Some(Value::Array(items)) => {
                // Steps after the (first) pivot default to forward recovery.
                let pivot_at = items
                    .iter()
                    .position(|it| it.get("pivot") == Some(&Value::Bool(true)));
                for (i, item) in items.iter().enumerate() {
                    let after_pivot = pivot_at.is_some_and(|p| i > p);
                    let loc = format!("steps[{i}]");
                    let stage_idx = stages.len();
                    if let Some(group) = item.as_object().and_then(|o| o.get("parallel")) {
                        if let Some(o) = item.as_object() {
                            self.check_fields(o, &loc, &["parallel"]);
                        }
                        let gloc = format!("{loc}.parallel");
                        let Some(g) = self.object(group, &gloc) else {
                            continue;
                        };
                        self.check_fields(g, &gloc, &["name", "branches"]);
                        let gname = self.string(g, "name", &gloc, true).unwrap_or_default();
                        if !gname.is_empty() && !valid_name(&gname) {
                            self.err(
                                "invalid_name",
                                join(&gloc, "name"),
                                format!("`{gname}` may only use letters, digits, `_` and `-`"),
                            );
                        }
                        if !gname.is_empty() {
                            groups.push((gname.clone(), join(&gloc, "name")));
                        }
                        let mut members = Vec::new();
                        match g.get("branches") {
                            Some(Value::Array(bs)) if !bs.is_empty() => {
                                for (j, b) in bs.iter().enumerate() {
                                    let bloc = format!("{gloc}.branches[{j}]");
                                    if let Some(s) =
                                        self.step(b, &bloc, stage_idx, true, after_pivot)
                                    {
                                        members.push(raw.len());
                                        raw.push(s);
                                    }
                                }
                            }
                            Some(Value::Array(_)) => self.err(
                                "empty_parallel",
                                join(&gloc, "branches"),
                                "a parallel group needs at least one branch",
                            ),
                            Some(other) => self.err(
                                "wrong_type",
                                join(&gloc, "branches"),
                                format!("expected a list of steps, found {}", type_name(other)),
                            ),
                            None => self.err(
                                "empty_parallel",
                                join(&gloc, "branches"),
                                "a parallel group needs `branches`",
                            ),
                        }
                        stages.push(Stage {
                            name: gname,
                            parallel: true,
                            steps: members,
                        });
                    } else if let Some(s) = self.step(item, &loc, stage_idx, false, after_pivot) {
                        stages.push(Stage {
                            name: s.step.name.clone(),
                            parallel: false,
                            steps: vec![raw.len()],
                        });
                        raw.push(s);
                    }
                }
            }
            Some(other) => self.err(
                "wrong_type",
                "steps",
                format!("expected a list, found {}", type_name(other)),
            ),
        }

        self.check_names(&raw, &groups);
        self.check_roles(&raw);
        self.check_references(&raw);

        let digest = crate::document::digest(doc);
        Some(Plan {
            name,
            description,
            timeout_ms,
            variables: std::mem::take(&mut self.variables),
            variable_uses: std::mem::take(&mut self.variable_uses),
            digest,
            program: Program::Saga(Saga {
                steps: raw.into_iter().map(|r| r.step).collect(),
                stages,
            }),
        })
    }

    fn step(
        &mut self,
        v: &Value,
        loc: &str,
        stage: usize,
        in_parallel: bool,
        after_pivot: bool,
    ) -> Option<RawStep> {
        let m = self.object(v, loc)?;
        self.check_fields(
            m,
            loc,
            &[
                "name",
                "action",
                "compensation",
                "retry",
                "timeout",
                "input",
                "pivot",
                "retriable",
                "callback",
                "heartbeat",
            ],
        );
        let name = self.string(m, "name", loc, true).unwrap_or_default();
        if !name.is_empty() && !valid_name(&name) {
            self.err(
                "invalid_name",
                join(loc, "name"),
                format!("`{name}` may only use letters, digits, `_` and `-` (at most 80)"),
            );
        }
        let pivot = self.flag(m, "pivot", loc);
        let retriable = self.flag(m, "retriable", loc);
        let callback = self.flag(m, "callback", loc);
        let heartbeat_ms = self.heartbeat(m, loc, callback);
        if pivot && in_parallel {
            self.err(
                "pivot_in_parallel",
                join(loc, "pivot"),
                "the pivot must be a step of its own, not a parallel branch",
            );
        }
        if pivot && retriable {
            self.err(
                "pivot_and_retriable",
                loc,
                "a step cannot be both the pivot and retriable",
            );
        }
        let role = if pivot {
            Role::Pivot
        } else if retriable || after_pivot {
            Role::Retriable
        } else {
            Role::Compensatable
        };
        let action_loc = join(loc, "action");
        let participant = match m.get("action") {
            Some(a) => self.participant(a, &action_loc),
            None => {
                self.err("missing_field", &action_loc, "`action` is required");
                None
            }
        };
        // The action's retry policy and timeout live on the step itself.
        let retry_default = if role == Role::Retriable {
            RetryPolicy::until_success_default()
        } else {
            RetryPolicy::forward_default()
        };
        let retry = self.retry(m.get("retry"), &join(loc, "retry"), retry_default);
        let timeout_ms = self
            .duration(m, "timeout", loc)
            .unwrap_or(DEFAULT_TIMEOUT_MS);
        let input = m.get("input").cloned();

        let comp_loc = join(loc, "compensation");
        let compensation = match m.get("compensation") {
            None | Some(Value::Null) => None,
            Some(c) => {
                if pivot {
                    self.err(
                        "pivot_has_compensation",
                        &comp_loc,
                        "the pivot is the point of no return and cannot have a compensation",
                    );
                }
                match self.object(c, &comp_loc) {
                    None => None,
                    Some(cm) => {
                        self.check_fields(
                            cm,
                            &comp_loc,
                            &[
                                "http",
                                "handler",
                                "retry",
                                "timeout",
                                "input",
                                "callback",
                                "heartbeat",
                            ],
                        );
                        let p = self.participant(c, &comp_loc);
                        let r = self.retry(
                            cm.get("retry"),
                            &join(&comp_loc, "retry"),
                            RetryPolicy::until_success_default(),
                        );
                        let t = self
                            .duration(cm, "timeout", &comp_loc)
                            .unwrap_or(DEFAULT_TIMEOUT_MS);
                        let cb = self.flag(cm, "callback", &comp_loc);
                        let hb = self.heartbeat(cm, &comp_loc, cb);
                        p.map(|participant| Task {
                            participant,
                            retry: r,
                            timeout_ms: t,
                            input: cm.get("input").cloned(),
                            callback: cb,
                            heartbeat_ms: hb,
                        })
                    }
                }
            }
        };
        // A task whose participant is invalid has already been reported; keep
        // the step (with a placeholder that never leaves the compiler) so its
        // name, role and references are still checked, and later steps that
        // refer to it are not reported as naming an unknown step.
        let participant = participant.unwrap_or_else(|| Participant::Handler {
            name: String::new(),
        });
        let action_inputs = input.clone();
        let compensation_inputs = compensation.as_ref().and_then(|c| c.input.clone());
        Some(RawStep {
            step: Step {
                name,
                stage,
                role,
                action: Task {
                    participant,
                    retry,
                    timeout_ms,
                    input,
                    callback,
                    heartbeat_ms,
                },
                compensation,
            },
            loc: loc.to_string(),
            explicit_retriable: retriable,
            action_inputs,
            compensation_inputs,
        })
    }

    /// `heartbeat` only means something for a task that waits for a callback.
    fn heartbeat(&mut self, m: &Map<String, Value>, loc: &str, callback: bool) -> Option<u64> {
        let hb = self.duration(m, "heartbeat", loc)?;
        if !callback {
            self.err(
                "heartbeat_without_callback",
                join(loc, "heartbeat"),
                "`heartbeat` needs `callback: true`: only a task waiting for its token sends heartbeats",
            );
        }
        Some(hb)
    }

    fn flag(&mut self, m: &Map<String, Value>, key: &str, loc: &str) -> bool {
        match m.get(key) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.err(
                    "wrong_type",
                    join(loc, key),
                    format!("expected true or false, found {}", type_name(other)),
                );
                false
            }
        }
    }

    /// `{http: {url, headers}}` or `{handler: name}` (extra keys are checked by the caller).
    fn participant(&mut self, v: &Value, loc: &str) -> Option<Participant> {
        let m = self.object(v, loc)?;
        if loc.ends_with("action") {
            self.check_fields(m, loc, &["http", "handler"]);
        }
        match (m.get("http"), m.get("handler")) {
            (Some(_), Some(_)) => {
                self.err(
                    "ambiguous_participant",
                    loc,
                    "give either `http` or `handler`, not both",
                );
                None
            }
            (None, None) => {
                self.err(
                    "missing_participant",
                    loc,
                    "a task needs `http: {url}` or `handler: NAME`",
                );
                None
            }
            (Some(h), None) => {
                let hloc = join(loc, "http");
                let hm = self.object(h, &hloc)?;
                self.check_fields(hm, &hloc, &["url", "headers"]);
                let url = self.string(hm, "url", &hloc, true)?;
                self.check_url(&url, &join(&hloc, "url"));
                let mut headers = BTreeMap::new();
                match hm.get("headers") {
                    None => {}
                    Some(Value::Object(hs)) => {
                        for (k, v) in hs {
                            let loc = join(&join(&hloc, "headers"), k);
                            match v.as_str() {
                                Some(s) => {
                                    if self.check_header(k, s, &loc) {
                                        headers.insert(k.clone(), s.to_string());
                                    }
                                }
                                None => {
                                    self.err("wrong_type", loc, "header values must be strings")
                                }
                            }
                        }
                    }
                    Some(other) => self.err(
                        "wrong_type",
                        join(&hloc, "headers"),
                        format!("expected an object, found {}", type_name(other)),
                    ),
                }
                Some(Participant::Http { url, headers })
            }
            (None, Some(Value::String(name))) if !name.is_empty() => {
                Some(Participant::Handler { name: name.clone() })
            }
            (None, Some(other)) => {
                self.err(
                    "wrong_type",
                    join(loc, "handler"),
                    format!("expected a handler name, found {}", type_name(other)),
                );
                None
            }
        }
    }

    /// A header of an HTTP participant: its name must be a valid HTTP token
    /// and not one the protocol sets itself, its value free of control
    /// characters; its `${VAR}`s are collected like a URL's. `false` when the
    /// header is refused.
    fn check_header(&mut self, name: &str, value: &str, loc: &str) -> bool {
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() || !name.chars().all(token) {
            self.err(
                "invalid_header",
                loc,
                format!("`{name}` is not a valid header name"),
            );
            return false;
        }
        if is_reserved_header(name) {
            if self.stored {
                return false;
            }
            self.err(
                "reserved_header",
                loc,
                format!("`{name}` is set by Sagaflow itself (the participant protocol or HTTP framing) and cannot be overridden"),
            );
            return false;
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            self.err(
                "invalid_header",
                loc,
                "a header value cannot contain control characters (line breaks included)",
            );
            return false;
        }
        self.collect_variables(value, loc, "invalid_header")
            .is_some()
    }

    /// Collects the `${VAR}` placeholders of `text` (a URL or a header value,
    /// at `loc`) and returns the text with each replaced by a stand-in URL;
    /// `None` (and a violation with `code`) when a placeholder is unterminated.
    fn collect_variables(&mut self, text: &str, loc: &str, code: &str) -> Option<String> {
        let mut rest = text;
        let mut resolved = String::new();
        while let Some(start) = rest.find("${") {
            resolved.push_str(&rest[..start]);
            match rest[start..].find('}') {
                Some(end) => {
                    let var = &rest[start + 2..start + end];
                    if var.is_empty() || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        self.err(
                            code,
                            loc,
                            format!("`${{{var}}}` is not a valid variable name"),
                        );
                    } else {
                        self.variables.insert(var.to_string());
                        self.variable_uses.push((var.to_string(), loc.to_string()));
                    }
                    resolved.push_str("http://placeholder");
                    rest = &rest[start + end + 1..];
                }
                None => {
                    self.err(code, loc, "unterminated `${`");
                    return None;
                }
            }
        }
        resolved.push_str(rest);
        Some(resolved)
    }

    fn check_url(&mut self, url: &str, loc: &str) {
        // Collect ${VAR} placeholders and check the rest looks like an http(s) URL.
        let Some(resolved) = self.collect_variables(url, loc, "invalid_url") else {
            return;
        };
        if !(resolved.starts_with("http://") || resolved.starts_with("https://")) {
            self.err(
                "invalid_url",
                loc,
                format!("`{url}` must be an http:// or https:// URL (or start with a ${{VAR}})"),
            );
        }
    }

    fn retry(&mut self, v: Option<&Value>, loc: &str, mut policy: RetryPolicy) -> RetryPolicy {
        let Some(v) = v else { return policy };
        let Some(m) = self.object(v, loc) else {
            return policy;
        };
        self.check_fields(
            m,
            loc,
            &[
                "max_attempts",
                "initial_delay",
                "multiplier",
                "max_delay",
                "jitter",
                "retry_on",
            ],
        );
        match m.get("max_attempts") {
            None => {}
            Some(Value::String(s)) if s == "unlimited" => policy.max_attempts = None,
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 && n <= u32::MAX as u64 => policy.max_attempts = Some(n as u32),
                _ => self.err(
                    "invalid_retry_policy",
                    join(loc, "max_attempts"),
                    "`max_attempts` must be a whole number of at least 1, or \"unlimited\"",
                ),
            },
        }
        if let Some(d) = self.duration(m, "initial_delay", loc) {
            policy.initial_delay_ms = d;
        }
        match self.duration(m, "max_delay", loc) {
            Some(d) => policy.max_delay_ms = d,
            // Only a valid explicit `max_delay` can be too short: the default
            // cap grows to a longer `initial_delay` (an invalid one is reported).
            None => policy.max_delay_ms = policy.max_delay_ms.max(policy.initial_delay_ms),
        }
        if let Some(v) = m.get("multiplier") {
            match v.as_f64() {
                Some(x) if (1.0..=100.0).contains(&x) => policy.multiplier = x,
                _ => self.err(
                    "invalid_retry_policy",
                    join(loc, "multiplier"),
                    "`multiplier` must be a number from 1 to 100",
                ),
            }
        }
        if let Some(v) = m.get("jitter") {
            match v.as_f64() {
                Some(x) if (0.0..=1.0).contains(&x) => policy.jitter = x,
                _ => self.err(
                    "invalid_retry_policy",
                    join(loc, "jitter"),
                    "`jitter` must be a fraction from 0 to 1",
                ),
            }
        }
        if let Some(v) = m.get("retry_on") {
            match v.as_array() {
                Some(a)
                    if !a.is_empty()
                        && a.iter().all(|e| e.as_str().is_some_and(|s| !s.is_empty())) =>
                {
                    policy.retry_on = a
                        .iter()
                        .filter_map(|e| e.as_str().map(String::from))
                        .collect();
                }
                _ => self.err(
                    "invalid_retry_policy",
                    join(loc, "retry_on"),
                    "`retry_on` must be a non-empty list of error names (e.g. [\"States.ALL\"])",
                ),
            }
        }
        if policy.max_delay_ms < policy.initial_delay_ms {
            self.err(
                "invalid_retry_policy",
                join(loc, "max_delay"),
                "`max_delay` is shorter than `initial_delay`",
            );
        }
        policy
    }

    fn check_names(&mut self, raw: &[RawStep], groups: &[(String, String)]) {
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for r in raw {
            if r.step.name.is_empty() {
                continue;
            }
            if let Some(first) = seen.insert(&r.step.name, &r.loc) {
                self.err(
                    "duplicate_name",
                    join(&r.loc, "name"),
                    format!("`{}` is already used at {first}", r.step.name),
                );
            }
        }
        let mut seen_groups: HashMap<&str, &str> = HashMap::new();
        for (name, loc) in groups {
            if let Some(step_loc) = seen.get(name.as_str()) {
                self.err(
                    "duplicate_name",
                    loc.clone(),
                    format!("parallel group `{name}` reuses the name of the step at {step_loc}"),
                );
            } else if let Some(first) = seen_groups.insert(name, loc) {
                self.err(
                    "duplicate_name",
                    loc.clone(),
                    format!("parallel group `{name}` is already named at {first}"),
                );
            }
        }
    }

    /// Enforces compensatable* → pivot? → retriable*; steps after the pivot are retriable.
    fn check_roles(&mut self, raw: &[RawStep]) {
        let pivots: Vec<usize> = raw
            .iter()
            .enumerate()
            .filter(|(_, r)| r.step.role == Role::Pivot)
            .map(|(i, _)| i)
            .collect();
        for &extra in pivots.iter().skip(1) {
            let first = &raw[pivots[0]].loc;
            let msg = format!("a saga has at most one pivot; the first is at {first}");
            self.err("duplicate_pivot", join(&raw[extra].loc, "pivot"), msg);
        }
        let pivot = pivots.first().copied();
        let mut seen_retriable: Option<String> = None;
        for (i, r) in raw.iter().enumerate() {
            if r.explicit_retriable && pivot.is_some_and(|p| i < p) {
                self.err(
                    "retriable_before_pivot",
                    join(&r.loc, "retriable"),
                    "a retriable step must come after the pivot",
                );
            }
            if r.step.role == Role::Retriable {
                if seen_retriable.is_none() {
                    seen_retriable = Some(r.loc.clone());
                }
                if r.step.compensation.is_some() {
                    self.err(
                        "compensation_after_pivot",
                        join(&r.loc, "compensation"),
                        "steps after the pivot are retried forward and are never compensated",
                    );
                }
            } else if r.step.role == Role::Compensatable {
                if let Some(first) = &seen_retriable {
                    let msg =
                        format!("a compensatable step cannot follow the retriable step at {first}");
                    self.err("compensatable_after_retriable", r.loc.clone(), msg);
                }
            }
        }
    }

    /// References may only name the execution input, the execution, or steps of earlier stages.
    fn check_references(&mut self, raw: &[RawStep]) {
        let stage_of: HashMap<&str, usize> = raw
            .iter()
            .map(|r| (r.step.name.as_str(), r.step.stage))
            .collect();
        let mut problems = Vec::new();
        for r in raw {
            let checks = [
                (r.action_inputs.as_ref(), join(&r.loc, "input"), false),
                (
                    r.compensation_inputs.as_ref(),
                    join(&join(&r.loc, "compensation"), "input"),
                    true,
                ),
            ];
            for (tpl, loc, is_comp) in checks {
                let Some(tpl) = tpl else { continue };
                visit_references(tpl, &loc, &mut |text, at| {
                    match Path::parse(text) {
                    Err(msg) => problems.push(("invalid_reference", at.to_string(), msg)),
                    Ok(p) => match p.segments.first() {
                        Some(Segment::Key(k)) if k == "input" || k == "execution" => {}
                        Some(Segment::Key(k)) if k == "steps" => match p.segments.get(1) {
                            Some(Segment::Key(step)) => match stage_of.get(step.as_str()) {
                                None => problems.push(("unknown_step_reference", at.to_string(), format!("`{text}` names no step `{step}`"))),
                                Some(&s) if s > r.step.stage || (s == r.step.stage && !(is_comp && step == &r.step.name)) => problems.push((
                                    "forward_step_reference",
                                    at.to_string(),
                                    format!("`{text}` refers to `{step}`, which has not run yet when this task starts"),
                                )),
                                Some(_) => {}
                            },
                            _ => problems.push(("invalid_reference", at.to_string(), format!("`{text}` must name a step: `$.steps.NAME.output…`"))),
                        },
                        _ => problems.push(("invalid_reference", at.to_string(), format!("`{text}` must start with `$.input`, `$.steps` or `$.execution`"))),
                    },
                }
                });
            }
        }
        for (code, loc, msg) in problems {
            self.err(code, loc, msg);
        }
    }
}

/// Headers an HTTP participant's definition may not set: the participant
/// protocol's own (`Idempotency-Key`, every `Sagaflow-*`) and those that
/// frame the request or the connection, which the HTTP client owns.
pub const RESERVED_HEADERS: &[&str] = &[
    "Idempotency-Key",
    "Host",
    "Content-Type",
    "Content-Length",
    "Content-Encoding",
    "Transfer-Encoding",
    "Connection",
    "Keep-Alive",
    "Proxy-Connection",
    "Upgrade",
    "TE",
    "Trailer",
    "Expect",
];

/// Whether a definition's `headers` may not set `name` (case-insensitive):
/// one of [`RESERVED_HEADERS`] or any `Sagaflow-*` header.
pub fn is_reserved_header(name: &str) -> bool {
    RESERVED_HEADERS
        .iter()
        .any(|r| r.eq_ignore_ascii_case(name))
        || name
            .get(..9)
            .is_some_and(|p| p.eq_ignore_ascii_case("sagaflow-"))
}

fn join(loc: &str, key: &str) -> String {
    if loc.is_empty() {
        key.to_string()
    } else {
        format!("{loc}.{key}")
    }
}
