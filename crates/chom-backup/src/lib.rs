//! `chom-backup`: the Backup module of the CHOM hosting platform.
//!
//! Sites (a document root and usually a database) are backed up into a
//! `chom-repo` repository: files under `files/`, the database dump under
//! `database/` of one snapshot per backup. The catalog (SQLite or
//! PostgreSQL) records sites, backups, schedules, events and the audit log.
//!
//! The main types:
//! * [`domain`] — `BackupConfiguration`, `RetentionPolicy`, `Site`, `Backup`,
//!   events: pure value objects, no I/O;
//! * [`Catalog`] — the records, and the only place SQL is written;
//! * [`BackupOrchestrator`] — every operation of the module
//!   (`create_backup`, `restore_backup`, `apply_retention_policy`,
//!   `validate_integrity`, `get_statistics`, ...);
//! * [`storage`] — whole files kept under keys in the same repository
//!   (the module's storage contract, `BackupStorage`);
//! * [`Home`] — the data directory: configuration, catalog and the default
//!   local repository.

#![deny(missing_docs)]

pub mod catalog;
pub mod domain;
pub mod dump;
mod error;
mod home;
mod orchestrator;
pub mod service;
pub mod storage;

pub use catalog::Catalog;
pub use error::{Error, Result};
pub use home::{Home, HomeConfig};
pub use orchestrator::{
    BackupOrchestrator, BackupStatistics, IntegrityReport, NewSite, RebuildReport, RestoreOutcome,
    RestoreRequest, RetentionOutcome, RunOptions,
};
