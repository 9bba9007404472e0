//! Definitions and executions as graphs (what the console draws): the
//! travel saga's stages, pivot and compensation edges; a seed ASL
//! machine's Next and Catch edges; and the state of every node after a
//! real history — made by the failure explorer's dry run, which drives the
//! same `decide` and `apply` as the engine.

use std::collections::BTreeMap;

use sagaflow_core::asl::ResourceMap;
use sagaflow_core::explain::{any_resource, dry_run, ActionFault, Faults};
use sagaflow_core::graph::{self, EdgeKind, Graph, NodeState};
use sagaflow_core::{compile_definition, Plan, StuckPolicy, Violation};
use serde_json::json;

const TRAVEL: &str = include_str!("../../../examples/travel-saga.yaml");
const CDK_SAGA: &str = include_str!(
    "../../../examples/step-functions/saga/cdk-patterns--the-saga-stepfunction--single-table.asl.json"
);

fn travel() -> Plan {
    compile_definition(TRAVEL, None, &ResourceMap::default()).expect("the travel saga compiles")
}

fn cdk() -> Plan {
    compile_definition(CDK_SAGA, Some("cdk-saga"), &any_resource()).expect("the machine compiles")
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

/// Each node's state after the dry run with `faults`.
fn states(plan: &Plan, faults: &Faults) -> (BTreeMap<String, Option<NodeState>>, Option<String>) {
    let run = dry_run(plan, json!({"trip_id": "t-1"}), faults).expect("the dry run runs");
    let drawn =
        graph::of_execution(plan, &run.events, &StuckPolicy::default()).expect("the history draws");
    let states = drawn
        .graph
        .nodes
        .iter()
        .map(|n| (n.id.clone(), n.state))
        .collect();
    (states, drawn.why)
}

fn has_edge(g: &Graph, from: &str, to: &str, kind: EdgeKind) -> bool {
    g.edges
        .iter()
        .any(|e| e.from == from && e.to == to && e.kind == kind)
}

#[test]
fn the_travel_saga_is_drawn_with_its_pivot_its_parallel_stage_and_its_undo_chain() {
    let g = graph::of_plan(&travel());
    assert_eq!(g.kind, "saga");
    let pivots: Vec<_> = g.nodes.iter().filter(|n| n.pivot).map(|n| &n.id).collect();
    assert_eq!(pivots, ["take_payment"]);
    assert!(has_edge(&g, "start", "reserve_hotel", EdgeKind::Next));
    assert!(has_edge(
        &g,
        "reserve_hotel",
        "reserve_flight",
        EdgeKind::Next
    ));
    assert!(has_edge(
        &g,
        "take_payment",
        "confirm_hotel",
        EdgeKind::Next
    ));
    assert!(has_edge(
        &g,
        "reserve_flight",
        "reserve_flight/compensation",
        EdgeKind::Undo
    ));
    // Compensations run newest first: the flight's undo leads to the hotel's.
    assert!(has_edge(
        &g,
        "reserve_flight/compensation",
        "reserve_hotel/compensation",
        EdgeKind::Compensation
    ));
    let confirm = g.nodes.iter().find(|n| n.id == "confirm_car").unwrap();
    assert_eq!(confirm.parent.as_deref(), Some("stage:confirm_bookings"));
    assert!(
        g.nodes.iter().all(|n| n.state.is_none()),
        "no states before a run"
    );
    assert_eq!(
        confirm.location.as_deref().map(|l| l.starts_with("steps[")),
        Some(true)
    );
}

#[test]
fn a_compensated_run_shows_the_failed_step_and_the_compensated_ones_before_it() {
    let (s, why) = states(&travel(), &failing("reserve_car", "NoCarAvailable"));
    assert_eq!(s["reserve_car"], Some(NodeState::Failed));
    assert_eq!(s["reserve_flight"], Some(NodeState::Compensated));
    assert_eq!(s["reserve_hotel"], Some(NodeState::Compensated));
    assert_eq!(
        s["reserve_flight/compensation"],
        Some(NodeState::Compensated)
    );
    assert_eq!(s["take_payment"], Some(NodeState::Pending));
    let why = why.expect("a compensated execution says why");
    assert!(why.contains("`reserve_car`"), "{why}");
    assert!(why.contains("NoCarAvailable"), "{why}");
    assert!(
        why.contains("`reserve_flight`, `reserve_hotel`"),
        "undone newest first: {why}"
    );
}

#[test]
fn a_successful_run_is_all_green_and_needs_no_sentence() {
    let (s, why) = states(&travel(), &Faults::default());
    for step in ["reserve_hotel", "take_payment", "confirm_car"] {
        assert_eq!(s[step], Some(NodeState::Succeeded), "{step}");
    }
    assert_eq!(s["reserve_hotel/compensation"], Some(NodeState::Pending));
    assert_eq!(why, None);
}

#[test]
fn a_compensation_that_keeps_failing_is_drawn_failed_and_the_sentence_says_so() {
    let faults = Faults {
        compensation: Some("reserve_hotel".into()),
        ..failing("reserve_car", "NoCarAvailable")
    };
    let (s, why) = states(&travel(), &faults);
    assert_eq!(s["reserve_flight"], Some(NodeState::Compensated));
    assert!(
        matches!(
            s["reserve_hotel/compensation"],
            Some(NodeState::Failed | NodeState::Stuck | NodeState::Retrying)
        ),
        "{s:?}"
    );
    assert!(why.is_some());
}

#[test]
fn an_asl_machine_is_drawn_with_its_next_and_catch_edges() {
    let g = graph::of_plan(&cdk());
    assert_eq!(g.kind, "asl");
    assert!(has_edge(&g, "start", "ReserveHotel", EdgeKind::Next));
    assert!(has_edge(
        &g,
        "ReserveHotel",
        "ReserveFlight",
        EdgeKind::Next
    ));
    assert!(has_edge(
        &g,
        "TakePayment",
        "RefundPayment",
        EdgeKind::Catch
    ));
    assert!(has_edge(
        &g,
        "Sorry, We Couldn't make the booking",
        "end",
        EdgeKind::Next
    ));
    let task = g.nodes.iter().find(|n| n.id == "TakePayment").unwrap();
    assert_eq!(task.node_type, "Task");
    assert_eq!(task.location.as_deref(), Some("/States/TakePayment"));
}

#[test]
fn an_asl_run_shows_the_failing_state_and_the_path_its_catch_took() {
    let (s, why) = states(&cdk(), &failing("TakePayment", "PaymentFailed"));
    assert_eq!(s["ReserveHotel"], Some(NodeState::Succeeded));
    assert_eq!(s["TakePayment"], Some(NodeState::Failed));
    assert_eq!(s["RefundPayment"], Some(NodeState::Succeeded));
    assert_eq!(s["CancelHotelReservation"], Some(NodeState::Succeeded));
    assert_eq!(s["ConfirmHotelBooking"], Some(NodeState::Pending));
    assert_eq!(s["We have made your booking!"], Some(NodeState::Pending));
    let why = why.expect("a failed machine says why");
    assert!(why.starts_with("Failed"), "{why}");
}

#[test]
fn a_definition_that_does_not_validate_has_each_problem_on_its_node() {
    let source = "name: broken\nsteps:\n  - name: reserve\n    action: { http: { url: \"http://x\" } }\n  - name: pay\n    action: { http: { url: 42 } }\n";
    let problems = match compile_definition(source, None, &ResourceMap::default()) {
        Err(sagaflow_core::Error::InvalidDefinition(v)) => v,
        other => panic!("the source should not validate: {other:?}"),
    };
    let (g, placed) = graph::of_invalid(source, &problems);
    assert!(g.nodes.iter().any(|n| n.id == "reserve"));
    assert_eq!(placed.len(), problems.len());
    assert!(
        placed.iter().any(|p| p.as_deref() == Some("pay")),
        "{problems:?} placed on {placed:?}"
    );
    // A problem outside every step (the name) is on no node.
    let outside = Violation {
        code: "invalid_name".into(),
        location: "name".into(),
        message: "bad".into(),
    };
    assert_eq!(graph::node_at(&g, &outside.location), None);
}
