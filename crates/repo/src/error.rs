//! Errors of the storage engine.
//!
//! Every variant says what went wrong and, where the operator can act, what to
//! do. Messages are lowercase without a trailing period so callers can wrap
//! them ("backup failed: wrong password ...").

use std::path::PathBuf;

use crate::id::Id;

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An engine error. Callers match on the variant to choose an exit code or an
/// HTTP status; the `Display` text is meant for people.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No key slot of the repository opens with the given password.
    #[error(
        "wrong password: no key slot of the repository at {location} opens with it (check CHOM_BACKUP_PASSWORD or --password-file)"
    )]
    WrongPassword {
        /// Where the repository lives.
        location: String,
    },

    /// The repository is encrypted but no password was supplied.
    #[error(
        "the repository at {location} is encrypted: set CHOM_BACKUP_PASSWORD or pass --password-file"
    )]
    PasswordRequired {
        /// Where the repository lives.
        location: String,
    },

    /// There is no repository (no `config` object) at the location.
    #[error("not a repository: {location} has no config object (create one with `repo init`)")]
    NotARepository {
        /// Where a repository was expected.
        location: String,
    },

    /// `init` found an existing repository.
    #[error("a repository already exists at {location}; refusing to overwrite it")]
    AlreadyInitialized {
        /// Where the repository lives.
        location: String,
    },

    /// The storage backend could not be reached or refused the request.
    #[error(
        "storage unreachable at {location}: {cause} (check the URL, the network and the credentials)"
    )]
    StorageUnreachable {
        /// Where the repository lives.
        location: String,
        /// The backend's own message.
        cause: String,
    },

    /// A storage operation failed after retries.
    #[error("storage error on {path}: {cause}")]
    Storage {
        /// The object path that failed.
        path: String,
        /// The backend's own message.
        cause: String,
    },

    /// An object that must exist is missing.
    #[error("object {path} is missing from the repository (run `repo check`)")]
    MissingObject {
        /// The object path.
        path: String,
    },

    /// An object failed its integrity checks.
    #[error("{object} is damaged: {reason}{}", affected_suffix(.snapshots))]
    Damaged {
        /// What is damaged (`pack 3fa1…`, `index 9c…`, `snapshot 12…`).
        object: String,
        /// What check failed.
        reason: String,
        /// Snapshots whose data is affected, when known.
        snapshots: Vec<Id>,
    },

    /// A maintenance lock is held by someone else.
    #[error(
        "repository is locked by {holder} (pid {pid}) since {since}; wait for it to finish, or remove a stale lock with `repo unlock`"
    )]
    Locked {
        /// Host name of the holder.
        holder: String,
        /// Process id of the holder.
        pid: u32,
        /// When the lock was taken.
        since: String,
    },

    /// A lock this process holds could not be kept fresh, so its protection
    /// lapsed; the operation stops rather than risk referencing pruned data.
    #[error(
        "lost the repository lock: it was not refreshed for {seconds} s, so a concurrent prune may have considered it stale; run the operation again"
    )]
    LockLost {
        /// The longest gap between refreshes.
        seconds: u64,
    },

    /// No snapshot matches the given id, prefix or `latest` filter.
    #[error("no snapshot matches {0:?} (list them with `repo snapshots`)")]
    SnapshotNotFound(String),

    /// A snapshot id prefix matches several snapshots.
    #[error(
        "snapshot prefix {prefix:?} is ambiguous: it matches {count} snapshots; give more characters"
    )]
    AmbiguousSnapshot {
        /// The prefix given.
        prefix: String,
        /// How many snapshots it matches.
        count: usize,
    },

    /// A path inside a snapshot does not exist.
    #[error("path {0:?} not found in the snapshot")]
    PathNotFound(String),

    /// A snapshot entry would write outside the restore target.
    #[error("refusing unsafe entry {name:?}: {reason}; nothing was written outside the target")]
    UnsafeEntry {
        /// The offending name or path.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },

    /// The caller passed something invalid.
    #[error("{0}")]
    InvalidInput(String),

    /// Reading a source or writing a restore target failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done (`reading`, `creating`, ...).
        action: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The repository was written by a newer format version.
    #[error(
        "repository format version {found} is newer than this program supports ({supported}); upgrade chom-backup"
    )]
    UnsupportedVersion {
        /// Version in the repository.
        found: u32,
        /// Highest version understood here.
        supported: u32,
    },

    /// The operation was cancelled by the caller.
    #[error("operation cancelled")]
    Cancelled,
}

fn affected_suffix(snapshots: &[Id]) -> String {
    if snapshots.is_empty() {
        String::new()
    } else {
        let ids: Vec<String> = snapshots.iter().map(|id| id.short()).collect();
        format!(" (affects snapshots {})", ids.join(", "))
    }
}

impl Error {
    /// Build an I/O error about a file.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Build a damage report without affected snapshots.
    pub(crate) fn damaged(object: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Damaged {
            object: object.into(),
            reason: reason.into(),
            snapshots: Vec::new(),
        }
    }

    /// True when the error means the repository content is damaged (as
    /// opposed to the caller's input, the network or the password).
    pub fn is_damage(&self) -> bool {
        matches!(self, Error::Damaged { .. } | Error::MissingObject { .. })
    }
}
