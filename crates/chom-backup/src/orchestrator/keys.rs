//! The repository's password key slots, with every change in the audit log.

use chom_repo::{Id, KdfParams, KeyListing};

use super::BackupOrchestrator;
use crate::catalog::AuditOutcome;
use crate::error::Result;

impl BackupOrchestrator {
    /// The repository's key slots.
    pub async fn repository_keys(&self) -> Result<Vec<KeyListing>> {
        Ok(self.repo.keys().await?)
    }

    /// Add a key slot for another password.
    pub async fn add_repository_key(&self, password: &str) -> Result<Id> {
        let result = self.repo.add_key(password, KdfParams::default()).await;
        let (outcome, detail) = match &result {
            Ok(id) => (AuditOutcome::Ok, format!("key slot {}", id.short())),
            Err(e) => (AuditOutcome::Failed, e.to_string()),
        };
        self.catalog
            .audit(&self.audit("key.add", None, None, outcome, Some(detail)))
            .await?;
        Ok(result?)
    }

    /// Remove a key slot (not the one in use).
    pub async fn remove_repository_key(&self, id_or_prefix: &str) -> Result<Id> {
        let result = self.repo.remove_key(id_or_prefix).await;
        let (outcome, detail) = match &result {
            Ok(id) => (AuditOutcome::Ok, format!("key slot {}", id.short())),
            Err(e) => (AuditOutcome::Failed, e.to_string()),
        };
        self.catalog
            .audit(&self.audit("key.remove", None, None, outcome, Some(detail)))
            .await?;
        Ok(result?)
    }
}
