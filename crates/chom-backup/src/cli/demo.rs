//! `chom-backup demo`: the main job end to end on embedded defaults, with no
//! server and nothing to configure. It builds a sample site, backs it up,
//! changes it as a day of edits would, backs it up again (incrementally),
//! verifies every byte, restores into a second directory, compares, and
//! prints what the repository holds.

use std::path::{Path, PathBuf};

use chom_repo::{
    BackupOptions, CheckOptions, InitOptions, Progress, ReadData, Repository, RestoreOptions,
    Source, Storage,
};
use clap::Args;

use super::output::bytes;
use super::{CmdResult, Failure};

/// Options of the demo.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Work in this directory and keep it (default: a temporary directory, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn write(path: &Path, content: impl AsRef<[u8]>) -> Result<(), Failure> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Failure::usage(format!("cannot create {}: {e}", parent.display())))?;
    }
    std::fs::write(path, content)
        .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))
}

/// Bytes that do not compress, like photos.
fn media(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn sample_site(root: &Path) -> Result<(), Failure> {
    write(
        &root.join("index.php"),
        "<?php require 'wp-blog-header.php';\n",
    )?;
    write(
        &root.join("wp-config.php"),
        "<?php define('DB_NAME', 'demo');\n",
    )?;
    for i in 0..40 {
        write(
            &root.join(format!("wp-includes/module-{i:02}.php")),
            format!("<?php // module {i}\nfunction f{i}() {{ return {i}; }}\n").repeat(200),
        )?;
    }
    for i in 0..12 {
        write(
            &root.join(format!("wp-content/uploads/2026/11/photo-{i:02}.jpg")),
            media(400_000, i + 1),
        )?;
    }
    let rows: String = (0..40_000)
        .map(|i| format!("INSERT INTO wp_posts VALUES ({i}, 'Post {i}', 'publish', 'lorem ipsum dolor sit amet');\n"))
        .collect();
    write(&root.join("wp-content/backup-db/site.sql"), rows)
}

fn day_of_changes(root: &Path) -> Result<(), Failure> {
    write(
        &root.join("wp-includes/module-07.php"),
        "<?php // patched\n",
    )?;
    write(
        &root.join("wp-content/uploads/2026/11/photo-new.jpg"),
        media(300_000, 99),
    )?;
    std::fs::remove_file(root.join("wp-content/uploads/2026/11/photo-00.jpg"))
        .map_err(|e| Failure::usage(format!("cannot change the sample site: {e}")))
}

/// Run the demo.
pub async fn run(args: DemoArgs) -> CmdResult {
    match args.dir {
        Some(dir) => demo(&dir).await,
        None => {
            let dir = tempdir()?;
            let result = demo(&dir).await;
            let _ = std::fs::remove_dir_all(&dir);
            result
        }
    }
}

fn tempdir() -> Result<PathBuf, Failure> {
    let dir = std::env::temp_dir().join(format!("chom-backup-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Failure::usage(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}

async fn demo(base: &Path) -> CmdResult {
    let site = base.join("sites/demo");
    let repo_dir = base.join("repository");
    if repo_dir.join("config").exists() {
        return Err(Failure::usage(format!(
            "{} already holds a repository: choose an empty --dir",
            repo_dir.display()
        )));
    }
    println!("1. sample site in {}", site.display());
    sample_site(&site)?;

    println!("2. encrypted repository in {}", repo_dir.display());
    let storage = Storage::open(repo_dir.to_str().unwrap_or_default(), true)?;
    let repo = Repository::init(storage, Some("demo password"), InitOptions::default()).await?;

    let mut opts = BackupOptions::default();
    opts.tags = chom_repo::parse_tags(&["site=demo", "type=files"])?;
    let first = repo
        .backup(
            vec![Source::path_as(&site, "files")],
            &opts,
            Progress::new(),
        )
        .await?;
    let s = &first.snapshot.summary;
    println!(
        "3. first backup {}: {} files, read {}, stored {} ({:.1} s)",
        first.id.short(),
        s.files,
        bytes(s.bytes_read),
        bytes(s.bytes_stored),
        s.duration_ms as f64 / 1000.0
    );

    day_of_changes(&site)?;
    let second = repo
        .backup(
            vec![Source::path_as(&site, "files")],
            &opts,
            Progress::new(),
        )
        .await?;
    let s = &second.snapshot.summary;
    println!(
        "4. after a day of changes, backup {}: {} new, {} changed, {} unchanged files; stored {}",
        second.id.short(),
        s.files_new,
        s.files_changed,
        s.files_unchanged,
        bytes(s.bytes_stored)
    );

    let mut check = CheckOptions::default();
    check.read_data = ReadData::All;
    let report = repo.check(&check, Progress::new()).await?;
    if !report.is_ok() {
        return Err(Failure::damage(format!(
            "verification found {} problems",
            report.problems.len()
        )));
    }
    println!(
        "5. verified {} packs ({}): no problems",
        report.packs_read,
        bytes(report.bytes_read)
    );

    let restored = base.join("sites/demo-restored");
    repo.restore(
        &second.id,
        &restored,
        &RestoreOptions::default(),
        Progress::new(),
    )
    .await?;
    let same = trees_equal(&site, &restored.join("files"))?;
    if !same {
        return Err(Failure::damage(
            "the restored site differs from the original",
        ));
    }
    println!(
        "6. restored into {}: identical to the site",
        restored.join("files").display()
    );

    let stats = repo.stats().await?;
    println!(
        "7. repository: {} snapshots holding {}, stored in {} (deduplication {:.2}x, compression {:.2}x)",
        stats.snapshots,
        bytes(stats.logical_bytes),
        bytes(stats.stored_bytes),
        stats.dedup_ratio,
        stats.compression_ratio
    );
    Ok(())
}

fn trees_equal(a: &Path, b: &Path) -> Result<bool, Failure> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| Failure::usage(format!("cannot read {}: {e}", p.display())))
    };
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut left: Vec<_> = std::fs::read_dir(a.join(&rel))
            .map_err(|e| Failure::usage(e.to_string()))?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        let mut right: Vec<_> = std::fs::read_dir(b.join(&rel))
            .map_err(|e| Failure::usage(e.to_string()))?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        left.sort();
        right.sort();
        if left != right {
            return Ok(false);
        }
        for name in left {
            let child = rel.join(&name);
            if a.join(&child).is_dir() {
                stack.push(child);
            } else if read(&a.join(&child))? != read(&b.join(&child))? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}
