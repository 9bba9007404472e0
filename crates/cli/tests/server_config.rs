//! `sagaflow server --config FILE`: the TOML file's settings are used, a flag
//! overrides the file, and a key the server does not know is an error.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{free_port, run, sagaflow, Api, Proc, Travel};

fn write_config(path: &Path, listen: &str, data_dir: &Path, travel_url: &str) {
    let text = format!(
        "listen = \"{listen}\"\ndata_dir = \"{}\"\n\n[variables]\nTRAVEL_URL = \"{travel_url}\"\n",
        data_dir.display()
    );
    std::fs::write(path, text).unwrap();
}

/// A trip booked through a server succeeds only if `${TRAVEL_URL}` points at the travel services.
fn books_a_trip(server: &Proc, trip_id: &str) -> bool {
    let api = Api::new(&server.url);
    api.deploy_travel_saga();
    api.start_trip(trip_id, "success", Some(30))["status"] == "succeeded"
}

#[test]
fn the_server_takes_listen_data_dir_and_variables_from_its_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let travel = Travel::start(dir.path(), 0.0, 2);
    let port = free_port();
    let data_dir = dir.path().join("from-file");
    let config = dir.path().join("sagaflow.toml");
    write_config(
        &config,
        &format!("127.0.0.1:{port}"),
        &data_dir,
        travel.url(),
    );

    let mut cmd = sagaflow();
    cmd.arg("server").arg("--config").arg(&config);
    let server = Proc::spawn("sagaflow-server", cmd, &dir.path().join("logs"));

    assert_eq!(
        server.url,
        format!("http://127.0.0.1:{port}"),
        "the server listens where the file says"
    );
    assert!(
        data_dir.join("sagaflow.db").exists(),
        "the database is in the file's data_dir"
    );
    assert!(
        books_a_trip(&server, "from-file"),
        "${{TRAVEL_URL}} comes from the file's [variables]"
    );
}

#[test]
fn flags_override_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let travel = Travel::start(dir.path(), 0.0, 2);
    let port = free_port();
    let file_data_dir = dir.path().join("from-file");
    let flag_data_dir = dir.path().join("from-flag");
    let config = dir.path().join("sagaflow.toml");
    // The file's TRAVEL_URL leads nowhere; the flags give the real one.
    write_config(
        &config,
        &format!("127.0.0.1:{port}"),
        &file_data_dir,
        "http://127.0.0.1:9",
    );

    let mut cmd = sagaflow();
    cmd.arg("server")
        .arg("--config")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&flag_data_dir)
        .arg("--var")
        .arg(format!("TRAVEL_URL={}", travel.url()));
    let server = Proc::spawn("sagaflow-server", cmd, &dir.path().join("logs"));

    assert_ne!(
        server.url,
        format!("http://127.0.0.1:{port}"),
        "--listen wins over the file's listen"
    );
    assert!(
        flag_data_dir.join("sagaflow.db").exists(),
        "--data-dir wins over the file's data_dir"
    );
    assert!(
        !file_data_dir.exists(),
        "nothing is written to the file's data_dir"
    );
    assert!(
        books_a_trip(&server, "from-flag"),
        "--var wins over the file's [variables]"
    );
}

#[test]
fn a_data_dir_flag_overrides_a_database_url_in_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file_db = dir.path().join("from-file").join("file.db");
    let flag_data_dir = dir.path().join("from-flag");
    let config = dir.path().join("sagaflow.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndatabase_url = \"sqlite:{}\"\n",
            file_db.display()
        ),
    )
    .unwrap();

    let mut cmd = sagaflow();
    cmd.arg("server")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&flag_data_dir);
    let _server = Proc::spawn("sagaflow-server", cmd, &dir.path().join("logs"));

    assert!(
        flag_data_dir.join("sagaflow.db").exists(),
        "--data-dir wins over the file's database_url"
    );
    assert!(!file_db.exists(), "the file's database is not opened");
}

#[test]
fn a_taken_port_stops_the_server_with_a_message_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut cmd = sagaflow();
    cmd.arg("server")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen", &addr]);
    let out = run(cmd, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the server exits non-zero");
    assert!(
        stderr.contains(&format!("binding {addr}")),
        "the message names the address: {stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn an_unknown_key_in_the_config_file_stops_the_server_with_a_message_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for (text, key) in [
        ("listne = \"127.0.0.1:0\"\n", "listne"),
        (
            &*format!(
                "data_dir = \"{}\"\n[hook]\nurl = \"http://127.0.0.1:9\"\nretries = 3\n",
                dir.path().display()
            ),
            "retries",
        ),
    ] {
        let config = dir.path().join("bad.toml");
        std::fs::write(&config, text).unwrap();
        let mut cmd = sagaflow();
        cmd.arg("server")
            .arg("--config")
            .arg(&config)
            .current_dir(dir.path());
        let out = run(cmd, Duration::from_secs(30));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "the server refuses a file with `{key}`"
        );
        assert!(
            stderr.contains(&format!("unknown field `{key}`")),
            "the message names `{key}`: {stderr}"
        );
        assert!(
            stderr.contains("bad.toml"),
            "the message names the file: {stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "nothing is listening: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
