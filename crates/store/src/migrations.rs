//! The schema migrations of both SQL backends: `.sql` files under
//! `migrations/sqlite/` and `migrations/postgres/`, embedded in the binary at
//! build time (no file is read at run time).
//!
//! **Numbered alike.** `NNNN_name.sql` is the same change in both databases,
//! under the same name. A step one database does not need is a file there
//! too, a documented no-op (SQLite has no leases, so its `0005` and `0006`
//! do nothing). A new migration is a new pair of files, listed in
//! [`SQLITE`] and [`POSTGRES`]; an applied one is never edited (existing
//! databases would not see the change).
//!
//! **Applying.** Each backend, in one transaction, records every applied
//! migration in `schema_migrations` (`version`, `applied_at`, `name`),
//! applies every listed migration the table does not record, in order, and
//! refuses a database recording a version newer than it knows.
//!
//! **Before the numbering was shared**, each database numbered its own
//! migrations, and recorded them without a name. Rows without a name were
//! written by that code, and are translated once, in the same transaction,
//! by [`SQLITE_LEGACY`] and [`POSTGRES_LEGACY`]: SQLite's old numbers are the
//! shared ones; PostgreSQL's were 1 = `0001` + `0002`, 2 = `0003`, 3 =
//! `0005`, 4 = `0006`, 5 = `0004`. A translated database may thus lack a
//! migration below its highest (a PostgreSQL database at old version 3 has
//! `0005` but not `0004`), which is why every missing one is applied, not
//! only those above the highest.

use std::collections::BTreeSet;

use crate::{Error, Result};

/// One migration: its shared number, its file's name (without `.sql`), and
/// the file's SQL for one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// How the versions recorded before the numbering was shared translate:
/// `(old version, the shared versions that old migration applied)`.
pub type Legacy = &'static [(u32, &'static [u32])];

/// The migrations of database `$db`, each from `migrations/$db/$name.sql`.
macro_rules! migrations {
    ($db:literal: $($version:literal $name:literal),* $(,)?) => {
        &[$(Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../migrations/", $db, "/", $name, ".sql")),
        }),*]
    };
}

/// SQLite's migrations, in order.
pub const SQLITE: &[Migration] = migrations!("sqlite":
    1 "0001_initial",
    2 "0002_outbox",
    3 "0003_deleted_definitions",
    4 "0004_notification_kinds_and_dead_letters",
    5 "0005_leases_and_nodes",
    6 "0006_outbox_claims",
    7 "0007_list_by_definition_and_status",
    8 "0008_definition_tags",
    9 "0009_versions_and_aliases",
    10 "0010_activities",
    11 "0011_activity_offers",
);

/// PostgreSQL's migrations, in order: the same numbers and names as SQLite's.
pub const POSTGRES: &[Migration] = migrations!("postgres":
    1 "0001_initial",
    2 "0002_outbox",
    3 "0003_deleted_definitions",
    4 "0004_notification_kinds_and_dead_letters",
    5 "0005_leases_and_nodes",
    6 "0006_outbox_claims",
    7 "0007_list_by_definition_and_status",
    8 "0008_definition_tags",
    9 "0009_versions_and_aliases",
    10 "0010_activities",
    11 "0011_activity_offers",
);

/// The last migration written before the numbering was shared: every one
/// after it is new to every database an older binary made.
pub const LAST_BEFORE_SHARING: u32 = 6;

/// SQLite's numbers from before the sharing: the same.
pub const SQLITE_LEGACY: Legacy = &[(1, &[1]), (2, &[2]), (3, &[3]), (4, &[4])];

/// PostgreSQL's numbers from before the sharing (see the module docs).
pub const POSTGRES_LEGACY: Legacy = &[(1, &[1, 2]), (2, &[3]), (3, &[5]), (4, &[6]), (5, &[4])];

/// The schema version a binary writes: its last migration's.
pub const fn schema_version(migrations: &[Migration]) -> u32 {
    migrations[migrations.len() - 1].version
}

/// The rows `(version, applied_at, name)` that replace the rows without a
/// name (`(old version, applied_at)`): each shared version the old one
/// applied, applied when it was.
pub(crate) fn translate(
    legacy: Legacy,
    migrations: &[Migration],
    old: &[(u32, i64)],
) -> Result<Vec<(u32, i64, &'static str)>> {
    let mut rows = Vec::new();
    for &(version, applied_at) in old {
        let Some((_, shared)) = legacy.iter().find(|(v, _)| *v == version) else {
            // Old code knew no such version: only a newer binary wrote it.
            return Err(newer(version, migrations));
        };
        for v in *shared {
            let m = migrations
                .iter()
                .find(|m| m.version == *v)
                .ok_or_else(|| Error::Backend(format!("migration {v} is not listed")))?;
            rows.push((m.version, applied_at, m.name));
        }
    }
    rows.sort_unstable();
    Ok(rows)
}

/// The migrations `applied` lacks, in order; an error if it records a
/// version newer than the last one listed.
pub(crate) fn pending<'a>(
    migrations: &'a [Migration],
    applied: &BTreeSet<u32>,
) -> Result<Vec<&'a Migration>> {
    if let Some(&highest) = applied.last() {
        if highest > schema_version(migrations) {
            return Err(newer(highest, migrations));
        }
    }
    Ok(migrations
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .collect())
}

fn newer(version: u32, migrations: &[Migration]) -> Error {
    let supported = schema_version(migrations);
    Error::Backend(format!(
        "the database has schema version {version}, newer than the {supported} \
         this Sagaflow supports; upgrade Sagaflow to open it"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(db: &str) -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(db);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("reading the migrations directory")
            .map(|e| e.expect("a directory entry").file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn both_databases_list_the_same_numbers_and_names_in_order() {
        let names = |ms: &[Migration]| ms.iter().map(|m| (m.version, m.name)).collect::<Vec<_>>();
        assert_eq!(names(SQLITE), names(POSTGRES));
        for (i, m) in SQLITE.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "versions are 1, 2, 3, …");
            assert!(
                m.name.starts_with(&format!("{:04}_", m.version)),
                "`{}` is not numbered {}",
                m.name,
                m.version
            );
        }
    }

    #[test]
    fn every_sql_file_is_listed_and_every_listed_one_exists() {
        for (db, listed) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
            let listed: Vec<String> = listed.iter().map(|m| format!("{}.sql", m.name)).collect();
            assert_eq!(files(db), listed, "migrations/{db}");
        }
    }

    #[test]
    fn a_no_op_migration_says_why() {
        for m in SQLITE.iter().chain(POSTGRES) {
            let comment = m.sql.lines().next().unwrap_or_default();
            assert!(
                comment.starts_with(&format!("-- {:04} ", m.version)),
                "{} starts with a comment naming it: {comment}",
                m.name
            );
        }
    }

    #[test]
    fn every_old_version_translates_to_what_it_had_applied() {
        // The old versions applied in order translate to a set that each
        // next old version extends, and the last covers every migration
        // the old code had: all of them.
        for (legacy, migrations) in [(SQLITE_LEGACY, SQLITE), (POSTGRES_LEGACY, POSTGRES)] {
            let mut before: BTreeSet<u32> = BTreeSet::new();
            for n in 1..=legacy.len() as u32 {
                let old: Vec<(u32, i64)> = (1..=n).map(|v| (v, i64::from(v))).collect();
                let rows = translate(legacy, migrations, &old).expect("translates");
                let now: BTreeSet<u32> = rows.iter().map(|r| r.0).collect();
                assert_eq!(now.len(), rows.len(), "no version twice");
                assert!(now.is_superset(&before) && now.len() > before.len());
                before = now;
            }
            let shared: BTreeSet<u32> = migrations.iter().map(|m| m.version).collect();
            let missing: Vec<_> = shared.difference(&before).collect();
            // What the old code never had: SQLite's no-ops, and the
            // migrations written after the numbering was shared.
            for v in missing.into_iter().filter(|v| **v <= LAST_BEFORE_SHARING) {
                let sql = migrations[*v as usize - 1].sql;
                assert!(
                    sql.lines()
                        .all(|l| l.trim().is_empty() || l.starts_with("--")),
                    "migration {v} is not a no-op but no old version applied it"
                );
            }
        }
    }

    #[test]
    fn an_unknown_old_version_or_a_newer_one_is_refused_as_newer() {
        let err = translate(POSTGRES_LEGACY, POSTGRES, &[(1, 0), (9, 0)]).unwrap_err();
        assert!(err.to_string().contains("version 9, newer"), "{err}");
        let err = pending(SQLITE, &BTreeSet::from([1, 2, 70])).unwrap_err();
        assert!(err.to_string().contains("version 70, newer"), "{err}");
        let missing = pending(POSTGRES, &BTreeSet::from([1, 2, 3, 5])).expect("pending");
        assert_eq!(
            missing.iter().map(|m| m.version).collect::<Vec<_>>(),
            [4, 6, 7, 8, 9, 10, 11]
        );
    }
}
