//! Step Functions activities: the queues of activity tasks that workers
//! poll (GetActivityTask).
//!
//! An activity task is a callback task whose "participant call" puts the
//! task on its activity's queue instead of calling anyone: the call answers
//! at once, the attempt parks on its token (recorded like any
//! `.waitForTaskToken` task), and the worker that takes the task answers
//! the token with SendTaskSuccess/SendTaskFailure/SendTaskHeartbeat, down
//! the same path as every callback. The attempt's deadline
//! (`TimeoutSeconds`), its heartbeat (`HeartbeatSeconds`) and the state's
//! Retry/Catch apply as for any task.
//!
//! The queues live in memory only: what waits is already durable as the
//! parked Tasks of running executions, so recovery rebuilds them from the
//! replayed histories ([`requeue`], called for every execution resumed at
//! start). Handing a task out is recorded in the store first
//! ([`sagaflow_store::Executor::claim_activity_task`], keyed by the token),
//! so a task goes to one worker only, after a restart too; a task whose
//! worker dies is not handed out again, only its timeouts or its Retry end
//! it, as on AWS. Activities themselves (name, creation date, tags) are
//! store rows.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sagaflow_core::error_name::TASK_FAILED;
use sagaflow_core::event::Millis;
use sagaflow_core::{Effect, ErrorInfo, Execution, Participant, Plan, Request, TaskKind};
use sagaflow_store::ActivityTaskClaim;
use serde_json::Value;
use tokio::sync::Notify;

use crate::{now_ms, Engine, Error, Result, Shared};

/// A task waiting for a worker.
#[derive(Debug, Clone)]
struct Queued {
    token: String,
    input: Value,
    execution_id: String,
    deadline: Millis,
}

#[derive(Default)]
struct Queue {
    tasks: VecDeque<Queued>,
    /// Wakes the pollers waiting on this activity.
    arrived: Arc<Notify>,
}

/// Every activity's queue, by activity name.
#[derive(Default)]
pub(crate) struct Activities {
    queues: Mutex<HashMap<String, Queue>>,
    /// Tokens handed out (this process knows of): their claim records go
    /// when they are answered.
    handed: Mutex<HashSet<String>>,
}

impl Activities {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Queue>> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a task (once: a token already queued is not queued again).
    fn push(&self, name: &str, task: Queued) {
        let mut queues = self.lock();
        let queue = queues.entry(name.to_string()).or_default();
        if queue.tasks.iter().all(|t| t.token != task.token) {
            queue.tasks.push_back(task);
        }
        queue.arrived.notify_waiters();
    }

    fn pop(&self, name: &str) -> Option<Queued> {
        self.lock().get_mut(name)?.tasks.pop_front()
    }

    fn handed(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.handed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn arrivals(&self, name: &str) -> Arc<Notify> {
        self.lock()
            .entry(name.to_string())
            .or_default()
            .arrived
            .clone()
    }
}

/// A task handed to a worker: what GetActivityTask answers.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityTask {
    pub token: String,
    pub input: Value,
}

/// The "participant call" of an activity task: queues it for its
/// activity's workers. An activity that does not exist fails the attempt
/// (`States.TaskFailed`, so its Retry applies: the activity may be created
/// meanwhile).
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
    shared.activities.push(
        name,
        Queued {
            token,
            input: req.input.clone(),
            execution_id: req.execution_id.clone(),
            deadline: req.deadline,
        },
    );
    Ok(Value::Null)
}

/// Recovery: queues again the activity tasks an execution's history shows
/// parked (scheduled, its token not answered). Those a worker took before
/// are skipped when polled (their claim is recorded).
pub(crate) fn requeue(shared: &Shared, plan: &Plan, state: &Execution) {
    for effect in state.outstanding(plan) {
        // A running attempt with a timer (not an invoke) is a parked one.
        let Effect::StartTimer { step, task, .. } = effect else {
            continue;
        };
        if task != TaskKind::Action {
            continue;
        }
        let Ok(req) = state.request(plan, &step, task) else {
            continue;
        };
        if let (Participant::Activity { arn }, Some(token)) = (&req.participant, &req.task_token) {
            if let Some(name) = sagaflow_core::activity_name(arn) {
                shared.activities.push(
                    name,
                    Queued {
                        token: token.clone(),
                        input: req.input.clone(),
                        execution_id: req.execution_id.clone(),
                        deadline: req.deadline,
                    },
                );
            }
        }
    }
}

impl Engine {
    /// GetActivityTask: the next task of activity `name` for `worker`,
    /// waiting up to `wait` for one (`None` then). A task is handed out
    /// once: its claim is recorded before it is returned. Handing it out
    /// counts as a heartbeat (its `HeartbeatSeconds` start again). Stops
    /// waiting (`None`) when `stop` completes or the engine shuts down;
    /// only the waiting is cut short, never a task being handed out.
    pub async fn poll_activity(
        &self,
        name: &str,
        worker: &str,
        wait: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<Option<ActivityTask>> {
        let until = tokio::time::Instant::now() + wait;
        tokio::pin!(stop);
        let activities = &self.shared.activities;
        let arrivals = activities.arrivals(name);
        loop {
            // Registered before the queue is looked at: a task queued in
            // between still wakes this poller.
            let arrived = arrivals.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            while let Some(task) = activities.pop(name) {
                match self.hand_out(name, worker, &task).await {
                    Ok(true) => {
                        return Ok(Some(ActivityTask {
                            token: task.token,
                            input: task.input,
                        }))
                    }
                    Ok(false) => {}
                    Err(e) => {
                        // Not handed out: back in front for the next poller.
                        activities
                            .lock()
                            .entry(name.to_string())
                            .or_default()
                            .tasks
                            .push_front(task);
                        return Err(e);
                    }
                }
            }
            if self.is_shutting_down() {
                return Ok(None);
            }
            tokio::select! {
                _ = &mut arrived => {}
                _ = tokio::time::sleep_until(until) => return Ok(None),
                _ = &mut stop => return Ok(None),
            }
        }
    }

    /// Hands `task` to `worker` if it still waits and nobody took it:
    /// `Ok(false)` drops it (answered, timed out, ended, or taken before).
    async fn hand_out(&self, name: &str, worker: &str, task: &Queued) -> Result<bool> {
        let now = now_ms();
        if now >= task.deadline {
            return Ok(false);
        }
        // Still waiting? (A heartbeat: it also starts the task's allowed
        // silence again, now that a worker has it.)
        match self.callback(&task.token, None).await {
            Ok(_) => {}
            Err(Error::InvalidTaskToken(_) | Error::CallbackNotWaiting(_)) => return Ok(false),
            Err(Error::ExecutionNotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        }
        let claim = ActivityTaskClaim {
            token: task.token.clone(),
            execution_id: task.execution_id.clone(),
            worker: worker.to_string(),
            claimed_at: now,
            expires_at: task.deadline,
        };
        let taken = self.shared.store.claim_activity_task(&claim).await;
        self.shared.health.observe_storage(&taken);
        let taken = taken?;
        // Taken now, or before (then by another worker, perhaps before a
        // restart): either way its record goes when it is answered.
        self.shared.activities.handed().insert(task.token.clone());
        if taken {
            tracing::debug!(activity = %name, worker = %worker, execution = %task.execution_id, "activity task handed out");
        }
        Ok(taken)
    }

    /// After a token was answered: the claim record of an activity task
    /// handed out is no longer needed.
    pub(crate) async fn forget_activity_task(&self, token: &str) {
        if !self.shared.activities.handed().remove(token) {
            return;
        }
        if let Err(e) = self.shared.store.forget_activity_task(token).await {
            tracing::debug!(error = %e, "an answered activity task's claim stays until it expires");
        }
    }
}
