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
use sagaflow_runtime::{Builder, Config, Engine, NodeConfig, Secret, TlsConfig};
use sagaflow_store::postgres::{redact_url, PostgresStore};
use sagaflow_store::sqlite::SqliteStore;
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
    /// Maximum calls in flight to one participant (scheme, host and port of
    /// its URL; or one in-process handler) [default: 64].
    #[arg(long, env = "SAGAFLOW_PARTICIPANT_CONCURRENCY")]
    pub participant_concurrency: Option<usize>,
    /// Require this bearer token on every route but /healthz.
    #[arg(long, env = "SAGAFLOW_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// File with one accepted bearer token per line.
    #[arg(long, env = "SAGAFLOW_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
    /// Webhook called when an execution ends `failed`, `compensated` or `timed_out`.
    #[arg(long, env = "SAGAFLOW_HOOK_URL")]
    pub hook_url: Option<String>,
    /// Largest request body in bytes [default: 1048576].
    #[arg(long, env = "SAGAFLOW_BODY_LIMIT")]
    pub body_limit: Option<usize>,
    /// A `${NAME}` value for participant URLs, as NAME=VALUE (repeatable).
    /// Environment variables `SAGAFLOW_VAR_NAME` are read too.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Binds ASL Task resources to participants, as PATTERN=TARGET
    /// (repeatable, tried before the file's `[[resources]]`), e.g.
    /// `arn:aws:lambda:*:*:function:{name}=http://127.0.0.1:8081/lambda/{name}`.
    /// `${NAME}` in the target is filled from the variables.
    #[arg(long = "resource", value_name = "PATTERN=TARGET")]
    pub resources: Vec<String>,
    /// Run as one of several nodes on the same PostgreSQL database:
    /// executions are leased per node, and a dead node's are taken over.
    #[arg(long, env = "SAGAFLOW_CLUSTER")]
    pub cluster: bool,
    /// This node's id in a cluster [default: a fresh UUID].
    #[arg(long, env = "SAGAFLOW_NODE_ID")]
    pub node_id: Option<String>,
    /// URL other nodes use to reach this one [default: http://LISTEN].
    #[arg(long, env = "SAGAFLOW_ADVERTISE")]
    pub advertise: Option<String>,
    /// How long a node's leases outlive its last renewal, e.g. `5s`: a dead
    /// node's executions move this long after it stopped [default: 5s].
    #[arg(long, env = "SAGAFLOW_LEASE_TTL", value_parser = humantime::parse_duration)]
    pub lease_ttl: Option<std::time::Duration>,
    /// A compensation that has failed this many times in a row is stuck:
    /// `execution.stuck` hook, `sagaflow_executions_stuck` gauge [default: 10].
    #[arg(long, env = "SAGAFLOW_STUCK_AFTER_ATTEMPTS")]
    pub stuck_after_attempts: Option<u32>,
    /// A compensation that has kept failing this long is stuck, e.g. `15m`
    /// [default: 15m].
    #[arg(long, env = "SAGAFLOW_STUCK_AFTER", value_parser = humantime::parse_duration)]
    pub stuck_after: Option<std::time::Duration>,
    /// PEM file of CA certificates trusted for HTTPS participants and the
    /// hook, in addition to the system's roots.
    #[arg(long, env = "SAGAFLOW_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,
    /// PEM file of the client certificate presented to HTTPS participants
    /// and the hook that ask for one (mTLS); needs --tls-client-key.
    #[arg(long, env = "SAGAFLOW_TLS_CLIENT_CERT")]
    pub tls_client_cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    #[arg(long, env = "SAGAFLOW_TLS_CLIENT_KEY")]
    pub tls_client_key: Option<PathBuf>,
}

/// The TOML file's shape; every key is optional.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    concurrency: Option<usize>,
    participant_concurrency: Option<usize>,
    auth_tokens: Option<Vec<String>>,
    tokens_file: Option<PathBuf>,
    body_limit: Option<usize>,
    #[serde(default)]
    variables: HashMap<String, String>,
    /// `${NAME}` values that are never returned by the API nor logged.
    #[serde(default)]
    secrets: HashMap<String, String>,
    tls: Option<FileTls>,
    hook: Option<FileHook>,
    #[serde(default)]
    resources: Vec<FileResource>,
    cluster: Option<FileCluster>,
    stuck_after_attempts: Option<u32>,
    #[serde(default, with = "humantime_serde_opt")]
    stuck_after: Option<std::time::Duration>,
    /// Hosted functions (durable functions and the plain ones they call).
    lambda: Option<crate::functions::FileLambda>,
}

/// `[cluster]`: run as one of several nodes (PostgreSQL only).
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileCluster {
    #[serde(default)]
    enabled: bool,
    node_id: Option<String>,
    advertise: Option<String>,
    #[serde(default, with = "humantime_serde_opt")]
    lease_ttl: Option<std::time::Duration>,
}

/// `[tls]`: trust and identity for outgoing HTTPS calls.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileTls {
    ca_file: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
}

/// `lease_ttl = "5s"` in TOML.
mod humantime_serde_opt {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<std::time::Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// One `[[resources]]` entry: ASL Task resources matching `pattern` are
/// called at `target`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct FileResource {
    pattern: String,
    target: String,
}

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileHook {
    url: String,
    token: Option<String>,
    /// Deliveries tried before a notification becomes a dead letter.
    max_attempts: Option<u32>,
}

/// Where the executions live, and who else may run them.
#[derive(Debug, Clone, PartialEq)]
pub enum Database {
    /// The embedded SQLite database file (the default), this server's alone.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL; this server is its only one.
    Postgres(String),
    /// A PostgreSQL database shared by the nodes of a cluster; this server
    /// is `node`. Only PostgreSQL can be shared (a SQLite store has no
    /// leases), so there is no SQLite counterpart.
    Cluster { url: String, node: NodeConfig },
}

/// Why `--cluster` (or `[cluster] enabled`) is refused with a SQLite database.
const CLUSTER_NEEDS_POSTGRES: &str = "a cluster needs a shared PostgreSQL database (--database-url postgres://…); SQLite is one process's";

impl Database {
    /// For logs and messages: a PostgreSQL URL without its password.
    pub fn display(&self) -> String {
        match self {
            Database::Sqlite(path) => path.display().to_string(),
            Database::Postgres(url) => redact_url(url),
            Database::Cluster { url, node } => format!("{} (node {})", redact_url(url), node.id),
        }
    }

    /// The database shared by a cluster, with this server as `node`: only
    /// PostgreSQL can be.
    fn shared_by(self, node: NodeConfig) -> anyhow::Result<Database> {
        match self {
            Database::Postgres(url) | Database::Cluster { url, .. } => {
                Ok(Database::Cluster { url, node })
            }
            Database::Sqlite(_) => bail!(CLUSTER_NEEDS_POSTGRES),
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
    /// `[lambda]`: the functions this server hosts.
    pub lambda: Option<crate::functions::LambdaSettings>,
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
    // Absolute: workers run in their code directory, so a path relative to
    // the server's working directory would mean something else there.
    let cwd = std::env::current_dir().context("reading the working directory")?;
    let base = args
        .config
        .as_deref()
        .and_then(|p| p.parent())
        .map(|p| cwd.join(p))
        .unwrap_or(cwd);
    let lambda = crate::functions::resolve(file.lambda, &base)?;
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
    let secrets = secrets(file.secrets, &variables)?;
    let mut rules = Vec::new();
    for kv in &args.resources {
        // ARNs contain `:` but never `=`, so the first `=` splits.
        let (pattern, target) = kv
            .split_once('=')
            .with_context(|| format!("--resource `{kv}` must look like PATTERN=TARGET"))?;
        rules.push((pattern.trim().to_string(), target.trim().to_string()));
    }
    rules.extend(file.resources.into_iter().map(|r| (r.pattern, r.target)));
    let mut resources = sagaflow_core::asl::ResourceMap::default();
    // Resource targets may use secrets too (causes are redacted at run time).
    let mut fillers = variables.clone();
    fillers.extend(
        secrets
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string())),
    );
    for (pattern, target) in rules {
        let target = fill_variables(&target, &fillers)
            .with_context(|| format!("resource target `{target}` for `{pattern}`"))?;
        resources
            .rules
            .push(sagaflow_core::asl::ResourceRule { pattern, target });
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
    let participant_concurrency = args
        .participant_concurrency
        .or(file.participant_concurrency)
        .unwrap_or(64);
    if participant_concurrency == 0 {
        bail!("participant_concurrency must be at least 1");
    }
    let hook = match (args.hook_url, file.hook) {
        (Some(url), _) => Some(HookConfig::new(url)),
        (None, Some(h)) => {
            let defaults = HookConfig::new(h.url);
            let max_attempts = h.max_attempts.unwrap_or(defaults.max_attempts);
            if max_attempts == 0 {
                bail!("[hook] max_attempts must be at least 1");
            }
            Some(HookConfig {
                token: h.token,
                max_attempts,
                ..defaults
            })
        }
        (None, None) => None,
    };
    let file_tls = file.tls.unwrap_or_default();
    let tls = TlsConfig::from_files(
        args.tls_ca_file.or(file_tls.ca_file).as_deref(),
        args.tls_client_cert.or(file_tls.client_cert).as_deref(),
        args.tls_client_key.or(file_tls.client_key).as_deref(),
    )
    .context("TLS settings")?;
    let file_cluster = file.cluster.unwrap_or_default();
    let database = if args.cluster || file_cluster.enabled {
        let lease_ttl = args
            .lease_ttl
            .or(file_cluster.lease_ttl)
            .unwrap_or(std::time::Duration::from_secs(5));
        // Refused here when the database cannot be shared (SQLite): that
        // is what is wrong, before the node's own settings.
        let shared = database.shared_by(NodeConfig {
            id: args
                .node_id
                .or(file_cluster.node_id)
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            address: args
                .advertise
                .or(file_cluster.advertise)
                .unwrap_or_else(|| format!("http://{listen}")),
            lease_ttl,
        })?;
        if lease_ttl < std::time::Duration::from_millis(300) {
            bail!("lease_ttl must be at least 300ms");
        }
        shared
    } else {
        database
    };
    let defaults = sagaflow_core::StuckPolicy::default();
    let stuck = sagaflow_core::StuckPolicy {
        attempts: args
            .stuck_after_attempts
            .or(file.stuck_after_attempts)
            .unwrap_or(defaults.attempts),
        after_ms: args
            .stuck_after
            .or(file.stuck_after)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(defaults.after_ms),
    };
    if stuck.attempts == 0 {
        bail!("stuck_after_attempts must be at least 1");
    }
    Ok(Settings {
        listen,
        database,
        engine: Config {
            variables,
            secrets,
            tls,
            concurrency,
            participant_concurrency,
            resources,
            stuck,
            lambda: lambda
                .as_ref()
                .map(|l| l.engine_config())
                .unwrap_or_default(),
            ..Config::default()
        },
        api: ApiConfig {
            auth_tokens: tokens,
            body_limit: args.body_limit.or(file.body_limit).unwrap_or(1024 * 1024),
            ..ApiConfig::default()
        },
        hook,
        lambda,
    })
}

/// The secrets: the file's `[secrets]`, then `SAGAFLOW_SECRET_<NAME>`
/// variables (which win). A name may be a variable or a secret, not both:
/// which one `${NAME}` means must not depend on where it was set.
fn secrets(
    file: HashMap<String, String>,
    variables: &HashMap<String, String>,
) -> anyhow::Result<HashMap<String, Secret>> {
    let mut secrets: HashMap<String, Secret> =
        file.into_iter().map(|(k, v)| (k, Secret::new(v))).collect();
    for (k, v) in std::env::vars() {
        if let Some(name) = k.strip_prefix("SAGAFLOW_SECRET_") {
            secrets.insert(name.to_string(), Secret::new(v));
        }
    }
    let mut both: Vec<&String> = secrets
        .keys()
        .filter(|k| variables.contains_key(*k))
        .collect();
    both.sort();
    if let Some(name) = both.first() {
        bail!("`{name}` is configured both as a variable and as a secret; keep one");
    }
    Ok(secrets)
}

/// Replaces every `${NAME}` with its configured value.
fn fill_variables(text: &str, variables: &HashMap<String, String>) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .with_context(|| format!("`${{` without a closing `}}` in `{text}`"))?;
        let name = &after[..end];
        let value = variables
            .get(name)
            .with_context(|| format!("`${{{name}}}` is not set (--var {name}=…)"))?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
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

/// Opens the store `database` names — the SQLite file (its directory
/// created), or the PostgreSQL database, migrated and locked for this server
/// alone unless it is a cluster's (then executions are leased one by one) —
/// and the builder of an engine on it: a cluster node's takes the store's
/// leases, which only PostgreSQL has.
async fn open_store(database: &Database) -> anyhow::Result<Builder> {
    match database {
        Database::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating data directory {}", dir.display()))?;
            }
            let store = SqliteStore::open(path)
                .with_context(|| format!("opening database {}", path.display()))?;
            Ok(Engine::builder(Arc::new(store)))
        }
        Database::Postgres(url) => {
            let store = connect_postgres(url).await?;
            let shown = redact_url(url);
            store
                .lock_exclusively()
                .await
                .with_context(|| format!("opening PostgreSQL database {shown}"))?;
            Ok(Engine::builder(Arc::new(store)))
        }
        Database::Cluster { url, node } => {
            let store = connect_postgres(url).await?;
            Ok(Engine::cluster_builder(Arc::new(store), node.clone()))
        }
    }
}

async fn connect_postgres(url: &str) -> anyhow::Result<PostgresStore> {
    PostgresStore::connect(url)
        .await
        .with_context(|| format!("opening PostgreSQL database {}", redact_url(url)))
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
    let mut builder = open_store(&settings.database).await?;
    // Hosted functions' workers call back (checkpoints) at this server.
    let mut api = settings.api;
    let host = match &settings.lambda {
        Some(lambda) => {
            let endpoint = format!("http://{}", listener.local_addr()?);
            let started = crate::functions::start(lambda, endpoint).await?;
            api.function_tokens = started.tokens;
            builder = builder.functions(crate::functions::Hosted::shared(started.host.clone()));
            Some(started.host)
        }
        None => None,
    };
    let mut engine_config = settings.engine;
    if settings.hook.is_some() {
        // The hook delivers from the store's outbox: finishing appends must
        // record a notification, from the first one on (recovery included).
        for status in [Status::Failed, Status::Compensated, Status::TimedOut] {
            if !engine_config.notify_on.contains(&status) {
                engine_config.notify_on.push(status);
            }
        }
        engine_config.notify_stuck = true;
    }
    let engine = builder
        .config(engine_config)
        .try_build()
        .context("TLS settings")?;
    if let Some(lambda) = &settings.lambda {
        crate::functions::deploy(&engine, lambda).await?;
    }
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
    let serve = sagaflow_api::serve(engine.clone(), api, listener, async move {
        let _ = stopped.await;
    });
    let done = tokio::spawn(async move {
        let served = serve.await;
        // The workers go with the server (they would die on their own once
        // the Runtime API is gone; this is at once).
        if let Some(host) = host {
            host.shutdown().await;
        }
        served
    });
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
    fn resource_flags_come_before_the_file_and_fill_variables() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sagaflow.toml");
        std::fs::write(
            &file,
            "[variables]\nLAMBDA = \"http://127.0.0.1:9000\"\n\n[[resources]]\npattern = \"arn:aws:lambda:*:*:function:{name}\"\ntarget = \"${LAMBDA}/fn/{name}\"\n",
        )
        .unwrap();
        let settings = resolve(ServerArgs {
            config: Some(file),
            resources: vec!["arn:aws:lambda:*:*:function:pay=handler:payment".into()],
            ..ServerArgs::default()
        })
        .unwrap();
        let rules = &settings.engine.resources.rules;
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].target, "handler:payment");
        assert_eq!(rules[1].target, "http://127.0.0.1:9000/fn/{name}");
    }

    #[test]
    fn a_resource_flag_without_a_target_or_with_an_unknown_variable_is_refused() {
        let err = resolve(ServerArgs {
            resources: vec!["arn:aws:lambda:*:*:function:x".into()],
            ..ServerArgs::default()
        })
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("PATTERN=TARGET"), "{err}");
        let err = resolve(ServerArgs {
            resources: vec!["arn:x={name}=${NOPE}/x".into()],
            ..ServerArgs::default()
        })
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("NOPE"), "{err:#}");
    }

    #[test]
    fn secrets_come_from_the_file_and_the_environment_and_never_print() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sagaflow.toml");
        std::fs::write(
            &file,
            "[variables]\nSVC = \"http://svc\"\n\n[secrets]\nFILE_TOKEN = \"from-the-file\"\n",
        )
        .unwrap();
        // A name no other test uses: the environment is shared by the tests.
        std::env::set_var("SAGAFLOW_SECRET_H2_ENV_TOKEN", "from-the-env");
        let settings = resolve(ServerArgs {
            config: Some(file),
            ..ServerArgs::default()
        })
        .unwrap();
        std::env::remove_var("SAGAFLOW_SECRET_H2_ENV_TOKEN");
        let secrets = &settings.engine.secrets;
        assert_eq!(secrets["FILE_TOKEN"].expose(), "from-the-file");
        assert_eq!(secrets["H2_ENV_TOKEN"].expose(), "from-the-env");
        assert!(!settings.engine.variables.contains_key("FILE_TOKEN"));
        let shown = format!("{:?}", settings.engine);
        assert!(
            !shown.contains("from-the-file") && !shown.contains("from-the-env"),
            "{shown}"
        );
    }

    #[test]
    fn a_name_configured_as_both_a_variable_and_a_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sagaflow.toml");
        std::fs::write(&file, "[secrets]\nSVC = \"s\"\n").unwrap();
        let err = resolve(ServerArgs {
            config: Some(file),
            vars: vec!["SVC=http://svc".into()],
            ..ServerArgs::default()
        })
        .err()
        .unwrap();
        assert!(
            err.to_string()
                .contains("both as a variable and as a secret"),
            "{err}"
        );
    }

    #[test]
    fn tls_files_come_from_flags_over_the_file_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sagaflow.toml");
        let from_file = dir.path().join("file-ca.pem");
        std::fs::write(
            &file,
            format!("[tls]\nca_file = \"{}\"\n", from_file.display()),
        )
        .unwrap();
        let err = resolve(ServerArgs {
            config: Some(file.clone()),
            ..ServerArgs::default()
        })
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("file-ca.pem"), "{err:#}");

        let flag_ca = dir.path().join("flag-ca.pem");
        std::fs::write(&flag_ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let settings = resolve(ServerArgs {
            config: Some(file),
            tls_ca_file: Some(flag_ca),
            ..ServerArgs::default()
        })
        .unwrap();
        assert!(settings.engine.tls.ca_pem.is_some());

        let err = resolve(ServerArgs {
            tls_client_cert: Some(dir.path().join("cert.pem")),
            ..ServerArgs::default()
        })
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("private key"), "{err:#}");
    }

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
    fn participant_concurrency_defaults_to_64_and_a_flag_beats_the_file() {
        assert_eq!(
            resolve(ServerArgs::default())
                .unwrap()
                .engine
                .participant_concurrency,
            64
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sagaflow.toml");
        std::fs::write(&file, "participant_concurrency = 8\n").unwrap();
        let from_file = resolve(ServerArgs {
            config: Some(file.clone()),
            ..ServerArgs::default()
        })
        .unwrap();
        assert_eq!(from_file.engine.participant_concurrency, 8);
        let from_flag = resolve(ServerArgs {
            config: Some(file),
            participant_concurrency: Some(3),
            ..ServerArgs::default()
        })
        .unwrap();
        assert_eq!(from_flag.engine.participant_concurrency, 3);
        assert!(resolve(ServerArgs {
            participant_concurrency: Some(0),
            ..ServerArgs::default()
        })
        .is_err());
    }

    #[test]
    fn a_postgres_url_is_shown_without_its_password() {
        let db = Database::Postgres("postgres://app:hunter2@db/sagaflow".into());
        assert_eq!(db.display(), "postgres://app:***@db/sagaflow");
    }

    #[test]
    fn a_cluster_node_needs_postgres_and_is_refused_on_sqlite() {
        let err = resolve(ServerArgs {
            cluster: true,
            ..ServerArgs::default()
        })
        .err()
        .expect("a cluster on the default SQLite database is refused");
        assert!(
            format!("{err:#}").contains("a cluster needs a shared PostgreSQL database"),
            "{err:#}"
        );
        let url = "postgres://postgres@127.0.0.1:5432/test".to_string();
        let settings = resolve(ServerArgs {
            cluster: true,
            node_id: Some("n1".into()),
            database_url: Some(url.clone()),
            ..ServerArgs::default()
        })
        .unwrap();
        match settings.database {
            Database::Cluster { url: u, node } => {
                assert_eq!((u, node.id.as_str()), (url, "n1"));
            }
            other => panic!("expected a cluster's database, got {other:?}"),
        }
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
