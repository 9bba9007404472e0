//! Runs the shared conformance suite against every backend, and the lease
//! suite against those several nodes can share.

use sagaflow_store::memory::MemoryStore;
use sagaflow_store::sqlite::SqliteStore;
use tempfile::TempDir;

/// A fresh SQLite store in its own directory, removed after the store.
fn sqlite_store() -> (SqliteStore, TempDir) {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let store = SqliteStore::open(dir.path().join("sagaflow.db")).expect("opening the store");
    (store, dir)
}

mod memory {
    sagaflow_store::conformance_tests!((super::MemoryStore::new(), ()));
    // Several nodes can share one store (SQLite's has one owner).
    sagaflow_store::lease_tests!((super::MemoryStore::new(), ()));
}

mod sqlite {
    sagaflow_store::conformance_tests!(super::sqlite_store());
}
