//! A real server on 127.0.0.1 for the hostile-input tests: an engine on a
//! SQLite store in a temporary directory, served by `sagaflow_api::serve`.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use sagaflow_api::ApiConfig;
use sagaflow_runtime::{Config, Engine};
use sagaflow_store::sqlite::SqliteStore;
use serde_json::Value;
use tokio::sync::oneshot;

/// Every request's deadline: a test fails instead of hanging.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub struct Server {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub http: reqwest::Client,
    pub engine: Engine,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

/// An answer: status, body as JSON (`Value::Null` if it is not JSON) and how long it took.
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub took: Duration,
}

impl Server {
    pub async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("sagaflow.db")).unwrap();
        let engine = Engine::builder(Arc::new(store))
            .config(Config::default())
            .build();
        engine.start().await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(sagaflow_api::serve(
            engine.clone(),
            ApiConfig::default(),
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        Server {
            base: format!("http://{addr}"),
            addr,
            http: reqwest::Client::new(),
            engine,
            _stop: stop,
            _dir: dir,
        }
    }

    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Reply {
        let started = Instant::now();
        let resp = tokio::time::timeout(DEADLINE, rb.send())
            .await
            .expect("an answer before the deadline")
            .expect("an answer (the server must not drop the connection)");
        let status = resp.status().as_u16();
        let text = tokio::time::timeout(DEADLINE, resp.text())
            .await
            .expect("the body before the deadline")
            .expect("reading the body");
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            took: started.elapsed(),
        }
    }

    pub async fn put_definition(&self, name: &str, text: impl Into<String>) -> Reply {
        let url = format!("{}/v1/definitions/{name}", self.base);
        self.send(self.http.put(url).body(text.into())).await
    }

    /// An action of the Step Functions API, as an AWS SDK sends it.
    pub async fn aws(&self, action: &str, body: impl Into<String>) -> Reply {
        let rb = self
            .http
            .post(format!("{}/", self.base))
            .header("X-Amz-Target", format!("AWSStepFunctions.{action}"))
            .header("Content-Type", "application/x-amz-json-1.0")
            .body(body.into());
        self.send(rb).await
    }

    pub async fn healthz(&self) -> Reply {
        self.send(self.http.get(format!("{}/healthz", self.base)))
            .await
    }
}
