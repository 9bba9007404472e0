//! Step Functions activities: the activity tasks that workers poll
//! (GetActivityTask), on one node or across a cluster.
//!
//! An activity task is a callback task whose "participant call" offers the
//! task to its activity's workers instead of calling anyone: the call
//! answers at once, the attempt parks on its token (recorded like any
//! `.waitForTaskToken` task), and the worker that takes the task answers
//! the token with SendTaskSuccess/SendTaskFailure/SendTaskHeartbeat, down
//! the same path as every callback. The attempt's deadline
//! (`TimeoutSeconds`), its heartbeat (`HeartbeatSeconds`) and the state's
//! Retry/Catch apply as for any task.
//!
//! The offers are store rows ([`sagaflow_store::Executor::offer_activity_task`]),
//! so a worker polling any node of a cluster gets the tasks of executions
//! that other nodes run, and a restart loses none. Recovery offers again the
//! parked activity Tasks of each resumed execution ([`offer_again`]): an
//! offer that a crash kept from being written is written then, and one that
//! exists or was taken is left as it is. Handing a task out is a claim
//! recorded in the store first, which withdraws the offer in the same write
//! ([`sagaflow_store::Executor::claim_activity_task`], keyed by the token),
//! so a task goes to one worker only, across nodes and restarts; a task
//! whose worker dies is not handed out again, only its timeouts or its Retry
//! end it, as on AWS. Before the claim, the poller's node checks that the
//! task still waits and restarts its heartbeat silence — at the node that
//! owns the execution, through a [`Relay`], when that is another one.
//!
//! Waking: a poller waits on its node's per-activity [`Notify`], which the
//! node's own offers ring; in a cluster it also looks at the store every
//! [`CLUSTER_POLL`], for the offers other nodes write. Activities
//! themselves (name, creation date, tags) are store rows.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sagaflow_core::error_name::TASK_FAILED;
use sagaflow_core::{Effect, ErrorInfo, Execution, Participant, Plan, Request, TaskKind};
use sagaflow_store::{ActivityOffer, ActivityTaskClaim};
use serde_json::Value;
use tokio::sync::Notify;

use crate::{now_ms, Engine, Error, Result, Shared};

/// In a cluster, how often a waiting poller also looks at the store for
/// offers written by other nodes (its own node's offers wake it at once).
pub const CLUSTER_POLL: Duration = Duration::from_secs(1);

/// How many offers a poller looks at in one read of the store.
const BATCH: usize = 16;

/// The wake-ups of this node's pollers, by activity name.
#[derive(Default)]
pub(crate) struct Activities {
    arrivals: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Activities {
    fn arrivals(&self, name: &str) -> Arc<Notify> {
        self.arrivals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone()
    }
}

/// A task handed to a worker: what GetActivityTask answers.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityTask {
    pub token: String,
    pub input: Value,
}

/// Several nodes: how a poller's node reaches the node that owns an
/// execution, to record there that one of its activity tasks is being
/// handed out (a heartbeat: SendTaskHeartbeat, which the API sends to the
/// owner's address). `Ok(true)`: the task still waits; `Ok(false)`: it does
/// not (answered, timed out, or its execution ended); `Err`: the owner did
/// not answer (the task stays offered for a later poll).
pub trait Relay: Send + Sync {
    fn heartbeat<'a>(
        &'a self,
        address: &'a str,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = std::result::Result<bool, String>> + Send + 'a>>;
}

/// The offer of the activity task `req` parks on.
fn offer_of(name: &str, req: &Request, token: String) -> ActivityOffer {
    ActivityOffer {
        token,
        activity: name.to_string(),
        execution_id: req.execution_id.clone(),
        input: req.input.clone(),
        offered_at: now_ms(),
        expires_at: req.deadline,
    }
}

/// Writes an offer and wakes this node's pollers of its activity.
async fn offer(shared: &Shared, offer: ActivityOffer) -> sagaflow_store::Result<()> {
    let written = shared.store.offer_activity_task(&offer).await;
    shared.health.observe_storage(&written);
    if written? {
        shared.activities.arrivals(&offer.activity).notify_waiters();
    }
    Ok(())
}

/// The "participant call" of an activity task: offers it to its
/// activity's workers. An activity that does not exist, or an offer the
/// store refuses, fails the attempt (`States.TaskFailed`, so its Retry
/// applies: the activity may be created meanwhile).
pub(crate) async fn schedule(
    shared: &Shared,
    req: &Request,
    arn: &str,
) -> std::result::Result<Value, ErrorInfo> {
    let name = sagaflow_core::activity_name(arn)
        .ok_or_else(|| ErrorInfo::new(TASK_FAILED, format!("`{arn}` is not an activity ARN")))?;
    let Some(token) = req.task_token.clone() else {
        return Err(ErrorInfo::new(
            TASK_FAILED,
            format!("`{}`: an activity task has no task token", req.step),
        ));
    };
    match shared.store.get_activity(name).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(ErrorInfo::new(
                TASK_FAILED,
                format!("Activity Does Not Exist: '{arn}'"),
            ))
        }
        Err(e) => {
            return Err(ErrorInfo::new(
                TASK_FAILED,
                format!("could not read activity `{name}`: {e}"),
            ))
        }
    }
    offer(shared, offer_of(name, req, token))
        .await
        .map_err(|e| {
            ErrorInfo::new(
                TASK_FAILED,
                format!("could not offer the task to the workers of activity `{name}`: {e}"),
            )
        })?;
    Ok(Value::Null)
}

/// Recovery: offers again the activity tasks an execution's history shows
/// parked (scheduled, its token not answered). An offer that exists, or a
/// task a worker took, stays as it is.
/// `outstanding`: the execution's effects in flight.
pub(crate) async fn offer_again(
    shared: &Shared,
    plan: &Plan,
    state: &Execution,
    outstanding: &[Effect],
) {
    for effect in outstanding {
        // A running attempt with a timer (not an invoke) is a parked one.
        let Effect::StartTimer { step, task, .. } = effect else {
            continue;
        };
        // Only an activity's request is rendered (to offer its input).
        if *task != TaskKind::Action || !state.is_activity_task(plan, step) {
            continue;
        }
        let Ok(req) = state.request(plan, step, *task) else {
            continue;
        };
        if let (Participant::Activity { arn }, Some(token)) = (&req.participant, &req.task_token) {
            if let Some(name) = sagaflow_core::activity_name(arn) {
                if let Err(e) = offer(shared, offer_of(name, &req, token.clone())).await {
                    tracing::warn!(execution = %req.execution_id, activity = %name, error = %e, "an activity task could not be offered again; its timeouts or Retry end it");
                }
            }
        }
    }
}

impl Engine {
    /// GetActivityTask: the next task of activity `name` for `worker`,
    /// waiting up to `wait` for one (`None` then). A task is handed out
    /// once: its claim is recorded before it is returned. Handing it out
    /// counts as a heartbeat (its `HeartbeatSeconds` start again), recorded
    /// at the execution's owner through `relay` when another node owns it.
    /// Stops waiting (`None`) when `stop` completes or the engine shuts
    /// down; only the waiting is cut short, never a task being handed out.
    pub async fn poll_activity(
        &self,
        name: &str,
        worker: &str,
        wait: Duration,
        stop: impl Future<Output = ()>,
        relay: &dyn Relay,
    ) -> Result<Option<ActivityTask>> {
        let until = tokio::time::Instant::now() + wait;
        tokio::pin!(stop);
        let arrivals = self.shared.activities.arrivals(name);
        let clustered = self.node_id().is_some();
        loop {
            // Registered before the store is read: a task offered in
            // between still wakes this poller.
            let arrived = arrivals.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let offers = self
                .shared
                .store
                .activity_offers(name, now_ms(), BATCH)
                .await;
            self.shared.health.observe_storage(&offers);
            for offer in offers? {
                if self.hand_out(worker, &offer, relay).await? {
                    return Ok(Some(ActivityTask {
                        token: offer.token,
                        input: offer.input,
                    }));
                }
            }
            if self.is_shutting_down() {
                return Ok(None);
            }
            let look_again = async {
                if clustered {
                    tokio::time::sleep(CLUSTER_POLL).await
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                _ = &mut arrived => {}
                _ = look_again => {}
                _ = tokio::time::sleep_until(until) => return Ok(None),
                _ = &mut stop => return Ok(None),
            }
        }
    }

    /// Hands the task of `offer` to `worker` if it still waits and nobody
    /// took it: `Ok(false)` passes it by (taken by another poller, or not
    /// waiting any more — then its offer goes — or its owner unreachable).
    async fn hand_out(
        &self,
        worker: &str,
        offer: &ActivityOffer,
        relay: &dyn Relay,
    ) -> Result<bool> {
        // Still waiting? (A heartbeat: it also starts the task's allowed
        // silence again, now that a worker has it.)
        let waits = match self.callback(&offer.token, None).await {
            Ok(_) => true,
            Err(Error::InvalidTaskToken(_) | Error::CallbackNotWaiting(_)) => false,
            Err(Error::ExecutionNotFound(_)) => false,
            Err(Error::OwnedElsewhere {
                address: Some(address),
                node,
                ..
            }) => match relay.heartbeat(&address, &offer.token).await {
                Ok(waits) => waits,
                Err(why) => {
                    tracing::warn!(node = %node, execution = %offer.execution_id, error = %why, "the owner of an activity task's execution did not answer; the task stays offered");
                    return Ok(false);
                }
            },
            Err(Error::OwnedElsewhere { .. } | Error::Busy(_) | Error::Fenced) => return Ok(false),
            Err(e) => return Err(e),
        };
        if !waits {
            self.forget_activity_task(&offer.token).await;
            return Ok(false);
        }
        let claim = ActivityTaskClaim {
            token: offer.token.clone(),
            execution_id: offer.execution_id.clone(),
            worker: worker.to_string(),
            claimed_at: now_ms(),
            expires_at: offer.expires_at,
        };
        let taken = self.shared.store.claim_activity_task(&claim).await;
        self.shared.health.observe_storage(&taken);
        let taken = taken?;
        if taken {
            tracing::debug!(activity = %offer.activity, worker = %worker, execution = %offer.execution_id, "activity task handed out");
        }
        Ok(taken)
    }

    /// After an activity task was answered, or found not waiting: its offer
    /// and the record of its taking are no longer needed.
    pub(crate) async fn forget_activity_task(&self, token: &str) {
        if let Err(e) = self.shared.store.forget_activity_task(token).await {
            tracing::debug!(error = %e, "an answered activity task's records stay until its deadline");
        }
    }
}
