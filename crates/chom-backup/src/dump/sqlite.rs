//! SQLite: a consistent copy of a live database with `VACUUM INTO` (a read
//! transaction: writers keep going in WAL mode), streamed into the snapshot;
//! restored by writing the file beside the target and renaming it into place.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use super::DumpError;
use crate::domain::{DatabaseSpec, DbLocation};

const HEADER: &[u8; 16] = b"SQLite format 3\0";

fn db_path(spec: &DatabaseSpec) -> Result<&Path, DumpError> {
    match &spec.location {
        DbLocation::File { path } => Ok(path),
        _ => Err(DumpError("a SQLite site needs a database file path".into())),
    }
}

/// The copy as a reader; the temporary directory goes when it is dropped.
pub(super) struct CopyReader {
    file: File,
    _dir: tempfile::TempDir,
}

impl Read for CopyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.file.read(buf)
    }
}

/// Make a consistent copy of the database in `scratch` and open it.
pub(super) async fn copy(spec: &DatabaseSpec, scratch: &Path) -> Result<CopyReader, DumpError> {
    let path = db_path(spec)?;
    probe(spec)?;
    std::fs::create_dir_all(scratch)
        .map_err(|e| DumpError(format!("cannot create {}: {e}", scratch.display())))?;
    let dir = tempfile::Builder::new()
        .prefix("sqlite-")
        .tempdir_in(scratch)
        .map_err(|e| {
            DumpError(format!(
                "cannot create a directory in {}: {e}",
                scratch.display()
            ))
        })?;
    let target = dir.path().join("copy.sqlite");
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await
        .map_err(|e| {
            DumpError(format!(
                "cannot open the SQLite database {}: {e}",
                path.display()
            ))
        })?;
    sqlx::query("VACUUM INTO $1")
        .bind(target.to_string_lossy().into_owned())
        .execute(&mut conn)
        .await
        .map_err(|e| {
            DumpError(format!(
                "cannot copy the SQLite database {}: {e}",
                path.display()
            ))
        })?;
    let _ = conn.close().await;
    let file =
        File::open(&target).map_err(|e| DumpError(format!("cannot read the SQLite copy: {e}")))?;
    Ok(CopyReader { file, _dir: dir })
}

/// The database file exists and is a SQLite database.
pub(super) fn probe(spec: &DatabaseSpec) -> Result<(), DumpError> {
    let path = db_path(spec)?;
    let mut header = [0u8; 16];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .map_err(|e| {
            DumpError(format!(
                "cannot read the SQLite database {}: {e}",
                path.display()
            ))
        })?;
    if &header != HEADER {
        return Err(DumpError(format!(
            "{} is not a SQLite database",
            path.display()
        )));
    }
    Ok(())
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Write the dump beside the database, check it is SQLite, give it the old
/// file's owner and mode, and rename it into place (atomic); then drop the
/// old file's WAL and shared-memory files, which belong to the old content.
pub(super) fn restore(spec: &DatabaseSpec, dump: &mut (dyn Read + Send)) -> Result<(), DumpError> {
    let path = db_path(spec)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| DumpError(format!("cannot create {}: {e}", dir.display())))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".chom-restore-")
        .tempfile_in(dir)
        .map_err(|e| DumpError(format!("cannot write in {}: {e}", dir.display())))?;
    std::io::copy(dump, &mut tmp)
        .map_err(|e| DumpError(format!("cannot write the restored database: {e}")))?;
    tmp.flush()
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| DumpError(format!("cannot sync: {e}")))?;
    let mut header = [0u8; 16];
    File::open(tmp.path())
        .and_then(|mut f| f.read_exact(&mut header))
        .map_err(|e| DumpError(format!("the restored database is unreadable: {e}")))?;
    if &header != HEADER {
        return Err(DumpError(
            "the backup's database file is not a SQLite database; nothing was replaced".into(),
        ));
    }
    if let Ok(old) = std::fs::metadata(path) {
        let _ = std::os::unix::fs::chown(tmp.path(), Some(old.uid()), Some(old.gid()));
        let _ = std::fs::set_permissions(tmp.path(), old.permissions());
    }
    tmp.persist(path)
        .map_err(|e| DumpError(format!("cannot move the restored database into place: {e}")))?;
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(sidecar(path, suffix));
    }
    Ok(())
}
