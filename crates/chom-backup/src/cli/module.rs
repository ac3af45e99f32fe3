//! Options shared by the site-level commands, and their error mapping.

use std::path::PathBuf;

use chom_backup::{BackupOrchestrator, Error, Home};
use clap::Args;

use super::Failure;

/// Options of every site-level command.
#[derive(Args, Debug, Clone)]
pub struct ModuleArgs {
    /// Data directory (catalog, configuration, default repository).
    #[arg(long, env = "CHOM_BACKUP_HOME", global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Machine-readable output on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bar.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

impl ModuleArgs {
    /// The data directory in use.
    pub fn home_dir(&self) -> PathBuf {
        Home::locate(self.home.as_deref())
    }

    /// Open the data directory and build the orchestrator, acting as the
    /// current user.
    pub async fn orchestrator(&self) -> Result<BackupOrchestrator, Failure> {
        let home = Home::load(&self.home_dir())?;
        let actor = format!("cli:{}", chom_repo::username());
        let orchestrator = home.orchestrator(&actor).await?;
        if !orchestrator.repository().is_encrypted() {
            eprintln!(
                "warning: the repository at {} is not encrypted",
                orchestrator.repository().storage().location()
            );
        }
        Ok(orchestrator)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::Invalid(_) => "invalid_input",
            Error::SiteNotFound(_) | Error::BackupNotFound(_) | Error::StoredFileNotFound(_) => {
                "not_found"
            }
            Error::SiteExists(_) => "conflict",
            Error::SiteBusy { .. } => "site_busy",
            Error::Conflict(_) => "conflict",
            Error::Database { .. } => "database_error",
            Error::Catalog(_) => "catalog_error",
            Error::Repository(inner) => return Failure::from_repo_ref(inner, e.to_string()),
            Error::Io { .. } => "io",
            Error::Setup(_) => "setup",
            _ => "error",
        };
        let code = if matches!(e, Error::Invalid(_)) { 2 } else { 1 };
        Failure {
            kind,
            message: e.to_string(),
            code,
            reported: false,
        }
    }
}

impl From<chom_backup::domain::DomainError> for Failure {
    fn from(e: chom_backup::domain::DomainError) -> Self {
        Error::from(e).into()
    }
}

impl From<chom_backup::catalog::CatalogError> for Failure {
    fn from(e: chom_backup::catalog::CatalogError) -> Self {
        Error::from(e).into()
    }
}
