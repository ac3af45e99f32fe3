//! `chom-backup demo`: the main job end to end on embedded defaults, with no
//! server and nothing to configure. In a fresh data directory (SQLite
//! catalog, local encrypted repository) it creates a sample site — files and
//! a SQLite database — backs it up, changes it as a day of edits would,
//! backs it up again, verifies both backups, restores the latest into a
//! second site, compares, and prints the statistics.

use std::path::{Path, PathBuf};

use chom_backup::domain::{BackupConfiguration, DatabaseSpec, Trigger};
use chom_backup::{BackupOrchestrator, Home, NewSite, RestoreRequest, RunOptions};
use clap::Args;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use super::output::bytes;
use super::{CmdResult, Failure};

/// Options of the demo.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Work in this directory and keep it (default: a temporary directory, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn failed(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::usage(format!("demo: {what}: {e}"))
}

fn write(path: &Path, content: impl AsRef<[u8]>) -> Result<(), Failure> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| failed(&format!("creating {}", parent.display()), e))?;
    }
    std::fs::write(path, content).map_err(|e| failed(&format!("writing {}", path.display()), e))
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

async fn sql(db: &Path, statements: &[&str]) -> Result<(), Failure> {
    let mut conn = SqliteConnectOptions::new()
        .filename(db)
        .create_if_missing(true)
        .connect()
        .await
        .map_err(|e| failed("opening the sample database", e))?;
    for statement in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(*statement))
            .execute(&mut conn)
            .await
            .map_err(|e| failed("writing the sample database", e))?;
    }
    conn.close()
        .await
        .map_err(|e| failed("closing the sample database", e))
}

async fn count_posts(db: &Path) -> Result<i64, Failure> {
    let mut conn = SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .connect()
        .await
        .map_err(|e| failed("opening the restored database", e))?;
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM posts")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| failed("reading the restored database", e))?;
    Ok(n)
}

async fn sample_site(root: &Path, db: &Path) -> Result<(), Failure> {
    write(
        &root.join("index.php"),
        "<?php require 'wp-blog-header.php';\n",
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
    sql(
        db,
        &[
            "PRAGMA journal_mode = WAL",
            "CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT, body TEXT, status TEXT)",
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) \
             INSERT INTO posts SELECT i, 'Post ' || i, printf('%.500c', 'x'), 'publish' FROM n",
        ],
    )
    .await
}

async fn day_of_changes(root: &Path, db: &Path) -> Result<(), Failure> {
    write(
        &root.join("wp-includes/module-07.php"),
        "<?php // patched\n",
    )?;
    write(
        &root.join("wp-content/uploads/2026/11/photo-new.jpg"),
        media(300_000, 99),
    )?;
    std::fs::remove_file(root.join("wp-content/uploads/2026/11/photo-00.jpg"))
        .map_err(|e| failed("changing the sample site", e))?;
    sql(
        db,
        &[
            "UPDATE posts SET status = 'draft' WHERE id % 100 = 0",
            "INSERT INTO posts (title, body, status) VALUES ('A new post', 'hello', 'publish')",
        ],
    )
    .await
}

/// Run the demo.
pub async fn run(args: DemoArgs) -> CmdResult {
    match args.dir {
        Some(dir) => demo(&dir).await,
        None => {
            let dir = std::env::temp_dir().join(format!("chom-backup-demo-{}", std::process::id()));
            let result = demo(&dir).await;
            let _ = std::fs::remove_dir_all(&dir);
            result
        }
    }
}

async fn demo(base: &Path) -> CmdResult {
    let home_dir = base.join("data");
    println!(
        "1. data directory {} (SQLite catalog, encrypted local repository)",
        home_dir.display()
    );
    Home::init(&home_dir, None, None).await?;
    let orchestrator: BackupOrchestrator = Home::load(&home_dir)?.orchestrator("demo").await?;

    let root = base.join("sites/demo/public");
    let db = base.join("sites/demo/demo.sqlite");
    sample_site(&root, &db).await?;
    let spec = |path: &Path| DatabaseSpec::parse(&format!("sqlite:{}", path.display()), None);
    orchestrator
        .add_site(
            NewSite {
                name: "demo".into(),
                root: root.clone(),
                excludes: vec![],
                database: Some(spec(&db)?),
                timezone: None,
            },
            true,
        )
        .await?;
    println!("2. site demo: {} and {}", root.display(), db.display());

    let config = BackupConfiguration::full(30)?;
    let run = RunOptions::default();
    let first = orchestrator
        .create_backup("demo", config, Trigger::Manual, &run)
        .await?;
    println!(
        "3. backup {}: {} files including the database copy, {} ({} stored)",
        first.id,
        first.file_count,
        bytes(first.logical_bytes),
        bytes(first.added_bytes)
    );

    day_of_changes(&root, &db).await?;
    let second = orchestrator
        .create_backup("demo", config, Trigger::Manual, &run)
        .await?;
    println!(
        "4. after a day of changes, backup {}: {} ({} stored: only what changed)",
        second.id,
        bytes(second.logical_bytes),
        bytes(second.added_bytes)
    );

    for b in [&first, &second] {
        let report = orchestrator.validate_integrity(b.id, true).await?;
        if !report.valid {
            return Err(Failure::damage(format!(
                "backup {} is not valid: {}",
                b.id,
                report.problems.join("; ")
            )));
        }
    }
    println!("5. both backups verified: every chunk read back and checked");

    let copy_root = base.join("sites/demo-copy/public");
    let copy_db = base.join("sites/demo-copy/demo.sqlite");
    orchestrator
        .add_site(
            NewSite {
                name: "demo-copy".into(),
                root: copy_root.clone(),
                excludes: vec![],
                database: Some(spec(&copy_db)?),
                timezone: None,
            },
            false,
        )
        .await?;
    let request = RestoreRequest {
        target_site: Some("demo-copy".into()),
        ..RestoreRequest::default()
    };
    orchestrator
        .restore_backup(second.id, &request, &run)
        .await?;
    let same_files = trees_equal(&root, &copy_root)?;
    let (posts, copy_posts) = (count_posts(&db).await?, count_posts(&copy_db).await?);
    if !same_files || posts != copy_posts {
        return Err(Failure::damage(
            "the restored site differs from the original",
        ));
    }
    println!(
        "6. restored into site demo-copy: files identical, {copy_posts} posts in its database"
    );

    let stats = orchestrator.get_statistics("demo").await?;
    println!(
        "7. site demo: {} backups ({} completed), {} in all, {} stored after deduplication; last {}",
        stats.total_backups,
        stats.completed_backups,
        bytes(stats.total_size_bytes),
        bytes(stats.stored_bytes),
        stats
            .last_backup_at
            .map(|t| t.to_string())
            .unwrap_or_default()
    );
    Ok(())
}

/// Whether two directory trees hold the same names and file contents.
fn trees_equal(a: &Path, b: &Path) -> Result<bool, Failure> {
    let read =
        |p: &Path| std::fs::read(p).map_err(|e| failed(&format!("reading {}", p.display()), e));
    let names = |dir: &Path| -> Result<Vec<std::ffi::OsString>, Failure> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| failed(&format!("listing {}", dir.display()), e))?
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.sort();
        Ok(names)
    };
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let left = names(&a.join(&rel))?;
        if left != names(&b.join(&rel))? {
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
