//! End-to-end tests of the `chom-backup` binary.

mod cli {
    pub mod util;

    mod crash;
    mod repo_commands;
    mod serve;
    mod sites;
    mod storage;
}
