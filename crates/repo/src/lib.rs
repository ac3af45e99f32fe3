//! `chom-repo`: the storage engine of chom-backup.
//!
//! A repository holds snapshots of file trees and named streams, stored
//! deduplicated (content-defined chunks named by keyed BLAKE3), compressed
//! (zstd) and encrypted (XChaCha20-Poly1305) in large write-once pack files,
//! on local disk or S3-compatible storage through OpenDAL.
//!
//! The main types:
//! * [`Storage`] — where the objects live (a path or `s3://` URL);
//! * [`Repository`] — an opened repository; every command is a method on it
//!   (`backup`, `restore`, `check`, `prune`, `export`, ...);
//! * [`Snapshot`] and [`Tree`] — what a backup recorded;
//! * [`Progress`] — counters a caller polls to show progress.
//!
//! ```no_run
//! # async fn demo() -> chom_repo::Result<()> {
//! use chom_repo::{BackupOptions, InitOptions, Progress, Repository, RestoreOptions, Source, Storage};
//! let storage = Storage::open("/srv/backups/repo", true)?;
//! let repo = Repository::init(storage, Some("secret"), InitOptions::default()).await?;
//! let done = repo.backup(vec![Source::path("/var/www/site")], &BackupOptions::default(), Progress::new()).await?;
//! repo.restore(&done.id, "/tmp/restore".as_ref(), &RestoreOptions::default(), Progress::new()).await?;
//! # Ok(()) }
//! ```
//!
//! The format is specified in `docs/FORMAT.md`; the engine knows nothing of
//! sites, databases or HTTP.

#![deny(missing_docs)]

mod backup;
mod blob;
mod check;
mod chunker;
mod config;
mod cpu;
mod crypto;
mod diff;
mod error;
mod export;
mod file_reader;
mod id;
mod index;
mod keys;
mod lock;
mod ls;
mod pack;
mod packer;
mod progress;
mod prune;
mod repair;
mod repository;
mod restore;
mod snapshot;
mod stats;
mod storage;
mod tree;
mod walk;

pub use backup::{BackupOptions, BackupOutcome, Excludes, ParentSelection, Source};
pub use blob::BlobKind;
pub use check::{CheckOptions, CheckProblem, CheckReport, ReadData, SnapshotVerification};
pub use config::{ChunkerParams, Config, Encryption, InitOptions};
pub use diff::{Change, DiffEntry};
pub use error::{Error, Result};
pub use export::{ExportFormat, ExportOptions, ExportSummary};
pub use file_reader::FileReader;
pub use id::Id;
pub use keys::KdfParams;
pub use lock::{
    DEFAULT_STALE_AFTER, LockGuard, LockInfo, LockKind, hostname, list_locks, process_alive,
    remove_locks, username,
};
pub use ls::LsEntry;
pub use progress::{Progress, ProgressSnapshot};
pub use prune::{CLOCK_SKEW_MARGIN, DEFAULT_GRACE, PruneOptions, PruneReport};
pub use repair::RepairReport;
pub use repository::{KeyListing, Repository};
pub use restore::{RestoreOptions, RestoreSummary};
pub use snapshot::{Snapshot, Summary, parse_tags};
pub use stats::RepoStats;
pub use storage::{ObjectKind, S3Config, S3Credentials, Storage};
pub use tree::{FileName, Node, NodeKind, Tree};
