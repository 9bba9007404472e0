//! Cluster crash test: the crash test of `crash.rs` with three
//! `sagaflow server --cluster` nodes on one PostgreSQL schema. Clients start
//! travel sagas round robin across the nodes that are up while nodes are
//! killed with SIGKILL at random moments (and restarted after a random
//! outage, each time as a new node on a fresh port), or stopped with SIGSTOP
//! for longer than their leases last and then continued, and the shared
//! travel services are killed and restarted too. A dead (or stalled) node's
//! executions must be taken over by the others once its leases run out.
//!
//! Afterwards, as in `crash.rs`: every execution ended as its run type says,
//! the travel database agrees, each `Idempotency-Key` was executed at most
//! once, and each stored history is legal for the core. And, from the travel
//! services' log of every call with the `Sagaflow-Node` that made it: no step
//! of an execution was ever being called by two nodes at once; once another
//! node had taken an execution over, the node it came from never called for
//! it again (unless it was paused, and won it back later); and no call came
//! after its execution had finished.
//!
//! Skipped (with a notice) when `DATABASE_URL` is unset; CI sets it. The
//! random choices come from a seed that the test prints;
//! `SAGAFLOW_CRASH_SEED=<seed>` runs the same choices again.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    by_status, crash_problems, crash_saga, crash_seed, database_url, fail_on_problems, signal,
    start_all, start_node, wait_all_finished, Api, KeptOnFailure, PgSchema, Problems, Proc, Stored,
    Travel, Trip, RUN_TYPES,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const EXECUTIONS: usize = 200;
const NODES: usize = 3;
/// Clients starting executions at once.
const STARTERS: usize = 3;
const NODE_CRASHES: usize = 8;
const TRAVEL_CRASHES: usize = 3;
/// Short, so that a dead node's executions move soon (renewed every third).
const LEASE_TTL: &str = "1500ms";
/// SIGSTOP to a node for longer than its leases last, then SIGCONT: a node
/// that stalls (a VM paused, a machine swapping) while the others take its
/// executions over, and wakes up believing it still has them.
/// `SAGAFLOW_CRASH_PAUSES=N` sets another number (0: kills only).
const NODE_PAUSES: usize = 3;

fn node_pauses() -> usize {
    match std::env::var("SAGAFLOW_CRASH_PAUSES") {
        Ok(n) => n
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("SAGAFLOW_CRASH_PAUSES={n} is a number")),
        Err(_) => NODE_PAUSES,
    }
}

/// What happens, and when (milliseconds after the first start).
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// SIGKILL to a node that is up (unless it is the only one), chosen then.
    KillNode { kill: usize },
    /// The node of that kill starts again, as a new node.
    RestartNode { kill: usize },
    /// SIGSTOP to a node that is up and running (unless it is the only one).
    PauseNode { pause: usize },
    /// SIGCONT to the node of that pause.
    ResumeNode { pause: usize },
    /// SIGKILL to the travel services.
    KillTravel,
    /// They start again on the same address and database.
    RestartTravel,
}

/// A node that is up.
struct Node {
    id: String,
    proc: Proc,
    /// Stopped with SIGSTOP.
    paused: bool,
}

/// The URLs of the nodes that are up and running, for the clients.
fn live_urls(slots: &[Option<Node>]) -> Vec<String> {
    slots
        .iter()
        .flatten()
        .filter(|n| !n.paused)
        .map(|n| n.proc.url.clone())
        .collect()
}

/// The slots of the nodes that are up and running.
fn running(slots: &[Option<Node>]) -> Vec<usize> {
    (0..slots.len())
        .filter(|s| slots[*s].as_ref().is_some_and(|n| !n.paused))
        .collect()
}

/// When each execution finished (its last event's time, ms since the epoch).
fn finished_at(stored: &BTreeMap<String, Stored>) -> BTreeMap<String, i64> {
    stored
        .iter()
        .filter_map(|(id, ex)| {
            let (_, body) = ex.history.last()?;
            let event: serde_json::Value = serde_json::from_str(body).ok()?;
            if event["type"] != "execution_finished" {
                return None;
            }
            Some((id.clone(), event["at"].as_i64()?))
        })
        .collect()
}

/// Microseconds as milliseconds after `t0`, for messages.
fn ms(us: i64, t0: i64) -> String {
    format!("{:.1}ms", (us - t0) as f64 / 1000.0)
}

/// What the travel services' call log says about the nodes: every call came
/// from a node of this test with its execution and step; for each
/// (execution, step), no two nodes' calls overlap in time; and for each
/// execution, once a call came from another node, the earlier node never
/// calls for it again — unless it was paused (a node that was never paused
/// only loses executions by dying, and a restarted node has a new id; a
/// paused one may legitimately win back, after its pause, an execution whose
/// new owner died meanwhile).
fn node_problems(
    calls: &[travel_services::Call],
    nodes: &BTreeSet<String>,
    were_paused: &BTreeSet<String>,
    finished: &BTreeMap<String, i64>,
) -> Problems {
    let mut problems = Problems::new();
    let mut problem = |id: &str, p: String| problems.entry(id.to_string()).or_default().push(p);
    let t0 = calls.iter().map(|c| c.started_us).min().unwrap_or(0);
    let mut by_step: BTreeMap<(&str, &str), Vec<&travel_services::Call>> = BTreeMap::new();
    let mut by_execution: BTreeMap<&str, Vec<&travel_services::Call>> = BTreeMap::new();
    for c in calls {
        if !nodes.contains(&c.node) {
            problem(
                "",
                format!("a call to {} came from unknown node {}", c.route, c.node),
            );
        }
        let (Some(id), Some(step)) = (c.execution_id.as_deref(), c.step.as_deref()) else {
            problem(
                "",
                format!(
                    "a call to {} from {} names no execution or step: {c:?}",
                    c.route, c.node
                ),
            );
            continue;
        };
        by_step.entry((id, step)).or_default().push(c);
        by_execution.entry(id).or_default().push(c);
    }
    let show = |c: &travel_services::Call| {
        format!(
            "{} {} attempt {} by {} [{} .. {}] answered {}",
            c.route,
            c.task.as_deref().unwrap_or("?"),
            c.attempt.unwrap_or(0),
            c.node,
            ms(c.started_us, t0),
            ms(c.ended_us, t0),
            c.status
        )
    };
    for ((id, step), calls) in &by_step {
        for (i, a) in calls.iter().enumerate() {
            for b in &calls[i + 1..] {
                // Sorted by start: b began while a was still running.
                if a.node != b.node && b.started_us < a.ended_us {
                    problem(
                        id,
                        format!(
                            "its {step} ran on two nodes at once: {} and {}",
                            show(a),
                            show(b)
                        ),
                    );
                }
            }
        }
    }
    for (id, calls) in &by_execution {
        // The last call of each node so far, and where the calls went from
        // one node to another.
        let mut last_of: BTreeMap<&str, &travel_services::Call> = BTreeMap::new();
        let mut current: Option<&travel_services::Call> = None;
        for c in calls {
            if let Some(cur) = current.filter(|cur| cur.node != c.node) {
                if let Some(before) = last_of.get(c.node.as_str()) {
                    if !were_paused.contains(&c.node) {
                        problem(
                            id,
                            format!(
                                "its calls went from node {} to node {} and back, but {} was \
                                 never paused, so it never lost the execution: {} acted on it \
                                 while {} held it ({}, then {}, then {})",
                                c.node,
                                cur.node,
                                c.node,
                                cur.node,
                                c.node,
                                show(before),
                                show(cur),
                                show(c)
                            ),
                        );
                    }
                }
            }
            last_of.insert(c.node.as_str(), c);
            current = Some(c);
        }
        if let (Some(last), Some(&finished_at)) = (calls.last(), finished.get(*id)) {
            // Every call is answered before the decision it leads to.
            if last.started_us / 1000 > finished_at + 1 {
                problem(
                    id,
                    format!(
                        "a call came after it had finished (at {}): {}",
                        ms(finished_at * 1000, t0),
                        show(last)
                    ),
                );
            }
        }
    }
    problems
}

#[test]
fn three_nodes_killed_at_random_lose_no_execution_run_each_effect_once_and_never_a_step_on_two_nodes_at_once(
) {
    let Some(url) = database_url() else {
        return;
    };
    let seed = crash_seed();
    println!("cluster crash test seed {seed}: re-run with SAGAFLOW_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let trips: Vec<Trip> = (0..EXECUTIONS)
        .map(|n| {
            (
                format!("cluster-{seed}-{n}"),
                RUN_TYPES[rng.gen_range(0..RUN_TYPES.len())].0,
            )
        })
        .collect();
    // Each starter's share of the trips, with a pause after each start.
    let shares: Vec<(Vec<Trip>, Vec<u64>)> = (0..STARTERS)
        .map(|k| {
            let share: Vec<_> = trips.iter().skip(k).step_by(STARTERS).cloned().collect();
            let gaps = share.iter().map(|_| rng.gen_range(0..120)).collect();
            (share, gaps)
        })
        .collect();
    // Faults fall while trips are being started and a little after.
    let window = shares
        .iter()
        .map(|(_, gaps)| gaps.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        + 2000;
    let mut faults: Vec<(u64, Fault)> = Vec::new();
    for kill in 0..NODE_CRASHES {
        let at = rng.gen_range(100..window);
        let down_ms = rng.gen_range(0..2500);
        faults.push((at, Fault::KillNode { kill }));
        faults.push((at + down_ms, Fault::RestartNode { kill }));
    }
    let ttl_ms = humantime::parse_duration(LEASE_TTL).unwrap().as_millis() as u64;
    let pauses = node_pauses();
    for pause in 0..pauses {
        let at = rng.gen_range(100..window);
        let paused_ms = rng.gen_range(ttl_ms + 500..2 * ttl_ms + 1000);
        faults.push((at, Fault::PauseNode { pause }));
        faults.push((at + paused_ms, Fault::ResumeNode { pause }));
    }
    for _ in 0..TRAVEL_CRASHES {
        let at = rng.gen_range(100..window);
        faults.push((at, Fault::KillTravel));
        faults.push((at + rng.gen_range(0..1000), Fault::RestartTravel));
    }
    // Stable: a restart at the moment of its kill still comes after it.
    faults.sort_by_key(|(at, _)| *at);

    let began = Instant::now();
    // Declared before the processes: dropped (the schema with it) after them.
    let schema = PgSchema::create(&url);
    let db_url = schema.server_url();
    let dir = KeptOnFailure::new();
    let logs = dir.path().join("logs");
    // Cancellations fail 40% of the time: rollbacks retry them, across
    // crashes too. Confirmations fail 5 times before they succeed: those
    // trips wait on retry timers for about 3 seconds, and a crash while they
    // wait moves them to another node with their timers.
    let mut travel = Travel::start(dir.path(), 0.4, 5);
    let mut generation = 0;
    let mut node_logs = Vec::new();
    let mut new_node = |slot: usize, travel: &Travel| {
        generation += 1;
        let id = format!("n{slot}-{generation}");
        let proc = start_node(&db_url, &logs, travel.url(), &id, LEASE_TTL);
        node_logs.push(proc.log_path().to_path_buf());
        Node {
            id,
            proc,
            paused: false,
        }
    };
    let mut nodes: BTreeSet<String> = BTreeSet::new();
    let mut were_paused: BTreeSet<String> = BTreeSet::new();
    let mut slots: Vec<Option<Node>> = Vec::new();
    for slot in 0..NODES {
        let node = new_node(slot, &travel);
        if slot == 0 {
            // The first node has created the tables; the others find them.
            Api::new(&node.proc.url).deploy("trip-booking", &crash_saga());
        }
        println!("node {} at {}", node.id, node.proc.url);
        nodes.insert(node.id.clone());
        slots.push(Some(node));
    }

    let urls = Arc::new(Mutex::new(live_urls(&slots)));
    let t0 = Instant::now();
    let starters: Vec<_> = shares
        .into_iter()
        .map(|(share, gaps)| {
            let urls = Arc::clone(&urls);
            thread::spawn(move || start_all(share, gaps, urls))
        })
        .collect();

    // Which slot each kill emptied (none when it would have left no node up),
    // and which each pause stopped.
    let mut killed: BTreeMap<usize, usize> = BTreeMap::new();
    let mut paused: BTreeMap<usize, usize> = BTreeMap::new();
    for (at, fault) in &faults {
        thread::sleep((t0 + Duration::from_millis(*at)).saturating_duration_since(Instant::now()));
        let elapsed = t0.elapsed().as_millis();
        match *fault {
            Fault::KillNode { kill } => {
                let up = running(&slots);
                if up.len() < 2 {
                    println!("{elapsed:>6}ms: (no kill: only one node is running)");
                    continue;
                }
                let slot = up[rng.gen_range(0..up.len())];
                let node = slots[slot].take().expect("the slot is up");
                // Clients move on first; those caught in the middle try the next node.
                *urls.lock().unwrap() = live_urls(&slots);
                println!(
                    "{elapsed:>6}ms: SIGKILL to node {} (pid {}, {})",
                    node.id,
                    node.proc.pid(),
                    node.proc.url
                );
                node.proc.sigkill();
                killed.insert(kill, slot);
            }
            Fault::RestartNode { kill } => {
                let Some(slot) = killed.remove(&kill) else {
                    continue;
                };
                let node = new_node(slot, &travel);
                println!(
                    "{:>6}ms: node {} up at {} (in place of the killed one)",
                    t0.elapsed().as_millis(),
                    node.id,
                    node.proc.url
                );
                nodes.insert(node.id.clone());
                slots[slot] = Some(node);
                *urls.lock().unwrap() = live_urls(&slots);
            }
            Fault::PauseNode { pause } => {
                let up = running(&slots);
                if up.len() < 2 {
                    println!("{elapsed:>6}ms: (no pause: only one node is running)");
                    continue;
                }
                let slot = up[rng.gen_range(0..up.len())];
                let node = slots[slot].as_mut().expect("the slot is up");
                node.paused = true;
                were_paused.insert(node.id.clone());
                *urls.lock().unwrap() = live_urls(&slots);
                let node = slots[slot].as_ref().expect("the slot is up");
                println!(
                    "{elapsed:>6}ms: SIGSTOP to node {} (pid {})",
                    node.id,
                    node.proc.pid()
                );
                signal(node.proc.pid(), libc::SIGSTOP);
                paused.insert(pause, slot);
            }
            Fault::ResumeNode { pause } => {
                let Some(slot) = paused.remove(&pause) else {
                    continue;
                };
                let node = slots[slot].as_mut().expect("a paused node is not killed");
                signal(node.proc.pid(), libc::SIGCONT);
                node.paused = false;
                println!("{elapsed:>6}ms: SIGCONT to node {}", node.id);
                *urls.lock().unwrap() = live_urls(&slots);
            }
            Fault::KillTravel => {
                println!("{elapsed:>6}ms: SIGKILL to the travel services");
                travel.sigkill();
            }
            Fault::RestartTravel => {
                travel.restart();
                println!(
                    "{elapsed:>6}ms: travel services restarted at {}",
                    travel.url()
                );
            }
        }
    }
    assert!(killed.is_empty(), "every killed node was restarted");
    assert!(paused.is_empty(), "every paused node was resumed");
    for starter in starters {
        starter.join().expect("every execution was started");
    }
    let started = t0.elapsed();

    // Every execution comes to an end, whichever node is asked.
    let logs_tail = |slots: &[Option<Node>]| {
        slots
            .iter()
            .flatten()
            .map(|n| format!("log of node {}:\n{}", n.id, n.proc.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    wait_all_finished(&trips, &live_urls(&slots), seed, || logs_tail(&slots));
    let finished = t0.elapsed();
    for node in slots.into_iter().flatten() {
        let status = node.proc.sigterm();
        assert!(
            status.success(),
            "node {} exits 0 on SIGTERM, not {status}",
            node.id
        );
    }

    let took_over: usize = node_logs
        .iter()
        .map(|log| {
            std::fs::read_to_string(log)
                .unwrap_or_default()
                .matches("took over executions")
                .count()
        })
        .sum();

    // What the nodes stored, what the travel services did, and who called them.
    let stored = schema.read();
    let (mut problems, keys) = crash_problems(&trips, &stored, &travel);
    let calls = travel_services::calls(&travel.db).expect("the travel database is readable");
    if calls.is_empty() {
        problems
            .entry(String::new())
            .or_default()
            .push("the travel services logged no call from a node".into());
    }
    for (id, ps) in node_problems(&calls, &nodes, &were_paused, &finished_at(&stored.0)) {
        problems.entry(id).or_default().extend(ps);
    }
    fail_on_problems(seed, &problems, &stored.0);

    let mut calls_by_node: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &calls {
        *calls_by_node.entry(c.node.as_str()).or_default() += 1;
    }
    let moved = {
        let mut by_execution: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for c in &calls {
            if let Some(id) = c.execution_id.as_deref() {
                by_execution.entry(id).or_default().insert(c.node.as_str());
            }
        }
        by_execution.values().filter(|n| n.len() > 1).count()
    };
    println!(
        "seed {seed}: {EXECUTIONS} executions on {NODES} nodes through {NODE_CRASHES} node \
         crashes, {pauses} node pauses and {TRAVEL_CRASHES} travel crashes ended {:?}; {keys} keys executed once each; {} calls \
         by node {calls_by_node:?}; {moved} executions moved between nodes ({took_over} take-overs \
         logged); started in {:.1}s, finished at {:.1}s, {:.1}s in all",
        by_status(&stored.0),
        calls.len(),
        started.as_secs_f64(),
        finished.as_secs_f64(),
        began.elapsed().as_secs_f64()
    );
}
