//! The `travel-services` binary as a parent process sees it: one
//! `listening on http://ADDR` line on stdout, then a graceful stop on SIGTERM.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

use serde_json::json;

fn travel_services(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_travel-services"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts")
}

#[cfg(unix)]
#[tokio::test]
async fn the_binary_announces_its_address_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("travel.db");
    let mut child = travel_services(&["--listen", "127.0.0.1:0", "--db", db.to_str().unwrap()]);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).expect("a line on stdout");
    let base = line
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    let client = reqwest::Client::new();
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let reserved = client
        .post(format!("{base}/hotel/reserve"))
        .header("Idempotency-Key", "k")
        .json(&json!({"trip_id": "t1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reserved.status(), 200);
    drop(client);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = child.wait().expect("the binary exits");
    assert!(status.success(), "{status}");

    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "", "only one line is printed on stdout");
    let rows = travel_services::trip_rows(&db, "t1").unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].sk, "HOTEL#t1");
}

#[test]
fn the_binary_refuses_a_cancel_failure_rate_above_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("travel.db");
    let mut child = travel_services(&[
        "--listen",
        "127.0.0.1:0",
        "--db",
        db.to_str().unwrap(),
        "--cancel-failure-rate",
        "1.5",
    ]);
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();

    assert!(!child.wait().unwrap().success());
    assert_eq!(stdout, "");
}
