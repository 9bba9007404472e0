//! TagResource, UntagResource and ListTagsForResource: the tags of a state
//! machine, kept durably with its definition
//! ([`Executor::tag_definition`](sagaflow_store::Executor::tag_definition)):
//! a new version keeps them, deleting the machine deletes them; and those
//! of an activity, kept with it
//! ([`Executor::tag_activity`](sagaflow_store::Executor::tag_activity)).
//! AWS's limits: at most 50 tags, keys of 1 to 128 characters, values of at
//! most 256.

use sagaflow_core::document::type_name;
use sagaflow_store::Tags;
use serde_json::{json, Value};

use super::{from_engine, invalid_arn, machine_of, AwsError, Input};
use crate::AppState;

/// At most this many tags on one resource.
pub(super) const MAX_TAGS: usize = 50;

fn not_found(arn: &str) -> AwsError {
    AwsError::new("ResourceNotFound", format!("Resource not found: '{arn}'"))
}

/// What can be tagged.
enum Resource {
    Machine(String),
    Activity(String),
}

/// The machine or activity a taggable ARN names.
fn resource(arn: &str) -> Result<Resource, AwsError> {
    match arn.split(':').collect::<Vec<_>>().as_slice() {
        ["arn", _, "states", _, _, "activity", _] => {
            super::activities::activity_of(arn).map(Resource::Activity)
        }
        ["arn", _, "states", _, _, "stateMachine", _] => machine_of(arn).map(Resource::Machine),
        _ => Err(invalid_arn(
            arn,
            "the ARN of a state machine (arn:aws:states:REGION:ACCOUNT:stateMachine:NAME) or an activity",
        )),
    }
}

fn length_error(field: &str, value: &str, min: usize, max: usize) -> AwsError {
    AwsError::validation(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: Member must have length between {min} and {max}"
    ))
}

fn key(field: &str, v: &Value) -> Result<String, AwsError> {
    let k = v.as_str().ok_or_else(|| {
        AwsError::validation(format!(
            "1 validation error detected: '{field}' must be a string, not {}",
            type_name(v)
        ))
    })?;
    if (1..=128).contains(&k.chars().count()) {
        Ok(k.to_string())
    } else {
        Err(length_error(field, k, 1, 128))
    }
}

fn list<'a>(input: &'a Input, field: &str) -> Result<&'a [Value], AwsError> {
    match input.0.get(field) {
        None | Some(Value::Null) => Err(AwsError::validation(format!(
            "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
        ))),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(AwsError::validation(format!(
            "1 validation error detected: '{field}' must be a list, not {}",
            type_name(other)
        ))),
    }
}

/// A `tags` list (`[{"key", "value"}]`) checked against AWS's constraints.
/// A key given twice takes its last value.
pub(super) fn tag_list(input: &Input) -> Result<Tags, AwsError> {
    let mut tags = Tags::new();
    for (i, tag) in list(input, "tags")?.iter().enumerate() {
        let Some(tag) = tag.as_object() else {
            return Err(AwsError::validation(format!(
                "1 validation error detected: 'tags.{}' must be an object with `key` and `value`, not {}",
                i + 1,
                type_name(tag)
            )));
        };
        let k = key(
            &format!("tags.{}.member.key", i + 1),
            tag.get("key").unwrap_or(&Value::Null),
        )?;
        let v = match tag.get("value") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(v)) if v.chars().count() <= 256 => v.clone(),
            Some(Value::String(v)) => {
                return Err(length_error(
                    &format!("tags.{}.member.value", i + 1),
                    v,
                    0,
                    256,
                ))
            }
            Some(other) => {
                return Err(AwsError::validation(format!(
                    "1 validation error detected: 'tags.{}.member.value' must be a string, not {}",
                    i + 1,
                    type_name(other)
                )))
            }
        };
        tags.insert(k, v);
    }
    Ok(tags)
}

/// Sets and removes tags of machine `name`: `TooManyTags` past the limit,
/// `ResourceNotFound` for a machine that does not exist (or not any more).
pub(super) async fn change(
    st: &AppState,
    arn: &str,
    name: &str,
    set: &Tags,
    remove: &[String],
) -> Result<Tags, AwsError> {
    let store = st.engine.store();
    let changed = match resource(arn) {
        Ok(Resource::Activity(_)) => store.tag_activity(name, set, remove, MAX_TAGS).await,
        _ => store.tag_definition(name, set, remove, MAX_TAGS).await,
    };
    match changed {
        Ok(Some(tags)) => Ok(tags),
        Ok(None) => Err(AwsError::new(
            "TooManyTags",
            format!("Too many tags: '{arn}' would have more than {MAX_TAGS} tags"),
        )),
        Err(sagaflow_store::Error::NotFound { .. }) => Err(not_found(arn)),
        Err(e) => Err(from_engine(e.into())),
    }
}

pub(super) async fn tag_resource(st: &AppState, input: &Input) -> Result<Value, AwsError> {
    let arn = input.required("resourceArn")?;
    let set = tag_list(input)?;
    let (Resource::Machine(name) | Resource::Activity(name)) = resource(arn)?;
    change(st, arn, &name, &set, &[]).await?;
    Ok(json!({}))
}

pub(super) async fn untag_resource(st: &AppState, input: &Input) -> Result<Value, AwsError> {
    let arn = input.required("resourceArn")?;
    let keys = list(input, "tagKeys")?
        .iter()
        .enumerate()
        .map(|(i, k)| key(&format!("tagKeys.{}.member", i + 1), k))
        .collect::<Result<Vec<_>, _>>()?;
    let (Resource::Machine(name) | Resource::Activity(name)) = resource(arn)?;
    change(st, arn, &name, &Tags::new(), &keys).await?;
    Ok(json!({}))
}

pub(super) async fn list_tags_for_resource(
    st: &AppState,
    input: &Input,
) -> Result<Value, AwsError> {
    let arn = input.required("resourceArn")?;
    let tags = match resource(arn)? {
        Resource::Machine(name) => st.engine.store().definition_tags(&name).await,
        Resource::Activity(name) => match st.engine.store().get_activity(&name).await {
            Ok(Some(a)) => Ok(a.tags),
            Ok(None) => return Err(not_found(arn)),
            Err(e) => Err(e),
        },
    };
    let tags = match tags {
        Ok(tags) => tags,
        Err(sagaflow_store::Error::NotFound { .. }) => return Err(not_found(arn)),
        Err(e) => return Err(from_engine(e.into())),
    };
    Ok(json!({
        "tags": tags
            .iter()
            .map(|(k, v)| json!({ "key": k, "value": v }))
            .collect::<Vec<_>>(),
    }))
}
