//! Behaviour specific to the SQLite backend: durability across reopening,
//! migrations, group commit, and refusing what it cannot read.

use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;
use sagaflow_core::{Event, EventKind, Status, TaskKind};
use sagaflow_store::sqlite::{SqliteStore, LEGACY, MIGRATIONS, SCHEMA_VERSION};
use sagaflow_store::{Append, Create, Created, Error, ExecutionRecord, Executor, Query, Timer};
use serde_json::json;
use tempfile::TempDir;

const T0: u64 = 1_700_000_000_000;

fn temp_db() -> (TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let path = dir.path().join("sagaflow.db");
    (dir, path)
}

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path).expect("opening the store")
}

fn started(id: &str) -> Event {
    Event {
        at: T0,
        kind: EventKind::ExecutionStarted {
            execution_id: id.to_string(),
            definition: "order".to_string(),
            version: 1,
            input: json!({ "id": id }),
            keys: Default::default(),
        },
    }
}

fn step_succeeded(step: &str) -> Event {
    Event {
        at: T0 + 1,
        kind: EventKind::StepSucceeded {
            step: step.to_string(),
            attempt: 1,
            output: json!({ "ok": step }),
        },
    }
}

fn record(id: &str) -> ExecutionRecord {
    ExecutionRecord {
        id: id.to_string(),
        definition: "order".to_string(),
        version: 1,
        status: Status::Running,
        input: json!({ "id": id }),
        output: None,
        error: None,
        started_at: T0,
        updated_at: T0,
        events: 0,
    }
}

async fn create(store: &SqliteStore, id: &str) {
    match store
        .create_execution(Create::new(record(id), vec![started(id)], Vec::new()))
        .await
    {
        Ok(Created::New(_)) => {}
        other => panic!("creating `{id}` gave {other:?}"),
    }
}

fn append(id: &str, expected_version: u64, step: &str) -> Append {
    Append {
        execution_id: id.to_string(),
        expected_version,
        events: vec![step_succeeded(step)],
        status: Status::Running,
        output: None,
        error: None,
        updated_at: T0 + 1,
        timers: Vec::new(),
        notify: None,
    }
}

fn applied_migrations(path: &Path) -> Vec<(u32, u64)> {
    let conn = Connection::open(path).expect("opening the database directly");
    let mut stmt = conn
        .prepare("SELECT version, applied_at FROM schema_migrations ORDER BY version")
        .expect("preparing");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("querying")
        .collect::<rusqlite::Result<_>>()
        .expect("reading rows")
}

#[tokio::test]
async fn data_survives_reopening_the_database() {
    let (_dir, path) = temp_db();
    let timer = Timer {
        execution_id: "e1".to_string(),
        step: "pay".to_string(),
        task: TaskKind::Compensation,
        attempt: 2,
        fire_at: T0 + 100,
    };
    let (definition, execution, history) = {
        let store = open(&path);
        let (definition, _) = store
            .put_definition("order", "saga", "steps: []", "d1", T0)
            .await
            .expect("put definition");
        create(&store, "e1").await;
        let mut a = append("e1", 1, "reserve");
        a.timers = vec![timer.clone()];
        store.append(a).await.expect("append");
        (
            definition,
            store.get_execution("e1").await.expect("get"),
            store.load_history("e1").await.expect("history"),
        )
    };

    let store = open(&path);
    assert_eq!(
        store.get_definition("order", None).await.expect("get"),
        definition
    );
    assert_eq!(store.get_execution("e1").await.expect("get"), execution);
    assert_eq!(store.load_history("e1").await.expect("history"), history);
    assert_eq!(
        store.claim_due_timers(T0 + 100, 10).await.expect("claim"),
        [timer]
    );
    // New executions after a reopen still list newest first.
    create(&store, "e2").await;
    let page = store
        .list_executions(&sagaflow_store::ListFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("list");
    let ids: Vec<_> = page.items.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["e2", "e1"]);
}

#[tokio::test]
async fn opening_creates_missing_parent_directories() {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let path = dir.path().join("nested/deeper/sagaflow.db");
    let store = open(&path);
    create(&store, "e1").await;
    assert!(path.exists());
}

#[tokio::test]
async fn reopening_applies_no_migration_twice() {
    let (_dir, path) = temp_db();
    drop(open(&path));
    let first = applied_migrations(&path);
    assert_eq!(first.len(), MIGRATIONS.len());
    assert_eq!(first.last().map(|m| m.0), Some(SCHEMA_VERSION));

    for _ in 0..2 {
        drop(open(&path));
        assert_eq!(applied_migrations(&path), first);
    }
}

/// The names recorded with the applied migrations, by version.
fn migration_names(path: &Path) -> Vec<(u32, Option<String>)> {
    let conn = Connection::open(path).expect("opening the database directly");
    let mut stmt = conn
        .prepare("SELECT version, name FROM schema_migrations ORDER BY version")
        .expect("preparing");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("querying")
        .collect::<rusqlite::Result<_>>()
        .expect("reading rows")
}

/// A database as the release with schema version `old` left it (numbered
/// before SQLite and PostgreSQL shared their numbers): the migrations that
/// version had, from the files, recorded as that code recorded them (no
/// name, applied at `100 + old version`), with an execution, its history
/// and a timer written through that schema.
fn old_database(path: &Path, old: u32) {
    let conn = Connection::open(path).expect("creating the old database");
    conn.execute_batch(
        "CREATE TABLE schema_migrations (
            version    INTEGER PRIMARY KEY,
            applied_at INTEGER NOT NULL
        )",
    )
    .expect("creating schema_migrations as it was");
    for (version, shared) in LEGACY.iter().filter(|(v, _)| *v <= old) {
        for v in *shared {
            let m = MIGRATIONS.iter().find(|m| m.version == *v).expect("listed");
            conn.execute_batch(m.sql)
                .expect("applying an old migration");
        }
        conn.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            rusqlite::params![version, 100 + version],
        )
        .expect("recording an old migration");
    }
    conn.execute(
        "INSERT INTO executions (id, definition, version, status, input, output, error,
                                 started_at, updated_at, events)
         VALUES ('old', 'order', 1, 'running', '{\"id\":\"old\"}', NULL, NULL, ?1, ?1, 1)",
        [T0],
    )
    .expect("inserting an execution");
    let body = serde_json::to_string(&started("old")).expect("encoding an event");
    conn.execute(
        "INSERT INTO events (execution_id, seq, at, type, body)
         VALUES ('old', 1, ?1, 'execution_started', ?2)",
        rusqlite::params![T0, body],
    )
    .expect("inserting an event");
    conn.execute(
        "INSERT INTO timers (execution_id, step, task, attempt, fire_at)
         VALUES ('old', 'pay', 'action', 2, ?1)",
        [T0 + 5],
    )
    .expect("inserting a timer");
}

#[tokio::test]
async fn a_database_left_by_any_older_release_is_upgraded_on_open_and_keeps_its_data() {
    for (old, _) in LEGACY {
        let (_dir, path) = temp_db();
        old_database(&path, *old);

        let store = open(&path);
        let migrations = applied_migrations(&path);
        assert_eq!(
            migrations.iter().map(|m| m.0).collect::<Vec<_>>(),
            (1..=SCHEMA_VERSION).collect::<Vec<_>>(),
            "from version {old}"
        );
        for (version, applied_at) in &migrations {
            if *version <= *old {
                // SQLite kept its numbers: the same migration, not applied again.
                assert_eq!(*applied_at, 100 + u64::from(*version), "from version {old}");
            }
        }
        let names = migration_names(&path);
        let listed: Vec<_> = MIGRATIONS
            .iter()
            .map(|m| (m.version, Some(m.name.to_string())))
            .collect();
        assert_eq!(names, listed, "every row is named, from version {old}");

        assert_eq!(
            store.get_execution("old").await.expect("get"),
            ExecutionRecord {
                events: 1,
                ..record("old")
            }
        );
        assert_eq!(
            store.load_history("old").await.expect("history"),
            [started("old")]
        );
        assert_eq!(
            store.claim_due_timers(T0 + 5, 10).await.expect("claim"),
            [Timer {
                execution_id: "old".to_string(),
                step: "pay".to_string(),
                task: TaskKind::Action,
                attempt: 2,
                fire_at: T0 + 5,
            }]
        );

        // What later migrations added works on the upgraded database: the
        // outbox, its dead letters, deleting a definition.
        let mut a = append("old", 1, "reserve");
        a.status = Status::Failed;
        a.notify = Some(sagaflow_store::NotificationKind::Finished);
        assert_eq!(store.append(a).await.expect("append"), 2);
        let pending = store.pending_notifications(10).await.expect("pending");
        assert_eq!(pending.len(), 1);
        assert_eq!(
            (pending[0].execution_id.as_str(), pending[0].status),
            ("old", Status::Failed)
        );
        store
            .bury_notification(sagaflow_store::DeadLetter {
                notification: pending[0].clone(),
                failed_at: T0 + 9,
                attempts: 3,
                last_error: "hook down".to_string(),
            })
            .await
            .expect("bury");
        assert_eq!(store.dead_letters(10).await.expect("dead letters").len(), 1);
        store
            .put_definition("order", "saga", "name: order", "d1", T0)
            .await
            .expect("deploy");
        assert!(store.delete_definition("order").await.expect("delete"));

        // And it stays upgraded: reopening applies nothing.
        drop(store);
        drop(open(&path));
        assert_eq!(applied_migrations(&path), migrations, "from version {old}");
    }
}

#[tokio::test]
async fn notifications_survive_reopening_the_database() {
    let (_dir, path) = temp_db();
    let pending = {
        let store = open(&path);
        create(&store, "e1").await;
        let mut a = append("e1", 1, "reserve");
        a.status = Status::Compensated;
        a.notify = Some(sagaflow_store::NotificationKind::Finished);
        store.append(a).await.expect("append");
        store.pending_notifications(10).await.expect("pending")
    };
    assert_eq!(pending.len(), 1);
    let store = open(&path);
    assert_eq!(
        store.pending_notifications(10).await.expect("pending"),
        pending
    );
}

#[tokio::test]
async fn a_database_from_a_newer_schema_is_refused_clearly() {
    let (_dir, path) = temp_db();
    drop(open(&path));
    let conn = Connection::open(&path).expect("opening the database directly");
    conn.execute(
        "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, 0)",
        [SCHEMA_VERSION + 1],
    )
    .expect("faking a newer schema");
    drop(conn);

    match SqliteStore::open(&path) {
        Err(Error::Backend(message)) => {
            assert!(message.contains("newer"), "unclear message: {message}");
            assert!(
                message.contains(&(SCHEMA_VERSION + 1).to_string()),
                "message lacks the version: {message}"
            );
        }
        Err(other) => panic!("expected a backend error, got {other:?}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_commits() {
    let (_dir, path) = temp_db();
    let store = Arc::new(open(&path));
    let ids: Vec<String> = (0..200).map(|i| format!("e{i:03}")).collect();

    let creates: Vec<_> = ids
        .iter()
        .map(|id| {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move { create(&store, &id).await })
        })
        .collect();
    for task in creates {
        task.await.expect("create task");
    }

    let (batches_before, requests_before) = store.group_commit_stats();
    let appends: Vec<_> = ids
        .iter()
        .map(|id| {
            let (store, a) = (store.clone(), append(id, 1, "pay"));
            tokio::spawn(async move { store.append(a).await })
        })
        .collect();
    for task in appends {
        assert_eq!(task.await.expect("append task").expect("append"), 2);
    }
    let (batches_after, requests_after) = store.group_commit_stats();
    let (batches, requests) = (
        batches_after - batches_before,
        requests_after - requests_before,
    );
    assert_eq!(requests, 200);
    assert!(
        batches < requests,
        "{batches} batches for {requests} appends"
    );

    for id in &ids {
        assert_eq!(store.get_execution(id).await.expect("get").events, 2);
        let history = store.load_history(id).await.expect("history");
        assert_eq!(history, [started(id), step_succeeded("pay")]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_undoes_only_its_own_append_in_a_batch() {
    let (_dir, path) = temp_db();
    let store = Arc::new(open(&path));
    let ids: Vec<String> = (0..100).map(|i| format!("e{i:03}")).collect();
    for id in &ids {
        create(&store, id).await;
    }
    // Even-numbered executions get a stale version and must conflict.
    let tasks: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let store = store.clone();
            let expected = if i % 2 == 0 { 0 } else { 1 };
            let a = append(id, expected, "pay");
            tokio::spawn(async move { store.append(a).await })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let result = task.await.expect("append task");
        let events = store.get_execution(&ids[i]).await.expect("get").events;
        if i % 2 == 0 {
            assert!(
                matches!(result, Err(Error::Conflict { actual: 1, .. })),
                "{result:?}"
            );
            assert_eq!(events, 1);
        } else {
            assert_eq!(result.expect("fresh append"), 2);
            assert_eq!(events, 2);
        }
    }
}

#[tokio::test]
async fn an_unreadable_event_is_reported_as_corrupt() {
    let (_dir, path) = temp_db();
    let store = open(&path);
    create(&store, "e1").await;
    let conn = Connection::open(&path).expect("opening the database directly");
    conn.execute(
        "UPDATE events SET body = '{not json' WHERE execution_id = 'e1'",
        [],
    )
    .expect("corrupting an event");
    drop(conn);

    match store.load_history("e1").await {
        Err(Error::Corrupt(message)) => assert!(message.contains("e1"), "{message}"),
        other => panic!("expected corrupt data, got {other:?}"),
    }
}

#[tokio::test]
async fn dropping_the_store_leaves_a_single_checkpointed_file() {
    let (dir, path) = temp_db();
    let store = open(&path);
    create(&store, "e1").await;
    store
        .get_execution("e1")
        .await
        .expect("a read, to use the pool");
    drop(store);
    let mut files: Vec<_> = std::fs::read_dir(dir.path())
        .expect("listing the directory")
        .map(|e| e.expect("an entry").file_name())
        .collect();
    files.sort();
    assert_eq!(files, ["sagaflow.db", "sagaflow.db.lock"]);
}

#[tokio::test]
async fn a_second_store_on_the_same_database_is_refused_until_the_first_is_gone() {
    let (_dir, path) = temp_db();
    let first = open(&path);
    let err = match SqliteStore::open(&path) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("two stores opened one database"),
    };
    assert!(err.contains("in use by another Sagaflow process"), "{err}");
    drop(first);
    SqliteStore::open(&path).expect("the lock is released with the first store");
}
