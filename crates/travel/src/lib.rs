//! Sagaflow's travel reference application: the hotel, flight, car and payment
//! participants of the travel saga, over HTTP.
//!
//! The services own their database (a SQLite file with the single `bookings`
//! table, `pk = trip_id`, `sk = KIND#id`; the orchestrator never touches it),
//! deduplicate calls by `Idempotency-Key`, refuse a reservation that arrives
//! after its own cancellation, and inject the travel scenarios' failures
//! (those of the cdk-patterns saga sample; `run_type` such as
//! `failHotelReservation`, `failFlightsConfirmation`, `failPayment`, and a random
//! failure rate for cancellations).
//!
//! Start it in-process with [`start`] (tests, `sagaflow demo`) or [`serve`]
//! (your own listener and shutdown signal), or run the `travel-services`
//! binary. Read what it booked with [`rows`] and [`trip_rows`], and how many
//! times each call was executed per `Idempotency-Key` with [`effects`]
//! (and which node of a Sagaflow cluster made each call, when, with [`calls`]).
//!
//! Routes (all `POST` with the trip input as the JSON body):
//! `/hotel/{reserve,confirm,cancel}`, `/flight/{reserve,confirm,cancel}`,
//! `/car/{reserve,confirm,cancel}`, `/payment/charge`, `/payment/refund`;
//! `/lambda/{function}`: the Lambda functions of the public Step Functions
//! saga samples (humank/lambda-saga-pattern, cdk-patterns
//! the-saga-stepfunction) over the same participants, so the samples' state
//! machines run unchanged with a resource map, and the six `saga-*` service
//! functions of aws-samples' saga with Lambda durable functions, which a
//! durable orchestrator (`examples/durable`) invokes (`GET /lambda` lists
//! them all);
//! and `GET /trips`, `GET /trips/{trip_id}`, `GET /effects`, `GET /stats`,
//! `GET /healthz`.

mod db;
mod http;
mod lambda;
mod service;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use db::{Call, Effect, Row};

/// How the services behave.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The services' SQLite database file (created if missing).
    pub db_path: PathBuf,
    /// Probability in `[0, 1]` that a cancel or refund call fails with a 503
    /// before doing anything.
    pub cancel_failure_rate: f64,
    /// How many times a confirmation fails (503) per trip under
    /// `failHotelConfirmation` / `failFlightsConfirmation` before it succeeds.
    pub confirm_failures: u32,
    /// The seed of the random failures of the samples' compensating
    /// functions under `/lambda/`: each decision is a hash of it, the
    /// function, the `Idempotency-Key` and the `Sagaflow-Attempt` header, so
    /// a run is reproduced by giving the same seed.
    pub lambda_failure_seed: u64,
    /// Probability in `[0, 1]` that a compensating function under `/lambda/`
    /// fails; `None` keeps each sample's own (60% for humank's cancel
    /// functions, 40% for cdk-patterns' compensators).
    pub lambda_cancel_failure_rate: Option<f64>,
}

impl Config {
    /// The defaults of the binary (no random cancel failures, 2 confirmation
    /// failures, the samples' own failure rates under `/lambda/`) on the given
    /// database file, with the failure seed 0.
    pub fn new(db_path: impl Into<PathBuf>) -> Config {
        Config {
            db_path: db_path.into(),
            cancel_failure_rate: 0.0,
            confirm_failures: 2,
            lambda_failure_seed: 0,
            lambda_cancel_failure_rate: None,
        }
    }

    /// Checks the values are usable.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(0.0..=1.0).contains(&self.cancel_failure_rate) {
            bail!(
                "the cancel failure rate must be between 0 and 1, not {}",
                self.cancel_failure_rate
            );
        }
        if let Some(rate) = self.lambda_cancel_failure_rate {
            if !(0.0..=1.0).contains(&rate) {
                bail!("the lambda cancel failure rate must be between 0 and 1, not {rate}");
            }
        }
        Ok(())
    }
}

/// Opens (or creates) the database and builds the router of every route.
/// Blocking: it opens a file.
pub fn router(config: &Config) -> anyhow::Result<axum::Router> {
    config.validate()?;
    let db = db::Db::open(&config.db_path)?;
    Ok(http::router(http::App {
        db: Arc::new(db),
        stats: Arc::default(),
        cancel_failure_rate: config.cancel_failure_rate,
        confirm_failures: config.confirm_failures,
        lambdas: Arc::new(lambda::Lambdas::new(
            config.lambda_failure_seed,
            config.lambda_cancel_failure_rate,
        )),
    }))
}

/// Serves the services on `listener` until `shutdown` completes, then lets the
/// calls in flight finish.
pub async fn serve<F>(config: Config, listener: TcpListener, shutdown: F) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let app = tokio::task::spawn_blocking(move || router(&config))
        .await
        .context("opening the travel database")??;
    serve_router(app, listener, shutdown).await
}

async fn serve_router<F>(
    app: axum::Router,
    listener: TcpListener,
    shutdown: F,
) -> anyhow::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving the travel services")
}

/// The services running in the background of the current tokio runtime.
///
/// Dropping it asks the server to shut down; [`RunningServices::stop`] also
/// waits for it.
#[derive(Debug)]
pub struct RunningServices {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl RunningServices {
    /// The address the services listen on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Shuts the server down and waits until it has stopped.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        match self.task.take() {
            Some(task) => task.await.context("the travel services task failed")?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningServices {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Opens the database, binds `listen` (e.g. `127.0.0.1:0`) and serves in the
/// background. When it returns, the services accept calls.
pub async fn start(config: Config, listen: SocketAddr) -> anyhow::Result<RunningServices> {
    let app = tokio::task::spawn_blocking(move || router(&config))
        .await
        .context("opening the travel database")??;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    let (shutdown, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_router(app, listener, async move {
        let _ = stopped.await;
    }));
    Ok(RunningServices {
        addr,
        shutdown: Some(shutdown),
        task: Some(task),
    })
}

/// Every booking row in the database file, ordered by trip then sort key.
pub fn rows(db_path: impl AsRef<Path>) -> anyhow::Result<Vec<Row>> {
    db::read_rows_from(db_path.as_ref(), None)
}

/// The booking rows of one trip, ordered by sort key.
pub fn trip_rows(db_path: impl AsRef<Path>, trip_id: &str) -> anyhow::Result<Vec<Row>> {
    db::read_rows_from(db_path.as_ref(), Some(trip_id))
}

/// How many times each call was executed, per route and `Idempotency-Key`
/// (the `effects` table), ordered by route then key. A participant that
/// deduplicates executes each key at most once per route; a repeated call is
/// answered from its idempotency store and not counted.
pub fn effects(db_path: impl AsRef<Path>) -> anyhow::Result<Vec<Effect>> {
    db::read_effects_from(db_path.as_ref())
}

/// Every call made by a node of a Sagaflow cluster (a call carrying a
/// `Sagaflow-Node` header), with when it arrived and ended, in arrival order.
/// Calls without the header are not logged.
pub fn calls(db_path: impl AsRef<Path>) -> anyhow::Result<Vec<Call>> {
    db::read_calls_from(db_path.as_ref())
}
