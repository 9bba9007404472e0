//! Versions and aliases of a state machine: PublishStateMachineVersion,
//! ListStateMachineVersions, DeleteStateMachineVersion, the alias actions,
//! DescribeStateMachine of a version ARN and StartExecution through a version
//! or an alias ARN.
//!
//! What "published" means here: every stored definition version is a
//! revision (`revisionId` = its number), immutable; publishing marks the
//! current revision as a version, durably, with its description
//! ([`Executor::publish_version`](sagaflow_store::Executor::publish_version)),
//! so its number is the revision's (`…:stateMachine:NAME:3` may follow
//! `…:NAME:1` when revision 2 was never published). Deleting a version
//! unpublishes it; the revision stays, as the executions that ran it need it.
//! An alias routes to one or two published versions by weight; a version an
//! alias routes to cannot be deleted (`ConflictException`). Deleting the
//! machine deletes its versions and aliases.
//!
//! An execution started through a version or an alias runs the version
//! chosen at its start (the execution's own version, recorded with it, so
//! replay never chooses again); how it was started (the version number or
//! the alias name) is recorded next to it for DescribeExecution.

use sagaflow_core::asl::run::state_machine_arn;
use sagaflow_core::document::type_name;
use sagaflow_store::{AliasRecord, AliasWrite, PublishedVersion, Unpublish};
use serde_json::{json, Value};

use super::machines::{revision_id, version_arn};
use super::{epoch, from_engine, get_machine, invalid_arn, machine_of, now_ms, AwsError, Input};
use crate::AppState;

/// What follows a machine's name in a qualified ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Qualifier {
    Version(u32),
    Alias(String),
}

impl Qualifier {
    /// As recorded for an execution (see
    /// [`Executor::record_execution_origin`](sagaflow_store::Executor::record_execution_origin)):
    /// a version's number, an alias's name (never all digits).
    pub(super) fn parse(q: &str) -> Option<Qualifier> {
        if q.is_empty() {
            None
        } else if q.bytes().all(|b| b.is_ascii_digit()) {
            q.parse().ok().filter(|v| *v > 0).map(Qualifier::Version)
        } else if alias_name_ok(q) {
            Some(Qualifier::Alias(q.to_string()))
        } else {
            None
        }
    }

    pub(super) fn recorded(&self) -> String {
        match self {
            Qualifier::Version(v) => v.to_string(),
            Qualifier::Alias(a) => a.clone(),
        }
    }
}

/// An alias's name, as AWS allows it: 1 to 80 letters, digits, `_`, `-`,
/// `.`, not all digits (which would read as a version).
fn alias_name_ok(name: &str) -> bool {
    (1..=80).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.chars().all(|c| c.is_ascii_digit())
}

/// The machine and, when present, the version or alias of
/// `arn:aws:states:REGION:ACCOUNT:stateMachine:NAME[:QUALIFIER]`.
pub(super) fn qualified_of(arn: &str) -> Result<(String, Option<Qualifier>), AwsError> {
    match arn.split(':').collect::<Vec<_>>().as_slice() {
        ["arn", _, "states", _, _, "stateMachine", _] => Ok((machine_of(arn)?, None)),
        ["arn", _, "states", _, _, "stateMachine", name, q] if !name.is_empty() => {
            match Qualifier::parse(q) {
                Some(q) => Ok((name.to_string(), Some(q))),
                None => Err(invalid_arn(
                    arn,
                    "a state machine ARN, with a version number or an alias name after it",
                )),
            }
        }
        _ => Err(invalid_arn(
            arn,
            "a state machine ARN (arn:aws:states:REGION:ACCOUNT:stateMachine:NAME[:VERSION|:ALIAS])",
        )),
    }
}

/// The machine and version of a version ARN.
fn version_of(arn: &str) -> Result<(String, u32), AwsError> {
    match qualified_of(arn) {
        Ok((name, Some(Qualifier::Version(v)))) => Ok((name, v)),
        Ok(_) | Err(_) => Err(invalid_arn(
            arn,
            "a state machine version ARN (arn:aws:states:REGION:ACCOUNT:stateMachine:NAME:VERSION)",
        )),
    }
}

/// The machine and alias of an alias ARN.
fn alias_of(arn: &str) -> Result<(String, String), AwsError> {
    match qualified_of(arn) {
        Ok((name, Some(Qualifier::Alias(a)))) => Ok((name, a)),
        Ok(_) | Err(_) => Err(invalid_arn(
            arn,
            "a state machine alias ARN (arn:aws:states:REGION:ACCOUNT:stateMachine:NAME:ALIAS)",
        )),
    }
}

pub(super) fn alias_arn(name: &str, alias: &str) -> String {
    format!("{}:{alias}", state_machine_arn(name))
}

fn resource_missing(arn: &str) -> AwsError {
    AwsError::new("ResourceNotFound", format!("Resource not found: '{arn}'"))
}

fn version_missing(arn: &str) -> AwsError {
    AwsError::new(
        "StateMachineDoesNotExist",
        format!("State Machine Does Not Exist: '{arn}'"),
    )
}

/// A description member (`description`, `versionDescription`): at most 256
/// characters.
pub(super) fn description<'a>(input: &'a Input, field: &str) -> Result<Option<&'a str>, AwsError> {
    let d = input.string(field)?;
    if d.is_some_and(|d| d.chars().count() > 256) {
        return Err(AwsError::validation(format!(
            "1 validation error detected: Value at '{field}' failed to satisfy constraint: Member must have length less than or equal to 256"
        )));
    }
    Ok(d)
}

/// The published versions of a machine (`StateMachineDoesNotExist` when it
/// is not live).
async fn published(st: &AppState, name: &str) -> Result<Vec<PublishedVersion>, AwsError> {
    match st.engine.store().published_versions(name).await {
        Ok(v) => Ok(v),
        Err(sagaflow_store::Error::NotFound { .. }) => Err(AwsError::machine_missing(name)),
        Err(e) => Err(from_engine(e.into())),
    }
}

/// A published version (`StateMachineDoesNotExist` naming its ARN when it
/// is not, or its machine is not live).
pub(super) async fn published_version(
    st: &AppState,
    name: &str,
    version: u32,
) -> Result<PublishedVersion, AwsError> {
    let arn = version_arn(name, version);
    match published(st, name).await {
        Ok(vs) => vs
            .into_iter()
            .find(|v| v.version == version)
            .ok_or_else(|| version_missing(&arn)),
        Err(e) if e.name == "StateMachineDoesNotExist" => Err(version_missing(&arn)),
        Err(e) => Err(e),
    }
}

/// Publishes the latest revision of `name` (the one an action just stored
/// or read), with `description`: the published version (an already
/// published revision answers as it was published).
pub(super) async fn publish(
    st: &AppState,
    name: &str,
    version: u32,
    description: &str,
) -> Result<PublishedVersion, AwsError> {
    match st
        .engine
        .store()
        .publish_version(name, version, description, now_ms())
        .await
    {
        Ok((v, _)) => Ok(v),
        Err(sagaflow_store::Error::NotFound { .. }) => Err(AwsError::machine_missing(name)),
        Err(e) => Err(from_engine(e.into())),
    }
}

/// A page of `items` after the token `after` (`InvalidToken` when it is
/// not one this action gave), at most `max`; the next token, if more.
pub(super) fn page<T: Clone>(
    items: &[T],
    key: impl Fn(&T) -> String,
    after: Option<&str>,
    max: usize,
) -> Result<(Vec<T>, Option<String>), AwsError> {
    let start = match after {
        None => 0,
        Some(t) => {
            items
                .iter()
                .position(|i| key(i) == t)
                .ok_or_else(|| AwsError::new("InvalidToken", format!("Invalid Token: '{t}'")))?
                + 1
        }
    };
    let rest = &items[start..];
    let taken: Vec<T> = rest.iter().take(max).cloned().collect();
    let next = (rest.len() > max).then(|| taken.last().map(&key)).flatten();
    Ok((taken, next))
}

// ---------------------------------------------------------------------------
// Versions

pub(super) async fn publish_state_machine_version(
    st: &AppState,
    input: &Input,
) -> Result<Value, AwsError> {
    let name = machine_of(input.required("stateMachineArn")?)?;
    let revision = input.string("revisionId")?;
    let description = description(input, "description")?;
    let current = get_machine(st, &name).await?;
    if let Some(r) = revision {
        if r != revision_id(current.version) {
            return Err(AwsError::new(
                "ConflictException",
                format!(
                    "Failed to publish the State Machine version for revision {r}. The current State Machine revision is {}.",
                    revision_id(current.version)
                ),
            ));
        }
    }
    let v = publish(st, &name, current.version, description.unwrap_or_default()).await?;
    Ok(json!({
        "creationDate": epoch(v.published_at),
        "stateMachineVersionArn": version_arn(&name, v.version),
    }))
}

pub(super) async fn list_state_machine_versions(
    st: &AppState,
    input: &Input,
) -> Result<Value, AwsError> {
    let name = machine_of(input.required("stateMachineArn")?)?;
    let max = input.max_results()?;
    let after = input.string("nextToken")?;
    let versions = published(st, &name).await?;
    let (items, next) = page(&versions, |v| v.version.to_string(), after, max)?;
    let mut out = json!({
        "stateMachineVersions": items.iter().map(|v| json!({
            "stateMachineVersionArn": version_arn(&name, v.version),
            "creationDate": epoch(v.published_at),
        })).collect::<Vec<_>>(),
    });
    if let Some(n) = next {
        out["nextToken"] = json!(n);
    }
    Ok(out)
}

/// Idempotent, as in AWS; refused while an alias routes to the version.
pub(super) async fn delete_state_machine_version(
    st: &AppState,
    input: &Input,
) -> Result<Value, AwsError> {
    let (name, version) = version_of(input.required("stateMachineVersionArn")?)?;
    match st.engine.store().unpublish_version(&name, version).await {
        Ok(Unpublish::Done | Unpublish::Absent) => Ok(json!({})),
        Ok(Unpublish::Routed(alias)) => Err(AwsError::new(
            "ConflictException",
            format!(
                "Version to be deleted must not be referenced by an alias. Current list of aliases referencing this version: [{}]",
                alias_arn(&name, &alias)
            ),
        )),
        Err(e) => Err(from_engine(e.into())),
    }
}

/// DescribeStateMachine of `…:stateMachine:NAME:VERSION`: that version.
pub(super) async fn describe_version(
    st: &AppState,
    name: &str,
    version: u32,
) -> Result<Value, AwsError> {
    let v = published_version(st, name, version).await?;
    let d = st
        .engine
        .store()
        .get_definition(name, Some(version))
        .await
        .map_err(|e| from_engine(e.into()))?;
    let mut out = super::machine_description(&d);
    out["stateMachineArn"] = json!(version_arn(name, version));
    out["creationDate"] = epoch(v.published_at);
    if !v.description.is_empty() {
        out["description"] = json!(v.description);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Aliases

/// A `routingConfiguration`: 1 or 2 distinct versions of one machine, with
/// weights of 0 to 100 summing to 100. The machine and `(version, weight)`.
/// A machine's name and its `(version, weight)` routes.
type Routing = (String, Vec<(u32, u32)>);

fn routing(input: &Input) -> Result<Option<Routing>, AwsError> {
    let items = match input.0.get("routingConfiguration") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(AwsError::validation(format!(
                "1 validation error detected: 'routingConfiguration' must be a list, not {}",
                type_name(other)
            )))
        }
    };
    if !(1..=2).contains(&items.len()) {
        return Err(AwsError::validation(format!(
            "1 validation error detected: Value at 'routingConfiguration' failed to satisfy constraint: Member must have length between 1 and 2 (it has {})",
            items.len()
        )));
    }
    let mut machine: Option<String> = None;
    let mut routes = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("routingConfiguration.{}.member", i + 1);
        let arn = item
            .get("stateMachineVersionArn")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                AwsError::validation(format!(
                    "1 validation error detected: Value null at '{field}.stateMachineVersionArn' failed to satisfy constraint: Member must not be null"
                ))
            })?;
        let weight = item
            .get("weight")
            .and_then(Value::as_u64)
            .filter(|w| *w <= 100)
            .ok_or_else(|| {
                AwsError::validation(format!(
                    "1 validation error detected: Value at '{field}.weight' failed to satisfy constraint: Member must be a whole number between 0 and 100"
                ))
            })?;
        let (name, version) = version_of(arn)?;
        if machine.as_ref().is_some_and(|m| *m != name) {
            return Err(AwsError::validation(
                "Routing configuration must contain versions of the same state machine",
            ));
        }
        if routes.iter().any(|(v, _)| *v == version) {
            return Err(AwsError::validation(
                "Routing configuration must contain distinct state machine versions",
            ));
        }
        machine = Some(name);
        routes.push((version, weight as u32));
    }
    let total: u32 = routes.iter().map(|(_, w)| w).sum();
    if total != 100 {
        return Err(AwsError::validation(format!(
            "Sum of routing configuration weights must be equal to 100 (it is {total})"
        )));
    }
    Ok(machine.map(|m| (m, routes)))
}

fn routing_json(name: &str, routes: &[(u32, u32)]) -> Value {
    routes
        .iter()
        .map(|(v, w)| json!({ "stateMachineVersionArn": version_arn(name, *v), "weight": w }))
        .collect()
}

/// Stores an alias: its answer, or the refusal for a routed version that is
/// not published, a machine that is not live, a missing alias (update).
async fn put(st: &AppState, alias: &AliasRecord, create: bool) -> Result<AliasWrite, AwsError> {
    match st.engine.store().put_alias(alias, create).await {
        Ok(AliasWrite::Unpublished(v)) => Err(resource_missing(&version_arn(&alias.name, v))),
        Ok(w) => Ok(w),
        Err(sagaflow_store::Error::NotFound { what: "alias", .. }) => {
            Err(resource_missing(&alias_arn(&alias.name, &alias.alias)))
        }
        Err(sagaflow_store::Error::NotFound { .. }) => {
            Err(resource_missing(&state_machine_arn(&alias.name)))
        }
        Err(e) => Err(from_engine(e.into())),
    }
}

/// An alias of a machine; `ResourceNotFound` naming its ARN when there is
/// none (or the machine is not live).
pub(super) async fn get_alias(
    st: &AppState,
    name: &str,
    alias: &str,
) -> Result<AliasRecord, AwsError> {
    let arn = alias_arn(name, alias);
    match st.engine.store().definition_aliases(name).await {
        Ok(aliases) => aliases
            .into_iter()
            .find(|a| a.alias == alias)
            .ok_or_else(|| resource_missing(&arn)),
        Err(sagaflow_store::Error::NotFound { .. }) => Err(resource_missing(&arn)),
        Err(e) => Err(from_engine(e.into())),
    }
}

pub(super) async fn create_state_machine_alias(
    st: &AppState,
    input: &Input,
) -> Result<Value, AwsError> {
    let alias = input.required("name")?;
    let description = description(input, "description")?.unwrap_or_default();
    let (name, routes) = routing(input)?.ok_or_else(|| {
        AwsError::validation(
            "1 validation error detected: Value null at 'routingConfiguration' failed to satisfy constraint: Member must not be null",
        )
    })?;
    if !alias_name_ok(alias) {
        return Err(AwsError::new(
            "InvalidName",
            format!("Invalid Name: '{alias}' (use 1 to 80 letters, digits, `_`, `-` or `.`, not only digits)"),
        ));
    }
    let now = now_ms();
    let record = AliasRecord {
        name: name.clone(),
        alias: alias.to_string(),
        description: description.to_string(),
        routing: routes,
        created_at: now,
        updated_at: now,
    };
    let arn = alias_arn(&name, alias);
    let stored = match put(st, &record, true).await? {
        AliasWrite::Stored(a) => a,
        // As AWS: the same alias again is the existing one; another is a conflict.
        AliasWrite::Exists(a) if a.routing == record.routing && a.description == description => a,
        AliasWrite::Exists(_) => {
            return Err(AwsError::new(
                "ConflictException",
                format!("Alias already exists with a different configuration: '{arn}'"),
            ))
        }
        AliasWrite::Unpublished(v) => return Err(resource_missing(&version_arn(&name, v))),
    };
    Ok(json!({
        "stateMachineAliasArn": arn,
        "creationDate": epoch(stored.created_at),
    }))
}

pub(super) async fn describe_state_machine_alias(
    st: &AppState,
    input: &Input,
) -> Result<Value, AwsError> {
    let (name, alias) = alias_of(input.required("stateMachineAliasArn")?)?;
    let a = get_alias(st, &name, &alias).await?;
    let mut out = json!({
        "stateMachineAliasArn": alias_arn(&name, &alias),
        "name": a.alias,
        "routingConfiguration": routing_json(&name, &a.routing),
        "creationDate": epoch(a.created_at),
        "updateDate": epoch(a.updated_at),
    });
    if !a.description.is_empty() {
        out["description"] = json!(a.description);
    }
    Ok(out)
}

pub(super) async fn update_state_machine_alias(
    st: &AppState,
    input: &Input,
) -> Result<Value, AwsError> {
    let (name, alias) = alias_of(input.required("stateMachineAliasArn")?)?;
    let description = description(input, "description")?;
    let routes = routing(input)?;
    if description.is_none() && routes.is_none() {
        return Err(AwsError::validation(
            "Either the description or the routingConfiguration must be specified",
        ));
    }
    if let Some((machine, _)) = &routes {
        if *machine != name {
            return Err(AwsError::validation(format!(
                "Routing configuration must contain versions of the alias's state machine '{}'",
                state_machine_arn(&name)
            )));
        }
    }
    let current = get_alias(st, &name, &alias).await?;
    let record = AliasRecord {
        description: description.map_or(current.description.clone(), String::from),
        routing: routes.map_or(current.routing.clone(), |(_, r)| r),
        updated_at: now_ms(),
        ..current
    };
    let stored = match put(st, &record, false).await? {
        AliasWrite::Stored(a) | AliasWrite::Exists(a) => a,
        AliasWrite::Unpublished(v) => return Err(resource_missing(&version_arn(&name, v))),
    };
    Ok(json!({ "updateDate": epoch(stored.updated_at) }))
}

pub(super) async fn delete_state_machine_alias(
    st: &AppState,
    input: &Input,
) -> Result<Value, AwsError> {
    let arn = input.required("stateMachineAliasArn")?;
    let (name, alias) = alias_of(arn)?;
    match st.engine.store().delete_alias(&name, &alias).await {
        Ok(true) => Ok(json!({})),
        Ok(false) => Err(resource_missing(arn)),
        Err(e) => Err(from_engine(e.into())),
    }
}

pub(super) async fn list_state_machine_aliases(
    st: &AppState,
    input: &Input,
) -> Result<Value, AwsError> {
    let name = machine_of(input.required("stateMachineArn")?)?;
    let max = input.max_results()?;
    let after = input.string("nextToken")?;
    let aliases = match st.engine.store().definition_aliases(&name).await {
        Ok(a) => a,
        Err(sagaflow_store::Error::NotFound { .. }) => {
            return Err(AwsError::machine_missing(&name))
        }
        Err(e) => return Err(from_engine(e.into())),
    };
    let (items, next) = page(&aliases, |a| a.alias.clone(), after, max)?;
    let mut out = json!({
        "stateMachineAliases": items.iter().map(|a| json!({
            "stateMachineAliasArn": alias_arn(&name, &a.alias),
            "creationDate": epoch(a.created_at),
        })).collect::<Vec<_>>(),
    });
    if let Some(n) = next {
        out["nextToken"] = json!(n);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Starting

/// The version an execution started through `qualifier` runs: a published
/// version, or one of an alias's versions drawn by weight (at random, once:
/// the execution records the version it runs).
pub(super) async fn version_to_start(
    st: &AppState,
    name: &str,
    qualifier: &Qualifier,
) -> Result<u32, AwsError> {
    match qualifier {
        Qualifier::Version(v) => Ok(published_version(st, name, *v).await?.version),
        Qualifier::Alias(alias) => {
            let a = get_alias(st, name, alias)
                .await
                .map_err(|_| version_missing(&alias_arn(name, alias)))?;
            let draw = (uuid::Uuid::new_v4().as_u128() % 100) as u32;
            Ok(pick(&a.routing, draw))
        }
    }
}

/// The version `draw` (0 to 99) falls on: each version takes as many of the
/// 100 values as its weight, in order.
fn pick(routes: &[(u32, u32)], draw: u32) -> u32 {
    let mut upto = 0;
    for (v, w) in routes {
        upto += w;
        if draw < upto {
            return *v;
        }
    }
    routes.last().map_or(0, |(v, _)| *v)
}

/// Whether an execution at `version`, started as `origin` recorded, was
/// started through the version or alias `q`.
pub(super) fn started_through(origin: Option<&str>, version: u32, q: &Qualifier) -> bool {
    match (origin.and_then(Qualifier::parse), q) {
        (None, _) => false,
        (Some(_), Qualifier::Version(v)) => version == *v,
        (Some(Qualifier::Alias(a)), Qualifier::Alias(b)) => a == *b,
        (Some(Qualifier::Version(_)), Qualifier::Alias(_)) => false,
    }
}

/// The version and alias ARNs DescribeExecution answers for an execution
/// of `name` at `version` started as `origin` recorded.
pub(super) fn origin_arns(
    name: &str,
    version: u32,
    origin: Option<&str>,
) -> Vec<(&'static str, String)> {
    match origin.and_then(Qualifier::parse) {
        None => Vec::new(),
        Some(Qualifier::Version(v)) => vec![("stateMachineVersionArn", version_arn(name, v))],
        Some(Qualifier::Alias(a)) => vec![
            ("stateMachineVersionArn", version_arn(name, version)),
            ("stateMachineAliasArn", alias_arn(name, &a)),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_arns_name_a_version_or_an_alias() {
        let arn = |q: &str| format!("{}:{q}", state_machine_arn("m"));
        assert_eq!(
            qualified_of(&arn("3")).ok(),
            Some(("m".into(), Some(Qualifier::Version(3))))
        );
        assert_eq!(
            qualified_of(&arn("prod")).ok(),
            Some(("m".into(), Some(Qualifier::Alias("prod".into()))))
        );
        assert_eq!(
            qualified_of(&state_machine_arn("m")).ok(),
            Some(("m".into(), None))
        );
        for bad in ["0", "", "a b", "x:y"] {
            assert!(qualified_of(&arn(bad)).is_err(), "{bad}");
        }
        assert!(version_of(&arn("prod")).is_err());
        assert!(alias_of(&arn("2")).is_err());
    }

    #[test]
    fn each_version_takes_as_many_draws_as_its_weight() {
        let routes = [(1, 30), (2, 70)];
        let ones = (0..100).filter(|d| pick(&routes, *d) == 1).count();
        assert_eq!(ones, 30);
        assert_eq!(pick(&[(4, 100)], 99), 4);
        assert_eq!(pick(&[(1, 0), (2, 100)], 0), 2);
    }
}
