//! The environment a worker gets. Alone in its test binary because it sets
//! variables in the host's own environment, which no other test may race.

mod common;

use serde_json::json;

use common::{call, provided, start};

#[tokio::test]
async fn the_worker_environment_is_lambdas_and_not_the_servers() {
    // Set in the host's own environment: the workers must not inherit them.
    std::env::set_var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true");
    std::env::set_var("AWS_PROFILE", "server-profile");
    let mut f = provided("envfn");
    f.environment.insert("CUSTOM".into(), "yes".into());
    f.environment
        .insert("AWS_LAMBDA_LOG_FORMAT".into(), "json".into());
    let host = start(vec![f], None).await;
    let answer = call(&host, "envfn", json!({"op": "env"})).await;
    let env = &answer["env"];
    let runtime_api = env["AWS_LAMBDA_RUNTIME_API"].as_str().unwrap();
    assert!(runtime_api.starts_with("127.0.0.1:") && !runtime_api.contains('/'));
    assert_eq!(env["AWS_REGION"], "eu-west-3");
    assert_eq!(env["AWS_DEFAULT_REGION"], "eu-west-3");
    assert_eq!(env["AWS_ENDPOINT_URL_LAMBDA"], "http://127.0.0.1:9");
    assert_eq!(env["AWS_ACCESS_KEY_ID"], "AKIDTEST");
    assert_eq!(env["AWS_SECRET_ACCESS_KEY"], "secret-test");
    assert_eq!(env["AWS_SESSION_TOKEN"], "token-test");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "envfn");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(env["PYTHONUNBUFFERED"], "1");
    assert!(env["LAMBDA_TASK_ROOT"]
        .as_str()
        .unwrap()
        .ends_with("fixtures/worker"));
    assert_eq!(env["CUSTOM"], "yes");
    assert_eq!(
        env["AWS_LAMBDA_LOG_FORMAT"], "json",
        "the function's environment wins"
    );
    assert!(env.get("PATH").is_some());
    assert!(env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_none());
    assert!(env.get("AWS_PROFILE").is_none());
    host.shutdown().await;
}
