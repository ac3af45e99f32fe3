//! Repository statistics: how much is stored, and how well deduplication
//! and compression work.

use serde::Serialize;

use crate::blob::BlobKind;
use crate::error::Result;
use crate::pack::FLAG_COMPRESSED;
use crate::repository::Repository;

/// Repository statistics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepoStats {
    /// Snapshots.
    pub snapshots: u64,
    /// Packs in the index (live and marked).
    pub packs: u64,
    /// Packs marked for deletion by prune.
    pub packs_marked: u64,
    /// Bytes of all packs.
    pub stored_bytes: u64,
    /// Distinct data blobs.
    pub data_blobs: u64,
    /// Distinct tree blobs.
    pub tree_blobs: u64,
    /// Plaintext bytes of distinct data blobs (deduplicated content).
    pub unique_bytes: u64,
    /// Stored bytes of distinct data blobs (after compression).
    pub unique_stored_bytes: u64,
    /// Blobs stored compressed.
    pub compressed_blobs: u64,
    /// Sum of every snapshot's logical size (what restoring all would write).
    pub logical_bytes: u64,
    /// `logical_bytes / unique_bytes`.
    pub dedup_ratio: f64,
    /// `unique_bytes / unique_stored_bytes`.
    pub compression_ratio: f64,
    /// Memory the loaded index takes.
    pub index_memory_bytes: u64,
    /// `index_memory_bytes` per distinct blob.
    pub index_bytes_per_blob: f64,
}

impl Repository {
    /// Compute statistics from the index and the snapshots.
    pub async fn stats(&self) -> Result<RepoStats> {
        let index = self.refresh_index().await?;
        let snapshots = self.snapshots().await?;
        let mut s = RepoStats {
            snapshots: snapshots.len() as u64,
            packs: index.packs().len() as u64,
            packs_marked: index
                .packs()
                .iter()
                .filter(|p| p.marked_at.is_some())
                .count() as u64,
            stored_bytes: index.packs().iter().map(|p| p.size).sum(),
            logical_bytes: snapshots.iter().map(|(_, s)| s.summary.total_bytes).sum(),
            index_memory_bytes: index.memory_bytes() as u64,
            ..RepoStats::default()
        };
        for e in index.live_entries() {
            match e.kind {
                BlobKind::Data => {
                    s.data_blobs += 1;
                    s.unique_bytes += u64::from(e.raw_length);
                    s.unique_stored_bytes += u64::from(e.length);
                }
                BlobKind::Tree => s.tree_blobs += 1,
            }
            if e.flags & FLAG_COMPRESSED != 0 {
                s.compressed_blobs += 1;
            }
        }
        let blobs = (s.data_blobs + s.tree_blobs).max(1);
        s.index_bytes_per_blob = s.index_memory_bytes as f64 / blobs as f64;
        s.dedup_ratio = if s.unique_bytes > 0 {
            s.logical_bytes as f64 / s.unique_bytes as f64
        } else {
            0.0
        };
        s.compression_ratio = if s.unique_stored_bytes > 0 {
            s.unique_bytes as f64 / s.unique_stored_bytes as f64
        } else {
            0.0
        };
        Ok(s)
    }
}

impl Repository {
    /// Bytes the given snapshots occupy in storage together, each blob
    /// counted once: what a site's backups really cost after deduplication.
    pub async fn stored_size(&self, snapshots: &[crate::id::Id]) -> Result<u64> {
        let index = self.refresh_index().await?;
        let mut seen = std::collections::HashSet::new();
        let mut total = 0u64;
        for id in snapshots {
            let snap = self.load_snapshot(id).await?;
            let trees = crate::walk::load_trees(self, snap.tree, false).await?;
            for (tree_id, tree) in &trees.trees {
                let blobs = std::iter::once(tree_id)
                    .chain(tree.nodes.iter().flat_map(|n| n.content.iter()));
                for blob in blobs {
                    if seen.insert(*blob)
                        && let Some(e) = index.get(blob)
                    {
                        total += u64::from(e.length);
                    }
                }
            }
        }
        Ok(total)
    }
}
