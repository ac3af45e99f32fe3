//! The Backup module's domain: value objects and entities, pure code.
//!
//! Nothing here touches disks, databases or the network; the orchestrator
//! combines these with the catalog, the dumpers and the repository.

mod backup;
mod backup_type;
mod configuration;
pub mod cron;
mod event;
mod job;
mod retention;
mod schedule;
mod site;
mod token;
mod webhook;

pub use backup::{Backup, BackupId, BackupStatus, Trigger, random_u128};
pub use backup_type::BackupType;
pub use configuration::{BackupConfiguration, DEFAULT_COMPRESSION, RETENTION_DAYS};
pub use event::BackupEvent;
pub use job::{Job, JobProgress, JobRequest, JobStatus};
pub use retention::{
    CalendarPolicy, Retention, RetentionCandidate, RetentionPlan, RetentionPolicy,
};
pub use schedule::{Frequency, Schedule};
pub use site::{DatabaseSpec, DbEngine, DbLocation, PasswordRef, Site, SiteId, validate_site_name};
pub use token::{ApiToken, Permission, SiteScope, new_token_secret, token_hash};
pub use webhook::{Delivery, Webhook};

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

/// A clock moved by hand (scheduler tests, simulations).
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<jiff::Timestamp>);

impl ManualClock {
    /// Start at `at`.
    pub fn new(at: jiff::Timestamp) -> Self {
        ManualClock(std::sync::Mutex::new(at))
    }

    /// Move to `at`.
    pub fn set(&self, at: jiff::Timestamp) {
        *self.0.lock().expect("clock") = at;
    }

    /// Move forward.
    pub fn advance(&self, by: jiff::SignedDuration) {
        let mut t = self.0.lock().expect("clock");
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> jiff::Timestamp {
        *self.0.lock().expect("clock")
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
