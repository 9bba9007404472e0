//! The failure explorer's dry run on the travel saga and a seed ASL
//! machine: for each injected fault, the path it predicts — retries,
//! compensations in order, where it ends and how long it can take.

use sagaflow_core::asl::ResourceMap;
use sagaflow_core::error_name::{TASK_FAILED, TIMEOUT};
use sagaflow_core::explain::{
    any_resource, dry_run, ActionFault, DryRun, End, Faults, Path, MAX_ATTEMPTS,
};
use sagaflow_core::{compile_definition, Plan, Status, TaskKind};
use serde_json::json;

const TRAVEL: &str = include_str!("../../../examples/travel-saga.yaml");
const CDK_SAGA: &str = include_str!(
    "../../../examples/step-functions/saga/cdk-patterns--the-saga-stepfunction--single-table.asl.json"
);

fn travel() -> Plan {
    compile_definition(TRAVEL, None, &ResourceMap::default()).expect("the travel saga compiles")
}

fn failing(step: &str, error: &str) -> Faults {
    Faults {
        action: Some(ActionFault {
            step: step.into(),
            error: error.into(),
        }),
        compensation: None,
    }
}

fn run(plan: &Plan, faults: &Faults) -> (DryRun, Path) {
    let run = dry_run(plan, json!({"trip_id": "t-1"}), faults).expect("the dry run runs");
    let path = Path::of(&run.events);
    (run, path)
}

fn finished(run: &DryRun) -> Status {
    match &run.end {
        End::Finished { status, .. } => *status,
        other => panic!("expected the execution to finish: {other:?}"),
    }
}

#[test]
fn with_nothing_injected_every_step_succeeds_once() {
    let (run, path) = run(&travel(), &Faults::default());
    assert_eq!(finished(&run), Status::Succeeded);
    assert_eq!(path.succeeded.len(), 7, "{path:?}");
    assert!(path.retried.is_empty() && path.compensated.is_empty());
    assert_eq!(run.elapsed_ms, 0, "no participant takes time in a dry run");
}

#[test]
fn a_reservation_that_keeps_failing_is_retried_then_the_earlier_ones_are_compensated_newest_first()
{
    let (run, path) = run(&travel(), &failing("reserve_car", TASK_FAILED));
    assert_eq!(finished(&run), Status::Compensated);
    assert_eq!(path.retried.get("reserve_car"), Some(&3));
    assert_eq!(path.compensated, ["reserve_flight", "reserve_hotel"]);
    assert_eq!(
        path.rollback.as_ref().map(|r| r.step.as_str()),
        Some("reserve_car")
    );
    // 100 ms then 200 ms between the three attempts, jitter at its longest.
    assert_eq!(run.elapsed_ms, 300);
}

#[test]
fn a_business_error_that_no_retry_names_rolls_back_at_once() {
    let (run, path) = run(&travel(), &failing("take_payment", "CardDeclined"));
    assert_eq!(finished(&run), Status::Compensated);
    assert!(path.retried.is_empty(), "{path:?}");
    assert_eq!(
        path.compensated,
        ["reserve_car", "reserve_flight", "reserve_hotel"]
    );
    let rollback = path.rollback.expect("a rollback");
    assert_eq!(rollback.error.error, "CardDeclined");
}

#[test]
fn a_timeout_spends_each_attempts_timeout_before_the_rollback() {
    let (run, path) = run(&travel(), &failing("reserve_hotel", TIMEOUT));
    assert_eq!(finished(&run), Status::Compensated);
    assert_eq!(path.retried.get("reserve_hotel"), Some(&3));
    // A timed-out step is ambiguous: it is compensated too.
    assert_eq!(path.compensated, ["reserve_hotel"]);
    assert_eq!(run.elapsed_ms, 3 * 5_000 + 100 + 200);
}

#[test]
fn a_confirmation_after_the_pivot_is_retried_forward_without_end() {
    let (run, path) = run(&travel(), &failing("confirm_flight", TASK_FAILED));
    assert_eq!(
        run.end,
        End::RetriedWithoutEnd {
            step: "confirm_flight".into(),
            task: TaskKind::Action
        }
    );
    assert!(
        path.compensated.is_empty(),
        "nothing rolls back past the pivot"
    );
    // Its attempts stop being simulated after the limit.
    assert!(path.retried["confirm_flight"] > MAX_ATTEMPTS, "{path:?}");
}

#[test]
fn a_compensation_that_keeps_failing_is_retried_without_end_and_the_older_ones_wait() {
    let mut faults = failing("reserve_car", "NoCar");
    faults.compensation = Some("reserve_flight".into());
    let (run, path) = run(&travel(), &faults);
    assert_eq!(
        run.end,
        End::RetriedWithoutEnd {
            step: "reserve_flight".into(),
            task: TaskKind::Compensation
        }
    );
    assert!(path.compensated.is_empty(), "{path:?}");
    assert_eq!(
        path.compensation_retries.get("reserve_flight"),
        Some(&MAX_ATTEMPTS)
    );
}

#[test]
fn faults_read_step_and_error_and_default_to_a_server_error() {
    assert_eq!(
        ActionFault::parse("reserve_car").unwrap(),
        ActionFault {
            step: "reserve_car".into(),
            error: TASK_FAILED.into()
        }
    );
    assert_eq!(
        ActionFault::parse("take_payment:CardDeclined")
            .unwrap()
            .error,
        "CardDeclined"
    );
    assert!(ActionFault::parse(":X").is_err());
}

#[test]
fn an_asl_machine_goes_where_its_catch_sends_the_error() {
    let plan = compile_definition(CDK_SAGA, Some("cdk-saga"), &any_resource())
        .expect("the seed machine compiles with every resource bound");
    let (clean, clean_path) = run(&plan, &Faults::default());
    assert_eq!(finished(&clean), Status::Succeeded, "{clean_path:?}");
    let tasks = clean_path.succeeded.clone();
    assert!(tasks.len() >= 3, "{tasks:?}");
    let last = tasks.last().unwrap().clone();
    let (failed, path) = run(&plan, &failing(&last, TASK_FAILED));
    assert!(
        path.succeeded.iter().all(|s| s != &last),
        "the failing state never succeeds: {path:?}"
    );
    assert!(
        path.succeeded.len() > tasks.len() - 1,
        "its Catch runs the cancellations: {path:?}"
    );
    assert!(
        matches!(failed.end, End::Finished { .. }),
        "{:?}",
        failed.end
    );
}

#[test]
fn a_durable_function_is_not_dry_run() {
    let plan = compile_definition(
        &json!({"DurableFunction": {"FunctionName": "f", "ExecutionTimeout": 60, "RetentionPeriodInDays": 1}})
            .to_string(),
        Some("f"),
        &ResourceMap::default(),
    )
    .unwrap();
    let refused = dry_run(&plan, json!({}), &Faults::default()).unwrap_err();
    assert_eq!(refused.code(), "explain_unsupported");
}
