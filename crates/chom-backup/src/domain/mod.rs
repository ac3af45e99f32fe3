//! The Backup module's domain: value objects and entities, pure code.
//!
//! Nothing here touches disks, databases or the network; the orchestrator
//! combines these with the catalog, the dumpers and the repository.

mod backup;
mod backup_type;
mod configuration;
pub mod cron;
mod event;
mod retention;
mod schedule;
mod site;

pub use backup::{Backup, BackupId, BackupStatus, Trigger, random_u128};
pub use backup_type::BackupType;
pub use configuration::{BackupConfiguration, DEFAULT_COMPRESSION, RETENTION_DAYS};
pub use event::BackupEvent;
pub use retention::{
    CalendarPolicy, Retention, RetentionCandidate, RetentionPlan, RetentionPolicy,
};
pub use schedule::{Frequency, Schedule};
pub use site::{DatabaseSpec, DbEngine, DbLocation, PasswordRef, Site, SiteId, validate_site_name};

/// Invalid input for a domain value: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DomainError {
    /// The field or argument at fault (`retention_days`, `type`, `db`...).
    pub field: &'static str,
    /// What is wrong and what is accepted.
    pub message: String,
}

impl DomainError {
    /// A new error about `field`.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        DomainError {
            field,
            message: message.into(),
        }
    }
}

/// Where "now" comes from: the system clock, or a fixed time in tests and
/// in `CHOM_BACKUP_NOW` (for backdated end-to-end tests).
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> jiff::Timestamp;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }
}

/// A clock that always says the same time (tests).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub jiff::Timestamp);

impl Clock for FixedClock {
    fn now(&self) -> jiff::Timestamp {
        self.0
    }
}
