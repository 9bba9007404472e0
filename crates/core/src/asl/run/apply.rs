//! How each recorded event moves the interpreter on ([`Run::apply`]): the
//! same code runs live, after a decision, and on replay.

// The interpreter's own types and helpers, as in the parent module.
use super::*;

impl Run {
    /// Folds one event in. Checks come first: an illegal event changes nothing.
    pub(crate) fn apply(
        &mut self,
        m: &Machine,
        event: &Event,
        fx: &mut Vec<Effect>,
    ) -> Result<(), Error> {
        let at = event.at;
        let kind = &event.kind;
        if !self.map_runs.is_empty()
            && kind
                .step()
                .is_some_and(|step| self.step_child(step).is_some())
        {
            self.child_events += 1;
        }
        match kind {
            EventKind::DurableOperation { .. } | EventKind::DurableInvocation { .. } => {
                return Err(crate::envelope::illegal(kind, "not a durable execution"));
            }
            EventKind::ExecutionStarted {
                execution_id,
                definition,
                input,
                keys,
                ..
            } => {
                if !self.threads.is_empty() {
                    return Err(illegal(kind, "already started"));
                }
                self.head = Head {
                    uses_context: m.uses_context,
                    keys: *keys,
                    id: execution_id.clone(),
                    name: definition.clone(),
                    input: input.clone(),
                    started_at: at,
                };
                if self.traced(None) {
                    self.record(
                        at,
                        None,
                        TraceKind::ExecutionStarted {
                            input: input.clone(),
                        },
                    );
                }
                self.threads.push(Thread {
                    scope: Vec::new(),
                    prefix: String::new(),
                    parent: None,
                    visits: BTreeMap::new(),
                    live: true,
                    vars: SharedVars::default(),
                    stopped: None,
                    child: None,
                });
                self.enter(m, at, fx, 0, m.graph.start_at, input.clone());
            }
            EventKind::StepScheduled {
                step,
                attempt,
                deadline,
                nonce,
            } => {
                let slot = self
                    .slots
                    .get_mut(step)
                    .ok_or_else(|| illegal(kind, "no such state waiting"))?;
                let ok = slot.attempt == *attempt
                    && matches!(slot.phase, Phase::Ready | Phase::RetryWaiting { .. });
                let io = slot.io;
                if !ok || (slot.fan.is_some() && io.is_none()) {
                    return Err(illegal(
                        kind,
                        format!("{:?} attempt {}", slot.phase, slot.attempt),
                    ));
                }
                slot.phase = Phase::Running {
                    deadline: *deadline,
                    nonce: nonce.clone(),
                    parked: false,
                };
                self.consume(|p| matches!(p, Pending::Schedule(k) if k == step));
                fx.push(Effect::Invoke {
                    step: step.clone(),
                    task: TaskKind::Action,
                    attempt: *attempt,
                    deadline: *deadline,
                });
                // TaskScheduled and TaskStarted (a Map's reader or writer
                // call has no Task events, as in AWS's history).
                if io.is_some() {
                    return Ok(());
                }
                let child = self.step_child(step);
                self.traced(child);
                if self.traced(child) {
                    let (resource, name) = self.resource_of(m, step);
                    let parameters = self.task_parameters(m, step);
                    let child = self.step_child(step);
                    self.record(
                        at,
                        child,
                        TraceKind::TaskScheduled {
                            name: name.clone(),
                            resource: resource.clone(),
                            parameters,
                        },
                    );
                    self.record(at, child, TraceKind::TaskStarted { name, resource });
                }
            }
            EventKind::TaskParked { step, attempt, .. } => {
                let slot = self
                    .slots
                    .get_mut(step)
                    .ok_or_else(|| illegal(kind, "no such state waiting"))?;
                match &mut slot.phase {
                    Phase::Running {
                        parked, deadline, ..
                    } if slot.attempt == *attempt && !*parked => {
                        *parked = true;
                        fx.push(Effect::StartTimer {
                            step: step.clone(),
                            task: TaskKind::Action,
                            attempt: *attempt,
                            fire_at: *deadline,
                        });
                    }
                    other => return Err(illegal(kind, format!("{other:?}"))),
                }
                // An activity's task is queued for a worker: AWS's history
                // has ActivityScheduled and ActivityStarted, no TaskSubmitted.
                let (resource, name) = self.resource_of(m, step);
                if crate::exchange::activity_name(&resource).is_none()
                    && self.traced(self.step_child(step))
                {
                    self.record(
                        at,
                        self.step_child(step),
                        TraceKind::TaskSubmitted { name, resource },
                    );
                }
            }
            EventKind::StepSucceeded {
                step,
                attempt,
                output,
            } => {
                let slot = self
                    .slots
                    .get(step)
                    .ok_or_else(|| illegal(kind, "no such state waiting"))?;
                if slot.attempt != *attempt || !matches!(slot.phase, Phase::Running { .. }) {
                    return Err(illegal(
                        kind,
                        format!("{:?} attempt {}", slot.phase, slot.attempt),
                    ));
                }
                if let Some(call) = slot.io {
                    self.io_answered(m, at, fx, step, call, output.clone());
                    return Ok(());
                }
                let st = self.state(m, slot.thread, slot.state);
                let result = match &st.kind {
                    Kind::Task(task)
                        if matches!(task.integration, Integration::LambdaInvoke)
                            && !task.wait_for_token =>
                    {
                        json!({
                            "ExecutedVersion": "$LATEST",
                            "Payload": output,
                            "StatusCode": 200,
                            "SdkHttpMetadata": { "HttpStatusCode": 200 },
                        })
                    }
                    _ => output.clone(),
                };
                if self.traced(self.step_child(step)) {
                    let (resource, name) = self.resource_of(m, step);
                    self.record(
                        at,
                        self.step_child(step),
                        TraceKind::TaskSucceeded {
                            name,
                            resource,
                            // What the integration returned: for
                            // `lambda:invoke`, the wrapped answer.
                            output: result.clone(),
                        },
                    );
                }
                self.complete(m, at, fx, step, result);
            }
            EventKind::StepFailed {
                step,
                attempt,
                error,
            } => {
                let slot = self
                    .slots
                    .get(step)
                    .ok_or_else(|| illegal(kind, "no such state waiting"))?;
                if slot.attempt != *attempt || !matches!(slot.phase, Phase::Running { .. }) {
                    return Err(illegal(
                        kind,
                        format!("{:?} attempt {}", slot.phase, slot.attempt),
                    ));
                }
                if let Some(call) = slot.io {
                    let error = call.failure(error);
                    // The writer's failure fails the map run it wrote for.
                    if let Some(r) = slot.fan.as_ref().and_then(|f| f.map_run) {
                        self.close_map_run(r, at, MapRunStatus::Failed, Some(&error));
                    }
                    self.failed(m, at, fx, step, error);
                    return Ok(());
                }
                if self.traced(self.step_child(step)) {
                    let (resource, name) = self.resource_of(m, step);
                    let kind = if error.error == TIMEOUT || error.error == HEARTBEAT_TIMEOUT {
                        TraceKind::TaskTimedOut {
                            name,
                            resource,
                            error: error.clone(),
                        }
                    } else {
                        TraceKind::TaskFailed {
                            name,
                            resource,
                            error: error.clone(),
                        }
                    };
                    self.record(at, self.step_child(step), kind);
                }
                self.failed(m, at, fx, step, error.clone());
            }
            EventKind::RetryScheduled {
                step,
                attempt,
                fire_at,
                ..
            } => {
                let slot = self
                    .slots
                    .get_mut(step)
                    .ok_or_else(|| illegal(kind, "no such state waiting"))?;
                if slot.attempt != *attempt || !matches!(slot.phase, Phase::RetryDue { .. }) {
                    return Err(illegal(
                        kind,
                        format!("{:?} attempt {}", slot.phase, slot.attempt),
                    ));
                }
                slot.phase = Phase::RetryWaiting { fire_at: *fire_at };
                self.consume(|p| matches!(p, Pending::Retry(k) if k == step));
                fx.push(Effect::StartTimer {
                    step: step.clone(),
                    task: TaskKind::Action,
                    attempt: *attempt,
                    fire_at: *fire_at,
                });
            }
            EventKind::TimerFired { step, attempt } => {
                let slot = self
                    .slots
                    .get(step)
                    .ok_or_else(|| illegal(kind, "no such state waiting"))?;
                if slot.attempt != *attempt {
                    return Err(illegal(kind, format!("attempt {}", slot.attempt)));
                }
                match slot.phase {
                    Phase::Waiting { .. } => {
                        let eff = slot.effective.clone();
                        self.complete(m, at, fx, step, eff);
                    }
                    Phase::RetryWaiting { .. } if self.is_fan(m, step) => {
                        let st = self.state(m, slot.thread, slot.state);
                        let ctx = self.context(&st.name, at, Some(slot.attempt - 1), None);
                        let vars = self.threads[slot.thread].vars.clone();
                        let ctx = Env::new(&ctx, &vars);
                        let raw = slot.raw.clone();
                        let seed = format!("{step}#{}", slot.attempt);
                        match self.fan_inputs(st, &raw, ctx, &seed, at, None) {
                            Ok(plan) => self.start_fan(m, at, fx, step, plan),
                            Err(e) => {
                                let e = in_state(e, &st.name, slot.entered_event);
                                self.failed(m, at, fx, step, e)
                            }
                        }
                    }
                    ref other => return Err(illegal(kind, format!("{other:?}"))),
                }
            }
            EventKind::CancelRequested { .. } => self.abort_all(at),
            EventKind::ExecutionTimedOut {} => self.abort_all(at),
            EventKind::MapRunUpdated { update } => {
                let Some(key) = self.update_map_run(update) else {
                    return Err(illegal(kind, "no such map run running"));
                };
                // A higher limit may start more items at once.
                self.fill_fan(m, at, fx, &key);
            }
            EventKind::ExecutionRedriven {} => {
                if !self.redrive(m, at, fx) {
                    return Err(illegal(kind, "nothing to redrive"));
                }
            }
            EventKind::ExecutionFinished {
                status,
                error,
                output,
            } => {
                self.pending
                    .retain(|p| !matches!(p, Pending::Finish { .. }));
                self.abort_all(at);
                if !self.traced(None) {
                    return Ok(());
                }
                let kind = match status {
                    Status::Succeeded => TraceKind::ExecutionSucceeded {
                        output: output.clone().unwrap_or(Value::Null),
                    },
                    Status::Cancelled => TraceKind::ExecutionAborted {
                        reason: error.as_ref().map(|e| e.cause.clone()).unwrap_or_default(),
                    },
                    Status::TimedOut => TraceKind::ExecutionTimedOut {
                        error: error.clone().unwrap_or_else(|| ErrorInfo::new(TIMEOUT, "")),
                    },
                    _ => TraceKind::ExecutionFailed {
                        error: error.clone().unwrap_or_else(|| ErrorInfo::new(FAIL, "")),
                    },
                };
                self.record(at, None, kind);
            }
            EventKind::RollbackStarted { .. }
            | EventKind::CompensationScheduled { .. }
            | EventKind::CompensationSucceeded { .. }
            | EventKind::CompensationFailed { .. } => {
                return Err(illegal(kind, "not an event of an ASL execution"))
            }
        }
        Ok(())
    }
}
