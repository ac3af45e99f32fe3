//! Applying a retention policy to a site: decide, forget the snapshots,
//! delete the records, then prune the repository.

use chom_repo::{Progress, PruneOptions};
use serde::Serialize;

use super::BackupOrchestrator;
use crate::catalog::{AuditOutcome, Changes};
use crate::domain::{BackupEvent, BackupId, Retention, RetentionCandidate, RetentionPlan};
use crate::error::Result;

/// What retention did (or, in a dry run, would do).
#[derive(Debug, Clone, Serialize)]
pub struct RetentionOutcome {
    /// The site.
    pub site: String,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Backups deleted (or to delete), with reasons.
    pub deleted: Vec<(BackupId, String)>,
    /// Backups kept, with reasons.
    pub kept: Vec<(BackupId, String)>,
    /// Whether the repository prune after it ran (it may be busy with
    /// another prune; the space is then freed by the next one).
    pub pruned: bool,
}

impl RetentionOutcome {
    /// Number of backups deleted.
    pub fn deleted_count(&self) -> usize {
        self.deleted.len()
    }
}

impl BackupOrchestrator {
    /// Apply `policy` to the site's backups; returns what was deleted. The
    /// snapshots are forgotten and the repository pruned (two-phase: the
    /// space is freed after prune's grace period).
    pub async fn apply_retention_policy(
        &self,
        site: &str,
        policy: &Retention,
        dry_run: bool,
    ) -> Result<RetentionOutcome> {
        let site = self.site(site).await?;
        let tz = jiff::tz::TimeZone::get(&site.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
        let backups = self.catalog.list_backups(Some(site.id)).await?;
        let busy = self.catalog.backups_being_restored().await?;
        let candidates: Vec<RetentionCandidate<BackupId>> = backups
            .iter()
            .map(|b| RetentionCandidate {
                id: b.id,
                status: b.status,
                created_at: b.created_at,
                expires_at: b.expires_at,
                busy: busy.contains(&b.id),
            })
            .collect();
        let RetentionPlan { delete, keep } = policy.plan(&candidates, self.now(), &tz);
        let mut outcome = RetentionOutcome {
            site: site.name.clone(),
            dry_run,
            deleted: delete,
            kept: keep,
            pruned: false,
        };
        if dry_run {
            return Ok(outcome);
        }
        for (id, reason) in &outcome.deleted {
            let backup = backups
                .iter()
                .find(|b| b.id == *id)
                .expect("planned from this list");
            self.forget_snapshot(backup).await?;
            self.commit(Changes {
                deleted_backups: vec![*id],
                events: vec![BackupEvent::BackupDeleted {
                    backup_id: *id,
                    site_id: site.id,
                    reason: format!("retention: {reason}"),
                }],
                ..Changes::default()
            })
            .await?;
        }
        if !outcome.deleted.is_empty() {
            match self
                .repo
                .prune(&PruneOptions::default(), Progress::new())
                .await
            {
                Ok(_) => outcome.pruned = true,
                Err(chom_repo::Error::Locked { .. }) => {
                    tracing::info!(
                        "another prune is running; this retention's space is freed by the next one"
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
        let detail = Some(format!(
            "{} deleted, {} kept, policy {}",
            outcome.deleted.len(),
            outcome.kept.len(),
            serde_json::to_string(policy).expect("policies serialize")
        ));
        self.commit(Changes {
            events: vec![BackupEvent::RetentionApplied {
                site_id: site.id,
                deleted: outcome.deleted.len() as u64,
                kept: outcome.kept.len() as u64,
            }],
            audit: Some(self.audit(
                "retention.apply",
                Some(&site),
                None,
                AuditOutcome::Ok,
                detail,
            )),
            ..Changes::default()
        })
        .await?;
        Ok(outcome)
    }
}
