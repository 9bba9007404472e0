//! The on-failure hook: a webhook called when an execution ends `failed`
//! (needs attention), `compensated` or `timed_out` (a durable function past
//! its `ExecutionTimeout`, an ASL machine past `TimeoutSeconds`), so no
//! failure goes unnoticed.
//!
//! Delivery is fed from the store's **notification outbox**, not from memory:
//! the append that finishes an execution with a status in the engine's
//! [`Config::notify_on`](sagaflow_runtime::Config::notify_on) also records a
//! notification, in the same transaction. A delivery loop polls the pending
//! notifications (every [`POLL_INTERVAL`], and at once when the engine
//! announces a failed or compensated execution), POSTs each one with
//! retries and backoff in its own task — never blocking an execution — and
//! acknowledges (deletes) it after a 2xx answer. A notification pending when
//! the process dies is delivered after the restart: delivery is
//! **at-least-once** (a crash between the receiver's 2xx and the
//! acknowledgement repeats it), so receivers should deduplicate by execution
//! id and event.
//!
//! A notification whose delivery gives up after `max_attempts` is not
//! dropped: it moves from the outbox to the store's **dead letters** (one
//! transaction), so a receiver that is down for good does not keep the loop
//! busy and nothing is lost. It is counted as
//! `sagaflow_hook_deliveries_total{outcome="dead_letter"}` and logged as an
//! error naming the execution; `GET /v1/dead-letters` lists them and
//! `POST /v1/dead-letters/{id}/replay` puts one back in the outbox.
//!
//! The body is `{"event": "execution.<status>", "execution": {…}}`, where the
//! status is the one the notification was recorded with and the execution is
//! its record when the delivery is made; a stuck compensation sends
//! `{"event": "execution.stuck", "execution": {…}}`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sagaflow_core::Status;
use sagaflow_runtime::{Cluster, Engine};
use sagaflow_store::{DeadLetter, Notification, Store};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::execution_json;

/// Several nodes: how long a node's claim on a notification keeps the
/// others from delivering it. It covers a whole delivery with its retries
/// (12 attempts, backoff up to a minute); a node that dies mid-delivery
/// delays the notification by at most this much.
const CLAIM_TTL_MS: u64 = 15 * 60 * 1000;

/// How often the outbox is polled when nothing wakes the loop earlier.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The most notifications being delivered at once; the rest wait in the
/// outbox for a free slot.
const MAX_IN_FLIGHT: usize = 256;

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

/// Notification ids being delivered, so the poll does not pick them up twice.
type InProgress = Arc<Mutex<HashSet<u64>>>;

fn lock(set: &InProgress) -> std::sync::MutexGuard<'_, HashSet<u64>> {
    set.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts the delivery loop over the engine store's outbox. The engine
/// records notifications only for the statuses in its `Config::notify_on`
/// (the server sets `[Failed, Compensated]` when a hook is configured).
/// The loop ends when the engine is dropped.
pub fn spawn(engine: &Engine, config: HookConfig) -> tokio::task::JoinHandle<()> {
    let mut finished = engine.subscribe();
    let store = engine.store().clone();
    // The engine's client: the same TLS trust and client certificate as
    // participant calls.
    let client = engine.http_client().clone();
    let in_progress: InProgress = Arc::default();
    let cluster = engine.cluster().cloned();
    tokio::spawn(async move {
        loop {
            poll(&store, cluster.as_deref(), &client, &config, &in_progress).await;
            // Sleep until the next poll, or until an execution ends in a way
            // that may have recorded a notification (it is durable by then:
            // the engine announces a finish only after its append).
            let wake = tokio::time::sleep(POLL_INTERVAL);
            tokio::pin!(wake);
            loop {
                tokio::select! {
                    _ = &mut wake => break,
                    received = finished.recv() => match received {
                        Ok(f) if matches!(f.record.status, Status::Failed | Status::Compensated | Status::TimedOut) => break,
                        Ok(_) => {}
                        // Missed announcements: the poll finds their notifications.
                        Err(RecvError::Lagged(_)) => break,
                        // The engine is gone.
                        Err(RecvError::Closed) => return,
                    },
                }
            }
        }
    })
}

/// Starts a delivery for every pending notification not already being
/// delivered, up to [`MAX_IN_FLIGHT`] at once.
async fn poll(
    store: &Arc<dyn Store>,
    cluster: Option<&Cluster>,
    client: &reqwest::Client,
    config: &HookConfig,
    in_progress: &InProgress,
) {
    let busy = lock(in_progress).len();
    if busy >= MAX_IN_FLIGHT {
        return;
    }
    let pending = match cluster {
        // Several nodes: each notification is claimed by the node that
        // delivers it (those in progress here are claimed already, so they
        // are not among the returned ones).
        Some(cluster) => {
            cluster
                .leases()
                .claim_notifications(cluster.node_id(), CLAIM_TTL_MS, MAX_IN_FLIGHT - busy)
                .await
        }
        // Ids only grow and deliveries are started oldest first, so the ones
        // in progress are among the first MAX_IN_FLIGHT pending: that many
        // rows always include every notification that can be started now.
        None => store.pending_notifications(MAX_IN_FLIGHT).await,
    };
    let pending = match pending {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "reading the hook's outbox failed; retrying");
            return;
        }
    };
    for n in pending {
        {
            let mut set = lock(in_progress);
            if set.len() >= MAX_IN_FLIGHT || !set.insert(n.id) {
                continue;
            }
        }
        let (store, client, config, in_progress) = (
            store.clone(),
            client.clone(),
            config.clone(),
            in_progress.clone(),
        );
        tokio::spawn(async move {
            let id = n.id;
            handle(&store, &client, &config, n).await;
            // Only after the acknowledgement (or a failure that leaves the
            // notification pending), so the poll never starts it twice.
            lock(&in_progress).remove(&id);
        });
    }
}

/// Delivers one notification and acknowledges it once it is done with.
async fn handle(
    store: &Arc<dyn Store>,
    client: &reqwest::Client,
    config: &HookConfig,
    n: Notification,
) {
    let record = match store.get_execution(&n.execution_id).await {
        Ok(r) => r,
        Err(e @ sagaflow_store::Error::NotFound { .. }) => {
            tracing::error!(notification = n.id, execution = %n.execution_id, error = %e,
                "on-failure hook: the execution of a notification is gone; dropping it");
            ack(store, &n).await;
            return;
        }
        Err(e) => {
            // Left pending: the next poll tries again.
            tracing::warn!(notification = n.id, execution = %n.execution_id, error = %e,
                "on-failure hook: reading the execution failed; will retry");
            return;
        }
    };
    let body = json!({
        "event": n.event(),
        "execution": execution_json(&record),
    });
    match deliver(client, config, &body).await {
        Ok(()) => {
            metrics::counter!("sagaflow_hook_deliveries_total", "outcome" => "ok").increment(1);
            ack(store, &n).await;
        }
        Err(last_error) => {
            metrics::counter!("sagaflow_hook_deliveries_total", "outcome" => "dead_letter")
                .increment(1);
            tracing::error!(
                url = %config.url,
                execution = %n.execution_id,
                event = %n.event(),
                attempts = config.max_attempts,
                error = %last_error,
                "on-failure hook gave up; the notification is kept as a dead letter (GET /v1/dead-letters)"
            );
            let dead = DeadLetter {
                notification: n.clone(),
                failed_at: crate::aws::now_ms(),
                attempts: config.max_attempts,
                last_error,
            };
            // If this fails the notification stays pending and is delivered
            // again later: still nothing lost.
            if let Err(e) = store.bury_notification(dead).await {
                tracing::warn!(notification = n.id, execution = %n.execution_id, error = %e,
                    "on-failure hook: keeping a dead letter failed; the notification stays pending");
            }
        }
    }
}

/// Removes a notification from the outbox. If that fails it stays pending
/// and is delivered again (at-least-once).
async fn ack(store: &Arc<dyn Store>, n: &Notification) {
    if let Err(e) = store.ack_notification(n.id).await {
        tracing::warn!(notification = n.id, execution = %n.execution_id, error = %e,
            "on-failure hook: acknowledging a notification failed; it will be delivered again");
    }
}

/// POSTs `body` until a 2xx answer, or `max_attempts` (the last error).
async fn deliver(
    client: &reqwest::Client,
    config: &HookConfig,
    body: &serde_json::Value,
) -> Result<(), String> {
    let mut delay = config.initial_delay;
    let mut last_error = String::new();
    for attempt in 1..=config.max_attempts {
        let mut req = client
            .post(&config.url)
            .timeout(Duration::from_secs(10))
            .json(body);
        if let Some(t) = &config.token {
            req = req.bearer_auth(t);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => {
                tracing::warn!(attempt, status = %r.status(), url = %config.url, "on-failure hook refused");
                last_error = format!("the hook answered {}", r.status());
            }
            Err(e) => {
                tracing::warn!(attempt, error = %e, url = %config.url, "on-failure hook unreachable");
                last_error = format!("the hook is unreachable: {e}");
            }
        }
        if attempt < config.max_attempts {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(config.max_delay);
        }
    }
    Err(last_error)
}
