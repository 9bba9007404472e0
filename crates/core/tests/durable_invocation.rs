//! What a durable function is handed: its execution's ARN (built and read
//! back, malformed ones refused), the invocation event with AWS's field
//! names and millisecond timestamps, and the paging of the operations
//! (a first page within a byte budget, the rest by marker, every
//! operation exactly once, in order).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sagaflow_core::durable::{
    first_page, invocation_event, state_page, ArnError, Details, DurableExecutionArn,
    DurableInvocationEvent, ExecutionDetails, Operation, OperationStatus, StepDetails, WaitDetails,
    INVALID_MARKER, INVALID_MAX_ITEMS, MAX_STATE_ITEMS,
};
use sagaflow_core::function_name::FunctionName;
use serde_json::{json, Value};

const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:saga-durable-function:$LATEST/durable-execution/order-42/3f2a9c1e-7b1d-4c55-9e0a-1f2e3d4c5b6a";

fn arn() -> DurableExecutionArn {
    DurableExecutionArn::parse(ARN).expect("the sample ARN")
}

fn refused(text: &str) -> ArnError {
    match DurableExecutionArn::parse(text) {
        Ok(a) => panic!("{text} was accepted as {a:?}"),
        Err(e) => e,
    }
}

fn execution_op(input: &str) -> Operation {
    Operation {
        id: "3f2a9c1e-7b1d-4c55-9e0a-1f2e3d4c5b6a".into(),
        parent_id: None,
        name: None,
        sub_type: None,
        status: OperationStatus::Started,
        start_timestamp: 1_765_000_000_123,
        end_timestamp: None,
        details: Details::Execution(ExecutionDetails {
            input_payload: Some(input.into()),
        }),
    }
}

fn step_op(i: usize, result_len: usize) -> Operation {
    Operation {
        id: format!("step-{i}"),
        parent_id: None,
        name: Some(format!("step {i}")),
        sub_type: Some("Step".into()),
        status: OperationStatus::Succeeded,
        start_timestamp: 1_765_000_000_200 + i as u64,
        end_timestamp: Some(1_765_000_000_300 + i as u64),
        details: Details::Step(StepDetails {
            attempt: 1,
            next_attempt_timestamp: None,
            result: Some("x".repeat(result_len)),
            error: None,
        }),
    }
}

fn ops(n: usize, result_len: usize) -> Vec<Operation> {
    let mut v = vec![execution_op("{\"orderId\":\"42\"}")];
    v.extend((1..n).map(|i| step_op(i, result_len)));
    v
}

fn size(event: &DurableInvocationEvent) -> usize {
    serde_json::to_vec(event).unwrap().len()
}

/// Every operation from the first page and then page after page.
fn all_pages(
    ops: &[Operation],
    budget: usize,
    max_items: u32,
) -> (DurableInvocationEvent, Vec<Operation>) {
    let event = first_page(&arn(), "tok", ops, budget);
    let mut seen = event.initial_execution_state.operations.clone();
    let mut next = event.initial_execution_state.next_marker.clone();
    let mut guard = 0;
    while let Some(marker) = next {
        let page = state_page(ops, &marker, Some(max_items)).expect("our own marker");
        assert!(!page.operations.is_empty(), "a page makes progress");
        assert!(page.operations.len() <= max_items as usize);
        seen.extend(page.operations);
        next = page.next_marker;
        guard += 1;
        assert!(guard <= ops.len(), "paging ends");
    }
    (event, seen)
}

// --- the ARN ---------------------------------------------------------------

#[test]
fn an_arn_names_region_account_function_version_execution_and_invocation() {
    let a = arn();
    assert_eq!(a.partition, "aws");
    assert_eq!(a.region, "us-east-1");
    assert_eq!(a.account, "123456789012");
    assert_eq!(a.function, "saga-durable-function");
    assert_eq!(a.qualifier, "$LATEST");
    assert_eq!(a.execution_name, "order-42");
    assert_eq!(a.invocation_id, "3f2a9c1e-7b1d-4c55-9e0a-1f2e3d4c5b6a");
    assert_eq!(
        a.function_arn(),
        "arn:aws:lambda:us-east-1:123456789012:function:saga-durable-function:$LATEST"
    );
}

#[test]
fn an_arn_built_from_a_function_name_reads_back_the_same() {
    for (name, qualifier) in [
        ("saga-durable-function", "$LATEST"),
        ("saga-durable-function:$LATEST", "$LATEST"),
        ("saga-durable-function:7", "7"),
        ("123456789012:function:saga-durable-function:3", "3"),
        (
            "arn:aws:lambda:eu-west-1:123456789012:function:saga-durable-function",
            "$LATEST",
        ),
    ] {
        let function = FunctionName::parse(name).unwrap();
        let built =
            DurableExecutionArn::new("eu-west-1", "123456789012", &function, "run_1", "inv-9")
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        let text = built.to_string();
        assert_eq!(
            text,
            format!("arn:aws:lambda:eu-west-1:123456789012:function:saga-durable-function:{qualifier}/durable-execution/run_1/inv-9")
        );
        assert_eq!(DurableExecutionArn::parse(&text), Ok(built.clone()));
        assert_eq!(text.parse::<DurableExecutionArn>(), Ok(built));
    }
}

#[test]
fn an_arn_is_not_built_for_an_alias_another_region_or_a_bad_name() {
    let alias = FunctionName::parse("fn:prod").unwrap();
    assert!(DurableExecutionArn::new("us-east-1", "123456789012", &alias, "n", "i").is_err());
    let elsewhere =
        FunctionName::parse("arn:aws:lambda:us-west-2:123456789012:function:fn").unwrap();
    let e =
        DurableExecutionArn::new("us-east-1", "123456789012", &elsewhere, "n", "i").unwrap_err();
    assert!(e.reason.contains("not in region us-east-1"), "{e}");
    let f = FunctionName::parse("fn").unwrap();
    assert!(DurableExecutionArn::new("us-east-1", "123456789012", &f, "a/b", "i").is_err());
    assert!(DurableExecutionArn::new("us-east-1", "123456789012", &f, "n", "").is_err());
    assert!(DurableExecutionArn::new("us-east-1", "12345", &f, "n", "i").is_err());
    assert!(DurableExecutionArn::new("nowhere", "123456789012", &f, "n", "i").is_err());
}

#[test]
fn malformed_arns_are_refused_with_a_clear_message() {
    let base = "arn:aws:lambda:us-east-1:123456789012:function:fn:$LATEST";
    let cases = [
        (base.to_string(), "durable-execution"),
        (
            format!("{base}/durable-execution/name"),
            "durable-execution",
        ),
        (format!("{base}/durable-execution//inv"), "execution name"),
        (format!("{base}/durable-execution/name/"), "invocation id"),
        (
            format!("{base}/durable-execution/na me/inv"),
            "execution name",
        ),
        (
            format!("{base}/durable-execution/name/inv/extra"),
            "invocation id",
        ),
        (
            "arn:aws:lambda:us-east-1:123456789012:function:fn/durable-execution/n/i".into(),
            "no qualifier",
        ),
        (
            "arn:aws:lambda:us-east-1:123456789012:function:fn:prod/durable-execution/n/i".into(),
            "$LATEST or a version",
        ),
        ("fn:$LATEST/durable-execution/n/i".into(), "full ARN"),
        (
            "arn:aws:s3:us-east-1:123456789012:function:fn:1/durable-execution/n/i".into(),
            "bad function part",
        ),
        ("".into(), "durable-execution"),
    ];
    for (text, expected) in cases {
        let e = refused(&text);
        let message = e.to_string();
        assert!(
            message.starts_with(&format!("Invalid durable execution ARN '{text}': ")),
            "{message}"
        );
        assert!(message.contains(expected), "{text}: {message}");
    }
    assert_eq!(ArnError::ERROR_TYPE, "InvalidParameterValueException");
}

// --- the invocation event ----------------------------------------------------

#[test]
fn the_event_carries_aws_field_names_and_millisecond_timestamps() {
    let ops = ops(3, 4);
    let event = invocation_event(&arn(), "dG9rZW4=", &ops);
    let value = serde_json::to_value(&event).unwrap();
    assert_eq!(value["DurableExecutionArn"], json!(ARN));
    assert_eq!(value["CheckpointToken"], json!("dG9rZW4="));
    let state = &value["InitialExecutionState"];
    assert!(
        state.get("NextMarker").is_none(),
        "no marker when all fit: {state}"
    );
    let listed = state["Operations"].as_array().unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0]["Type"], json!("EXECUTION"));
    assert_eq!(
        listed[0]["ExecutionDetails"]["InputPayload"],
        json!("{\"orderId\":\"42\"}")
    );
    assert_eq!(listed[0]["StartTimestamp"], json!(1_765_000_000_123u64));
    assert!(listed[1]["StartTimestamp"].is_u64(), "an integer");
    assert!(listed[1]["EndTimestamp"].is_u64(), "an integer");
    let ids: Vec<&str> = listed.iter().map(|o| o["Id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["3f2a9c1e-7b1d-4c55-9e0a-1f2e3d4c5b6a", "step-1", "step-2"]
    );
    let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
    assert_eq!(
        keys.len(),
        3,
        "nothing but the three members the SDK reads: {keys:?}"
    );
}

#[test]
fn the_event_reads_back_as_the_sdk_would_send_it() {
    let wait = Operation {
        id: "w".into(),
        parent_id: Some("ctx".into()),
        name: Some("pause".into()),
        sub_type: Some("Wait".into()),
        status: OperationStatus::Started,
        start_timestamp: 1_765_000_001_000,
        end_timestamp: None,
        details: Details::Wait(WaitDetails {
            scheduled_end_timestamp: Some(1_765_000_061_000),
        }),
    };
    let ops = vec![execution_op("{}"), wait];
    let event = first_page(&arn(), "t", &ops, 1);
    let text = serde_json::to_string(&event).unwrap();
    let back: DurableInvocationEvent = serde_json::from_str(&text).unwrap();
    assert_eq!(back, event);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(v["InitialExecutionState"]["NextMarker"].is_string());
}

// --- paging --------------------------------------------------------------------

#[test]
fn the_first_page_always_holds_the_execution_operation_even_over_budget() {
    let ops = ops(5, 100);
    let event = first_page(&arn(), "t", &ops, 0);
    let state = &event.initial_execution_state;
    assert_eq!(state.operations, ops[..1].to_vec());
    assert!(state.next_marker.is_some());
    let empty = first_page(&arn(), "t", &[], 0);
    assert!(empty.initial_execution_state.operations.is_empty());
    assert_eq!(empty.initial_execution_state.next_marker, None);
}

#[test]
fn the_first_page_stays_within_its_byte_budget_and_the_rest_follows_by_marker() {
    let ops = ops(50, 1000);
    let budget = 10_000;
    let (event, seen) = all_pages(&ops, budget, 7);
    let first = event.initial_execution_state.operations.len();
    assert!(
        first > 1 && first < 50,
        "{first} operations on the first page"
    );
    assert!(size(&event) <= budget, "{} bytes", size(&event));
    assert_eq!(seen, ops);
}

#[test]
fn a_small_history_fits_in_the_default_six_megabyte_budget() {
    let ops = ops(200, 1000);
    let event = invocation_event(&arn(), "t", &ops);
    assert_eq!(event.initial_execution_state.operations, ops);
    assert_eq!(event.initial_execution_state.next_marker, None);
}

#[test]
fn a_state_page_holds_at_most_max_items_and_a_thousand_by_default() {
    let ops = ops(2500, 0);
    let event = first_page(&arn(), "t", &ops, 2000);
    let marker = event.initial_execution_state.next_marker.unwrap();
    let start = event.initial_execution_state.operations.len();
    let page = state_page(&ops, &marker, None).unwrap();
    assert_eq!(page.operations.len(), MAX_STATE_ITEMS as usize);
    assert_eq!(page.operations[0], ops[start]);
    let small = state_page(&ops, &marker, Some(3)).unwrap();
    assert_eq!(small.operations, ops[start..start + 3].to_vec());
    let rest = state_page(&ops, &small.next_marker.unwrap(), Some(1000)).unwrap();
    assert_eq!(rest.operations[0], ops[start + 3]);
}

#[test]
fn max_items_of_zero_or_over_a_thousand_is_refused() {
    let ops = ops(10, 0);
    let marker = first_page(&arn(), "t", &ops, 0)
        .initial_execution_state
        .next_marker
        .unwrap();
    for bad in [0, 1001, u32::MAX] {
        let r = state_page(&ops, &marker, Some(bad)).unwrap_err();
        assert_eq!(r.code, INVALID_MAX_ITEMS);
        assert!(
            r.message.starts_with("1 validation error detected"),
            "{}",
            r.message
        );
    }
    assert!(state_page(&ops, &marker, Some(1000)).is_ok());
}

#[test]
fn a_marker_that_is_not_ours_is_refused_as_an_invalid_parameter() {
    let ops = ops(10, 0);
    let ours = first_page(&arn(), "t", &ops, 0)
        .initial_execution_state
        .next_marker
        .unwrap();
    for bad in [
        "".to_string(),
        "2".to_string(),
        "not base64!".to_string(),
        format!("{ours}="),
        format!("{ours}A"),
        "b3BzOjA".to_string(),  // ops:0, never given out
        "b3BzOjEw".to_string(), // ops:10, past the end
        "b3BzOi0x".to_string(), // ops:-1
    ] {
        let r = state_page(&ops, &bad, None).unwrap_err();
        assert_eq!(r.code, INVALID_MARKER, "{bad}");
        assert!(r.message.starts_with("Invalid marker: "), "{}", r.message);
        assert!(r.message.contains(&format!("'{bad}'")), "{}", r.message);
    }
}

#[test]
fn a_marker_travels_in_a_query_string_as_it_is() {
    let ops = ops(3000, 0);
    let (_, seen) = all_pages(&ops, 0, 1000);
    assert_eq!(seen.len(), ops.len());
    let mut next = first_page(&arn(), "t", &ops, 0)
        .initial_execution_state
        .next_marker;
    while let Some(m) = next {
        assert!(
            m.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{m}"
        );
        next = state_page(&ops, &m, Some(999)).unwrap().next_marker;
    }
}

#[test]
fn random_operation_lists_and_budgets_page_into_exactly_the_full_list() {
    let seed = std::env::var("DURABLE_PAGING_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!("paging seed {seed} (re-run with DURABLE_PAGING_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    for case in 0..200 {
        let n = rng.gen_range(0..300);
        let mut ops: Vec<Operation> = Vec::with_capacity(n);
        if n > 0 {
            ops.push(execution_op(&"i".repeat(rng.gen_range(0..2000))));
        }
        for i in 1..n {
            ops.push(step_op(i, rng.gen_range(0..3000)));
        }
        let budget = match rng.gen_range(0..4) {
            0 => rng.gen_range(0..500),
            1 => rng.gen_range(0..20_000),
            2 => rng.gen_range(0..400_000),
            _ => usize::MAX,
        };
        let max_items = match rng.gen_range(0..3) {
            0 => rng.gen_range(1..5),
            1 => rng.gen_range(1..=MAX_STATE_ITEMS),
            _ => MAX_STATE_ITEMS,
        };
        let (event, seen) = all_pages(&ops, budget, max_items);
        let first = &event.initial_execution_state.operations;
        assert_eq!(
            seen, ops,
            "seed {seed} case {case}: n={n} budget={budget} max_items={max_items}"
        );
        if n > 0 {
            assert_eq!(first[0], ops[0], "seed {seed} case {case}: EXECUTION first");
        }
        assert!(
            first.len() <= 1 || size(&event) <= budget,
            "seed {seed} case {case}: {} bytes over a budget of {budget}",
            size(&event)
        );
    }
}
