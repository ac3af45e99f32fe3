//! `chom-backup serve`: the HTTP API, the scheduler and a pool of job
//! workers in one process. Several processes (on several machines, with a
//! PostgreSQL catalog) share one queue and one repository.
//!
//! Every long operation is a job in the catalog: the API queues it and
//! answers at once; a worker claims it with a lease, runs it through the
//! orchestrator and records the outcome. A worker that dies loses its lease;
//! the job is queued again (backoff, bounded attempts); so is, at start-up,
//! a backup left running by a process that had no job. SIGTERM stops
//! claiming, lets running jobs finish within a timeout, and fails the ones
//! it had to cut off, saying so.

pub mod api;
mod history;
mod metrics;
mod recovery;
mod scheduler;
mod webhooks;
mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

pub use scheduler::{DEFAULT_VERIFY_CRON, SchedulerConfig, jitter};
pub use worker::Running;

use crate::orchestrator::BackupOrchestrator;

/// Settings of a service process.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Where the HTTP API listens.
    pub listen: SocketAddr,
    /// Worker tasks (jobs run at once).
    pub workers: usize,
    /// A worker's lease on a job; renewed every third of it.
    pub lease: Duration,
    /// How often idle workers look for jobs.
    pub poll: Duration,
    /// Attempts a job gets before it fails for good.
    pub max_attempts: u32,
    /// Time running jobs get to finish after SIGTERM.
    pub shutdown_timeout: Duration,
    /// The scheduler's settings.
    pub scheduler: SchedulerConfig,
    /// How long finished jobs and webhook delivery attempts are kept.
    pub history: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            listen: "127.0.0.1:8787".parse().expect("address"),
            workers: 2,
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            max_attempts: 3,
            shutdown_timeout: Duration::from_secs(60),
            scheduler: SchedulerConfig::default(),
            history: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// A running service.
pub struct Service {
    orchestrator: BackupOrchestrator,
    config: ServiceConfig,
    running: Running,
    metrics: metrics::Metrics,
    wake: Notify,
    stopping: AtomicBool,
    stopped: Notify,
    last_purge: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Service {
    /// A service over an orchestrator.
    pub fn new(orchestrator: BackupOrchestrator, config: ServiceConfig) -> Arc<Self> {
        Arc::new(Service {
            orchestrator,
            config,
            running: Running::default(),
            metrics: metrics::Metrics::default(),
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
            stopped: Notify::new(),
            last_purge: std::sync::Mutex::new(None),
        })
    }

    /// The orchestrator it drives.
    pub fn orchestrator(&self) -> &BackupOrchestrator {
        &self.orchestrator
    }

    /// Its settings.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    fn now(&self) -> jiff::Timestamp {
        self.orchestrator.now()
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Sleep until `period` passes, a job is queued here, or shutdown begins.
    async fn idle(&self, period: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = self.wake.notified() => {}
            _ = self.stopped.notified() => {}
        }
    }

    /// Begin shutdown: stop claiming jobs and stop the HTTP server.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stopped.notify_waiters();
        self.wake.notify_waiters();
    }

    /// Run until `shutdown` resolves: HTTP on `listener`, the scheduler,
    /// webhook delivery and the workers. Then drain (see the module docs).
    pub async fn run(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        if let Err(e) = self.recover_interrupted_backups().await {
            tracing::error!("cannot look for interrupted backups: {e}");
        }
        let mut tasks = Vec::new();
        for n in 0..self.config.workers.max(1) {
            tasks.push(tokio::spawn(self.clone().worker_loop(n)));
        }
        let background = vec![
            tokio::spawn(self.clone().maintenance_loop()),
            tokio::spawn(self.clone().webhook_loop()),
        ];
        let app = api::router(self.clone());
        let service = self.clone();
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            tokio::select! {
                _ = shutdown => {}
                _ = async { while !service.stopping() { service.stopped.notified().await } } => {}
            }
            service.stop();
        });
        let served = server.await;
        self.stop();
        // Let running jobs finish within the timeout, then cut them off.
        let deadline = tokio::time::Instant::now() + self.config.shutdown_timeout;
        while !self.running.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !self.running.is_empty() {
            tracing::warn!("shutdown: cutting off {} running jobs", self.running.len());
            self.running.cancel_all();
        }
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
        for task in background {
            task.abort();
        }
        served
    }

    /// Requeue jobs of dead workers and run the scheduler, periodically.
    async fn maintenance_loop(self: Arc<Self>) {
        let tick = self.config.scheduler.tick;
        while !self.stopping() {
            self.requeue_expired_jobs().await;
            self.purge_history_when_due().await;
            if let Err(e) = self.scheduler_tick().await {
                tracing::error!("scheduler: {e}");
            }
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = self.stopped.notified() => {}
            }
        }
    }
}

/// The listening address of a bound listener, for messages.
pub fn bound_address(listener: &tokio::net::TcpListener) -> Option<SocketAddr> {
    listener.local_addr().ok()
}
