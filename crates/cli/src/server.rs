//! `sagaflow server`: configuration (TOML file, environment, flags — flags
//! win over the environment, which wins over the file) and the server process.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use sagaflow_api::hook::HookConfig;
use sagaflow_api::ApiConfig;
use sagaflow_core::Status;
use sagaflow_runtime::{Config, Engine};
use sagaflow_store::postgres::{redact_url, PostgresStore};
use sagaflow_store::sqlite::SqliteStore;
use sagaflow_store::Store;
use serde::Deserialize;

#[derive(Args, Clone, Default)]
pub struct ServerArgs {
    /// TOML configuration file.
    #[arg(long, env = "SAGAFLOW_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "SAGAFLOW_LISTEN")]
    pub listen: Option<String>,
    /// Directory of the embedded SQLite database [default: .sagaflow].
    #[arg(long, env = "SAGAFLOW_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL instead of a data directory: `sqlite:PATH`, or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` for PostgreSQL.
    #[arg(long, env = "SAGAFLOW_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Maximum participant calls in flight [default: 256].
    #[arg(long, env = "SAGAFLOW_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// Require this bearer token on every route but /healthz.
    #[arg(long, env = "SAGAFLOW_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// File with one accepted bearer token per line.
    #[arg(long, env = "SAGAFLOW_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
    /// Webhook called when an execution ends `failed` or `compensated`.
    #[arg(long, env = "SAGAFLOW_HOOK_URL")]
    pub hook_url: Option<String>,
    /// Largest request body in bytes [default: 1048576].
    #[arg(long, env = "SAGAFLOW_BODY_LIMIT")]
    pub body_limit: Option<usize>,
    /// A `${NAME}` value for participant URLs, as NAME=VALUE (repeatable).
    /// Environment variables `SAGAFLOW_VAR_NAME` are read too.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
}

/// The TOML file's shape; every key is optional.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    concurrency: Option<usize>,
    auth_tokens: Option<Vec<String>>,
    tokens_file: Option<PathBuf>,
    body_limit: Option<usize>,
    #[serde(default)]
    variables: HashMap<String, String>,
    hook: Option<FileHook>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileHook {
    url: String,
    token: Option<String>,
}

/// Where the executions live.
#[derive(Debug, Clone, PartialEq)]
pub enum Database {
    /// The embedded SQLite database file (the default).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl Database {
    /// For logs and messages: a PostgreSQL URL without its password.
    pub fn display(&self) -> String {
        match self {
            Database::Sqlite(path) => path.display().to_string(),
            Database::Postgres(url) => redact_url(url),
        }
    }
}

/// Fully resolved settings.
pub struct Settings {
    pub listen: String,
    pub database: Database,
    pub engine: Config,
    pub api: ApiConfig,
    pub hook: Option<HookConfig>,
}

pub fn resolve(args: ServerArgs) -> anyhow::Result<Settings> {
    let file: FileConfig = match &args.config {
        None => FileConfig::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading configuration file {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("configuration file {}", p.display()))?
        }
    };
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    // The database comes from the most specific source that names one: a
    // flag or variable (--database-url, then --data-dir) before the file
    // (database_url, then data_dir), so a flag always wins over the file.
    let database = match (args.database_url, args.data_dir) {
        (Some(url), _) => database_from_url(&url)?,
        (None, Some(dir)) => Database::Sqlite(dir.join("sagaflow.db")),
        (None, None) => match file.database_url {
            Some(url) => database_from_url(&url)?,
            None => Database::Sqlite(
                file.data_dir
                    .unwrap_or_else(|| PathBuf::from(".sagaflow"))
                    .join("sagaflow.db"),
            ),
        },
    };
    let mut variables = file.variables;
    for (k, v) in std::env::vars() {
        if let Some(name) = k.strip_prefix("SAGAFLOW_VAR_") {
            variables.insert(name.to_string(), v);
        }
    }
    for kv in &args.vars {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--var `{kv}` must look like NAME=VALUE"))?;
        variables.insert(k.trim().to_string(), v.trim().to_string());
    }
    let mut tokens: HashSet<String> = file.auth_tokens.unwrap_or_default().into_iter().collect();
    if let Some(t) = args.auth_token {
        tokens.insert(t);
    }
    if let Some(p) = args.tokens_file.or(file.tokens_file) {
        let text = std::fs::read_to_string(&p)
            .with_context(|| format!("reading tokens file {}", p.display()))?;
        tokens.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    let concurrency = args.concurrency.or(file.concurrency).unwrap_or(256);
    if concurrency == 0 {
        bail!("concurrency must be at least 1");
    }
    let hook = match (args.hook_url, file.hook) {
        (Some(url), _) => Some(HookConfig::new(url)),
        (None, Some(h)) => Some(HookConfig {
            token: h.token,
            ..HookConfig::new(h.url)
        }),
        (None, None) => None,
    };
    Ok(Settings {
        listen,
        database,
        engine: Config {
            variables,
            concurrency,
            ..Config::default()
        },
        api: ApiConfig {
            auth_tokens: tokens,
            body_limit: args.body_limit.or(file.body_limit).unwrap_or(1024 * 1024),
            ..ApiConfig::default()
        },
        hook,
    })
}

fn database_from_url(url: &str) -> anyhow::Result<Database> {
    if let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        if rest.is_empty() {
            bail!("database URL `{url}` has no path");
        }
        return Ok(Database::Sqlite(PathBuf::from(rest)));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Database::Postgres(url.to_string()));
    }
    bail!(
        "unsupported database URL `{}`; expected `sqlite:PATH` or `postgres://…`",
        redact_url(url)
    )
}

/// Opens the store `database` names: the SQLite file (its directory created),
/// or the PostgreSQL database, migrated and locked for this server alone —
/// there are no per-execution leases yet, so a second server on the same
/// schema is refused rather than let both resume the same executions.
async fn open_store(database: &Database) -> anyhow::Result<Arc<dyn Store>> {
    match database {
        Database::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating data directory {}", dir.display()))?;
            }
            let store = SqliteStore::open(path)
                .with_context(|| format!("opening database {}", path.display()))?;
            Ok(Arc::new(store))
        }
        Database::Postgres(url) => {
            let shown = redact_url(url);
            let store = PostgresStore::connect(url)
                .await
                .with_context(|| format!("opening PostgreSQL database {shown}"))?;
            store
                .lock_exclusively()
                .await
                .with_context(|| format!("opening PostgreSQL database {shown}"))?;
            Ok(Arc::new(store))
        }
    }
}

/// A server running in this process (used by `server` and by the demo).
pub struct Running {
    pub addr: std::net::SocketAddr,
    pub stop: tokio::sync::oneshot::Sender<()>,
    pub done: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub async fn start(settings: Settings) -> anyhow::Result<Running> {
    // Bind first: a taken port stops the server before it resumes any work.
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    // Install the metrics recorder before recovery, so resumed executions count.
    sagaflow_api::prometheus();
    let store = open_store(&settings.database).await?;
    let mut engine_config = settings.engine;
    if settings.hook.is_some() {
        // The hook delivers from the store's outbox: finishing appends must
        // record a notification, from the first one on (recovery included).
        for status in [Status::Failed, Status::Compensated] {
            if !engine_config.notify_on.contains(&status) {
                engine_config.notify_on.push(status);
            }
        }
    }
    let engine = Engine::builder(store).config(engine_config).build();
    let resumed = engine
        .start()
        .await
        .context("resuming unfinished executions")?;
    if resumed > 0 {
        tracing::info!(resumed, "resumed unfinished executions");
    }
    if let Some(h) = settings.hook {
        sagaflow_api::hook::spawn(&engine, h);
    }
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(sagaflow_api::serve(
        engine.clone(),
        settings.api,
        listener,
        async move {
            let _ = stopped.await;
        },
    ));
    Ok(Running { addr, stop, done })
}

pub async fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let settings = resolve(args)?;
    let db = settings.database.clone();
    let auth = !settings.api.auth_tokens.is_empty();
    let running = start(settings).await?;
    // The one line on stdout: parents (tests, scripts) read the address from it.
    println!("listening on http://{}", running.addr);
    let shown = db.display();
    tracing::info!(database = %shown, auth, "sagaflow server ready");
    shutdown_signal().await;
    tracing::info!("shutting down: no new work is claimed; in-flight results are recorded");
    let _ = running.stop.send(());
    match tokio::time::timeout(Duration::from_secs(30), running.done).await {
        Ok(Ok(Ok(()))) => Ok(ExitCode::SUCCESS),
        Ok(Ok(Err(e))) => Err(e.into()),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => bail!("graceful shutdown took longer than 30s"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_choose_the_backend() {
        assert_eq!(
            database_from_url("sqlite:data/s.db").unwrap(),
            Database::Sqlite(PathBuf::from("data/s.db"))
        );
        assert_eq!(
            database_from_url("sqlite:///abs/s.db").unwrap(),
            Database::Sqlite(PathBuf::from("/abs/s.db"))
        );
        for url in [
            "postgres://sagaflow@db:5432/sagaflow",
            "postgresql://u:p@127.0.0.1/x?options=-c%20search_path%3Dsaga",
        ] {
            assert_eq!(
                database_from_url(url).unwrap(),
                Database::Postgres(url.to_string())
            );
        }
        assert!(database_from_url("sqlite:").is_err());
        let err = database_from_url("mysql://u:hunter2@h/db")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unsupported") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn a_postgres_url_is_shown_without_its_password() {
        let db = Database::Postgres("postgres://app:hunter2@db/sagaflow".into());
        assert_eq!(db.display(), "postgres://app:***@db/sagaflow");
    }

    #[test]
    fn a_database_url_flag_selects_postgres_and_sqlite_stays_the_default() {
        let url = "postgres://postgres@127.0.0.1:5432/test".to_string();
        let settings = resolve(ServerArgs {
            database_url: Some(url.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(settings.database, Database::Postgres(url));
        let settings = resolve(ServerArgs::default()).unwrap();
        assert_eq!(
            settings.database,
            Database::Sqlite(PathBuf::from(".sagaflow").join("sagaflow.db"))
        );
    }
}
