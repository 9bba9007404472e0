//! The host against real worker processes: the standard-library Runtime
//! API client of `fixtures/worker` run as a `provided` function.

mod common;

use std::time::Duration;

use sagaflow_functions::{Failure, HostError, Invocation};
use serde_json::json;

use common::{alive, call, invoke, provided, start};

#[tokio::test]
async fn an_echo_round_trips_and_the_worker_is_reused_warm() {
    let host = start(vec![provided("echo")], None).await;
    assert!(
        host.worker_pids("echo").is_empty(),
        "no worker before the first invoke"
    );
    let answer = call(&host, "echo", json!({"op": "echo", "value": {"a": [1, 2]}})).await;
    assert_eq!(answer, json!({"a": [1, 2]}));
    let first = call(&host, "echo", json!({"op": "pid"})).await;
    let second = call(&host, "echo", json!({"op": "pid"})).await;
    assert_eq!(first, second, "the same warm worker answers both");
    assert_eq!(host.worker_pids("echo").len(), 1);
    host.shutdown().await;
}

#[tokio::test]
async fn the_given_request_id_and_the_lambda_headers_reach_the_worker() {
    let host = start(vec![provided("headers")], None).await;
    let payload = json!({"op": "env"}).to_string().into_bytes();
    let answer = host
        .invoke("headers", payload, Some("req-42".into()))
        .await
        .unwrap();
    let Invocation::Response(body) = answer else {
        panic!("expected a response, got {answer:?}")
    };
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let headers = &answer["headers"];
    assert_eq!(headers["lambda-runtime-aws-request-id"], "req-42");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        headers["lambda-runtime-invoked-function-arn"],
        "arn:aws:lambda:eu-west-3:123456789012:function:headers"
    );
    let deadline: u128 = headers["lambda-runtime-deadline-ms"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(deadline > 1_600_000_000_000, "an epoch time in ms");
    assert!(headers["lambda-runtime-trace-id"]
        .as_str()
        .unwrap()
        .starts_with("Root=1-"));
    host.shutdown().await;
}

#[tokio::test]
async fn an_answer_for_an_invocation_the_worker_does_not_hold_is_refused() {
    let host = start(vec![provided("foreign")], None).await;
    assert_eq!(
        call(&host, "foreign", json!({"op": "foreign"})).await,
        json!({"status": 400})
    );
    host.shutdown().await;
}

#[tokio::test]
async fn a_function_error_becomes_a_function_error_with_type_message_and_stack() {
    let host = start(vec![provided("raiser")], None).await;
    match invoke(
        &host,
        "raiser",
        json!({"op": "raise", "message": "no rooms"}),
    )
    .await
    {
        Invocation::FunctionError {
            error_type,
            error_message,
            stack_trace,
            body,
        } => {
            assert_eq!(error_type, "RuntimeError");
            assert_eq!(error_message, "no rooms");
            assert_eq!(stack_trace.len(), 2);
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["errorMessage"], "no rooms");
        }
        other => panic!("expected a function error, got {other:?}"),
    }
    // The worker survives its handler raising.
    assert_eq!(
        call(&host, "raiser", json!({"op": "echo", "value": 1})).await,
        json!(1)
    );
    host.shutdown().await;
}

#[tokio::test]
async fn a_timeout_kills_the_worker_and_the_next_invocation_runs_on_a_fresh_one() {
    let mut f = provided("sleepy");
    f.timeout_seconds = 1;
    let host = start(vec![f], None).await;
    let before = call(&host, "sleepy", json!({"op": "pid"})).await["pid"]
        .as_u64()
        .unwrap();
    match invoke(&host, "sleepy", json!({"op": "sleep", "seconds": 30})).await {
        Invocation::Failed(Failure::TimedOut { after }) => {
            assert_eq!(after, Duration::from_secs(1))
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    let after = call(&host, "sleepy", json!({"op": "pid"})).await["pid"]
        .as_u64()
        .unwrap();
    assert_ne!(before, after, "a fresh worker");
    assert!(!alive(before), "the timed-out worker is gone");
    host.shutdown().await;
}

#[tokio::test]
async fn a_worker_exiting_mid_invocation_fails_that_invocation_only() {
    let host = start(vec![provided("crashy")], None).await;
    match invoke(&host, "crashy", json!({"op": "exit", "code": 7})).await {
        Invocation::Failed(Failure::Crashed { status }) => {
            assert!(status.contains('7'), "{status}")
        }
        other => panic!("expected a crash, got {other:?}"),
    }
    match invoke(&host, "crashy", json!({"op": "sigkill"})).await {
        Invocation::Failed(Failure::Crashed { status }) => {
            assert!(status.contains("signal"), "{status}")
        }
        other => panic!("expected a crash, got {other:?}"),
    }
    assert_eq!(
        call(&host, "crashy", json!({"op": "echo", "value": "ok"})).await,
        json!("ok")
    );
    host.shutdown().await;
}

#[tokio::test]
async fn two_workers_serve_two_slow_invocations_at_once_and_a_third_queues() {
    let mut f = provided("pair");
    f.workers = 2;
    let host = start(vec![f], None).await;
    let slow = json!({"op": "sleep", "seconds": 1});
    let (a, b, c) = tokio::join!(
        call(&host, "pair", slow.clone()),
        call(&host, "pair", slow.clone()),
        call(&host, "pair", slow.clone()),
    );
    let mut pids: Vec<u64> = [&a, &b, &c]
        .iter()
        .map(|v| v["pid"].as_u64().unwrap())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(
        pids.len(),
        2,
        "two workers shared three invocations: {pids:?}"
    );
    assert_eq!(
        host.worker_pids("pair").len(),
        2,
        "never more than `workers`"
    );
    host.shutdown().await;
}

#[tokio::test]
async fn a_slow_function_does_not_stall_another_function() {
    let host = start(vec![provided("slowfn"), provided("fastfn")], None).await;
    let slow = invoke(&host, "slowfn", json!({"op": "sleep", "seconds": 30}));
    let fast = call(&host, "fastfn", json!({"op": "echo", "value": "fast"}));
    tokio::select! {
        answer = fast => assert_eq!(answer, json!("fast")),
        _ = slow => panic!("the slow invocation finished first"),
    }
    host.shutdown().await;
}

#[tokio::test]
async fn an_unknown_function_is_an_error() {
    let host = start(vec![provided("known")], None).await;
    match host.invoke("unknown", b"{}".to_vec(), None).await {
        Err(HostError::UnknownFunction(name)) => assert_eq!(name, "unknown"),
        other => panic!("expected UnknownFunction, got {other:?}"),
    }
    assert!(host.function("known").is_some() && host.function("unknown").is_none());
    assert_eq!(
        host.functions()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        ["known"]
    );
}

#[tokio::test]
async fn an_init_error_is_reported_to_the_waiting_invocation() {
    let mut f = provided("initfail");
    f.environment
        .insert("FIXTURE_INIT_ERROR".into(), "1".into());
    let host = start(vec![f], None).await;
    match invoke(&host, "initfail", json!({"op": "echo"})).await {
        Invocation::Failed(Failure::InitError {
            error_type,
            error_message,
        }) => {
            assert_eq!(error_type, "Runtime.FixtureInit");
            assert_eq!(error_message, "asked to fail");
        }
        other => panic!("expected an init error, got {other:?}"),
    }
    host.shutdown().await;
}

#[tokio::test]
async fn a_missing_bootstrap_is_an_init_error_not_a_hang() {
    let mut f = provided("nobootstrap");
    f.handler = Some("does-not-exist".into());
    let host = start(vec![f], None).await;
    match invoke(&host, "nobootstrap", json!({})).await {
        Invocation::Failed(Failure::InitError { error_type, .. }) => {
            assert_eq!(error_type, "Runtime.InvalidEntrypoint");
        }
        other => panic!("expected an init error, got {other:?}"),
    }
}

#[tokio::test]
async fn worker_output_lands_in_the_function_log_file() {
    let dir = tempfile::tempdir().unwrap();
    let host = start(vec![provided("logger")], Some(dir.path().to_path_buf())).await;
    let pid = call(&host, "logger", json!({"op": "pid"})).await["pid"]
        .as_u64()
        .unwrap();
    let printed = json!({"op": "print", "stdout": "to stdout 123", "stderr": "to stderr 456"});
    assert_eq!(call(&host, "logger", printed).await, json!("printed"));
    // Shutdown reaps the worker, after which its readers have drained.
    host.shutdown().await;
    let log = std::fs::read_to_string(dir.path().join("logger.log")).unwrap();
    assert!(
        log.contains(&format!("pid={pid} stdout: to stdout 123")),
        "{log}"
    );
    assert!(
        log.contains(&format!("pid={pid} stderr: to stderr 456")),
        "{log}"
    );
}

#[tokio::test]
async fn shutdown_kills_the_workers_and_refuses_later_invocations() {
    let host = start(vec![provided("idler"), provided("worker")], None).await;
    let idle = call(&host, "idler", json!({"op": "pid"})).await["pid"]
        .as_u64()
        .unwrap();
    let busy = tokio::spawn({
        let host = host.clone();
        async move { common::invoke(&host, "worker", json!({"op": "sleep", "seconds": 30})).await }
    });
    // The busy worker is spawned by its invocation: wait until it exists.
    while host.worker_pids("worker").is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let busy_pid = u64::from(host.worker_pids("worker")[0]);
    host.shutdown().await;
    assert!(!alive(idle), "the idle worker {idle} is still alive");
    assert!(
        !alive(busy_pid),
        "the busy worker {busy_pid} is still alive"
    );
    assert!(matches!(
        busy.await.unwrap(),
        Invocation::Failed(Failure::Crashed { .. })
    ));
    assert!(matches!(
        host.invoke("idler", b"{}".to_vec(), None).await,
        Err(HostError::ShutDown)
    ));
}

#[tokio::test]
async fn a_worker_dying_while_idle_is_replaced_on_the_next_invocation() {
    let host = start(vec![provided("fragile")], None).await;
    let first = call(&host, "fragile", json!({"op": "pid"})).await["pid"]
        .as_u64()
        .unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // Until the death is seen the invocation may go to the dying worker's
    // `/next`; it must then be answered as a crash, never lost.
    let second = loop {
        match invoke(&host, "fragile", json!({"op": "pid"})).await {
            Invocation::Response(body) => {
                break serde_json::from_slice::<serde_json::Value>(&body).unwrap()
            }
            Invocation::Failed(Failure::Crashed { .. }) => continue,
            other => panic!("expected a response or a crash, got {other:?}"),
        }
    };
    assert_ne!(second["pid"].as_u64().unwrap(), first);
    host.shutdown().await;
}
