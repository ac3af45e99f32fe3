//! The repository handle: config, keys, index and object access. Commands
//! (backup, restore, check, prune, ...) are methods implemented in their own
//! modules on top of this.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;

use crate::blob::{self, BlobKind};
use crate::config::{Config, InitOptions};
use crate::crypto::{Crypto, MasterKey};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::index::{IndexFile, MasterIndex};
use crate::keys::{KdfParams, KeySlot};
use crate::lock::DEFAULT_STALE_AFTER;
use crate::snapshot::{self, Snapshot};
use crate::storage::{CONFIG_PATH, ObjectKind, Storage};
use crate::tree::Tree;

/// Concurrent object reads when loading many small objects.
const READ_CONCURRENCY: usize = 16;

/// An open repository. Cheap to clone; clones share the loaded index.
#[derive(Clone)]
pub struct Repository {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Storage,
    config: Config,
    crypto: Arc<Crypto>,
    /// Kept to wrap it into new key slots; wiped on drop.
    master: MasterKey,
    key_id: Id,
    index: RwLock<Option<Arc<MasterIndex>>>,
    stale_after: Duration,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("location", &self.inner.storage.location())
            .field("id", &self.inner.config.id)
            .field("encrypted", &self.is_encrypted())
            .finish_non_exhaustive()
    }
}

/// A key slot as listed by [`Repository::keys`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyListing {
    /// Slot id.
    pub id: Id,
    /// Whether this is the slot the repository was opened with.
    pub current: bool,
    /// Creation time.
    pub created: Timestamp,
    /// Creating host.
    pub host: String,
    /// Creating user.
    pub username: String,
}

impl Repository {
    /// Create a repository. `password` is required unless `opts.encrypt` is
    /// false. Fails if a repository already exists there.
    pub async fn init(storage: Storage, password: Option<&str>, opts: InitOptions) -> Result<Self> {
        let location = storage.location().to_string();
        match storage.exists(CONFIG_PATH).await {
            Ok(true) => return Err(Error::AlreadyInitialized { location }),
            Ok(false) => {}
            Err(e) => return Err(unreachable_from(&location, e)),
        }
        let config = Config::new(&opts)?;
        let master = MasterKey::generate();
        let slot = if opts.encrypt {
            let password = password.ok_or_else(|| {
                Error::InvalidInput(
                    "a password is needed to create an encrypted repository: set CHOM_BACKUP_PASSWORD or pass --password-file (or choose --no-encryption)".into(),
                )
            })?;
            let (kdf, password) = (opts.kdf, password.to_string());
            let (master2, repo_id) = (master.clone(), config.id);
            tokio::task::spawn_blocking(move || {
                KeySlot::protect(&master2, &repo_id, &password, kdf)
            })
            .await
            .expect("key derivation task")?
        } else {
            KeySlot::plain(&master)
        };
        let slot_bytes = serde_json::to_vec_pretty(&slot).expect("key slots serialize");
        let key_id = Id::of_object(&slot_bytes);
        // Key slot first, config last: the config's existence is what makes
        // a repository, so a crash in between leaves no half repository.
        storage
            .write(&ObjectKind::Key.path(&key_id), slot_bytes)
            .await?;
        let config_bytes = serde_json::to_vec_pretty(&config).expect("config serializes");
        storage.write(CONFIG_PATH, config_bytes).await?;
        Ok(Self::assemble(storage, config, master, key_id))
    }

    /// Open an existing repository with a password (`None` for repositories
    /// created with `--no-encryption`).
    pub async fn open(storage: Storage, password: Option<&str>) -> Result<Self> {
        let location = storage.location().to_string();
        let config_bytes = match storage.read(CONFIG_PATH).await {
            Ok(bytes) => bytes,
            Err(Error::MissingObject { .. }) => return Err(Error::NotARepository { location }),
            Err(e) => return Err(unreachable_from(&location, e)),
        };
        let config = Config::parse(&config_bytes, &location)?;
        let slots = storage.list(ObjectKind::Key).await?;
        let mut any_protected = false;
        for listed in slots {
            let bytes = storage.read(&ObjectKind::Key.path(&listed.id)).await?;
            let Ok(slot) = serde_json::from_slice::<KeySlot>(&bytes) else {
                tracing::warn!(
                    "key slot {} is not valid JSON; skipping it",
                    listed.id.short()
                );
                continue;
            };
            if slot.is_protected() != config.is_encrypted() {
                return Err(Error::damaged(
                    format!("key slot {}", listed.id.short()),
                    "its protection disagrees with the config's encryption setting",
                ));
            }
            any_protected |= slot.is_protected();
            if slot.is_protected() && password.is_none() {
                continue;
            }
            let repo_id = config.id;
            let password_owned = password.map(str::to_string);
            let master = tokio::task::spawn_blocking(move || {
                slot.unlock(&repo_id, password_owned.as_deref())
            })
            .await
            .expect("key derivation task")?;
            if let Some(master) = master {
                return Ok(Self::assemble(storage, config, master, listed.id));
            }
        }
        if any_protected && password.is_none() {
            return Err(Error::PasswordRequired { location });
        }
        Err(Error::WrongPassword { location })
    }

    fn assemble(storage: Storage, config: Config, master: MasterKey, key_id: Id) -> Self {
        let crypto = Arc::new(Crypto::new(&master, config.is_encrypted()));
        Repository {
            inner: Arc::new(Inner {
                storage,
                config,
                crypto,
                master,
                key_id,
                index: RwLock::new(None),
                stale_after: DEFAULT_STALE_AFTER,
            }),
        }
    }

    /// Use another stale-lock time (default 30 minutes) for locks taken
    /// through this handle and for judging others' locks.
    pub fn with_stale_lock_after(self, stale_after: Duration) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|arc| Inner {
            storage: arc.storage.clone(),
            config: arc.config.clone(),
            crypto: arc.crypto.clone(),
            master: arc.master.clone(),
            key_id: arc.key_id,
            index: RwLock::new(arc.index.read().expect("index lock").clone()),
            stale_after: arc.stale_after,
        });
        Repository {
            inner: Arc::new(Inner {
                stale_after,
                ..inner
            }),
        }
    }

    /// The storage behind the repository.
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// The repository's config.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Whether the repository is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.inner.config.is_encrypted()
    }

    /// Stale-lock time in use.
    pub fn stale_after(&self) -> Duration {
        self.inner.stale_after
    }

    pub(crate) fn crypto(&self) -> &Arc<Crypto> {
        &self.inner.crypto
    }

    /// Read an object and check it against its name.
    pub(crate) async fn read_object(&self, kind: ObjectKind, id: &Id) -> Result<Vec<u8>> {
        let bytes = self.inner.storage.read(&kind.path(id)).await?;
        if Id::of_object(&bytes) != *id {
            return Err(Error::damaged(
                kind.describe(id),
                "content does not match its name (hash)",
            ));
        }
        Ok(bytes)
    }

    /// Write an object named by the hash of its bytes.
    pub(crate) async fn write_object(&self, kind: ObjectKind, bytes: Vec<u8>) -> Result<Id> {
        let id = Id::of_object(&bytes);
        self.inner.storage.write(&kind.path(&id), bytes).await?;
        Ok(id)
    }

    // ----- index -----

    /// Read every index file. Damaged files are returned separately so check
    /// can report them; other callers treat any damage as an error.
    pub(crate) async fn read_index_files(&self) -> Result<(Vec<(Id, IndexFile)>, Vec<Error>)> {
        let listed: Vec<Id> = self
            .inner
            .storage
            .list(ObjectKind::Index)
            .await?
            .into_iter()
            .map(|o| o.id)
            .collect();
        self.read_index_files_named(listed).await
    }

    /// Read the named index files (files deleted meanwhile are skipped).
    async fn read_index_files_named(
        &self,
        ids: Vec<Id>,
    ) -> Result<(Vec<(Id, IndexFile)>, Vec<Error>)> {
        let crypto = self.inner.crypto.clone();
        let results: Vec<Result<Option<(Id, IndexFile)>>> = futures::stream::iter(ids)
            .map(|id| {
                let crypto = crypto.clone();
                async move {
                    match self.read_object(ObjectKind::Index, &id).await {
                        Ok(bytes) => IndexFile::decode(&crypto, &id, bytes).map(|f| Some((id, f))),
                        // Deleted by a concurrent prune after it wrote its replacement.
                        Err(Error::MissingObject { .. }) => Ok(None),
                        Err(e) => Err(e),
                    }
                }
            })
            .buffer_unordered(READ_CONCURRENCY)
            .collect()
            .await;
        let mut files = Vec::new();
        let mut damaged = Vec::new();
        for r in results {
            match r {
                Ok(Some(f)) => files.push(f),
                Ok(None) => {}
                Err(e) if e.is_damage() => damaged.push(e),
                Err(e) => return Err(e),
            }
        }
        Ok((files, damaged))
    }

    /// Load (or reload) the merged index from storage. When the index was
    /// loaded before and only new files appeared (backups add index files;
    /// only prune and repair remove them), only the new files are read and
    /// merged in: a service running thousands of backups does not re-read
    /// every index file for each of them.
    pub async fn refresh_index(&self) -> Result<Arc<MasterIndex>> {
        let listed: Vec<Id> = self
            .inner
            .storage
            .list(ObjectKind::Index)
            .await?
            .into_iter()
            .map(|o| o.id)
            .collect();
        let cached = self.inner.index.read().expect("index lock").clone();
        if let Some(current) = cached {
            let listed_set: std::collections::HashSet<Id> = listed.iter().copied().collect();
            if current
                .seen_files()
                .iter()
                .all(|id| listed_set.contains(id))
            {
                let seen: std::collections::HashSet<Id> =
                    current.seen_files().iter().copied().collect();
                let new: Vec<Id> = listed
                    .iter()
                    .filter(|id| !seen.contains(id))
                    .copied()
                    .collect();
                if new.is_empty() {
                    return Ok(current);
                }
                let (files, damaged) = self.read_index_files_named(new).await?;
                if let Some(first) = damaged.into_iter().next() {
                    return Err(with_repair_hint(first));
                }
                if let Some(extended) = current.extended(&files) {
                    let index = Arc::new(extended);
                    *self.inner.index.write().expect("index lock") = Some(index.clone());
                    return Ok(index);
                }
            }
        }
        let (files, damaged) = self.read_index_files_named(listed).await?;
        if let Some(first) = damaged.into_iter().next() {
            return Err(with_repair_hint(first));
        }
        let index = Arc::new(MasterIndex::build(&files));
        *self.inner.index.write().expect("index lock") = Some(index.clone());
        Ok(index)
    }

    /// The merged index, loading it on first use.
    pub async fn index(&self) -> Result<Arc<MasterIndex>> {
        if let Some(index) = self.inner.index.read().expect("index lock").clone() {
            return Ok(index);
        }
        self.refresh_index().await
    }

    /// Forget the cached index; the next use reloads it (after this handle
    /// wrote new index files).
    pub(crate) fn invalidate_index(&self) {
        *self.inner.index.write().expect("index lock") = None;
    }

    /// Write an index file.
    pub(crate) async fn write_index(&self, file: &IndexFile) -> Result<Id> {
        let bytes = file.encode(&self.inner.crypto);
        self.write_object(ObjectKind::Index, bytes).await
    }

    // ----- blobs and trees -----

    /// Read, decrypt, decompress and verify one blob.
    pub async fn read_blob(&self, kind: BlobKind, id: &Id) -> Result<Vec<u8>> {
        let mut index = self.index().await?;
        if index.get(id).is_none() {
            // Written since the index was loaded (by this process or another).
            index = self.refresh_index().await?;
        }
        let entry = *index.get(id).ok_or_else(|| {
            Error::damaged(
                format!(
                    "{} blob {}",
                    if kind == BlobKind::Data {
                        "data"
                    } else {
                        "tree"
                    },
                    id.short()
                ),
                "not in the index (run `repo check`)",
            )
        })?;
        let pack = index.pack(&entry).id;
        let stored = self
            .inner
            .storage
            .read_range(
                &ObjectKind::Pack.path(&pack),
                u64::from(entry.offset),
                u64::from(entry.length),
            )
            .await
            .map_err(|e| match e {
                Error::MissingObject { .. } => {
                    Error::damaged(ObjectKind::Pack.describe(&pack), "missing from storage")
                }
                other => other,
            })?;
        let crypto = self.inner.crypto.clone();
        let id = *id;
        decode_off_thread(crypto, kind, id, stored, entry.raw_length).await
    }

    /// Read a tree blob.
    pub async fn read_tree(&self, id: &Id) -> Result<Tree> {
        let bytes = self.read_blob(BlobKind::Tree, id).await?;
        Tree::from_bytes(&bytes, id)
    }

    // ----- snapshots -----

    /// All readable snapshots, oldest first. A damaged snapshot object is
    /// left out with a warning (`check` reports it), so one bad object does
    /// not keep the others from being listed or restored.
    pub async fn snapshots(&self) -> Result<Vec<(Id, Snapshot)>> {
        let (ok, damaged) = self.read_snapshots().await?;
        for e in damaged {
            tracing::warn!("{e}");
        }
        Ok(ok)
    }

    /// Read one snapshot by its full id.
    pub async fn load_snapshot(&self, id: &Id) -> Result<Snapshot> {
        match self.read_object(ObjectKind::Snapshot, id).await {
            Ok(bytes) => Snapshot::decode(&self.inner.crypto, id, bytes),
            Err(Error::MissingObject { .. }) => Err(Error::SnapshotNotFound(id.to_hex())),
            Err(e) => Err(e),
        }
    }

    /// All readable snapshots plus the damage found reading the others.
    pub(crate) async fn read_snapshots(&self) -> Result<(Vec<(Id, Snapshot)>, Vec<Error>)> {
        let listed = self.inner.storage.list(ObjectKind::Snapshot).await?;
        let crypto = self.inner.crypto.clone();
        let results: Vec<Result<Option<(Id, Snapshot)>>> = futures::stream::iter(listed)
            .map(|o| {
                let crypto = crypto.clone();
                async move {
                    match self.read_object(ObjectKind::Snapshot, &o.id).await {
                        Ok(bytes) => {
                            Snapshot::decode(&crypto, &o.id, bytes).map(|s| Some((o.id, s)))
                        }
                        Err(Error::MissingObject { .. }) => Ok(None),
                        Err(e) => Err(e),
                    }
                }
            })
            .buffer_unordered(READ_CONCURRENCY)
            .collect()
            .await;
        let mut snapshots = Vec::new();
        let mut damaged = Vec::new();
        for r in results {
            match r {
                Ok(Some(s)) => snapshots.push(s),
                Ok(None) => {}
                Err(e) if e.is_damage() => damaged.push(e),
                Err(e) => return Err(e),
            }
        }
        snapshots.sort_by_key(|(id, s)| (s.time, *id));
        Ok((snapshots, damaged))
    }

    /// Find a snapshot by id, prefix or `latest` among those with `tags`.
    pub async fn find_snapshot(
        &self,
        spec: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(Id, Snapshot)> {
        let snapshots = self.snapshots().await?;
        snapshot::resolve(spec, &snapshots, tags).cloned()
    }

    /// Store a snapshot object (the commit point of a backup).
    pub async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<Id> {
        let bytes = snapshot.encode(&self.inner.crypto);
        self.write_object(ObjectKind::Snapshot, bytes).await
    }

    /// Remove snapshots. Their data stays until `prune`.
    pub async fn forget(&self, ids: &[Id]) -> Result<()> {
        for id in ids {
            self.inner
                .storage
                .delete(&ObjectKind::Snapshot.path(id))
                .await?;
        }
        Ok(())
    }

    // ----- keys -----

    /// List key slots.
    pub async fn keys(&self) -> Result<Vec<KeyListing>> {
        let mut out = Vec::new();
        for listed in self.inner.storage.list(ObjectKind::Key).await? {
            let bytes = self
                .inner
                .storage
                .read(&ObjectKind::Key.path(&listed.id))
                .await?;
            if let Ok(slot) = serde_json::from_slice::<KeySlot>(&bytes) {
                out.push(KeyListing {
                    id: listed.id,
                    current: listed.id == self.inner.key_id,
                    created: slot.created,
                    host: slot.host,
                    username: slot.username,
                });
            }
        }
        out.sort_by_key(|k| k.created);
        Ok(out)
    }

    /// Add a key slot for another password; returns its id.
    pub async fn add_key(&self, password: &str, kdf: KdfParams) -> Result<Id> {
        if !self.is_encrypted() {
            return Err(Error::InvalidInput(
                "the repository is not encrypted: it has no passwords to add".into(),
            ));
        }
        let master = self.inner.master.clone();
        let repo_id = self.inner.config.id;
        let password = password.to_string();
        let slot = tokio::task::spawn_blocking(move || {
            KeySlot::protect(&master, &repo_id, &password, kdf)
        })
        .await
        .expect("key derivation task")?;
        let bytes = serde_json::to_vec_pretty(&slot).expect("key slots serialize");
        self.write_object(ObjectKind::Key, bytes).await
    }

    /// Remove a key slot. The slot in use and the last slot cannot be removed.
    pub async fn remove_key(&self, id_or_prefix: &str) -> Result<Id> {
        let keys = self.keys().await?;
        let matches: Vec<&KeyListing> = keys
            .iter()
            .filter(|k| {
                k.id.to_hex()
                    .starts_with(&id_or_prefix.to_ascii_lowercase())
            })
            .collect();
        let key = match matches.as_slice() {
            [] => {
                return Err(Error::InvalidInput(format!(
                    "no key slot matches {id_or_prefix:?} (see `repo key list`)"
                )));
            }
            [one] => *one,
            many => {
                return Err(Error::InvalidInput(format!(
                    "key prefix {id_or_prefix:?} matches {} slots; give more characters",
                    many.len()
                )));
            }
        };
        if key.current {
            return Err(Error::InvalidInput(
                "refusing to remove the key slot this command opened the repository with; open it with another password first".into(),
            ));
        }
        self.inner
            .storage
            .delete(&ObjectKind::Key.path(&key.id))
            .await?;
        Ok(key.id)
    }

    /// Change the password of the slot in use: add a new slot, then remove
    /// the old one. Returns the new slot's id.
    pub async fn change_password(&self, new_password: &str, kdf: KdfParams) -> Result<Id> {
        let new_id = self.add_key(new_password, kdf).await?;
        self.inner
            .storage
            .delete(&ObjectKind::Key.path(&self.inner.key_id))
            .await?;
        Ok(new_id)
    }
}

/// Damage in an index file can be repaired from the packs: say how.
fn with_repair_hint(e: Error) -> Error {
    match e {
        Error::Damaged {
            object,
            reason,
            snapshots,
        } => Error::Damaged {
            object,
            reason: format!(
                "{reason}; run `repo repair-index` to rebuild the index from the packs"
            ),
            snapshots,
        },
        other => other,
    }
}

fn unreachable_from(location: &str, e: Error) -> Error {
    match e {
        Error::Storage { cause, .. } => Error::StorageUnreachable {
            location: location.to_string(),
            cause,
        },
        other => other,
    }
}

/// Decode a blob on the blocking pool when it is large, inline when small.
pub(crate) async fn decode_off_thread(
    crypto: Arc<Crypto>,
    kind: BlobKind,
    id: Id,
    stored: Vec<u8>,
    raw_len: u32,
) -> Result<Vec<u8>> {
    if stored.len() < 64 * 1024 {
        blob::decode(&crypto, kind, &id, &stored, raw_len)
    } else {
        crate::cpu::run(move || blob::decode(&crypto, kind, &id, &stored, raw_len)).await
    }
}
