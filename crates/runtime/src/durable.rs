//! Durable functions in the engine: starting executions by function and
//! name, checkpoints, state pages, stops and callbacks, and the effects a
//! durable execution asks for — invoking its function, calling the
//! targets of its chained invokes.
//!
//! The function's code runs in a [`Functions`] host (the `sagaflow-functions`
//! crate runs workers through the Lambda Runtime API); the engine only
//! hands it invocation events and reads back what the SDK answered. What a
//! durable execution *is* lives in the core (`sagaflow_core::durable`); the
//! decisions go through the execution's actor like every other input, so a
//! checkpoint is stored before it is answered and a chained invoke's start
//! before its target is called.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sagaflow_core::durable::{
    self, resolve_target, Answer, CallbackOutcome, CheckpointReply, DurableExecutionArn,
    DurableFunction, ErrorObject, FunctionName, Hosting, InvokeDispatch, InvokeOutcome,
    NewExecutionState, OperationAction, OperationType, OperationUpdate, Resolved,
};
use sagaflow_core::event::TaskKind;
use sagaflow_core::{error_name, Execution, Input, Request};
use sagaflow_store::ExecutionRecord;
use serde_json::{json, Value};

use crate::actor::{CallInFlight, Mailbox, Msg};
use crate::{invoke, now_ms, Deployed, Engine, Error, Result};

/// The functions a server hosts, as the engine sees them.
#[async_trait]
pub trait Functions: Send + Sync {
    /// How `function` (a bare name) is hosted, if it is.
    fn hosting(&self, function: &str) -> Option<Hosting>;

    /// Runs one invocation of `function` with `payload` and waits for it.
    async fn invoke(&self, function: &str, payload: Vec<u8>, request_id: &str) -> FunctionAnswer;
}

/// What one invocation of a hosted function gave.
#[derive(Debug, Clone, PartialEq)]
pub enum FunctionAnswer {
    /// The body the function posted as its response.
    Response(Vec<u8>),
    /// The function raised: the error it posted.
    Error(ErrorObject),
    /// No answer: the worker crashed or timed out (`error_type` says which,
    /// e.g. `Sandbox.Timedout`).
    Failed {
        error_type: String,
        error_message: String,
    },
}

/// Where durable executions live in AWS terms: the region and account of
/// their ARNs, and how long a chained invoke may wait for a participant.
#[derive(Debug, Clone)]
pub struct LambdaConfig {
    pub region: String,
    pub account_id: String,
    /// How long a chained invoke's participant call may take, retries of
    /// 5xx and lost connections included, before the operation fails.
    pub call_timeout: Duration,
}

impl Default for LambdaConfig {
    fn default() -> Self {
        LambdaConfig {
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            call_timeout: Duration::from_secs(60),
        }
    }
}

/// A durable execution to start (`Invoke` of a durable function).
#[derive(Debug, Clone)]
pub struct DurableStart {
    /// The function, as the caller named it (bare name, `name:qualifier`,
    /// partial or full ARN).
    pub function: String,
    /// `X-Amz-Durable-Execution-Name`; a fresh one when absent.
    pub name: Option<String>,
    /// The request body, as sent.
    pub payload: String,
}

/// A durable execution started, or found (same name and payload).
#[derive(Debug, Clone)]
pub struct DurableStarted {
    pub record: ExecutionRecord,
    pub arn: String,
    /// `false`: it existed already.
    pub created: bool,
}

/// The input a durable execution's envelope records: its name and the
/// payload exactly as sent.
fn start_input(name: &str, payload: &str) -> Value {
    json!({"DurableExecutionName": name, "InputPayload": payload})
}

/// The execution id of a durable execution named `name` of `function`: a
/// UUID derived from both, so that a name is used once per function (a
/// start by the same name finds the same execution).
fn durable_id(function: &str, name: &str) -> String {
    let hex = sagaflow_core::document::digest(&json!([function, name]));
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Whether `name` is a valid `DurableExecutionName`.
fn valid_execution_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A refusal of the API's input, worded as AWS words it.
fn invalid(message: impl Into<String>) -> Error {
    Error::NotAllowed(sagaflow_core::Error::NotAllowed {
        code: "invalid_parameter",
        message: message.into(),
    })
}

impl Engine {
    fn functions(&self) -> Option<&Arc<dyn Functions>> {
        self.shared.functions.as_ref()
    }

    /// Deploys (or finds) the definition of a hosted durable function.
    pub async fn deploy_durable(&self, function: &DurableFunction) -> Result<Deployed> {
        let source = function.document().to_string();
        self.deploy(Some(&function.function_name), &source).await
    }

    /// The bare name of a hosted durable function named in any form AWS
    /// accepts, or `FunctionNotFound`.
    pub fn durable_function(&self, function: &str) -> Result<String> {
        let parsed = FunctionName::parse(function).map_err(|e| invalid(e.to_string()))?;
        match self.functions().and_then(|f| f.hosting(&parsed.name)) {
            Some(Hosting::Durable) => Ok(parsed.name),
            _ => Err(Error::FunctionNotFound(function.to_string())),
        }
    }

    /// `Invoke` of a plain hosted function: one invocation and its answer,
    /// or (`event`: the caller does not wait) `None` once it is under way.
    pub async fn invoke_function(
        &self,
        function: &str,
        payload: Vec<u8>,
        event: bool,
    ) -> Result<Option<FunctionAnswer>> {
        let parsed = FunctionName::parse(function).map_err(|e| invalid(e.to_string()))?;
        let functions = self
            .functions()
            .filter(|f| f.hosting(&parsed.name) == Some(Hosting::Plain))
            .cloned()
            .ok_or_else(|| Error::FunctionNotFound(function.to_string()))?;
        let request_id = uuid::Uuid::new_v4().to_string();
        if event {
            let name = parsed.name.clone();
            tokio::spawn(async move {
                let answer = functions.invoke(&name, payload, &request_id).await;
                if !matches!(answer, FunctionAnswer::Response(_)) {
                    tracing::warn!(function = %name, answer = ?answer, "an Event invocation did not succeed");
                }
            });
            return Ok(None);
        }
        Ok(Some(
            functions.invoke(&parsed.name, payload, &request_id).await,
        ))
    }

    /// The ARN of a durable execution (from its record).
    pub fn durable_arn(&self, record: &ExecutionRecord) -> Option<String> {
        let name = record.input.get("DurableExecutionName")?.as_str()?;
        let function = FunctionName::parse(&record.definition).ok()?;
        let lambda = &self.shared.config.lambda;
        DurableExecutionArn::new(
            &lambda.region,
            &lambda.account_id,
            &function,
            name,
            &record.id,
        )
        .ok()
        .map(|arn| arn.to_string())
    }

    /// The execution id an ARN names (its last segment), checked against
    /// the stored execution's function and name.
    pub async fn durable_record(&self, arn: &str) -> Result<ExecutionRecord> {
        let parsed = DurableExecutionArn::parse(arn).map_err(|e| invalid(e.to_string()))?;
        let record = self.get(&parsed.invocation_id).await?;
        if self.durable_arn(&record).as_deref() != Some(arn) {
            return Err(Error::ExecutionNotFound(arn.to_string()));
        }
        Ok(record)
    }

    /// Starts a durable execution, or finds the one of that name: the same
    /// payload returns it, another one is `ExecutionConflict`.
    pub async fn start_durable(&self, start: DurableStart) -> Result<DurableStarted> {
        let function = self.durable_function(&start.function)?;
        let (name, id) = match start.name {
            Some(name) if !valid_execution_name(&name) => {
                return Err(invalid(format!(
                    "1 validation error detected: Value '{name}' at 'durableExecutionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9-_]+ and have length between 1 and 64"
                )))
            }
            Some(name) => {
                let id = durable_id(&function, &name);
                (name, id)
            }
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                (id.clone(), id)
            }
        };
        let input = start_input(&name, &start.payload);
        let (record, created) = self.start_execution(&function, input, Some(id)).await?;
        let arn = self
            .durable_arn(&record)
            .ok_or_else(|| Error::ExecutionNotFound(record.id.clone()))?;
        Ok(DurableStarted {
            record,
            arn,
            created,
        })
    }

    /// `CheckpointDurableExecution` of execution `id` (or durable ARN):
    /// decided and stored by the execution's actor, then answered (a retry
    /// with the same `ClientToken` gets the same answer).
    pub async fn checkpoint(
        &self,
        id: &str,
        token: &str,
        client_token: Option<String>,
        updates: Vec<OperationUpdate>,
    ) -> Result<CheckpointReply> {
        let client_token = client_token.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let (id, admit) = self.target(id)?;
        let id = id.as_str();
        let (unresolvable, dispatched) = self.resolve_starts(id, &updates);
        let input = Input::Durable(durable::Input::Checkpoint {
            token: token.to_string(),
            client_token: client_token.clone(),
            updates,
            unresolvable,
            dispatched,
        });
        let token = token.to_string();
        self.ask_durable(id, admit, Some(input), move |state| {
            // No answer recorded for it: the execution ended (stopped, timed
            // out) or the invocation closed before this arrived, and the
            // token died with it.
            state
                .durable()
                .and_then(|run| run.invocations().reply_to(&client_token, &token))
                .cloned()
                .ok_or_else(|| {
                    Error::NotAllowed(sagaflow_core::Error::NotAllowed {
                        code: "invalid_checkpoint_token",
                        message: format!(
                            "{}: the invocation or the execution it belonged to has ended.",
                            durable::INVALID_TOKEN
                        ),
                    })
                })
        })
        .await
    }

    /// Resolves the chained invokes a checkpoint starts: those whose target
    /// cannot be called, with the error each fails with at once, and where
    /// the others go (the version a hosted function runs, and the ARN of
    /// the child execution a durable one gets), for their started facts.
    fn resolve_starts(
        &self,
        id: &str,
        updates: &[OperationUpdate],
    ) -> (
        BTreeMap<String, ErrorObject>,
        BTreeMap<String, InvokeDispatch>,
    ) {
        let mut unresolvable = BTreeMap::new();
        let mut dispatched = BTreeMap::new();
        let starts = updates.iter().filter(|u| {
            u.op_type == OperationType::ChainedInvoke && u.action == OperationAction::Start
        });
        for u in starts {
            let Some(options) = u.chained_invoke_options.as_ref() else {
                continue;
            };
            let target = durable::InvokeTarget {
                function_name: options.function_name.clone(),
                tenant_id: None,
                payload: u.payload.clone(),
            };
            match self.resolve(id, &u.id, &target) {
                Err(error) => {
                    unresolvable.insert(u.id.clone(), error);
                }
                Ok(Resolved::DurableChild { function, .. }) => {
                    let dispatch = InvokeDispatch {
                        executed_version: Some(function.qualifier().to_string()),
                        durable_execution_arn: self.chained_child(&function.name, id, &u.id).1,
                    };
                    dispatched.insert(u.id.clone(), dispatch);
                }
                Ok(Resolved::Plain { function, .. }) => {
                    let dispatch = InvokeDispatch {
                        executed_version: Some(function.qualifier().to_string()),
                        durable_execution_arn: None,
                    };
                    dispatched.insert(u.id.clone(), dispatch);
                }
                Ok(Resolved::Participant { .. }) => {}
            }
        }
        (unresolvable, dispatched)
    }

    /// The child execution chained invoke `op` of execution `parent` starts
    /// for hosted durable function `function` (its bare name): its
    /// `DurableExecutionName`, named after the parent and the operation so
    /// a call made again after a restart finds it, and its ARN (known
    /// before it starts, for the invoke's started details).
    fn chained_child(&self, function: &str, parent: &str, op: &str) -> (String, Option<String>) {
        let name = durable_id(parent, op);
        let lambda = &self.shared.config.lambda;
        let arn = FunctionName::parse(function).ok().and_then(|f| {
            DurableExecutionArn::new(
                &lambda.region,
                &lambda.account_id,
                &f,
                &name,
                &durable_id(function, &name),
            )
            .ok()
        });
        (name, arn.map(|a| a.to_string()))
    }

    fn resolve(
        &self,
        id: &str,
        op: &str,
        target: &durable::InvokeTarget,
    ) -> std::result::Result<Resolved, ErrorObject> {
        let functions = self.functions().cloned();
        let hosted = move |f: &FunctionName| functions.as_ref().and_then(|h| h.hosting(&f.name));
        resolve_target(target, id, op, &hosted, &self.shared.config.resources)
    }

    /// `GetDurableExecutionState`: a page of the operations after `marker`,
    /// for a valid token of the open invocation.
    pub async fn durable_state(
        &self,
        id: &str,
        token: &str,
        marker: &str,
        max_items: Option<u32>,
    ) -> Result<NewExecutionState> {
        let (id, admit) = self.target(id)?;
        let (token, marker) = (token.to_string(), marker.to_string());
        self.ask_durable(&id, admit, None, move |state| {
            let run = state
                .durable()
                .ok_or_else(|| Error::ExecutionNotFound(state.id.clone()))?;
            let refused = |r: durable::Refusal| {
                Error::NotAllowed(sagaflow_core::Error::NotAllowed {
                    code: r.code,
                    message: r.message,
                })
            };
            run.invocations().check_token(&token).map_err(refused)?;
            let ops: Vec<_> = run.operations().iter().cloned().collect();
            durable::state_page(&ops, &marker, max_items).map_err(refused)
        })
        .await
    }

    /// `StopDurableExecution`.
    pub async fn stop_durable(
        &self,
        id: &str,
        error: Option<ErrorObject>,
    ) -> Result<ExecutionRecord> {
        let input = Input::Durable(durable::Input::Stop { error });
        self.ask_durable(id, None, Some(input), |state| {
            Ok(crate::actor::record_of(state))
        })
        .await
    }

    /// The three callback calls: `Some(outcome)` completes the callback,
    /// `None` is a heartbeat. Answers with the execution as the decision
    /// left it (the Lambda API answers `{}`, the native route the record).
    pub async fn durable_callback(
        &self,
        callback_id: &str,
        outcome: Option<CallbackOutcome>,
    ) -> Result<ExecutionRecord> {
        let not_found = || Error::CallbackNotFound(callback_id.chars().take(80).collect());
        let id = durable::callback_execution(callback_id).ok_or_else(not_found)?;
        let callback_id = callback_id.to_string();
        let input = Input::Durable(match outcome {
            Some(outcome) => durable::Input::CallbackCompleted {
                callback_id,
                outcome,
            },
            None => durable::Input::CallbackHeartbeat { callback_id },
        });
        let record = |state: &Execution| Ok(crate::actor::record_of(state));
        match self.ask_durable(&id, None, Some(input), record).await {
            Err(Error::ExecutionNotFound(_)) => Err(not_found()),
            other => other,
        }
    }

    /// The execution `target` names: an execution id as it is, or a
    /// durable execution ARN — its id (the last segment), with the check,
    /// made by the actor on the state it holds (no read of the store on
    /// the checkpoint path), that the rest of the ARN is this execution's.
    fn target(&self, target: &str) -> Result<(String, Option<crate::actor::Admit>)> {
        if !target.starts_with("arn:") {
            return Ok((target.to_string(), None));
        }
        let arn = DurableExecutionArn::parse(target).map_err(|e| invalid(e.to_string()))?;
        let lambda = &self.shared.config.lambda;
        let here = arn.region == lambda.region && arn.account == lambda.account_id;
        let id = arn.invocation_id.clone();
        let admit: crate::actor::Admit = Arc::new(move |state: &Execution| {
            let name = state
                .input
                .get("DurableExecutionName")
                .and_then(Value::as_str);
            here && state.definition == arn.function && name == Some(arn.execution_name.as_str())
        });
        Ok((id, Some(admit)))
    }

    /// Sends `input` (if any) to the execution's actor and answers with
    /// `read` of its state once the decision is stored.
    async fn ask_durable<T: Send + 'static>(
        &self,
        id: &str,
        admit: Option<crate::actor::Admit>,
        input: Option<Input>,
        read: impl Fn(&Execution) -> Result<T> + Send + Sync + Clone + 'static,
    ) -> Result<T> {
        const ATTEMPTS: usize = 5;
        for _ in 0..ATTEMPTS {
            let tx = self.resident(id).await?;
            let (reply, rx) = tokio::sync::oneshot::channel();
            let read = read.clone();
            let msg = Msg::Query {
                admit: admit.clone(),
                input: input.clone(),
                reply: Box::new(move |state| {
                    let _ = reply.send(state.and_then(read));
                }),
            };
            if tx.send(msg).is_err() {
                self.forget_actor(id, &tx);
                continue;
            }
            if let Ok(answer) = rx.await {
                return answer;
            }
        }
        if self.is_shutting_down() {
            Err(Error::ShuttingDown)
        } else {
            Err(Error::Busy(id.to_string()))
        }
    }
}

/// Builds the event of invocation `number` of a durable execution: its
/// ARN, token and first page of operations.
pub(crate) fn invocation_payload(engine: &Engine, state: &Execution) -> Option<Vec<u8>> {
    let run = state.durable()?;
    let token = run.invocations().token()?.encode();
    let record = crate::actor::record_of(state);
    let arn = DurableExecutionArn::parse(&engine.durable_arn(&record)?).ok()?;
    let ops: Vec<_> = run.operations().iter().cloned().collect();
    let event = durable::invocation_event(&arn, &token, &ops);
    serde_json::to_vec(&event).ok()
}

/// Reads what the SDK's wrapper returned: `{"Status": …, "Result", "Error"}`.
fn answer_of(answer: FunctionAnswer) -> Answer {
    let not_sdk = |why: String| Answer::Error {
        error_type: error_name::OUTPUT_INVALID.to_string(),
        error_message: why,
    };
    match answer {
        FunctionAnswer::Response(body) => {
            let Ok(value) = serde_json::from_slice::<Value>(&body) else {
                return not_sdk("the function's answer is not JSON: is it a durable function (@durable_execution)?".into());
            };
            let result = value
                .get("Result")
                .and_then(Value::as_str)
                .map(str::to_string);
            let error = value
                .get("Error")
                .and_then(|e| serde_json::from_value::<ErrorObject>(e.clone()).ok());
            match value.get("Status").and_then(Value::as_str) {
                Some("PENDING") => Answer::Pending,
                Some("SUCCEEDED") => Answer::Succeeded(result),
                Some("FAILED") => Answer::Failed(error),
                other => not_sdk(format!(
                    "the function's answer has no Status PENDING, SUCCEEDED or FAILED (Status: {other:?}): is it a durable function (@durable_execution)?"
                )),
            }
        }
        FunctionAnswer::Error(e) => Answer::Error {
            error_type: e.error_type.unwrap_or_else(|| "Unhandled".into()),
            error_message: e.error_message.unwrap_or_default(),
        },
        FunctionAnswer::Failed {
            error_type,
            error_message,
        } => Answer::Error {
            error_type,
            error_message,
        },
    }
}

/// One invocation of a durable execution's function, from the handing
/// over of its event to the recording of its answer.
pub(crate) async fn run_invocation(
    engine: Engine,
    tx: Mailbox,
    function: String,
    number: u32,
    payload: Option<Vec<u8>>,
    request_id: String,
    call: CallInFlight,
) {
    let answer = match (engine.functions().cloned(), payload) {
        (Some(functions), Some(payload)) => {
            answer_of(functions.invoke(&function, payload, &request_id).await)
        }
        (None, _) => Answer::Error {
            error_type: "Sagaflow.FunctionNotHosted".into(),
            error_message: format!("function `{function}` is not hosted by this server"),
        },
        (_, None) => Answer::Error {
            error_type: error_name::RUNTIME.into(),
            error_message: "the invocation's event could not be built".into(),
        },
    };
    let outcome = match &answer {
        Answer::Pending => "pending",
        Answer::Succeeded(_) => "succeeded",
        Answer::Failed(_) => "failed",
        Answer::Error {
            error_type,
            error_message,
        } => {
            tracing::warn!(%function, invocation = number, %error_type, %error_message, "invocation failed; it is tried again");
            "error"
        }
    };
    metrics::counter!("sagaflow_durable_invocations_total", "outcome" => outcome).increment(1);
    let input = Input::Durable(durable::Input::InvocationEnded { number, answer });
    let _ = tx.send(Msg::Input {
        input,
        call: Some(call),
    });
}

/// One chained invoke's call, from resolving its target to recording its
/// outcome.
pub(crate) async fn run_chained_invoke(
    engine: Engine,
    tx: Mailbox,
    execution: String,
    op: String,
    target: durable::InvokeTarget,
    call: CallInFlight,
) {
    let outcome = match engine.resolve(&execution, &op, &target) {
        Err(error) => InvokeOutcome::Failed { error },
        Ok(Resolved::Participant {
            participant,
            idempotency_key,
            input,
        }) => {
            call_participant(
                &engine,
                &execution,
                &op,
                participant,
                idempotency_key,
                input,
            )
            .await
        }
        Ok(Resolved::Plain {
            function, input, ..
        }) => call_plain(&engine, &function.name, input, &format!("{execution}:{op}")).await,
        Ok(Resolved::DurableChild {
            function, input, ..
        }) => call_child(&engine, &function.name, &execution, &op, input).await,
    };
    let input = Input::Durable(durable::Input::InvokeEnded { op, outcome });
    let _ = tx.send(Msg::Input {
        input,
        call: Some(call),
    });
}

/// An ErrorObject from a type and a message.
fn error_object(error_type: &str, message: &str) -> ErrorObject {
    ErrorObject {
        error_type: Some(error_type.to_string()),
        error_message: Some(message.to_string()),
        ..Default::default()
    }
}

/// A participant of the resource map, with the operation's stable
/// `Idempotency-Key`: 5xx and lost connections are retried (same key)
/// within the call timeout; a business error fails the operation at once
/// (a chained invoke never retries a function error).
async fn call_participant(
    engine: &Engine,
    execution: &str,
    op: &str,
    participant: sagaflow_core::Participant,
    idempotency_key: String,
    input: String,
) -> InvokeOutcome {
    let shared = &engine.shared;
    let deadline = now_ms().saturating_add(shared.config.lambda.call_timeout.as_millis() as u64);
    let input: Value = serde_json::from_str(&input).unwrap_or(Value::String(input));
    let mut delay = Duration::from_millis(200);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let req = Request {
            execution_id: execution.to_string(),
            step: op.to_string(),
            task: TaskKind::Action,
            attempt,
            participant: participant.clone(),
            input: input.clone(),
            idempotency_key: idempotency_key.clone(),
            deadline,
            task_token: None,
            heartbeat_ms: None,
        };
        let result = match invoke::enter(shared, &req).await {
            Ok((slot, budget)) => {
                let r = invoke::call(shared, req, budget).await;
                drop(slot);
                r
            }
            Err(e) => Err(e),
        };
        let error = match result {
            Ok(output) => {
                let text = match output {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                return InvokeOutcome::Succeeded { result: Some(text) };
            }
            Err(e) => e,
        };
        let transient = matches!(
            error.error.as_str(),
            error_name::TASK_FAILED | error_name::RESPONSE_LOST | error_name::PARTICIPANT_SATURATED
        );
        if error.error == error_name::TIMEOUT || (transient && now_ms() >= deadline) {
            return InvokeOutcome::TimedOut {
                error: error_object("ChainedInvoke.Timeout", &error.cause),
            };
        }
        if !transient {
            return InvokeOutcome::Failed {
                error: error_object(&error.error, &error.cause),
            };
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// A hosted plain function: exactly one invocation.
async fn call_plain(
    engine: &Engine,
    function: &str,
    input: String,
    request_id: &str,
) -> InvokeOutcome {
    let Some(functions) = engine.functions() else {
        return InvokeOutcome::Failed {
            error: durable::function_not_found(function),
        };
    };
    match functions
        .invoke(function, input.into_bytes(), request_id)
        .await
    {
        FunctionAnswer::Response(body) => InvokeOutcome::Succeeded {
            result: Some(String::from_utf8_lossy(&body).into_owned()),
        },
        FunctionAnswer::Error(error) => InvokeOutcome::Failed { error },
        FunctionAnswer::Failed {
            error_type,
            error_message,
        } => InvokeOutcome::Failed {
            error: error_object(&error_type, &error_message),
        },
    }
}

/// A hosted durable function: a child execution (named after the parent
/// and the operation, so a call made again after a restart finds it),
/// whose end is the operation's outcome.
async fn call_child(
    engine: &Engine,
    function: &str,
    parent: &str,
    op: &str,
    input: String,
) -> InvokeOutcome {
    let (name, _) = engine.chained_child(function, parent, op);
    let started = engine
        .start_durable(DurableStart {
            function: function.to_string(),
            name: Some(name),
            payload: input,
        })
        .await;
    let record = match started {
        Ok(s) => s.record,
        Err(e) => {
            return InvokeOutcome::Failed {
                error: error_object(e.code(), &e.to_string()),
            }
        }
    };
    let record = loop {
        match engine.wait(&record.id, Duration::from_secs(60)).await {
            Ok(r) if r.status.is_terminal() => break r,
            Ok(_) => continue,
            Err(e) if engine.is_shutting_down() => {
                return InvokeOutcome::Failed {
                    error: error_object(e.code(), &e.to_string()),
                }
            }
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    };
    let error = record
        .error
        .as_ref()
        .map(|e| error_object(&e.error, &e.cause))
        .unwrap_or_default();
    use sagaflow_core::Status;
    match record.status {
        // The child's result as the JSON its SDK returned (`"hello"` for a
        // string, as AWS records it and as the caller's SDK decodes it),
        // like GetDurableExecution's `Result`.
        Status::Succeeded => InvokeOutcome::Succeeded {
            result: record.output.as_ref().map(Value::to_string),
        },
        Status::TimedOut => InvokeOutcome::TimedOut { error },
        Status::Cancelled => InvokeOutcome::Stopped { error },
        _ => InvokeOutcome::Failed { error },
    }
}
