//! Validation of saga definitions: every rejected definition names a stable
//! code and the exact location of the problem; valid ones compile to a plan.

use sagaflow_core::definition::compile_document;
use sagaflow_core::error_name::{ALL, TASK_FAILED, TIMEOUT};
use sagaflow_core::{compile, Error, Participant, Plan, Role, Violation};

/// The violations of a definition that must be rejected.
fn violations_of(source: &str, name_hint: Option<&str>) -> Vec<Violation> {
    match compile(source, name_hint) {
        Err(Error::InvalidDefinition(v)) => v,
        Err(other) => panic!("expected an invalid definition, got {other:?}"),
        Ok(plan) => panic!("expected the definition to be rejected, it compiled: {plan:#?}"),
    }
}

/// Asserts that `source` is rejected with exactly these `(code, location)` pairs.
#[track_caller]
fn assert_rejected_with(source: &str, expected: &[(&str, &str)]) {
    assert_rejected_with_hint(source, None, expected)
}

#[track_caller]
fn assert_rejected_with_hint(source: &str, hint: Option<&str>, expected: &[(&str, &str)]) {
    let found = violations_of(source, hint);
    let mut got: Vec<(&str, &str)> = found
        .iter()
        .map(|v| (v.code.as_str(), v.location.as_str()))
        .collect();
    let mut want = expected.to_vec();
    got.sort();
    want.sort();
    assert_eq!(got, want, "all violations: {found:#?}");
    for v in &found {
        assert!(!v.message.is_empty(), "a violation explains itself: {v:?}");
    }
}

#[track_caller]
fn compiles(source: &str) -> Plan {
    compile(source, None).unwrap_or_else(|e| panic!("expected a valid definition: {e}"))
}

// ---------------------------------------------------------------- participants

#[test]
fn a_compensation_url_that_is_not_http_is_an_invalid_url_at_its_exact_location() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: a
    action: { handler: a }
  - name: b
    action: { handler: b }
  - name: c
    action: { http: { url: "http://svc/c" } }
    compensation: { http: { url: "ftp://svc/c/undo" } }
"#,
        &[("invalid_url", "steps[2].compensation.http.url")],
    );
}

#[test]
fn an_action_url_without_a_scheme_is_an_invalid_url() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: a
    action: { http: { url: "svc/a" } }
"#,
        &[("invalid_url", "steps[0].action.http.url")],
    );
}

#[test]
fn an_empty_or_unterminated_variable_in_a_url_is_an_invalid_url() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: a
    action: { http: { url: "${}/a" } }
  - name: b
    action: { http: { url: "${TRAVEL_URL/b" } }
"#,
        &[
            ("invalid_url", "steps[0].action.http.url"),
            ("invalid_url", "steps[1].action.http.url"),
        ],
    );
}

#[test]
fn a_step_without_an_action_is_a_missing_field() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: a
    compensation: { handler: undo_a }
"#,
        &[("missing_field", "steps[0].action")],
    );
}

#[test]
fn an_action_with_both_http_and_handler_is_an_ambiguous_participant() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: a
    action: { http: { url: "http://svc/a" }, handler: a }
"#,
        &[("ambiguous_participant", "steps[0].action")],
    );
}

#[test]
fn an_action_with_neither_http_nor_handler_is_a_missing_participant() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: a
    action: {}
"#,
        &[("missing_participant", "steps[0].action")],
    );
}

#[test]
fn an_http_participant_without_a_url_is_a_missing_field() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: a
    action: { http: { headers: { X-Team: travel } } }
"#,
        &[("missing_field", "steps[0].action.http.url")],
    );
}

#[test]
fn a_header_value_that_is_not_a_string_has_the_wrong_type() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: a
    action: { http: { url: "http://svc/a", headers: { X-Retries: 3 } } }
"#,
        &[("wrong_type", "steps[0].action.http.headers.X-Retries")],
    );
}

#[test]
fn protocol_headers_in_a_definition_are_refused_as_reserved_at_their_location() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: a
    action: { handler: a }
  - name: b
    action: { handler: b }
  - name: c
    action:
      http:
        url: "http://svc/c"
        headers:
          Idempotency-Key: "mine"
          host: "evil.example"
          Sagaflow-Execution-Id: "other"
          sagaflow-anything: "x"
          Content-Type: "text/plain"
          Content-Length: "3"
          Transfer-Encoding: "chunked"
          Connection: "close"
          X-Tenant: "acme"
    compensation: { http: { url: "http://svc/c/undo", headers: { SAGAFLOW-TASK-TOKEN: "t" } } }
"#,
        &[
            (
                "reserved_header",
                "steps[2].action.http.headers.Idempotency-Key",
            ),
            ("reserved_header", "steps[2].action.http.headers.host"),
            (
                "reserved_header",
                "steps[2].action.http.headers.Sagaflow-Execution-Id",
            ),
            (
                "reserved_header",
                "steps[2].action.http.headers.sagaflow-anything",
            ),
            (
                "reserved_header",
                "steps[2].action.http.headers.Content-Type",
            ),
            (
                "reserved_header",
                "steps[2].action.http.headers.Content-Length",
            ),
            (
                "reserved_header",
                "steps[2].action.http.headers.Transfer-Encoding",
            ),
            ("reserved_header", "steps[2].action.http.headers.Connection"),
            (
                "reserved_header",
                "steps[2].compensation.http.headers.SAGAFLOW-TASK-TOKEN",
            ),
        ],
    );
}

#[test]
fn a_header_with_an_invalid_name_a_line_break_or_a_broken_variable_is_an_invalid_header() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: a
    action:
      http:
        url: "http://svc/a"
        headers:
          "X Bad": "v"
          X-Split: "a\r\nX-Injected: 1"
          X-Open: "Bearer ${TOKEN"
          X-Empty: "${}"
"#,
        &[
            ("invalid_header", "steps[0].action.http.headers.X Bad"),
            ("invalid_header", "steps[0].action.http.headers.X-Split"),
            ("invalid_header", "steps[0].action.http.headers.X-Open"),
            ("invalid_header", "steps[0].action.http.headers.X-Empty"),
        ],
    );
}

#[test]
fn variables_in_header_values_are_collected_with_their_location() {
    let plan = compiles(
        r#"
name: trip
steps:
  - name: a
    action:
      http:
        url: "${SVC}/a"
        headers: { Authorization: "Bearer ${API_TOKEN}", X-Tenant: "${TENANT}-eu" }
"#,
    );
    assert_eq!(
        plan.variables
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["API_TOKEN", "SVC", "TENANT"]
    );
    assert!(plan.variable_uses.contains(&(
        "API_TOKEN".to_string(),
        "steps[0].action.http.headers.Authorization".to_string()
    )));
    let Participant::Http { headers, .. } = &plan.saga().unwrap().steps[0].action.participant
    else {
        panic!("an HTTP participant");
    };
    // The plan keeps the placeholder: values are filled only when calling.
    assert_eq!(headers["Authorization"], "Bearer ${API_TOKEN}");
}

// ---------------------------------------------------------------- structure

#[test]
fn an_unknown_field_is_reported_where_it_was_written() {
    assert_rejected_with(
        r#"
name: trip
owner: team-travel
steps:
  - name: a
    action: { handler: a }
    colour: blue
    compensation: { handler: undo_a, priority: 1 }
    retry: { attempts: 3 }
"#,
        &[
            ("unknown_field", "owner"),
            ("unknown_field", "steps[0].colour"),
            ("unknown_field", "steps[0].compensation.priority"),
            ("unknown_field", "steps[0].retry.attempts"),
        ],
    );
}

#[test]
fn an_unknown_field_inside_a_parallel_group_is_reported_with_its_path() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - parallel:
      name: transport
      mode: race
      branches:
        - name: flight
          action: { handler: flight, timeot: 5s }
"#,
        &[
            ("unknown_field", "steps[0].parallel.mode"),
            (
                "unknown_field",
                "steps[0].parallel.branches[0].action.timeot",
            ),
        ],
    );
}

#[test]
fn a_saga_with_no_steps_is_rejected_as_empty_steps() {
    assert_rejected_with("name: trip\nsteps: []\n", &[("empty_steps", "steps")]);
}

#[test]
fn a_saga_without_steps_at_all_is_a_missing_field() {
    assert_rejected_with("name: trip\n", &[("missing_field", "steps")]);
}

#[test]
fn steps_that_are_not_a_list_have_the_wrong_type() {
    assert_rejected_with("name: trip\nsteps: { a: 1 }\n", &[("wrong_type", "steps")]);
}

#[test]
fn a_document_that_is_not_an_object_has_the_wrong_type() {
    assert_rejected_with("- just\n- a list\n", &[("wrong_type", "$")]);
}

#[test]
fn a_parallel_group_with_no_branches_is_rejected_as_empty_parallel() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - parallel: { name: transport, branches: [] }
"#,
        &[("empty_parallel", "steps[0].parallel.branches")],
    );
}

#[test]
fn a_parallel_group_without_a_branches_field_is_rejected_as_empty_parallel() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - parallel: { name: transport }
"#,
        &[("empty_parallel", "steps[0].parallel.branches")],
    );
}

#[test]
fn a_yaml_syntax_error_is_a_parse_error_with_a_line_and_column() {
    let v = violations_of("name: trip\nsteps:\n  - name: [a\n", None);
    assert_eq!(v.len(), 1, "{v:#?}");
    assert_eq!(v[0].code, "parse_error");
    assert!(
        v[0].location.starts_with("line "),
        "location: {}",
        v[0].location
    );
}

#[test]
fn a_json_syntax_error_is_a_parse_error_too() {
    let v = violations_of(r#"{"name": "trip", "steps": [}"#, None);
    assert_eq!(v.len(), 1, "{v:#?}");
    assert_eq!(v[0].code, "parse_error");
}

// ---------------------------------------------------------------- names

#[test]
fn a_document_name_that_differs_from_the_registered_name_is_a_name_mismatch() {
    assert_rejected_with_hint(
        "name: trip\nsteps: [ { name: a, action: { handler: a } } ]\n",
        Some("holiday"),
        &[("name_mismatch", "name")],
    );
}

#[test]
fn a_document_without_a_name_takes_the_registered_name() {
    let plan = compile(
        "steps: [ { name: a, action: { handler: a } } ]\n",
        Some("holiday"),
    )
    .expect("valid with a hint");
    assert_eq!(plan.name, "holiday");
}

#[test]
fn a_document_without_a_name_and_without_a_hint_is_a_missing_field() {
    assert_rejected_with(
        "steps: [ { name: a, action: { handler: a } } ]\n",
        &[("missing_field", "name")],
    );
}

#[test]
fn a_saga_name_with_spaces_is_an_invalid_name() {
    assert_rejected_with(
        "name: my trip\nsteps: [ { name: a, action: { handler: a } } ]\n",
        &[("invalid_name", "name")],
    );
}

#[test]
fn step_and_group_names_with_forbidden_characters_are_invalid_names() {
    let too_long = "x".repeat(81);
    assert_rejected_with(
        &format!(
            r#"
name: trip
steps:
  - name: "reserve/hotel"
    action: {{ handler: a }}
  - name: "{too_long}"
    action: {{ handler: b }}
  - parallel:
      name: "trans port"
      branches:
        - name: "flight.1"
          action: {{ handler: c }}
"#
        ),
        &[
            ("invalid_name", "steps[0].name"),
            ("invalid_name", "steps[1].name"),
            ("invalid_name", "steps[2].parallel.name"),
            ("invalid_name", "steps[2].parallel.branches[0].name"),
        ],
    );
}

#[test]
fn a_step_without_a_name_is_a_missing_field() {
    assert_rejected_with(
        "name: trip\nsteps: [ { action: { handler: a } } ]\n",
        &[("missing_field", "steps[0].name")],
    );
}

#[test]
fn two_steps_with_the_same_name_are_a_duplicate_name_at_the_second() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: reserve
    action: { handler: a }
  - parallel:
      name: transport
      branches:
        - name: reserve
          action: { handler: b }
"#,
        &[("duplicate_name", "steps[1].parallel.branches[0].name")],
    );
}

#[test]
fn a_parallel_group_named_like_a_step_is_a_duplicate_name_at_the_group() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: transport
    action: { handler: a }
  - parallel:
      name: transport
      branches:
        - name: flight
          action: { handler: b }
"#,
        &[("duplicate_name", "steps[1].parallel.name")],
    );
}

#[test]
fn two_parallel_groups_with_the_same_name_are_a_duplicate_name() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - parallel:
      name: transport
      branches: [ { name: flight, action: { handler: f } } ]
  - parallel:
      name: transport
      branches: [ { name: car, action: { handler: c } } ]
"#,
        &[("duplicate_name", "steps[1].parallel.name")],
    );
}

// ---------------------------------------------------------------- roles

#[test]
fn a_second_pivot_is_a_duplicate_pivot() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: a
    action: { handler: a }
    compensation: { handler: undo_a }
  - name: pay
    pivot: true
    action: { handler: pay }
  - name: pay_again
    pivot: true
    action: { handler: pay }
"#,
        &[("duplicate_pivot", "steps[2].pivot")],
    );
}

#[test]
fn a_retriable_step_before_the_pivot_is_retriable_before_pivot() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: notify
    retriable: true
    action: { handler: notify }
  - name: pay
    pivot: true
    action: { handler: pay }
"#,
        &[("retriable_before_pivot", "steps[0].retriable")],
    );
}

#[test]
fn a_compensation_on_a_step_after_the_pivot_is_compensation_after_pivot() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: pay
    pivot: true
    action: { handler: pay }
  - name: confirm
    action: { handler: confirm }
    compensation: { handler: unconfirm }
"#,
        &[("compensation_after_pivot", "steps[1].compensation")],
    );
}

#[test]
fn a_compensation_in_a_parallel_branch_after_the_pivot_is_compensation_after_pivot() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: pay
    pivot: true
    action: { handler: pay }
  - parallel:
      name: confirm
      branches:
        - name: confirm_hotel
          action: { handler: ch }
        - name: confirm_flight
          action: { handler: cf }
          compensation: { handler: uf }
"#,
        &[(
            "compensation_after_pivot",
            "steps[1].parallel.branches[1].compensation",
        )],
    );
}

#[test]
fn a_compensatable_step_after_a_retriable_one_without_a_pivot_is_rejected() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: notify
    retriable: true
    action: { handler: notify }
  - name: reserve
    action: { handler: reserve }
    compensation: { handler: cancel }
"#,
        &[("compensatable_after_retriable", "steps[1]")],
    );
}

#[test]
fn a_pivot_inside_a_parallel_group_is_pivot_in_parallel() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - parallel:
      name: transport
      branches:
        - name: flight
          pivot: true
          action: { handler: flight }
"#,
        &[("pivot_in_parallel", "steps[0].parallel.branches[0].pivot")],
    );
}

#[test]
fn a_pivot_with_a_compensation_is_pivot_has_compensation() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: pay
    pivot: true
    action: { handler: pay }
    compensation: { handler: refund }
"#,
        &[("pivot_has_compensation", "steps[0].compensation")],
    );
}

#[test]
fn a_step_that_is_both_pivot_and_retriable_is_rejected() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: pay
    pivot: true
    retriable: true
    action: { handler: pay }
"#,
        &[("pivot_and_retriable", "steps[0]")],
    );
}

#[test]
fn a_pivot_flag_that_is_not_a_boolean_has_the_wrong_type() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: pay
    pivot: "yes"
    action: { handler: pay }
"#,
        &[("wrong_type", "steps[0].pivot")],
    );
}

// ---------------------------------------------------------------- retry and durations

#[track_caller]
fn assert_retry_rejected(retry: &str, location: &str) {
    assert_retry_rejected_as(retry, "invalid_retry_policy", location)
}

#[track_caller]
fn assert_retry_rejected_as(retry: &str, code: &str, location: &str) {
    assert_rejected_with(
        &format!(
            "name: trip\nsteps:\n  - name: a\n    action: {{ handler: a }}\n    retry: {retry}\n"
        ),
        &[(code, location)],
    );
}

#[test]
fn a_retry_policy_with_zero_attempts_is_invalid() {
    assert_retry_rejected("{ max_attempts: 0 }", "steps[0].retry.max_attempts");
}

#[test]
fn a_retry_policy_with_fractional_or_negative_attempts_is_invalid() {
    assert_retry_rejected("{ max_attempts: 2.5 }", "steps[0].retry.max_attempts");
    assert_retry_rejected("{ max_attempts: -1 }", "steps[0].retry.max_attempts");
    assert_retry_rejected("{ max_attempts: forever }", "steps[0].retry.max_attempts");
}

#[test]
fn a_retry_policy_with_a_shrinking_multiplier_is_invalid() {
    assert_retry_rejected("{ multiplier: 0.5 }", "steps[0].retry.multiplier");
}

#[test]
fn a_retry_policy_whose_max_delay_is_below_its_initial_delay_is_invalid() {
    assert_retry_rejected(
        "{ initial_delay: 2s, max_delay: 1s }",
        "steps[0].retry.max_delay",
    );
}

#[test]
fn a_retry_policy_with_jitter_above_one_is_invalid() {
    assert_retry_rejected("{ jitter: 2 }", "steps[0].retry.jitter");
}

#[test]
fn a_retry_policy_with_an_empty_retry_on_list_is_invalid() {
    assert_retry_rejected("{ retry_on: [] }", "steps[0].retry.retry_on");
}

#[test]
fn a_compensation_retry_policy_is_checked_at_its_own_location() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: a
    action: { handler: a }
    compensation: { handler: undo, retry: { max_attempts: 0 } }
"#,
        &[(
            "invalid_retry_policy",
            "steps[0].compensation.retry.max_attempts",
        )],
    );
}

#[test]
fn an_initial_delay_longer_than_the_default_max_delay_is_accepted() {
    let plan = compiles(
        "name: trip\nsteps: [ { name: a, action: { handler: a }, retry: { initial_delay: 10s } } ]\n",
    );
    let retry = &plan.saga().unwrap().steps[0].action.retry;
    assert_eq!(retry.initial_delay_ms, 10_000);
    assert!(retry.max_delay_ms >= retry.initial_delay_ms, "{retry:?}");
}

#[test]
fn unlimited_attempts_are_spelled_unlimited() {
    let plan = compiles(
        "name: trip\nsteps: [ { name: a, action: { handler: a }, retry: { max_attempts: unlimited } } ]\n",
    );
    assert_eq!(
        plan.saga().unwrap().steps[0].action.retry.max_attempts,
        None
    );
}

#[test]
fn a_timeout_that_is_not_a_duration_is_an_invalid_duration() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: a
    action: { handler: a }
    timeout: five seconds
  - name: b
    action: { handler: b }
    timeout: 5
  - name: c
    action: { handler: c }
    timeout: 0s
  - name: d
    action: { handler: d }
    compensation: { handler: undo_d, timeout: soon }
    retry: { initial_delay: fast }
"#,
        &[
            ("invalid_duration", "steps[0].timeout"),
            ("invalid_duration", "steps[1].timeout"),
            ("invalid_duration", "steps[2].timeout"),
            ("invalid_duration", "steps[3].compensation.timeout"),
            ("invalid_duration", "steps[3].retry.initial_delay"),
        ],
    );
}

// ---------------------------------------------------------------- references

#[test]
fn an_input_naming_an_unknown_step_is_an_unknown_step_reference() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: reserve_hotel
    action: { handler: hotel }
  - name: confirm
    action: { handler: confirm }
    input: { booking: "$.steps.reserve_motel.output.booking_id" }
"#,
        &[("unknown_step_reference", "steps[1].input.booking")],
    );
}

#[test]
fn an_input_naming_a_later_step_is_a_forward_step_reference() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: reserve_hotel
    action: { handler: hotel }
    input: { flight: "$.steps.reserve_flight.output.id" }
  - name: reserve_flight
    action: { handler: flight }
"#,
        &[("forward_step_reference", "steps[0].input.flight")],
    );
}

#[test]
fn an_input_naming_a_sibling_parallel_branch_is_a_forward_step_reference() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - parallel:
      name: transport
      branches:
        - name: flight
          action: { handler: flight }
        - name: car
          action: { handler: car }
          input: { ids: [ "$.input.trip_id", "$.steps.flight.output.id" ] }
"#,
        &[(
            "forward_step_reference",
            "steps[0].parallel.branches[1].input.ids[1]",
        )],
    );
}

#[test]
fn a_compensation_may_read_its_own_steps_output_but_not_a_later_one() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: hotel
    action: { handler: hotel }
    compensation:
      handler: cancel_hotel
      input: { own: "$.steps.hotel.output.id", later: "$.steps.car.output.id" }
  - name: car
    action: { handler: car }
"#,
        &[(
            "forward_step_reference",
            "steps[0].compensation.input.later",
        )],
    );
}

#[test]
fn a_reference_outside_input_steps_and_execution_is_an_invalid_reference() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: a
    action: { handler: a }
    input: { x: "$.env.HOME", y: "$.steps", z: "$..a", n: 3, s: plain }
"#,
        &[
            ("invalid_reference", "steps[0].input.x"),
            ("invalid_reference", "steps[0].input.y"),
            ("invalid_reference", "steps[0].input.z"),
        ],
    );
}

// ---------------------------------------------------------------- several problems

#[test]
fn a_definition_with_several_problems_reports_all_of_them() {
    assert_rejected_with(
        r#"
name: trip
color: red
steps:
  - name: hotel
    action: { http: { url: "hotel.example/reserve" } }
    compensation: { handler: cancel_hotel }
    retry: { max_attempts: 0, jitter: 2 }
  - name: hotel
    action: { handler: hotel2 }
    timeout: eventually
  - name: car
    input: { hotel: "$.steps.hotel.output.id", flight: "$.steps.flight.output.id" }
  - parallel: { name: empty, branches: [] }
  - name: pay
    pivot: true
    action: { handler: pay }
    compensation: { handler: refund }
  - name: confirm
    action: { handler: confirm, http: { url: "http://x" } }
    input: { car: "$.steps.car.output.id" }
"#,
        &[
            ("unknown_field", "color"),
            ("invalid_url", "steps[0].action.http.url"),
            ("invalid_retry_policy", "steps[0].retry.max_attempts"),
            ("invalid_retry_policy", "steps[0].retry.jitter"),
            ("duplicate_name", "steps[1].name"),
            ("invalid_duration", "steps[1].timeout"),
            ("missing_field", "steps[2].action"),
            ("unknown_step_reference", "steps[2].input.flight"),
            ("empty_parallel", "steps[3].parallel.branches"),
            ("pivot_has_compensation", "steps[4].compensation"),
            ("ambiguous_participant", "steps[5].action"),
        ],
    );
}

#[test]
fn the_error_lists_every_violation_in_its_message_and_has_a_stable_code() {
    let err = compile(
        "name: trip\nsteps: [ { name: a, action: { handler: a }, timeout: x, colour: red } ]\n",
        None,
    )
    .unwrap_err();
    assert_eq!(err.code(), "invalid_definition");
    let text = err.to_string();
    assert!(
        text.contains("invalid_duration at steps[0].timeout"),
        "{text}"
    );
    assert!(text.contains("unknown_field at steps[0].colour"), "{text}");
}

#[test]
fn a_step_with_an_invalid_action_is_still_known_to_later_references() {
    assert_rejected_with(
        r#"
name: trip
steps:
  - name: hotel
    action: { http: { url: "http://svc/hotel" }, handler: hotel }
  - name: confirm
    action: { handler: confirm }
    input: { booking: "$.steps.hotel.output.id" }
"#,
        &[("ambiguous_participant", "steps[0].action")],
    );
}

#[test]
fn an_invalid_max_delay_is_reported_once_and_not_again_as_too_short() {
    assert_retry_rejected_as(
        "{ initial_delay: 10s, max_delay: later }",
        "invalid_duration",
        "steps[0].retry.max_delay",
    );
}

// ---------------------------------------------------------------- valid definitions

const TRAVEL_YAML: &str = r#"
name: trip-booking
description: Book a hotel, a flight and a car, then charge the card.
steps:
  - name: reserve_hotel
    action:       { http: { url: "${TRAVEL_URL}/hotel/reserve" } }
    compensation: { http: { url: "${TRAVEL_URL}/hotel/cancel" } }
    retry: { max_attempts: 3, initial_delay: 200ms, multiplier: 2, max_delay: 5s }
    timeout: 5s
  - parallel:
      name: reserve_transport
      branches:
        - name: reserve_flight
          action:       { http: { url: "${TRAVEL_URL}/flight/reserve" } }
          compensation: { http: { url: "${TRAVEL_URL}/flight/cancel", headers: { X-Team: travel } } }
        - name: reserve_car
          action:       { http: { url: "${CAR_URL}/car/reserve" } }
          compensation:
            http: { url: "${CAR_URL}/car/cancel" }
            input: { car_id: "$.steps.reserve_car.output.car_id" }
            retry: { max_attempts: 10 }
  - name: take_payment
    pivot: true
    action: { http: { url: "${TRAVEL_URL}/payment/charge" } }
    input: { trip_id: "$.input.trip_id", amount: "$.input.amount" }
  - name: confirm_hotel
    action: { http: { url: "${TRAVEL_URL}/hotel/confirm" } }
    input: { booking_id: "$.steps.reserve_hotel.output.booking_id" }
  - name: notify
    action: { handler: send_email }
    retry: { max_attempts: 5, retry_on: [ States.TaskFailed ] }
"#;

const TRAVEL_JSON: &str = r#"{
  "name": "trip-booking",
  "description": "Book a hotel, a flight and a car, then charge the card.",
  "steps": [
    {
      "name": "reserve_hotel",
      "action": { "http": { "url": "${TRAVEL_URL}/hotel/reserve" } },
      "compensation": { "http": { "url": "${TRAVEL_URL}/hotel/cancel" } },
      "retry": { "max_attempts": 3, "initial_delay": "200ms", "multiplier": 2, "max_delay": "5s" },
      "timeout": "5s"
    },
    {
      "parallel": {
        "name": "reserve_transport",
        "branches": [
          {
            "name": "reserve_flight",
            "action": { "http": { "url": "${TRAVEL_URL}/flight/reserve" } },
            "compensation": { "http": { "url": "${TRAVEL_URL}/flight/cancel", "headers": { "X-Team": "travel" } } }
          },
          {
            "name": "reserve_car",
            "action": { "http": { "url": "${CAR_URL}/car/reserve" } },
            "compensation": {
              "http": { "url": "${CAR_URL}/car/cancel" },
              "input": { "car_id": "$.steps.reserve_car.output.car_id" },
              "retry": { "max_attempts": 10 }
            }
          }
        ]
      }
    },
    {
      "name": "take_payment",
      "pivot": true,
      "action": { "http": { "url": "${TRAVEL_URL}/payment/charge" } },
      "input": { "trip_id": "$.input.trip_id", "amount": "$.input.amount" }
    },
    {
      "name": "confirm_hotel",
      "action": { "http": { "url": "${TRAVEL_URL}/hotel/confirm" } },
      "input": { "booking_id": "$.steps.reserve_hotel.output.booking_id" }
    },
    {
      "name": "notify",
      "action": { "handler": "send_email" },
      "retry": { "max_attempts": 5, "retry_on": ["States.TaskFailed"] }
    }
  ]
}"#;

#[test]
fn the_travel_saga_in_yaml_compiles_to_stages_and_roles() {
    let plan = compiles(TRAVEL_YAML);
    assert_eq!(plan.name, "trip-booking");
    assert!(plan.description.is_some());
    let names: Vec<&str> = plan
        .saga()
        .unwrap()
        .steps
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "reserve_hotel",
            "reserve_flight",
            "reserve_car",
            "take_payment",
            "confirm_hotel",
            "notify"
        ]
    );
    let roles: Vec<Role> = plan.saga().unwrap().steps.iter().map(|s| s.role).collect();
    assert_eq!(
        roles,
        [
            Role::Compensatable,
            Role::Compensatable,
            Role::Compensatable,
            Role::Pivot,
            Role::Retriable,
            Role::Retriable
        ]
    );
    assert_eq!(plan.saga().unwrap().stages.len(), 5);
    assert!(plan.saga().unwrap().stages[1].parallel);
    assert_eq!(plan.saga().unwrap().stages[1].name, "reserve_transport");
    assert_eq!(plan.saga().unwrap().stages[1].steps, vec![1, 2]);
    assert_eq!(plan.saga().unwrap().steps[2].stage, 1);
    assert_eq!(plan.saga().unwrap().steps[4].stage, 3);
    assert_eq!(plan.saga().unwrap().step_index("take_payment"), Some(3));

    let hotel = &plan.saga().unwrap().steps[0];
    assert_eq!(hotel.action.timeout_ms, 5_000);
    assert_eq!(hotel.action.retry.max_attempts, Some(3));
    assert_eq!(hotel.action.retry.initial_delay_ms, 200);
    assert_eq!(hotel.action.retry.max_delay_ms, 5_000);
    assert_eq!(
        hotel.action.participant,
        Participant::Http {
            url: "${TRAVEL_URL}/hotel/reserve".into(),
            headers: Default::default()
        }
    );
    let car_comp = plan.saga().unwrap().steps[2].compensation.as_ref().unwrap();
    assert_eq!(car_comp.retry.max_attempts, Some(10));
    assert_eq!(car_comp.retry.retry_on, vec![ALL.to_string()]);
    assert_eq!(
        plan.saga().unwrap().steps[5].action.participant,
        Participant::Handler {
            name: "send_email".into()
        }
    );
    assert_eq!(
        plan.saga().unwrap().steps[5].action.retry.retry_on,
        vec![TASK_FAILED.to_string()]
    );
}

#[test]
fn the_same_saga_in_yaml_and_in_json_compiles_to_the_same_plan() {
    let yaml = compiles(TRAVEL_YAML);
    let json = compiles(TRAVEL_JSON);
    assert_eq!(yaml.name, json.name);
    assert_eq!(yaml.description, json.description);
    assert_eq!(yaml.program, json.program);
    assert_eq!(yaml.variables, json.variables);
}

#[test]
fn compiling_the_same_text_twice_gives_the_same_digest_and_a_change_a_new_one() {
    let a = compiles(TRAVEL_YAML);
    let b = compiles(TRAVEL_YAML);
    assert_eq!(a.digest, b.digest);
    assert_eq!(a.digest.len(), 64);
    let changed = compiles(&TRAVEL_YAML.replace("timeout: 5s", "timeout: 6s"));
    assert_ne!(a.digest, changed.digest);
}

#[test]
fn a_parsed_document_compiles_like_its_text() {
    let doc: serde_json::Value = serde_json::from_str(TRAVEL_JSON).unwrap();
    assert_eq!(
        compile_document(&doc, Some("trip-booking")).unwrap(),
        compile(TRAVEL_JSON, None).unwrap()
    );
}

#[test]
fn url_variables_are_collected_for_the_runtime_to_resolve() {
    let plan = compiles(TRAVEL_YAML);
    let vars: Vec<&str> = plan.variables.iter().map(String::as_str).collect();
    assert_eq!(vars, ["CAR_URL", "TRAVEL_URL"]);
}

#[test]
fn steps_after_the_pivot_are_retriable_with_an_unbounded_retry_policy_by_default() {
    let plan = compiles(TRAVEL_YAML);
    let confirm = &plan.saga().unwrap().steps[4];
    assert_eq!(confirm.role, Role::Retriable);
    assert_eq!(confirm.action.retry.max_attempts, None);
    assert!(confirm.action.retry.retries("HotelFull"));
    assert!(confirm.action.retry.retries(TIMEOUT));
    assert!(confirm.compensation.is_none());
}

#[test]
fn steps_before_the_pivot_get_a_bounded_policy_that_does_not_retry_business_errors() {
    let plan = compiles(TRAVEL_YAML);
    let flight = &plan.saga().unwrap().steps[1];
    assert_eq!(flight.role, Role::Compensatable);
    assert_eq!(flight.action.retry.max_attempts, Some(3));
    assert!(flight.action.retry.retries(TASK_FAILED));
    assert!(flight.action.retry.retries(TIMEOUT));
    assert!(!flight.action.retry.retries("FlightFull"));
    let comp = flight.compensation.as_ref().unwrap();
    assert_eq!(
        comp.retry.max_attempts, None,
        "compensations retry until they succeed"
    );
    assert!(comp.retry.retries("Anything"));
}

#[test]
fn a_saga_without_a_pivot_is_all_compensatable() {
    let plan = compiles(
        r#"
name: trip
steps:
  - name: a
    action: { handler: a }
    compensation: { handler: undo_a }
  - name: b
    action: { handler: b }
"#,
    );
    assert!(plan
        .saga()
        .unwrap()
        .steps
        .iter()
        .all(|s| s.role == Role::Compensatable));
    assert!(plan.saga().unwrap().steps[1].compensation.is_none());
}

#[test]
fn an_explicitly_retriable_tail_without_a_pivot_is_valid() {
    let plan = compiles(
        r#"
name: trip
steps:
  - name: a
    action: { handler: a }
    compensation: { handler: undo_a }
  - name: b
    retriable: true
    action: { handler: b }
"#,
    );
    assert_eq!(plan.saga().unwrap().steps[1].role, Role::Retriable);
    assert_eq!(
        plan.saga().unwrap().steps[1].action.retry.max_attempts,
        None
    );
}

#[test]
fn a_heartbeat_on_a_task_that_does_not_wait_for_a_callback_is_rejected() {
    let err = sagaflow_core::compile(
        r#"
name: s
steps:
  - name: a
    heartbeat: 10s
    action: { handler: a }
"#,
        None,
    )
    .unwrap_err();
    let sagaflow_core::Error::InvalidDefinition(v) = err else {
        panic!("{err:?}")
    };
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(
        (v[0].code.as_str(), v[0].location.as_str()),
        ("heartbeat_without_callback", "steps[0].heartbeat")
    );
}

#[test]
fn a_stored_definition_with_a_protocol_header_still_loads_without_it() {
    // Accepted before protocol headers were reserved: its executions must
    // keep running, with the engine's own value for that header.
    let source = r#"
name: trip
steps:
  - name: c
    action:
      http:
        url: "http://svc/c"
        headers: { Idempotency-Key: "mine", X-Tenant: "acme" }
"#;
    assert!(compile(source, None).is_err(), "a new deploy is refused");
    let plan = sagaflow_core::compile_stored_definition(source, None, &Default::default())
        .expect("the stored definition loads");
    match &plan.saga().unwrap().steps[0].action.participant {
        Participant::Http { headers, .. } => {
            assert_eq!(headers.keys().collect::<Vec<_>>(), ["X-Tenant"]);
        }
        other => panic!("{other:?}"),
    }
}
