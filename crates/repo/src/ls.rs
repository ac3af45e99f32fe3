//! Listing the content of a snapshot.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::Id;
use crate::repository::Repository;
use crate::tree::{Node, NodeKind};
use crate::walk;

/// One listed entry.
#[derive(Debug, Clone, Serialize)]
pub struct LsEntry {
    /// Path relative to the snapshot root.
    pub path: String,
    /// File, directory or symlink.
    pub kind: NodeKind,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (files).
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Link target (symlinks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl LsEntry {
    fn new(path: String, node: &Node) -> Self {
        LsEntry {
            path,
            kind: node.kind,
            mode: node.mode,
            uid: node.uid,
            gid: node.gid,
            size: node.size,
            mtime_ns: node.mtime_ns,
            target: node.target.as_ref().map(|t| t.lossy()),
        }
    }
}

impl Repository {
    /// List everything in snapshot `snapshot` below `path` (all when empty),
    /// depth-first in name order.
    pub async fn ls(&self, snapshot: &Id, path: &str) -> Result<Vec<LsEntry>> {
        let snap = self.load_snapshot(snapshot).await?;
        let prefix = walk::normalize_snapshot_path(path)?;
        let trees = walk::load_trees(self, snap.tree, false).await?;
        if !prefix.as_os_str().is_empty() && trees.lookup(&prefix).is_none() {
            return Err(Error::PathNotFound(path.to_string()));
        }
        let mut out = Vec::new();
        trees.walk(|p, node| {
            let inside = p.starts_with(&prefix);
            if inside {
                out.push(LsEntry::new(p.display().to_string(), node));
            }
            Ok(inside || prefix.starts_with(p))
        })?;
        Ok(out)
    }
}
