//! Configuration: TOML shape and defaults, and the checks of `Host::start`
//! naming the function and the field.

mod common;

use sagaflow_functions::{Host, HostError, RuntimeKind};

use common::{credentials, host_config, provided};

async fn refusal(f: sagaflow_functions::FunctionConfig) -> (String, String) {
    match Host::start(host_config(None), vec![(f, credentials())]).await {
        Err(HostError::InvalidConfig {
            function, field, ..
        }) => (function, field),
        Err(other) => panic!("expected InvalidConfig, got {other}"),
        Ok(_) => panic!("expected InvalidConfig, the host started"),
    }
}

#[test]
fn a_function_table_parses_with_defaults() {
    let f: sagaflow_functions::FunctionConfig = toml::from_str(
        r#"
        name = "orders"
        runtime = "python"
        code = "fn"
        handler = "app.handler"
        [durable]
        "#,
    )
    .unwrap();
    assert_eq!(f.runtime, RuntimeKind::Python);
    assert_eq!((f.timeout_seconds, f.memory_mb, f.workers), (60, 128, 4));
    let d = f.durable.unwrap();
    assert_eq!(
        (d.execution_timeout_seconds, d.retention_days),
        (86_400, 14)
    );
}

#[test]
fn unknown_fields_are_refused() {
    let parsed = toml::from_str::<sagaflow_functions::FunctionConfig>(
        "name = \"a\"\nruntime = \"provided\"\ncode = \".\"\ntimeot_seconds = 3\n",
    );
    assert!(parsed.is_err());
}

#[tokio::test]
async fn invalid_configurations_name_the_function_and_the_field() {
    let mut f = provided("bad name!");
    assert_eq!(refusal(f).await, ("bad name!".into(), "name".into()));

    f = provided("py");
    f.runtime = RuntimeKind::Python;
    assert_eq!(refusal(f).await, ("py".into(), "handler".into()));

    f = provided("nocode");
    f.code = "/definitely/not/here".into();
    assert_eq!(refusal(f).await, ("nocode".into(), "code".into()));

    f = provided("zero");
    f.timeout_seconds = 0;
    assert_eq!(refusal(f).await, ("zero".into(), "timeout_seconds".into()));

    f = provided("noworkers");
    f.workers = 0;
    assert_eq!(refusal(f).await, ("noworkers".into(), "workers".into()));

    f = provided("durable");
    f.durable = Some(sagaflow_functions::DurableConfig {
        execution_timeout_seconds: 60,
        retention_days: 91,
    });
    assert_eq!(
        refusal(f).await,
        ("durable".into(), "durable.retention_days".into())
    );

    f = provided("durable");
    f.durable = Some(sagaflow_functions::DurableConfig {
        execution_timeout_seconds: 0,
        retention_days: 1,
    });
    let (function, field) = refusal(f).await;
    assert_eq!(
        (function.as_str(), field.as_str()),
        ("durable", "durable.execution_timeout_seconds")
    );
}

#[tokio::test]
async fn two_functions_with_one_name_are_refused() {
    let functions = vec![
        (provided("twice"), credentials()),
        (provided("twice"), credentials()),
    ];
    match Host::start(host_config(None), functions).await {
        Err(HostError::InvalidConfig {
            function, field, ..
        }) => {
            assert_eq!((function.as_str(), field.as_str()), ("twice", "name"));
        }
        _ => panic!("expected InvalidConfig"),
    }
}
