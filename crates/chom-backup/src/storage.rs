//! Stored files: whole files kept under a key (`imports/blog.tar.gz`) in the
//! same deduplicated, compressed, encrypted repository as the site backups.
//! This is the module's storage contract ([`BackupStorage`]): what a panel
//! uses for archives that are not site backups — a cPanel archive being
//! imported, a bundle kept for a customer, a dump handed over by hand.
//!
//! Each store is one snapshot holding one stream at the key's path, tagged
//! with the key, its SHA-256 and its size. The newest snapshot of a key is
//! its content. Storing a key again commits the new snapshot first and only
//! then forgets the older ones, so a crash leaves the old content or the
//! new, never neither. Delete forgets every snapshot of the key; the next
//! prune frees what nothing else shares.

use std::future::Future;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chom_repo::{BackupOptions, Id, ParentSelection, Progress, Repository, Snapshot, Source};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::domain::DomainError;
use crate::error::{Error, Result};

const KEY_TAG: &str = "chom.object";
const SHA256_TAG: &str = "chom.object.sha256";

/// A stored file, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredFile {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 of its content, in hex (what `sha256sum` prints).
    pub sha256: String,
    /// When this version was stored.
    pub stored_at: jiff::Timestamp,
    /// The snapshot holding it.
    pub snapshot: String,
}

/// Keeping whole files under keys: store, retrieve, exists, size,
/// checksum, delete.
pub trait BackupStorage {
    /// Store the file at `local` under `key`, replacing what was there.
    fn store(&self, local: &Path, key: &str) -> impl Future<Output = Result<StoredFile>> + Send;
    /// Write the file stored under `key` to `local` (atomically: a
    /// temporary file beside it, verified, then renamed).
    fn retrieve(&self, key: &str, local: &Path) -> impl Future<Output = Result<StoredFile>> + Send;
    /// Whether something is stored under `key`.
    fn exists(&self, key: &str) -> impl Future<Output = Result<bool>> + Send;
    /// The size in bytes of what is stored under `key`.
    fn size(&self, key: &str) -> impl Future<Output = Result<u64>> + Send;
    /// The SHA-256 (hex) of what is stored under `key`.
    fn checksum(&self, key: &str) -> impl Future<Output = Result<String>> + Send;
    /// Remove `key`; returns whether it existed.
    fn delete(&self, key: &str) -> impl Future<Output = Result<bool>> + Send;
}

/// [`BackupStorage`] in a chom repository.
#[derive(Clone)]
pub struct RepositoryStorage {
    repo: Repository,
}

impl RepositoryStorage {
    /// Stored files in `repo`.
    pub fn new(repo: Repository) -> Self {
        RepositoryStorage { repo }
    }

    /// Every stored file, by key.
    pub async fn list(&self) -> Result<Vec<StoredFile>> {
        let mut newest: std::collections::BTreeMap<String, StoredFile> = Default::default();
        for (id, snap) in self.repo.snapshots().await? {
            if let Some(file) = stored_file(&id, &snap)
                && newest
                    .get(&file.key)
                    .is_none_or(|known| known.stored_at < file.stored_at)
            {
                newest.insert(file.key.clone(), file);
            }
        }
        Ok(newest.into_values().collect())
    }

    /// Every snapshot of `key`, oldest first.
    async fn versions(&self, key: &str) -> Result<Vec<(Id, StoredFile)>> {
        validate_key(key)?;
        let mut versions: Vec<(Id, StoredFile)> = self
            .repo
            .snapshots()
            .await?
            .iter()
            .filter_map(|(id, snap)| {
                stored_file(id, snap)
                    .filter(|f| f.key == key)
                    .map(|f| (*id, f))
            })
            .collect();
        versions.sort_by_key(|(_, f)| f.stored_at);
        Ok(versions)
    }

    /// What is stored under `key`: size, SHA-256, date (one listing of
    /// the snapshots, where `size` and `checksum` would take one each).
    pub async fn stat(&self, key: &str) -> Result<StoredFile> {
        Ok(self.newest(key).await?.1)
    }

    /// Forget the versions of `key` stored before `time`, except `keep`.
    async fn forget_older(&self, key: &str, keep: &Id, time: jiff::Timestamp) -> Result<()> {
        let older: Vec<Id> = self
            .versions(key)
            .await?
            .into_iter()
            .filter(|(id, f)| id != keep && f.stored_at <= time)
            .map(|(id, _)| id)
            .collect();
        if !older.is_empty() {
            self.repo.forget(&older).await?;
        }
        Ok(())
    }

    async fn newest(&self, key: &str) -> Result<(Id, StoredFile)> {
        self.versions(key)
            .await?
            .pop()
            .ok_or_else(|| Error::StoredFileNotFound(key.to_string()))
    }
}

impl BackupStorage for RepositoryStorage {
    async fn store(&self, local: &Path, key: &str) -> Result<StoredFile> {
        validate_key(key)?;
        // The checksum is a tag, so it is known before the snapshot is
        // written; the stream is hashed again on its way in, and a file
        // that changed in between is not kept.
        let expected = hash_file(local).await?;
        let file = std::fs::File::open(local).map_err(|e| Error::io("opening", local, e))?;
        let seen = Arc::new(Mutex::new(Sha256::new()));
        let reader = HashingReader {
            inner: file,
            hasher: seen.clone(),
        };
        let mut opts = BackupOptions::default();
        opts.tags.insert(KEY_TAG.into(), key.to_string());
        opts.tags.insert(SHA256_TAG.into(), expected.clone());
        opts.parent = ParentSelection::None;
        let outcome = self
            .repo
            .backup(vec![Source::stream(key, reader)], &opts, Progress::new())
            .await?;
        let streamed = hex::encode(seen.lock().expect("hasher").clone().finalize());
        if streamed != expected {
            self.repo.forget(&[outcome.id]).await?;
            return Err(Error::Conflict(format!(
                "{} changed while it was being stored; nothing was kept under {key:?}: store it again once it is complete",
                local.display()
            )));
        }
        // Committed: older versions can go. Failing to forget them loses
        // nothing (the newest version is the content, and the next store
        // forgets them), so it does not fail the store.
        if let Err(e) = self
            .forget_older(key, &outcome.id, outcome.snapshot.time)
            .await
        {
            tracing::warn!("stored {key:?}; its older versions stay until the next store: {e}");
        }
        stored_file(&outcome.id, &outcome.snapshot)
            .ok_or_else(|| Error::Conflict("the stored snapshot lost its tags".into()))
    }

    async fn retrieve(&self, key: &str, local: &Path) -> Result<StoredFile> {
        let (id, file) = self.newest(key).await?;
        let reader = self.repo.file_reader(&id, key).await?;
        let dir = local
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let target = local.to_path_buf();
        let expected = file.sha256.clone();
        tokio::task::spawn_blocking(move || write_verified(reader, &dir, &target, &expected))
            .await
            .expect("retrieve thread")?;
        Ok(file)
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(!self.versions(key).await?.is_empty())
    }

    async fn size(&self, key: &str) -> Result<u64> {
        Ok(self.stat(key).await?.size)
    }

    async fn checksum(&self, key: &str) -> Result<String> {
        Ok(self.stat(key).await?.sha256)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let ids: Vec<Id> = self
            .versions(key)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        if ids.is_empty() {
            return Ok(false);
        }
        self.repo.forget(&ids).await?;
        Ok(true)
    }
}

/// A key is a relative path of plain names: `imports/blog.tar.gz`.
fn validate_key(key: &str) -> Result<()> {
    let bad = |why: &str| -> Result<()> {
        Err(DomainError::new("key", format!("{key:?} is not a usable key: {why}")).into())
    };
    if key.is_empty() || key.len() > 1024 {
        return bad("use 1 to 1024 characters");
    }
    if key.starts_with('/') {
        return bad("use a relative path such as imports/blog.tar.gz");
    }
    if key.chars().any(char::is_control) {
        return bad("it contains control characters");
    }
    if key
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return bad("every part between slashes must be a name (no empty parts, '.' or '..')");
    }
    Ok(())
}

fn stored_file(id: &Id, snap: &Snapshot) -> Option<StoredFile> {
    Some(StoredFile {
        key: snap.tags.get(KEY_TAG)?.clone(),
        sha256: snap.tags.get(SHA256_TAG)?.clone(),
        size: snap.summary.total_bytes,
        stored_at: snap.time,
        snapshot: id.to_hex(),
    })
}

async fn hash_file(path: &Path) -> Result<String> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path).map_err(|e| Error::io("opening", &path, e))?;
        if !file
            .metadata()
            .map_err(|e| Error::io("reading", &path, e))?
            .is_file()
        {
            return Err(DomainError::new(
                "file",
                format!("{} is not a regular file", path.display()),
            )
            .into());
        }
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => hasher.update(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("reading", &path, e)),
            }
        }
        Ok(hex::encode(hasher.finalize()))
    })
    .await
    .expect("hashing thread")
}

/// Copy `reader` into a temporary file in `dir`, check its SHA-256, make it
/// durable and rename it to `target`. On any failure `target` is untouched.
fn write_verified(mut reader: impl Read, dir: &Path, target: &Path, expected: &str) -> Result<()> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".chom-retrieve-")
        .tempfile_in(dir)
        .map_err(|e| Error::io("creating a temporary file in", dir, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| Error::io("reading back", target, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n])
            .map_err(|e| Error::io("writing", tmp.path().to_path_buf(), e))?;
    }
    let got = hex::encode(hasher.finalize());
    if got != expected {
        return Err(Error::Conflict(format!(
            "the content read back has SHA-256 {got}, not the {expected} it was stored with; run `chom-backup repo check --read-data`"
        )));
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io("syncing", tmp.path().to_path_buf(), e))?;
    tmp.persist(target)
        .map_err(|e| Error::io("renaming into", target, e.error))?;
    Ok(())
}

/// Hashes what the repository reads from a stored file.
struct HashingReader<R> {
    inner: R,
    hasher: Arc<Mutex<Sha256>>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.lock().expect("hasher").update(&buf[..n]);
        Ok(n)
    }
}
