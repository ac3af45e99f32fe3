//! Errors of the Backup module: what went wrong, naming the site, backup or
//! field, and what to do.

use crate::catalog::{CatalogError, SiteLock};
use crate::domain::DomainError;
use crate::dump::DumpError;

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A Backup module failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Invalid input for a field.
    #[error(transparent)]
    Invalid(#[from] DomainError),
    /// No such site.
    #[error("site {0:?} not found (see `chom-backup site list`)")]
    SiteNotFound(String),
    /// No such backup.
    #[error("backup {0} not found (see `chom-backup backup list`)")]
    BackupNotFound(String),
    /// Nothing is stored under a key.
    #[error("nothing is stored under {0:?} (see `chom-backup storage list`)")]
    StoredFileNotFound(String),
    /// A site name is taken.
    #[error("a site named {0:?} already exists")]
    SiteExists(String),
    /// Another backup or restore of the site is running.
    #[error("site {site} is busy: {} since {} ({} pid {}); try again later, or pass --wait", .lock.operation, .lock.acquired_at, .lock.holder.host, .lock.holder.pid)]
    SiteBusy {
        /// The site's name.
        site: String,
        /// Who holds it.
        lock: Box<SiteLock>,
    },
    /// The request cannot be done in the current state.
    #[error("{0}")]
    Conflict(String),
    /// A database dump or restore failed.
    #[error("database of site {site}: {source}")]
    Database {
        /// The site.
        site: String,
        /// What the tool said.
        #[source]
        source: DumpError,
    },
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The repository failed.
    #[error(transparent)]
    Repository(#[from] chom_repo::Error),
    /// A local file operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// Which path.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The data directory is missing or unusable.
    #[error("{0}")]
    Setup(String),
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<std::path::PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The field at fault, for input errors (HTTP 4xx bodies name it).
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Error::Invalid(e) => Some(e.field),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Catalog(CatalogError::Database(e))
    }
}
