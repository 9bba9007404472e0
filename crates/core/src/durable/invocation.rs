//! What a durable function is handed: its execution's ARN
//! ([`DurableExecutionArn`]), the invocation event
//! ([`DurableInvocationEvent`]) and the paging of the operations
//! ([`first_page`], [`state_page`]).
//!
//! - The ARN is
//!   `arn:aws:lambda:{region}:{account}:function:{name}:{$LATEST|version}/durable-execution/{executionName}/{invocationId}`;
//!   the function part is read by [`FunctionName::parse`] (a full ARN with
//!   a qualifier, `$LATEST` or a version number); a malformed ARN is
//!   refused with an [`ArnError`] (`InvalidParameterValueException`).
//! - The event is `{DurableExecutionArn, CheckpointToken,
//!   InitialExecutionState: {Operations, NextMarker?}}` with AWS's field
//!   names; the operations in creation order, EXECUTION first, their
//!   timestamps in epoch milliseconds (integers), as the SDK reads them.
//! - The first page holds as many operations as fit in a byte budget (the
//!   whole serialized event; by default [`SYNC_INVOCATION_LIMIT_BYTES`]),
//!   always at least the EXECUTION operation; the rest is served by
//!   [`state_page`] (`GetDurableExecutionState`) from an opaque marker,
//!   at most [`MAX_STATE_ITEMS`] a page. Every operation comes exactly
//!   once across the pages, in order. A marker that is not one this module
//!   issued is refused (`invalid_marker`, answered as
//!   `InvalidParameterValueException`). The checkpoint token of a
//!   `GetDurableExecutionState` call is checked by the host with
//!   [`super::Invocations::check_token`] before it asks for a page.

use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::model::Operation;
use super::operations::Refusal;
use super::token::NewExecutionState;
use crate::function_name::{FunctionName, LATEST};

/// The payload limit of a synchronous invocation (6 MB): the default
/// budget of the invocation event.
pub const SYNC_INVOCATION_LIMIT_BYTES: usize = 6 * 1024 * 1024;

/// The largest `MaxItems` of `GetDurableExecutionState` (and its default).
pub const MAX_STATE_ITEMS: u32 = 1000;

/// The separator between the function part and the execution part.
const DURABLE_EXECUTION: &str = "/durable-execution/";

/// The ARN of one durable execution.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DurableExecutionArn {
    pub partition: String,
    pub region: String,
    pub account: String,
    /// The function's name (no qualifier).
    pub function: String,
    /// `$LATEST` or a version number.
    pub qualifier: String,
    /// `DurableExecutionName` (given or generated).
    pub execution_name: String,
    /// The invocation id, also the EXECUTION operation's `Id`.
    pub invocation_id: String,
}

/// Why a durable execution ARN (or its parts) is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArnError {
    /// The ARN (or part) as given.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ArnError {
    /// The error code Lambda's API answers with (HTTP 400).
    pub const ERROR_TYPE: &'static str = "InvalidParameterValueException";

    fn new(value: &str, reason: impl Into<String>) -> ArnError {
        ArnError {
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ArnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Invalid durable execution ARN '{}': {}",
            self.value, self.reason
        )
    }
}

impl std::error::Error for ArnError {}

/// An execution name or invocation id: 1 to 64 of letters, digits, `-`
/// and `_` (no `/` or `:` that would make the ARN ambiguous).
fn is_segment(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn is_version(q: &str) -> bool {
    !q.is_empty() && q.bytes().all(|b| b.is_ascii_digit())
}

impl DurableExecutionArn {
    /// The ARN of execution `execution_name` (invocation `invocation_id`)
    /// of `function` in `region`/`account`. The function's qualifier must
    /// be `$LATEST` (given or implied) or a version number (an alias is
    /// resolved to its version before); region and account given in the
    /// name itself must agree.
    pub fn new(
        region: &str,
        account: &str,
        function: &FunctionName,
        execution_name: &str,
        invocation_id: &str,
    ) -> Result<DurableExecutionArn, ArnError> {
        let arn = DurableExecutionArn {
            partition: function
                .partition
                .clone()
                .unwrap_or_else(|| "aws".to_string()),
            region: region.to_string(),
            account: account.to_string(),
            function: function.name.clone(),
            qualifier: function.qualifier().to_string(),
            execution_name: execution_name.to_string(),
            invocation_id: invocation_id.to_string(),
        };
        if function.region.as_deref().is_some_and(|r| r != region)
            || function.account.as_deref().is_some_and(|a| a != account)
        {
            return Err(ArnError::new(
                &arn.to_string(),
                format!("the function is not in region {region} of account {account}"),
            ));
        }
        // Validate the whole by reading it back.
        DurableExecutionArn::parse(&arn.to_string())
    }

    /// Reads an ARN back; anything malformed is refused.
    pub fn parse(value: &str) -> Result<DurableExecutionArn, ArnError> {
        let refuse = |reason: &str| ArnError::new(value, reason);
        let (function_part, execution_part) = value
            .split_once(DURABLE_EXECUTION)
            .ok_or_else(|| refuse("expected '.../durable-execution/NAME/INVOCATION_ID'"))?;
        let function = FunctionName::parse(function_part)
            .map_err(|e| refuse(&format!("bad function part: {e}")))?;
        let (Some(partition), Some(region), Some(account)) =
            (function.partition, function.region, function.account)
        else {
            return Err(refuse(
                "the function part must be a full ARN arn:aws:lambda:REGION:ACCOUNT:function:NAME:QUALIFIER",
            ));
        };
        let qualifier = match function.qualifier {
            Some(q) if q == LATEST || is_version(&q) => q,
            Some(_) => return Err(refuse("the qualifier must be $LATEST or a version number")),
            None => return Err(refuse("the function part has no qualifier")),
        };
        let (execution_name, invocation_id) = execution_part
            .split_once('/')
            .ok_or_else(|| refuse("expected '.../durable-execution/NAME/INVOCATION_ID'"))?;
        if !is_segment(execution_name) {
            return Err(refuse(
                "the execution name must be 1 to 64 letters, digits, '-' or '_'",
            ));
        }
        if !is_segment(invocation_id) {
            return Err(refuse(
                "the invocation id must be 1 to 64 letters, digits, '-' or '_'",
            ));
        }
        Ok(DurableExecutionArn {
            partition,
            region,
            account,
            function: function.name,
            qualifier,
            execution_name: execution_name.to_string(),
            invocation_id: invocation_id.to_string(),
        })
    }

    /// The function's ARN with its qualifier (the ARN before
    /// `/durable-execution/`).
    pub fn function_arn(&self) -> String {
        format!(
            "arn:{}:lambda:{}:{}:function:{}:{}",
            self.partition, self.region, self.account, self.function, self.qualifier
        )
    }
}

impl fmt::Display for DurableExecutionArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{DURABLE_EXECUTION}{}/{}",
            self.function_arn(),
            self.execution_name,
            self.invocation_id
        )
    }
}

impl std::str::FromStr for DurableExecutionArn {
    type Err = ArnError;

    fn from_str(s: &str) -> Result<DurableExecutionArn, ArnError> {
        DurableExecutionArn::parse(s)
    }
}

/// The event a durable function's invocation receives. `InitialExecutionState`
/// has the same shape as a `GetDurableExecutionState` answer
/// (`{Operations, NextMarker?}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DurableInvocationEvent {
    pub durable_execution_arn: String,
    pub checkpoint_token: String,
    pub initial_execution_state: NewExecutionState,
}

/// The marker of the page starting at operation `index`: opaque (URL-safe
/// base64, so it travels in a query string as it is).
fn marker(index: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("ops:{index}"))
}

/// The index a marker points at, if it is exactly one [`marker`] gives.
fn marker_index(text: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let index: usize = raw.strip_prefix("ops:")?.parse().ok()?;
    (marker(index) == text).then_some(index)
}

fn json_len<T: Serialize>(value: &T) -> usize {
    serde_json::to_vec(value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
}

/// The invocation event: `operations` (creation order, EXECUTION first)
/// as far as the serialized event stays within `budget` bytes, always at
/// least the first one (the SDK reads the input from it), and a
/// `NextMarker` for [`state_page`] when some are left.
pub fn first_page(
    arn: &DurableExecutionArn,
    checkpoint_token: &str,
    operations: &[Operation],
    budget: usize,
) -> DurableInvocationEvent {
    let mut event = DurableInvocationEvent {
        durable_execution_arn: arn.to_string(),
        checkpoint_token: checkpoint_token.to_string(),
        initial_execution_state: NewExecutionState {
            operations: Vec::new(),
            // The longest marker this list can need, so the size is an
            // upper bound whatever the cut.
            next_marker: Some(marker(operations.len())),
        },
    };
    let mut size = json_len(&event);
    let mut taken = 0;
    for (i, op) in operations.iter().enumerate() {
        let grown = size
            .saturating_add(json_len(op))
            .saturating_add(usize::from(i > 0));
        if i > 0 && grown > budget {
            break;
        }
        size = grown;
        taken = i + 1;
    }
    event.initial_execution_state = NewExecutionState {
        operations: operations[..taken].to_vec(),
        next_marker: (taken < operations.len()).then(|| marker(taken)),
    };
    event
}

/// [`first_page`] with the default budget, the sync invocation limit.
pub fn invocation_event(
    arn: &DurableExecutionArn,
    checkpoint_token: &str,
    operations: &[Operation],
) -> DurableInvocationEvent {
    first_page(
        arn,
        checkpoint_token,
        operations,
        SYNC_INVOCATION_LIMIT_BYTES,
    )
}

/// The code of a refused marker.
pub const INVALID_MARKER: &str = "invalid_marker";
/// The code of a refused `MaxItems`.
pub const INVALID_MAX_ITEMS: &str = "invalid_max_items";

/// One page of `GetDurableExecutionState`: the operations from `marker`
/// on (a `NextMarker` given by [`first_page`] or an earlier page), at most
/// `max_items` (`None`: [`MAX_STATE_ITEMS`]; `0` or more than
/// [`MAX_STATE_ITEMS`] is refused), with the next marker if some are
/// left. A marker that is not ours, or that points past the operations,
/// is refused; both are answered as `InvalidParameterValueException`.
pub fn state_page(
    operations: &[Operation],
    marker_text: &str,
    max_items: Option<u32>,
) -> Result<NewExecutionState, Refusal> {
    let max = max_items.unwrap_or(MAX_STATE_ITEMS);
    if max == 0 || max > MAX_STATE_ITEMS {
        return Err(Refusal::new(
            INVALID_MAX_ITEMS,
            format!(
                "1 validation error detected: Value '{max}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and {MAX_STATE_ITEMS}"
            ),
        ));
    }
    let start = marker_index(marker_text)
        .filter(|&i| i > 0 && i < operations.len())
        .ok_or_else(|| {
            Refusal::new(
                INVALID_MARKER,
                format!(
                    "Invalid marker: '{marker_text}' is not a marker of this execution's state."
                ),
            )
        })?;
    let end = start.saturating_add(max as usize).min(operations.len());
    Ok(NewExecutionState {
        operations: operations[start..end].to_vec(),
        next_marker: (end < operations.len()).then(|| marker(end)),
    })
}
