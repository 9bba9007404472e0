//! Seeded fuzzing of everything that reads untrusted text: the definition
//! parsers (saga YAML/JSON, ASL) and the API's JSON inputs (start, callbacks,
//! Step Functions actions), with mutations of real definitions (`examples/`).
//!
//! Each run draws a seed and prints it; `SAGAFLOW_FUZZ_SEED=<seed>` replays
//! a run exactly, `SAGAFLOW_FUZZ_ITERATIONS=<n>` runs longer. A run is
//! bounded by its iteration count and a time budget, so it fits in CI.
//! Asserted: no panic, every answer within a generous bound, no 5xx, and
//! the server still serves afterwards.

mod loopback;

use std::time::{Duration, Instant};

use loopback::Server;
use sagaflow_core::asl::ResourceMap;
use serde_json::{json, Value};

/// A generous bound for one parse or one answer.
const BOUND: Duration = Duration::from_secs(5);
/// Each test stops drawing inputs after this long, whatever the count.
const BUDGET: Duration = Duration::from_secs(4);

const CORPUS: &[&str] = &[
    include_str!("../../../examples/travel-saga.yaml"),
    include_str!("../../../examples/step-functions/saga/humank--lambda-saga-pattern--stepfunc.asl.json"),
    include_str!("../../../examples/step-functions/saga/cdk-patterns--the-saga-stepfunction--single-table.asl.json"),
    include_str!("../../../examples/trip-success.json"),
    PASS,
    "name: small\nsteps:\n  - name: a\n    action: { handler: a }\n    compensation: { handler: undo-a }\n",
];

const PASS: &str = r#"{"StartAt": "Hello", "States": {"Hello": {"Type": "Pass", "Result": {"hello": "world"}, "ResultPath": "$.greeting", "End": true}}}"#;

/// Pieces that matter to JSON and YAML tokenizers.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    ": ",
    "\"",
    "'",
    "- ",
    "? ",
    "#",
    "\n",
    "\r\n",
    "  ",
    "\t",
    "|\n",
    ">-\n",
    "&a ",
    "*a",
    "!!str ",
    "!tag ",
    "\\",
    r"\u",
    r"\ud83c",
    r"\udd97",
    "\u{1f197}",
    "\u{2028}",
    "\u{85}",
    "\u{feff}",
    "null",
    "~",
    "true",
    "1e999",
    "-0",
    "0x1F",
    "18446744073709551616",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "\"StartAt\": \"A\", ",
    "\"Type\": \"Map\", ",
    "\"Next\": \"Hello\", ",
    "$.a[0]",
    "States.Format('{}', $.x)",
    "${SVC}",
    "name: a\n",
];

/// SplitMix64: small, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn seed() -> u64 {
    let seed = std::env::var("SAGAFLOW_FUZZ_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("fuzz seed: {seed} (re-run with SAGAFLOW_FUZZ_SEED={seed})");
    seed
}

fn iterations(default: usize) -> usize {
    std::env::var("SAGAFLOW_FUZZ_ITERATIONS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

/// One to four edits of `text`: tokens inserted or swapped in, ranges
/// deleted, repeated or spliced from another document, deep nesting, or a
/// JSON value replaced inside the document.
fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..=rng.below(4) {
        let at = rng.below(chars.len() + 1);
        match rng.below(8) {
            0 => chars
                .splice(at..at, rng.pick(TOKENS).chars())
                .for_each(drop),
            1 if at < chars.len() => {
                let token: Vec<char> = rng.pick(TOKENS).chars().collect();
                chars[at] = token[0];
            }
            2 => {
                let end = (at + rng.below(64)).min(chars.len());
                chars.drain(at..end);
            }
            3 => {
                let end = (at + rng.below(256)).min(chars.len());
                let piece: Vec<char> = chars[at..end].to_vec();
                let to = rng.below(chars.len() + 1);
                chars.splice(to..to, piece).for_each(drop);
            }
            4 => {
                let other: Vec<char> = corpus(rng).chars().collect();
                let from = rng.below(other.len());
                let end = (from + rng.below(512)).min(other.len());
                let cut = (at + rng.below(128)).min(chars.len());
                chars
                    .splice(at..cut, other[from..end].iter().copied())
                    .for_each(drop);
            }
            5 => {
                let unit = *rng.pick(&["[", "{", "{a: ", "- ", "? ", "[\"]\", ", "{\"a\":"]);
                let repeated = unit.repeat(1 + rng.below(20_000));
                chars.splice(at..at, repeated.chars()).for_each(drop);
            }
            6 => {
                let s: String = chars.iter().collect();
                if let Ok(mut doc) = serde_json::from_str::<Value>(&s) {
                    let depth = rng.below(6);
                    replace_some_node(rng, &mut doc, depth);
                    chars = doc.to_string().chars().collect();
                }
            }
            _ => {
                if let Some(c) = chars.get_mut(at) {
                    *c = char::from_u32(rng.below(0x80) as u32).unwrap_or(' ');
                }
            }
        }
    }
    chars.into_iter().collect()
}

fn random_value(rng: &mut Rng) -> Value {
    match rng.below(8) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 0),
        2 => json!(rng.next() as i64),
        3 => json!(-1.5e300),
        4 => json!(rng.pick(TOKENS)),
        5 => json!([1, "two", {"three": 3}]),
        6 => json!({"Type": "Pass", "End": true}),
        _ => json!({}),
    }
}

fn replace_some_node(rng: &mut Rng, node: &mut Value, depth: usize) {
    match node {
        Value::Object(m) if depth > 0 && !m.is_empty() => {
            let i = rng.below(m.len());
            let child = m.values_mut().nth(i).unwrap();
            replace_some_node(rng, child, depth - 1)
        }
        Value::Array(a) if depth > 0 && !a.is_empty() => {
            let i = rng.below(a.len());
            replace_some_node(rng, &mut a[i], depth - 1)
        }
        _ => *node = random_value(rng),
    }
}

/// A mutation of a document of the corpus.
fn mutated(rng: &mut Rng) -> String {
    let base = corpus(rng);
    mutate(rng, base)
}

fn corpus(rng: &mut Rng) -> &'static str {
    CORPUS[rng.below(CORPUS.len())]
}

#[test]
fn the_definition_parsers_never_panic_and_answer_quickly_on_mutated_definitions() {
    let seed = seed();
    let mut rng = Rng(seed);
    let resources = ResourceMap::default();
    let started = Instant::now();
    let mut ran = 0;
    for i in 0..iterations(3_000) {
        if started.elapsed() > BUDGET {
            break;
        }
        let text = mutated(&mut rng);
        let t = Instant::now();
        let outcome = std::panic::catch_unwind(|| {
            let _ = sagaflow_core::compile_definition(&text, Some("fuzz"), &resources);
            let _ = sagaflow_core::document::parse_json_only(&text);
            let _ = sagaflow_core::document::parse_stored(&text);
        });
        assert!(
            outcome.is_ok(),
            "seed {seed}, iteration {i}: a parser panicked on {text:.400}"
        );
        assert!(
            t.elapsed() < BOUND,
            "seed {seed}, iteration {i}: {:?} for {text:.400}",
            t.elapsed()
        );
        ran += 1;
    }
    eprintln!("{ran} mutated definitions parsed");
    assert!(ran > 0);
}

/// Percent-encodes a path segment (a mutated task token).
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

const MACHINE_ARN: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:fuzz-asl";

/// Step Functions actions and a valid body of each, to be mutated.
fn aws_templates() -> Vec<(&'static str, String)> {
    let execution = "arn:aws:states:us-east-1:123456789012:execution:fuzz-asl:one";
    vec![
        (
            "CreateStateMachine",
            json!({"name": "fuzz-aws", "definition": PASS, "roleArn": "arn:aws:iam::1:role/r"})
                .to_string(),
        ),
        (
            "StartExecution",
            json!({"stateMachineArn": MACHINE_ARN, "name": "n", "input": "{\"a\": [1, 2]}"})
                .to_string(),
        ),
        (
            "DescribeExecution",
            json!({"executionArn": execution}).to_string(),
        ),
        (
            "GetExecutionHistory",
            json!({"executionArn": execution, "maxResults": 5, "reverseOrder": true}).to_string(),
        ),
        (
            "ListExecutions",
            json!({"stateMachineArn": MACHINE_ARN, "statusFilter": "SUCCEEDED", "maxResults": 3})
                .to_string(),
        ),
        (
            "StopExecution",
            json!({"executionArn": execution, "error": "E", "cause": "c"}).to_string(),
        ),
        (
            "SendTaskSuccess",
            json!({"taskToken": "0a1b2c", "output": "{}"}).to_string(),
        ),
        (
            "SendTaskFailure",
            json!({"taskToken": "0a1b2c", "error": "E", "cause": "c"}).to_string(),
        ),
        (
            "SendTaskHeartbeat",
            json!({"taskToken": "0a1b2c"}).to_string(),
        ),
        (
            "DescribeStateMachine",
            json!({"stateMachineArn": MACHINE_ARN}).to_string(),
        ),
        ("ListStateMachines", json!({"maxResults": 2}).to_string()),
        (
            "RedriveExecution",
            json!({"executionArn": execution}).to_string(),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_mutated_inputs_in_bounded_time_without_failing_and_keeps_serving() {
    let seed = seed();
    let mut rng = Rng(seed);
    let server = Server::start().await;
    assert_eq!(server.put_definition("fuzz-asl", PASS).await.status, 201);
    let templates = aws_templates();
    let start = json!({"definition": "fuzz-asl", "input": {"order": {"id": 7, "items": [1, 2]}}, "execution_id": "one"}).to_string();
    let started = Instant::now();
    let mut ran = 0;
    for i in 0..iterations(400) {
        if started.elapsed() > BUDGET {
            break;
        }
        let (what, reply) = match rng.below(5) {
            0 => {
                let text = mutated(&mut rng);
                let name = format!("fuzz-{}", rng.below(3));
                ("PUT definition", server.put_definition(&name, text).await)
            }
            1 => {
                let body = mutate(&mut rng, &start);
                let rb = server
                    .http
                    .post(format!("{}/v1/executions", server.base))
                    .body(body);
                ("POST execution", server.send(rb).await)
            }
            2 => {
                // Cut to a length that fits in a request line.
                let token: String = mutate(&mut rng, "0a1b2c3d4e5f").chars().take(200).collect();
                let token = segment(&token);
                let outcome = *rng.pick(&["success", "failure", "heartbeat", "x"]);
                let body = mutate(
                    &mut rng,
                    r#"{"output": {"ok": true}, "error": "E", "cause": "c"}"#,
                );
                let url = format!("{}/v1/callbacks/{token}/{outcome}", server.base);
                (
                    "callback",
                    server.send(server.http.post(url).body(body)).await,
                )
            }
            3 => {
                // A mutated definition inside a well-formed CreateStateMachine.
                let definition = mutated(&mut rng);
                let body = json!({"name": "fuzz-aws", "definition": definition, "roleArn": "arn:aws:iam::1:role/r"});
                (
                    "CreateStateMachine",
                    server.aws("CreateStateMachine", body.to_string()).await,
                )
            }
            _ => {
                let (action, body) = rng.pick(&templates);
                let body = mutate(&mut rng, body);
                (*action, server.aws(action, body).await)
            }
        };
        assert!(
            reply.status < 500,
            "seed {seed}, iteration {i}, {what}: {} {}",
            reply.status,
            reply.body
        );
        assert!(
            reply.took < BOUND,
            "seed {seed}, iteration {i}, {what}: took {:?}",
            reply.took
        );
        ran += 1;
    }
    eprintln!("{ran} mutated requests answered");
    assert!(ran > 0);
    assert_eq!(server.healthz().await.status, 200);
    let r = server
        .send(
            server
                .http
                .post(format!("{}/v1/executions", server.base))
                .body(
                    json!({"definition": "fuzz-asl", "input": {}, "execution_id": "after-fuzz"})
                        .to_string(),
                ),
        )
        .await;
    assert_eq!(
        r.status, 201,
        "the server still starts executions: {}",
        r.body
    );
}
