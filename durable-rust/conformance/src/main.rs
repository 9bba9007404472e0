//! `bootstrap`: one custom-runtime executable serving every conformance
//! handler. Sagaflow's function host starts it with
//! `AWS_LAMBDA_FUNCTION_NAME` set; the name (`conf-step-1-1`, …) picks the
//! handler, and the official SDK (`aws_durable_execution_sdk::run`) drives it
//! through the Lambda Runtime API exactly as it would on AWS.
//!
//! `bootstrap --list` prints every function it serves, one per line as
//! `NAME durable|plain`, which is how the harness writes the server's
//! `[[lambda.functions]]` without a second list to keep in step.

mod callback;
mod child;
mod invoke;
mod map;
mod parallel;
mod plugin;
mod sagaflow;
mod step;
mod support;
mod wait;
mod wait_for_callback;
mod wait_for_condition;

use support::Function;

/// A category's `functions()`: its cases (and helper functions) by name.
type Category = fn() -> Vec<(&'static str, Function)>;

/// Every category's functions, in the order `--list` prints them.
fn catalogue() -> Vec<(String, Function)> {
    let categories: [(&str, Category); 11] = [
        ("step", step::functions),
        ("wait", wait::functions),
        ("callback", callback::functions),
        ("invoke", invoke::functions),
        ("child", child::functions),
        ("parallel", parallel::functions),
        ("map", map::functions),
        ("wait_for_callback", wait_for_callback::functions),
        ("wait_for_condition", wait_for_condition::functions),
        ("plugin", plugin::functions),
        ("sagaflow", sagaflow::functions),
    ];
    categories
        .into_iter()
        .flat_map(|(category, functions)| {
            functions()
                .into_iter()
                .map(move |(name, function)| (support::function_name(category, name), function))
        })
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    if std::env::args().nth(1).as_deref() == Some("--list") {
        for (name, function) in catalogue() {
            println!("{name} {}", function.kind());
        }
        return Ok(());
    }
    let name = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
        .map_err(|_| "AWS_LAMBDA_FUNCTION_NAME is not set: run me as a Lambda function")?;
    let Some((_, function)) = catalogue().into_iter().find(|(served, _)| *served == name) else {
        return Err(
            format!("no conformance handler is named {name:?} (see `bootstrap --list`)").into(),
        );
    };
    // The plugin cases' plugins are a `tracing` layer (see plugin.rs); the
    // other handlers log (`tracing::info!`, the step logger of cases like
    // step 1.7) through Lambda's default subscriber, as on AWS.
    if !plugin::install(&name) {
        lambda_runtime::tracing::init_default_subscriber();
    }
    function.run().await
}
