//! Locks: who is working on the repository right now.
//!
//! Two kinds, both stored as `locks/<random id>` JSON objects:
//!
//! * **backup** locks are shared: any number of backups run at once. They
//!   tell prune which writers are in flight and since when, so that prune
//!   never deletes a pack a running backup may still reference.
//! * the **maintenance** lock is exclusive among maintenance operations
//!   (prune, repair-index): one at a time. It never blocks backups.
//!
//! A holder refreshes its lock periodically by writing a new lock object and
//! deleting the old one (objects are never modified). A lock not refreshed
//! within the stale time is ignored by others; a lock of a process on this
//! host that no longer exists is released at once. A holder that fails to
//! refresh in time (a suspended process, a storage outage) learns it when it
//! calls [`LockGuard::ensure_fresh`] and must abort.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, oneshot};

use crate::error::{Error, Result};
use crate::id::Id;
use crate::storage::{ObjectKind, Storage};

/// Default time after which an unrefreshed lock is stale.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(30 * 60);

/// Which kind of lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockKind {
    /// A backup (or another writer of new data); shared.
    Backup,
    /// Prune or index repair; exclusive among themselves.
    Maintenance,
}

/// A lock object's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Backup or maintenance.
    pub kind: LockKind,
    /// What the holder is doing (`backup`, `prune`, ...).
    pub operation: String,
    /// Host name of the holder.
    pub host: String,
    /// Process id of the holder.
    pub pid: u32,
    /// User of the holder.
    pub username: String,
    /// When the holder first took the lock.
    pub created: Timestamp,
    /// When this object was written.
    pub refreshed: Timestamp,
}

impl LockInfo {
    /// Whether the lock no longer protects anything: not refreshed within
    /// `stale_after`, or held by a process of this host that is gone.
    pub fn is_stale(&self, now: Timestamp, stale_after: Duration) -> bool {
        let age = now.duration_since(self.refreshed);
        if age.as_secs_f64() > stale_after.as_secs_f64() {
            return true;
        }
        self.host == hostname() && !process_alive(self.pid)
    }
}

/// This machine's host name.
pub fn hostname() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// The current user's name (from the password database, else `$USER`, else
/// the uid).
pub fn username() -> String {
    // SAFETY: getpwuid_r writes into the buffers we pass and returns a
    // pointer into them (or null); nothing is retained.
    let from_passwd = unsafe {
        let uid = libc::getuid();
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc == 0 && !result.is_null() && !pwd.pw_name.is_null() {
            std::ffi::CStr::from_ptr(pwd.pw_name)
                .to_str()
                .ok()
                .map(str::to_string)
        } else {
            None
        }
    };
    from_passwd
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| crate::tree::current_uid().to_string())
}

/// Whether a process with this id exists on this host (locks of dead local
/// processes are released at once).
pub fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Read all lock objects (locks removed while listing are skipped).
pub async fn list_locks(storage: &Storage) -> Result<Vec<(Id, LockInfo)>> {
    let listed = storage.list(ObjectKind::Lock).await?;
    let reads = listed.iter().map(|o| async move {
        match storage.read(&ObjectKind::Lock.path(&o.id)).await {
            Ok(bytes) => Ok(serde_json::from_slice::<LockInfo>(&bytes)
                .ok()
                .map(|info| (o.id, info))),
            Err(Error::MissingObject { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    });
    let results = futures::future::try_join_all(reads).await?;
    Ok(results.into_iter().flatten().collect())
}

/// Remove stale locks (or all locks with `all`); returns how many.
pub async fn remove_locks(storage: &Storage, all: bool, stale_after: Duration) -> Result<usize> {
    let now = Timestamp::now();
    let mut removed = 0;
    for (id, info) in list_locks(storage).await? {
        if all || info.is_stale(now, stale_after) {
            storage.delete(&ObjectKind::Lock.path(&id)).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

struct Shared {
    storage: Storage,
    current: Mutex<Id>,
    info: std::sync::Mutex<LockInfo>,
    /// Unix seconds of the last successful write of the lock.
    last_refresh: AtomicI64,
    /// Longest observed gap between refreshes, seconds.
    max_gap: AtomicI64,
}

/// A held lock, refreshed in the background until released.
pub struct LockGuard {
    shared: Arc<Shared>,
    stale_after: Duration,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LockGuard {
    /// Take a lock. A maintenance lock fails with [`Error::Locked`] while
    /// another live maintenance lock exists; stale ones are removed.
    pub async fn acquire(
        storage: &Storage,
        kind: LockKind,
        operation: &str,
        stale_after: Duration,
    ) -> Result<Self> {
        let now = Timestamp::now();
        let info = LockInfo {
            kind,
            operation: operation.to_string(),
            host: hostname(),
            pid: std::process::id(),
            username: username(),
            created: now,
            refreshed: now,
        };
        let id = write_lock(storage, &info).await?;
        let shared = Arc::new(Shared {
            storage: storage.clone(),
            current: Mutex::new(id),
            info: std::sync::Mutex::new(info),
            last_refresh: AtomicI64::new(now.as_second()),
            max_gap: AtomicI64::new(0),
        });
        if kind == LockKind::Maintenance
            && let Err(e) = check_exclusive(storage, &id, stale_after).await
        {
            let _ = storage.delete(&ObjectKind::Lock.path(&id)).await;
            return Err(e);
        }
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(refresh_loop(shared.clone(), stale_after / 6, stop_rx));
        Ok(LockGuard {
            shared,
            stale_after,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }

    /// Fail with [`Error::LockLost`] if the lock may have looked stale to
    /// others at some point (a gap between refreshes of more than half the
    /// stale time). Call before committing (writing a snapshot).
    pub fn ensure_fresh(&self) -> Result<()> {
        let now = Timestamp::now().as_second();
        let last = self.shared.last_refresh.load(Ordering::SeqCst);
        let gap = self.shared.max_gap.load(Ordering::SeqCst).max(now - last);
        if gap as f64 > self.stale_after.as_secs_f64() / 2.0 {
            return Err(Error::LockLost {
                seconds: gap as u64,
            });
        }
        Ok(())
    }

    /// Stop refreshing and delete the lock.
    pub async fn release(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let id = *self.shared.current.lock().await;
        self.shared
            .storage
            .delete(&ObjectKind::Lock.path(&id))
            .await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Not released explicitly (an error path): stop refreshing and delete
        // the lock in the background; if the process dies first, the lock
        // goes stale (or is released at once on this host: the pid is gone).
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
            let shared = self.shared.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let id = *shared.current.lock().await;
                    let _ = shared.storage.delete(&ObjectKind::Lock.path(&id)).await;
                });
            }
        }
    }
}

async fn write_lock(storage: &Storage, info: &LockInfo) -> Result<Id> {
    let id = Id::random();
    storage
        .write(
            &ObjectKind::Lock.path(&id),
            serde_json::to_vec(info).expect("locks serialize"),
        )
        .await?;
    Ok(id)
}

async fn check_exclusive(storage: &Storage, own: &Id, stale_after: Duration) -> Result<()> {
    let now = Timestamp::now();
    for (id, other) in list_locks(storage).await? {
        if id == *own || other.kind != LockKind::Maintenance {
            continue;
        }
        if other.is_stale(now, stale_after) {
            tracing::info!(host = %other.host, pid = other.pid, "removing stale maintenance lock");
            storage.delete(&ObjectKind::Lock.path(&id)).await?;
            continue;
        }
        return Err(Error::Locked {
            holder: format!("{} ({} by {})", other.host, other.operation, other.username),
            pid: other.pid,
            since: other.created.to_string(),
        });
    }
    Ok(())
}

async fn refresh_loop(shared: Arc<Shared>, every: Duration, mut stop: oneshot::Receiver<()>) {
    let every = every.max(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(every) => {}
        }
        let info = {
            let mut info = shared.info.lock().expect("lock info");
            info.refreshed = Timestamp::now();
            info.clone()
        };
        let mut current = shared.current.lock().await;
        match write_lock(&shared.storage, &info).await {
            Ok(new_id) => {
                let old = std::mem::replace(&mut *current, new_id);
                let _ = shared.storage.delete(&ObjectKind::Lock.path(&old)).await;
                let now = info.refreshed.as_second();
                let last = shared.last_refresh.swap(now, Ordering::SeqCst);
                shared.max_gap.fetch_max(now - last, Ordering::SeqCst);
            }
            Err(e) => tracing::warn!("could not refresh the repository lock: {e}"),
        }
    }
}
