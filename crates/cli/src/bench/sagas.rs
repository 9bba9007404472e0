//! The sagas the benchmark runs, derived from `examples/travel-saga.yaml`.

use anyhow::Context;
use serde_yaml::Value;

/// The name of the in-process handler every rewritten participant calls.
pub const NOOP: &str = "noop";

/// The steps before the pivot of the travel saga: where `rollback` fails.
pub const TRAVEL_COMPENSATABLE: &[&str] = &["reserve_hotel", "reserve_flight", "reserve_car"];

/// The travel saga (7 steps: three reservations with compensations, the
/// payment pivot, three confirmations in parallel) with every
/// `http: {url: …}` participant replaced by the in-process `handler: noop`,
/// registered as `name`. Retry policies and timeouts are kept.
pub fn travel_in_process(name: &str) -> anyhow::Result<String> {
    let mut doc: Value =
        serde_yaml::from_str(crate::demo::TRAVEL_SAGA).context("parsing the travel saga")?;
    replace_http(&mut doc);
    doc["name"] = Value::from(name);
    serde_yaml::to_string(&doc).context("writing the in-process travel saga")
}

fn replace_http(v: &mut Value) {
    match v {
        Value::Mapping(m) => {
            if m.remove("http").is_some() {
                m.insert(Value::from("handler"), Value::from(NOOP));
            }
            for (_, child) in m.iter_mut() {
                replace_http(child);
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(replace_http),
        _ => {}
    }
}

/// The former `sagaflow bench` saga: `steps` sequential steps `s0, s1, …`,
/// each with a compensation, no pivot.
pub fn linear(name: &str, steps: usize) -> String {
    let mut yaml = format!("name: {name}\nsteps:\n");
    for i in 0..steps {
        yaml.push_str(&format!(
            "  - name: s{i}\n    action: {{ handler: {NOOP} }}\n    compensation: {{ handler: {NOOP} }}\n"
        ));
    }
    yaml
}

/// The step names of [`linear`].
pub fn linear_steps(steps: usize) -> Vec<String> {
    (0..steps).map(|i| format!("s{i}")).collect()
}

/// The parked workload's saga: its second step is a callback task whose
/// handler (`park`) hands the task token to the benchmark, and waits for it
/// for up to an hour.
pub fn parked(name: &str) -> String {
    format!(
        "name: {name}
steps:
  - name: reserve
    action: {{ handler: {NOOP} }}
    compensation: {{ handler: {NOOP} }}
  - name: approve
    callback: true
    timeout: 1h
    action: {{ handler: park }}
    compensation: {{ handler: {NOOP} }}
  - name: book
    action: {{ handler: {NOOP} }}
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_in_process_travel_saga_compiles_with_seven_steps_and_no_http() {
        let yaml = travel_in_process("bench-travel").unwrap();
        assert!(!yaml.contains("http"), "{yaml}");
        let plan = sagaflow_core::compile(&yaml, None).unwrap();
        assert_eq!(plan.name, "bench-travel");
        assert_eq!(plan.saga().map(|s| s.steps.len()), Some(7));
        assert!(plan.variable_uses.is_empty());
    }

    #[test]
    fn the_other_sagas_compile() {
        sagaflow_core::compile(&linear("l", 4), None).unwrap();
        sagaflow_core::compile(&parked("p"), None).unwrap();
    }
}
