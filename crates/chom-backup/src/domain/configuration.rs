//! `BackupConfiguration`: how one backup is made and how long it is kept.

use serde::{Deserialize, Serialize};

use super::{BackupType, DomainError};

/// Retention days a configuration accepts.
pub const RETENTION_DAYS: std::ops::RangeInclusive<u32> = 1..=365;

/// The zstd level used unless a configuration says otherwise.
pub const DEFAULT_COMPRESSION: i32 = 3;

/// Settings of one backup: type, retention, compression, encryption.
/// Built with the constructors and `with_*` methods, which validate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupConfiguration {
    backup_type: BackupType,
    retention_days: u32,
    /// zstd level; 0 = no compression.
    compression_level: i32,
    /// Require an encrypted repository.
    encryption: bool,
}

impl BackupConfiguration {
    fn new(backup_type: BackupType, retention_days: u32) -> Result<Self, DomainError> {
        if !RETENTION_DAYS.contains(&retention_days) {
            return Err(DomainError::new(
                "retention_days",
                format!(
                    "retention of {retention_days} days is out of range: choose from {} to {} days",
                    RETENTION_DAYS.start(),
                    RETENTION_DAYS.end()
                ),
            ));
        }
        Ok(BackupConfiguration {
            backup_type,
            retention_days,
            compression_level: DEFAULT_COMPRESSION,
            encryption: false,
        })
    }

    /// Files and database, kept `retention_days`.
    pub fn full(retention_days: u32) -> Result<Self, DomainError> {
        Self::new(BackupType::Full, retention_days)
    }

    /// Files only.
    pub fn files_only(retention_days: u32) -> Result<Self, DomainError> {
        Self::new(BackupType::Files, retention_days)
    }

    /// Database only.
    pub fn database_only(retention_days: u32) -> Result<Self, DomainError> {
        Self::new(BackupType::Database, retention_days)
    }

    /// Of a given type.
    pub fn of_type(backup_type: BackupType, retention_days: u32) -> Result<Self, DomainError> {
        Self::new(backup_type, retention_days)
    }

    /// Require encryption at rest: the backup fails rather than land in an
    /// unencrypted repository.
    pub fn with_encryption(mut self) -> Self {
        self.encryption = true;
        self
    }

    /// Compress at zstd `level` (1 to 22).
    pub fn with_compression(mut self, level: i32) -> Result<Self, DomainError> {
        if !(1..=22).contains(&level) {
            return Err(DomainError::new(
                "compression",
                format!(
                    "compression level {level} is out of range: choose from 1 to 22, or no compression"
                ),
            ));
        }
        self.compression_level = level;
        Ok(self)
    }

    /// Store without compression.
    pub fn without_compression(mut self) -> Self {
        self.compression_level = 0;
        self
    }

    /// What the backup holds.
    pub fn backup_type(&self) -> BackupType {
        self.backup_type
    }

    /// Days the backup is kept.
    pub fn retention_days(&self) -> u32 {
        self.retention_days
    }

    /// zstd level (0 = none).
    pub fn compression_level(&self) -> i32 {
        self.compression_level
    }

    /// Whether compression is on.
    pub fn is_compressed(&self) -> bool {
        self.compression_level > 0
    }

    /// Whether encryption at rest is required.
    pub fn requires_encryption(&self) -> bool {
        self.encryption
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_and_limits() {
        let c = BackupConfiguration::files_only(14)
            .unwrap()
            .with_encryption();
        assert_eq!(c.backup_type(), BackupType::Files);
        assert_eq!(c.retention_days(), 14);
        assert!(c.requires_encryption());
        assert_eq!(c.compression_level(), DEFAULT_COMPRESSION);
        assert!(!c.without_compression().is_compressed());
        assert_eq!(
            BackupConfiguration::full(30)
                .unwrap()
                .with_compression(19)
                .unwrap()
                .compression_level(),
            19
        );
        for bad in [0, 366, 1000] {
            let err = BackupConfiguration::database_only(bad)
                .unwrap_err()
                .to_string();
            assert!(err.contains("1 to 365"), "{err}");
        }
        assert!(BackupConfiguration::full(1).is_ok() && BackupConfiguration::full(365).is_ok());
        assert!(
            BackupConfiguration::full(7)
                .unwrap()
                .with_compression(0)
                .is_err()
        );
    }
}
