//! Walking a snapshot's trees: load every tree of a snapshot (many reads in
//! flight), then visit the nodes depth-first in name order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use futures::StreamExt;

use crate::error::Result;
use crate::id::Id;
use crate::repository::Repository;
use crate::tree::{Node, NodeKind, Tree};

const TREE_READS_IN_FLIGHT: usize = 16;

/// All trees of a snapshot, by id.
pub(crate) struct Trees {
    pub root: Id,
    pub trees: HashMap<Id, Tree>,
}

/// Load every tree reachable from `root`. With `validate`, each tree must
/// pass [`Tree::validate`] (what restore and export require).
pub(crate) async fn load_trees(repo: &Repository, root: Id, validate: bool) -> Result<Trees> {
    let mut trees = HashMap::new();
    let mut frontier = vec![root];
    while !frontier.is_empty() {
        let loaded: Vec<Result<(Id, Tree)>> = futures::stream::iter(frontier.drain(..))
            .map(|id| async move { repo.read_tree(&id).await.map(|t| (id, t)) })
            .buffer_unordered(TREE_READS_IN_FLIGHT)
            .collect()
            .await;
        for result in loaded {
            let (id, tree) = result?;
            if validate {
                tree.validate()?;
            }
            for node in &tree.nodes {
                if node.kind == NodeKind::Dir
                    && let Some(sub) = node.subtree
                    && !trees.contains_key(&sub)
                    && !frontier.contains(&sub)
                {
                    frontier.push(sub);
                }
            }
            trees.insert(id, tree);
        }
        frontier.retain(|id| !trees.contains_key(id));
    }
    Ok(Trees { root, trees })
}

impl Trees {
    /// Visit every node depth-first (a directory before its entries), with
    /// its path relative to the snapshot root. `visit` returns whether to
    /// descend into a directory.
    pub fn walk(&self, mut visit: impl FnMut(&Path, &Node) -> Result<bool>) -> Result<()> {
        fn push_children<'t>(stack: &mut Vec<(PathBuf, &'t Node)>, dir: &Path, tree: &'t Tree) {
            for node in tree.nodes.iter().rev() {
                stack.push((dir.join(node.name.as_os()), node));
            }
        }
        let mut stack: Vec<(PathBuf, &Node)> = Vec::new();
        if let Some(root) = self.trees.get(&self.root) {
            push_children(&mut stack, Path::new(""), root);
        }
        while let Some((path, node)) = stack.pop() {
            let descend = visit(&path, node)?;
            if descend
                && node.kind == NodeKind::Dir
                && let Some(tree) = node.subtree.and_then(|id| self.trees.get(&id))
            {
                push_children(&mut stack, &path, tree);
            }
        }
        Ok(())
    }

    /// Find the node at `path` (relative to the root; empty = the root).
    pub fn lookup(&self, path: &Path) -> Option<Node> {
        let mut tree = self.trees.get(&self.root)?;
        let mut found: Option<&Node> = None;
        for component in path.components() {
            let name = component.as_os_str().as_encoded_bytes();
            if let Some(node) = found {
                tree = self.trees.get(&node.subtree?)?;
            }
            found = Some(tree.find(name)?);
        }
        found.cloned()
    }
}

/// Normalize a user-given path inside a snapshot: no leading `/`, no `.`
/// components, and no `..`.
pub(crate) fn normalize_snapshot_path(path: &str) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for component in Path::new(path).components() {
        match component {
            std::path::Component::Normal(c) => out.push(c),
            std::path::Component::RootDir | std::path::Component::CurDir => {}
            _ => {
                return Err(crate::Error::InvalidInput(format!(
                    "path {path:?} inside a snapshot must not contain .."
                )));
            }
        }
    }
    Ok(out)
}
