//! Chained-invoke targets: every `FunctionName` form Lambda accepts, the
//! names it refuses (with its validation wording), and resolution in the
//! spec's order: hosted durable, hosted plain, the resource map (shared
//! with the ASL `lambda:invoke`), else `ResourceNotFoundException`.

use sagaflow_core::asl::{ResourceMap, ResourceRule};
use sagaflow_core::durable::{
    resolve_target, ChainedInvokeOptions, Details, ErrorObject, HostedFunctions, Hosting,
    InvokeOutcome, InvokeTarget, NoHostedFunctions, OpHeader, OperationAction, OperationEvent,
    OperationStatus, OperationType, OperationUpdate, Operations, Resolved,
};
use sagaflow_core::exchange::Participant;
use sagaflow_core::function_name::{FunctionName, NameProblem};
use sagaflow_core::keys::chained_invoke_key;

fn parsed(s: &str) -> FunctionName {
    FunctionName::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn refused(s: &str) -> NameProblem {
    match FunctionName::parse(s) {
        Ok(f) => panic!("{s} was accepted as {f:?}"),
        Err(e) => e.reason,
    }
}

#[test]
fn a_bare_name_is_the_function_at_latest() {
    let f = parsed("saga-reserve-hotel");
    assert_eq!(f.name, "saga-reserve-hotel");
    assert_eq!(f.qualifier, None);
    assert_eq!(f.qualifier(), "$LATEST");
    assert!(f.is_latest());
    assert_eq!((f.partition, f.region, f.account), (None, None, None));
}

#[test]
fn a_name_with_a_qualifier_keeps_the_version_or_alias() {
    let v = parsed("my_fn:7");
    assert_eq!((v.name.as_str(), v.qualifier()), ("my_fn", "7"));
    assert!(v.is_version() && !v.is_latest());
    let a = parsed("my_fn:prod");
    assert_eq!(a.qualifier(), "prod");
    assert!(!a.is_version());
    assert!(parsed("my_fn:$LATEST").is_latest());
}

#[test]
fn a_partial_arn_names_the_account() {
    let f = parsed("123456789012:function:saga-cancel-car");
    assert_eq!(f.account.as_deref(), Some("123456789012"));
    assert_eq!(f.name, "saga-cancel-car");
    assert!(f.is_latest());
    let q = parsed("123456789012:function:saga-cancel-car:live");
    assert_eq!(q.qualifier(), "live");
}

#[test]
fn a_full_arn_names_partition_region_and_account() {
    let f = parsed("arn:aws:lambda:eu-west-1:123456789012:function:saga-durable-function");
    assert_eq!(f.partition.as_deref(), Some("aws"));
    assert_eq!(f.region.as_deref(), Some("eu-west-1"));
    assert_eq!(f.account.as_deref(), Some("123456789012"));
    assert_eq!(f.name, "saga-durable-function");
    assert!(f.is_latest());
    let q = parsed("arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f:$LATEST");
    assert_eq!(q.region.as_deref(), Some("us-gov-west-1"));
    assert_eq!(q.qualifier(), "$LATEST");
}

#[test]
fn a_name_of_64_characters_is_accepted_and_65_is_too_long() {
    let ok = "a".repeat(64);
    assert_eq!(parsed(&ok).name, ok);
    assert_eq!(refused(&"a".repeat(65)), NameProblem::TooLong);
    assert_eq!(refused(&"a".repeat(141)), NameProblem::TooLong);
}

#[test]
fn malformed_names_are_refused() {
    assert_eq!(refused(""), NameProblem::Empty);
    for bad in [
        "my fn",
        "my.fn",
        "my/fn",
        "fn:",
        ":prod",
        "fn:a:b",
        "fn:pro d",
        "fn:$latest",
        "12345:function:fn",
        "123456789012:function:",
        "123456789012:function:fn:1:2",
        "arn:aws:lambda:us-east-1:123456789012:function",
        "arn:aws:s3:us-east-1:123456789012:function:fn",
        "arn:aws:lambda:us-east-1:123456789012:layer:fn",
        "arn:aws:lambda:useast1:123456789012:function:fn",
        "arn:gcp:lambda:us-east-1:123456789012:function:fn",
        "arn:aws:lambda:us-east-1:12345678901x:function:fn",
        "arn:aws:lambda:us-east-1:123456789012:function:fn:1:2",
    ] {
        assert_eq!(refused(bad), NameProblem::Pattern, "{bad}");
    }
}

#[test]
fn a_refusal_reads_as_lambdas_validation_message() {
    let e = FunctionName::parse("my fn").unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with(
            "1 validation error detected: Value 'my fn' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: "
        ),
        "{text}"
    );
    let long = FunctionName::parse(&"a".repeat(141)).unwrap_err();
    assert!(long
        .to_string()
        .ends_with("Member must have length less than or equal to 140"));
}

fn target(name: &str, payload: Option<&str>) -> InvokeTarget {
    InvokeTarget {
        function_name: name.into(),
        tenant_id: None,
        payload: payload.map(str::to_string),
    }
}

fn resources() -> ResourceMap {
    ResourceMap {
        rules: vec![
            ResourceRule {
                pattern: "arn:aws:lambda:*:*:function:saga-{name}".into(),
                target: "http://travel/lambda/saga-{name}".into(),
            },
            ResourceRule {
                pattern: "arn:aws:lambda:*:*:function:local-{name}".into(),
                target: "handler:{name}".into(),
            },
        ],
    }
}

/// Hosts `saga-durable-function` (durable) and `plain-fn` (plain).
fn host(f: &FunctionName) -> Option<Hosting> {
    match f.name.as_str() {
        "saga-durable-function" => Some(Hosting::Durable),
        "plain-fn" => Some(Hosting::Plain),
        _ => None,
    }
}

fn resolve(name: &str, hosted: &dyn HostedFunctions) -> Result<Resolved, ErrorObject> {
    resolve_target(
        &target(name, Some("{\"a\":1}")),
        "exec-1",
        "op-9",
        hosted,
        &resources(),
    )
}

#[test]
fn a_hosted_durable_function_becomes_a_child_execution_before_the_resource_map() {
    // The resource map's `saga-{name}` would match too: hosting comes first.
    match resolve("saga-durable-function", &host).unwrap() {
        Resolved::DurableChild {
            function, input, ..
        } => {
            assert_eq!(function.name, "saga-durable-function");
            assert_eq!(input, "{\"a\":1}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_hosted_plain_function_is_one_invocation_whatever_form_names_it() {
    for name in [
        "plain-fn",
        "plain-fn:$LATEST",
        "123456789012:function:plain-fn",
        "arn:aws:lambda:us-east-1:123456789012:function:plain-fn",
    ] {
        match resolve(name, &host).unwrap() {
            Resolved::Plain { function, .. } => assert_eq!(function.name, "plain-fn"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn the_hosting_lookup_sees_the_qualifier() {
    let only_prod = |f: &FunctionName| {
        (f.name == "plain-fn" && f.qualifier() == "prod").then_some(Hosting::Plain)
    };
    assert!(matches!(
        resolve("plain-fn:prod", &only_prod),
        Ok(Resolved::Plain { .. })
    ));
    assert!(resolve("plain-fn", &only_prod).is_err());
}

#[test]
fn a_mapped_function_is_a_participant_called_with_the_execution_and_operation_as_key() {
    for name in [
        "saga-reserve-hotel",
        "saga-reserve-hotel:7",
        "123456789012:function:saga-reserve-hotel",
        "arn:aws:lambda:eu-west-1:123456789012:function:saga-reserve-hotel:prod",
    ] {
        match resolve(name, &NoHostedFunctions).unwrap() {
            Resolved::Participant {
                participant,
                idempotency_key,
                input,
            } => {
                assert_eq!(
                    participant,
                    Participant::Http {
                        url: "http://travel/lambda/saga-reserve-hotel".into(),
                        headers: Default::default()
                    },
                    "{name}"
                );
                assert_eq!(idempotency_key, "exec-1:op-9");
                assert_eq!(input, "{\"a\":1}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn the_map_serves_durable_invokes_exactly_as_it_serves_asl_lambda_invoke() {
    let map = resources();
    for name in ["saga-x", "local-pay", "123456789012:function:local-pay:3"] {
        let via_durable =
            match resolve_target(&target(name, None), "e", "o", &NoHostedFunctions, &map) {
                Ok(Resolved::Participant { participant, .. }) => Some(participant),
                _ => None,
            };
        assert_eq!(via_durable, map.resolve(name), "{name}");
    }
    assert_eq!(
        map.resolve("local-pay"),
        Some(Participant::Handler { name: "pay".into() })
    );
}

#[test]
fn an_absent_payload_is_an_empty_object() {
    let r = resolve_target(
        &target("saga-x", None),
        "e",
        "o",
        &NoHostedFunctions,
        &resources(),
    );
    assert!(matches!(r, Ok(Resolved::Participant { input, .. }) if input == "{}"));
}

#[test]
fn an_unknown_function_fails_with_resource_not_found() {
    let error = resolve("nobody-home", &host).unwrap_err();
    assert_eq!(
        serde_json::to_value(&error).unwrap(),
        serde_json::json!({
            "ErrorType": "ResourceNotFoundException",
            "ErrorMessage": "Function not found: nobody-home"
        })
    );
}

#[test]
fn a_malformed_name_fails_with_the_validation_message() {
    let error = resolve("no such fn", &host).unwrap_err();
    assert_eq!(
        error.error_type.as_deref(),
        Some("InvalidParameterValueException")
    );
    assert!(error
        .error_message
        .unwrap()
        .starts_with("1 validation error detected: Value 'no such fn' at 'functionName'"));
}

#[test]
fn the_idempotency_key_is_execution_then_operation_id() {
    assert_eq!(
        chained_invoke_key(
            "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST/durable-execution/n/i",
            "c4ca4238"
        ),
        "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST/durable-execution/n/i:c4ca4238"
    );
}

#[test]
fn an_unresolvable_dispatch_is_recorded_as_the_operation_failing() {
    let mut ops = Operations::default();
    ops.apply(&OperationEvent::ExecutionStarted {
        id: "exec".into(),
        input_payload: None,
        at: 1,
    })
    .unwrap();
    ops.apply(&OperationEvent::ChainedInvokeStarted {
        op: OpHeader {
            id: "op-1".into(),
            parent_id: None,
            name: None,
            sub_type: None,
        },
        function_name: "nobody-home".into(),
        tenant_id: None,
        payload: None,
        dispatch: Default::default(),
        at: 2,
    })
    .unwrap();
    let (id, t) = ops.invokes_to_dispatch()[0];
    let error = resolve_target(t, "exec", id, &NoHostedFunctions, &resources()).unwrap_err();
    let fact = ops
        .end_chained_invoke("op-1", InvokeOutcome::Failed { error }, 3)
        .unwrap();
    ops.apply(&fact).unwrap();
    assert_eq!(ops.get("op-1").unwrap().status, OperationStatus::Failed);
    assert!(ops.invokes_to_dispatch().is_empty());
}

fn started() -> Operations {
    let mut ops = Operations::default();
    ops.apply(&OperationEvent::ExecutionStarted {
        id: "exec".into(),
        input_payload: None,
        at: 1,
    })
    .unwrap();
    ops
}

fn invoke(id: &str, function: &str) -> OperationUpdate {
    let mut u = OperationUpdate::new(id, OperationType::ChainedInvoke, OperationAction::Start);
    u.sub_type = Some("ChainedInvoke".into());
    u.chained_invoke_options = Some(ChainedInvokeOptions {
        function_name: function.into(),
        tenant_id: None,
    });
    u
}

fn checkpoint_resolving(
    ops: &Operations,
    updates: &[OperationUpdate],
) -> sagaflow_core::durable::Applied {
    let map = resources();
    let unresolvable =
        |id: &str, t: &InvokeTarget| resolve_target(t, "exec", id, &host, &map).err();
    ops.apply_checkpoint_resolving(updates, 10, 7, &unresolvable)
        .unwrap()
}

#[test]
fn a_checkpoint_starting_an_invoke_of_an_unknown_function_answers_it_failed() {
    let ops = started();
    let applied = checkpoint_resolving(&ops, &[invoke("op-1", "nobody-home")]);
    assert_eq!(applied.events.len(), 2);
    assert!(matches!(
        applied.events[0],
        OperationEvent::ChainedInvokeStarted { .. }
    ));
    assert!(matches!(
        &applied.events[1],
        OperationEvent::ChainedInvokeEnded { outcome: InvokeOutcome::Failed { error }, .. }
            if error.error_type.as_deref() == Some("ResourceNotFoundException")
                && error.error_message.as_deref() == Some("Function not found: nobody-home")
    ));
    let op = &applied.operations[0];
    assert_eq!(
        (op.id.as_str(), op.status),
        ("op-1", OperationStatus::Failed)
    );
    assert!(matches!(&op.details, Details::ChainedInvoke(_)));
    let mut replayed = ops.clone();
    for e in &applied.events {
        replayed.apply(e).unwrap();
    }
    assert!(replayed.invokes_to_dispatch().is_empty());
}

#[test]
fn a_checkpoint_starting_resolvable_invokes_leaves_them_started_for_dispatch() {
    let ops = started();
    let updates = [
        invoke("a", "saga-reserve-hotel"),
        invoke("b", "plain-fn"),
        invoke("c", "saga-durable-function"),
    ];
    let applied = checkpoint_resolving(&ops, &updates);
    assert_eq!(applied, ops.apply_checkpoint(&updates, 10, 7).unwrap());
    assert!(applied
        .operations
        .iter()
        .all(|op| op.status == OperationStatus::Started));
}

#[test]
fn the_plain_checkpoint_does_not_resolve_and_leaves_an_unknown_target_for_dispatch() {
    let applied = started()
        .apply_checkpoint(&[invoke("op-1", "nobody-home")], 10, 7)
        .unwrap();
    assert_eq!(applied.events.len(), 1);
    assert_eq!(applied.operations[0].status, OperationStatus::Started);
}
