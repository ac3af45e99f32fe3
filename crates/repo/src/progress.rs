//! Progress counters of long operations.
//!
//! The engine only counts; whoever started the operation decides how to show
//! it (a terminal bar in the CLI, a job's progress in the service) by reading
//! the counters from another thread or task.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Shared counters: bytes and files done, and the totals once known.
#[derive(Debug, Default)]
pub struct Progress {
    bytes_done: AtomicU64,
    files_done: AtomicU64,
    bytes_total: AtomicU64,
    files_total: AtomicU64,
    totals_known: AtomicBool,
    cancelled: AtomicBool,
}

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProgressSnapshot {
    /// Bytes processed.
    pub bytes_done: u64,
    /// Files processed.
    pub files_done: u64,
    /// Bytes to process, if known.
    pub bytes_total: Option<u64>,
    /// Files to process, if known.
    pub files_total: Option<u64>,
}

impl Progress {
    /// New zeroed counters, shareable.
    pub fn new() -> Arc<Self> {
        Arc::new(Progress::default())
    }

    /// Add to the done counters.
    pub fn add(&self, bytes: u64, files: u64) {
        if bytes > 0 {
            self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
        }
        if files > 0 {
            self.files_done.fetch_add(files, Ordering::Relaxed);
        }
    }

    /// Grow the totals (a scan found more work).
    pub fn add_total(&self, bytes: u64, files: u64) {
        self.bytes_total.fetch_add(bytes, Ordering::Relaxed);
        self.files_total.fetch_add(files, Ordering::Relaxed);
    }

    /// Declare the totals final.
    pub fn set_totals_known(&self) {
        self.totals_known.store(true, Ordering::Relaxed);
    }

    /// Ask the operation to stop at its next checkpoint.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// Whether [`Progress::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Read the counters.
    pub fn snapshot(&self) -> ProgressSnapshot {
        let known = self.totals_known.load(Ordering::Relaxed);
        ProgressSnapshot {
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
            files_done: self.files_done.load(Ordering::Relaxed),
            bytes_total: known.then(|| self.bytes_total.load(Ordering::Relaxed)),
            files_total: known.then(|| self.files_total.load(Ordering::Relaxed)),
        }
    }
}
