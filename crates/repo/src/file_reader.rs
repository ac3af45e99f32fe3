//! Reading one file of a snapshot as a stream (export, database restores).

use std::path::{Path, PathBuf};

use futures::StreamExt;

use crate::blob::BlobKind;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::repository::Repository;
use crate::tree::{Node, NodeKind};
use crate::walk;

/// Chunk reads in flight ahead of the reader.
const READS_AHEAD: usize = 8;

/// A file's content as a reader: chunk reads run as tasks on the runtime,
/// [`READS_AHEAD`] of them ahead of the reader, and the byte count must match
/// the size the tree records (a tar header announced it, a restore trusts it).
pub struct FileReader {
    handle: tokio::runtime::Handle,
    chunks: futures::stream::BoxStream<'static, Result<Vec<u8>>>,
    current: Vec<u8>,
    pos: usize,
    remaining: u64,
    path: PathBuf,
}

impl FileReader {
    pub(crate) fn new(
        repo: &Repository,
        handle: &tokio::runtime::Handle,
        node: &Node,
        path: &Path,
    ) -> Self {
        let repo = repo.clone();
        let chunks = futures::stream::iter(node.content.clone())
            .map(move |id| {
                let repo = repo.clone();
                tokio::spawn(async move { repo.read_blob(BlobKind::Data, &id).await })
            })
            .buffered(READS_AHEAD)
            .map(|joined| joined.expect("blob read task"))
            .boxed();
        FileReader {
            handle: handle.clone(),
            chunks,
            current: Vec::new(),
            pos: 0,
            remaining: node.size,
            path: path.to_path_buf(),
        }
    }

    fn size_mismatch(&self) -> std::io::Error {
        std::io::Error::other(Error::damaged(
            format!("file {}", self.path.display()),
            "its chunks do not add up to the size its tree records",
        ))
    }
}

impl std::io::Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.current.len() {
            match self.handle.block_on(self.chunks.next()) {
                None if self.remaining == 0 => return Ok(0),
                None => return Err(self.size_mismatch()),
                Some(Ok(data)) => {
                    if data.len() as u64 > self.remaining {
                        return Err(self.size_mismatch());
                    }
                    self.remaining -= data.len() as u64;
                    self.current = data;
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(std::io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Repository {
    /// A reader over the content of the file at `path` in snapshot
    /// `snapshot`, verifying every chunk. The reader blocks on the runtime:
    /// use it from a blocking thread (`spawn_blocking`), never on a runtime
    /// worker.
    pub async fn file_reader(&self, snapshot: &Id, path: &str) -> Result<FileReader> {
        let snap = self.load_snapshot(snapshot).await?;
        let rel = walk::normalize_snapshot_path(path)?;
        let trees = walk::load_trees(self, snap.tree, false).await?;
        let node = trees
            .lookup(&rel)
            .ok_or_else(|| Error::PathNotFound(path.to_string()))?;
        if node.kind != NodeKind::File {
            return Err(Error::InvalidInput(format!(
                "{path:?} in the snapshot is not a regular file"
            )));
        }
        Ok(FileReader::new(
            self,
            &tokio::runtime::Handle::current(),
            &node,
            &rel,
        ))
    }
}
