//! The data directory (`$CHOM_BACKUP_HOME`, default
//! `~/.local/share/chom-backup`): `config.toml`, the SQLite catalog, the
//! default local repository, its key file, and a private scratch directory.
//!
//! ```toml
//! repository = "/root/.local/share/chom-backup/repository"   # or s3://bucket/prefix
//! catalog = "sqlite:/root/.local/share/chom-backup/catalog.db" # or postgres://user@host/db
//! password_file = "/root/.local/share/chom-backup/repository.key"
//! ```

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chom_repo::{InitOptions, Repository, Storage};
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::error::{Error, Result};

const CONFIG_FILE: &str = "config.toml";

/// The configuration file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HomeConfig {
    /// Repository URL (path or `s3://`).
    pub repository: String,
    /// Catalog URL (`sqlite:PATH` or `postgres://...`).
    pub catalog: String,
    /// File holding the repository password (`CHOM_BACKUP_PASSWORD` wins).
    pub password_file: Option<PathBuf>,
}

/// An opened data directory.
#[derive(Debug, Clone)]
pub struct Home {
    /// The directory.
    pub dir: PathBuf,
    /// Its configuration.
    pub config: HomeConfig,
}

/// What `init` did.
#[derive(Debug, Clone, Serialize)]
pub struct InitReport {
    /// The data directory.
    pub dir: PathBuf,
    /// Repository URL.
    pub repository: String,
    /// Catalog URL.
    pub catalog: String,
    /// Whether a new repository was created (false: an existing one is used).
    pub repository_created: bool,
    /// The generated key file, if one was made.
    pub key_file: Option<PathBuf>,
}

impl Home {
    /// Where the data directory is: `explicit`, else `$CHOM_BACKUP_HOME`,
    /// else `$XDG_DATA_HOME/chom-backup`, else `~/.local/share/chom-backup`.
    pub fn locate(explicit: Option<&Path>) -> PathBuf {
        if let Some(dir) = explicit {
            return dir.to_path_buf();
        }
        if let Some(dir) = std::env::var_os("CHOM_BACKUP_HOME").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir).join("chom-backup");
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/root"));
        home.join(".local/share/chom-backup")
    }

    /// Create the data directory: configuration, catalog, and — unless
    /// `repository` names an existing one — a new encrypted repository whose
    /// random password is kept in a private key file (unless
    /// `CHOM_BACKUP_PASSWORD` is set). Refuses to overwrite an existing setup.
    pub async fn init(
        dir: &Path,
        repository: Option<&str>,
        catalog: Option<&str>,
    ) -> Result<InitReport> {
        if dir.join(CONFIG_FILE).exists() {
            return Err(Error::Setup(format!(
                "{} is already set up (config.toml exists); use it, or choose another --home",
                dir.display()
            )));
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::io("creating", dir, e))?;
        let dir = std::fs::canonicalize(dir).map_err(|e| Error::io("resolving", dir, e))?;
        let repository = repository
            .map(str::to_string)
            .unwrap_or_else(|| dir.join("repository").display().to_string());
        let catalog = catalog
            .map(str::to_string)
            .unwrap_or_else(|| format!("sqlite:{}", dir.join("catalog.db").display()));

        let env_password = std::env::var("CHOM_BACKUP_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty());
        let storage = Storage::open(&repository, true)?;
        let exists = storage.exists("config").await?;
        let mut key_file = None;
        if !exists && env_password.is_none() {
            let path = dir.join("repository.key");
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).expect("system random number generator");
            write_private(&path, format!("{}\n", hex::encode(secret)).as_bytes())?;
            key_file = Some(path);
        }
        let config = HomeConfig {
            repository: repository.clone(),
            catalog: catalog.clone(),
            password_file: key_file.clone(),
        };
        let home = Home {
            dir: dir.clone(),
            config,
        };
        let password = home.password()?;
        if exists {
            // Joining an existing repository: the password must open it.
            Repository::open(storage, password.as_deref()).await?;
        } else {
            Repository::init(storage, password.as_deref(), InitOptions::default()).await?;
        }
        Catalog::open(&catalog).await?.close().await;
        let text = toml::to_string(&home.config).expect("config serializes");
        write_private(&dir.join(CONFIG_FILE), text.as_bytes())?;
        Ok(InitReport {
            dir,
            repository,
            catalog,
            repository_created: !exists,
            key_file,
        })
    }

    /// Open an existing data directory.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Setup(format!(
                "no chom-backup data directory at {}: run `chom-backup init` (or set CHOM_BACKUP_HOME)",
                dir.display()
            )),
            _ => Error::io("reading", &path, e),
        })?;
        let config: HomeConfig = toml::from_str(&text)
            .map_err(|e| Error::Setup(format!("{} is not valid: {e}", path.display())))?;
        Ok(Home {
            dir: dir.to_path_buf(),
            config,
        })
    }

    /// The repository password: `CHOM_BACKUP_PASSWORD`, else the key file.
    pub fn password(&self) -> Result<Option<String>> {
        if let Ok(p) = std::env::var("CHOM_BACKUP_PASSWORD")
            && !p.is_empty()
        {
            return Ok(Some(p));
        }
        match &self.config.password_file {
            Some(path) => std::fs::read_to_string(path)
                .map(|s| Some(s.lines().next().unwrap_or_default().to_string()))
                .map_err(|e| Error::io("reading the repository key file", path, e)),
            None => Ok(None),
        }
    }

    /// Replace the key file's password (after a new key slot for it exists).
    /// Fails when the password does not come from a key file.
    pub fn replace_key_file(&self, new_password: &str) -> Result<std::path::PathBuf> {
        let Some(path) = &self.config.password_file else {
            return Err(Error::Setup(
                "the repository password does not come from a key file here (CHOM_BACKUP_PASSWORD or an existing repository): change it with `chom-backup repo key passwd`".into(),
            ));
        };
        write_private(path, format!("{new_password}\n").as_bytes())?;
        Ok(path.clone())
    }

    /// A private directory for dump defaults files and SQLite copies.
    pub fn scratch(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// Open the catalog.
    pub async fn catalog(&self) -> Result<Catalog> {
        Ok(Catalog::open(&self.config.catalog).await?)
    }

    /// Open the repository.
    pub async fn repository(&self) -> Result<Repository> {
        let storage = Storage::open(&self.config.repository, false)?;
        Ok(Repository::open(storage, self.password()?.as_deref()).await?)
    }

    /// Open everything and build the orchestrator.
    pub async fn orchestrator(&self, actor: &str) -> Result<crate::BackupOrchestrator> {
        let catalog = self.catalog().await?;
        let repo = self.repository().await?;
        let clock = crate::orchestrator::clock_from_env()?;
        Ok(crate::BackupOrchestrator::new(
            catalog,
            repo,
            self.scratch(),
            Arc::from(clock),
            actor,
        ))
    }
}

/// Write a file readable by its owner only, atomically.
fn write_private(path: &Path, content: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("partial");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Error::io("creating", &tmp, e))?;
    f.write_all(content)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io("writing", &tmp, e))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io("protecting", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("renaming", path, e))
}
