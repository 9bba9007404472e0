//! Micro-benchmarks of a participant call of the travel services, over
//! loopback HTTP with keep-alive, on a temporary database (WAL,
//! `synchronous=NORMAL`): what each call of `sagaflow bench --workload http`
//! costs on the participants' side.
//!
//! - `sequential`: one `POST /hotel/reserve` at a time, each with a new
//!   trip and idempotency key: a lone call is its own commit;
//! - `64 concurrent`: 64 calls at once, sharing commits (the services'
//!   writer group-commits the calls queued meanwhile): the time is for all 64.
//!
//! `cargo bench -p travel-services` (add `-- --quick` for a rough number fast).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;

const CONCURRENT: usize = 64;

async fn reserve(client: &reqwest::Client, url: &str, n: u64) {
    let trip = format!("bench-{n}");
    let response = client
        .post(url)
        .header("Idempotency-Key", format!("{trip}:reserve_hotel:action"))
        .json(&json!({ "trip_id": trip, "hotel": "inn", "check_in": "2026-01-01" }))
        .send()
        .await
        .expect("the call is answered");
    assert!(response.status().is_success(), "{}", response.status());
    response.bytes().await.expect("the answer is read");
}

fn calls(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = travel_services::Config::new(dir.path().join("travel.db"));
    let services = rt
        .block_on(travel_services::start(
            config,
            "127.0.0.1:0".parse().unwrap(),
        ))
        .expect("the services start");
    let url = format!("{}/hotel/reserve", services.base_url());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENT)
        .build()
        .expect("an HTTP client");
    let next = Arc::new(AtomicU64::new(0));

    let mut g = c.benchmark_group("travel_call");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    g.bench_function("sequential", |b| {
        b.iter(|| rt.block_on(reserve(&client, &url, next.fetch_add(1, Ordering::Relaxed))))
    });
    g.throughput(Throughput::Elements(CONCURRENT as u64));
    g.bench_function("64 concurrent", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut calls = tokio::task::JoinSet::new();
                for _ in 0..CONCURRENT {
                    let (client, url) = (client.clone(), url.clone());
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    calls.spawn(async move { reserve(&client, &url, n).await });
                }
                while let Some(done) = calls.join_next().await {
                    done.expect("a call task");
                }
            })
        })
    });
    g.finish();
    rt.block_on(services.stop()).expect("the services stop");
}

criterion_group!(benches, calls);
criterion_main!(benches);
