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

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    by_status, crash_problems, crash_saga, crash_seed, fail_on_problems, start_all, start_server,
    wait_all_finished, Api, Stored, StoredExecutions, Travel, Trip, RUN_TYPES,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const EXECUTIONS: usize = 300;
/// Clients starting executions at once: enough to keep dozens in flight.
const STARTERS: usize = 4;
const SERVER_CRASHES: usize = 6;
const TRAVEL_CRASHES: usize = 4;

/// What goes wrong, and when (milliseconds after the first start).
#[derive(Debug)]
enum Fault {
    /// SIGKILL to the server, restarted at once on the same data directory.
    Server,
    /// SIGKILL to the travel services, restarted on the same address after `down_ms`.
    Travel { down_ms: u64 },
}

/// Reads every execution, its history and the definitions from the server's
/// database (the server is stopped).
fn read_server_db(path: &Path) -> StoredExecutions {
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

#[test]
fn hundreds_of_executions_through_server_and_participant_crashes_all_end_right_with_each_effect_once_and_legal_histories(
) {
    let seed = crash_seed();
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

    let server_url = Arc::new(Mutex::new(vec![server.url.clone()]));
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
                *server_url.lock().unwrap() = vec![server.url.clone()];
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
    wait_all_finished(&trips, &[server.url.clone()], seed, || {
        format!("server log:\n{}", server.log_tail())
    });
    let status = server.sigterm();
    assert!(
        status.success(),
        "the server exits 0 on SIGTERM, not {status}"
    );

    // What the server stored, and what the travel services did.
    let stored = read_server_db(&data_dir.join("sagaflow.db"));
    let (problems, keys) = crash_problems(&trips, &stored, &travel);
    fail_on_problems(seed, &problems, &stored.0);
    println!(
        "seed {seed}: {EXECUTIONS} executions through {SERVER_CRASHES} server and \
         {TRAVEL_CRASHES} travel crashes ended {:?}; {keys} keys executed once each; {:.1}s",
        by_status(&stored.0),
        began.elapsed().as_secs_f64()
    );
}
