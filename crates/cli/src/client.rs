//! Client commands: thin wrappers over the HTTP API with human-readable
//! tables by default and `--json` for scripts.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context};
use serde_json::{json, Value};

use crate::Remote;

/// A minimal API client.
pub struct Api {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Api {
    pub fn new(remote: &Remote) -> Self {
        Self::at(&remote.server, remote.token.clone())
    }

    pub fn at(base: &str, token: Option<String>) -> Self {
        Api {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::new(),
        }
    }

    /// Sends a request; a non-2xx answer becomes an error carrying the API's code and message.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Body>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{}", self.base, path);
        let mut rb = self
            .http
            .request(method.clone(), &url)
            .timeout(Duration::from_secs(330));
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        rb = match body {
            None => rb,
            Some(Body::Json(v)) => rb.json(&v),
            Some(Body::Text(t)) => rb.header("content-type", "application/yaml").body(t),
        };
        let resp = rb.send().await.map_err(|e| {
            anyhow!(
                "cannot reach the server at {}: {e} (is `sagaflow server` running? see --server)",
                self.base
            )
        })?;
        let status = resp.status();
        let text = resp.text().await.context("reading the server's answer")?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(value);
        }
        let err = &value["error"];
        let code = err["code"].as_str().unwrap_or("http_error");
        let message = err["message"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| value.to_string());
        let mut msg = format!("{code} ({}): {message}", status.as_u16());
        if let Some(vs) = err["details"]["violations"].as_array() {
            for v in vs {
                msg.push_str(&format!(
                    "\n  {}: {} — {}",
                    v["location"].as_str().unwrap_or(""),
                    v["code"].as_str().unwrap_or(""),
                    v["message"].as_str().unwrap_or("")
                ));
            }
        }
        Err(anyhow!(msg))
    }
}

pub enum Body {
    Json(Value),
    Text(String),
}

fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// Prints rows as aligned columns.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{:<w$}", c, w = widths[i]))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_uppercase()).collect());
    for r in rows {
        line(r.clone());
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn validate(file: &Path, json_out: bool) -> anyhow::Result<ExitCode> {
    let source =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let doc_is_asl = sagaflow_core::definition::parse_document(&source)
        .map(|d| sagaflow_core::asl::is_asl(&d))
        .unwrap_or(false);
    if doc_is_asl {
        // Resources are bound by the server's resource map, checked at
        // deploy; here the rest of the machine is checked.
        let name = "validate";
        let vs = match sagaflow_core::compile_definition(&source, Some(name), &Default::default()) {
            Ok(_) => Vec::new(),
            Err(sagaflow_core::Error::InvalidDefinition(vs)) => vs
                .into_iter()
                .filter(|v| v.code != "unknown_resource")
                .collect(),
            Err(other) => return Err(other.into()),
        };
        if vs.is_empty() {
            if json_out {
                print_json(&json!({ "valid": true, "format": "asl" }));
            } else {
                println!(
                    "{}: valid Amazon States Language machine (Task resources are checked at deploy, against the server's resource map)",
                    file.display()
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        if json_out {
            print_json(&json!({ "valid": false, "violations": vs }));
        } else {
            eprintln!("{}: {} problem(s)", file.display(), vs.len());
            for v in &vs {
                println!("{}: {}: {}", v.location, v.code, v.message);
            }
        }
        return Ok(ExitCode::FAILURE);
    }
    match sagaflow_core::compile(&source, None) {
        Ok(plan) => {
            let steps = plan.saga().map_or(&[][..], |s| &s.steps);
            if json_out {
                print_json(
                    &json!({ "valid": true, "name": plan.name, "steps": steps.len(), "variables": plan.variables }),
                );
            } else {
                let roles: Vec<String> = steps
                    .iter()
                    .map(|s| {
                        format!(
                            "{} ({})",
                            s.name,
                            serde_json::to_value(s.role)
                                .map(|v| s_of(&v))
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                println!(
                    "{}: valid saga `{}` with {} steps: {}",
                    file.display(),
                    plan.name,
                    steps.len(),
                    roles.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(sagaflow_core::Error::InvalidDefinition(vs)) => {
            if json_out {
                print_json(&json!({ "valid": false, "violations": vs }));
            } else {
                eprintln!("{}: {} problem(s)", file.display(), vs.len());
                for v in &vs {
                    println!("{}: {}: {}", v.location, v.code, v.message);
                }
            }
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

fn s_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

pub async fn deploy(
    remote: &Remote,
    file: &Path,
    name: Option<String>,
) -> anyhow::Result<ExitCode> {
    let source =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let name = match name {
        Some(n) => n,
        None => {
            let doc = sagaflow_core::definition::parse_document(&source)?;
            doc["name"]
                .as_str()
                .map(String::from)
                .ok_or_else(|| anyhow!("{} has no `name`; pass --name", file.display()))?
        }
    };
    let v = Api::new(remote)
        .call(
            reqwest::Method::PUT,
            &format!("/v1/definitions/{}", enc(&name)),
            Some(Body::Text(source)),
        )
        .await?;
    if remote.json {
        print_json(&v);
    } else if v["created"].as_bool() == Some(true) {
        eprintln!("deployed `{}` version {}", s(&v["name"]), s(&v["version"]));
    } else {
        eprintln!(
            "`{}` is unchanged (version {})",
            s(&v["name"]),
            s(&v["version"])
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `--input` is a JSON value (`{...}`, `[...]`, a string, number, `true`,
/// `false` or `null`), or the path of a file holding one.
pub fn read_input(input: &str) -> anyhow::Result<Value> {
    let as_json = serde_json::from_str::<Value>(input);
    let trimmed = input.trim_start();
    if as_json.is_ok() || trimmed.starts_with(['{', '[', '"']) {
        return as_json.with_context(|| {
            format!(
                "--input is not valid JSON: {}",
                input.chars().take(80).collect::<String>()
            )
        });
    }
    let text = std::fs::read_to_string(input)
        .with_context(|| format!("--input `{input}` is neither JSON nor a readable file"))?;
    serde_json::from_str(&text)
        .with_context(|| format!("--input file {input} does not hold valid JSON"))
}

pub async fn start(
    remote: &Remote,
    definition: &str,
    input: &str,
    id: Option<String>,
    wait: Option<f64>,
) -> anyhow::Result<ExitCode> {
    let input = read_input(input)?;
    let mut body = json!({ "definition": definition, "input": input });
    if let Some(id) = id {
        body["execution_id"] = json!(id);
    }
    let path = match wait {
        Some(w) => format!("/v1/executions?wait={w}"),
        None => "/v1/executions".into(),
    };
    let v = Api::new(remote)
        .call(reqwest::Method::POST, &path, Some(Body::Json(body)))
        .await?;
    print_execution(remote, &v);
    let status = v.get("status").and_then(Value::as_str).unwrap_or("");
    Ok(match wait {
        None => ExitCode::SUCCESS,
        Some(_) => ExitCode::from(wait_exit_code(status)),
    })
}

/// The exit code of `start --wait`, so a script can tell the outcomes
/// apart: 0 succeeded, 3 finished without succeeding (compensated,
/// cancelled, failed, …), 4 still running when the wait ended.
pub fn wait_exit_code(status: &str) -> u8 {
    match status {
        "succeeded" => 0,
        "running" | "compensating" => 4,
        _ => 3,
    }
}

pub async fn dead_letters(remote: &Remote, limit: usize) -> anyhow::Result<ExitCode> {
    let v = Api::new(remote)
        .call(
            reqwest::Method::GET,
            &format!("/v1/dead-letters?limit={limit}"),
            None,
        )
        .await?;
    if remote.json {
        print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    let dead = v
        .get("dead_letters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if dead.is_empty() {
        println!("no dead letters: every notification was delivered");
    }
    for d in dead {
        let field = |k: &str| {
            d.get(k)
                .map(|v| {
                    v.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| v.to_string())
                })
                .unwrap_or_default()
        };
        println!(
            "{}  {}  {}  gave up at {} after {} attempts: {}",
            field("id"),
            field("event"),
            field("execution_id"),
            field("failed_at"),
            field("attempts"),
            field("last_error")
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn replay_dead_letter(remote: &Remote, id: &str) -> anyhow::Result<ExitCode> {
    let v = Api::new(remote)
        .call(
            reqwest::Method::POST,
            &format!("/v1/dead-letters/{}/replay", enc(id)),
            None,
        )
        .await?;
    if remote.json {
        print_json(&v);
    } else {
        println!(
            "dead letter {id} is pending again as notification {}",
            v.pointer("/notification/id")
                .cloned()
                .unwrap_or(Value::Null)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_execution(remote: &Remote, v: &Value) {
    if remote.json {
        print_json(v);
        return;
    }
    table(
        &["field", "value"],
        &[
            vec!["id".into(), s(&v["id"])],
            vec![
                "definition".into(),
                format!("{} (version {})", s(&v["definition"]), s(&v["version"])),
            ],
            vec!["status".into(), s(&v["status"])],
            vec!["started".into(), s(&v["started_at"])],
            vec!["updated".into(), s(&v["updated_at"])],
            vec!["events".into(), s(&v["events"])],
            vec![
                "error".into(),
                if v["error"].is_null() {
                    "-".into()
                } else {
                    format!("{}: {}", s(&v["error"]["error"]), s(&v["error"]["cause"]))
                },
            ],
            vec!["input".into(), v["input"].to_string()],
            vec!["output".into(), s(&v["output"])],
        ],
    );
}

pub async fn list(
    remote: &Remote,
    status: Option<String>,
    definition: Option<String>,
    limit: usize,
    cursor: Option<String>,
) -> anyhow::Result<ExitCode> {
    let mut q = vec![format!("limit={limit}")];
    if let Some(st) = status {
        q.push(format!("status={}", enc(&st)));
    }
    if let Some(d) = definition {
        q.push(format!("definition={}", enc(&d)));
    }
    if let Some(c) = cursor {
        q.push(format!("cursor={}", enc(&c)));
    }
    let v = Api::new(remote)
        .call(
            reqwest::Method::GET,
            &format!("/v1/executions?{}", q.join("&")),
            None,
        )
        .await?;
    if remote.json {
        print_json(&v);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = v["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    vec![
                        s(&e["id"]),
                        format!("{}@{}", s(&e["definition"]), s(&e["version"])),
                        s(&e["status"]),
                        s(&e["started_at"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    table(&["id", "definition", "status", "started"], &rows);
    if let Some(c) = v["next_cursor"].as_str() {
        eprintln!("more: --cursor {c}");
    }
    Ok(ExitCode::SUCCESS)
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub async fn show(remote: &Remote, id: &str) -> anyhow::Result<ExitCode> {
    let v = Api::new(remote)
        .call(
            reqwest::Method::GET,
            &format!("/v1/executions/{}", enc(id)),
            None,
        )
        .await?;
    print_execution(remote, &v);
    Ok(ExitCode::SUCCESS)
}

/// One line describing a history event.
pub fn describe_event(e: &Value) -> String {
    let step = s(&e["step"]);
    let attempt = s(&e["attempt"]);
    match e["type"].as_str().unwrap_or("") {
        "execution_started" => format!("started {} v{}", s(&e["definition"]), s(&e["version"])),
        "step_scheduled" => format!("→ {step} (attempt {attempt})"),
        "step_succeeded" => format!("✓ {step} succeeded"),
        "step_failed" => format!(
            "✗ {step} failed: {}: {}",
            s(&e["error"]["error"]),
            s(&e["error"]["cause"])
        ),
        "retry_scheduled" => {
            // The time of day is enough to read a backoff; the date is in `at`.
            let fire_at = s(&e["fire_at"]);
            let time = fire_at
                .split_once('T')
                .map(|(_, t)| t.to_string())
                .unwrap_or(fire_at);
            format!("↻ {} of {step}: attempt {attempt} at {time}", s(&e["task"]))
        }
        "task_parked" => format!("⏸ {step} waits for its callback"),
        "rollback_started" => format!(
            "⟲ rolling back because {step} failed ({})",
            s(&e["error"]["error"])
        ),
        "cancel_requested" => format!("⟲ cancel requested: {}", s(&e["reason"])),
        "compensation_scheduled" => format!("← compensating {step} (attempt {attempt})"),
        "compensation_succeeded" => format!("✓ {step} compensated"),
        "compensation_failed" => format!(
            "✗ compensation of {step} failed: {}: {}",
            s(&e["error"]["error"]),
            s(&e["error"]["cause"])
        ),
        "execution_timed_out" => "⟲ the execution ran out of time: rolling back".to_string(),
        "execution_redriven" => "↺ redriven".to_string(),
        "execution_finished" => format!("finished: {}", s(&e["status"])),
        // A durable execution's events carry their fact: without it, its
        // history was a column of bare `durable_operation` lines.
        "durable_operation" => {
            let fact = &e["fact"];
            let what = [&fact["op"]["name"], &fact["function_name"], &fact["id"]]
                .into_iter()
                .find_map(Value::as_str)
                .unwrap_or_default();
            format!("{} {what}", s(&fact["type"]))
                .trim_end()
                .to_string()
        }
        "durable_invocation" => format!(
            "invocation {}: {}",
            s(&e["fact"]["number"]),
            s(&e["fact"]["type"])
        ),
        other => other.to_string(),
    }
}

pub async fn history(remote: &Remote, id: &str, follow: bool) -> anyhow::Result<ExitCode> {
    let api = Api::new(remote);
    // The server pages a history; every page's `next_cursor` leads to the
    // next until it is null. With --follow, polling then goes on from the
    // last event read.
    let mut after = 0u64;
    let mut cursor: Option<String> = None;
    let mut everything: Vec<Value> = Vec::new();
    loop {
        let query = match &cursor {
            Some(c) => format!("cursor={}", enc(c)),
            None => format!("after={after}"),
        };
        let v = api
            .call(
                reqwest::Method::GET,
                &format!("/v1/executions/{}/history?{query}", enc(id)),
                None,
            )
            .await?;
        let events = v["events"].as_array().cloned().unwrap_or_default();
        for e in &events {
            after = after.max(e["seq"].as_u64().unwrap_or(after));
        }
        cursor = v["next_cursor"].as_str().map(str::to_string);
        if remote.json && !follow {
            // One document, as before paging: every event of every page.
            everything.extend(events);
            if cursor.is_none() {
                let mut doc = v;
                doc["events"] = Value::Array(everything);
                print_json(&doc);
                return Ok(ExitCode::SUCCESS);
            }
            continue;
        }
        if remote.json {
            for e in &events {
                println!("{e}");
            }
        } else {
            for e in &events {
                println!(
                    "{:>4}  {}  {}",
                    s(&e["seq"]),
                    s(&e["at"]),
                    describe_event(e)
                );
            }
        }
        if cursor.is_some() {
            continue;
        }
        let terminal = !matches!(
            v["execution"]["status"].as_str(),
            Some("running") | Some("compensating")
        );
        if !follow || terminal {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

pub async fn cancel(remote: &Remote, id: &str, reason: Option<String>) -> anyhow::Result<ExitCode> {
    let body = reason
        .map(|r| json!({ "reason": r }))
        .unwrap_or_else(|| json!({}));
    let v = Api::new(remote)
        .call(
            reqwest::Method::POST,
            &format!("/v1/executions/{}/cancel", enc(id)),
            Some(Body::Json(body)),
        )
        .await?;
    print_execution(remote, &v);
    Ok(ExitCode::SUCCESS)
}

pub async fn redrive(remote: &Remote, id: &str) -> anyhow::Result<ExitCode> {
    let v = Api::new(remote)
        .call(
            reqwest::Method::POST,
            &format!("/v1/executions/{}/redrive", enc(id)),
            None,
        )
        .await?;
    print_execution(remote, &v);
    Ok(ExitCode::SUCCESS)
}
