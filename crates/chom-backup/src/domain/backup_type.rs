//! What a backup contains.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::DomainError;

/// What a backup holds: the site's files, its database, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupType {
    /// Files and database.
    Full,
    /// The document root only.
    Files,
    /// The database only.
    Database,
}

impl BackupType {
    /// The text form: `full`, `files`, `database`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupType::Full => "full",
            BackupType::Files => "files",
            BackupType::Database => "database",
        }
    }

    /// Whether the site's files are part of it.
    pub fn includes_files(self) -> bool {
        matches!(self, BackupType::Full | BackupType::Files)
    }

    /// Whether the site's database is part of it.
    pub fn includes_database(self) -> bool {
        matches!(self, BackupType::Full | BackupType::Database)
    }
}

impl fmt::Display for BackupType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackupType {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        match s {
            "full" => Ok(BackupType::Full),
            "files" | "files-only" | "files_only" => Ok(BackupType::Files),
            "database" | "database-only" | "database_only" | "db" => Ok(BackupType::Database),
            other => Err(DomainError::new(
                "type",
                format!("unknown backup type {other:?}: use full, files or database"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!("full".parse::<BackupType>().unwrap(), BackupType::Full);
        assert_eq!("files".parse::<BackupType>().unwrap(), BackupType::Files);
        assert_eq!(
            "database".parse::<BackupType>().unwrap(),
            BackupType::Database
        );
        let err = "incremental".parse::<BackupType>().unwrap_err().to_string();
        assert!(
            err.contains("incremental") && err.contains("full, files or database"),
            "{err}"
        );
        assert!(BackupType::Full.includes_files() && BackupType::Full.includes_database());
        assert!(!BackupType::Files.includes_database() && !BackupType::Database.includes_files());
    }
}
