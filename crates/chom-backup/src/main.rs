//! The `chom-backup` binary: parse the command line, run, map the outcome
//! to an exit status.

mod cli;

use std::process::ExitCode;

/// Large buffers (chunks, packs) are allocated and freed continually by
/// several threads. With glibc's default dynamic mmap threshold, freed
/// buffers of up to 32 MiB stay in per-thread arenas and the resident size
/// grows far beyond what is live. A fixed 1 MiB threshold gives such buffers
/// back to the system as soon as they are freed.
fn tune_allocator() {
    // SAFETY: mallopt only adjusts allocator parameters; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}

fn main() -> ExitCode {
    tune_allocator();
    cli::run()
}
