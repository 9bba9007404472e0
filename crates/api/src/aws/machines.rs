//! The state machine actions beyond create, describe, list and delete:
//! ValidateStateMachineDefinition, UpdateStateMachine and
//! DescribeStateMachineForExecution (of a map run's child execution too:
//! its machine is the Map's item processor).
//!
//! A machine's revision is its latest definition version: `revisionId` is
//! that version's number, and an update that changes the definition stores a
//! new version exactly as `PUT /v1/definitions/{name}` does
//! ([`Engine::deploy`](sagaflow_runtime::Engine::deploy)); executions keep
//! the version they started on.

use sagaflow_core::asl::run::{child_owner, state_machine_arn};
use serde_json::{json, Value};

use super::{
    epoch, execution, from_engine, get_machine, machine_of, now_ms, read_asl, read_definition,
    AwsError, Input, ROLE_ARN,
};
use crate::AppState;

/// The name a definition is compiled under when it is only validated (ASL
/// documents carry no name; CreateStateMachine compiles under the one given).
const VALIDATION_NAME: &str = "ValidateStateMachineDefinition";

/// The ARN of version `version` of machine `name`.
pub(super) fn version_arn(name: &str, version: u32) -> String {
    format!("{}:{version}", state_machine_arn(name))
}

/// A machine's `revisionId`: the number of its definition version.
pub(super) fn revision_id(version: u32) -> String {
    version.to_string()
}

/// The configuration members Sagaflow does not keep, described as AWS
/// describes a machine without them.
fn configurations() -> (Value, Value) {
    (
        json!({ "level": "OFF", "includeExecutionData": false }),
        json!({ "enabled": false }),
    )
}

pub(super) async fn validate_state_machine_definition(
    st: &AppState,
    input: &Input,
) -> Result<Value, AwsError> {
    let definition = input.required("definition")?;
    input.one_of("type", &["STANDARD", "EXPRESS"])?;
    input.one_of("severity", &["ERROR", "WARNING"])?;
    let max = input.whole("maxResults", 0, 100)?.unwrap_or(0);
    let max = if max == 0 { 100 } else { max as usize };
    let problems = match read_asl(definition).await? {
        Err(problems) => problems,
        // Compiled as CreateStateMachine compiles it, without storing it.
        Ok(_) => match st.engine.validate(Some(VALIDATION_NAME), definition).await {
            Ok(_) => Vec::new(),
            Err(sagaflow_runtime::Error::Invalid(sagaflow_core::Error::InvalidDefinition(vs))) => {
                super::problems(&vs)
            }
            Err(e) => return Err(from_engine(e)),
        },
    };
    // Sagaflow's problems are all errors: a WARNING threshold shows them too.
    let truncated = problems.len() > max;
    let diagnostics: Vec<Value> = problems
        .iter()
        .take(max)
        .map(|p| {
            json!({
                "severity": "ERROR",
                "code": p.code,
                "message": p.message,
                "location": p.location,
            })
        })
        .collect();
    Ok(json!({
        "result": if problems.is_empty() { "OK" } else { "FAIL" },
        "diagnostics": diagnostics,
        "truncated": truncated,
    }))
}

pub(super) async fn update_state_machine(st: &AppState, input: &Input) -> Result<Value, AwsError> {
    let name = machine_of(input.required("stateMachineArn")?)?;
    let definition = input.string("definition")?;
    let role = input.string("roleArn")?;
    let mut configured = false;
    for member in [
        "loggingConfiguration",
        "tracingConfiguration",
        "encryptionConfiguration",
    ] {
        configured |= input.object(member)?.is_some();
    }
    let publish = input.boolean("publish")?.unwrap_or(false);
    let description = super::versions::description(input, "versionDescription")?;
    if description.is_some() && !publish {
        return Err(AwsError::validation(
            "Version description can only be set when publish is true",
        ));
    }
    if definition.is_none() && role.is_none() && !configured {
        return Err(AwsError::new(
            "MissingRequiredParameter",
            "Either the definition, the roleArn, the loggingConfiguration, the tracingConfiguration or the encryptionConfiguration must be specified",
        ));
    }
    let current = get_machine(st, &name).await?;
    let (record, changed) = match definition {
        Some(definition) => {
            read_definition(definition).await?;
            let deployed = st
                .engine
                .deploy(Some(&name), definition)
                .await
                .map_err(from_engine)?;
            (deployed.record, deployed.created)
        }
        // A role or a configuration: accepted and not kept (see the README).
        None => (current, false),
    };
    let mut out = json!({
        "updateDate": epoch(if changed { record.created_at } else { now_ms() }),
        "revisionId": revision_id(record.version),
    });
    if publish {
        let d = description.unwrap_or_default();
        let v = super::versions::publish(st, &record.name, record.version, d).await?;
        out["stateMachineVersionArn"] = json!(version_arn(&record.name, v.version));
    }
    Ok(out)
}

pub(super) async fn describe_state_machine_for_execution(
    st: &AppState,
    input: &Input,
) -> Result<Value, AwsError> {
    input.one_of("includedData", &["ALL_DATA", "METADATA_ONLY"])?;
    let arn = input.required("executionArn")?;
    // A map run's child: its machine is described from its parent's.
    let (rec, run) = match child_owner(arn) {
        Some(child) => {
            let (rec, run) = super::map_runs::started_child(st, arn, child).await?;
            (rec, Some(run))
        }
        None => (execution(st, input).await?, None),
    };
    // Every version stays readable, even once its machine is deleted.
    let d = st
        .engine
        .store()
        .get_definition(&rec.definition, Some(rec.version))
        .await
        .map_err(|e| from_engine(e.into()))?;
    let (logging, tracing) = configurations();
    let mut v = json!({
        "stateMachineArn": state_machine_arn(&d.name),
        "name": d.name,
        "definition": d.source,
        "roleArn": ROLE_ARN,
        "updateDate": epoch(d.created_at),
        "revisionId": revision_id(d.version),
        "loggingConfiguration": logging,
        "tracingConfiguration": tracing,
    });
    if let Some(run) = run {
        super::map_runs::as_child_machine(&mut v, &d, &run)?;
    }
    Ok(v)
}
