//! What the runtime asks the interpreter between events: the next thing
//! to record, what a due timer means, the effects in flight after a
//! restart, whether the execution only waits, and the participant call
//! (request) of a running Task.

// The interpreter's own types and helpers, as in the parent module.
use super::*;

impl Run {
    /// What the decider must record next.
    pub(crate) fn next_todo(&self, m: &Machine) -> Option<Todo> {
        self.pending.iter().find_map(|p| self.todo_of(m, p))
    }

    pub(super) fn todo_of(&self, m: &Machine, p: &Pending) -> Option<Todo> {
        Some(match p {
            Pending::Schedule(key) => {
                let slot = self.slots.get(key)?;
                let (timeout_ms, callback) = self.schedule_spec(m, key)?;
                Todo::Schedule {
                    step: key.clone(),
                    attempt: slot.attempt,
                    timeout_ms,
                    callback,
                }
            }
            Pending::Retry(key) => {
                let slot = self.slots.get(key)?;
                let Phase::RetryDue { delay_ms, jitter } = slot.phase else {
                    return None;
                };
                Todo::Retry {
                    step: key.clone(),
                    attempt: slot.attempt,
                    delay_ms,
                    jitter,
                }
            }
            Pending::Finish {
                status,
                output,
                error,
            } => Todo::Finish {
                status: *status,
                output: output.clone(),
                error: error.clone(),
            },
        })
    }

    /// The attempt timeout of a Task slot and whether it takes a callback.
    pub(crate) fn schedule_spec(&self, m: &Machine, key: &str) -> Option<(u64, bool)> {
        let slot = self.slots.get(key)?;
        if slot.io.is_some() {
            return Some((DEFAULT_TASK_TIMEOUT_S * 1000, false));
        }
        let st = self.state(m, slot.thread, slot.state);
        let Kind::Task(task) = &st.kind else {
            return None;
        };
        let ctx = self.context(&st.name, slot.entered_at, Some(slot.attempt - 1), None);
        let vars = self.threads[slot.thread].vars.clone();
        let ctx = Env::new(&ctx, &vars);
        let default = if task.wait_for_token {
            DEFAULT_TOKEN_TIMEOUT_S
        } else {
            DEFAULT_TASK_TIMEOUT_S
        };
        // A bad TimeoutSecondsPath falls back to the default rather than
        // failing the schedule; the request itself reports path errors.
        let timeout = task
            .timeout
            .as_ref()
            .and_then(|t| {
                self.task_seconds(t, key, slot, ctx, "TimeoutSecondsPath")
                    .ok()
            })
            .unwrap_or(default);
        Some((timeout.saturating_mul(1000), task.wait_for_token))
    }

    /// Whether `step` runs attempt `attempt` (an answer for it is not stale).
    pub(crate) fn is_running(&self, step: &str, attempt: u32) -> bool {
        self.slots
            .get(step)
            .is_some_and(|s| s.attempt == attempt && matches!(s.phase, Phase::Running { .. }))
    }

    /// Whether `step` is parked on a callback.
    pub(crate) fn is_parked_task(&self, step: &str, attempt: u32) -> bool {
        self.slots.get(step).is_some_and(|s| {
            s.attempt == attempt && matches!(s.phase, Phase::Running { parked: true, .. })
        })
    }

    /// What a timer for `step` means now.
    pub(crate) fn timer(&self, m: &Machine, step: &str, attempt: u32, now: Millis) -> TimerMeaning {
        let Some(slot) = self.slots.get(step) else {
            return TimerMeaning::Stale;
        };
        if slot.attempt != attempt {
            return TimerMeaning::Stale;
        }
        match slot.phase {
            Phase::Waiting { .. } => TimerMeaning::Fire,
            Phase::RetryWaiting { .. } if self.is_fan(m, step) => TimerMeaning::Fire,
            Phase::RetryWaiting { .. } => TimerMeaning::Reschedule,
            Phase::Running { deadline, .. } if now >= deadline => TimerMeaning::Deadline,
            _ => TimerMeaning::Stale,
        }
    }

    /// Effects in flight after a replay (the envelope adds the deadline).
    pub(crate) fn outstanding(&self) -> Vec<Effect> {
        let mut out = Vec::new();
        for (key, slot) in &self.slots {
            let step = key.clone();
            let attempt = slot.attempt;
            match &slot.phase {
                Phase::Running {
                    deadline,
                    parked: true,
                    ..
                } => out.push(Effect::StartTimer {
                    step,
                    task: TaskKind::Action,
                    attempt,
                    fire_at: *deadline,
                }),
                Phase::Running { deadline, .. } => out.push(Effect::Invoke {
                    step,
                    task: TaskKind::Action,
                    attempt,
                    deadline: *deadline,
                }),
                Phase::RetryWaiting { fire_at } | Phase::Waiting { fire_at } => {
                    out.push(Effect::StartTimer {
                        step,
                        task: TaskKind::Action,
                        attempt,
                        fire_at: *fire_at,
                    })
                }
                _ => {}
            }
        }
        out
    }

    /// Whether the execution only waits for callbacks without heartbeats.
    pub(crate) fn is_parked(&self, m: &Machine) -> bool {
        if !self.pending.is_empty() {
            return false;
        }
        let mut waiting = false;
        for slot in self.slots.values() {
            match &slot.phase {
                Phase::Fanout => {}
                Phase::Running { parked: true, .. } => {
                    let st = self.state(m, slot.thread, slot.state);
                    if matches!(&st.kind, Kind::Task(t) if t.heartbeat.is_some()) {
                        return false;
                    }
                    waiting = true;
                }
                _ => return false,
            }
        }
        waiting
    }

    /// A Task's parameters as Step Functions shows them in `TaskScheduled`:
    /// the rendered Parameters (for `lambda:invoke`, `FunctionName` and
    /// `Payload`), or the effective input of a plain Lambda ARN.
    pub(super) fn task_parameters(&self, m: &Machine, step: &str) -> Value {
        let Ok(req) = self.request(m, step) else {
            return Value::Null;
        };
        let Some(slot) = self.slots.get(step) else {
            return req.input;
        };
        match &self.state(m, slot.thread, slot.state).kind {
            Kind::Task(t) if matches!(t.integration, Integration::LambdaInvoke) => {
                let st = self.state(m, slot.thread, slot.state);
                let ctx = self.context(
                    &st.name,
                    slot.entered_at,
                    Some(slot.attempt - 1),
                    req.task_token.as_deref(),
                );
                let vars = self.threads[slot.thread].vars.clone();
                let ctx = Env::new(&ctx, &vars);
                self.request_body(st, slot, step, ctx)
                    .ok()
                    .flatten()
                    .unwrap_or(req.input)
            }
            _ => req.input,
        }
    }

    /// A Task's rendered request: its Parameters over the effective input,
    /// or a JSONata state's Arguments (evaluated here, at each attempt, with
    /// `$states.context.Task.Token`; an error is the attempt's failure, for
    /// Retry and Catch). `None` without either: the effective input is sent.
    pub(super) fn request_body(
        &self,
        st: &State,
        slot: &Slot,
        step: &str,
        ctx: Env<'_>,
    ) -> Result<Option<Value>, ErrorInfo> {
        let seed = format!("{step}#{}", slot.attempt);
        if let Some(js) = &st.jsonata {
            let Some(t) = &js.arguments else {
                return Ok(None);
            };
            let scope = self.js_scope(&slot.raw, ctx, &seed, slot.entered_at);
            return t.evaluate(&scope).map(Some);
        }
        match &st.parameters {
            Some(p) => data::render(p, &slot.effective, ctx, &mut seeded(&seed)).map(Some),
            None => Ok(None),
        }
    }

    /// Whether `step` waits in an activity Task: its participant is fixed by
    /// its `Resource`, so nothing is rendered to tell (this runs for every
    /// callback answered).
    pub(crate) fn is_activity_task(&self, m: &Machine, step: &str) -> bool {
        let Some(slot) = self.slots.get(step).filter(|s| s.io.is_none()) else {
            return false;
        };
        matches!(
            &self.state(m, slot.thread, slot.state).kind,
            Kind::Task(t) if matches!(
                t.integration,
                Integration::Function { participant: Participant::Activity { .. } }
            )
        )
    }

    /// The participant call for the running attempt of `step`.
    pub(crate) fn request(&self, m: &Machine, step: &str) -> Result<Request, ErrorInfo> {
        let slot = self
            .slots
            .get(step)
            .ok_or_else(|| runtime(format!("no state `{step}` is waiting")))?;
        let Phase::Running {
            deadline, nonce, ..
        } = &slot.phase
        else {
            return Err(runtime(format!("`{step}` is not running")));
        };
        let st = self.state(m, slot.thread, slot.state);
        if let Some(call) = slot.io {
            let ctx = self.context(&st.name, slot.entered_at, Some(slot.attempt - 1), None);
            let vars = self.threads[slot.thread].vars.clone();
            return self
                .io_request(st, slot, step, call, Env::new(&ctx, &vars), *deadline)
                .map_err(|e| in_state(e, &st.name, slot.entered_event));
        }
        let Kind::Task(task) = &st.kind else {
            return Err(runtime(format!("`{step}` is not a Task")));
        };
        let token = match (task.wait_for_token, nonce) {
            (true, Some(n)) => Some(task_token(
                &self.head.id,
                step,
                TaskKind::Action,
                slot.attempt,
                n,
            )),
            _ => None,
        };
        let ctx = self.context(
            &st.name,
            slot.entered_at,
            Some(slot.attempt - 1),
            token.as_deref(),
        );
        let vars = self.threads[slot.thread].vars.clone();
        let ctx = Env::new(&ctx, &vars);
        let body = self
            .request_body(st, slot, step, ctx)
            .map_err(|e| in_state(e, &st.name, slot.entered_event))?
            .unwrap_or_else(|| slot.effective.clone());
        let (participant, input) = match &task.integration {
            Integration::Function { participant } => (participant.clone(), body),
            Integration::LambdaInvoke => {
                let name = body
                    .get("FunctionName")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        runtime(format!("`{}`: Parameters need a FunctionName", st.name))
                    })?;
                let participant: Participant = m.resources.resolve(name).ok_or_else(|| {
                    ErrorInfo::new(
                        "Lambda.ResourceNotFoundException",
                        format!("no resource map entry matches the function `{name}`"),
                    )
                })?;
                let payload = body.get("Payload").cloned().unwrap_or(json!({}));
                (participant, payload)
            }
        };
        let heartbeat_ms = match &task.heartbeat {
            Some(h) => Some(
                self.task_seconds(h, step, slot, ctx, "HeartbeatSecondsPath")
                    .map_err(|e| in_state(e, &st.name, slot.entered_event))?
                    * 1000,
            ),
            None => None,
        };
        Ok(Request {
            execution_id: self.head.id.clone(),
            step: step.to_string(),
            task: TaskKind::Action,
            attempt: slot.attempt,
            participant,
            input,
            idempotency_key: idempotency_key(&self.head.id, step, TaskKind::Action),
            deadline: *deadline,
            task_token: token,
            heartbeat_ms: heartbeat_ms.filter(|_| task.wait_for_token),
        })
    }

    pub(crate) fn start_tracing(&mut self) {
        self.trace = Some(Vec::new());
    }

    pub(crate) fn take_trace(&mut self) -> Vec<Trace> {
        self.trace.take().unwrap_or_default()
    }
}
