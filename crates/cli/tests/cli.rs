//! The `sagaflow` client commands against a real server process: exit codes,
//! data on stdout (a table, or JSON with `--json`), messages on stderr.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{example, free_port, run, sagaflow, start_server, Proc, Travel};
use serde_json::{json, Value};
use tempfile::TempDir;

/// What a finished `sagaflow` command did.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    shown: String,
}

impl Ran {
    fn from(shown: String, out: Output) -> Ran {
        Ran {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            shown,
        }
    }

    fn context(&self) -> String {
        format!(
            "`sagaflow {}` exited {:?}\n--- stdout\n{}--- stderr\n{}",
            self.shown, self.code, self.stdout, self.stderr
        )
    }

    /// Asserts the command succeeded; returns it for more checks.
    fn succeeds(self) -> Ran {
        assert_eq!(self.code, Some(0), "{}", self.context());
        self
    }

    /// Asserts the command failed (non-zero) and said `what` on stderr.
    fn fails_saying(self, what: &str) -> Ran {
        assert!(
            self.code.is_some_and(|c| c != 0),
            "it fails: {}",
            self.context()
        );
        assert!(
            self.stderr.contains(what),
            "stderr says `{what}`: {}",
            self.context()
        );
        self
    }

    /// `start --wait`: exits 0 if the execution succeeded, 3 if it finished
    /// otherwise (compensated, failed, cancelled), 4 if it is still running.
    fn tells_the_outcome_by_its_exit_code(self) -> Ran {
        let status = self.json()["status"].as_str().unwrap_or("").to_string();
        let expected = match status.as_str() {
            "succeeded" => 0,
            "running" | "compensating" => 4,
            _ => 3,
        };
        assert_eq!(
            self.code,
            Some(expected),
            "exit code for `{status}`: {}",
            self.context()
        );
        self
    }

    /// Stdout parsed as one JSON document.
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is JSON ({e}): {}", self.context()))
    }
}

/// Runs `sagaflow ARGS` (no `SAGAFLOW_*` variable inherited) with extra environment.
fn sagaflow_env(args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut cmd = sagaflow();
    cmd.args(args).current_dir(std::env::temp_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Ran::from(args.join(" "), run(cmd, Duration::from_secs(120)))
}

fn sagaflow_cmd(args: &[&str]) -> Ran {
    sagaflow_env(args, &[])
}

fn path(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

/// Travel services and a server with the travel saga deployed.
struct Stack {
    _dir: TempDir,
    _travel: Travel,
    server: Proc,
}

impl Stack {
    fn start(confirm_failures: u32) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let travel = Travel::start(dir.path(), 0.0, confirm_failures);
        let server = start_server(&dir.path().join("sagaflow"), travel.url(), &[]);
        let stack = Stack {
            _dir: dir,
            _travel: travel,
            server,
        };
        stack
            .sagaflow(&["deploy", path(&example("travel-saga.yaml"))])
            .succeeds();
        stack
    }

    /// Runs `sagaflow ARGS --server URL`.
    fn sagaflow(&self, args: &[&str]) -> Ran {
        let mut all = args.to_vec();
        all.extend(["--server", &self.server.url]);
        sagaflow_cmd(&all)
    }

    /// Starts a trip and waits for its end; returns the execution.
    fn trip(&self, id: &str, run_type: &str) -> Value {
        let input = format!(r#"{{"trip_id":"{id}","run_type":"{run_type}"}}"#);
        self.sagaflow(&[
            "start",
            "trip-booking",
            "--input",
            &input,
            "--id",
            id,
            "--wait",
            "60",
            "--json",
        ])
        .tells_the_outcome_by_its_exit_code()
        .json()
    }
}

#[test]
fn validate_accepts_the_travel_saga() {
    let saga = example("travel-saga.yaml");
    let ran = sagaflow_cmd(&["validate", path(&saga)]).succeeds();
    assert!(
        ran.stdout
            .contains("valid saga `trip-booking` with 7 steps"),
        "{}",
        ran.context()
    );

    let v = sagaflow_cmd(&["validate", path(&saga), "--json"])
        .succeeds()
        .json();
    assert_eq!(v["valid"], true);
    assert_eq!(v["name"], "trip-booking");
}

#[test]
fn explain_tables_every_steps_failure_path_of_the_travel_saga() {
    let saga = example("travel-saga.yaml");
    let ran = sagaflow_cmd(&["explain", path(&saga)]).succeeds();
    let row = ran
        .stdout
        .lines()
        .find(|l| l.starts_with("take_payment "))
        .unwrap_or_else(|| panic!("a row for the payment: {}", ran.context()));
    assert!(
        row.contains("compensated") && row.contains("reserve_car → reserve_flight → reserve_hotel"),
        "{row}"
    );
    let confirm = ran
        .stdout
        .lines()
        .find(|l| l.starts_with("confirm_hotel "))
        .unwrap_or_else(|| panic!("a row for a confirmation: {}", ran.context()));
    assert!(confirm.contains("retried forward, no limit"), "{confirm}");
}

#[test]
fn explain_shows_one_failure_path_as_text_and_json() {
    let saga = example("travel-saga.yaml");
    let ran = sagaflow_cmd(&[
        "explain",
        path(&saga),
        "--fail",
        "take_payment:States.Timeout",
    ])
    .succeeds();
    assert!(
        ran.stdout.contains("Ends: failed.") && ran.stdout.contains("Takes at most 15.3 s."),
        "a pivot that keeps timing out stops for a human after its three 5 s attempts: {}",
        ran.context()
    );
    let v = sagaflow_cmd(&[
        "explain",
        path(&saga),
        "--fail",
        "reserve_car:NoCar",
        "--json",
    ])
    .succeeds()
    .json();
    assert_eq!(v["end"]["status"], "compensated");
    assert_eq!(v["compensated"], json!(["reserve_flight", "reserve_hotel"]));
    sagaflow_cmd(&["explain", path(&saga), "--fail", "reserve_cat"])
        .fails_saying("no step of that name runs in trip-booking");
}

#[test]
fn explain_names_the_catch_that_handles_a_machines_failure() {
    let cdk =
        example("step-functions/saga/cdk-patterns--the-saga-stepfunction--single-table.asl.json");
    let ran = sagaflow_cmd(&["explain", path(&cdk), "--fail", "TakePayment"]).succeeds();
    assert!(
        ran.stdout
            .contains("Catch: {\"ErrorEquals\":[\"States.ALL\"],\"ResultPath\":\"$.TakePaymentError\",\"Next\":\"RefundPayment\"")
            && ran.stdout.contains(
                "Then runs: RefundPayment → CancelFlightReservation → CancelHotelReservation."
            ),
        "{}",
        ran.context()
    );
}

#[test]
fn validate_accepts_the_step_functions_sagas_and_locates_asl_problems() {
    let humank = example("step-functions/saga/humank--lambda-saga-pattern--stepfunc.asl.json");
    let ran = sagaflow_cmd(&["validate", path(&humank)]).succeeds();
    assert!(
        ran.stdout.contains("valid Amazon States Language machine"),
        "{}",
        ran.context()
    );
    let v = sagaflow_cmd(&["validate", path(&humank), "--json"])
        .succeeds()
        .json();
    assert_eq!(v["format"], "asl");

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.asl.json");
    std::fs::write(
        &broken,
        r#"{"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:f", "Next": "Missing"}}}"#,
    )
    .unwrap();
    let ran = sagaflow_cmd(&["validate", path(&broken)]);
    assert_eq!(ran.code, Some(1), "{}", ran.context());
    assert!(
        ran.stdout.contains("/States/A/Next"),
        "the problem is located: {}",
        ran.context()
    );
}

#[test]
fn validate_lists_every_problem_of_a_broken_file_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        r#"name: broken
steps:
  - name: a
    action: { http: { url: "ftp://nowhere" } }
  - name: b
"#,
    )
    .unwrap();

    let ran = sagaflow_cmd(&["validate", path(&broken)]);
    assert_eq!(
        ran.code,
        Some(1),
        "an invalid file exits 1: {}",
        ran.context()
    );
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert!(
        lines.len() >= 2,
        "every problem is listed: {}",
        ran.context()
    );
    for line in &lines {
        let parts: Vec<&str> = line.splitn(3, ": ").collect();
        assert_eq!(parts.len(), 3, "`{line}` reads `location: code: message`");
        assert!(
            parts[0].starts_with("steps["),
            "`{line}` starts with a location"
        );
        assert!(!parts[1].contains(' '), "`{line}` has a code second");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("steps[0].action.http.url: invalid_url: ")),
        "{}",
        ran.context()
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("steps[1].action: missing_field: ")),
        "{}",
        ran.context()
    );

    let ran = sagaflow_cmd(&["validate", path(&broken), "--json"]);
    assert_eq!(ran.code, Some(1), "{}", ran.context());
    let v = ran.json();
    assert_eq!(v["valid"], false);
    let violations = v["violations"].as_array().expect("violations are a list");
    assert_eq!(
        violations.len(),
        lines.len(),
        "the JSON lists the same problems"
    );
    assert!(violations
        .iter()
        .all(|v| v["code"].is_string() && v["location"].is_string() && v["message"].is_string()));
    assert!(violations
        .iter()
        .any(|v| v["code"] == "missing_field" && v["location"] == "steps[1].action"));
}

#[test]
fn validate_refuses_a_hostile_deeply_nested_file_quickly_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let deep = dir.path().join("deep.yaml");
    std::fs::write(
        &deep,
        format!("name: deep\nsteps: {}", "[".repeat(1_000_000)),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let ran = sagaflow_cmd(&["validate", path(&deep)]);
    assert_eq!(ran.code, Some(1), "{}", ran.context());
    let said = format!("{}{}", ran.stdout, ran.stderr);
    assert!(said.contains("nesting_too_deep"), "{}", ran.context());
    assert!(said.contains("at most 100"), "{}", ran.context());
    // Generous: the process start is included; the defect took minutes.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn deploy_says_what_it_did_on_stderr_and_an_unchanged_file_stays_unchanged() {
    let stack = Stack::start(2); // deploys once
    let saga = example("travel-saga.yaml");

    let again = stack.sagaflow(&["deploy", path(&saga)]).succeeds();
    assert_eq!(again.stdout, "", "without --json, deploy prints no data");
    assert!(
        again.stderr.contains("unchanged (version 1)"),
        "{}",
        again.context()
    );

    let v = stack
        .sagaflow(&["deploy", path(&saga), "--json"])
        .succeeds()
        .json();
    assert_eq!(v["name"], "trip-booking");
    assert_eq!(v["created"], false);

    // --name names a document that has none; it cannot rename one that has.
    stack
        .sagaflow(&["deploy", path(&saga), "--name", "trip-booking-2"])
        .fails_saying("name_mismatch");
    let dir = tempfile::tempdir().unwrap();
    let nameless = dir.path().join("nameless.yaml");
    std::fs::write(
        &nameless,
        common::TRAVEL_SAGA.replace("name: trip-booking\n", ""),
    )
    .unwrap();
    stack
        .sagaflow(&["deploy", path(&nameless)])
        .fails_saying("pass --name");
    let named = stack
        .sagaflow(&["deploy", path(&nameless), "--name", "trip-booking-2"])
        .succeeds();
    assert_eq!(named.stdout, "");
    assert!(
        named.stderr.contains("deployed `trip-booking-2` version 1"),
        "{}",
        named.context()
    );
}

#[test]
fn start_takes_its_input_from_a_file_or_inline_json_and_waits_for_the_end() {
    let stack = Stack::start(2);

    let ex = stack
        .sagaflow(&[
            "start",
            "trip-booking",
            "--input",
            path(&example("trip-success.json")),
            "--id",
            "from-file",
            "--wait",
            "30",
            "--json",
        ])
        .succeeds()
        .json();
    assert_eq!(ex["id"], "from-file");
    assert_eq!(ex["status"], "succeeded", "{ex}");
    assert_eq!(
        ex["input"]["hotel"], "holiday inn",
        "the input is the file's"
    );

    let ex = stack
        .sagaflow(&[
            "start",
            "trip-booking",
            "--input",
            r#"{"trip_id":"t"}"#,
            "--id",
            "inline",
            "--wait",
            "30",
            "--json",
        ])
        .succeeds()
        .json();
    assert_eq!(ex["status"], "succeeded", "{ex}");
    assert_eq!(ex["input"], serde_json::json!({ "trip_id": "t" }));

    // Without --json: a table on stdout.
    let table = stack.sagaflow(&[
        "start",
        "trip-booking",
        "--input",
        r#"{"trip_id":"table","run_type":"failPayment"}"#,
        "--wait",
        "30",
    ]);
    assert_eq!(
        table.code,
        Some(3),
        "a finished but not succeeded execution exits 3: {}",
        table.context()
    );
    let status_line = table
        .stdout
        .lines()
        .find(|l| l.starts_with("status"))
        .unwrap_or_else(|| panic!("a status row: {}", table.context()));
    assert!(status_line.ends_with("compensated"), "{}", table.context());

    // An input that is neither JSON nor a JSON file is refused before anything starts.
    stack
        .sagaflow(&["start", "trip-booking", "--input", "{not json"])
        .fails_saying("--input is not valid JSON");
    stack
        .sagaflow(&["start", "trip-booking", "--input", "no-such-file.json"])
        .fails_saying("neither JSON nor a readable file");
    let dir = tempfile::tempdir().unwrap();
    let not_json = dir.path().join("trip.json");
    std::fs::write(&not_json, "trip_id: yaml").unwrap();
    stack
        .sagaflow(&["start", "trip-booking", "--input", path(&not_json)])
        .fails_saying("does not hold valid JSON");
    let listed = stack.sagaflow(&["list", "--json"]).succeeds().json();
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(3),
        "only the three good starts ran: {listed}"
    );
}

#[test]
fn list_show_and_history_print_tables_or_json() {
    let stack = Stack::start(2);
    assert_eq!(stack.trip("ok-1", "success")["status"], "succeeded");
    assert_eq!(
        stack.trip("rolled-back-1", "failCarReservation")["status"],
        "compensated"
    );

    let all = stack.sagaflow(&["list", "--json"]).succeeds().json();
    let ids: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert!(
        ids.contains(&"ok-1") && ids.contains(&"rolled-back-1"),
        "{all}"
    );

    let succeeded = stack
        .sagaflow(&["list", "--status", "succeeded", "--json"])
        .succeeds()
        .json();
    let items = succeeded["items"].as_array().unwrap();
    assert!(
        items.iter().all(|e| e["status"] == "succeeded"),
        "{succeeded}"
    );
    assert!(items.iter().any(|e| e["id"] == "ok-1"), "{succeeded}");

    let table = stack
        .sagaflow(&["list", "--status", "succeeded"])
        .succeeds();
    assert!(
        table.stdout.starts_with("ID"),
        "a table with a header: {}",
        table.context()
    );
    assert!(
        table.stdout.contains("ok-1") && !table.stdout.contains("rolled-back-1"),
        "{}",
        table.context()
    );

    let shown = stack
        .sagaflow(&["show", "rolled-back-1", "--json"])
        .succeeds()
        .json();
    assert_eq!(shown["status"], "compensated");
    assert_eq!(shown["definition"], "trip-booking");

    let history = stack
        .sagaflow(&["history", "rolled-back-1", "--json"])
        .succeeds()
        .json();
    let types: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(types.first(), Some(&"execution_started"));
    assert_eq!(types.last(), Some(&"execution_finished"));
    assert!(types.contains(&"compensation_succeeded"), "{types:?}");

    let text = stack.sagaflow(&["history", "rolled-back-1"]).succeeds();
    assert!(
        text.stdout
            .lines()
            .last()
            .is_some_and(|l| l.ends_with("finished: compensated")),
        "{}",
        text.context()
    );
}

#[test]
fn history_follow_prints_events_until_the_execution_finishes() {
    // Confirmations fail 4 times before succeeding: the execution takes a while.
    let stack = Stack::start(4);
    let input = r#"{"trip_id":"slow","run_type":"failHotelConfirmation"}"#;
    stack
        .sagaflow(&["start", "trip-booking", "--input", input, "--id", "slow"])
        .succeeds();

    let followed = stack.sagaflow(&["history", "slow", "--follow"]).succeeds();
    let lines: Vec<&str> = followed.stdout.lines().collect();
    assert!(
        lines
            .first()
            .is_some_and(|l| l.contains("started trip-booking")),
        "{}",
        followed.context()
    );
    assert!(
        lines
            .last()
            .is_some_and(|l| l.ends_with("finished: succeeded")),
        "{}",
        followed.context()
    );
    let seqs: Vec<u64> = lines
        .iter()
        .map(|l| {
            l.split_whitespace()
                .next()
                .unwrap()
                .parse()
                .expect("each line starts with its seq")
        })
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "no event is printed twice: {seqs:?}"
    );
    assert_eq!(
        stack
            .sagaflow(&["show", "slow", "--json"])
            .succeeds()
            .json()["status"],
        "succeeded"
    );

    // With --json, one event per line.
    let input = r#"{"trip_id":"slow-json","run_type":"failFlightsConfirmation"}"#;
    stack
        .sagaflow(&[
            "start",
            "trip-booking",
            "--input",
            input,
            "--id",
            "slow-json",
        ])
        .succeeds();
    let followed = stack
        .sagaflow(&["history", "slow-json", "--follow", "--json"])
        .succeeds();
    let events: Vec<Value> = followed
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is a JSON event"))
        .collect();
    assert_eq!(
        events.last().map(|e| e["type"].clone()),
        Some(Value::from("execution_finished")),
        "{}",
        followed.context()
    );
}

#[test]
fn history_prints_every_event_of_a_history_longer_than_one_page() {
    let stack = Stack::start(0);
    // An ASL Map of 2,500 Waits of 0 seconds: 2,502 events, three pages.
    let dir = tempfile::tempdir().unwrap();
    let machine = dir.path().join("long.asl.json");
    std::fs::write(
        &machine,
        r#"{"StartAt": "M", "States": {"M": {
            "Type": "Map", "ItemsPath": "$.items", "End": true,
            "ItemProcessor": {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 0, "End": true}}}
        }}}"#,
    )
    .unwrap();
    stack
        .sagaflow(&["deploy", path(&machine), "--name", "long"])
        .succeeds();
    let items: Vec<u32> = (0..2500).collect();
    let input = serde_json::json!({ "items": items }).to_string();
    let done = stack
        .sagaflow(&[
            "start", "long", "--input", &input, "--id", "long-1", "--wait", "60", "--json",
        ])
        .succeeds()
        .json();
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["events"], 2502);

    let text = stack.sagaflow(&["history", "long-1"]).succeeds();
    let seqs: Vec<u64> = text
        .stdout
        .lines()
        .map(|l| {
            l.split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .expect("each line starts with its seq")
        })
        .collect();
    assert_eq!(seqs, (1..=2502).collect::<Vec<u64>>(), "{}", text.context());

    let json = stack
        .sagaflow(&["history", "long-1", "--json"])
        .succeeds()
        .json();
    let events = json["events"].as_array().expect("events");
    assert_eq!(events.len(), 2502);
    assert_eq!(events.last().unwrap()["type"], "execution_finished");
    assert!(json["next_cursor"].is_null(), "{}", json["next_cursor"]);
}

#[test]
fn finished_or_unknown_executions_are_refused_with_the_error_code_on_stderr() {
    let stack = Stack::start(2);
    assert_eq!(stack.trip("done", "success")["status"], "succeeded");

    let cancel = stack
        .sagaflow(&["cancel", "done", "--reason", "too late"])
        .fails_saying("execution_finished");
    assert_eq!(cancel.stdout, "");
    let redrive = stack
        .sagaflow(&["redrive", "done"])
        .fails_saying("not_redrivable");
    assert_eq!(redrive.stdout, "");
    let unknown = stack
        .sagaflow(&["show", "no-such-execution"])
        .fails_saying("execution_not_found");
    assert_eq!(unknown.stdout, "");
    stack
        .sagaflow(&["history", "no-such-execution"])
        .fails_saying("execution_not_found");
    stack
        .sagaflow(&["start", "no-such-definition"])
        .fails_saying("definition_not_found");
}

#[test]
fn the_server_is_found_through_the_flag_or_the_environment() {
    let stack = Stack::start(2);
    let url = stack.server.url.as_str();
    sagaflow_env(&["list"], &[("SAGAFLOW_SERVER", url)]).succeeds();
    // The flag wins over the environment.
    let dead = format!("http://127.0.0.1:{}", free_port());
    sagaflow_env(&["list", "--server", url], &[("SAGAFLOW_SERVER", &dead)]).succeeds();
    sagaflow_env(&["list"], &[("SAGAFLOW_SERVER", &dead)]).fails_saying(&dead);
}

#[test]
fn commands_against_a_server_that_is_not_running_fail_with_a_clear_message() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let saga = example("travel-saga.yaml");
    for args in [
        vec!["list"],
        vec!["show", "x"],
        vec!["deploy", path(&saga)],
        vec!["start", "trip-booking"],
    ] {
        let mut all = args.clone();
        all.extend(["--server", &dead]);
        let ran = sagaflow_cmd(&all).fails_saying(&format!("cannot reach the server at {dead}"));
        assert!(
            ran.stderr.contains("is `sagaflow server` running?"),
            "{}",
            ran.context()
        );
        assert_eq!(ran.stdout, "");
    }
}

#[test]
fn a_server_with_an_auth_token_only_serves_clients_that_present_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), "http://127.0.0.1:9", &["--auth-token", "T0ken"]);
    let url = server.url.as_str();

    sagaflow_cmd(&["list", "--server", url]).fails_saying("missing_token");
    sagaflow_cmd(&["list", "--server", url, "--token", "wrong"]).fails_saying("invalid_token");
    sagaflow_cmd(&["list", "--server", url, "--token", "T0ken"]).succeeds();
    sagaflow_env(&["list", "--server", url], &[("SAGAFLOW_TOKEN", "T0ken")]).succeeds();
}

#[test]
fn demo_runs_every_scenario_and_exits_0() {
    let ran = sagaflow_cmd(&["demo"]).succeeds();
    assert!(
        ran.stdout
            .contains("All 7 scenarios ended as the saga promises."),
        "{}",
        ran.context()
    );
}

#[test]
fn a_hook_that_cannot_be_reached_leaves_a_dead_letter_that_the_cli_lists_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let travel = Travel::start(dir.path(), 0.0, 0);
    // Nothing listens there: every delivery is refused.
    let config = dir.path().join("sagaflow.toml");
    std::fs::write(
        &config,
        format!(
            "[hook]\nurl = \"http://127.0.0.1:{}/hook\"\nmax_attempts = 1\n",
            free_port()
        ),
    )
    .unwrap();
    let server = start_server(
        &dir.path().join("sagaflow"),
        travel.url(),
        &["--config", path(&config)],
    );
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--server", &server.url]);
        sagaflow_cmd(&all)
    };
    cli(&["deploy", path(&example("travel-saga.yaml"))]).succeeds();
    let ex = cli(&[
        "start",
        "trip-booking",
        "--input",
        r#"{"trip_id":"dl","run_type":"failPayment"}"#,
        "--id",
        "dead-letter-trip",
        "--wait",
        "30",
        "--json",
    ])
    .tells_the_outcome_by_its_exit_code()
    .json();
    assert_eq!(ex["status"], "compensated", "{ex}");

    let dead_letters = |min_id: u64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let listed = cli(&["dead-letters", "--json"]).succeeds().json();
            let found: Vec<Value> = listed["dead_letters"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|d| d["id"].as_u64().is_some_and(|id| id > min_id))
                .collect();
            if !found.is_empty() {
                return found;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "a dead letter appears: {listed}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let first = dead_letters(0);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0]["execution_id"], "dead-letter-trip");
    assert_eq!(first[0]["event"], "execution.compensated");
    let table = cli(&["dead-letters"]).succeeds();
    assert!(
        table.stdout.contains("dead-letter-trip") && table.stdout.contains("unreachable"),
        "{}",
        table.context()
    );

    let id = first[0]["id"].as_u64().unwrap();
    let replayed = cli(&["dead-letters", "replay", &id.to_string()]).succeeds();
    assert!(
        replayed.stdout.contains("pending again"),
        "{}",
        replayed.context()
    );
    // Delivered again — and, the hook being still unreachable, dead again
    // under the new notification's id.
    let again = dead_letters(id);
    assert_eq!(again[0]["execution_id"], "dead-letter-trip");
    cli(&["dead-letters", "replay", "999999"]).fails_saying("dead_letter_not_found");
}
