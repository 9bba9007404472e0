//! The on-failure hook: a webhook called when an execution ends `failed`
//! (needs attention) or `compensated`, so no failure goes unnoticed.
//!
//! Deliveries run in their own tasks and retry with backoff; they never
//! block an execution. They are at-least-once while the process lives
//! (a delivery pending when the process dies is not resumed).

use std::time::Duration;

use sagaflow_core::Status;
use sagaflow_runtime::Engine;
use serde_json::json;

use crate::execution_json;

/// Hook settings.
#[derive(Debug, Clone)]
pub struct HookConfig {
    pub url: String,
    /// Bearer token sent to the hook, if any.
    pub token: Option<String>,
    pub max_attempts: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
}

impl HookConfig {
    pub fn new(url: impl Into<String>) -> Self {
        HookConfig {
            url: url.into(),
            token: None,
            max_attempts: 12,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(60),
        }
    }
}

/// Subscribes to finished executions and delivers the interesting ones.
pub fn spawn(engine: &Engine, config: HookConfig) -> tokio::task::JoinHandle<()> {
    let mut rx = engine.subscribe();
    let client = reqwest::Client::new();
    tokio::spawn(async move {
        loop {
            let finished = match rx.recv().await {
                Ok(f) => f,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::error!(
                        missed = n,
                        "on-failure hook fell behind; some notifications were dropped"
                    );
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            let event = match finished.record.status {
                Status::Failed => "execution.failed",
                Status::Compensated => "execution.compensated",
                _ => continue,
            };
            let body = json!({ "event": event, "execution": execution_json(&finished.record) });
            let (client, config) = (client.clone(), config.clone());
            tokio::spawn(async move { deliver(client, config, body).await });
        }
    })
}

async fn deliver(client: reqwest::Client, config: HookConfig, body: serde_json::Value) {
    let mut delay = config.initial_delay;
    for attempt in 1..=config.max_attempts {
        let mut req = client
            .post(&config.url)
            .timeout(Duration::from_secs(10))
            .json(&body);
        if let Some(t) = &config.token {
            req = req.bearer_auth(t);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => {
                metrics::counter!("sagaflow_hook_deliveries_total", "outcome" => "ok").increment(1);
                return;
            }
            Ok(r) => {
                tracing::warn!(attempt, status = %r.status(), url = %config.url, "on-failure hook refused")
            }
            Err(e) => {
                tracing::warn!(attempt, error = %e, url = %config.url, "on-failure hook unreachable")
            }
        }
        if attempt < config.max_attempts {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(config.max_delay);
        }
    }
    metrics::counter!("sagaflow_hook_deliveries_total", "outcome" => "gave_up").increment(1);
    tracing::error!(url = %config.url, execution = %body["execution"]["id"], "on-failure hook gave up");
}
