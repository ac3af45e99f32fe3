//! Database dumps and restores, streamed through child processes.
//!
//! MariaDB/MySQL and PostgreSQL are dumped by their own tools, whose output
//! is read as a stream straight into the snapshot (no temporary file); their
//! failure fails the stream, and so the backup. SQLite is copied consistently
//! with `VACUUM INTO` (the database may be written to meanwhile).
//!
//! **Invariant:** secrets never reach a child's argv. MariaDB/MySQL read
//! credentials from a private (0600) defaults file given with
//! `--defaults-extra-file`; PostgreSQL tools read `PGPASSWORD` from their
//! environment.

mod mysql;
mod postgres;
mod process;
mod sqlite;

use std::io::Read;
use std::path::Path;

use crate::domain::{DatabaseSpec, DbEngine};

/// A dump or restore failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DumpError(pub String);

/// A database dump as a stream, and the file name it is stored under in
/// the snapshot's `database/` directory.
pub struct DumpStream {
    /// File name (`blog.sql`, `shop.pgdump`, `app.sqlite`).
    pub file_name: String,
    /// The dump's bytes; a read error means the dump failed.
    pub reader: Box<dyn Read + Send>,
}

/// The file name a database's dump is stored under.
pub fn dump_file_name(spec: &DatabaseSpec) -> String {
    let base: String = spec
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    match spec.engine {
        DbEngine::Mysql => format!("{base}.sql"),
        DbEngine::Postgres => format!("{base}.pgdump"),
        DbEngine::Sqlite => {
            if base.ends_with(".sqlite") || base.ends_with(".db") || base.ends_with(".sqlite3") {
                base
            } else {
                format!("{base}.sqlite")
            }
        }
    }
}

/// Start dumping `spec`. `scratch` is a private directory for the defaults
/// file or the SQLite copy.
pub async fn start_dump(spec: &DatabaseSpec, scratch: &Path) -> Result<DumpStream, DumpError> {
    let reader: Box<dyn Read + Send> = match spec.engine {
        DbEngine::Mysql => Box::new(mysql::dump(spec, scratch)?),
        DbEngine::Postgres => Box::new(postgres::dump(spec)?),
        DbEngine::Sqlite => Box::new(sqlite::copy(spec, scratch).await?),
    };
    Ok(DumpStream {
        file_name: dump_file_name(spec),
        reader,
    })
}

/// Replace `spec`'s database with the dump read from `dump` (a stream from
/// the repository). Runs on the calling thread: call from `spawn_blocking`.
pub fn restore_blocking(
    spec: &DatabaseSpec,
    dump: &mut (dyn Read + Send),
    scratch: &Path,
) -> Result<(), DumpError> {
    match spec.engine {
        DbEngine::Mysql => mysql::restore(spec, dump, scratch),
        DbEngine::Postgres => postgres::restore(spec, dump),
        DbEngine::Sqlite => sqlite::restore(spec, dump),
    }
}

/// Check a database is reachable with its credentials (site add, clear
/// errors before the first backup).
pub fn probe(spec: &DatabaseSpec, scratch: &Path) -> Result<(), DumpError> {
    match spec.engine {
        DbEngine::Mysql => mysql::probe(spec, scratch),
        DbEngine::Postgres => postgres::probe(spec),
        DbEngine::Sqlite => sqlite::probe(spec),
    }
}
