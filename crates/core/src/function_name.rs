//! Lambda function names, shared by the ASL `lambda:invoke` integration
//! (through [`crate::asl::ResourceMap::resolve`]) and durable functions'
//! chained invokes (through [`crate::durable::resolve_target`]), so one
//! resource map serves both.
//!
//! Two things live here:
//!
//! - the lenient completion of any name into a full ARN
//!   ([`complete_arn`], [`strip_qualifier`]) that resource-map matching
//!   uses; it never refuses anything;
//! - [`FunctionName::parse`]: the strict parser of every form Lambda's
//!   `FunctionName` accepts, with Lambda's validation: a bare `name`,
//!   `name:qualifier`, a partial ARN `123456789012:function:name[:qualifier]`
//!   and a full ARN `arn:aws:lambda:region:account:function:name[:qualifier]`.
//!   No qualifier means `$LATEST`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Region and account a bare Lambda function name is completed with, so
/// that it can be matched against the resource map's ARN patterns.
pub const BARE_FUNCTION_PREFIX: &str = "arn:aws:lambda:us-east-1:000000000000:function:";

/// The qualifier a name without one means.
pub const LATEST: &str = "$LATEST";

/// Longest function name (the `name` part), as Lambda allows.
pub const MAX_NAME_LEN: usize = 64;
/// Longest `FunctionName` as given (an ARN with a qualifier), as Lambda allows.
pub const MAX_FUNCTION_NAME_LEN: usize = 140;
/// Longest qualifier (an alias name), as Lambda allows.
pub const MAX_QUALIFIER_LEN: usize = 128;

/// The pattern Lambda quotes when a `FunctionName` is malformed.
pub const FUNCTION_NAME_PATTERN: &str = r"(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?";

/// Completes what Lambda accepts as a function name into a full ARN: a bare
/// name (`my-fn`, `my-fn:prod`) or a partial ARN (`123456789012:function:my-fn`).
/// Lenient: anything else starting with `arn:` is kept as it is.
pub fn complete_arn(resource: &str) -> String {
    if resource.starts_with("arn:") {
        resource.to_string()
    } else if resource.contains(":function:") {
        format!("arn:aws:lambda:us-east-1:{resource}")
    } else {
        format!("{BARE_FUNCTION_PREFIX}{resource}")
    }
}

/// `arn:aws:lambda:R:A:function:NAME:QUALIFIER` → the ARN without `:QUALIFIER`.
pub fn strip_qualifier(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() == 8 && parts[2] == "lambda" && parts[5] == "function" {
        Some(parts[..7].join(":"))
    } else {
        None
    }
}

/// A parsed `FunctionName`: the function, where the form said so its
/// region and account, and its qualifier (`None` = `$LATEST`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FunctionName {
    /// The partition, region and account of a full ARN.
    pub partition: Option<String>,
    pub region: Option<String>,
    /// The account of a full or partial ARN.
    pub account: Option<String>,
    /// The function's name: letters, digits, `-` and `_`, 1 to 64.
    pub name: String,
    /// `$LATEST`, a version number or an alias name, as given.
    pub qualifier: Option<String>,
}

/// Why a `FunctionName` is refused. Its text is Lambda's validation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionNameError {
    /// The name as given.
    pub value: String,
    pub reason: NameProblem,
}

/// What is wrong with a refused `FunctionName`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    /// Empty.
    Empty,
    /// Longer than [`MAX_FUNCTION_NAME_LEN`] as a whole, or its name part
    /// longer than [`MAX_NAME_LEN`], or its qualifier longer than
    /// [`MAX_QUALIFIER_LEN`].
    TooLong,
    /// Does not match [`FUNCTION_NAME_PATTERN`] (a bad character, an empty
    /// part, an ARN that is not a Lambda function's, a bad account…).
    Pattern,
}

impl FunctionNameError {
    /// The error code Lambda's API answers with (HTTP 400).
    pub const ERROR_TYPE: &'static str = "InvalidParameterValueException";
}

impl fmt::Display for FunctionNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let constraint = match self.reason {
            NameProblem::Empty => "Member must have length greater than or equal to 1".to_string(),
            NameProblem::TooLong => {
                format!("Member must have length less than or equal to {MAX_FUNCTION_NAME_LEN}")
            }
            NameProblem::Pattern => {
                format!("Member must satisfy regular expression pattern: {FUNCTION_NAME_PATTERN}")
            }
        };
        write!(
            f,
            "1 validation error detected: Value '{}' at 'functionName' failed to satisfy constraint: {constraint}",
            self.value
        )
    }
}

impl std::error::Error for FunctionNameError {}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn is_qualifier(s: &str) -> bool {
    s == LATEST || is_name(s)
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_partition(s: &str) -> bool {
    s.strip_prefix("aws")
        .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-'))
}

/// `us-east-1`, `us-gov-west-1`: letters, `-`, ending in `-` and one digit.
fn is_region(s: &str) -> bool {
    let Some((head, digit)) = s.rsplit_once('-') else {
        return false;
    };
    digit.len() == 1
        && digit.bytes().all(|b| b.is_ascii_digit())
        && head.contains('-')
        && head
            .split('-')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
}

impl FunctionName {
    /// Parses every form Lambda accepts; no qualifier means `$LATEST`.
    pub fn parse(value: &str) -> Result<FunctionName, FunctionNameError> {
        let refuse = |reason| FunctionNameError {
            value: value.to_string(),
            reason,
        };
        if value.is_empty() {
            return Err(refuse(NameProblem::Empty));
        }
        if value.chars().count() > MAX_FUNCTION_NAME_LEN {
            return Err(refuse(NameProblem::TooLong));
        }
        let parts: Vec<&str> = value.split(':').collect();
        let (partition, region, account, rest) = if parts[0] == "arn" {
            // arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
            if !(7..=8).contains(&parts.len())
                || !is_partition(parts[1])
                || parts[2] != "lambda"
                || !is_region(parts[3])
                || !is_account(parts[4])
                || parts[5] != "function"
            {
                return Err(refuse(NameProblem::Pattern));
            }
            (
                Some(parts[1].to_string()),
                Some(parts[3].to_string()),
                Some(parts[4].to_string()),
                &parts[6..],
            )
        } else if parts.len() >= 2 && parts[1] == "function" {
            // ACCOUNT:function:NAME[:QUALIFIER]
            if !(3..=4).contains(&parts.len()) || !is_account(parts[0]) {
                return Err(refuse(NameProblem::Pattern));
            }
            (None, None, Some(parts[0].to_string()), &parts[2..])
        } else {
            // NAME[:QUALIFIER]
            if parts.len() > 2 {
                return Err(refuse(NameProblem::Pattern));
            }
            (None, None, None, &parts[..])
        };
        let name = rest[0];
        let qualifier = rest.get(1).copied();
        if !is_name(name) || qualifier.is_some_and(|q| !is_qualifier(q)) {
            return Err(refuse(NameProblem::Pattern));
        }
        if name.len() > MAX_NAME_LEN || qualifier.is_some_and(|q| q.len() > MAX_QUALIFIER_LEN) {
            return Err(refuse(NameProblem::TooLong));
        }
        Ok(FunctionName {
            partition,
            region,
            account,
            name: name.to_string(),
            qualifier: qualifier.map(str::to_string),
        })
    }

    /// The qualifier, `$LATEST` when none was given.
    pub fn qualifier(&self) -> &str {
        self.qualifier.as_deref().unwrap_or(LATEST)
    }

    /// Whether the qualifier is `$LATEST` (given or implied).
    pub fn is_latest(&self) -> bool {
        self.qualifier() == LATEST
    }

    /// Whether the qualifier is a published version number (else an alias
    /// or `$LATEST`).
    pub fn is_version(&self) -> bool {
        self.qualifier
            .as_deref()
            .is_some_and(|q| q.bytes().all(|b| b.is_ascii_digit()))
    }
}
