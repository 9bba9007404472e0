//! The harness the ASL test files share (`mod support;` in each): a machine
//! compiled with Lambda ARNs mapped to `handler:{name}` participants
//! ([`resources`], [`lambda`]), and [`Sim`], which drives one execution
//! through `decide_and_preview` on a simulated clock. Every input a test
//! feeds (start, task answers, timers) is decided, its events kept, and the
//! replay of the whole history checked to equal the live state.
//!
//! Also: [`invoked`] and [`timers`] read a decision's effects, [`problems`]
//! and [`violations`] what `compile` refuses in a definition.
//!
//! Each test file uses only part of this, so every item allows `dead_code`.

use sagaflow_core::asl::{compile, ResourceMap, ResourceRule};
use sagaflow_core::{
    compile_definition, Ctx, Effect, Error, ErrorInfo, Event, Execution, Input, Plan, Status,
    TaskKind, Violation,
};
use serde_json::Value;

/// Lambda ARNs run the participant `handler:{name}`.
#[allow(dead_code)]
pub fn resources() -> ResourceMap {
    ResourceMap {
        rules: vec![ResourceRule {
            pattern: "arn:aws:lambda:*:*:function:{name}".into(),
            target: "handler:{name}".into(),
        }],
    }
}

/// The ARN of the Lambda function `name`.
#[allow(dead_code)]
pub fn lambda(name: &str) -> String {
    format!("arn:aws:lambda:us-east-1:123456789012:function:{name}")
}

/// One execution of a compiled machine, with its history and clock.
pub struct Sim {
    pub plan: Plan,
    pub ex: Execution,
    pub history: Vec<Event>,
    pub now: u64,
}

#[allow(dead_code)]
impl Sim {
    /// The machine compiled (as definition `m`), not started yet.
    pub fn new(machine: Value) -> Sim {
        let plan = compile_definition(&machine.to_string(), Some("m"), &resources())
            .unwrap_or_else(|e| panic!("the machine compiles: {e}"));
        let ex = Execution::empty(&plan);
        Sim {
            plan,
            ex,
            history: Vec::new(),
            now: 1_000_000,
        }
    }

    /// Starts execution `ex-1` of the machine; returns the start's effects.
    pub fn start(machine: Value, input: Value) -> (Sim, Vec<Effect>) {
        Sim::start_as("ex-1", machine, input)
    }

    /// Starts execution `id` of the machine; returns the start's effects.
    pub fn start_as(id: &str, machine: Value, input: Value) -> (Sim, Vec<Effect>) {
        let mut sim = Sim::new(machine);
        let fx = sim.feed(Input::Start {
            execution_id: id.into(),
            definition: "m".into(),
            version: 1,
            input,
        });
        (sim, fx)
    }

    /// [`Sim::start`] when the test does not look at the start's effects.
    pub fn started(machine: Value, input: Value) -> Sim {
        Sim::start(machine, input).0
    }

    /// [`Sim::start_as`] when the test does not look at the start's effects.
    pub fn started_as(id: &str, machine: Value, input: Value) -> Sim {
        Sim::start_as(id, machine, input).0
    }

    /// Decides one input, then checks that a replay of the whole history
    /// equals the live state.
    pub fn feed(&mut self, input: Input) -> Vec<Effect> {
        self.now += 10;
        let ctx = Ctx {
            now: self.now,
            random: 0.5,
            entropy: 42,
        };
        let d = self
            .ex
            .decide_and_preview(&self.plan, input, ctx)
            .unwrap_or_else(|e| panic!("the input is allowed: {e}"));
        self.history.extend(d.events);
        self.ex = d.state;
        let replayed = Execution::replay(&self.plan, &self.history).expect("history replays");
        assert_eq!(replayed, self.ex, "replay diverged from the live state");
        d.effects
    }

    /// The types of the Step Functions history so far, in order
    /// (`ExecutionStarted`, `StateEntered`, …).
    pub fn trace_types(&self) -> Vec<String> {
        types(&sagaflow_core::trace(&self.plan, &self.history).expect("a trace"))
    }

    /// The current attempt of `step`'s action.
    pub fn attempt(&self, step: &str) -> u32 {
        self.ex.attempts(&self.plan, step, TaskKind::Action)
    }

    /// `step`'s current attempt answers `output`.
    pub fn succeed(&mut self, step: &str, output: Value) -> Vec<Effect> {
        let attempt = self.attempt(step);
        self.feed(Input::TaskSucceeded {
            step: step.into(),
            task: TaskKind::Action,
            attempt,
            output,
        })
    }

    /// `step`'s current attempt fails with `error` ("it broke").
    pub fn fail(&mut self, step: &str, error: &str) -> Vec<Effect> {
        self.fail_with(step, error, "it broke")
    }

    /// `step`'s current attempt fails with `error` and `cause`.
    pub fn fail_with(&mut self, step: &str, error: &str, cause: &str) -> Vec<Effect> {
        let attempt = self.attempt(step);
        self.feed(Input::TaskFailed {
            step: step.into(),
            task: TaskKind::Action,
            attempt,
            error: ErrorInfo::new(error, cause),
        })
    }

    /// `step`'s timer (a retry's backoff, a Wait) fires, a second later.
    pub fn fire(&mut self, step: &str) -> Vec<Effect> {
        let attempt = self.attempt(step).max(1);
        self.now += 1_000_000;
        self.feed(Input::TimerFired {
            step: step.into(),
            task: TaskKind::Action,
            attempt,
        })
    }

    /// The input of `step`'s request, or the error building it.
    pub fn request(&self, step: &str) -> Result<Value, ErrorInfo> {
        self.ex
            .request(&self.plan, step, TaskKind::Action)
            .map(|r| r.input)
    }

    /// The input of `step`'s request, which must build.
    pub fn request_input(&self, step: &str) -> Value {
        self.request(step)
            .unwrap_or_else(|e| panic!("request for {step}: {e:?}"))
    }

    /// What the runtime does when a request cannot be built: the attempt
    /// fails with the request's error.
    pub fn invoke(&mut self, step: &str) -> Result<Value, ErrorInfo> {
        self.request(step).inspect_err(|e| {
            self.fail_with(step, &e.error, &e.cause);
        })
    }

    /// The error of the execution, which must have failed.
    pub fn error(&self) -> ErrorInfo {
        assert_eq!(self.ex.status, Status::Failed, "{:?}", self.ex.output);
        self.ex
            .error
            .clone()
            .expect("a failed execution has an error")
    }

    /// [`Sim::error`] as `(error, cause)`.
    pub fn failure(&self) -> (String, String) {
        let e = self.error();
        (e.error, e.cause)
    }

    /// The Step Functions view of the history, each entry as JSON.
    pub fn trace(&self) -> Vec<Value> {
        sagaflow_core::trace(&self.plan, &self.history)
            .expect("a trace")
            .iter()
            .map(|t| serde_json::to_value(&t.kind).unwrap())
            .collect()
    }
}

/// The steps a decision invokes.
#[allow(dead_code)]
pub fn invoked(fx: &[Effect]) -> Vec<String> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Invoke { step, .. } => Some(step.clone()),
            _ => None,
        })
        .collect()
}

/// The timers a decision starts, with when they fire.
#[allow(dead_code)]
pub fn timers(fx: &[Effect]) -> Vec<(String, u64)> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::StartTimer { step, fire_at, .. } => Some((step.clone(), *fire_at)),
            _ => None,
        })
        .collect()
}

/// What `compile` refuses in the definition `doc` (none if it compiles).
#[allow(dead_code)]
pub fn violations(doc: Value) -> Vec<Violation> {
    match compile(&doc, &resources()) {
        Ok(_) => Vec::new(),
        Err(Error::InvalidDefinition(vs)) => vs,
        Err(other) => panic!("unexpected error {other}"),
    }
}

/// [`violations`] as `(code, location)` pairs.
#[allow(dead_code)]
pub fn problems(doc: Value) -> Vec<(String, String)> {
    violations(doc)
        .into_iter()
        .map(|v| (v.code, v.location))
        .collect()
}

/// The Step Functions event types of `trace`, in order.
#[allow(dead_code)] // Not every test binary that uses `support` needs it.
pub fn types(trace: &[sagaflow_core::asl::run::Trace]) -> Vec<String> {
    trace
        .iter()
        .map(|t| {
            serde_json::to_value(&t.kind).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}
