//! What a Map state would run, without running it: the items it would
//! select, each item's input, its batches, and its limits. TestState shows
//! them for a mocked Map (`inspectionData`), computed by the code that
//! starts a Map's items ([`Run::fan_inputs`](super::Run)), so the two
//! cannot disagree.

use serde_json::{json, Value};

use super::io::{parse_items, reader_of, ITEM_READER_FAILED};
use super::{count, data, tolerates, Run};
use crate::asl::machine::{Kind, Machine};
use crate::asl::vars::{Env, Vars};
use crate::error_name::EXCEED_TOLERATED;
use crate::event::ErrorInfo;

/// A Map state's items and limits, as it would start them.
#[derive(Debug, Clone, PartialEq)]
pub struct MapPreview {
    /// The array `ItemsPath` selects (JSONPath), or the items an
    /// `ItemReader` read.
    pub items: Option<Value>,
    /// Each item's input, after `ItemSelector`.
    pub selected: Vec<Value>,
    /// The batches, when the Map has an `ItemBatcher`.
    pub batches: Option<Vec<Value>>,
    /// 0: no limit.
    pub max_concurrency: usize,
    pub tolerated_failure_count: Option<u64>,
    pub tolerated_failure_percentage: Option<f64>,
}

/// The preview of top-level Map state `state` of `m` on `input`, with the
/// workflow variables `vars`; `reader_data`: what its `ItemReader` would
/// read, as found in its source (`None`: the items come from its input),
/// read as its `ReaderConfig` says. `Ok(None)`: no such Map state.
///
/// # Errors
///
/// The error the Map would fail with when it starts (a path that selects
/// nothing, an `ItemSelector` that does not render, …).
pub fn preview_map(
    m: &Machine,
    state: &str,
    input: &Value,
    vars: &Vars,
    reader_data: Option<&str>,
) -> Result<Option<MapPreview>, ErrorInfo> {
    let Some(st) = m.graph.states.iter().find(|s| s.name == state) else {
        return Ok(None);
    };
    let Kind::Map(map) = &st.kind else {
        return Ok(None);
    };
    let context = json!({ "State": { "Name": state } });
    let env = Env::new(&context, vars);
    let run = Run::default();
    let read = match (reader_data, reader_of(st)) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(ErrorInfo::new(
                ITEM_READER_FAILED,
                format!("`{state}` has no ItemReader to read the given data"),
            ))
        }
        (Some(text), Some(reader)) => {
            let mut items = parse_items(reader, &Value::String(text.to_string()))
                .map_err(|cause| ErrorInfo::new(ITEM_READER_FAILED, cause))?;
            if let Some(c) = &reader.max_items {
                let eff = data::filter(&st.input_path, input, env)?;
                let scope = run.js_scope(input, env, "", 0);
                let max = count(c, &eff, env, Some(&scope), "MaxItems")?;
                items.truncate(usize::try_from(max).unwrap_or(usize::MAX));
            }
            Some(items)
        }
    };
    let items = match (&read, &st.jsonata) {
        (Some(items), _) => Some(Value::Array(items.clone())),
        (None, None) => {
            let eff = data::filter(&st.input_path, input, env)?;
            Some(data::select(&map.items_path, &eff, env)?)
        }
        (None, Some(_)) => None,
    };
    let mut unbatched = st.clone();
    if let Kind::Map(m) = &mut unbatched.kind {
        m.item_batcher = None;
    }
    let selected = run
        .fan_inputs(&unbatched, input, env, state, 0, read.clone())?
        .inputs;
    let plan = run.fan_inputs(st, input, env, state, 0, read)?;
    Ok(Some(MapPreview {
        items,
        selected,
        batches: map.item_batcher.is_some().then_some(plan.inputs),
        max_concurrency: plan.limit,
        tolerated_failure_count: plan.tolerance.0,
        tolerated_failure_percentage: plan.tolerance.1,
    }))
}

impl MapPreview {
    /// How many iterations (or batches) it would start.
    pub fn iterations(&self) -> usize {
        self.batches.as_ref().unwrap_or(&self.selected).len()
    }

    /// The Map's failure if `failures` of its iterations failed: `None`
    /// when its tolerance allows them. Without a tolerance none is
    /// allowed (AWS's threshold is then 0).
    pub fn failure(&self, failures: u64) -> Option<ErrorInfo> {
        let tolerance = (
            self.tolerated_failure_count,
            self.tolerated_failure_percentage,
        );
        if failures == 0 || tolerates(tolerance, failures, self.iterations()) {
            return None;
        }
        Some(ErrorInfo::new(
            EXCEED_TOLERATED,
            format!(
                "{failures} of {} iterations failed, more than the Map tolerates",
                self.iterations()
            ),
        ))
    }
}
