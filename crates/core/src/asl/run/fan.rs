//! Parallel branches and Map items: what a Parallel or Map starts with
//! (each branch's or item's input, batches, limits, tolerance — from
//! JSONPath or JSONata fields, or an ItemReader's items), starting them and
//! keeping as many running as allowed, and the end of a thread (a branch,
//! an item, or the machine itself) with what it means for its state.

// The interpreter's own types and helpers, as in the parent module.
use super::*;

/// What a Parallel or Map starts with: its effective input, each branch's
/// or iteration's input, the most to run at once (0: no limit) and the
/// failures it tolerates.
pub(super) struct FanPlan {
    pub(super) effective: Value,
    pub(super) inputs: Vec<Value>,
    pub(super) limit: usize,
    pub(super) tolerance: Tolerance,
}

/// The `ItemBatcher`'s batches, in order: `{"BatchInput": …, "Items":
/// [...]}` (no `BatchInput` key without one), each with at most
/// `max_items` items and, as JSON text, at most `max_bytes` bytes. An item
/// too large for a batch of its own fails the state (`States.Runtime`).
fn batches(
    items: Vec<Value>,
    max_items: Option<u64>,
    max_bytes: Option<u64>,
    batch_input: Option<Value>,
    state: &str,
) -> Result<Vec<Value>, ErrorInfo> {
    let wrap = |items: Vec<Value>| {
        let mut b = serde_json::Map::new();
        if let Some(bi) = &batch_input {
            b.insert("BatchInput".to_string(), bi.clone());
        }
        b.insert("Items".to_string(), Value::Array(items));
        Value::Object(b)
    };
    // The text of an empty batch, then each item adds its own text and a
    // comma after the first.
    let base = wrap(Vec::new()).to_string().len() as u64;
    let max_items = max_items.unwrap_or(u64::MAX);
    let max_bytes = max_bytes.unwrap_or(u64::MAX);
    let mut out = Vec::new();
    let mut current: Vec<Value> = Vec::new();
    let mut size = base;
    for (i, item) in items.into_iter().enumerate() {
        let len = item.to_string().len() as u64;
        if base + len > max_bytes {
            return Err(runtime(format!(
                "The item at index {i} of `{state}` does not fit in a batch of MaxInputBytesPerBatch {max_bytes} bytes ({} bytes with it)",
                base + len
            )));
        }
        let grown = size + len + u64::from(!current.is_empty());
        if !current.is_empty() && (current.len() as u64 >= max_items || grown > max_bytes) {
            out.push(wrap(std::mem::take(&mut current)));
            size = base;
        }
        size += len + u64::from(!current.is_empty());
        current.push(item);
    }
    if !current.is_empty() {
        out.push(wrap(current));
    }
    Ok(out)
}

impl Run {
    /// The effective input of a Parallel or Map, each branch's or item's
    /// input and the most branches to run at once (0: no limit).
    /// `read`: a distributed Map's items from its ItemReader (instead of
    /// `ItemsPath` or `Items`).
    pub(super) fn fan_inputs(
        &self,
        st: &State,
        input: &Value,
        ctx: Env<'_>,
        key: &str,
        at: Millis,
        read: Option<Vec<Value>>,
    ) -> Result<FanPlan, ErrorInfo> {
        if let Some(js) = &st.jsonata {
            return self.fan_inputs_jsonata(st, js, input, ctx, (key, at), read);
        }
        let eff = data::filter(&st.input_path, input, ctx)?;
        match &st.kind {
            Kind::Parallel { branches } => {
                let eff = match &st.parameters {
                    Some(p) => data::render(p, &eff, ctx, &mut seeded(key))?,
                    None => eff,
                };
                Ok(FanPlan {
                    effective: eff.clone(),
                    inputs: vec![eff; branches.len()],
                    limit: 0,
                    tolerance: (None, None),
                })
            }
            Kind::Map(map) => {
                let limit = match &map.max_concurrency_path {
                    Some(p) => path_count(p, &eff, ctx, "MaxConcurrency", 0)?,
                    None => u64::from(map.max_concurrency),
                };
                let tolerance = (
                    match &map.tolerated_failure_count_path {
                        Some(p) => Some(path_count(p, &eff, ctx, "ToleratedFailureCount", 0)?),
                        None => map.tolerated_failure_count,
                    },
                    match &map.tolerated_failure_percentage_path {
                        Some(p) => Some(path_percentage(p, &eff, ctx)?),
                        None => map.tolerated_failure_percentage,
                    },
                );
                let items = match read {
                    Some(items) => Value::Array(items),
                    None => data::select(&map.items_path, &eff, ctx)?,
                };
                let Value::Array(items) = items else {
                    return Err(runtime(format!(
                        "ItemsPath `{}` of `{}` must select an array",
                        map.items_path, st.name
                    )));
                };
                let mut inputs = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    match &map.item_selector {
                        Some(sel) => {
                            let mut c = ctx.context.clone();
                            c["Map"] = json!({ "Item": { "Index": i, "Value": item } });
                            inputs.push(data::render(
                                sel,
                                &eff,
                                Env::new(&c, ctx.vars),
                                &mut seeded(&format!("{key}[{i}]")),
                            )?);
                        }
                        None => inputs.push(item),
                    }
                }
                if let Some(b) = &map.item_batcher {
                    let max_items = match &b.max_items {
                        Some(c) => Some(count(c, &eff, ctx, None, "MaxItemsPerBatch")?),
                        None => None,
                    };
                    let max_bytes = match &b.max_bytes {
                        Some(c) => Some(count(c, &eff, ctx, None, "MaxInputBytesPerBatch")?),
                        None => None,
                    };
                    let batch_input = match &b.batch_input {
                        Some(t) => Some(data::render(
                            t,
                            &eff,
                            ctx,
                            &mut seeded(&format!("{key}/BatchInput")),
                        )?),
                        None => None,
                    };
                    inputs = batches(inputs, max_items, max_bytes, batch_input, &st.name)?;
                }
                Ok(FanPlan {
                    effective: eff,
                    inputs,
                    limit: usize::try_from(limit).unwrap_or(usize::MAX),
                    tolerance,
                })
            }
            _ => Err(runtime("not a Parallel or Map state")),
        }
    }

    /// [`Run::fan_inputs`] of a JSONata state: a Parallel's `Arguments`
    /// (each branch's input), a Map's `Items` (or its input), each item's
    /// `ItemSelector` (with `$states.context.Map.Item`) and `MaxConcurrency`.
    pub(super) fn fan_inputs_jsonata(
        &self,
        st: &State,
        js: &Jsonata,
        input: &Value,
        ctx: Env<'_>,
        (key, at): (&str, Millis),
        read: Option<Vec<Value>>,
    ) -> Result<FanPlan, ErrorInfo> {
        let scope = self.js_scope(input, ctx, key, at);
        match &st.kind {
            Kind::Parallel { branches } => {
                let eff = match &js.arguments {
                    Some(t) => t.evaluate(&scope)?,
                    None => input.clone(),
                };
                Ok(FanPlan {
                    effective: eff.clone(),
                    inputs: vec![eff; branches.len()],
                    limit: 0,
                    tolerance: (None, None),
                })
            }
            Kind::Map(map) => {
                let items = match (read, &map.items) {
                    (Some(items), _) => items,
                    (None, Some(t)) => match t.evaluate(&scope)? {
                        Value::Array(items) => items,
                        other => return Err(wrong_value(t, &other, "an array")),
                    },
                    (None, None) => match input {
                        Value::Array(items) => items.clone(),
                        _ => {
                            return Err(runtime(format!(
                                "the input of `{}` must be an array (or give `Items`)",
                                st.name
                            )))
                        }
                    },
                };
                let limit = match &map.max_concurrency_expression {
                    Some(t) => usize::try_from(js_count(t, &scope)?).unwrap_or(usize::MAX),
                    None => map.max_concurrency as usize,
                };
                let tolerance = (
                    match &map.tolerated_failure_count_expression {
                        Some(t) => Some(js_count(t, &scope)?),
                        None => map.tolerated_failure_count,
                    },
                    match &map.tolerated_failure_percentage_expression {
                        Some(t) => match t.evaluate(&scope)? {
                            v if v.as_f64().is_some_and(|p| (0.0..=100.0).contains(&p)) => {
                                v.as_f64()
                            }
                            v => return Err(wrong_value(t, &v, "a number from 0 to 100")),
                        },
                        None => map.tolerated_failure_percentage,
                    },
                );
                let mut inputs = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    match &map.item_selector_jsonata {
                        Some(sel) => {
                            let mut c = ctx.context.clone();
                            c["Map"] = json!({ "Item": { "Index": i, "Value": item } });
                            let item_scope = jsonata::Scope {
                                context: &c,
                                ..self.js_scope(input, ctx, &format!("{key}[{i}]"), at)
                            };
                            inputs.push(sel.evaluate(&item_scope)?);
                        }
                        None => inputs.push(item),
                    }
                }
                if let Some(b) = &map.item_batcher {
                    let max_items = match &b.max_items {
                        Some(c) => Some(count(c, input, ctx, Some(&scope), "MaxItemsPerBatch")?),
                        None => None,
                    };
                    let max_bytes = match &b.max_bytes {
                        Some(c) => {
                            Some(count(c, input, ctx, Some(&scope), "MaxInputBytesPerBatch")?)
                        }
                        None => None,
                    };
                    let batch_input = match &b.batch_input_jsonata {
                        Some(t) => Some(t.evaluate(&scope)?),
                        None => None,
                    };
                    inputs = batches(inputs, max_items, max_bytes, batch_input, &st.name)?;
                }
                Ok(FanPlan {
                    effective: input.clone(),
                    inputs,
                    limit,
                    tolerance,
                })
            }
            _ => Err(runtime("not a Parallel or Map state")),
        }
    }

    pub(super) fn start_fan(
        &mut self,
        m: &Machine,
        at: Millis,
        fx: &mut Vec<Effect>,
        key: &str,
        plan: FanPlan,
    ) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        let FanPlan {
            inputs,
            limit,
            tolerance,
            ..
        } = plan;
        let n = inputs.len();
        slot.phase = Phase::Fanout;
        slot.fan = Some(Fan {
            limit,
            tolerance,
            inputs,
            threads: vec![None; n],
            results: vec![None; n],
            started: 0,
            running: 0,
            failures: 0,
            resume: Vec::new(),
            map_run: None,
        });
        let (t, s) = (slot.thread, slot.state);
        let st = self.state(m, t, s);
        self.fan_started(at, key, st);
        if let Kind::Map(map) = &st.kind {
            if let Some(d) = &map.distributed {
                let label = map.label.as_deref().unwrap_or(&st.name);
                let names = (st.name.as_str(), label, d.execution_type.as_str());
                let within = self.child_of(t);
                let r = self.open_map_run(at, names, n, limit, tolerance, within);
                if let Some(fan) = self.slots.get_mut(key).and_then(|s| s.fan.as_mut()) {
                    fan.map_run = Some(r);
                }
            }
        }
        self.fill_fan(m, at, fx, key);
    }

    /// Records the start of the fan-out of slot `key` (state `st`).
    pub(super) fn fan_started(&mut self, at: Millis, key: &str, st: &State) {
        let n = self
            .slots
            .get(key)
            .and_then(|s| s.fan.as_ref())
            .map_or(0, |f| f.inputs.len());
        let child = self.step_child(key);
        if self.traced(child) {
            let name = st.name.clone();
            let kind = match st.kind {
                Kind::Map(_) => TraceKind::MapStateStarted { name, length: n },
                _ => TraceKind::ParallelStateStarted { name },
            };
            self.record(at, child, kind);
        }
    }

    /// Starts branches or items up to the concurrency limit, then finishes
    /// the state if all are done.
    pub(super) fn fill_fan(&mut self, m: &Machine, at: Millis, fx: &mut Vec<Effect>, key: &str) {
        // A branch that ends at once reports back through `thread_done`,
        // which would call this again: the loop below is already running,
        // so it only records the result (recursion as deep as a Map has
        // items would overflow the stack).
        if self.filling.iter().any(|k| k == key) {
            return;
        }
        self.filling.push(key.to_string());
        self.fill_fan_loop(m, at, fx, key);
        self.filling.retain(|k| k != key);
    }

    pub(super) fn fill_fan_loop(
        &mut self,
        m: &Machine,
        at: Millis,
        fx: &mut Vec<Effect>,
        key: &str,
    ) {
        loop {
            let Some(slot) = self.slots.get(key) else {
                return;
            };
            if slot.phase != Phase::Fanout {
                return; // failed meanwhile: retried or caught
            }
            let (t, s, attempt) = (slot.thread, slot.state, slot.attempt);
            let Some(fan) = &slot.fan else { return };
            let st = self.state(m, t, s);
            let limit = match fan.limit {
                0 => usize::MAX,
                n => n,
            };
            // After a redrive, the branches or items that succeeded are
            // done already: skip them.
            let mut next = fan.started;
            while fan.results.get(next).is_some_and(Option::is_some) {
                next += 1;
            }
            let next = (next < fan.threads.len()).then_some(next);
            match next {
                Some(i) if fan.running < limit => {
                    // Copied, not moved: a redrive restarts an item that
                    // failed in a Fail state from this input.
                    let input = fan.inputs[i].clone();
                    let map_run = fan.map_run;
                    let scope_b = if matches!(st.kind, Kind::Map(_)) {
                        0
                    } else {
                        i
                    };
                    let mut scope = self.threads[t].scope.clone();
                    scope.push((s, scope_b));
                    let prefix = if attempt == 1 {
                        format!("{key}[{i}]/")
                    } else {
                        format!("{key}@{attempt}[{i}]/")
                    };
                    let child = self.threads.len();
                    let vars = self.threads[t].vars.clone();
                    // A distributed Map's item is a child execution of its
                    // own; anything else runs in its parent thread's.
                    let label = map_run.map(|r| (r, i)).or(self.child_of(t));
                    self.threads.push(Thread {
                        scope,
                        prefix,
                        parent: Some((key.to_string(), i)),
                        visits: BTreeMap::new(),
                        live: true,
                        vars,
                        stopped: None,
                        child: label,
                    });
                    if let Some(fan) = self.slots.get_mut(key).and_then(|s| s.fan.as_mut()) {
                        fan.threads[i] = Some(child);
                        fan.started = i + 1;
                        fan.running += 1;
                    }
                    if let Some(r) = map_run {
                        self.map_item(r, i, ItemChange::Started(input.clone()), at);
                    } else if matches!(st.kind, Kind::Map(_)) && self.traced(self.child_of(t)) {
                        self.record(
                            at,
                            self.child_of(t),
                            TraceKind::MapIterationStarted {
                                name: st.name.clone(),
                                index: i,
                            },
                        );
                    }
                    let resume = self
                        .slots
                        .get_mut(key)
                        .and_then(|s| s.fan.as_mut())
                        .and_then(|f| f.resume.get_mut(i))
                        .and_then(Option::take);
                    match resume {
                        Some(r) => self.resume(m, at, fx, child, r),
                        None => {
                            let start = graph(m, &self.threads[child].scope).start_at;
                            self.enter(m, at, fx, child, start, input);
                        }
                    }
                }
                Some(_) => return,
                None => {
                    if fan.running > 0 || fan.results.iter().any(Option::is_none) {
                        return;
                    }
                    let map_run = fan.map_run;
                    if writer_of(st).is_some() {
                        // The results go to the writer first (see io.rs).
                        if let Some(slot) = self.slots.get_mut(key) {
                            slot.phase = Phase::Ready;
                            slot.io = Some(IoCall::Writer);
                        }
                        self.pending.push_back(Pending::Schedule(key.to_string()));
                        return;
                    }
                    // The results move into the state's result: `complete`
                    // ends the slot (or, if the state then fails, a retry
                    // starts a new fan and a redrive runs them all again),
                    // so nothing reads them again.
                    let results: Vec<Value> = self
                        .slots
                        .get_mut(key)
                        .and_then(|s| s.fan.as_mut())
                        .map(|f| std::mem::take(&mut f.results))
                        .unwrap_or_default()
                        .into_iter()
                        .map(|r| r.unwrap_or(Value::Null))
                        .collect();
                    // A `WriterConfig` without a `Resource` shapes them.
                    let results = match result_writer(st) {
                        Some(w) => self.shaped_results(results, map_run, w.transformation),
                        None => results,
                    };
                    if let Some(r) = map_run {
                        self.close_map_run(r, at, MapRunStatus::Succeeded, None);
                    }
                    if self.traced(self.child_of(t)) {
                        let name = st.name.clone();
                        let kind = match st.kind {
                            Kind::Map(_) => TraceKind::MapStateSucceeded { name },
                            _ => TraceKind::ParallelStateSucceeded { name },
                        };
                        self.record(at, self.child_of(t), kind);
                    }
                    return self.complete(m, at, fx, key, Value::Array(results));
                }
            }
        }
    }

    /// A thread reached its end (`Ok(output)`) or failed.
    pub(super) fn thread_done(
        &mut self,
        m: &Machine,
        at: Millis,
        fx: &mut Vec<Effect>,
        t: usize,
        result: Result<Value, ErrorInfo>,
    ) {
        self.threads[t].live = false;
        self.end_vars(t);
        let Some((key, i)) = self.threads[t].parent.clone() else {
            let (status, output, error) = match result {
                Ok(out) => (Status::Succeeded, Some(out), None),
                Err(e) => (Status::Failed, None, Some(e)),
            };
            self.pending.push_back(Pending::Finish {
                status,
                output,
                error,
            });
            return;
        };
        let Some(slot) = self.slots.get(&key) else {
            return;
        };
        let st = self.state(m, slot.thread, slot.state);
        let owner = self.child_of(slot.thread);
        let name = st.name.clone();
        let is_map = matches!(st.kind, Kind::Map(_));
        let Some(fan) = self.slots.get_mut(&key).and_then(|s| s.fan.as_mut()) else {
            return;
        };
        let tolerance = is_map.then_some(fan.tolerance);
        let map_run = fan.map_run;
        fan.running = fan.running.saturating_sub(1);
        match result {
            Ok(out) => {
                // A child execution keeps its output (DescribeExecution).
                let kept = map_run.is_some().then(|| out.clone());
                fan.results[i] = Some(out);
                if let (Some(r), Some(out)) = (map_run, kept) {
                    self.map_item(r, i, ItemChange::Succeeded(out), at);
                } else if is_map && self.traced(owner) {
                    let kind = TraceKind::MapIterationSucceeded { name, index: i };
                    self.record(at, owner, kind);
                }
                self.fill_fan(m, at, fx, &key);
            }
            Err(error) => {
                fan.failures += 1;
                let total = fan.results.len();
                let tolerated = tolerance.is_some_and(|t| tolerates(t, fan.failures as u64, total));
                if tolerated {
                    fan.results[i] = Some(json!({ "Error": error.error, "Cause": error.cause }));
                }
                if let Some(r) = map_run {
                    self.map_item(r, i, ItemChange::Failed(error.clone()), at);
                } else if is_map && self.traced(owner) {
                    self.record(
                        at,
                        owner,
                        TraceKind::MapIterationFailed {
                            name: name.clone(),
                            index: i,
                        },
                    );
                }
                if tolerated {
                    self.fill_fan(m, at, fx, &key);
                } else {
                    let error = if tolerance.is_some_and(|(c, p)| c.is_some() || p.is_some()) {
                        ErrorInfo::new(
                            EXCEED_TOLERATED,
                            format!(
                                "`{name}`: too many iterations failed; the last: {}: {}",
                                error.error, error.cause
                            ),
                        )
                    } else {
                        error
                    };
                    if let Some(r) = map_run {
                        self.close_map_run(r, at, MapRunStatus::Failed, Some(&error));
                    }
                    if self.traced(owner) {
                        let kind = if is_map {
                            TraceKind::MapStateFailed {
                                name,
                                error: error.clone(),
                            }
                        } else {
                            TraceKind::ParallelStateFailed {
                                name,
                                error: error.clone(),
                            }
                        };
                        self.record(at, owner, kind);
                    }
                    self.abort_children(at, &key);
                    self.failed(m, at, fx, &key, error);
                }
            }
        }
    }

    /// Stops every branch of a fan-out slot (and their own fan-outs):
    /// their tasks' late answers will find no slot and be ignored.
    pub(super) fn abort_children(&mut self, at: Millis, key: &str) {
        let children: Vec<usize> = match self.slots.get(key).and_then(|s| s.fan.as_ref()) {
            Some(f) => f.threads.iter().flatten().copied().collect(),
            None => return,
        };
        for c in children {
            self.abort_thread(at, c);
        }
    }

    pub(super) fn abort_thread(&mut self, at: Millis, t: usize) {
        if !self.threads[t].live {
            return;
        }
        self.threads[t].live = false;
        // A thread's slot keys start with its prefix: look only there (a
        // scan of every slot per aborted iteration would be O(N²)).
        let prefix = self.threads[t].prefix.clone();
        let keys: Vec<String> = self
            .slots
            .range::<str, _>((
                std::ops::Bound::Included(prefix.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(_, s)| s.thread == t)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.abort_children(at, &k);
            // The state it was in is where a redrive continues it.
            if let Some(slot) = self.slots.remove(&k) {
                let fan = slot.fan.map(|f| (f, slot.effective));
                self.stop_at(t, slot.state, slot.raw, fan);
            }
            self.pending
                .retain(|p| !matches!(p, Pending::Schedule(x) | Pending::Retry(x) if *x == k));
        }
        self.end_vars(t);
    }
}
