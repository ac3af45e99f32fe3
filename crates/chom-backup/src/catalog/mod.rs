//! The catalog: sites, backups, schedules, events and the audit log, in
//! SQLite (a file in the data directory, WAL mode) or PostgreSQL.
//!
//! **Invariant:** only this module writes SQL. One migration set and the same
//! queries serve both databases (sqlx's `Any` driver, `$N` parameters,
//! portable types).

mod aggregates;
mod backups;
mod jobs;
mod locks;
mod log;
mod schedules;
mod sites;
mod tokens;
mod webhooks;

use jiff::Timestamp;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

pub use jobs::{JobEnd, JobFilter, REPOSITORY_LANE, backoff};
pub use locks::{LockHolder, SiteLock};
pub use log::{AuditEntry, AuditOutcome, StoredEvent};
pub use schedules::{ScheduleOverview, ScheduleState};

use crate::domain::{Backup, BackupEvent, BackupId};

/// A catalog failure. Database errors keep their message; what to do is
/// usually to check the catalog URL and that the server runs.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The database refused or failed.
    #[error("catalog database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying the schema failed.
    #[error("catalog migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A stored row does not parse (written by a newer version, or edited).
    #[error("catalog row is invalid: {0}")]
    Corrupt(String),
}

/// Result alias.
pub type CatalogResult<T> = Result<T, CatalogError>;

/// Which database holds the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

/// The catalog: a connection pool plus the queries.
#[derive(Debug, Clone)]
pub struct Catalog {
    pool: AnyPool,
    backend: Backend,
}

/// State changes committed together in one transaction: backups written or
/// deleted, the events they raise (the outbox) and the audit entry.
#[derive(Debug, Default)]
pub struct Changes<'a> {
    /// Backups to insert or update.
    pub backups: Vec<&'a Backup>,
    /// Backups to delete.
    pub deleted_backups: Vec<BackupId>,
    /// Events raised.
    pub events: Vec<BackupEvent>,
    /// The audit entry.
    pub audit: Option<AuditEntry>,
}

pub(crate) fn to_micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

pub(crate) fn from_micros(us: i64) -> CatalogResult<Timestamp> {
    Timestamp::from_microsecond(us).map_err(|e| CatalogError::Corrupt(format!("time {us}: {e}")))
}

pub(crate) fn opt_from_micros(us: Option<i64>) -> CatalogResult<Option<Timestamp>> {
    us.map(from_micros).transpose()
}

pub(crate) fn parse<T: std::str::FromStr>(row: &AnyRow, column: &str) -> CatalogResult<T>
where
    T::Err: std::fmt::Display,
{
    let text: String = row.try_get(column)?;
    text.parse()
        .map_err(|e| CatalogError::Corrupt(format!("{column} {text:?}: {e}")))
}

impl Catalog {
    /// Open (and migrate) the catalog at `url`: `sqlite:PATH` (created if
    /// missing) or `postgres://USER@HOST:PORT/DB`.
    pub async fn open(url: &str) -> CatalogResult<Self> {
        sqlx::any::install_default_drivers();
        let (url, backend) = if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.trim_start_matches("//");
            (format!("sqlite://{path}?mode=rwc"), Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (url.to_string(), Backend::Postgres)
        } else {
            return Err(CatalogError::Corrupt(format!(
                "unsupported catalog URL {url:?}: use sqlite:PATH or postgres://USER@HOST:PORT/DB"
            )));
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: readers never block the writer, and a killed
                        // process never leaves a torn database.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Catalog { pool, backend })
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Commit backups, deletions, events and an audit entry atomically.
    pub async fn commit(&self, changes: Changes<'_>) -> CatalogResult<Vec<StoredEvent>> {
        let mut tx = self.pool.begin().await?;
        for backup in &changes.backups {
            backups::upsert(&mut tx, backup).await?;
        }
        for id in &changes.deleted_backups {
            backups::delete(&mut tx, id).await?;
        }
        let mut stored = Vec::with_capacity(changes.events.len());
        for event in &changes.events {
            stored.push(log::insert_event(&mut tx, event).await?);
        }
        if let Some(audit) = &changes.audit {
            log::insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(stored)
    }

    /// Close the pool (flushes SQLite's WAL cleanly).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
