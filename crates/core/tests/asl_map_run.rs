//! The distributed Map (`ProcessorConfig.Mode: DISTRIBUTED`, the Step
//! Functions developer guide's "Using Map state in Distributed mode") over
//! items from the state input: a map run with an ARN, its child executions'
//! counts, `UpdateMapRun`, and the `MapRun…` history events. Every decision
//! is replayed and checked against the live state by the harness.

mod support;

use sagaflow_core::asl::run::{child_owner, map_run_owner, ItemStatus, MapRunStatus, MapRunUpdate};
use sagaflow_core::{Ctx, Input, Status};
use serde_json::{json, Value};
use support::{invoked, lambda, Sim};

fn distributed(extra: Value) -> Value {
    let mut map = json!({
        "Type": "Map",
        "Label": "Bookings",
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Book",
            "States": {"Book": {"Type": "Task", "Resource": lambda("book"), "End": true}}
        },
        "End": true
    });
    for (k, v) in extra.as_object().expect("an object") {
        map[k] = v.clone();
    }
    json!({"StartAt": "Fan", "States": {"Fan": map}})
}

fn update(arn: &str, max_concurrency: Option<u32>, count: Option<u64>) -> Input {
    Input::UpdateMapRun(MapRunUpdate {
        map_run: arn.into(),
        max_concurrency,
        tolerated_failure_count: count,
        tolerated_failure_percentage: None,
    })
}

#[test]
fn a_distributed_map_runs_its_items_as_a_map_run_named_by_its_label() {
    let (mut sim, fx) = Sim::start(distributed(json!({})), json!(["a", "b"]));
    assert_eq!(invoked(&fx), ["Fan[0]/Book", "Fan[1]/Book"]);
    let run = sim.ex.map_runs()[0].clone();
    assert_eq!(
        run.arn,
        "arn:aws:states:us-east-1:123456789012:mapRun:m/Bookings:ex-1_0"
    );
    assert_eq!(map_run_owner(&run.arn), Some(("m", "ex-1")));
    assert_eq!(run.status, MapRunStatus::Running);
    assert_eq!(run.count(ItemStatus::Running), 2);
    assert_eq!(
        run.child_arn(1),
        "arn:aws:states:us-east-1:123456789012:execution:m/Bookings:ex-1_0_1"
    );

    sim.succeed("Fan[0]/Book", json!(1));
    sim.succeed("Fan[1]/Book", json!(2));
    assert_eq!(sim.ex.output, Some(json!([1, 2])));
    let run = &sim.ex.map_runs()[0];
    assert_eq!(run.status, MapRunStatus::Succeeded);
    assert_eq!(run.count(ItemStatus::Succeeded), 2);
    assert!(run.stopped_at.is_some());

    let types = sim.trace_types();
    assert!(
        !types.iter().any(|t| t.starts_with("MapIteration")),
        "{types:?}"
    );
    let at = |name: &str| {
        types
            .iter()
            .position(|t| t == name)
            .unwrap_or_else(|| panic!("{name} in {types:?}"))
    };
    assert!(at("MapStateStarted") < at("MapRunStarted"));
    assert!(at("MapRunStarted") < at("MapRunSucceeded"));
    assert!(at("MapRunSucceeded") < at("MapStateSucceeded"));
    // The items' state events are in their children's histories, not here
    // (as on AWS).
    assert!(!types.iter().any(|t| t.starts_with("Task")), "{types:?}");
    assert_eq!(
        child_types(&sim, &run.arn, 0).unwrap(),
        [
            "ExecutionStarted",
            "StateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSucceeded",
            "StateExited",
            "ExecutionSucceeded"
        ]
    );
}

#[test]
fn update_map_run_raises_the_concurrency_of_a_running_map_run_at_once() {
    let (mut sim, fx) = Sim::start(distributed(json!({"MaxConcurrency": 1})), json!([1, 2, 3]));
    assert_eq!(invoked(&fx), ["Fan[0]/Book"]);
    let arn = sim.ex.map_runs()[0].arn.clone();

    let fx = sim.feed(update(&arn, Some(3), None));
    assert_eq!(invoked(&fx), ["Fan[1]/Book", "Fan[2]/Book"]);
    assert_eq!(sim.ex.map_runs()[0].max_concurrency, 3);
    assert!(sim
        .history
        .iter()
        .any(|e| e.kind.name() == "map_run_updated"));
}

#[test]
fn update_map_run_can_tolerate_the_failures_that_would_fail_the_run() {
    let (mut sim, _) = Sim::start(
        distributed(json!({"ToleratedFailureCount": 0})),
        json!([1, 2]),
    );
    let arn = sim.ex.map_runs()[0].arn.clone();
    sim.feed(update(&arn, None, Some(1)));
    sim.fail("Fan[0]/Book", "Full");
    sim.succeed("Fan[1]/Book", json!("ok"));
    assert_eq!(sim.ex.status, Status::Succeeded);
    assert_eq!(sim.ex.map_runs()[0].count(ItemStatus::Failed), 1);
    assert_eq!(sim.ex.map_runs()[0].tolerated_failure_count, Some(1));
}

#[test]
fn an_update_of_an_unknown_or_finished_map_run_is_refused_and_records_nothing() {
    let (mut sim, _) = Sim::start(distributed(json!({})), json!([1]));
    let ctx = Ctx {
        now: sim.now + 1,
        random: 0.5,
        entropy: 1,
    };
    let unknown = sim
        .ex
        .decide(
            &sim.plan,
            update(
                "arn:aws:states:us-east-1:123456789012:mapRun:m/X:nope_9",
                Some(2),
                None,
            ),
            ctx,
        )
        .unwrap_err();
    assert_eq!(unknown.code(), "map_run_not_found");

    let arn = sim.ex.map_runs()[0].arn.clone();
    sim.succeed("Fan[0]/Book", json!(1));
    let finished = sim
        .ex
        .decide(&sim.plan, update(&arn, Some(2), None), ctx)
        .unwrap_err();
    assert_eq!(finished.code(), "map_run_not_running");
}

#[test]
fn a_failed_map_run_aborts_its_running_children_and_a_redrive_continues_the_same_run() {
    let (mut sim, _) = Sim::start(distributed(json!({})), json!([1, 2, 3]));
    sim.succeed("Fan[0]/Book", json!("one"));
    sim.fail("Fan[1]/Book", "Full");
    assert_eq!(sim.ex.status, Status::Failed);
    let run = sim.ex.map_runs()[0].clone();
    assert_eq!(run.status, MapRunStatus::Failed);
    assert_eq!(
        run.items.iter().map(|i| i.status).collect::<Vec<_>>(),
        [
            ItemStatus::Succeeded,
            ItemStatus::Failed,
            ItemStatus::Aborted
        ]
    );
    assert!(sim.trace_types().contains(&"MapRunFailed".to_string()));

    let fx = sim.feed(Input::Redrive);
    assert_eq!(invoked(&fx), ["Fan#2[1]/Book", "Fan#2[2]/Book"]);
    assert_eq!(sim.ex.map_runs().len(), 1, "the same map run is redriven");
    let run = &sim.ex.map_runs()[0];
    assert_eq!(run.redrive_count, 1);
    assert_eq!(run.status, MapRunStatus::Running);
    assert_eq!(run.count(ItemStatus::Succeeded), 1);
    assert!(sim.trace_types().contains(&"MapRunRedriven".to_string()));

    sim.succeed("Fan#2[1]/Book", json!("two"));
    sim.succeed("Fan#2[2]/Book", json!("three"));
    assert_eq!(sim.ex.output, Some(json!(["one", "two", "three"])));
    assert_eq!(sim.ex.map_runs()[0].status, MapRunStatus::Succeeded);
}

#[test]
fn a_cancelled_execution_aborts_its_map_run() {
    let (mut sim, _) = Sim::start(distributed(json!({})), json!([1, 2]));
    sim.succeed("Fan[0]/Book", json!(1));
    sim.feed(Input::Cancel {
        reason: "no".into(),
    });
    let run = &sim.ex.map_runs()[0];
    assert_eq!(run.status, MapRunStatus::Aborted);
    assert_eq!(run.count(ItemStatus::Aborted), 1);
    assert_eq!(run.count(ItemStatus::Succeeded), 1);
    assert!(sim.trace_types().contains(&"MapRunAborted".to_string()));
}

#[test]
fn an_inline_map_has_no_map_run() {
    let sim = Sim::started(
        json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true,
            "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}}}}),
        json!([1]),
    );
    assert_eq!(sim.ex.status, Status::Succeeded);
    assert!(sim.ex.map_runs().is_empty());
}

#[test]
fn a_map_run_arn_names_its_execution_even_when_the_id_has_underscores() {
    assert_eq!(
        map_run_owner("arn:aws:states:us-east-1:123456789012:mapRun:trip/Fan:run_2026_12_3"),
        Some(("trip", "run_2026_12"))
    );
    assert_eq!(
        map_run_owner("arn:aws:states:us-east-1:123456789012:execution:trip:x"),
        None
    );
    assert_eq!(
        map_run_owner("arn:aws:states:us-east-1:123456789012:mapRun:trip/Fan:x_y"),
        None
    );
}

#[test]
fn a_child_execution_arn_names_its_map_run_and_its_item() {
    assert_eq!(
        child_owner("arn:aws:states:us-east-1:123456789012:execution:trip/Fan:run_2026_12_3_7"),
        Some((
            "arn:aws:states:us-east-1:123456789012:mapRun:trip/Fan:run_2026_12_3".to_string(),
            7
        ))
    );
    for not_a_child in [
        "arn:aws:states:us-east-1:123456789012:execution:trip:run_1_2",
        "arn:aws:states:us-east-1:123456789012:execution:trip/Fan:run_1",
        "arn:aws:states:us-east-1:123456789012:execution:trip/Fan:run_1_x",
        "arn:aws:states:us-east-1:123456789012:mapRun:trip/Fan:run_1_2",
    ] {
        assert_eq!(child_owner(not_a_child), None, "{not_a_child}");
    }
}

/// The types of child `item`'s history in map run `arn`, or `None`.
fn child_types(sim: &Sim, arn: &str, item: usize) -> Option<Vec<String>> {
    let trace = sagaflow_core::child_trace(&sim.plan, &sim.history, arn, item).expect("a trace")?;
    Some(support::types(&trace))
}

#[test]
fn a_child_execution_keeps_its_input_and_its_output_or_error() {
    let m = distributed(json!({"ItemSelector": {"order.$": "$$.Map.Item.Value"}}));
    let (mut sim, _) = Sim::start(m, json!(["a", "b", "c"]));
    // Its number as written (the workspace keeps arbitrary precision).
    let answer = r#"{"booked":"a","price":1.10}"#;
    sim.succeed("Fan[0]/Book", serde_json::from_str(answer).unwrap());
    sim.fail_with("Fan[1]/Book", "Full", "no room for b");
    let items = &sim.ex.map_runs()[0].items;
    assert_eq!(items[0].input, Some(json!({"order": "a"})));
    assert_eq!(items[0].output.as_ref().unwrap().to_string(), answer);
    assert_eq!(items[1].input, Some(json!({"order": "b"})));
    let error = items[1].error.as_ref().expect("the failure is kept");
    assert_eq!(
        (error.error.as_str(), error.cause.as_str()),
        ("Full", "no room for b")
    );
    assert_eq!(items[1].output, None);
    assert_eq!(items[2].status, ItemStatus::Aborted, "the run failed");
    assert_eq!(items[2].input, Some(json!({"order": "c"})));
}

#[test]
fn a_child_history_is_its_item_thread_between_its_own_start_and_end() {
    let (mut sim, _) = Sim::start(distributed(json!({})), json!(["a", "b"]));
    let arn = sim.ex.map_runs()[0].arn.clone();
    let before = sim.trace_types();
    assert_eq!(
        child_types(&sim, &arn, 1).unwrap(),
        [
            "ExecutionStarted",
            "StateEntered",
            "TaskScheduled",
            "TaskStarted"
        ]
    );
    sim.succeed("Fan[1]/Book", json!("B"));
    assert_eq!(
        child_types(&sim, &arn, 1).unwrap(),
        [
            "ExecutionStarted",
            "StateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSucceeded",
            "StateExited",
            "ExecutionSucceeded"
        ]
    );
    let trace = sagaflow_core::child_trace(&sim.plan, &sim.history, &arn, 1)
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::to_value(&trace[0].kind).unwrap()["input"],
        json!("b")
    );
    assert_eq!(
        serde_json::to_value(&trace[6].kind).unwrap()["output"],
        json!("B")
    );

    // The parent's history gains none of the child's events (as on AWS).
    assert_eq!(sim.trace_types(), before);
}

#[test]
fn a_child_that_has_not_started_or_does_not_exist_has_no_history() {
    let (sim, _) = Sim::start(distributed(json!({"MaxConcurrency": 1})), json!([1, 2]));
    let arn = sim.ex.map_runs()[0].arn.clone();
    assert!(child_types(&sim, &arn, 0).is_some());
    assert_eq!(child_types(&sim, &arn, 1), None, "pending");
    assert_eq!(child_types(&sim, &arn, 2), None, "no such item");
    assert_eq!(
        child_types(&sim, &format!("{arn}9"), 0),
        None,
        "no such map run"
    );
}

#[test]
fn a_redriven_child_goes_on_in_the_same_history_and_counts_its_redrive() {
    let (mut sim, _) = Sim::start(distributed(json!({})), json!([1, 2]));
    let arn = sim.ex.map_runs()[0].arn.clone();
    sim.fail("Fan[0]/Book", "Full");
    assert_eq!(
        child_types(&sim, &arn, 1)
            .unwrap()
            .last()
            .map(String::as_str),
        Some("ExecutionAborted"),
        "the failed run aborts its running children"
    );
    sim.feed(Input::Redrive);
    sim.succeed("Fan#2[0]/Book", json!("one"));
    let item = &sim.ex.map_runs()[0].items[0];
    assert_eq!(
        (item.status, item.redrive_count),
        (ItemStatus::Succeeded, 1)
    );
    assert!(item.error.is_none() && item.redriven_at.is_some());
    let types = child_types(&sim, &arn, 0).unwrap();
    let redriven = types
        .iter()
        .position(|t| t == "ExecutionRedriven")
        .expect("redriven");
    assert_eq!(types[redriven - 1], "ExecutionFailed");
    assert_eq!(types[0], "ExecutionStarted");
    assert_eq!(types.last().map(String::as_str), Some("ExecutionSucceeded"));
    assert_eq!(types.iter().filter(|t| *t == "TaskScheduled").count(), 2);
}

/// A distributed Map reading its items and writing its results through
/// participants bound to S3's ARNs (`arn:aws:states:::s3:getObject` →
/// handler `store`, as a resource map rule would bind them).
fn reading(reader: Value, writer: Option<Value>) -> Value {
    let mut m = distributed(json!({"ItemReader": reader}));
    if let Some(w) = writer {
        m["States"]["Fan"]["ResultWriter"] = w;
    }
    m
}

fn s3(action: &str) -> String {
    // Lambda-shaped so that the harness's resource map binds it to
    // `handler:{action}`: the resource map decides, not the ARN's service.
    lambda(action)
}

#[test]
fn an_item_reader_call_gives_the_items_as_csv_rows_with_their_headers() {
    let (mut sim, fx) = Sim::start(
        reading(
            json!({
                "Resource": s3("getObject"),
                "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW", "MaxItems": 2},
                "Parameters": {"Bucket": "trips", "Key.$": "$.file"}
            }),
            None,
        ),
        json!({"file": "today.csv"}),
    );
    assert_eq!(invoked(&fx), ["Fan"], "the reader is called first");
    assert_eq!(
        sim.request_input("Fan"),
        json!({"Bucket": "trips", "Key": "today.csv"})
    );
    let fx = sim.succeed(
        "Fan",
        json!({"Body": "city,nights\nDublin,2\n\"Paris, FR\",3\nRome,1\n"}),
    );
    assert_eq!(invoked(&fx), ["Fan[0]/Book", "Fan[1]/Book"], "MaxItems: 2");
    assert_eq!(
        sim.request_input("Fan[1]/Book"),
        json!({"city": "Paris, FR", "nights": "3"})
    );
    sim.succeed("Fan[0]/Book", json!("b0"));
    sim.succeed("Fan[1]/Book", json!("b1"));
    assert_eq!(sim.ex.output, Some(json!(["b0", "b1"])));
    assert_eq!(sim.ex.map_runs()[0].items.len(), 2);
    let types = sim.trace_types();
    assert!(
        !types.iter().any(|t| t.starts_with("Task")),
        "the reader's call is no Task event, and the items' are their children's: {types:?}"
    );
}

#[test]
fn json_lines_and_json_arrays_are_read_too() {
    for (config, answer) in [
        (
            json!({"InputType": "JSONL"}),
            json!("{\"n\":1}\n\n{\"n\":2}\n"),
        ),
        (json!({"InputType": "JSON"}), json!([{"n": 1}, {"n": 2}])),
        (json!({}), json!({"Body": "[{\"n\":1},{\"n\":2}]"})),
    ] {
        let (mut sim, _) = Sim::start(
            reading(
                json!({"Resource": s3("getObject"), "ReaderConfig": config}),
                None,
            ),
            json!({}),
        );
        let fx = sim.succeed("Fan", answer.clone());
        assert_eq!(invoked(&fx).len(), 2, "{answer}");
        assert_eq!(
            sim.request_input("Fan[1]/Book"),
            json!({"n": 2}),
            "{answer}"
        );
    }
}

#[test]
fn a_result_writer_gets_the_results_and_the_map_outputs_its_answer() {
    let (mut sim, _) = Sim::start(
        reading(
            json!({"Resource": s3("getObject")}),
            Some(
                json!({"Resource": s3("putObject"), "Parameters": {"Bucket": "out", "Prefix": "runs"}}),
            ),
        ),
        json!({}),
    );
    sim.succeed("Fan", json!(["a", "b"]));
    sim.succeed("Fan[0]/Book", json!("A"));
    let fx = sim.succeed("Fan[1]/Book", json!("B"));
    assert_eq!(invoked(&fx), ["Fan"], "then the writer is called");
    let arn = sim.ex.map_runs()[0].arn.clone();
    // Without a WriterConfig, as AWS writes them: each child's record.
    let body = sim.request_input("Fan");
    assert_eq!(
        (&body["Bucket"], &body["Prefix"], &body["MapRunArn"]),
        (&json!("out"), &json!("runs"), &json!(arn))
    );
    let second = &body["Results"][1];
    assert_eq!(
        second["ExecutionArn"],
        json!(sim.ex.map_runs()[0].child_arn(1))
    );
    assert_eq!(
        second["StateMachineArn"],
        "arn:aws:states:us-east-1:123456789012:stateMachine:m/Bookings"
    );
    assert_eq!(
        (&second["Input"], &second["Output"], &second["Status"]),
        (&json!("\"b\""), &json!("\"B\""), &json!("SUCCEEDED"))
    );
    assert_eq!(second["InputDetails"], json!({"Included": true}));
    assert!(second["StartDate"].as_str().unwrap().ends_with('Z'));
    assert_eq!(sim.ex.map_runs()[0].results_written, 0, "not yet written");
    sim.succeed("Fan", json!({"Bucket": "out", "Key": "runs/manifest.json"}));
    assert_eq!(
        sim.ex.map_runs()[0].results_written,
        2,
        "DescribeMapRun's resultsWritten"
    );
    assert_eq!(
        sim.ex.output,
        Some(
            json!({"MapRunArn": arn, "ResultWriterDetails": {"Bucket": "out", "Key": "runs/manifest.json"}})
        )
    );
}

#[test]
fn a_reader_that_fails_or_answers_no_items_fails_the_map_with_item_reader_failed_for_its_catch() {
    let machine = |catch: bool| {
        let mut m = reading(
            json!({"Resource": s3("getObject"), "ReaderConfig": {"InputType": "JSON"}}),
            None,
        );
        m["States"]["Fan"]["Retry"] = json!([{"ErrorEquals": ["States.ALL"], "MaxAttempts": 3}]);
        if catch {
            m["States"]["Fan"]["Catch"] =
                json!([{"ErrorEquals": ["States.ItemReaderFailed"], "Next": "Sorry"}]);
            m["States"]["Sorry"] = json!({"Type": "Pass", "End": true});
        }
        m
    };
    let (mut sim, _) = Sim::start(machine(true), json!({}));
    sim.fail_with("Fan", "NoSuchKey", "today.json is missing");
    assert_eq!(sim.ex.status, Status::Succeeded, "caught, not retried");
    assert_eq!(
        sim.ex.output,
        Some(
            json!({"Error": "States.ItemReaderFailed", "Cause": "NoSuchKey: today.json is missing"})
        )
    );

    let (mut sim, _) = Sim::start(machine(false), json!({}));
    sim.succeed("Fan", json!({"Body": "not json"}));
    assert_eq!(sim.ex.status, Status::Failed);
    let error = sim.ex.error.clone().expect("an error");
    assert_eq!(error.error, "States.ItemReaderFailed");
    assert!(error.cause.contains("not JSON"), "{error:?}");
}

#[test]
fn a_reader_must_be_bound_and_its_config_well_formed() {
    let compile = |reader: Value| {
        sagaflow_core::compile_definition(
            &reading(reader, None).to_string(),
            Some("m"),
            &support::resources(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    let unbound = compile(json!({"Resource": "arn:aws:states:::s3:getObject"})).unwrap_err();
    assert!(unbound.contains("no rule of the resource map"), "{unbound}");
    let given = compile(json!({"Resource": s3("g"), "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "GIVEN"}}))
        .unwrap_err();
    assert!(given.contains("CSVHeaders"), "{given}");
    let manifest = compile(json!({"Resource": s3("g"), "ReaderConfig": {"InputType": "MANIFEST"}}))
        .unwrap_err();
    assert!(manifest.contains("InputType"), "{manifest}");
}

#[test]
fn a_writer_that_fails_fails_the_map_run_and_the_map_with_result_writer_failed() {
    let (mut sim, _) = Sim::start(
        reading(
            json!({"Resource": s3("getObject")}),
            Some(json!({"Resource": s3("putObject")})),
        ),
        json!({}),
    );
    sim.succeed("Fan", json!(["a"]));
    sim.succeed("Fan[0]/Book", json!("A"));
    sim.fail_with("Fan", "AccessDenied", "no write access");
    assert_eq!(sim.ex.status, Status::Failed);
    assert_eq!(
        sim.ex.error.as_ref().map(|e| e.error.as_str()),
        Some("States.ResultWriterFailed")
    );
    assert_eq!(sim.ex.map_runs()[0].status, MapRunStatus::Failed);

    // A redrive writes again, without running the item again.
    let fx = sim.feed(Input::Redrive);
    assert_eq!(invoked(&fx), ["Fan#2"]);
    sim.succeed("Fan#2", json!({"Key": "k"}));
    assert_eq!(sim.ex.status, Status::Succeeded);
    assert_eq!(sim.ex.map_runs()[0].status, MapRunStatus::Succeeded);
}

#[test]
fn a_distributed_maps_children_do_not_count_against_the_parents_history_quota() {
    // 50 Task items store 100 events in the parent's log: past a quota of
    // 30, which an inline Map of the same items reaches (asl_run.rs). Each
    // child is an execution of its own on AWS, with its own quota.
    let mut sim = Sim::new(distributed(json!({})));
    sim.plan.limit(sagaflow_core::Limits {
        max_history_events: 30,
    });
    let items: Vec<u32> = (0..50).collect();
    let fx = sim.feed(Input::Start {
        execution_id: "ex-1".into(),
        definition: "m".into(),
        version: 1,
        input: json!(items),
    });
    assert_eq!(invoked(&fx).len(), 50);
    for i in 0..50 {
        sim.succeed(&format!("Fan[{i}]/Book"), json!(i));
    }
    assert_eq!(sim.ex.status, Status::Succeeded);
    assert_eq!(sim.ex.output, Some(json!(items)));
    assert!(sim.history.len() > 100, "{}", sim.history.len());
}

#[test]
fn a_runtime_error_in_a_child_names_the_event_id_in_the_childs_own_history() {
    let mut machine = distributed(json!({}));
    machine["States"]["Fan"]["ItemProcessor"]["States"] = json!({
        "Book": {"Type": "Task", "Resource": lambda("book"), "Next": "Pick"},
        "Pick": {"Type": "Pass", "InputPath": "$.missing", "End": true}
    });
    let (mut sim, _) = Sim::start(machine, json!([{"a": 1}]));
    sim.succeed("Fan[0]/Book", json!({"a": 1}));
    let error = sim.ex.map_runs()[0].items[0]
        .error
        .clone()
        .expect("the child failed");
    assert_eq!(error.error, "States.Runtime");
    // The child's history: ExecutionStarted 1, StateEntered 2,
    // TaskScheduled 3, TaskStarted 4, TaskSucceeded 5, StateExited 6,
    // StateEntered (Pick) 7.
    assert!(
        error.cause.starts_with(
            "An error occurred while executing the state 'Pick' (entered at the event id #7)."
        ),
        "{}",
        error.cause
    );
    let arn = sim.ex.map_runs()[0].arn.clone();
    assert_eq!(child_types(&sim, &arn, 0).unwrap()[6], "StateEntered");
}

#[test]
fn a_writer_config_sends_the_outputs_compact_as_json_lines() {
    let (mut sim, _) = Sim::start(
        reading(
            json!({"Resource": s3("getObject")}),
            Some(json!({
                "Resource": s3("putObject"),
                "WriterConfig": {"OutputType": "JSONL", "Transformation": "COMPACT"}
            })),
        ),
        json!({}),
    );
    sim.succeed("Fan", json!(["a", "b"]));
    sim.succeed("Fan[0]/Book", json!({"n": 1}));
    sim.succeed("Fan[1]/Book", json!([2, 3]));
    assert_eq!(
        sim.request_input("Fan")["Results"],
        json!("{\"n\":1}\n[2,3]\n")
    );
}

#[test]
fn a_writer_config_without_a_resource_makes_the_flattened_outputs_the_maps_result() {
    let (mut sim, _) = Sim::start(
        distributed(json!({"ResultWriter": {"WriterConfig": {"Transformation": "FLATTEN"}}})),
        json!(["a", "b", "c"]),
    );
    sim.succeed("Fan[0]/Book", json!([1, 2]));
    sim.succeed("Fan[1]/Book", json!(3));
    let fx = sim.succeed("Fan[2]/Book", json!([]));
    assert!(invoked(&fx).is_empty(), "no writer call");
    assert_eq!(sim.ex.output, Some(json!([1, 2, 3])));
}

#[test]
fn a_writer_config_is_checked_at_deploy_time() {
    for (writer, wrong) in [
        (
            json!({"WriterConfig": {"Transformation": "SQUASH"}}),
            "Transformation",
        ),
        (
            json!({"WriterConfig": {"OutputType": "XML", "Transformation": "NONE"}}),
            "OutputType",
        ),
        (
            json!({"WriterConfig": {"OutputType": "JSONL"}}),
            "OutputType",
        ),
        (
            json!({"WriterConfig": {"Compression": "GZIP"}}),
            "Compression",
        ),
        (
            json!({"WriterConfig": {}, "Parameters": {"Bucket": "b"}}),
            "Parameters",
        ),
    ] {
        let machine = distributed(json!({ "ResultWriter": writer }));
        let e = sagaflow_core::compile_definition(
            &machine.to_string(),
            Some("m"),
            &support::resources(),
        )
        .expect_err("refused");
        let text = format!("{e}");
        assert!(text.contains(wrong), "{writer}: {text}");
    }
}
