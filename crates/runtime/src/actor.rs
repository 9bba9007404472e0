//! Execution actors: one tokio task per active execution.
//!
//! The actor is the only writer of its execution. For every input it asks the
//! core for a decision, appends the resulting events (the store group-commits
//! appends of many actors into one transaction), and only after the append is
//! durable applies them and performs the effects. A crash at any point
//! therefore loses nothing that was acknowledged and repeats nothing that the
//! participants have not already deduplicated by idempotency key.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sagaflow_core::{Ctx, Effect, Event, EventKind, Execution, Input, Plan, Request, TaskKind};
use sagaflow_store::{Append, Create, ExecutionRecord, NotificationKind, Timer};
use tokio::sync::{mpsc, oneshot};

use crate::health::{count, StuckGuard};
use crate::heartbeats::{Heartbeats, Lapse, Watch};
use crate::{invoke, now_ms, timers, Engine, Error, Finished, Result};

pub use crate::health::CallInFlight;

/// An actor's mailbox.
///
/// Unbounded on purpose. The actor sends to itself from its synchronous
/// `perform` (a `Stop`, the failure of a request that cannot be built), and
/// a fence stops every actor from a synchronous loop: neither may wait for
/// room, and an actor waiting on its own full mailbox would never empty it.
/// What can be queued is bounded by the execution, not by the traffic: one
/// result per participant call in flight (each holding a [`CallInFlight`]),
/// at most two messages per parked callback task, one per armed in-memory
/// timer, and one per request waiting for its reply (each holding a
/// connection of the API).
pub type Mailbox = mpsc::UnboundedSender<Msg>;

/// A message to an actor.
pub enum Msg {
    Input {
        input: Input,
        /// The participant call this input is the result of, counted in
        /// flight until the actor has recorded it (or drops it unread).
        call: Option<CallInFlight>,
    },
    Command {
        input: Input,
        reply: oneshot::Sender<Result<ExecutionRecord>>,
    },
    /// A task token came back: accepted only if that attempt is waiting for it.
    /// `input: None` is a heartbeat.
    Callback {
        token: sagaflow_core::TaskToken,
        input: Option<Input>,
        reply: oneshot::Sender<Result<ExecutionRecord>>,
    },
    /// A callback task whose participant accepted its token and that must
    /// send heartbeats: the actor watches its silence (and its deadline)
    /// from now on. Sent by the call right after its `TaskParked` input.
    WatchHeartbeat(Watch),
    /// Several nodes: this node may have lost its leases; leave memory
    /// without acting (the next lease holder reloads from history).
    Stop,
    /// [`Engine::wait`], whose waiter is registered: the record if the
    /// execution has finished, `None` while it runs (its finish will tell
    /// the waiters) — an answer from memory instead of a read of the store.
    Watch {
        reply: oneshot::Sender<Option<ExecutionRecord>>,
    },
    /// Decides `input` (if any), stores the decision, then hands `reply`
    /// the state — or the error that refused or lost the decision. The
    /// durable API reads its answers from the state this way (a
    /// checkpoint's reply, a page of operations).
    Query {
        /// Whether the request is about this execution at all (a durable
        /// ARN names its function and execution name too); if not, the
        /// answer is `ExecutionNotFound` and nothing is decided.
        admit: Option<Admit>,
        input: Option<Input>,
        #[allow(clippy::type_complexity)]
        reply: Box<dyn FnOnce(Result<&Execution>) + Send>,
    },
}

/// See [`Msg::Query`]'s `admit`.
pub type Admit = Arc<dyn Fn(&Execution) -> bool + Send + Sync>;

/// The clock and randomness of one decision; recorded through the events.
pub(crate) fn ctx() -> Ctx {
    Ctx {
        now: now_ms(),
        random: rand::random::<f64>(),
        entropy: rand::random::<u64>(),
    }
}

/// The summary row the store keeps for an execution in this state.
pub(crate) fn record_of(s: &Execution) -> ExecutionRecord {
    ExecutionRecord {
        id: s.id.clone(),
        definition: s.definition.clone(),
        version: s.version,
        status: s.status,
        input: s.input.clone(),
        output: s.output.clone(),
        error: s.error.clone(),
        started_at: s.started_at,
        updated_at: s.updated_at,
        events: s.events,
    }
}

/// What a decision stores with its events, derived in one place for the
/// start (a create) and every later input (an append), so the two paths
/// cannot diverge: the summary, the durable timers its effects arm, the
/// notification it records, and the compensation it leaves stuck. Where it
/// is written (leased, fenced) is the [`Ownership`]'s.
///
/// [`Ownership`]: crate::ownership::Ownership
pub(crate) struct Stored {
    pub summary: ExecutionRecord,
    pub events: Vec<Event>,
    pub timers: Vec<Timer>,
    pub notify: Option<NotificationKind>,
    pub stuck: Option<sagaflow_core::Stuck>,
}

impl Stored {
    /// `state` is the execution with the decision's events applied;
    /// `was_stuck`: whether the state before them had a stuck compensation
    /// (only the decision that crosses into stuck notifies, once).
    pub(crate) fn of(
        config: &crate::Config,
        plan: &Plan,
        state: &Execution,
        events: Vec<Event>,
        effects: &[Effect],
        was_stuck: bool,
    ) -> Stored {
        let stuck = state.stuck_compensation(plan, &config.stuck);
        let finishes = events.iter().any(|e| {
            matches!(&e.kind, EventKind::ExecutionFinished { status, .. } if config.notify_on.contains(status))
        });
        let notify = if finishes {
            Some(NotificationKind::Finished)
        } else {
            let becomes_stuck = config.notify_stuck && stuck.is_some() && !was_stuck;
            becomes_stuck.then_some(NotificationKind::Stuck)
        };
        Stored {
            summary: record_of(state),
            timers: timers::durable_timers(&state.id, effects),
            events,
            notify,
            stuck,
        }
    }

    /// The first write of a new execution.
    pub(crate) fn into_create(self) -> Create {
        Create {
            record: self.summary,
            events: self.events,
            timers: self.timers,
            notify: self.notify,
        }
    }

    /// A later decision's write, at the version the decision was taken on.
    fn into_append(self, expected_version: u64) -> Append {
        let s = self.summary;
        Append {
            execution_id: s.id,
            expected_version,
            events: self.events,
            status: s.status,
            output: s.output,
            error: s.error,
            updated_at: s.updated_at,
            timers: self.timers,
            notify: self.notify,
        }
    }
}

/// Registers and starts the actor of `state` (or returns the one already
/// registered), then performs `effects` — those of the events that created it,
/// or the outstanding ones after a replay.
pub(crate) fn spawn(
    engine: Engine,
    plan: Arc<Plan>,
    state: Execution,
    effects: Vec<Effect>,
) -> Mailbox {
    let (tx, rx) = mpsc::unbounded_channel();
    {
        let mut actors = engine.lock_actors();
        if let Some(existing) = actors.get(&state.id) {
            return existing.clone();
        }
        actors.insert(state.id.clone(), tx.clone());
    }
    let generation = engine.shared.ownership.generation();
    let mut actor = Actor {
        engine,
        plan,
        state,
        tx: tx.clone(),
        lost: false,
        reload: false,
        generation,
        stuck: None,
        heartbeats: Heartbeats::default(),
    };
    // A replayed execution may be stuck already.
    let stuck = actor
        .state
        .stuck_compensation(&actor.plan, &actor.engine.shared.config.stuck);
    actor.watch_stuck(stuck);
    tokio::spawn(actor.run(rx, effects));
    tx
}

struct Actor {
    engine: Engine,
    plan: Arc<Plan>,
    state: Execution,
    tx: Mailbox,
    /// Several nodes: an append was refused because another node holds the lease.
    lost: bool,
    /// Several nodes: the history moved on under this actor (it was stale);
    /// reload the execution from the store if this node still holds it.
    reload: bool,
    /// Several nodes: the engine's lease generation when this actor was
    /// made; a fence starts a new one, and an older actor never writes.
    generation: u64,
    /// Held while a compensation of this execution is stuck.
    stuck: Option<StuckGuard>,
    /// The silences of its parked callback tasks that send heartbeats.
    heartbeats: Heartbeats,
}

/// What woke an actor up.
enum Wake {
    /// A message, or `None` when it should leave memory.
    Msg(Option<Msg>),
    /// Parked callback tasks whose heartbeat (or deadline) ran out.
    Lapsed(Vec<(sagaflow_core::TaskToken, Lapse)>),
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>, effects: Vec<Effect>) {
        self.perform(effects);
        let mut parked = false;
        loop {
            // A terminal actor only lives to answer the command it was loaded for.
            let wake = if self.state.status.is_terminal() {
                let msg = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
                Wake::Msg(msg.ok().flatten())
            } else if self.heartbeats.is_empty() {
                Wake::Msg(rx.recv().await)
            } else {
                // One sleep, to the moment the next heartbeat watch runs
                // out, re-armed after every message.
                tokio::select! {
                    biased;
                    msg = rx.recv() => Wake::Msg(msg),
                    lapsed = self.heartbeats.lapsed() => Wake::Lapsed(lapsed),
                }
            };
            match wake {
                Wake::Msg(None) | Wake::Msg(Some(Msg::Stop)) => break, // leaves memory, acting on nothing more
                Wake::Msg(Some(msg)) => self.handle(msg).await,
                Wake::Lapsed(lapsed) => {
                    for (token, lapse) in lapsed {
                        if self.state.status.is_terminal() || self.lost {
                            break;
                        }
                        let input = self.lapsed_input(token, lapse);
                        self.handle(Msg::Input { input, call: None }).await;
                    }
                }
            }
            if self.state.status.is_terminal() || self.lost {
                break;
            }
            // Only waiting for callbacks: leave memory. A callback or a timer
            // reloads the execution from its history (on any node: the lease
            // is released).
            if rx.is_empty() && self.state.is_parked(&self.plan) {
                parked = true;
                break;
            }
        }
        // Deregister; anything still queued is stale, and command senders retry
        // against a fresh actor when their reply is dropped.
        {
            let mut actors = self.engine.lock_actors();
            if actors
                .get(&self.state.id)
                .is_some_and(|t| t.same_channel(&self.tx))
            {
                actors.remove(&self.state.id);
            }
        }
        if parked {
            self.engine.release(&self.state.id).await;
        }
        if self.reload && !self.engine.is_shutting_down() {
            // Fresh from history, under this node's lease if it still holds
            // it; otherwise its owner has it (nothing to do).
            if let Err(e) = self.engine.resident(&self.state.id).await {
                tracing::debug!(execution = %self.state.id, error = %e, "not reloaded");
            }
        }
    }

    async fn handle(&mut self, msg: Msg) {
        let mut answered_activity = None;
        let (input, reply, call) = match msg {
            Msg::Stop => return,
            Msg::WatchHeartbeat(watch) => {
                // Unless it was answered (or failed) before the watch came.
                if self.state.check_callback(&self.plan, watch.token()).is_ok() {
                    self.heartbeats.watch(watch);
                }
                return;
            }
            Msg::Watch { reply } => {
                let finished = self.state.status.is_terminal();
                let _ = reply.send(finished.then(|| record_of(&self.state)));
                return;
            }
            Msg::Query {
                admit,
                input,
                reply,
            } => {
                if admit.is_some_and(|admit| !admit(&self.state)) {
                    reply(Err(Error::ExecutionNotFound(self.state.id.clone())));
                    return;
                }
                let Some(input) = input else {
                    reply(Ok(&self.state));
                    return;
                };
                match self.decide_and_record(input).await {
                    Ok(effects) => {
                        reply(Ok(&self.state));
                        self.perform(effects);
                    }
                    Err(e) => reply(Err(e)),
                }
                return;
            }
            Msg::Input { input, call } => (input, None, call),
            Msg::Command { input, reply } => (input, Some(reply), None),
            Msg::Callback {
                token,
                input,
                reply,
            } => {
                if let Err(e) = self.waiting_for_callback(&token) {
                    let _ = reply.send(Err(e));
                    return;
                }
                match input {
                    Some(input) => {
                        // An activity task's answer: its offer and claim
                        // records go once it is recorded.
                        let activity =
                            self.state
                                .is_activity_task(&self.plan, &token.step)
                                .then(|| {
                                    sagaflow_core::task_token(
                                        &token.execution_id,
                                        &token.step,
                                        token.task,
                                        token.attempt,
                                        &token.nonce,
                                    )
                                });
                        answered_activity = activity;
                        (input, Some(reply), None)
                    }
                    None => {
                        // A heartbeat: the task's silence starts again.
                        self.heartbeats.beat(&token, now_ms());
                        let _ = reply.send(Ok(record_of(&self.state)));
                        return;
                    }
                }
            }
        };
        let result = self.decide_and_record(input).await;
        // The call's result is recorded (or refused): no longer in flight.
        drop(call);
        match (result, reply) {
            (Ok(effects), reply) => {
                if let Some(r) = reply {
                    let _ = r.send(Ok(record_of(&self.state)));
                }
                // A task answered, failed, cancelled or finished with its
                // execution stops waiting: its watch goes.
                let (state, plan) = (&self.state, &self.plan);
                self.heartbeats
                    .retain(|token| state.check_callback(plan, token).is_ok());
                if let Some(token) = answered_activity {
                    // Off the actor: a store write it need not wait for.
                    let engine = self.engine.clone();
                    tokio::spawn(async move { engine.forget_activity_task(&token).await });
                }
                self.perform(effects);
            }
            (Err(e), Some(r)) => {
                let _ = r.send(Err(e));
            }
            (Err(e), None) => {
                tracing::error!(execution = %self.state.id, error = %e, "input could not be recorded")
            }
        }
    }

    /// Checks a token against the recorded attempt: the nonce must be the one
    /// drawn when the attempt was scheduled, and the attempt must still wait.
    fn waiting_for_callback(&self, token: &sagaflow_core::TaskToken) -> Result<()> {
        let (step, task, attempt) = (&token.step, token.task, token.attempt);
        match self.state.check_callback(&self.plan, token) {
            Ok(()) => Ok(()),
            Err(sagaflow_core::CallbackRefused::WrongNonce) => Err(Error::InvalidTaskToken(
                format!("{step} attempt {attempt}: wrong nonce"),
            )),
            Err(sagaflow_core::CallbackRefused::NotWaiting) => Err(Error::CallbackNotWaiting(
                format!("{step} ({}) attempt {attempt}", task.as_str()),
            )),
        }
    }

    /// Decides, appends, and returns the effects to perform. The decision is
    /// applied to the state in place (no copy of a state that grows with the
    /// execution); whenever it then cannot be stored, the state is rebuilt
    /// from the stored history, so it never runs ahead of it.
    async fn decide_and_record(&mut self, input: Input) -> Result<Vec<Effect>> {
        let expected_version = self.state.events;
        let result = self.record_decision(input).await;
        if result.is_err() && self.state.events != expected_version && !self.lost {
            self.rebuild().await;
        }
        result
    }

    /// Replays the stored history into a fresh state; if it cannot be read,
    /// the actor leaves memory and the execution is reloaded on its next use.
    async fn rebuild(&mut self) {
        let rebuilt = match self.engine.shared.store.load_history(&self.state.id).await {
            Ok(events) => {
                Execution::replay(&self.plan, &events).map_err(|source| Error::Unreplayable {
                    id: self.state.id.clone(),
                    source,
                })
            }
            Err(e) => Err(e.into()),
        };
        match rebuilt {
            Ok(state) => self.state = state,
            Err(e) => {
                tracing::warn!(execution = %self.state.id, error = %e, "state not rebuilt from history; leaving memory");
                self.lost = true;
                self.reload = true;
            }
        }
    }

    async fn record_decision(&mut self, input: Input) -> Result<Vec<Effect>> {
        let expected_version = self.state.events;
        let sagaflow_core::Applied { events, effects } = self
            .state
            .decide_in_place(&self.plan, input, ctx())
            .map_err(Error::NotAllowed)?;
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let stored = Stored::of(
            &self.engine.shared.config,
            &self.plan,
            &self.state,
            events,
            &effects,
            self.stuck.is_some(),
        );
        let stuck = stored.stuck.clone();
        let append = stored.into_append(expected_version);
        let ownership = &self.engine.shared.ownership;
        // Several nodes: an actor from before a fence may hold a state that
        // another node has moved on from; it never writes.
        if let Err(stale) = ownership.check_current(self.generation, &self.state.id) {
            self.lost = true;
            return Err(stale.into());
        }
        // Nothing happens until the decision is durable. A transient storage
        // failure is retried; the input is never dropped silently.
        let mut delay = Duration::from_millis(50);
        loop {
            let result = ownership
                .append(&*self.engine.shared.store, append.clone())
                .await;
            self.engine.shared.health.observe_storage(&result);
            match result {
                Ok(_) => break,
                Err(e @ sagaflow_store::Error::Conflict { .. }) => {
                    if ownership.conflict_means_moved_on() {
                        // Several nodes: another node appended meanwhile
                        // (this one stalled past its lease): this state is
                        // stale; act on nothing, as when the lease is lost.
                        tracing::warn!(execution = %self.state.id, "history moved on elsewhere; reloading the execution if this node still holds it");
                        self.lost = true;
                        self.reload = true;
                    }
                    return Err(e.into());
                }
                Err(e @ sagaflow_store::Error::LeaseLost { .. }) => {
                    // Another node owns the execution now: stop here, act on nothing.
                    tracing::warn!(execution = %self.state.id, "lease lost; leaving the execution to its new owner");
                    self.lost = true;
                    return Err(e.into());
                }
                Err(e) if self.engine.is_shutting_down() => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(execution = %self.state.id, error = %e, "append failed; retrying until storage recovers");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        let events = append.events;
        // Several nodes: a finished execution has no lease; the redrive that
        // brings it back is accepted on its version, then this node leases it
        // (a single process holds it already: claiming is a no-op).
        let redriven = events
            .iter()
            .any(|e| matches!(e.kind, EventKind::ExecutionRedriven {}));
        if redriven {
            if let Err(e) = self.engine.claim(&self.state.id).await {
                self.lost = true;
                return Err(e);
            }
        }
        count(&events);
        self.watch_stuck(stuck);
        Ok(effects)
    }

    /// Keeps the stuck gauge true after each stored decision (and a
    /// replay): holds a [`StuckGuard`] while a compensation of this
    /// execution is `stuck`, and logs the crossing.
    fn watch_stuck(&mut self, stuck: Option<sagaflow_core::Stuck>) {
        match (stuck, &self.stuck) {
            (Some(stuck), None) => {
                tracing::error!(
                    execution = %self.state.id,
                    step = %stuck.step,
                    failures = stuck.failures,
                    error = stuck.error.as_ref().map(|e| e.error.as_str()).unwrap_or(""),
                    "compensation is stuck: it keeps failing and is still being retried; the execution needs attention"
                );
                self.stuck = Some(StuckGuard::new());
            }
            (None, Some(_)) => self.stuck = None,
            _ => {}
        }
    }

    fn perform(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Invoke { step, task, .. } => self.invoke(step, task),
                Effect::StartTimer {
                    step,
                    task,
                    attempt,
                    fire_at,
                } => {
                    if self.engine.is_shutting_down() {
                        continue; // the timer row is durable; it fires after restart
                    }
                    // A far-off timer is left to the durable row and the poller,
                    // so waiting executions cost no task (and may leave memory).
                    if !timers::within_horizon(&self.engine.shared.config, fire_at) {
                        continue;
                    }
                    let input = Input::TimerFired {
                        step,
                        task,
                        attempt,
                    };
                    timers::arm(&self.tx, fire_at, input);
                }
                Effect::Deadline { at } => {
                    if self.engine.is_shutting_down() {
                        continue; // re-armed from the plan on restart
                    }
                    timers::arm(&self.tx, at, Input::DeadlinePassed);
                }
                Effect::Durable(effect) => self.durable(effect),
                Effect::Finished { status } => {
                    metrics::counter!("sagaflow_executions_finished_total", "status" => status.as_str()).increment(1);
                    let record = record_of(&self.state);
                    self.engine.shared.waiters.notify(&record);
                    let _ = self.engine.shared.finished.send(Finished { record });
                }
            }
        }
    }

    /// A durable execution's effect: an invocation of its function, a
    /// chained invoke's call, the recovery of a lost invocation.
    fn durable(&mut self, effect: sagaflow_core::durable::Effect) {
        use sagaflow_core::durable::Effect as D;
        if self.engine.is_shutting_down() {
            return; // durable as recorded: resumed on restart
        }
        if !self.engine.may_act() || !self.engine.shared.ownership.is_current(self.generation) {
            let _ = self.tx.send(Msg::Stop);
            return;
        }
        match effect {
            D::Invoke { number } => {
                let payload = crate::durable::invocation_payload(&self.engine, &self.state);
                let nonce = self
                    .state
                    .durable()
                    .and_then(|r| r.invocations().token())
                    .map(|t| t.nonce)
                    .unwrap_or_default();
                let request_id = sagaflow_core::durable::request_id(nonce, number);
                tokio::spawn(crate::durable::run_invocation(
                    self.engine.clone(),
                    self.tx.clone(),
                    self.plan.name.clone(),
                    number,
                    payload,
                    request_id,
                    self.engine.shared.health.call(),
                ));
            }
            D::Call { op } => {
                let target = self
                    .state
                    .durable()
                    .and_then(|r| r.operations().invoke_target(&op))
                    .cloned();
                if let Some(target) = target {
                    tokio::spawn(crate::durable::run_chained_invoke(
                        self.engine.clone(),
                        self.tx.clone(),
                        self.state.id.clone(),
                        op,
                        target,
                        self.engine.shared.health.call(),
                    ));
                }
            }
            D::Recover { number } => {
                let input = Input::Durable(sagaflow_core::durable::Input::Recover { number });
                let _ = self.tx.send(Msg::Input { input, call: None });
            }
        }
    }

    /// Starts a participant call of a running task (see [`participant_call`]).
    fn invoke(&mut self, step: String, task: TaskKind) {
        if self.engine.is_shutting_down() {
            return; // durable as scheduled: resumed with the same key on restart
        }
        if !self.engine.may_act() || !self.engine.shared.ownership.is_current(self.generation) {
            // Maybe not ours any more: the lease holder resumes it.
            let _ = self.tx.send(Msg::Stop);
            return;
        }
        let call = self.engine.shared.health.call();
        match self.state.request(&self.plan, &step, task) {
            Err(error) => {
                let attempt = self.state.attempts(&self.plan, &step, task);
                let input = Input::TaskFailed {
                    step,
                    task,
                    attempt,
                    error,
                };
                let _ = self.tx.send(Msg::Input {
                    input,
                    call: Some(call),
                });
            }
            Ok(req) => {
                tokio::spawn(participant_call(
                    self.engine.clone(),
                    self.tx.clone(),
                    req,
                    call,
                ));
            }
        }
    }

    /// The input a parked callback task's lapse stands for. A deadline
    /// that passed is a timeout for every program; a heartbeat that stopped
    /// is named by the program (ASL: `States.HeartbeatTimeout`).
    fn lapsed_input(&self, token: sagaflow_core::TaskToken, lapse: Lapse) -> Input {
        let step = token.step;
        match lapse {
            Lapse::Silent { heartbeat_ms } => Input::HeartbeatStopped {
                step,
                task: token.task,
                attempt: token.attempt,
                silence_ms: heartbeat_ms,
            },
            Lapse::Deadline => Input::TaskFailed {
                error: sagaflow_core::ErrorInfo::new(
                    sagaflow_core::error_name::TIMEOUT,
                    format!("`{step}`: no callback before the deadline"),
                ),
                step,
                task: token.task,
                attempt: token.attempt,
            },
        }
    }
}

/// One participant call, from taking its slots to sending its result to the
/// actor (with the call's guard). A callback task whose participant accepted
/// its token sends `TaskParked` instead, and, if it must send heartbeats, a
/// watch of its silence for the actor to keep.
async fn participant_call(engine: Engine, tx: Mailbox, req: Request, call: CallInFlight) {
    let shared = &engine.shared;
    // A slot of the participant's bulkhead and of the global cap; the
    // attempt's clock starts once held.
    let slot = invoke::enter(shared, &req).await;
    // Checked again right before the call: the process may have been
    // stopped since the decision (a stall past the lease time).
    if !engine.may_act() {
        drop(call);
        let _ = tx.send(Msg::Stop);
        return;
    }
    let started = Instant::now();
    let (step, task, attempt) = (req.step.clone(), req.task, req.attempt);
    let (token, deadline, heartbeat) = (req.task_token.clone(), req.deadline, req.heartbeat_ms);
    let result = match slot {
        Ok((slot, budget)) => {
            let result = invoke::call(shared, req, budget).await;
            drop(slot);
            result
        }
        Err(error) => Err(error),
    };
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::histogram!("sagaflow_step_duration_seconds", "task" => task.as_str(), "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    if let (Some(token), true) = (token, result.is_ok()) {
        // Accepted: the attempt now waits for its token. That is recorded;
        // its deadline becomes a durable timer.
        let input = Input::TaskParked {
            step,
            task,
            attempt,
        };
        let _ = tx.send(Msg::Input {
            input,
            call: Some(call),
        });
        // Heartbeats are watched by the actor (such an execution stays
        // resident); silent from now on.
        let watch = heartbeat.and_then(|h| Watch::new(&token, deadline, h, now_ms()));
        if let Some(watch) = watch {
            let _ = tx.send(Msg::WatchHeartbeat(watch));
        }
        return;
    }
    let input = match result {
        Ok(output) => Input::TaskSucceeded {
            step,
            task,
            attempt,
            output,
        },
        Err(error) => Input::TaskFailed {
            step,
            task,
            attempt,
            error,
        },
    };
    let _ = tx.send(Msg::Input {
        input,
        call: Some(call),
    });
}
