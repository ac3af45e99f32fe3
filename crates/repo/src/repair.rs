//! Rebuilding the index from the packs' own headers.

use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;

use crate::error::Result;
use crate::index::{IndexFile, IndexedPack};
use crate::lock::{LockGuard, LockKind};
use crate::progress::Progress;
use crate::repository::Repository;
use crate::storage::ObjectKind;

/// What `repair_index` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairReport {
    /// Packs whose header was read into the new index.
    pub packs_indexed: u64,
    /// Packs whose header could not be read (damaged), left out.
    pub packs_unreadable: Vec<String>,
    /// Index files replaced.
    pub index_files_replaced: u64,
}

impl Repository {
    /// Read every pack's header and write one index listing them all (all
    /// live: prune will mark again what is unused), replacing every index
    /// file that existed when it started.
    pub async fn repair_index(&self, progress: Arc<Progress>) -> Result<RepairReport> {
        let lock = LockGuard::acquire(
            self.storage(),
            LockKind::Maintenance,
            "repair-index",
            self.stale_after(),
        )
        .await?;
        let result = self.repair_index_locked(&progress).await;
        let released = lock.release().await;
        let report = result?;
        released?;
        self.invalidate_index();
        Ok(report)
    }

    async fn repair_index_locked(&self, progress: &Arc<Progress>) -> Result<RepairReport> {
        let old_files = self.storage().list(ObjectKind::Index).await?;
        let packs = self.storage().list(ObjectKind::Pack).await?;
        progress.add_total(0, packs.len() as u64);
        progress.set_totals_known();
        let headers: Vec<_> = futures::stream::iter(packs)
            .map(|p| async move {
                let r = self.read_pack_header(&p.id, p.size).await;
                progress.add(0, 1);
                (p, r)
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let mut report = RepairReport::default();
        let mut file = IndexFile {
            supersedes: old_files.iter().map(|o| o.id).collect(),
            packs: Vec::new(),
        };
        for (p, r) in headers {
            match r {
                Ok(blobs) => {
                    report.packs_indexed += 1;
                    file.packs.push(IndexedPack {
                        id: p.id,
                        size: p.size,
                        marked_at: None,
                        blobs,
                    });
                }
                Err(e) => report
                    .packs_unreadable
                    .push(format!("{}: {e}", ObjectKind::Pack.describe(&p.id))),
            }
        }
        file.packs.sort_by_key(|p| p.id);
        self.write_index(&file).await?;
        for old in &old_files {
            self.storage()
                .delete(&ObjectKind::Index.path(&old.id))
                .await?;
        }
        report.index_files_replaced = old_files.len() as u64;
        Ok(report)
    }
}
