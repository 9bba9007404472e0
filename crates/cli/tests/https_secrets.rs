//! `sagaflow server` with HTTPS participants, an HTTPS hook and secrets, as
//! real processes: the server's TOML file gives a private CA, a client
//! certificate (the participant requires one: mTLS) and `[secrets]`; a
//! saga sends a secret in a header. The participant receives the real
//! value, while the stored definition, the API's answers, the history, the
//! hook's notification and the server's own log never contain it.

mod common;
#[path = "../../runtime/tests/tls_support/mod.rs"]
mod tls_support;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{sagaflow, Api, Proc};
use serde_json::json;
use tls_support::{Ca, HttpsServer};

/// Reserves, then is refused at `charge` (whose participant echoes the
/// credentials it got into its error cause), then compensates.
const SECURED: &str = r#"
name: secured
steps:
  - name: reserve
    action:
      http:
        url: "${SVC}/reserve"
        headers: { Authorization: "Bearer ${API_TOKEN}", X-Tenant: "${TENANT}" }
    compensation:
      http: { url: "${SVC}/cancel", headers: { Authorization: "Bearer ${API_TOKEN}" } }
  - name: charge
    action:
      http: { url: "${SVC}/charge/fail", headers: { Authorization: "Bearer ${API_TOKEN}" } }
"#;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn a_secret_header_reaches_an_mtls_participant_but_never_the_api_the_history_the_hook_or_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ca = Ca::new("sagaflow test CA");
    let clients = Ca::new("client CA");
    let participant = rt.block_on(HttpsServer::start(
        &ca.issue(&["127.0.0.1"]),
        Some(&clients),
    ));
    let client = clients.issue(&["sagaflow-server"]);
    let secret = format!(
        "tok-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );

    let config = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{data}\"\n\n\
         [variables]\nSVC = \"{svc}\"\nTENANT = \"acme\"\n\n\
         [secrets]\nAPI_TOKEN = \"{secret}\"\n\n\
         [tls]\nca_file = \"{ca}\"\nclient_cert = \"{cert}\"\nclient_key = \"{key}\"\n\n\
         [hook]\nurl = \"{svc}/hook\"\n",
        data = dir.path().join("data").display(),
        svc = participant.base_url,
        ca = write(dir.path(), "ca.pem", &ca.cert_pem()),
        cert = write(dir.path(), "client.pem", &client.cert_pem),
        key = write(dir.path(), "client-key.pem", &client.key_pem),
    );
    let config_file = write(dir.path(), "sagaflow.toml", &config);
    let mut cmd = sagaflow();
    // Debug logging: not even the HTTP stack's own lines may show it.
    cmd.env("RUST_LOG", "debug")
        .arg("server")
        .arg("--config")
        .arg(&config_file);
    let server = Proc::spawn("sagaflow-server", cmd, &dir.path().join("logs"));
    let api = Api::new(&server.url);

    api.deploy("secured", SECURED);
    let done = api.call(
        reqwest::Method::POST,
        "/v1/executions?wait=30",
        Some(json!({"definition": "secured", "input": {"n": 1}})),
    );
    assert_eq!(done["status"], "compensated", "{done}");
    let id = done["id"].as_str().unwrap().to_string();

    // The participant got the real value, over mTLS, on every call (the
    // hook, served by the same server, may already have arrived too).
    let calls: Vec<_> = participant
        .received()
        .into_iter()
        .filter(|r| r.path != "/hook")
        .collect();
    let paths: Vec<&str> = calls.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/reserve", "/charge/fail", "/cancel"]);
    for call in &calls {
        assert_eq!(
            call.headers["authorization"],
            format!("Bearer {secret}").as_str()
        );
    }
    assert_eq!(participant.received()[0].headers["x-tenant"], "acme");

    // The hook, also HTTPS with the same CA and client certificate.
    let deadline = Instant::now() + Duration::from_secs(30);
    let hook = loop {
        if let Some(hook) = participant
            .received()
            .into_iter()
            .find(|r| r.path == "/hook")
        {
            break hook;
        }
        assert!(
            Instant::now() < deadline,
            "the HTTPS hook is delivered within 30s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(hook.body["event"], "execution.compensated");
    assert_eq!(hook.body["execution"]["id"], id.as_str());

    // Nothing the server shows holds the secret's value.
    let definition = api.get("/v1/definitions/secured").to_string();
    assert!(definition.contains("${API_TOKEN}"), "{definition}");
    let history = api.get(&format!("/v1/executions/{id}/history")).to_string();
    assert!(
        history.contains("refused the credentials `Bearer ${API_TOKEN}`"),
        "the participant's echo is redacted to the placeholder: {history}"
    );
    let shown = [
        ("definition", definition),
        ("history", history),
        (
            "execution",
            api.get(&format!("/v1/executions/{id}")).to_string(),
        ),
        ("executions", api.get("/v1/executions").to_string()),
        ("hook notification", hook.body.to_string()),
    ];
    for (what, text) in shown {
        assert!(
            !text.contains(&secret),
            "the {what} shows the secret: {text}"
        );
    }
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    assert!(log.contains("DEBUG"), "the server logged at debug level");
    assert!(
        !log.contains(&secret),
        "the server's log shows the secret:\n{log}"
    );
}
