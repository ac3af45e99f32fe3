//! Differences between two snapshots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Result;
use crate::id::Id;
use crate::repository::Repository;
use crate::tree::{FileName, Node, NodeKind, Tree};
use crate::walk::{self, Trees};

/// How a path differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Only in the second snapshot.
    Added,
    /// Only in the first snapshot.
    Removed,
    /// Content, kind or link target differ.
    Modified,
    /// Only metadata (mode, owner, times) differs.
    Metadata,
}

/// One difference.
#[derive(Debug, Clone, Serialize)]
pub struct DiffEntry {
    /// What changed.
    pub change: Change,
    /// Path relative to the snapshot root.
    pub path: String,
    /// Kind of the entry (in the second snapshot, or the first if removed).
    pub kind: NodeKind,
}

fn classify(a: &Node, b: &Node) -> Option<Change> {
    if a.kind != b.kind
        || a.content != b.content
        || a.target != b.target
        || (a.kind == NodeKind::File && a.size != b.size)
    {
        Some(Change::Modified)
    } else if a.mode != b.mode || a.uid != b.uid || a.gid != b.gid || a.mtime_ns != b.mtime_ns {
        Some(Change::Metadata)
    } else {
        None
    }
}

fn children<'a>(trees: &'a Trees, node: Option<&Node>) -> BTreeMap<&'a FileName, &'a Node> {
    let id = match node {
        Some(n) if n.kind == NodeKind::Dir => n.subtree,
        Some(_) => None,
        None => Some(trees.root),
    };
    id.and_then(|id| trees.trees.get(&id))
        .map(|t: &Tree| t.nodes.iter().map(|n| (&n.name, n)).collect())
        .unwrap_or_default()
}

fn everything_below(
    trees: &Trees,
    node: &Node,
    path: &Path,
    change: Change,
    out: &mut Vec<DiffEntry>,
) {
    for (name, child) in children(trees, Some(node)) {
        let p = path.join(name.as_os());
        out.push(DiffEntry {
            change,
            path: p.display().to_string(),
            kind: child.kind,
        });
        everything_below(trees, child, &p, change, out);
    }
}

fn compare(
    ta: &Trees,
    tb: &Trees,
    a: Option<&Node>,
    b: Option<&Node>,
    path: &Path,
    out: &mut Vec<DiffEntry>,
) {
    if let (Some(a), Some(b)) = (a, b)
        && a.subtree.is_some()
        && a.subtree == b.subtree
    {
        return;
    }
    let left = children(ta, a);
    let right = children(tb, b);
    let mut names: Vec<&FileName> = left.keys().chain(right.keys()).copied().collect();
    names.sort();
    names.dedup();
    for name in names {
        let p: PathBuf = path.join(name.as_os());
        match (left.get(name), right.get(name)) {
            (Some(x), None) => {
                out.push(DiffEntry {
                    change: Change::Removed,
                    path: p.display().to_string(),
                    kind: x.kind,
                });
                everything_below(ta, x, &p, Change::Removed, out);
            }
            (None, Some(y)) => {
                out.push(DiffEntry {
                    change: Change::Added,
                    path: p.display().to_string(),
                    kind: y.kind,
                });
                everything_below(tb, y, &p, Change::Added, out);
            }
            (Some(x), Some(y)) => {
                if x.kind != NodeKind::Dir || y.kind != NodeKind::Dir {
                    if let Some(change) = classify(x, y) {
                        out.push(DiffEntry {
                            change,
                            path: p.display().to_string(),
                            kind: y.kind,
                        });
                    }
                } else {
                    if let Some(change @ Change::Metadata) = classify(x, y) {
                        out.push(DiffEntry {
                            change,
                            path: p.display().to_string(),
                            kind: y.kind,
                        });
                    }
                    compare(ta, tb, Some(x), Some(y), &p, out);
                }
            }
            (None, None) => unreachable!("name came from one side"),
        }
    }
}

impl Repository {
    /// What changed from snapshot `a` to snapshot `b`, in path order.
    pub async fn diff(&self, a: &Id, b: &Id) -> Result<Vec<DiffEntry>> {
        let root_a = self.load_snapshot(a).await?.tree;
        let root_b = self.load_snapshot(b).await?.tree;
        let ta = walk::load_trees(self, root_a, false).await?;
        let tb = walk::load_trees(self, root_b, false).await?;
        let mut out = Vec::new();
        if root_a != root_b {
            compare(&ta, &tb, None, None, Path::new(""), &mut out);
        }
        Ok(out)
    }
}
