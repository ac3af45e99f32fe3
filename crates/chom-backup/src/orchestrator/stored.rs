//! Stored files (the storage contract) through the orchestrator: every
//! store and delete in the audit log.

use std::path::Path;

use super::BackupOrchestrator;
use crate::catalog::AuditOutcome;
use crate::error::Result;
use crate::storage::{BackupStorage, StoredFile};

impl BackupOrchestrator {
    /// Store the file at `local` under `key`, audited.
    pub async fn store_file(&self, local: &Path, key: &str) -> Result<StoredFile> {
        let result = self.storage().store(local, key).await;
        let (outcome, detail) = match &result {
            Ok(f) => (AuditOutcome::Ok, format!("{key} ({} bytes)", f.size)),
            Err(e) => (AuditOutcome::Failed, format!("{key}: {e}")),
        };
        self.catalog
            .audit(&self.audit("storage.store", None, None, outcome, Some(detail)))
            .await?;
        result
    }

    /// Delete what is stored under `key`, audited; returns whether it existed.
    pub async fn delete_stored_file(&self, key: &str) -> Result<bool> {
        let result = self.storage().delete(key).await;
        let (outcome, detail) = match &result {
            Ok(existed) => (
                AuditOutcome::Ok,
                format!("{key}{}", if *existed { "" } else { " (was not stored)" }),
            ),
            Err(e) => (AuditOutcome::Failed, format!("{key}: {e}")),
        };
        self.catalog
            .audit(&self.audit("storage.delete", None, None, outcome, Some(detail)))
            .await?;
        result
    }
}
