//! Reading files and streams into content blobs.
//!
//! A file is read in large pieces; each piece is cut into chunks, and the
//! chunks of a piece are hashed, compressed and sealed in parallel on the
//! rayon pool, so one large file (a database dump) uses every core. Small
//! files are one chunk, processed on the worker thread itself.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::blob::{self, BlobKind};
use crate::chunker::Chunker;
use crate::crypto::Crypto;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::MasterIndex;
use crate::packer::Packer;
use crate::progress::Progress;

/// Counters of one backup run.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub files_new: AtomicU64,
    pub files_changed: AtomicU64,
    pub files_unchanged: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_added: AtomicU64,
}

/// State shared by all threads of one backup.
pub(crate) struct Ctx {
    pub crypto: Arc<Crypto>,
    pub index: Arc<MasterIndex>,
    pub chunker: Chunker,
    pub packer: Arc<Packer>,
    pub pending: Mutex<HashSet<Id>>,
    pub level: i32,
    pub progress: Arc<Progress>,
    pub stats: Stats,
    pub abort: AtomicBool,
    pub handle: tokio::runtime::Handle,
}

impl Ctx {
    /// Whether `id` must be stored: not in a live pack and not already
    /// claimed by another thread of this backup.
    fn claim(&self, id: &Id) -> bool {
        self.index.get_live(id).is_none() && self.pending.lock().expect("pending set").insert(*id)
    }

    /// Store a blob unless the repository already has it; returns its id.
    pub fn store(&self, kind: BlobKind, data: &[u8]) -> Result<Id> {
        let id = self.crypto.blob_id(data);
        if self.claim(&id) {
            blob::encode_with(&self.crypto, kind, id, data, self.level, |b| {
                self.packer.add(b)
            })?;
            self.stats
                .bytes_added
                .fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        Ok(id)
    }

    /// Whether the backup is stopping (an error elsewhere, or cancelled).
    pub fn aborted(&self) -> bool {
        self.abort.load(Ordering::Relaxed) || self.progress.is_cancelled()
    }
}

/// Where a file job's bytes come from.
pub(crate) enum JobSource {
    /// A file on disk (already lstat'ed as a regular file).
    File(PathBuf),
    /// A named stream (database dump) from a reader.
    Stream(Box<dyn Read + Send>),
}

/// Result of reading one file.
pub(crate) enum FileOutcome {
    /// Content stored; ids in order and the number of bytes read.
    Stored { content: Vec<Id>, size: u64 },
    /// The file could not be read; the backup goes on without it.
    Skipped(String),
}

/// One file to read, and where to send its outcome.
pub(crate) struct FileJob {
    pub source: JobSource,
    pub reply: crossbeam_channel::Sender<Result<FileOutcome>>,
}

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Worker thread body: process jobs until the queue closes.
pub(crate) fn run_worker(ctx: &Ctx, jobs: &crossbeam_channel::Receiver<FileJob>) {
    for job in jobs.iter() {
        if ctx.aborted() {
            // Dropping the reply tells the assembler the job did not run.
            continue;
        }
        let outcome = process(ctx, job.source);
        if let Err(e) = &outcome {
            tracing::debug!("file job failed: {e}");
        }
        let _ = job.reply.send(outcome);
    }
}

fn process(ctx: &Ctx, source: JobSource) -> Result<FileOutcome> {
    match source {
        JobSource::File(path) => {
            let file = match File::options()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NOATIME)
                .open(&path)
                .or_else(|_| {
                    File::options()
                        .read(true)
                        .custom_flags(libc::O_NOFOLLOW)
                        .open(&path)
                }) {
                Ok(f) => f,
                Err(e) => return Ok(FileOutcome::Skipped(format!("{}: {e}", path.display()))),
            };
            match read_content(ctx, file) {
                Ok(outcome) => Ok(outcome),
                // A read error on a file is not the repository's fault: skip it.
                Err(Error::Io { source, .. }) => Ok(FileOutcome::Skipped(format!(
                    "{}: {source}",
                    path.display()
                ))),
                Err(e) => Err(e),
            }
        }
        // A stream that fails fails the backup: a half dump is no backup.
        JobSource::Stream(reader) => read_content(ctx, reader),
    }
}

fn read_content<R: Read>(ctx: &Ctx, reader: R) -> Result<FileOutcome> {
    BUFFER.with(|cell| {
        let mut buf = cell.borrow_mut();
        let mut content = Vec::new();
        let size = ctx.chunker.stream(
            reader,
            &mut buf,
            |data, ranges| {
                if ctx.aborted() {
                    return Err(Error::Cancelled);
                }
                let ids: Vec<Id> = if ranges.len() == 1 {
                    vec![ctx.store(BlobKind::Data, &data[ranges[0].clone()])?]
                } else {
                    ranges
                        .par_iter()
                        .map(|r| ctx.store(BlobKind::Data, &data[r.clone()]))
                        .collect::<Result<Vec<Id>>>()?
                };
                let bytes: usize = ranges.iter().map(|r| r.len()).sum();
                ctx.stats
                    .bytes_read
                    .fetch_add(bytes as u64, Ordering::Relaxed);
                ctx.progress.add(bytes as u64, 0);
                content.extend(ids);
                Ok(())
            },
            |e| Error::io("reading", "<source>", e),
        )?;
        Ok(FileOutcome::Stored { content, size })
    })
}
