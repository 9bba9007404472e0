//! The behaviour every backend must share, as a reusable test suite.
//!
//! Not part of the library's normal build: it compiles with the
//! `conformance` feature, which the store's own tests turn on (the crate is
//! its own dev-dependency with that feature), as would the tests of a
//! backend kept elsewhere.
//!
//! Each case is a `pub async fn` taking a fresh, empty store and panicking
//! when the store misbehaves. [`conformance_tests!`](crate::conformance_tests)
//! turns every case into a `#[tokio::test]` for one backend, so a backend's
//! test file is one line per backend and a new case reaches all of them:
//!
//! ```
//! mod memory {
//!     sagaflow_store::conformance_tests!((sagaflow_store::memory::MemoryStore::new(), ()));
//! }
//! ```
//!
//! The macro argument evaluates to a `(store, guard)` pair; the guard (a
//! temporary directory, say) lives until the store is dropped. It may use
//! `.await`. For a backend that needs an outside service, the form
//! `conformance_tests!(optional: EXPR)` takes an `Option<(store, guard)>`
//! and a case whose fixture is `None` returns at once (the fixture says why
//! it skipped): see `tests/postgres.rs`.
//!
//! [`lease_tests!`](crate::lease_tests) (same forms) adds the cases of
//! several nodes sharing a store: leases, fenced appends, take-over, timers
//! per node, the node registry. Only the backends several nodes can share
//! run them (memory, PostgreSQL), the stores that implement
//! [`Leases`](crate::Leases): SQLite has one owning process and no leases.

use sagaflow_core::event::Millis;
use sagaflow_core::{ErrorInfo, Event, EventKind, Status, TaskKind};
use serde_json::{json, Value};

use crate::{
    Append, Create, Created, DeadLetter, Error, ExecutionRecord, ListFilter, Notification,
    NotificationKind, SharedStore, Store, Timer,
};

/// Expands to one `#[tokio::test]` per conformance case, each running
/// against a store made by `$make` (an expression giving `(store, guard)`).
#[macro_export]
macro_rules! conformance_tests {
    (optional: $make:expr) => {
        $crate::conformance_tests!(@list [optional] $make);
    };
    ($make:expr) => {
        $crate::conformance_tests!(@list [always] $make);
    };
    (@list [$mode:ident] $make:expr) => {
        $crate::conformance_tests!(@cases [$mode] $make;
            same_digest_keeps_the_definition_version,
            a_changed_digest_adds_a_version_and_keeps_the_old_one,
            listed_definitions_are_the_latest_version_of_each,
            an_unknown_definition_is_not_found,
            a_deleted_definition_has_no_latest_and_is_not_listed_but_its_versions_stay_readable,
            deleting_is_idempotent_and_deleting_an_unknown_definition_deletes_nothing,
            registering_a_deleted_name_again_creates_the_next_version_even_with_the_same_digest,
            a_live_definitions_tags_are_set_replaced_removed_and_bounded,
            deleting_a_definition_deletes_its_tags_and_only_a_live_one_is_tagged,
            a_version_is_published_once_and_listed_newest_first,
            an_alias_routes_only_to_published_versions_which_stay_published_while_routed,
            deleting_a_definition_deletes_its_versions_and_aliases,
            an_executions_origin_is_recorded_once,
            an_activity_is_created_once_listed_by_name_tagged_and_deleted,
            an_activity_task_is_taken_once_until_forgotten_or_expired,
            an_offered_activity_task_is_seen_oldest_first_until_taken_answered_or_expired,
            a_new_execution_reads_back_as_created,
            creating_an_execution_again_returns_the_existing_one_untouched,
            an_append_at_the_current_version_extends_the_history,
            a_stale_append_is_a_conflict_and_changes_nothing,
            of_two_racing_appends_exactly_one_wins,
            an_append_updates_status_output_and_error,
            history_after_a_seq_returns_only_later_events,
            history_pages_return_every_event_exactly_once_in_order,
            event_times_are_those_of_the_events_of_one_type_in_order,
            every_kind_of_event_round_trips,
            numbers_beyond_64_bits_and_long_decimals_read_back_digit_for_digit,
            listing_filters_by_status_and_definition,
            listing_filters_by_start_time,
            paging_returns_each_execution_once_newest_first,
            a_malformed_cursor_is_rejected,
            a_timer_not_yet_due_is_not_claimed,
            a_due_timer_is_claimed_once_then_gone,
            a_create_arms_the_timers_of_its_first_decision_and_a_repeated_one_arms_none,
            timers_are_claimed_earliest_first_up_to_the_limit,
            unfinished_lists_only_running_and_compensating_executions,
            unknown_executions_are_not_found,
            a_notifying_append_records_exactly_one_notification_with_it,
            a_conflicting_notifying_append_records_no_notification,
            a_create_that_finishes_at_once_records_its_notification_and_a_repeated_one_none,
            an_append_without_notify_records_no_notification,
            acking_removes_a_notification_and_is_idempotent,
            notifications_are_pending_oldest_first_up_to_the_limit,
            a_stuck_notification_keeps_its_kind,
            a_buried_notification_leaves_the_outbox_and_is_kept_as_a_dead_letter,
            replaying_a_dead_letter_makes_it_pending_again_under_a_new_id,
        );
    };
    (@cases [always] $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                // One binding, so the store (field 0) drops before its guard.
                let fixture = $make;
                $crate::conformance::$case(&fixture.0).await;
            }
        )*
    };
    (@cases [optional] $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some(fixture) = $make else {
                    return;
                };
                $crate::conformance::$case(&fixture.0).await;
            }
        )*
    };
}

/// Expands to one `#[tokio::test]` per lease case (the cases of several
/// nodes on one store), with the forms of
/// [`conformance_tests!`](crate::conformance_tests).
#[macro_export]
macro_rules! lease_tests {
    (optional: $make:expr) => {
        $crate::lease_tests!(@list [optional] $make);
    };
    ($make:expr) => {
        $crate::lease_tests!(@list [always] $make);
    };
    (@list [$mode:ident] $make:expr) => {
        $crate::conformance_tests!(@cases [$mode] $make;
            a_claimed_execution_is_refused_to_other_nodes_until_its_lease_expires,
            the_holder_can_claim_again_and_renew_but_an_expired_lease_is_not_revived,
            a_released_execution_can_be_claimed_by_another_node_at_once,
            a_finished_or_unknown_execution_is_never_leased,
            a_node_that_lost_its_lease_cannot_append_and_the_new_holder_can,
            a_fenced_append_is_checked_for_its_version_first,
            take_over_returns_only_unfinished_executions_whose_lease_expired_or_never_was,
            an_execution_created_leased_is_held_by_its_creator,
            concurrent_take_overs_never_return_the_same_execution,
            finishing_clears_the_lease,
            a_finished_execution_has_no_lease_so_any_node_may_redrive_it,
            timers_of_an_execution_held_by_another_live_node_are_not_handed_out,
            due_timers_of_free_executions_are_claimed_with_their_lease,
            a_node_address_is_known_only_within_its_ttl,
            a_claimed_notification_is_delivered_by_one_node_until_its_claim_runs_out,
        );
    };
}

// ---------------------------------------------------------------------------
// Builders

/// The time the builders stamp events and records with.
pub const T0: Millis = 1_700_000_000_000;

/// An `execution_started` event at [`T0`].
pub fn started(id: &str, definition: &str, input: Value) -> Event {
    Event {
        at: T0,
        kind: EventKind::ExecutionStarted {
            execution_id: id.to_string(),
            definition: definition.to_string(),
            version: 1,
            input,
            keys: Default::default(),
        },
    }
}

/// A first attempt's `step_succeeded` event.
pub fn step_succeeded(step: &str, at: Millis) -> Event {
    Event {
        at,
        kind: EventKind::StepSucceeded {
            step: step.to_string(),
            attempt: 1,
            output: json!({ "step": step }),
        },
    }
}

/// A running execution's record, as created at [`T0`].
pub fn record(id: &str, definition: &str, input: Value) -> ExecutionRecord {
    ExecutionRecord {
        id: id.to_string(),
        definition: definition.to_string(),
        version: 1,
        status: Status::Running,
        input,
        output: None,
        error: None,
        started_at: T0,
        updated_at: T0,
        events: 0,
    }
}

/// Creates a running execution with its `ExecutionStarted` event (version 1).
async fn start<S: Store + ?Sized>(store: &S, id: &str, definition: &str) -> ExecutionRecord {
    let input = json!({ "id": id });
    match store
        .create_execution(Create::new(
            record(id, definition, input.clone()),
            vec![started(id, definition, input)],
            Vec::new(),
        ))
        .await
    {
        Ok(Created::New(rec)) => rec,
        other => panic!("creating `{id}` gave {other:?}"),
    }
}

fn append(id: &str, expected_version: u64, events: Vec<Event>, status: Status) -> Append {
    Append {
        execution_id: id.to_string(),
        expected_version,
        events,
        status,
        output: None,
        error: None,
        updated_at: T0 + 1_000,
        timers: Vec::new(),
        notify: None,
    }
}

fn finished(status: Status, at: Millis) -> Event {
    Event {
        at,
        kind: EventKind::ExecutionFinished {
            status,
            error: Some(ErrorInfo::new("Rejected", "no")),
            output: None,
        },
    }
}

/// An append that finishes `id` with `status` and asks for a notification.
fn notifying(id: &str, expected_version: u64, status: Status) -> Append {
    let mut a = append(
        id,
        expected_version,
        vec![finished(status, T0 + 1_000)],
        status,
    );
    a.notify = Some(NotificationKind::Finished);
    a
}

fn timer(id: &str, step: &str, fire_at: Millis) -> Timer {
    Timer {
        execution_id: id.to_string(),
        step: step.to_string(),
        task: TaskKind::Action,
        attempt: 2,
        fire_at,
    }
}

/// Arms `timers` on a fresh execution `id`.
async fn arm<S: Store + ?Sized>(store: &S, id: &str, timers: Vec<Timer>) {
    start(store, id, "order").await;
    let mut a = append(id, 1, vec![], Status::Running);
    a.timers = timers;
    store.append(a).await.expect("arming timers");
}

fn ids(records: &[ExecutionRecord]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

fn assert_not_found<T: std::fmt::Debug>(result: crate::Result<T>, what: &str) {
    match result {
        Err(Error::NotFound { what: w, .. }) if w == what => {}
        other => panic!("expected {what} not found, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Definitions

pub async fn same_digest_keeps_the_definition_version(store: &dyn Store) {
    let (first, new) = store
        .put_definition("order", "saga", "source v1", "d1", T0)
        .await
        .expect("first put");
    assert!(new);
    assert_eq!(first.version, 1);

    // A re-registration of the same content is a no-op, whatever the rest says.
    let (again, new) = store
        .put_definition("order", "saga", "reformatted v1", "d1", T0 + 5)
        .await
        .expect("second put");
    assert!(!new);
    assert_eq!(again, first);
    assert_eq!(
        store.get_definition("order", None).await.expect("get"),
        first
    );
}

pub async fn a_changed_digest_adds_a_version_and_keeps_the_old_one(store: &dyn Store) {
    let (v1, _) = store
        .put_definition("order", "saga", "source v1", "d1", T0)
        .await
        .expect("put v1");
    let (v2, new) = store
        .put_definition("order", "asl", "source v2", "d2", T0 + 1)
        .await
        .expect("put v2");
    assert!(new);
    assert_eq!(v2.version, 2);
    assert_eq!(
        (
            v2.format.as_str(),
            v2.source.as_str(),
            v2.digest.as_str(),
            v2.created_at
        ),
        ("asl", "source v2", "d2", T0 + 1)
    );
    assert_eq!(
        store.get_definition("order", Some(1)).await.expect("v1"),
        v1
    );
    assert_eq!(
        store.get_definition("order", Some(2)).await.expect("v2"),
        v2
    );
    assert_eq!(
        store.get_definition("order", None).await.expect("latest"),
        v2
    );

    // Only the latest digest counts: going back to old content is a new version.
    let (v3, new) = store
        .put_definition("order", "saga", "source v1", "d1", T0 + 2)
        .await
        .expect("put v3");
    assert!(new);
    assert_eq!(v3.version, 3);
}

pub async fn listed_definitions_are_the_latest_version_of_each(store: &dyn Store) {
    assert!(store.list_definitions().await.expect("list").is_empty());
    for (name, digest) in [("refund", "r1"), ("order", "o1"), ("order", "o2")] {
        store
            .put_definition(name, "saga", "src", digest, T0)
            .await
            .expect("put");
    }
    let listed: Vec<_> = store
        .list_definitions()
        .await
        .expect("list")
        .into_iter()
        .map(|d| (d.name, d.version, d.digest))
        .collect();
    assert_eq!(
        listed,
        [
            ("order".to_string(), 2, "o2".to_string()),
            ("refund".to_string(), 1, "r1".to_string())
        ]
    );
}

pub async fn an_unknown_definition_is_not_found(store: &dyn Store) {
    assert_not_found(store.get_definition("nope", None).await, "definition");
    store
        .put_definition("order", "saga", "src", "d1", T0)
        .await
        .expect("put");
    assert_not_found(store.get_definition("order", Some(2)).await, "definition");
}

pub async fn a_deleted_definition_has_no_latest_and_is_not_listed_but_its_versions_stay_readable(
    store: &dyn Store,
) {
    for (name, digest) in [("order", "o1"), ("order", "o2"), ("refund", "r1")] {
        store
            .put_definition(name, "asl", "src", digest, T0)
            .await
            .expect("put");
    }
    let execution = start(store, "e1", "order").await;

    assert!(store.delete_definition("order").await.expect("delete"));

    assert_not_found(store.get_definition("order", None).await, "definition");
    let listed: Vec<_> = store
        .list_definitions()
        .await
        .expect("list")
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(listed, ["refund"]);
    for version in [1, 2] {
        let d = store
            .get_definition("order", Some(version))
            .await
            .expect("a deleted definition's version stays readable");
        assert_eq!((d.version, d.format.as_str()), (version, "asl"));
    }
    assert_eq!(
        store.get_execution("e1").await.expect("get"),
        execution,
        "its executions are untouched"
    );
    assert_eq!(store.load_history("e1").await.expect("history").len(), 1);
    assert_eq!(
        store
            .get_definition("refund", None)
            .await
            .expect("others stay")
            .digest,
        "r1"
    );
}

pub async fn deleting_is_idempotent_and_deleting_an_unknown_definition_deletes_nothing(
    store: &dyn Store,
) {
    assert!(!store.delete_definition("nope").await.expect("delete"));
    store
        .put_definition("order", "saga", "src", "d1", T0)
        .await
        .expect("put");
    assert!(store.delete_definition("order").await.expect("delete"));
    assert!(!store
        .delete_definition("order")
        .await
        .expect("delete again"));
    assert!(store.list_definitions().await.expect("list").is_empty());
}

pub async fn registering_a_deleted_name_again_creates_the_next_version_even_with_the_same_digest(
    store: &dyn Store,
) {
    store
        .put_definition("order", "asl", "src", "d1", T0)
        .await
        .expect("put");
    store.delete_definition("order").await.expect("delete");

    let (again, new) = store
        .put_definition("order", "asl", "src", "d1", T0 + 1)
        .await
        .expect("put again");
    assert!(new, "a deleted definition is not returned as unchanged");
    assert_eq!((again.version, again.created_at), (2, T0 + 1));
    assert_eq!(
        store.get_definition("order", None).await.expect("latest"),
        again
    );
    let listed: Vec<_> = store
        .list_definitions()
        .await
        .expect("list")
        .into_iter()
        .map(|d| (d.name, d.version))
        .collect();
    assert_eq!(listed, [("order".to_string(), 2)]);

    // The same content again is now the live latest version: unchanged.
    let (same, new) = store
        .put_definition("order", "asl", "src", "d1", T0 + 2)
        .await
        .expect("put a third time");
    assert!(!new);
    assert_eq!(same, again);
}

fn tags(pairs: &[(&str, &str)]) -> crate::Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub async fn a_live_definitions_tags_are_set_replaced_removed_and_bounded(store: &dyn Store) {
    store
        .put_definition("order", "asl", "src", "d1", T0)
        .await
        .expect("put");
    assert_eq!(
        store.definition_tags("order").await.expect("tags"),
        tags(&[])
    );
    let set = store
        .tag_definition("order", &tags(&[("team", "pay"), ("env", "dev")]), &[], 3)
        .await
        .expect("tag");
    assert_eq!(set, Some(tags(&[("env", "dev"), ("team", "pay")])));
    // A key again takes the new value; removing an unknown key is no error.
    let set = store
        .tag_definition(
            "order",
            &tags(&[("env", "prod")]),
            &["team".to_string(), "none".to_string()],
            3,
        )
        .await
        .expect("tag again");
    assert_eq!(set, Some(tags(&[("env", "prod")])));
    // Past the bound nothing is written.
    let over = store
        .tag_definition(
            "order",
            &tags(&[("a", "1"), ("b", "2"), ("c", "3")]),
            &[],
            3,
        )
        .await
        .expect("tag past the bound");
    assert_eq!(over, None);
    assert_eq!(
        store.definition_tags("order").await.expect("tags"),
        tags(&[("env", "prod")])
    );
    // A new version keeps the definition's tags.
    store
        .put_definition("order", "asl", "src2", "d2", T0 + 1)
        .await
        .expect("put a new version");
    assert_eq!(
        store.definition_tags("order").await.expect("tags"),
        tags(&[("env", "prod")])
    );
}

pub async fn deleting_a_definition_deletes_its_tags_and_only_a_live_one_is_tagged(
    store: &dyn Store,
) {
    for unknown in [
        store.definition_tags("none").await.err(),
        store
            .tag_definition("none", &tags(&[("a", "1")]), &[], 50)
            .await
            .err(),
    ] {
        assert!(
            matches!(unknown, Some(Error::NotFound { .. })),
            "{unknown:?}"
        );
    }
    store
        .put_definition("order", "asl", "src", "d1", T0)
        .await
        .expect("put");
    store
        .tag_definition("order", &tags(&[("a", "1")]), &[], 50)
        .await
        .expect("tag");
    store.delete_definition("order").await.expect("delete");
    assert!(matches!(
        store.definition_tags("order").await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store
            .tag_definition("order", &tags(&[("b", "2")]), &[], 50)
            .await,
        Err(Error::NotFound { .. })
    ));
    // Created again, it starts without the old tags.
    store
        .put_definition("order", "asl", "src", "d1", T0 + 1)
        .await
        .expect("put again");
    assert_eq!(
        store.definition_tags("order").await.expect("tags"),
        tags(&[])
    );
}

// ---------------------------------------------------------------------------
// Published versions, aliases, execution origins

fn alias(name: &str, alias: &str, routing: &[(u32, u32)], at: Millis) -> crate::AliasRecord {
    crate::AliasRecord {
        name: name.to_string(),
        alias: alias.to_string(),
        description: format!("{alias} of {name}"),
        routing: routing.to_vec(),
        created_at: at,
        updated_at: at,
    }
}

pub async fn a_version_is_published_once_and_listed_newest_first(store: &dyn Store) {
    assert!(matches!(
        store.publish_version("order", 1, "", T0).await,
        Err(Error::NotFound { .. })
    ));
    for (i, digest) in ["d1", "d2", "d3"].into_iter().enumerate() {
        store
            .put_definition("order", "asl", digest, digest, T0 + i as Millis)
            .await
            .expect("put");
    }
    assert_eq!(store.published_versions("order").await.expect("list"), []);
    let (v1, new) = store
        .publish_version("order", 1, "first", T0 + 10)
        .await
        .expect("publish 1");
    assert!(new);
    assert_eq!(
        (v1.version, v1.description.as_str(), v1.published_at),
        (1, "first", T0 + 10)
    );
    // Again: the version as it was published, description unchanged.
    assert_eq!(
        store
            .publish_version("order", 1, "other", T0 + 11)
            .await
            .expect("publish 1 again"),
        (v1.clone(), false)
    );
    let (v3, _) = store
        .publish_version("order", 3, "", T0 + 12)
        .await
        .expect("publish 3");
    assert!(matches!(
        store.publish_version("order", 4, "", T0).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        store.published_versions("order").await.expect("list"),
        [v3.clone(), v1.clone()]
    );
    assert_eq!(
        store
            .unpublish_version("order", 1)
            .await
            .expect("unpublish"),
        crate::Unpublish::Done
    );
    assert_eq!(
        store.unpublish_version("order", 1).await.expect("again"),
        crate::Unpublish::Absent
    );
    assert_eq!(store.published_versions("order").await.expect("list"), [v3]);
    // The definition version itself stays.
    assert_eq!(
        store
            .get_definition("order", Some(1))
            .await
            .expect("v1")
            .version,
        1
    );
}

pub async fn an_alias_routes_only_to_published_versions_which_stay_published_while_routed(
    store: &dyn Store,
) {
    use crate::AliasWrite;
    assert!(matches!(
        store
            .put_alias(&alias("order", "prod", &[(1, 100)], T0), true)
            .await,
        Err(Error::NotFound { .. })
    ));
    for digest in ["d1", "d2"] {
        store
            .put_definition("order", "asl", digest, digest, T0)
            .await
            .expect("put");
    }
    store
        .publish_version("order", 1, "", T0)
        .await
        .expect("publish");
    let prod = alias("order", "prod", &[(1, 60), (2, 40)], T0 + 1);
    assert_eq!(
        store.put_alias(&prod, true).await.expect("unpublished"),
        AliasWrite::Unpublished(2)
    );
    assert_eq!(
        store.definition_aliases("order").await.expect("aliases"),
        []
    );
    store
        .publish_version("order", 2, "", T0)
        .await
        .expect("publish");
    assert_eq!(
        store.put_alias(&prod, true).await.expect("create"),
        AliasWrite::Stored(prod.clone())
    );
    // A create again answers the stored alias and writes nothing.
    let other = alias("order", "prod", &[(1, 100)], T0 + 2);
    assert_eq!(
        store.put_alias(&other, true).await.expect("create again"),
        AliasWrite::Exists(prod.clone())
    );
    assert_eq!(
        store.unpublish_version("order", 2).await.expect("routed"),
        crate::Unpublish::Routed("prod".into())
    );
    // A replace keeps the creation time.
    let updated = crate::AliasRecord {
        created_at: T0 + 1,
        ..other.clone()
    };
    assert_eq!(
        store.put_alias(&other, false).await.expect("update"),
        AliasWrite::Stored(updated.clone())
    );
    assert!(matches!(
        store
            .put_alias(&alias("order", "beta", &[(1, 100)], T0), false)
            .await,
        Err(Error::NotFound { .. })
    ));
    let beta = alias("order", "beta", &[(1, 100)], T0 + 3);
    store.put_alias(&beta, true).await.expect("beta");
    assert_eq!(
        store.definition_aliases("order").await.expect("aliases"),
        [beta, updated]
    );
    // No longer routed: version 2 can be unpublished.
    assert_eq!(
        store
            .unpublish_version("order", 2)
            .await
            .expect("unpublish"),
        crate::Unpublish::Done
    );
    assert!(store.delete_alias("order", "beta").await.expect("delete"));
    assert!(!store.delete_alias("order", "beta").await.expect("again"));
    assert_eq!(
        store
            .definition_aliases("order")
            .await
            .expect("aliases")
            .len(),
        1
    );
}

pub async fn deleting_a_definition_deletes_its_versions_and_aliases(store: &dyn Store) {
    store
        .put_definition("order", "asl", "src", "d1", T0)
        .await
        .expect("put");
    store
        .publish_version("order", 1, "", T0)
        .await
        .expect("publish");
    store
        .put_alias(&alias("order", "prod", &[(1, 100)], T0), true)
        .await
        .expect("alias");
    store.delete_definition("order").await.expect("delete");
    assert!(matches!(
        store.published_versions("order").await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.definition_aliases("order").await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        store
            .unpublish_version("order", 1)
            .await
            .expect("unpublish"),
        crate::Unpublish::Absent
    );
    // Created again, it has neither.
    store
        .put_definition("order", "asl", "src", "d1", T0 + 1)
        .await
        .expect("put again");
    assert_eq!(store.published_versions("order").await.expect("list"), []);
    assert_eq!(
        store.definition_aliases("order").await.expect("aliases"),
        []
    );
}

pub async fn an_executions_origin_is_recorded_once(store: &dyn Store) {
    assert_eq!(store.execution_origin("e1").await.expect("none"), None);
    store
        .record_execution_origin("e1", "prod")
        .await
        .expect("record");
    store
        .record_execution_origin("e1", "3")
        .await
        .expect("record again");
    assert_eq!(
        store.execution_origin("e1").await.expect("origin"),
        Some("prod".to_string())
    );
}

pub async fn an_activity_is_created_once_listed_by_name_tagged_and_deleted(store: &dyn Store) {
    use crate::Tags;
    assert_eq!(store.get_activity("work").await.expect("none"), None);
    let tags: Tags = [("team".to_string(), "a".to_string())].into();
    let (created, new) = store
        .create_activity("work", &tags, 1_000)
        .await
        .expect("create");
    assert!(new);
    assert_eq!(
        (created.name.as_str(), created.created_at, &created.tags),
        ("work", 1_000, &tags)
    );
    // Again: the existing one, unchanged.
    let (again, new) = store
        .create_activity("work", &Tags::new(), 2_000)
        .await
        .expect("create again");
    assert!(!new);
    assert_eq!(again, created);
    store
        .create_activity("another", &Tags::new(), 3_000)
        .await
        .expect("create another");
    let names: Vec<String> = store
        .list_activities()
        .await
        .expect("list")
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["another", "work"]);

    let set: Tags = [("env".to_string(), "prod".to_string())].into();
    let tagged = store
        .tag_activity("work", &set, &["team".to_string()], 50)
        .await
        .expect("tag")
        .expect("within the limit");
    assert_eq!(tagged, set);
    let too_many: Tags = [("x".to_string(), String::new())].into();
    assert_eq!(
        store
            .tag_activity("work", &too_many, &[], 1)
            .await
            .expect("over the limit"),
        None
    );
    assert_eq!(
        store
            .get_activity("work")
            .await
            .expect("get")
            .expect("there")
            .tags,
        set
    );
    assert!(matches!(
        store.tag_activity("nothing", &set, &[], 50).await,
        Err(crate::Error::NotFound { .. })
    ));

    assert!(store.delete_activity("work").await.expect("delete"));
    assert!(!store.delete_activity("work").await.expect("delete again"));
    assert_eq!(store.get_activity("work").await.expect("gone"), None);
    // A new one of the same name starts afresh.
    let (fresh, new) = store
        .create_activity("work", &Tags::new(), 4_000)
        .await
        .expect("create anew");
    assert!(new);
    assert_eq!((fresh.created_at, fresh.tags.len()), (4_000, 0));
}

pub async fn an_activity_task_is_taken_once_until_forgotten_or_expired(store: &dyn Store) {
    use crate::ActivityTaskClaim;
    let claim = |token: &str, worker: &str, at: Millis, until: Millis| ActivityTaskClaim {
        token: token.to_string(),
        execution_id: "e1".to_string(),
        worker: worker.to_string(),
        claimed_at: at,
        expires_at: until,
    };
    assert!(store
        .claim_activity_task(&claim("t1", "w1", 1_000, 10_000))
        .await
        .expect("take"));
    assert!(!store
        .claim_activity_task(&claim("t1", "w2", 2_000, 10_000))
        .await
        .expect("taken before"));
    assert!(store
        .claim_activity_task(&claim("t2", "w2", 2_000, 5_000))
        .await
        .expect("another token"));
    store.forget_activity_task("t1").await.expect("forget");
    store
        .forget_activity_task("t1")
        .await
        .expect("forget again");
    assert!(store
        .claim_activity_task(&claim("t1", "w3", 3_000, 10_000))
        .await
        .expect("forgotten, so free"));
    // Past t2's deadline its record goes.
    assert!(store
        .claim_activity_task(&claim("t2", "w4", 6_000, 20_000))
        .await
        .expect("expired, so free"));
}

pub async fn an_offered_activity_task_is_seen_oldest_first_until_taken_answered_or_expired(
    store: &dyn Store,
) {
    use crate::{ActivityOffer, ActivityTaskClaim};
    let offer = |token: &str, activity: &str, at: Millis, until: Millis| ActivityOffer {
        token: token.to_string(),
        activity: activity.to_string(),
        execution_id: format!("e-{token}"),
        input: json!({ "job": token, "amount": 12.50 }),
        offered_at: at,
        expires_at: until,
    };
    let tokens = |offers: Vec<ActivityOffer>| -> Vec<String> {
        offers.into_iter().map(|o| o.token).collect()
    };
    assert!(store
        .offer_activity_task(&offer("t2", "work", 2_000, 10_000))
        .await
        .expect("offer t2"));
    assert!(store
        .offer_activity_task(&offer("t1", "work", 1_000, 10_000))
        .await
        .expect("offer t1"));
    assert!(store
        .offer_activity_task(&offer("t3", "other", 1_500, 10_000))
        .await
        .expect("offer t3"));
    // Offered again (a recovery): nothing changes.
    assert!(!store
        .offer_activity_task(&offer("t1", "work", 3_000, 10_000))
        .await
        .expect("offer t1 again"));
    let seen = store
        .activity_offers("work", 3_000, 10)
        .await
        .expect("offers");
    assert_eq!(seen[0], offer("t1", "work", 1_000, 10_000), "kept exactly");
    assert_eq!(tokens(seen), ["t1", "t2"]);
    assert_eq!(
        tokens(store.activity_offers("work", 3_000, 1).await.expect("one")),
        ["t1"]
    );
    // Taken: no longer offered, and not offered again.
    let claim = ActivityTaskClaim {
        token: "t1".to_string(),
        execution_id: "e-t1".to_string(),
        worker: "w1".to_string(),
        claimed_at: 4_000,
        expires_at: 10_000,
    };
    assert!(store.claim_activity_task(&claim).await.expect("take t1"));
    assert!(!store
        .offer_activity_task(&offer("t1", "work", 4_000, 10_000))
        .await
        .expect("a taken task is not offered again"));
    assert_eq!(
        tokens(
            store
                .activity_offers("work", 4_000, 10)
                .await
                .expect("offers")
        ),
        ["t2"]
    );
    // Answered: gone.
    store.forget_activity_task("t2").await.expect("forget t2");
    assert!(store
        .activity_offers("work", 4_000, 10)
        .await
        .expect("offers")
        .is_empty());
    // Past its deadline an offer is not seen.
    assert!(store
        .activity_offers("other", 10_001, 10)
        .await
        .expect("offers")
        .is_empty());
    assert_eq!(
        tokens(
            store
                .activity_offers("other", 10_000, 10)
                .await
                .expect("offers")
        ),
        ["t3"]
    );
}

// ---------------------------------------------------------------------------
// Creating and appending

pub async fn a_new_execution_reads_back_as_created(store: &dyn Store) {
    let mut rec = record("e1", "order", json!({ "items": [1, 2], "note": "ünïcode" }));
    // The store counts the events itself.
    rec.events = 99;
    let events = vec![
        started("e1", "order", rec.input.clone()),
        step_succeeded("reserve", T0 + 1),
    ];
    let created = match store
        .create_execution(Create::new(rec.clone(), events.clone(), Vec::new()))
        .await
    {
        Ok(Created::New(r)) => r,
        other => panic!("expected a new execution, got {other:?}"),
    };
    assert_eq!(created, ExecutionRecord { events: 2, ..rec });
    assert_eq!(store.get_execution("e1").await.expect("get"), created);
    assert_eq!(store.load_history("e1").await.expect("history"), events);
}

pub async fn creating_an_execution_again_returns_the_existing_one_untouched(store: &dyn Store) {
    let first = start(store, "e1", "order").await;
    let other_input = json!({ "different": true });
    let again = store
        .create_execution(Create::new(
            record("e1", "refund", other_input.clone()),
            vec![
                started("e1", "refund", other_input),
                step_succeeded("x", T0),
            ],
            Vec::new(),
        ))
        .await
        .expect("second create");
    assert_eq!(again, Created::Existing(first.clone()));
    assert_eq!(store.get_execution("e1").await.expect("get"), first);
    assert_eq!(store.load_history("e1").await.expect("history").len(), 1);
}

pub async fn an_append_at_the_current_version_extends_the_history(store: &dyn Store) {
    start(store, "e1", "order").await;
    let a = append(
        "e1",
        1,
        vec![step_succeeded("a", T0 + 1), step_succeeded("b", T0 + 2)],
        Status::Running,
    );
    assert_eq!(store.append(a).await.expect("append"), 3);
    let a = append("e1", 3, vec![step_succeeded("c", T0 + 3)], Status::Running);
    assert_eq!(store.append(a).await.expect("append"), 4);

    let history = store.load_history("e1").await.expect("history");
    assert_eq!(history.len(), 4);
    assert_eq!(history[3], step_succeeded("c", T0 + 3));
    assert_eq!(store.get_execution("e1").await.expect("get").events, 4);
}

pub async fn a_stale_append_is_a_conflict_and_changes_nothing(store: &dyn Store) {
    start(store, "e1", "order").await;
    let a = append("e1", 1, vec![step_succeeded("a", T0 + 1)], Status::Running);
    store.append(a).await.expect("first append");
    let before = store.get_execution("e1").await.expect("get");
    let history = store.load_history("e1").await.expect("history");

    for stale in [1, 5] {
        let mut a = append(
            "e1",
            stale,
            vec![step_succeeded("b", T0 + 2)],
            Status::Failed,
        );
        a.error = Some(ErrorInfo::new("Boom", "stale"));
        a.timers = vec![timer("e1", "b", T0)];
        match store.append(a).await {
            Err(Error::Conflict {
                id,
                expected,
                actual: 2,
            }) if id == "e1" && expected == stale => {}
            other => panic!("expected a conflict, got {other:?}"),
        }
    }
    assert_eq!(store.get_execution("e1").await.expect("get"), before);
    assert_eq!(store.load_history("e1").await.expect("history"), history);
    assert!(store
        .claim_due_timers(T0 + 1_000_000, 10)
        .await
        .expect("claim")
        .is_empty());
}

pub async fn of_two_racing_appends_exactly_one_wins(store: &dyn Store) {
    start(store, "e1", "order").await;
    let left = append(
        "e1",
        1,
        vec![step_succeeded("left", T0 + 1)],
        Status::Running,
    );
    let right = append(
        "e1",
        1,
        vec![step_succeeded("right", T0 + 1)],
        Status::Running,
    );
    let (l, r) = tokio::join!(store.append(left), store.append(right));
    let winner = match (l, r) {
        (Ok(2), Err(Error::Conflict { actual: 2, .. })) => "left",
        (Err(Error::Conflict { actual: 2, .. }), Ok(2)) => "right",
        other => panic!("expected one success and one conflict, got {other:?}"),
    };
    let history = store.load_history("e1").await.expect("history");
    assert_eq!(history.len(), 2);
    assert_eq!(history[1], step_succeeded(winner, T0 + 1));
}

pub async fn an_append_updates_status_output_and_error(store: &dyn Store) {
    start(store, "e1", "order").await;
    let mut a = append("e1", 1, vec![step_succeeded("a", T0 + 1)], Status::Failed);
    a.error = Some(ErrorInfo::new("PaymentDeclined", "card expired"));
    a.updated_at = T0 + 10;
    store.append(a).await.expect("append failed");
    let rec = store.get_execution("e1").await.expect("get");
    assert_eq!(rec.status, Status::Failed);
    assert_eq!(
        rec.error,
        Some(ErrorInfo::new("PaymentDeclined", "card expired"))
    );
    assert_eq!(rec.output, None);
    assert_eq!(rec.updated_at, T0 + 10);
    assert_eq!(rec.started_at, T0);

    // The summary is replaced, not merged: the error goes away.
    let mut a = append(
        "e1",
        2,
        vec![step_succeeded("b", T0 + 2)],
        Status::Succeeded,
    );
    a.output = Some(json!({ "total": 42, "lines": [null, "x"] }));
    a.updated_at = T0 + 20;
    store.append(a).await.expect("append succeeded");
    let rec = store.get_execution("e1").await.expect("get");
    assert_eq!(rec.status, Status::Succeeded);
    assert_eq!(rec.error, None);
    assert_eq!(
        rec.output,
        Some(json!({ "total": 42, "lines": [null, "x"] }))
    );
    assert_eq!((rec.updated_at, rec.events), (T0 + 20, 3));
}

pub async fn history_after_a_seq_returns_only_later_events(store: &dyn Store) {
    start(store, "e1", "order").await;
    let events: Vec<_> = (1..=4)
        .map(|i| step_succeeded(&format!("s{i}"), T0 + i))
        .collect();
    store
        .append(append("e1", 1, events.clone(), Status::Running))
        .await
        .expect("append");

    let all = store.history("e1", 0).await.expect("history");
    assert_eq!(
        all.iter().map(|h| h.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    let later = store.history("e1", 3).await.expect("history after 3");
    assert_eq!(later.iter().map(|h| h.seq).collect::<Vec<_>>(), [4, 5]);
    assert_eq!(later[0].event, events[2]);
    assert!(store.history("e1", 5).await.expect("history").is_empty());
    assert!(store.history("e1", 50).await.expect("history").is_empty());
}

pub async fn event_times_are_those_of_the_events_of_one_type_in_order(store: &dyn Store) {
    start(store, "e1", "order").await;
    start(store, "e2", "order").await;
    let events = vec![
        step_succeeded("a", T0 + 5),
        Event {
            at: T0 + 6,
            kind: EventKind::ExecutionRedriven {},
        },
        step_succeeded("b", T0 + 7),
        Event {
            at: T0 + 9,
            kind: EventKind::ExecutionRedriven {},
        },
    ];
    store
        .append(append("e1", 1, events, Status::Running))
        .await
        .expect("append");
    let kind = EventKind::ExecutionRedriven {}.name();
    assert_eq!(
        store.event_times("e1", kind).await.expect("times"),
        [T0 + 6, T0 + 9]
    );
    assert_eq!(
        store
            .event_times("e1", "step_succeeded")
            .await
            .expect("times"),
        [T0 + 5, T0 + 7]
    );
    assert!(store
        .event_times("e2", kind)
        .await
        .expect("none")
        .is_empty());
}

pub async fn history_pages_return_every_event_exactly_once_in_order(store: &dyn Store) {
    start(store, "e1", "order").await;
    // 1 + 3 appends of 9 events: pages cross the appends' boundaries.
    let mut expected = vec![started("e1", "order", json!({ "id": "e1" }))];
    for batch in 0..3u64 {
        let events: Vec<_> = (0..9)
            .map(|i| step_succeeded(&format!("s{batch}-{i}"), T0 + batch * 10 + i))
            .collect();
        let version = expected.len() as u64;
        store
            .append(append("e1", version, events.clone(), Status::Running))
            .await
            .expect("append");
        expected.extend(events);
    }
    for limit in [1, 2, 7, 28, 29, 1000] {
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let page = store
                .history_page("e1", after, limit)
                .await
                .expect("a page");
            assert!(page.len() <= limit, "a page of {limit} held {}", page.len());
            let Some(last) = page.last() else { break };
            after = last.seq;
            seen.extend(page);
        }
        assert_eq!(
            seen.iter().map(|h| h.seq).collect::<Vec<_>>(),
            (1..=28).collect::<Vec<u64>>(),
            "pages of {limit}"
        );
        assert_eq!(
            seen.into_iter().map(|h| h.event).collect::<Vec<_>>(),
            expected,
            "pages of {limit}"
        );
    }
    let page = store.history_page("e1", 26, 10).await.expect("the end");
    assert_eq!(page.iter().map(|h| h.seq).collect::<Vec<_>>(), [27, 28]);
    assert!(store
        .history_page("e1", 0, 0)
        .await
        .expect("empty")
        .is_empty());
    assert_not_found(store.history_page("nope", 0, 10).await, "execution");
}

pub async fn every_kind_of_event_round_trips(store: &dyn Store) {
    let err = || ErrorInfo::new("Timeout", "no answer in 5s");
    let step = || "charge".to_string();
    let kinds = vec![
        EventKind::StepScheduled {
            step: step(),
            attempt: 1,
            deadline: T0 + 5_000,
            nonce: None,
        },
        EventKind::StepSucceeded {
            step: step(),
            attempt: 1,
            output: Value::Null,
        },
        EventKind::StepFailed {
            step: step(),
            attempt: 2,
            error: err(),
        },
        EventKind::RetryScheduled {
            step: step(),
            task: TaskKind::Compensation,
            attempt: 3,
            fire_at: T0 + 7_500,
        },
        EventKind::RollbackStarted {
            step: step(),
            error: err(),
        },
        EventKind::CancelRequested {
            reason: "user \"asked\"\n".to_string(),
        },
        EventKind::CompensationScheduled {
            step: step(),
            attempt: 1,
            deadline: T0 + 9,
            nonce: Some("00ff00ff00ff00ff".into()),
        },
        EventKind::CompensationSucceeded {
            step: step(),
            attempt: 1,
            output: json!({ "refund": 12.5, "ids": ["a", "b"] }),
        },
        EventKind::CompensationFailed {
            step: step(),
            attempt: 1,
            error: err(),
        },
        EventKind::ExecutionRedriven {},
        EventKind::ExecutionFinished {
            status: Status::Compensated,
            error: Some(err()),
            output: Some(json!([1, { "deep": { "er": true } }])),
        },
    ];
    let events: Vec<_> = kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| Event {
            at: T0 + i as Millis,
            kind,
        })
        .collect();
    let first = started(
        "e1",
        "order",
        json!({ "nested": { "list": [1, "two", null] } }),
    );
    store
        .create_execution(Create::new(
            record("e1", "order", json!({})),
            vec![first.clone()],
            Vec::new(),
        ))
        .await
        .expect("create");
    store
        .append(append("e1", 1, events.clone(), Status::Compensated))
        .await
        .expect("append");

    let mut expected = vec![first];
    expected.extend(events);
    assert_eq!(store.load_history("e1").await.expect("history"), expected);
}

/// Values hold numbers exactly (serde_json's `arbitrary_precision`): an
/// integer beyond 64 bits or a decimal longer than an `f64` reads back as
/// written, in the execution's row and in its events.
pub async fn numbers_beyond_64_bits_and_long_decimals_read_back_digit_for_digit(store: &dyn Store) {
    let text = r#"{"big":1180591620717411303424,"neg":-1180591620717411303424,"pi":3.14159265358979323846264338327950288419716939937510,"plain":[1,2.5,-3],"tiny":1e-400}"#;
    let value: Value = serde_json::from_str(text).expect("parse");
    assert_eq!(serde_json::to_string(&value).expect("write"), text);
    store
        .create_execution(Create::new(
            record("e1", "order", value.clone()),
            vec![started("e1", "order", value.clone())],
            Vec::new(),
        ))
        .await
        .expect("create");
    let succeeded = Event {
        at: T0 + 1,
        kind: EventKind::StepSucceeded {
            step: "s".into(),
            attempt: 1,
            output: value.clone(),
        },
    };
    let mut a = append(
        "e1",
        1,
        vec![
            succeeded,
            Event {
                at: T0 + 2,
                kind: EventKind::ExecutionFinished {
                    status: Status::Succeeded,
                    error: None,
                    output: Some(value.clone()),
                },
            },
        ],
        Status::Succeeded,
    );
    a.output = Some(value.clone());
    store.append(a).await.expect("append");

    let rec = store.get_execution("e1").await.expect("get");
    let written = |v: &Value| serde_json::to_string(v).expect("write");
    assert_eq!(written(&rec.input), text);
    assert_eq!(written(rec.output.as_ref().expect("output")), text);
    let history = store.load_history("e1").await.expect("history");
    let values: Vec<&Value> = history
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ExecutionStarted { input, .. } => Some(input),
            EventKind::StepSucceeded { output, .. } => Some(output),
            EventKind::ExecutionFinished { output, .. } => output.as_ref(),
            _ => None,
        })
        .collect();
    assert_eq!(values.len(), 3);
    for v in values {
        assert_eq!(written(v), text);
    }
}

// ---------------------------------------------------------------------------
// Listing

pub async fn listing_filters_by_status_and_definition(store: &dyn Store) {
    start(store, "a1", "alpha").await;
    start(store, "a2", "alpha").await;
    start(store, "b1", "beta").await;
    store
        .append(append("a2", 1, vec![], Status::Succeeded))
        .await
        .expect("finish a2");
    let list = |status, definition: Option<&str>| ListFilter {
        status,
        definition: definition.map(str::to_string),
        limit: 10,
        cursor: None,
        ..ListFilter::default()
    };

    let page = store.list_executions(&list(None, None)).await.expect("all");
    assert_eq!(ids(&page.items), ["b1", "a2", "a1"]);
    assert_eq!(page.next_cursor, None);

    let running = list(Some(Status::Running), None);
    let page = store.list_executions(&running).await.expect("running");
    assert_eq!(ids(&page.items), ["b1", "a1"]);

    let alpha = list(None, Some("alpha"));
    let page = store.list_executions(&alpha).await.expect("alpha");
    assert_eq!(ids(&page.items), ["a2", "a1"]);

    let both = list(Some(Status::Succeeded), Some("alpha"));
    let page = store.list_executions(&both).await.expect("both");
    assert_eq!(ids(&page.items), ["a2"]);
    assert_eq!(page.items[0].status, Status::Succeeded);

    let none = list(Some(Status::Failed), Some("beta"));
    assert!(store
        .list_executions(&none)
        .await
        .expect("none")
        .items
        .is_empty());
}

pub async fn listing_filters_by_start_time(store: &dyn Store) {
    for (i, id) in ["t0", "t1", "t2", "t3"].into_iter().enumerate() {
        let mut rec = record(id, "timed", json!({}));
        rec.started_at = T0 + 1_000 * i as u64;
        rec.updated_at = rec.started_at;
        store
            .create_execution(Create::new(
                rec,
                vec![started(id, "timed", json!({}))],
                Vec::new(),
            ))
            .await
            .expect("create");
    }
    let range = |after: Option<u64>, before: Option<u64>| ListFilter {
        started_after: after,
        started_before: before,
        limit: 10,
        ..ListFilter::default()
    };
    let listed = |f: ListFilter| async move {
        let page = store.list_executions(&f).await.expect("list");
        ids(&page.items)
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // From (inclusive) … to (exclusive), newest first.
    assert_eq!(
        listed(range(Some(T0 + 1_000), Some(T0 + 3_000))).await,
        ["t2", "t1"]
    );
    assert_eq!(listed(range(Some(T0 + 2_500), None)).await, ["t3"]);
    assert_eq!(listed(range(None, Some(T0 + 1))).await, ["t0"]);
    assert!(listed(range(Some(T0 + 5_000), None)).await.is_empty());
    // With paging: the range holds across pages.
    let first = store
        .list_executions(&ListFilter {
            limit: 1,
            ..range(Some(T0 + 1_000), None)
        })
        .await
        .expect("page 1");
    assert_eq!(ids(&first.items), ["t3"]);
    let second = store
        .list_executions(&ListFilter {
            limit: 5,
            cursor: first.next_cursor,
            ..range(Some(T0 + 1_000), None)
        })
        .await
        .expect("page 2");
    assert_eq!(ids(&second.items), ["t2", "t1"]);
}

pub async fn paging_returns_each_execution_once_newest_first(store: &dyn Store) {
    let created: Vec<String> = (0..25).map(|i| format!("exec-{i:02}")).collect();
    for id in &created {
        start(store, id, "order").await;
    }
    let mut filter = ListFilter {
        limit: 10,
        ..ListFilter::default()
    };
    let mut seen = Vec::new();
    let mut page_sizes = Vec::new();
    loop {
        let page = store.list_executions(&filter).await.expect("page");
        page_sizes.push(page.items.len());
        seen.extend(page.items.into_iter().map(|r| r.id));
        match page.next_cursor {
            Some(cursor) => filter.cursor = Some(cursor),
            None => break,
        }
        assert!(page_sizes.len() <= 3, "paging does not end");
    }
    assert_eq!(page_sizes, [10, 10, 5]);
    let newest_first: Vec<String> = created.into_iter().rev().collect();
    assert_eq!(seen, newest_first);
}

pub async fn a_malformed_cursor_is_rejected(store: &dyn Store) {
    start(store, "e1", "order").await;
    for cursor in ["not-a-cursor", "-1", ""] {
        let filter = ListFilter {
            limit: 10,
            cursor: Some(cursor.to_string()),
            ..ListFilter::default()
        };
        match store.list_executions(&filter).await {
            Err(Error::BadCursor(c)) if c == cursor => {}
            other => panic!("cursor `{cursor}` gave {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Timers

pub async fn a_timer_not_yet_due_is_not_claimed(store: &dyn Store) {
    arm(store, "e1", vec![timer("e1", "pay", T0 + 100)]).await;
    let claimed = store.claim_due_timers(T0 + 99, 10).await.expect("claim");
    assert!(claimed.is_empty(), "claimed early: {claimed:?}");
    // Still there once due.
    let claimed = store.claim_due_timers(T0 + 100, 10).await.expect("claim");
    assert_eq!(claimed, [timer("e1", "pay", T0 + 100)]);
}

pub async fn a_create_arms_the_timers_of_its_first_decision_and_a_repeated_one_arms_none(
    store: &dyn Store,
) {
    let t = timer("e1", "W", T0 + 100);
    let first = || {
        (
            record("e1", "order", json!({})),
            vec![started("e1", "order", json!({}))],
        )
    };
    let (rec, events) = first();
    assert!(matches!(
        store
            .create_execution(Create::new(rec, events, vec![t.clone()]))
            .await
            .expect("create"),
        Created::New(_)
    ));
    // The same start again (an idempotent retry): nothing is written.
    let (rec, events) = first();
    assert!(matches!(
        store
            .create_execution(Create::new(
                rec,
                events,
                vec![timer("e1", "again", T0 + 100)]
            ))
            .await
            .expect("create again"),
        Created::Existing(_)
    ));
    assert_eq!(
        store.claim_due_timers(T0 + 500, 10).await.expect("claim"),
        [t]
    );
}

pub async fn a_due_timer_is_claimed_once_then_gone(store: &dyn Store) {
    let mut t = timer("e1", "refund", T0 + 100);
    t.task = TaskKind::Compensation;
    arm(store, "e1", vec![t.clone()]).await;
    assert_eq!(
        store.claim_due_timers(T0 + 500, 10).await.expect("claim"),
        [t]
    );
    assert!(store
        .claim_due_timers(T0 + 500, 10)
        .await
        .expect("claim again")
        .is_empty());
}

pub async fn timers_are_claimed_earliest_first_up_to_the_limit(store: &dyn Store) {
    arm(
        store,
        "e1",
        vec![
            timer("e1", "late", T0 + 300),
            timer("e1", "first", T0 + 100),
            timer("e1", "second", T0 + 100),
        ],
    )
    .await;
    arm(store, "e2", vec![timer("e2", "middle", T0 + 200)]).await;

    let steps = |timers: Vec<Timer>| timers.into_iter().map(|t| t.step).collect::<Vec<_>>();
    let now = T0 + 250;
    let claimed = store.claim_due_timers(now, 2).await.expect("claim 2");
    assert_eq!(steps(claimed), ["first", "second"]);
    let claimed = store.claim_due_timers(now, 10).await.expect("claim rest");
    assert_eq!(steps(claimed), ["middle"]);
    let claimed = store
        .claim_due_timers(T0 + 300, 10)
        .await
        .expect("claim late");
    assert_eq!(steps(claimed), ["late"]);
}

// ---------------------------------------------------------------------------
// Recovery and lookups

pub async fn unfinished_lists_only_running_and_compensating_executions(store: &dyn Store) {
    for (id, status) in [
        ("running", Status::Running),
        ("compensating", Status::Compensating),
        ("succeeded", Status::Succeeded),
        ("compensated", Status::Compensated),
        ("failed", Status::Failed),
        ("cancelled", Status::Cancelled),
        ("timed-out", Status::TimedOut),
        ("running-too", Status::Running),
    ] {
        start(store, id, "order").await;
        store
            .append(append(id, 1, vec![], status))
            .await
            .expect("set status");
    }
    let unfinished = store.unfinished().await.expect("unfinished");
    assert_eq!(ids(&unfinished), ["running", "compensating", "running-too"]);
}

pub async fn unknown_executions_are_not_found(store: &dyn Store) {
    start(store, "known", "order").await;
    assert_not_found(store.get_execution("nope").await, "execution");
    assert_not_found(store.history("nope", 0).await, "execution");
    assert_not_found(store.load_history("nope").await, "execution");
    assert_not_found(
        store
            .append(append("nope", 0, vec![], Status::Running))
            .await,
        "execution",
    );
}

// ---------------------------------------------------------------------------
// The notification outbox

pub async fn a_notifying_append_records_exactly_one_notification_with_it(store: &dyn Store) {
    start(store, "e1", "order").await;
    assert!(store
        .pending_notifications(10)
        .await
        .expect("pending")
        .is_empty());
    assert_eq!(
        store
            .append(notifying("e1", 1, Status::Compensated))
            .await
            .expect("append"),
        2
    );

    let pending = store.pending_notifications(10).await.expect("pending");
    assert_eq!(pending.len(), 1, "{pending:?}");
    let n = &pending[0];
    assert_eq!(
        (n.execution_id.as_str(), n.status, n.created_at),
        ("e1", Status::Compensated, T0 + 1_000)
    );
    // Stored together with the events and the summary it announces.
    let rec = store.get_execution("e1").await.expect("get");
    assert_eq!((rec.status, rec.events), (Status::Compensated, 2));
    assert_eq!(
        store.load_history("e1").await.expect("history")[1],
        finished(Status::Compensated, T0 + 1_000)
    );
    // Reading does not consume: it stays pending until acknowledged.
    assert_eq!(
        store.pending_notifications(10).await.expect("pending"),
        pending
    );
}

/// A start decision that ends the execution at once (an ASL machine that
/// fails in its first state) notifies as an append that ends it would:
/// the outbox row is written by the create, with it or not at all.
pub async fn a_create_that_finishes_at_once_records_its_notification_and_a_repeated_one_none(
    store: &dyn Store,
) {
    let create = || Create {
        notify: Some(NotificationKind::Finished),
        ..Create::new(
            ExecutionRecord {
                status: Status::Failed,
                updated_at: T0 + 10,
                ..record("e1", "order", json!({}))
            },
            vec![
                started("e1", "order", json!({})),
                finished(Status::Failed, T0 + 10),
            ],
            Vec::new(),
        )
    };
    let created = store.create_execution(create()).await.expect("create");
    assert!(
        matches!(created, Created::New(ref r) if r.status == Status::Failed),
        "{created:?}"
    );
    let pending = store.pending_notifications(10).await.expect("pending");
    assert_eq!(pending.len(), 1, "{pending:?}");
    let n = &pending[0];
    assert_eq!(
        (n.execution_id.as_str(), n.status, n.created_at, n.kind),
        ("e1", Status::Failed, T0 + 10, NotificationKind::Finished)
    );
    // The same start again (an idempotent retry): nothing is written.
    let again = store
        .create_execution(create())
        .await
        .expect("create again");
    assert!(matches!(again, Created::Existing(_)), "{again:?}");
    assert_eq!(
        store.pending_notifications(10).await.expect("pending"),
        pending
    );
}

pub async fn a_stuck_notification_keeps_its_kind(store: &dyn Store) {
    start(store, "e1", "order").await;
    let mut a = append("e1", 1, vec![], Status::Compensating);
    a.notify = Some(NotificationKind::Stuck);
    store.append(a).await.expect("append");
    let pending = store.pending_notifications(10).await.expect("pending");
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].kind, NotificationKind::Stuck);
    assert_eq!(pending[0].status, Status::Compensating);
    assert_eq!(pending[0].event(), "execution.stuck");
}

fn dead(n: &Notification) -> DeadLetter {
    DeadLetter {
        notification: n.clone(),
        failed_at: T0 + 5_000,
        attempts: 12,
        last_error: "hook answered 503".into(),
    }
}

pub async fn a_buried_notification_leaves_the_outbox_and_is_kept_as_a_dead_letter(
    store: &dyn Store,
) {
    start(store, "e1", "order").await;
    store
        .append(notifying("e1", 1, Status::Failed))
        .await
        .expect("append");
    let n = store.pending_notifications(10).await.expect("pending")[0].clone();
    store.bury_notification(dead(&n)).await.expect("bury");
    assert!(store
        .pending_notifications(10)
        .await
        .expect("pending")
        .is_empty());
    assert_eq!(
        store.dead_letters(10).await.expect("dead letters"),
        vec![dead(&n)]
    );
    // Burying again (a retried call) changes nothing.
    store.bury_notification(dead(&n)).await.expect("bury again");
    assert_eq!(store.dead_letters(10).await.expect("dead letters").len(), 1);
}

pub async fn replaying_a_dead_letter_makes_it_pending_again_under_a_new_id(store: &dyn Store) {
    start(store, "e1", "order").await;
    store
        .append(notifying("e1", 1, Status::Failed))
        .await
        .expect("append");
    let n = store.pending_notifications(10).await.expect("pending")[0].clone();
    store.bury_notification(dead(&n)).await.expect("bury");
    let replayed = store
        .replay_dead_letter(n.id)
        .await
        .expect("replay")
        .expect("the dead letter exists");
    assert!(replayed.id > n.id, "a new id: {replayed:?} after {n:?}");
    assert_eq!(
        (
            &replayed.execution_id,
            replayed.status,
            replayed.created_at,
            replayed.kind
        ),
        (&n.execution_id, n.status, n.created_at, n.kind)
    );
    assert_eq!(
        store.pending_notifications(10).await.expect("pending"),
        vec![replayed]
    );
    assert!(store.dead_letters(10).await.expect("dead").is_empty());
    assert_eq!(store.replay_dead_letter(n.id).await.expect("replay"), None);
}

pub async fn a_conflicting_notifying_append_records_no_notification(store: &dyn Store) {
    start(store, "e1", "order").await;
    store
        .append(append(
            "e1",
            1,
            vec![step_succeeded("a", T0 + 1)],
            Status::Running,
        ))
        .await
        .expect("first append");
    match store.append(notifying("e1", 1, Status::Failed)).await {
        Err(Error::Conflict { actual: 2, .. }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(store
        .append(notifying("nope", 0, Status::Failed))
        .await
        .is_err());
    assert!(store
        .pending_notifications(10)
        .await
        .expect("pending")
        .is_empty());
    assert_eq!(
        store.get_execution("e1").await.expect("get").status,
        Status::Running
    );
}

pub async fn an_append_without_notify_records_no_notification(store: &dyn Store) {
    start(store, "e1", "order").await;
    let mut a = notifying("e1", 1, Status::Failed);
    a.notify = None;
    store.append(a).await.expect("append");
    assert_eq!(
        store.get_execution("e1").await.expect("get").status,
        Status::Failed
    );
    assert!(store
        .pending_notifications(10)
        .await
        .expect("pending")
        .is_empty());
}

pub async fn acking_removes_a_notification_and_is_idempotent(store: &dyn Store) {
    start(store, "e1", "order").await;
    start(store, "e2", "order").await;
    store
        .append(notifying("e1", 1, Status::Failed))
        .await
        .expect("append e1");
    store
        .append(notifying("e2", 1, Status::Compensated))
        .await
        .expect("append e2");
    let pending = store.pending_notifications(10).await.expect("pending");
    assert_eq!(pending.len(), 2, "{pending:?}");
    let (first, second) = (pending[0].clone(), pending[1].clone());

    store.ack_notification(first.id).await.expect("ack");
    assert_eq!(
        store.pending_notifications(10).await.expect("pending"),
        std::slice::from_ref(&second)
    );
    // Twice, and an id that never existed: no error, nothing else removed.
    store.ack_notification(first.id).await.expect("ack again");
    store
        .ack_notification(second.id + 1_000)
        .await
        .expect("ack unknown");
    store.ack_notification(u64::MAX).await.expect("ack huge");
    assert_eq!(
        store.pending_notifications(10).await.expect("pending"),
        std::slice::from_ref(&second)
    );
    store.ack_notification(second.id).await.expect("ack second");
    assert!(store
        .pending_notifications(10)
        .await
        .expect("pending")
        .is_empty());

    // A new notification gets a new id, never an acknowledged one.
    store
        .append(notifying("e1", 2, Status::Failed))
        .await
        .expect("append again");
    let pending = store.pending_notifications(10).await.expect("pending");
    assert_eq!(pending.len(), 1);
    assert!(pending[0].id > second.id, "{pending:?} reuses an id");
}

pub async fn notifications_are_pending_oldest_first_up_to_the_limit(store: &dyn Store) {
    let ids = ["n1", "n2", "n3", "n4"];
    for id in ids {
        start(store, id, "order").await;
        store
            .append(notifying(id, 1, Status::Failed))
            .await
            .expect("append");
    }
    let executions = |pending: Vec<Notification>| {
        pending
            .into_iter()
            .map(|n| n.execution_id)
            .collect::<Vec<_>>()
    };
    let all = store.pending_notifications(10).await.expect("pending");
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "{all:?}");
    assert_eq!(executions(all), ids);
    assert_eq!(
        executions(store.pending_notifications(2).await.expect("pending 2")),
        ["n1", "n2"]
    );
}

// ---------------------------------------------------------------------------
// Several nodes: leases

/// A lease that outlives any test.
const LONG: u64 = 60_000;
/// A lease a test waits out with [`lapse`].
const SHORT: u64 = 200;

/// Waits until every [`SHORT`] lease taken before has expired.
async fn expire() {
    tokio::time::sleep(std::time::Duration::from_millis(2 * SHORT + 100)).await;
}

/// Gives `node` a [`SHORT`] lease on each of `ids` and lets them run out:
/// the node died with them.
async fn lapse(store: &dyn SharedStore, ids: &[&str], node: &str) {
    for id in ids {
        assert_eq!(store.claim(id, node, SHORT).await.expect("claim"), None);
    }
    expire().await;
}

/// `node`'s lease on `id`, taken for [`LONG`] (it must be free).
async fn hold(store: &dyn SharedStore, id: &str, node: &str) {
    assert_eq!(
        store.claim(id, node, LONG).await.expect("claim"),
        None,
        "`{id}` should be free for `{node}`"
    );
}

/// Who holds `id`, as another node asking for it hears. A free execution
/// is left released (no lease), whatever it was before.
async fn holder(store: &dyn SharedStore, id: &str) -> Option<String> {
    let asking = "someone-else";
    let lease = store.claim(id, asking, LONG).await.expect("claim");
    if lease.is_none() {
        // It was free: give it back as it was.
        store.release(id, asking).await.expect("release");
    }
    lease.map(|l| l.node)
}

fn assert_lease_lost(result: crate::Result<u64>, id: &str, node: &str) {
    match result {
        Err(Error::LeaseLost { id: i, node: n }) if i == id && n == node => {}
        other => panic!("expected `{node}`'s lease on `{id}` to be lost, got {other:?}"),
    }
}

pub async fn a_claimed_execution_is_refused_to_other_nodes_until_its_lease_expires(
    store: &dyn SharedStore,
) {
    start(store, "e1", "order").await;
    hold(store, "e1", "a").await;

    let lease = store
        .claim("e1", "b", LONG)
        .await
        .expect("claim")
        .expect("b is refused while a's lease is live");
    assert_eq!(lease.node, "a");
    let again = store.claim("e1", "b", LONG).await.expect("claim again");
    assert_eq!(again, Some(lease), "a refused claim changes nothing");

    lapse(store, &["e1"], "a").await;
    assert_eq!(
        store.claim("e1", "b", LONG).await.expect("claim"),
        None,
        "an expired lease is free"
    );
    assert_eq!(holder(store, "e1").await.as_deref(), Some("b"));
}

pub async fn the_holder_can_claim_again_and_renew_but_an_expired_lease_is_not_revived(
    store: &dyn SharedStore,
) {
    for id in ["e1", "e2", "e3"] {
        start(store, id, "order").await;
    }
    hold(store, "e1", "a").await;
    hold(store, "e2", "a").await;
    hold(store, "e3", "b").await;
    assert_eq!(store.claim("e1", "a", LONG).await.expect("re-claim"), None);

    assert_eq!(store.renew("a", LONG).await.expect("renew a"), 2);
    assert_eq!(store.renew("b", LONG).await.expect("renew b"), 1);
    assert_eq!(store.renew("nobody", LONG).await.expect("renew"), 0);

    // a lets e1's lease run out: renewing does not bring it back.
    lapse(store, &["e1"], "a").await;
    assert_eq!(store.renew("a", LONG).await.expect("renew a"), 1);
    assert_eq!(holder(store, "e1").await, None);
    assert_eq!(holder(store, "e2").await.as_deref(), Some("a"));
}

pub async fn a_released_execution_can_be_claimed_by_another_node_at_once(store: &dyn SharedStore) {
    start(store, "e1", "order").await;
    hold(store, "e1", "a").await;

    store.release("e1", "b").await.expect("release");
    assert_eq!(
        holder(store, "e1").await.as_deref(),
        Some("a"),
        "only the holder can release"
    );
    store.release("e1", "a").await.expect("release");
    assert_eq!(store.claim("e1", "b", LONG).await.expect("claim"), None);
    assert_eq!(store.renew("a", LONG).await.expect("renew"), 0);
    store
        .release("nope", "a")
        .await
        .expect("releasing an unknown execution is a no-op");
}

pub async fn a_finished_or_unknown_execution_is_never_leased(store: &dyn SharedStore) {
    start(store, "done", "order").await;
    store
        .append(append("done", 1, vec![], Status::Succeeded))
        .await
        .expect("finish");
    assert_eq!(store.claim("done", "a", LONG).await.expect("claim"), None);
    assert_eq!(store.claim("done", "b", LONG).await.expect("claim"), None);
    assert_eq!(store.renew("a", LONG).await.expect("renew"), 0);
    assert_not_found(store.claim("nope", "a", LONG).await, "execution");
}

pub async fn a_node_that_lost_its_lease_cannot_append_and_the_new_holder_can(
    store: &dyn SharedStore,
) {
    start(store, "e1", "order").await;
    hold(store, "e1", "a").await;
    let a1 = append("e1", 1, vec![step_succeeded("a", T0 + 1)], Status::Running);
    assert_eq!(
        store
            .append_fenced(a1, "a")
            .await
            .expect("the holder appends"),
        2
    );

    // a stalls past its lease; b takes the execution.
    lapse(store, &["e1"], "a").await;
    hold(store, "e1", "b").await;
    let before = store.get_execution("e1").await.expect("get");
    let history = store.load_history("e1").await.expect("history");

    let mut late = append(
        "e1",
        2,
        vec![finished(Status::Failed, T0 + 2)],
        Status::Failed,
    );
    late.timers = vec![timer("e1", "b", T0)];
    late.notify = Some(NotificationKind::Finished);
    assert_lease_lost(store.append_fenced(late, "a").await, "e1", "a");
    let never = append("e1", 2, vec![], Status::Running);
    assert_lease_lost(store.append_fenced(never, "c").await, "e1", "c");

    // Nothing of the refused appends was stored.
    assert_eq!(store.get_execution("e1").await.expect("get"), before);
    assert_eq!(store.load_history("e1").await.expect("history"), history);
    assert!(store
        .pending_notifications(10)
        .await
        .expect("pending")
        .is_empty());
    assert!(store
        .claim_due_timers(T0 + 1_000_000, 10)
        .await
        .expect("claim timers")
        .is_empty());
    assert_eq!(holder(store, "e1").await.as_deref(), Some("b"));

    let b2 = append("e1", 2, vec![step_succeeded("b", T0 + 3)], Status::Running);
    assert_eq!(
        store
            .append_fenced(b2, "b")
            .await
            .expect("the new holder appends"),
        3
    );
    // A single node's append (no fence) is checked by version only.
    let single = append("e1", 3, vec![step_succeeded("c", T0 + 4)], Status::Running);
    assert_eq!(store.append(single).await.expect("an unfenced append"), 4);
    assert_eq!(store.load_history("e1").await.expect("history").len(), 4);
}

pub async fn a_fenced_append_is_checked_for_its_version_first(store: &dyn SharedStore) {
    start(store, "e1", "order").await;
    hold(store, "e1", "a").await;
    store
        .append_fenced(append("e1", 1, vec![], Status::Running), "a")
        .await
        .expect("append");
    let stale = || append("e1", 0, vec![], Status::Running);
    for node in ["a", "b"] {
        match store.append_fenced(stale(), node).await {
            Err(Error::Conflict {
                expected: 0,
                actual: 1,
                ..
            }) => {}
            other => panic!("a stale append by `{node}` gave {other:?}"),
        }
    }
    assert_not_found(
        store
            .append_fenced(append("nope", 0, vec![], Status::Running), "a")
            .await,
        "execution",
    );
    // A fenced append needs a lease: an execution nobody claimed has none.
    start(store, "e2", "order").await;
    assert_lease_lost(
        store
            .append_fenced(append("e2", 1, vec![], Status::Running), "a")
            .await,
        "e2",
        "a",
    );
}

pub async fn take_over_returns_only_unfinished_executions_whose_lease_expired_or_never_was(
    store: &dyn SharedStore,
) {
    for id in [
        "expired",
        "live",
        "released",
        "never-leased",
        "finished",
        "compensating",
    ] {
        start(store, id, "order").await;
    }
    hold(store, "live", "a").await;
    hold(store, "released", "a").await;
    store.release("released", "a").await.expect("release");
    hold(store, "finished", "a").await;
    store
        .append_fenced(append("finished", 1, vec![], Status::Compensated), "a")
        .await
        .expect("finish");
    store
        .append(append("compensating", 1, vec![], Status::Compensating))
        .await
        .expect("compensate");
    lapse(store, &["expired", "compensating"], "a").await;

    // Never leased: created by a single server before the database became
    // a cluster's (or by a node that died before leasing it).
    let taken = store.take_over("b", LONG, 100).await.expect("take over");
    assert_eq!(ids(&taken), ["expired", "never-leased", "compensating"]);
    assert_eq!(taken[2].status, Status::Compensating);
    assert_eq!(taken[0], store.get_execution("expired").await.expect("get"));
    assert_eq!(holder(store, "expired").await.as_deref(), Some("b"));
    assert_eq!(holder(store, "live").await.as_deref(), Some("a"));

    assert!(
        store
            .take_over("c", LONG, 100)
            .await
            .expect("take over again")
            .is_empty(),
        "b's new leases are live"
    );
    // The released execution is parked: its callback or timer claims it.
    assert_eq!(holder(store, "released").await, None);
}

pub async fn concurrent_take_overs_never_return_the_same_execution(store: &dyn SharedStore) {
    let all: Vec<String> = (0..60).map(|i| format!("e{i:02}")).collect();
    for id in &all {
        start(store, id, "order").await;
    }
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    lapse(store, &refs, "dead").await;

    let mut got: Vec<(String, &str)> = Vec::new();
    for _ in 0..all.len() {
        let (b, c) = tokio::join!(store.take_over("b", LONG, 7), store.take_over("c", LONG, 7));
        let (b, c) = (b.expect("b takes over"), c.expect("c takes over"));
        if b.is_empty() && c.is_empty() {
            break;
        }
        got.extend(b.into_iter().map(|r| (r.id, "b")));
        got.extend(c.into_iter().map(|r| (r.id, "c")));
    }
    let mut taken: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    taken.sort();
    assert_eq!(taken, refs, "each execution is taken over exactly once");
    for (id, node) in &got {
        assert_eq!(holder(store, id).await.as_deref(), Some(*node), "{id}");
    }
}

pub async fn finishing_clears_the_lease(store: &dyn SharedStore) {
    start(store, "e1", "order").await;
    start(store, "e2", "order").await;
    hold(store, "e1", "a").await;
    hold(store, "e2", "a").await;

    let done = notifying("e1", 1, Status::Failed);
    assert_eq!(store.append_fenced(done, "a").await.expect("finish"), 2);

    assert_eq!(store.renew("a", LONG).await.expect("renew"), 1, "only e2");
    assert_eq!(holder(store, "e1").await, None);
    lapse(store, &["e2"], "a").await;
    let taken = store.take_over("b", LONG, 100).await.expect("take over");
    assert_eq!(ids(&taken), ["e2"], "the finished e1 is not taken over");
}

pub async fn a_finished_execution_has_no_lease_so_any_node_may_redrive_it(store: &dyn SharedStore) {
    start(store, "e1", "order").await;
    hold(store, "e1", "a").await;
    store
        .append_fenced(
            append(
                "e1",
                1,
                vec![finished(Status::Failed, T0 + 1)],
                Status::Failed,
            ),
            "a",
        )
        .await
        .expect("fail");

    // Redrive on b: the version shows b saw the finish, no lease to check.
    let redrive = append(
        "e1",
        2,
        vec![Event {
            at: T0 + 5,
            kind: EventKind::ExecutionRedriven {},
        }],
        Status::Running,
    );
    assert_eq!(store.append_fenced(redrive, "b").await.expect("redrive"), 3);
    // Running again and leased by nobody, until a node claims it.
    assert_eq!(
        store.get_execution("e1").await.expect("get").status,
        Status::Running
    );
    assert_eq!(holder(store, "e1").await, None);
    assert_lease_lost(
        store
            .append_fenced(append("e1", 3, vec![], Status::Running), "b")
            .await,
        "e1",
        "b",
    );
    hold(store, "e1", "b").await;
    store
        .append_fenced(append("e1", 3, vec![], Status::Running), "b")
        .await
        .expect("b appends once it holds the lease");
}

pub async fn timers_of_an_execution_held_by_another_live_node_are_not_handed_out(
    store: &dyn SharedStore,
) {
    arm(store, "theirs", vec![timer("theirs", "pay", T0 + 100)]).await;
    arm(store, "mine", vec![timer("mine", "pay", T0 + 200)]).await;
    hold(store, "theirs", "b").await;
    hold(store, "mine", "a").await;

    let claimed = store
        .claim_due_timers_for("a", LONG, T0 + 1_000, 10)
        .await
        .expect("a claims");
    assert_eq!(claimed, [timer("mine", "pay", T0 + 200)]);
    assert!(store
        .claim_due_timers_for("a", LONG, T0 + 1_000, 10)
        .await
        .expect("a claims again")
        .is_empty());
    assert_eq!(holder(store, "theirs").await.as_deref(), Some("b"));

    // The holder gets it.
    let claimed = store
        .claim_due_timers_for("b", LONG, T0 + 1_000, 10)
        .await
        .expect("b claims");
    assert_eq!(claimed, [timer("theirs", "pay", T0 + 100)]);
}

pub async fn due_timers_of_free_executions_are_claimed_with_their_lease(store: &dyn SharedStore) {
    arm(store, "never", vec![timer("never", "t", T0 + 100)]).await;
    arm(store, "expired", vec![timer("expired", "t", T0 + 200)]).await;
    arm(
        store,
        "released",
        vec![
            timer("released", "t", T0 + 300),
            timer("released", "later", T0 + 5_000),
        ],
    )
    .await;
    arm(store, "finished", vec![timer("finished", "t", T0 + 400)]).await;
    arm(store, "last", vec![timer("last", "t", T0 + 500)]).await;
    hold(store, "released", "b").await;
    store.release("released", "b").await.expect("release");
    store
        .append(append("finished", 1, vec![], Status::Succeeded))
        .await
        .expect("finish");
    lapse(store, &["expired"], "b").await;

    let claimed = store
        .claim_due_timers_for("a", LONG, T0 + 1_000, 4)
        .await
        .expect("claim");
    let executions: Vec<&str> = claimed.iter().map(|t| t.execution_id.as_str()).collect();
    assert_eq!(
        executions,
        ["never", "expired", "released", "finished"],
        "due ones, earliest first, up to the limit"
    );
    for id in ["never", "expired", "released"] {
        assert_eq!(holder(store, id).await.as_deref(), Some("a"), "{id}");
    }
    assert_eq!(
        store.renew("a", LONG).await.expect("renew"),
        3,
        "the finished execution's timer is handed out, but it is not leased"
    );
    assert_eq!(holder(store, "last").await, None, "beyond the limit");
    assert_eq!(
        store
            .claim_due_timers_for("b", LONG, T0 + 1_000, 10)
            .await
            .expect("claim the rest"),
        [timer("last", "t", T0 + 500)],
        "the later timer is not due yet"
    );
}

pub async fn a_node_address_is_known_only_within_its_ttl(store: &dyn SharedStore) {
    assert_eq!(store.node_address("a").await.expect("lookup"), None);
    store
        .heartbeat_node("a", "http://a:8080", LONG)
        .await
        .expect("heartbeat a");
    store
        .heartbeat_node("b", "http://b:8080", SHORT)
        .await
        .expect("heartbeat b");
    assert_eq!(
        store.node_address("b").await.expect("lookup").as_deref(),
        Some("http://b:8080")
    );

    expire().await;
    assert_eq!(store.node_address("b").await.expect("lookup"), None);
    assert_eq!(
        store.node_address("a").await.expect("lookup").as_deref(),
        Some("http://a:8080")
    );
    // A heartbeat brings it back, at its new address.
    store
        .heartbeat_node("b", "http://b:9090", LONG)
        .await
        .expect("heartbeat b again");
    assert_eq!(
        store.node_address("b").await.expect("lookup").as_deref(),
        Some("http://b:9090")
    );
}

pub async fn a_claimed_notification_is_delivered_by_one_node_until_its_claim_runs_out(
    store: &dyn SharedStore,
) {
    start(store, "e1", "order").await;
    start(store, "e2", "order").await;
    store
        .append(notifying("e1", 1, Status::Failed))
        .await
        .expect("append e1");
    let a = store
        .claim_notifications("a", SHORT, 10)
        .await
        .expect("a claims");
    assert_eq!(a.len(), 1);
    assert!(
        store
            .claim_notifications("b", SHORT, 10)
            .await
            .expect("b claims")
            .is_empty(),
        "node b must not deliver what node a is delivering"
    );
    // A notification recorded meanwhile is free for b.
    store
        .append(notifying("e2", 1, Status::Compensated))
        .await
        .expect("append e2");
    let b = store
        .claim_notifications("b", LONG, 10)
        .await
        .expect("b claims");
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].execution_id, "e2");
    // Node a dies without acking: once its claim runs out, b delivers it.
    expire().await;
    let again = store
        .claim_notifications("b", LONG, 10)
        .await
        .expect("b claims");
    assert_eq!(again, a);
    store.ack_notification(a[0].id).await.expect("ack");
    store.ack_notification(b[0].id).await.expect("ack");
    assert!(store
        .pending_notifications(10)
        .await
        .expect("pending")
        .is_empty());
}

pub async fn an_execution_created_leased_is_held_by_its_creator(store: &dyn SharedStore) {
    let record = record("e1", "order", Value::Null);
    let created = store
        .create_execution_leased(
            Create::new(
                record.clone(),
                vec![started("e1", "order", Value::Null)],
                Vec::new(),
            ),
            "a",
            LONG,
        )
        .await
        .expect("create");
    assert!(matches!(created, Created::New(_)));
    assert_eq!(holder(store, "e1").await.as_deref(), Some("a"));
    assert!(
        store
            .take_over("b", LONG, 100)
            .await
            .expect("take over")
            .is_empty(),
        "a fresh execution is its creator's, not an orphan"
    );
    // Creating it again changes nothing, not even the lease.
    let again = store
        .create_execution_leased(
            Create::new(
                record,
                vec![started("e1", "order", Value::Null)],
                Vec::new(),
            ),
            "b",
            LONG,
        )
        .await
        .expect("create again");
    assert!(matches!(again, Created::Existing(_)));
    assert_eq!(holder(store, "e1").await.as_deref(), Some("a"));
}
