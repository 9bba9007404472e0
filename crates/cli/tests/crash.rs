//! Crash test: hundreds of travel sagas under load while the server is killed
//! with SIGKILL at random moments and restarted on the same data directory,
//! and the travel services are killed too and restarted on the same address
//! and database (while they are down, calls are refused and retried).
//!
//! Afterwards every execution must have ended as its run type says, the travel
//! database must agree, each `Idempotency-Key` must have been executed at most
//! once by the travel services, and each stored history must be a legal
//! sequence for the core's transition function.
//!
//! The random choices (run types, pacing, kill moments, outage lengths) come
//! from a seed that the test prints; `SAGAFLOW_CRASH_SEED=<seed>` runs the
//! same choices again.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    expected_status, is_terminal, start_body, start_server, trip_problems, Api, Travel, RUN_TYPES,
    TRAVEL_SAGA,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sagaflow_core::{Event, EventKind, Execution, Plan, TaskKind};

const EXECUTIONS: usize = 300;
/// Clients starting executions at once: enough to keep dozens in flight.
const STARTERS: usize = 4;
const SERVER_CRASHES: usize = 6;
const TRAVEL_CRASHES: usize = 4;

/// A trip id (also its execution id) and its run type.
type Trip = (String, &'static str);

fn seed() -> u64 {
    match std::env::var("SAGAFLOW_CRASH_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("SAGAFLOW_CRASH_SEED={s} is a number")),
        Err(_) => rand::random(),
    }
}

/// The travel saga, with a forward retry budget that outlasts an outage of
/// the travel services (20 attempts, about half a minute, instead of 3 in
/// 300 ms): their restart must not turn a trip into a rollback.
fn crash_saga() -> String {
    let saga = TRAVEL_SAGA.replace("max_attempts: 3,", "max_attempts: 20,");
    assert_eq!(
        saga.matches("max_attempts: 20,").count(),
        4,
        "the four steps before and at the pivot get the larger budget"
    );
    saga
}

/// What goes wrong, and when (milliseconds after the first start).
#[derive(Debug)]
enum Fault {
    /// SIGKILL to the server, restarted at once on the same data directory.
    Server,
    /// SIGKILL to the travel services, restarted on the same address after `down_ms`.
    Travel { down_ms: u64 },
}

/// Starts its trips in turn against whichever server is up. A start whose
/// answer was lost to a crash is sent again with the same execution id: the
/// start is idempotent, so it never runs a trip twice.
fn start_all(trips: Vec<Trip>, gaps: Vec<u64>, server_url: Arc<Mutex<String>>) {
    for ((trip_id, run_type), gap) in trips.iter().zip(gaps) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let url = server_url.lock().unwrap().clone();
            match Api::new(&url).try_call(
                reqwest::Method::POST,
                "/v1/executions",
                Some(start_body(trip_id, run_type)),
            ) {
                Ok(a) if a.status == 200 || a.status == 201 => break,
                // Shutting down or not reachable: the server is being killed; try the next one.
                Ok(a) if a.status == 503 => {}
                Ok(a) => panic!("starting {trip_id} answered {}: {}", a.status, a.body),
                Err(_) => {}
            }
            assert!(
                Instant::now() < deadline,
                "{trip_id} could be started within 30s"
            );
            thread::sleep(Duration::from_millis(20));
        }
        thread::sleep(Duration::from_millis(gap));
    }
}

/// One execution as the server stored it.
struct Stored {
    definition: String,
    version: u32,
    status: String,
    /// The `events` column: how many events the execution row says it has.
    events: u64,
    /// `(seq, body)` in order.
    history: Vec<(u64, String)>,
}

/// Reads every execution, its history and the definitions from the server's
/// database (the server is stopped).
fn read_server_db(path: &Path) -> (BTreeMap<String, Stored>, HashMap<(String, u32), String>) {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap_or_else(|e| panic!("{} opens read-only: {e}", path.display()));
    let mut sources = HashMap::new();
    let mut stmt = conn
        .prepare("SELECT name, version, source FROM definitions")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))
        .unwrap();
    for row in rows {
        let (key, source): ((String, u32), String) = row.unwrap();
        sources.insert(key, source);
    }
    let mut executions = BTreeMap::new();
    let mut stmt = conn
        .prepare("SELECT id, definition, version, status, events FROM executions")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Stored {
                    definition: r.get(1)?,
                    version: r.get(2)?,
                    status: r.get(3)?,
                    events: r.get(4)?,
                    history: Vec::new(),
                },
            ))
        })
        .unwrap();
    for row in rows {
        let (id, stored) = row.unwrap();
        executions.insert(id, stored);
    }
    let mut stmt = conn
        .prepare("SELECT execution_id, seq, body FROM events ORDER BY execution_id, seq")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (id, seq, body) = row.unwrap();
        if let Some(stored) = executions.get_mut(&id) {
            stored.history.push((seq, body));
        }
    }
    (executions, sources)
}

/// What is wrong with a stored history: not a gap-free sequence matching the
/// execution row, not made of events, or not legal for the core's transition
/// function; or the state it folds to is not the stored, terminal status.
/// On success, also returns the events.
fn history_problems(stored: &Stored, plan: &Plan) -> (Vec<String>, Vec<Event>) {
    let mut problems = Vec::new();
    let seqs: Vec<u64> = stored.history.iter().map(|(seq, _)| *seq).collect();
    if seqs != (1..=stored.events).collect::<Vec<_>>() {
        problems.push(format!(
            "its events are numbered {seqs:?}, not 1..={}",
            stored.events
        ));
    }
    let mut events = Vec::new();
    for (seq, body) in &stored.history {
        match serde_json::from_str::<Event>(body) {
            Ok(e) => events.push(e),
            Err(e) => problems.push(format!("event {seq} is not an event ({e}): {body}")),
        }
    }
    match Execution::replay(plan, &events) {
        Err(e) => problems.push(format!("its history is not legal: {e}")),
        Ok(ex) if !ex.status.is_terminal() => problems.push(format!(
            "its history ends {}, not finished",
            ex.status.as_str()
        )),
        Ok(ex) if ex.status.as_str() != stored.status => problems.push(format!(
            "its history ends {} but the execution row says {}",
            ex.status.as_str(),
            stored.status
        )),
        Ok(_) => {}
    }
    (problems, events)
}

/// The tasks (step, action|compensation) whose success a history records.
fn succeeded_tasks(events: &[Event]) -> BTreeSet<(String, &'static str)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::StepSucceeded { step, .. } => {
                Some((step.clone(), TaskKind::Action.as_str()))
            }
            EventKind::CompensationSucceeded { step, .. } => {
                Some((step.clone(), TaskKind::Compensation.as_str()))
            }
            _ => None,
        })
        .collect()
}

/// The tasks a history ever scheduled.
fn scheduled_tasks(events: &[Event]) -> BTreeSet<(String, &'static str)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::StepScheduled { step, .. } => {
                Some((step.clone(), TaskKind::Action.as_str()))
            }
            EventKind::CompensationScheduled { step, .. } => {
                Some((step.clone(), TaskKind::Compensation.as_str()))
            }
            _ => None,
        })
        .collect()
}

/// The history as one line per event, for a failure message.
fn render(stored: &Stored) -> String {
    stored
        .history
        .iter()
        .map(|(seq, body)| format!("  {seq:>3} {body}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn hundreds_of_executions_through_server_and_participant_crashes_all_end_right_with_each_effect_once_and_legal_histories(
) {
    let seed = seed();
    println!("crash test seed {seed}: re-run with SAGAFLOW_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let trips: Vec<Trip> = (0..EXECUTIONS)
        .map(|n| {
            (
                format!("crash-{seed}-{n}"),
                RUN_TYPES[rng.gen_range(0..RUN_TYPES.len())].0,
            )
        })
        .collect();
    // Each starter's share of the trips, with a pause after each start.
    let shares: Vec<(Vec<Trip>, Vec<u64>)> = (0..STARTERS)
        .map(|k| {
            let share: Vec<_> = trips.iter().skip(k).step_by(STARTERS).cloned().collect();
            let gaps = share.iter().map(|_| rng.gen_range(0..40)).collect();
            (share, gaps)
        })
        .collect();
    // Faults fall while trips are being started and a little after, when the
    // last ones are still running or rolling back.
    let window = shares
        .iter()
        .map(|(_, gaps)| gaps.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        + 2000;
    let mut faults: Vec<(u64, Fault)> = (0..SERVER_CRASHES)
        .map(|_| (rng.gen_range(100..window), Fault::Server))
        .collect();
    for _ in 0..TRAVEL_CRASHES {
        let down_ms = rng.gen_range(0..1000);
        faults.push((rng.gen_range(100..window), Fault::Travel { down_ms }));
    }
    faults.sort_by_key(|(at, _)| *at);

    let began = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("sagaflow");
    // Cancellations fail 40% of the time: rollbacks retry them, across crashes too.
    let mut travel = Travel::start(dir.path(), 0.4, 2);
    let mut server = start_server(&data_dir, travel.url(), &[]);
    Api::new(&server.url).deploy("trip-booking", &crash_saga());

    let server_url = Arc::new(Mutex::new(server.url.clone()));
    let t0 = Instant::now();
    let starters: Vec<_> = shares
        .into_iter()
        .map(|(share, gaps)| {
            let server_url = Arc::clone(&server_url);
            thread::spawn(move || start_all(share, gaps, server_url))
        })
        .collect();

    for (at, fault) in &faults {
        thread::sleep((t0 + Duration::from_millis(*at)).saturating_duration_since(Instant::now()));
        let elapsed = t0.elapsed().as_millis();
        match fault {
            Fault::Server => {
                println!(
                    "{elapsed:>6}ms: SIGKILL to the server (pid {})",
                    server.pid()
                );
                server.sigkill();
                server = start_server(&data_dir, travel.url(), &[]);
                *server_url.lock().unwrap() = server.url.clone();
                let api = Api::new(&server.url);
                let in_flight: usize = ["running", "compensating"]
                    .iter()
                    .map(|s| {
                        api.get(&format!("/v1/executions?status={s}&limit=1000"))["items"]
                            .as_array()
                            .map(Vec::len)
                            .unwrap_or(0)
                    })
                    .sum();
                println!(
                    "         restarted at {}: {in_flight} executions unfinished",
                    server.url
                );
            }
            Fault::Travel { down_ms } => {
                println!("{elapsed:>6}ms: SIGKILL to the travel services, down for {down_ms}ms");
                travel.sigkill();
                thread::sleep(Duration::from_millis(*down_ms));
                travel.restart();
                println!("         restarted at {}", travel.url());
            }
        }
    }
    for starter in starters {
        starter.join().expect("every execution was started");
    }

    // After the last restart, every execution comes to an end.
    let api = Api::new(&server.url);
    let deadline = Instant::now() + Duration::from_secs(60);
    for (trip_id, _) in &trips {
        loop {
            let ex = api.get(&format!("/v1/executions/{trip_id}?wait=30"));
            let status = ex["status"].as_str().unwrap_or_default().to_string();
            if is_terminal(&status) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "seed {seed}: {trip_id} finishes after the last restart; it is still {status}; \
                 its history:\n{:#}\nserver log:\n{}",
                api.get(&format!("/v1/executions/{trip_id}/history"))["events"],
                server.log_tail()
            );
        }
    }
    let status = server.sigterm();
    assert!(
        status.success(),
        "the server exits 0 on SIGTERM, not {status}"
    );

    // What the server stored, and what the travel services did.
    let (stored, sources) = read_server_db(&data_dir.join("sagaflow.db"));
    let mut plans: HashMap<(String, u32), Plan> = HashMap::new();
    let rows = travel.all_rows();
    let mut effects_of: BTreeMap<String, Vec<travel_services::Effect>> = BTreeMap::new();
    let mut problems: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut problem = |id: &str, p: String| problems.entry(id.to_string()).or_default().push(p);
    let effects = travel.effects();
    for e in &effects {
        // Keys are `{execution}:{step}:{action|compensation}`.
        let id = match e.key.splitn(3, ':').collect::<Vec<_>>()[..] {
            [id, _, "action" | "compensation"] if stored.contains_key(id) => id,
            _ => {
                problem(
                    "",
                    format!(
                        "{} executed key {}, which no execution sends",
                        e.route, e.key
                    ),
                );
                continue;
            }
        };
        if e.count > 1 {
            problem(
                id,
                format!(
                    "{} with key {} was executed {} times",
                    e.route, e.key, e.count
                ),
            );
        }
        effects_of
            .entry(id.to_string())
            .or_default()
            .push(e.clone());
    }
    if stored.len() != EXECUTIONS {
        problem(
            "",
            format!(
                "the server stored {} executions, not {EXECUTIONS}",
                stored.len()
            ),
        );
    }

    for (trip_id, run_type) in &trips {
        let Some(ex) = stored.get(trip_id) else {
            problem(trip_id, "was never stored".to_string());
            continue;
        };
        // It ended as its run type says, and the travel database agrees.
        let expected = expected_status(run_type);
        if ex.status != expected {
            problem(
                trip_id,
                format!("({run_type}) ended {}, not {expected}", ex.status),
            );
        }
        for p in trip_problems(&ex.status, rows.get(trip_id).map_or(&[][..], Vec::as_slice)) {
            problem(trip_id, format!("({run_type}, {}): {p}", ex.status));
        }
        // Its history is legal, and ends where the execution row says.
        let key = (ex.definition.clone(), ex.version);
        let Some(source) = sources.get(&key) else {
            problem(trip_id, format!("its definition {key:?} was not stored"));
            continue;
        };
        let plan = plans.entry(key).or_insert_with(|| {
            sagaflow_core::compile(source, Some(&ex.definition))
                .expect("a stored definition compiles")
        });
        let (history_problems, events) = history_problems(ex, plan);
        for p in history_problems {
            problem(trip_id, p);
        }
        // Every task the history says succeeded was executed once by the
        // travel services, and they executed nothing the history did not schedule.
        let executed: BTreeSet<(String, &str)> = effects_of
            .get(trip_id)
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let mut parts = e.key.splitn(3, ':').skip(1);
                let step = parts.next()?.to_string();
                let task = match parts.next()? {
                    "action" => "action",
                    _ => "compensation",
                };
                Some((step, task))
            })
            .collect();
        for (step, task) in succeeded_tasks(&events) {
            if !executed.contains(&(step.clone(), task)) {
                problem(
                    trip_id,
                    format!(
                        "its {step} {task} succeeded but the travel services never executed it"
                    ),
                );
            }
        }
        let scheduled = scheduled_tasks(&events);
        for (step, task) in executed.difference(&scheduled) {
            problem(
                trip_id,
                format!(
                    "the travel services executed its {step} {task}, which was never scheduled"
                ),
            );
        }
    }
    // No booking exists for a trip that did not succeed, and none is pending.
    for (trip_id, rows) in &rows {
        if stored.get(trip_id).map(|ex| ex.status.as_str()) != Some("succeeded") {
            problem(
                trip_id,
                format!("holds {} rows but did not succeed", rows.len()),
            );
        }
        for r in rows.iter().filter(|r| r.transaction_status != "confirmed") {
            problem(
                trip_id,
                format!("{} is left {}", r.sk, r.transaction_status),
            );
        }
    }

    if !problems.is_empty() {
        let mut report = format!(
            "seed {seed} (re-run with SAGAFLOW_CRASH_SEED={seed}): {} execution(s) with problems:\n",
            problems.keys().filter(|id| !id.is_empty()).count()
        );
        for (id, ps) in &problems {
            for p in ps {
                report.push_str(&format!("{}: {p}\n", if id.is_empty() { "-" } else { id }));
            }
        }
        for id in problems.keys().filter(|id| !id.is_empty()).take(5) {
            if let Some(ex) = stored.get(id) {
                report.push_str(&format!("\nhistory of {id}:\n{}\n", render(ex)));
            }
        }
        panic!("{report}");
    }

    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for ex in stored.values() {
        *by_status.entry(ex.status.as_str()).or_default() += 1;
    }
    println!(
        "seed {seed}: {EXECUTIONS} executions through {SERVER_CRASHES} server and \
         {TRAVEL_CRASHES} travel crashes ended {by_status:?}; {} keys executed once each; {:.1}s",
        effects.len(),
        began.elapsed().as_secs_f64()
    );
}
