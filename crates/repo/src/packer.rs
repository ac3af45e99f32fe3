//! Filling packs with encoded blobs and uploading them.
//!
//! Producers (the backup workers, prune's repacking) call [`Packer::add`]
//! from ordinary threads; full packs go through a small bounded queue to an
//! async uploader that writes up to N packs at once. The queue bound keeps
//! memory at a few packs whatever the producers' speed.
//!
//! Index files are written here too: every [`INDEX_EVERY_PACKS`] uploaded
//! packs, and once more at the end, so a long backup that dies still leaves
//! its finished packs indexed (a re-run deduplicates against them).

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::blob::{BlobKind, EncodedBlob};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::{IndexFile, IndexedPack};
use crate::pack::{FinishedPack, PackBuilder};
use crate::repository::Repository;
use crate::storage::ObjectKind;

/// Write an index file after this many packs, before the end.
pub const INDEX_EVERY_PACKS: usize = 64;

/// What an upload run produced.
#[derive(Debug, Default)]
pub struct UploadReport {
    /// Packs written, with their blobs.
    pub packs: Vec<IndexedPack>,
    /// Index files written.
    pub index_files: Vec<Id>,
    /// Bytes written to storage (packs and index files).
    pub bytes_stored: u64,
}

/// Packs blobs and hands full packs to the uploader.
pub struct Packer {
    repo: Repository,
    data: Mutex<PackBuilder>,
    tree: Mutex<PackBuilder>,
    pack_size: usize,
    /// Room for the blob that overflows a pack, so it never reallocates.
    max_blob: usize,
    queue: Mutex<Option<mpsc::Sender<FinishedPack>>>,
    uploader: Mutex<Option<tokio::task::JoinHandle<Result<UploadReport>>>>,
}

impl Packer {
    /// Start a packer and its uploader on the current Tokio runtime.
    pub fn start(repo: &Repository) -> Arc<Self> {
        let pack_size = repo.config().pack_size as usize;
        let (tx, rx) = mpsc::channel(1);
        let uploader = tokio::spawn(upload_loop(repo.clone(), rx));
        Arc::new(Packer {
            repo: repo.clone(),
            data: Mutex::new(PackBuilder::new(BlobKind::Data, 0)),
            tree: Mutex::new(PackBuilder::new(BlobKind::Tree, 0)),
            pack_size,
            max_blob: repo.config().chunker.max_size as usize + 4096,
            queue: Mutex::new(Some(tx)),
            uploader: Mutex::new(Some(uploader)),
        })
    }

    fn builder(&self, kind: BlobKind) -> &Mutex<PackBuilder> {
        match kind {
            BlobKind::Data => &self.data,
            BlobKind::Tree => &self.tree,
        }
    }

    /// Add a blob. Blocks while the upload queue is full, so it must be
    /// called from a thread outside the async runtime (a worker thread or
    /// `spawn_blocking`). Fails if the uploader has stopped on an error.
    pub fn add(&self, blob: &EncodedBlob<'_>) -> Result<()> {
        let full = {
            let mut builder = self.builder(blob.kind).lock().expect("pack builder");
            if builder.is_empty() {
                *builder = PackBuilder::new(blob.kind, self.pack_size + self.max_blob);
            }
            builder.add(blob);
            if builder.len() >= self.pack_size {
                Some(std::mem::replace(
                    &mut *builder,
                    PackBuilder::new(blob.kind, 0),
                ))
            } else {
                None
            }
        };
        match full {
            Some(builder) => self.send(builder),
            None => Ok(()),
        }
    }

    fn send(&self, builder: PackBuilder) -> Result<()> {
        let pack = builder.finish(self.repo.crypto());
        let tx = self.queue.lock().expect("queue").clone();
        match tx {
            Some(tx) => tx.blocking_send(pack).map_err(|_| uploader_stopped()),
            None => Err(uploader_stopped()),
        }
    }

    /// Flush partly filled packs, wait for every upload and the final index
    /// file. Call from a thread outside the runtime, like [`Packer::add`].
    pub fn finish_blocking(&self, handle: &tokio::runtime::Handle) -> Result<UploadReport> {
        let mut first_error = None;
        for kind in [BlobKind::Data, BlobKind::Tree] {
            let builder = std::mem::replace(
                &mut *self.builder(kind).lock().expect("pack builder"),
                PackBuilder::new(kind, 0),
            );
            if !builder.is_empty()
                && let Err(e) = self.send(builder)
            {
                first_error.get_or_insert(e);
            }
        }
        self.queue.lock().expect("queue").take();
        let uploader = self.uploader.lock().expect("uploader").take();
        let report = match uploader {
            Some(task) => handle.block_on(task).expect("upload task"),
            None => Err(uploader_stopped()),
        };
        match (report, first_error) {
            (Err(e), _) => Err(e),
            (Ok(_), Some(e)) => Err(e),
            (Ok(report), None) => Ok(report),
        }
    }

    /// Stop without flushing (the operation failed): what was uploaded stays
    /// as unreferenced packs for prune to collect.
    pub fn abandon(&self) {
        self.queue.lock().expect("queue").take();
        if let Some(task) = self.uploader.lock().expect("uploader").take() {
            task.abort();
        }
    }
}

fn uploader_stopped() -> Error {
    Error::Storage {
        path: "data/".into(),
        cause: "the pack uploader stopped after an earlier error".into(),
    }
}

async fn upload_loop(
    repo: Repository,
    mut rx: mpsc::Receiver<FinishedPack>,
) -> Result<UploadReport> {
    let concurrency = repo.storage().upload_concurrency.max(1);
    let mut running: JoinSet<Result<IndexedPack>> = JoinSet::new();
    let mut report = UploadReport::default();
    let mut unindexed: Vec<IndexedPack> = Vec::new();
    let collect =
        |done: IndexedPack, report: &mut UploadReport, unindexed: &mut Vec<IndexedPack>| {
            report.bytes_stored += done.size;
            unindexed.push(done);
        };
    while let Some(pack) = rx.recv().await {
        while running.len() >= concurrency {
            let done = running
                .join_next()
                .await
                .expect("non-empty")
                .expect("upload task")?;
            collect(done, &mut report, &mut unindexed);
        }
        let storage = repo.storage().clone();
        running.spawn(async move {
            let size = pack.bytes.len() as u64;
            storage
                .write(&ObjectKind::Pack.path(&pack.id), pack.bytes)
                .await?;
            Ok(IndexedPack {
                id: pack.id,
                size,
                marked_at: None,
                blobs: pack.entries,
            })
        });
        if unindexed.len() >= INDEX_EVERY_PACKS {
            flush_index(&repo, &mut unindexed, &mut report).await?;
        }
    }
    while let Some(done) = running.join_next().await {
        collect(done.expect("upload task")?, &mut report, &mut unindexed);
    }
    flush_index(&repo, &mut unindexed, &mut report).await?;
    Ok(report)
}

async fn flush_index(
    repo: &Repository,
    unindexed: &mut Vec<IndexedPack>,
    report: &mut UploadReport,
) -> Result<()> {
    if unindexed.is_empty() {
        return Ok(());
    }
    let file = IndexFile {
        supersedes: Vec::new(),
        packs: std::mem::take(unindexed),
    };
    let bytes = file.encode(repo.crypto());
    report.bytes_stored += bytes.len() as u64;
    let id = repo.write_object(ObjectKind::Index, bytes).await?;
    report.index_files.push(id);
    report.packs.extend(file.packs);
    Ok(())
}

impl Repository {
    /// Store blobs outside a backup (trees built by a caller, tools, tests):
    /// each is encoded, packed, uploaded and indexed. Returns their ids.
    pub async fn save_blobs(&self, blobs: Vec<(BlobKind, Vec<u8>)>) -> Result<Vec<Id>> {
        let repo = self.clone();
        let level = self.config().compression_level;
        let packer = Packer::start(self);
        let handle = tokio::runtime::Handle::current();
        let ids = tokio::task::spawn_blocking(move || -> Result<Vec<Id>> {
            let mut ids = Vec::with_capacity(blobs.len());
            for (kind, data) in &blobs {
                let id = repo.crypto().blob_id(data);
                let added = crate::blob::encode_with(repo.crypto(), *kind, id, data, level, |b| {
                    packer.add(b)
                });
                if let Err(e) = added {
                    packer.abandon();
                    return Err(e);
                }
                ids.push(id);
            }
            packer.finish_blocking(&handle)?;
            Ok(ids)
        })
        .await
        .expect("save task")?;
        self.refresh_index().await?;
        Ok(ids)
    }

    /// Store a tree blob; returns its id.
    pub async fn save_tree(&self, tree: &crate::tree::Tree) -> Result<Id> {
        let ids = self
            .save_blobs(vec![(BlobKind::Tree, tree.to_bytes())])
            .await?;
        Ok(ids[0])
    }
}
