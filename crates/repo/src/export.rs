//! Export: a snapshot as a standard tar stream (optionally gzip or zstd
//! compressed) that GNU tar extracts.
//!
//! Every tree is loaded and checked before the first byte is written, so a
//! crafted snapshot (`..`, absolute names, a name given twice) is refused
//! with nothing written. File content is read chunk by chunk with reads
//! in flight ahead of the writer, and every chunk is verified.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::file_reader::FileReader;
use crate::id::Id;
use crate::progress::Progress;
use crate::repository::Repository;
use crate::tree::{Node, NodeKind};
use crate::walk;

/// Container format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExportFormat {
    /// Plain tar.
    Tar,
    /// gzip-compressed tar.
    TarGz,
    /// zstd-compressed tar.
    TarZst,
}

impl ExportFormat {
    /// Parse `tar`, `tar.gz`/`tgz` or `tar.zst`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "tar" => Ok(ExportFormat::Tar),
            "tar.gz" | "tgz" => Ok(ExportFormat::TarGz),
            "tar.zst" | "tzst" => Ok(ExportFormat::TarZst),
            other => Err(Error::InvalidInput(format!(
                "unknown export format {other:?}: use tar, tar.gz or tar.zst"
            ))),
        }
    }

    /// Guess from a file name's extension.
    pub fn from_file_name(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            Some(ExportFormat::TarGz)
        } else if name.ends_with(".tar.zst") || name.ends_with(".tzst") {
            Some(ExportFormat::TarZst)
        } else if name.ends_with(".tar") {
            Some(ExportFormat::Tar)
        } else {
            None
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportSummary {
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Bytes of file content.
    pub bytes: u64,
}

/// Options of an export.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ExportOptions {
    /// Export only these paths (relative to the snapshot root); empty = all.
    pub includes: Vec<String>,
}

fn header_for(node: &Node) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_mode(node.mode & 0o7777);
    header.set_uid(u64::from(node.uid));
    header.set_gid(u64::from(node.gid));
    header.set_mtime(node.mtime_ns.div_euclid(1_000_000_000).max(0) as u64);
    match node.kind {
        NodeKind::File => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(node.size);
        }
        NodeKind::Dir => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
        }
        NodeKind::Symlink => {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
        }
    }
    header
}

/// A read error of ours travels through `io::Error` inside the tar writer;
/// take it back out so damage is reported as damage.
fn unwrap_engine_error(e: std::io::Error, io: impl Fn(std::io::Error) -> Error) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        *e.into_inner()
            .expect("checked")
            .downcast::<Error>()
            .expect("checked")
    } else {
        io(e)
    }
}

impl Repository {
    /// Write snapshot `snapshot` as a tar stream of `format` to `out`.
    pub async fn export<W: Write + Send + 'static>(
        &self,
        snapshot: &Id,
        out: W,
        format: ExportFormat,
        opts: &ExportOptions,
        progress: Arc<Progress>,
    ) -> Result<ExportSummary> {
        let snap = self.load_snapshot(snapshot).await?;
        let includes = opts
            .includes
            .iter()
            .map(|p| walk::normalize_snapshot_path(p))
            .collect::<Result<Vec<_>>>()?;
        let trees = walk::load_trees(self, snap.tree, true).await?;
        for inc in &includes {
            if trees.lookup(inc).is_none() {
                return Err(Error::PathNotFound(inc.display().to_string()));
            }
        }
        let mut entries: Vec<(PathBuf, Node)> = Vec::new();
        trees.walk(|path, node| {
            let relevant = includes.is_empty()
                || includes
                    .iter()
                    .any(|inc| path.starts_with(inc) || inc.starts_with(path));
            if relevant
                && (node.kind == NodeKind::Dir
                    || includes.is_empty()
                    || includes.iter().any(|inc| path.starts_with(inc)))
            {
                entries.push((path.to_path_buf(), node.clone()));
            }
            Ok(relevant)
        })?;
        progress.add_total(
            entries.iter().map(|(_, n)| n.size).sum(),
            entries.len() as u64,
        );
        progress.set_totals_known();

        let repo = self.clone();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || -> Result<ExportSummary> {
            let io = |e: std::io::Error| Error::io("writing", "the export", e);
            let mut summary = ExportSummary::default();
            let sink: Box<dyn Write> = match format {
                ExportFormat::Tar => Box::new(out),
                ExportFormat::TarGz => Box::new(flate2::write::GzEncoder::new(
                    out,
                    flate2::Compression::default(),
                )),
                ExportFormat::TarZst => {
                    Box::new(zstd::Encoder::new(out, 3).map_err(io)?.auto_finish())
                }
            };
            let mut builder = tar::Builder::new(sink);
            builder.follow_symlinks(false);
            for (path, node) in &entries {
                let mut header = header_for(node);
                // Sub-second times go in a PAX record (the tar header holds seconds).
                let nanos = node.mtime_ns.rem_euclid(1_000_000_000);
                if nanos != 0 {
                    let mtime = format!("{}.{nanos:09}", node.mtime_ns.div_euclid(1_000_000_000));
                    builder
                        .append_pax_extensions([("mtime", mtime.as_bytes())])
                        .map_err(io)?;
                }
                match node.kind {
                    NodeKind::Dir => {
                        summary.dirs += 1;
                        builder
                            .append_data(&mut header, path, std::io::empty())
                            .map_err(io)?;
                    }
                    NodeKind::Symlink => {
                        summary.symlinks += 1;
                        let target = node
                            .target
                            .as_ref()
                            .expect("validated symlink has a target");
                        builder
                            .append_link(&mut header, path, target.as_os())
                            .map_err(io)?;
                    }
                    NodeKind::File => {
                        summary.files += 1;
                        let reader = FileReader::new(&repo, &handle, node, path);
                        builder
                            .append_data(&mut header, path, reader)
                            .map_err(|e| unwrap_engine_error(e, io))?;
                        summary.bytes += node.size;
                        progress.add(node.size, 1);
                    }
                }
            }
            builder.into_inner().map_err(io)?.flush().map_err(io)?;
            Ok(summary)
        })
        .await
        .expect("export task")
    }
}
