//! Keeping the queue's history bounded: finished jobs and webhook delivery
//! attempts older than the configured history are deleted, at most once an
//! hour. A fleet of 10,000 daily sites finishes 20,000 jobs a day; without
//! this the jobs table grows by millions of rows a year.

use std::time::{Duration, Instant};

use jiff::SignedDuration;

use super::Service;

/// How often history is trimmed.
const EVERY: Duration = Duration::from_secs(3600);

impl Service {
    /// Delete history older than `ServiceConfig::history`, if the last
    /// purge of this process is more than an hour old.
    pub(super) async fn purge_history_when_due(&self) {
        {
            let mut last = self.last_purge.lock().expect("purge time");
            if last.is_some_and(|at| at.elapsed() < EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        self.purge_history().await;
    }

    /// Delete finished jobs and delivery attempts older than the history.
    pub async fn purge_history(&self) {
        let Ok(keep) = SignedDuration::try_from(self.config.history) else {
            return;
        };
        let before = self.now() - keep;
        let catalog = self.orchestrator.catalog();
        match catalog.purge_finished_jobs(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("forgot {n} jobs finished before {before}"),
            Err(e) => tracing::warn!("cannot purge finished jobs: {e}"),
        }
        if let Err(e) = catalog.purge_deliveries(before).await {
            tracing::warn!("cannot purge webhook deliveries: {e}");
        }
    }
}
