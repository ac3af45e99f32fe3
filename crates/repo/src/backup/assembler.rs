//! Building tree blobs: the assembler receives finished directories in
//! post-order, waits for their files' content ids, and stores each listing as
//! a tree blob. An unchanged directory yields the same bytes as in the parent
//! snapshot, hence the same id, and is not stored again.

use std::sync::atomic::Ordering;

use crossbeam_channel::Receiver;

use super::walker::{AssemblerMsg, FileStatus, Slot};
use super::worker::{Ctx, FileOutcome};
use crate::blob::BlobKind;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::tree::{Node, NodeKind, Tree};

/// What the assembler learned while building the trees.
#[derive(Debug, Default)]
pub(crate) struct Assembled {
    pub root: Id,
    pub files: u64,
    pub dirs: u64,
    pub total_bytes: u64,
    pub skipped: Vec<String>,
}

/// Assembler thread body.
pub(crate) fn run_assembler(ctx: &Ctx, messages: &Receiver<AssemblerMsg>) -> Result<Assembled> {
    let mut done = Assembled::default();
    let mut finished_dirs: Vec<Node> = Vec::new();
    for message in messages.iter() {
        match message {
            AssemblerMsg::Dir(dir) => {
                let tree = collect(ctx, dir.slots, &mut finished_dirs, &mut done)?;
                let mut node = dir.node;
                node.subtree = Some(store_tree(ctx, tree)?);
                done.dirs += 1;
                finished_dirs.push(node);
            }
            AssemblerMsg::Root(slots) => {
                let tree = collect(ctx, slots, &mut finished_dirs, &mut done)?;
                done.root = store_tree(ctx, tree)?;
                return Ok(done);
            }
        }
    }
    Err(Error::Cancelled)
}

fn collect(
    ctx: &Ctx,
    slots: Vec<Slot>,
    finished_dirs: &mut Vec<Node>,
    done: &mut Assembled,
) -> Result<Tree> {
    let subdirs = slots.iter().filter(|s| matches!(s, Slot::Dir)).count();
    let mut tree = Tree {
        nodes: finished_dirs.split_off(finished_dirs.len() - subdirs),
    };
    for slot in slots {
        match slot {
            Slot::Dir => {}
            Slot::Ready(node) => {
                if node.kind == NodeKind::File {
                    done.files += 1;
                    done.total_bytes += node.size;
                }
                tree.nodes.push(node);
            }
            Slot::Skipped(reason) => {
                tracing::warn!("skipped {reason}");
                done.skipped.push(reason);
            }
            Slot::Pending {
                mut node,
                status,
                reply,
            } => match reply.recv() {
                Ok(Ok(FileOutcome::Stored { content, size })) => {
                    node.content = content;
                    node.size = size;
                    done.files += 1;
                    done.total_bytes += size;
                    let counter = match status {
                        FileStatus::New => &ctx.stats.files_new,
                        FileStatus::Changed => &ctx.stats.files_changed,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    ctx.progress.add(0, 1);
                    tree.nodes.push(node);
                }
                Ok(Ok(FileOutcome::Skipped(reason))) => {
                    tracing::warn!("skipped {reason}");
                    done.skipped.push(reason);
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(Error::Cancelled),
            },
        }
    }
    tree.sort();
    Ok(tree)
}

fn store_tree(ctx: &Ctx, tree: Tree) -> Result<Id> {
    ctx.store(BlobKind::Tree, &tree.to_bytes())
}
