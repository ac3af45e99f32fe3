//! `/metrics` in Prometheus text format.
//!
//! Durations, waits and bytes are observed as jobs finish; counts, sizes,
//! the queue and per-site freshness are read from the catalog at each
//! scrape (aggregated in SQL); repository-wide figures (stored bytes,
//! deduplication) are refreshed at most every five minutes, since they read
//! the whole index.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::Service;
use crate::error::Result;

type Labels = Vec<(String, String)>;

fn histogram() -> Histogram {
    // 1 s to about 4.5 hours.
    Histogram::new(exponential_buckets(1.0, 2.0, 15))
}

/// The service's metrics.
pub struct Metrics {
    registry: Registry,
    backups: Family<Labels, Gauge>,
    jobs: Family<Labels, Gauge>,
    queue_depth: Gauge,
    duration: Family<Labels, Histogram>,
    wait: Histogram,
    bytes_read: Counter,
    bytes_added: Counter,
    logical_bytes: Gauge,
    added_bytes: Gauge,
    stored_bytes: Gauge,
    dedup_ratio: Gauge<f64, AtomicU64>,
    last_success: Family<Labels, Gauge>,
    stale: Family<Labels, Gauge>,
    stale_count: Gauge,
    missed: Family<Labels, Gauge>,
    repo_refreshed: Mutex<Option<Instant>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Metrics {
            registry: Registry::default(),
            backups: Family::default(),
            jobs: Family::default(),
            queue_depth: Gauge::default(),
            duration: Family::new_with_constructor(histogram),
            wait: Histogram::new(exponential_buckets(0.5, 2.0, 16)),
            bytes_read: Counter::default(),
            bytes_added: Counter::default(),
            logical_bytes: Gauge::default(),
            added_bytes: Gauge::default(),
            stored_bytes: Gauge::default(),
            dedup_ratio: Gauge::default(),
            last_success: Family::default(),
            stale: Family::default(),
            stale_count: Gauge::default(),
            missed: Family::default(),
            repo_refreshed: Mutex::new(None),
        };
        let r = &mut m.registry;
        r.register(
            "chom_backups",
            "Backup records by status",
            m.backups.clone(),
        );
        r.register("chom_jobs", "Jobs by status", m.jobs.clone());
        r.register(
            "chom_queue_depth",
            "Jobs waiting for a worker",
            m.queue_depth.clone(),
        );
        r.register(
            "chom_job_duration_seconds",
            "Run time of finished jobs by kind and outcome",
            m.duration.clone(),
        );
        r.register(
            "chom_job_wait_seconds",
            "Time jobs waited in the queue before a worker took them",
            m.wait.clone(),
        );
        r.register(
            "chom_bytes_read",
            "Bytes read from sites by backups of this process",
            m.bytes_read.clone(),
        );
        r.register(
            "chom_bytes_added",
            "Bytes of new data added to the repository by backups of this process",
            m.bytes_added.clone(),
        );
        r.register(
            "chom_backup_logical_bytes",
            "Logical size of all completed backups",
            m.logical_bytes.clone(),
        );
        r.register(
            "chom_backup_added_bytes",
            "Bytes the completed backups added to the repository",
            m.added_bytes.clone(),
        );
        r.register(
            "chom_repository_stored_bytes",
            "Bytes in the repository's packs",
            m.stored_bytes.clone(),
        );
        r.register(
            "chom_deduplication_ratio",
            "Logical bytes of all snapshots per unique byte stored",
            m.dedup_ratio.clone(),
        );
        r.register(
            "chom_last_success_timestamp_seconds",
            "Each site's newest completed backup",
            m.last_success.clone(),
        );
        r.register(
            "chom_site_stale",
            "1 for each site whose newest backup is too old",
            m.stale.clone(),
        );
        r.register(
            "chom_stale_sites",
            "Sites whose newest backup is too old",
            m.stale_count.clone(),
        );
        r.register(
            "chom_missed_runs",
            "Scheduled backups of each site that did not start (slots passed while no service ran)",
            m.missed.clone(),
        );
        m
    }
}

impl Metrics {
    /// A job finished.
    pub fn job_finished(&self, kind: &str, outcome: &str, ran: Duration, waited: Duration) {
        self.duration
            .get_or_create(&vec![
                ("kind".into(), kind.into()),
                ("outcome".into(), outcome.into()),
            ])
            .observe(ran.as_secs_f64());
        self.wait.observe(waited.as_secs_f64());
    }

    /// A backup read and added bytes.
    pub fn backup_bytes(&self, read: u64, added: u64) {
        self.bytes_read.inc_by(read);
        self.bytes_added.inc_by(added);
    }
}

impl Service {
    /// Refresh and encode the metrics.
    pub async fn metrics_text(&self) -> Result<String> {
        let m = &self.metrics;
        let catalog = self.orchestrator.catalog();
        m.backups.clear();
        for (status, n) in catalog.backup_counts().await? {
            m.backups
                .get_or_create(&vec![("status".into(), status)])
                .set(n);
        }
        m.jobs.clear();
        for (status, n) in catalog.job_counts().await? {
            m.jobs
                .get_or_create(&vec![("status".into(), status)])
                .set(n);
        }
        m.queue_depth.set(catalog.queue_depth().await?);
        let (logical, added) = catalog.backup_bytes().await?;
        m.logical_bytes.set(logical);
        m.added_bytes.set(added);
        m.last_success.clear();
        for (site, at) in catalog.last_successes().await? {
            m.last_success
                .get_or_create(&vec![("site".into(), site)])
                .set(at.as_second());
        }
        let stale = catalog.stale_sites().await?;
        m.stale.clear();
        for (_, name) in &stale {
            m.stale
                .get_or_create(&vec![("site".into(), name.clone())])
                .set(1);
        }
        m.stale_count.set(stale.len() as i64);
        m.missed.clear();
        for (site, n) in catalog.missed_slots().await? {
            m.missed.get_or_create(&vec![("site".into(), site)]).set(n);
        }
        let due = m
            .repo_refreshed
            .lock()
            .expect("metrics")
            .is_none_or(|t| t.elapsed() > Duration::from_secs(300));
        if due {
            match self.orchestrator.repository().stats().await {
                Ok(s) => {
                    m.stored_bytes.set(s.stored_bytes as i64);
                    m.dedup_ratio.set(s.dedup_ratio);
                    *m.repo_refreshed.lock().expect("metrics") = Some(Instant::now());
                }
                Err(e) => tracing::warn!("metrics: cannot read repository statistics: {e}"),
            }
        }
        let mut text = String::new();
        encode(&mut text, &m.registry).expect("writing to a String");
        Ok(text)
    }
}
