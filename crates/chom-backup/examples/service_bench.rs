//! Service benchmarks (numbers for docs/PERFORMANCE.md, not a test):
//!
//! ```text
//! cargo run --release --example service_bench -- api [CATALOG_URL]
//! cargo run --release --example service_bench -- scheduler [CATALOG_URL] [SITES]
//! ```
//!
//! `api`: 50 concurrent clients on loopback list (sites, a site's backups,
//! jobs) and create backups; prints p50/p90/p99 latency and throughput.
//! `scheduler`: SITES sites (default 10,000) with schedules; prints the
//! cost of one scheduler pass when nothing is due, when every site is due
//! at once (a day of downtime), and when a normal window's share is due.
//! CATALOG_URL (empty: the default) is SQLite in a scratch directory; give
//! `postgres://postgres@127.0.0.1:5432/DB` (an empty database) to measure
//! PostgreSQL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chom_backup::domain::{BackupConfiguration, Clock, Frequency, ManualClock, SystemClock};
use chom_backup::service::{Service, ServiceConfig};
use chom_backup::{BackupOrchestrator, Catalog, NewSite};
use chom_repo::{InitOptions, KdfParams, Repository, Storage};
use jiff::{SignedDuration, Timestamp};

const CLIENTS: usize = 50;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("api");
    let dir = tempfile::tempdir().expect("scratch directory");
    let catalog_url = args
        .get(1)
        .filter(|url| !url.is_empty())
        .cloned()
        .unwrap_or_else(|| format!("sqlite:{}", dir.path().join("catalog.db").display()));
    match mode {
        "api" => api(dir.path(), &catalog_url).await,
        "scheduler" => {
            let sites = args.get(2).map(|n| n.parse().expect("SITES is a number"));
            scheduler(dir.path(), &catalog_url, sites.unwrap_or(10_000)).await
        }
        other => panic!("unknown mode {other:?}: use api or scheduler"),
    }
}

async fn orchestrator(
    dir: &std::path::Path,
    catalog: &str,
    clock: Arc<dyn Clock>,
) -> BackupOrchestrator {
    let catalog = Catalog::open(catalog).await.expect("catalog");
    let mut init = InitOptions::default();
    init.kdf = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let storage =
        Storage::open(dir.join("repo").to_str().expect("utf-8 path"), true).expect("storage");
    let repo = Repository::init(storage, Some("bench"), init)
        .await
        .expect("repository");
    BackupOrchestrator::new(catalog, repo, dir.join("tmp"), clock, "bench")
}

async fn add_sites(o: &BackupOrchestrator, dir: &std::path::Path, n: usize) -> Vec<String> {
    let root = dir.join("site");
    std::fs::create_dir_all(&root).expect("site root");
    std::fs::write(root.join("index.html"), "<h1>bench</h1>").expect("site file");
    let zones = ["UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo"];
    let mut names = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("site-{i:05}");
        o.add_site(
            NewSite {
                name: name.clone(),
                root: root.clone(),
                excludes: vec![],
                database: None,
                timezone: Some(zones[i % zones.len()].into()),
            },
            false,
        )
        .await
        .expect("add site");
        names.push(name);
    }
    names
}

/// Latency percentiles of a set of samples.
fn report(what: &str, mut samples: Vec<Duration>, elapsed: Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| {what} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} |",
        samples.len(),
        ms(at(0.50)),
        ms(at(0.90)),
        ms(at(0.99)),
        ms(at(1.0)),
        samples.len() as f64 / elapsed.as_secs_f64()
    );
}

async fn api(dir: &std::path::Path, catalog: &str) {
    let o = orchestrator(dir, catalog, Arc::new(SystemClock)).await;
    let sites = add_sites(&o, dir, 200).await;
    let (_, token) = o.create_token("bench", true, vec![]).await.expect("token");
    let config = ServiceConfig {
        workers: 2,
        ..ServiceConfig::default()
    };
    let service = Service::new(o, config);
    // The server gets its own runtime, as in its own process.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    listener.set_nonblocking(true).expect("non-blocking");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("server runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            service
                .run(listener, async move {
                    let _ = stop_rx.await;
                })
                .await
                .expect("serve");
        });
    });
    let client = reqwest::Client::new();
    println!("| operation | requests | p50 ms | p90 ms | p99 ms | max ms | req/s |");
    println!("|---|---|---|---|---|---|---|");

    let list_paths: Vec<String> = (0..20)
        .flat_map(|i| {
            [
                "/v1/sites".to_string(),
                format!("/v1/sites/{}/backups", sites[i * 7 % sites.len()]),
                "/v1/jobs?limit=50".to_string(),
            ]
        })
        .collect();
    let (samples, elapsed) = load(&client, &base, &token, |_| {
        list_paths
            .iter()
            .map(|p| (reqwest::Method::GET, p.clone()))
            .collect()
    })
    .await;
    report("list (sites, backups, jobs)", samples, elapsed);

    let (samples, elapsed) = load(&client, &base, &token, |c| {
        (0..20)
            .map(|i| {
                let site = &sites[(c * 20 + i) % sites.len()];
                (reqwest::Method::POST, format!("/v1/sites/{site}/backups"))
            })
            .collect()
    })
    .await;
    report("create backup", samples, elapsed);

    let _ = stop_tx.send(());
    server.join().expect("server thread");
}

/// Run CLIENTS clients, each making its list of requests one after the
/// other; returns every request's latency and the wall time.
async fn load(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    requests_of: impl Fn(usize) -> Vec<(reqwest::Method, String)>,
) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let requests = requests_of(c);
        let client = client.clone();
        let base = base.to_string();
        let token = token.to_string();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(requests.len());
            for (method, path) in requests {
                let begin = Instant::now();
                let mut request = client
                    .request(method.clone(), format!("{base}{path}"))
                    .bearer_auth(&token);
                if method == reqwest::Method::POST {
                    request = request.json(&serde_json::json!({"type": "files"}));
                }
                let response = request.send().await.expect("request");
                let status = response.status();
                let body = response.bytes().await.expect("body");
                assert!(
                    status.is_success(),
                    "{method} {path}: {status} {}",
                    String::from_utf8_lossy(&body)
                );
                samples.push(begin.elapsed());
            }
            samples
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("client"));
    }
    (all, started.elapsed())
}

async fn scheduler(dir: &std::path::Path, catalog: &str, n: usize) {
    let start: Timestamp = "2026-11-26T12:00:00Z".parse().expect("time");
    let clock = Arc::new(ManualClock::new(start));
    let o = orchestrator(dir, catalog, clock.clone()).await;
    let setup = Instant::now();
    let sites = add_sites(&o, dir, n).await;
    let config = BackupConfiguration::of_type("files".parse().expect("type"), 30).expect("config");
    for (i, site) in sites.iter().enumerate() {
        let frequency = match i % 10 {
            0 => Frequency::Weekly,
            1 => Frequency::Cron("0 */6 * * *".into()),
            _ => Frequency::Daily,
        };
        o.schedule_automatic_backup(site, frequency, config)
            .await
            .expect("schedule");
    }
    eprintln!("{n} sites with schedules set up in {:.1?}", setup.elapsed());
    let mut service_config = ServiceConfig::default();
    service_config.scheduler.prune = None;
    let service = Service::new(o, service_config);
    let queued = || async {
        service
            .orchestrator()
            .catalog()
            .queue_depth()
            .await
            .expect("queue depth")
    };
    let pass = || {
        let service = service.clone();
        async move {
            let begin = Instant::now();
            service.scheduler_tick().await.expect("tick");
            begin.elapsed()
        }
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("| scheduler pass ({n} sites) | passes | median ms | max ms | backups queued |");
    println!("|---|---|---|---|---|");
    let row = |label: &str, mut took: Vec<Duration>, queued: i64| {
        took.sort();
        println!(
            "| {label} | {} | {:.0} | {:.0} | {queued} |",
            took.len(),
            ms(took[took.len() / 2]),
            ms(took[took.len() - 1])
        );
    };
    // Nothing due: most ticks of the day.
    let mut idle = Vec::new();
    for minute in 1..=10 {
        clock.set(start + SignedDuration::from_mins(minute));
        idle.push(pass().await);
    }
    row("nothing due", idle, 0);
    // Catch up to 23:00 UTC (Tokyo's midnight, the 18:00 cron slot), then
    // two hours of 30-second ticks through Paris's and UTC's midnights.
    clock.set("2026-11-26T23:00:00Z".parse().expect("time"));
    let before = queued().await;
    let took = pass().await;
    row(
        "jump 12:10 → 23:00 UTC (catch-up)",
        vec![took],
        queued().await - before,
    );
    let before = queued().await;
    let mut busy = Vec::new();
    for tick in 1..=240 {
        clock.set(
            "2026-11-26T23:00:00Z".parse::<Timestamp>().expect("time")
                + SignedDuration::from_secs(30 * tick),
        );
        busy.push(pass().await);
    }
    row(
        "23:00 → 01:00 UTC, a tick every 30 s",
        busy,
        queued().await - before,
    );
    // A day of downtime: every site is due at once. Backups still queued
    // from the night merge with the new ones.
    clock.set("2026-11-28T13:00:00Z".parse().expect("time"));
    let before = queued().await;
    let took = pass().await;
    row(
        "after a day down: every site due",
        vec![took],
        queued().await - before,
    );
}
