//! Shared helpers: scratch repositories, generated trees, tree comparison.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chom_repo::{
    BackupOptions, BackupOutcome, InitOptions, KdfParams, Progress, Repository, RestoreOptions,
    Source, Storage,
};

/// Cheap key derivation for tests (the cost parameters are not under test).
pub fn fast_init() -> InitOptions {
    let mut opts = InitOptions::default();
    opts.kdf = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    opts
}

pub const PASSWORD: &str = "test password";

/// A repository in a temporary directory, plus scratch space.
pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub repo: Repository,
}

impl Scratch {
    pub async fn new() -> Self {
        Self::with(fast_init()).await
    }

    pub async fn with(opts: InitOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path().join("repo").to_str().unwrap(), true).unwrap();
        let repo = Repository::init(storage, Some(PASSWORD), opts)
            .await
            .unwrap();
        Scratch { dir, repo }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn repo_dir(&self) -> PathBuf {
        self.path("repo")
    }

    /// Open the repository again from disk (a fresh handle, fresh index).
    pub async fn reopen(&self) -> Repository {
        let storage = Storage::open(self.repo_dir().to_str().unwrap(), false).unwrap();
        Repository::open(storage, Some(PASSWORD)).await.unwrap()
    }

    pub async fn backup(&self, path: &Path) -> BackupOutcome {
        self.repo
            .backup(
                vec![Source::path(path)],
                &BackupOptions::default(),
                Progress::new(),
            )
            .await
            .unwrap()
    }

    /// Restore a snapshot into a new directory and return it.
    pub async fn restore(&self, id: &chom_repo::Id, name: &str) -> PathBuf {
        let target = self.path(name);
        self.repo
            .restore(id, &target, &RestoreOptions::default(), Progress::new())
            .await
            .unwrap();
        target
    }
}

/// Deterministic pseudo-random bytes (xorshift), incompressible.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A small site-like tree: text, binary, empty file, symlink, empty dir.
pub fn sample_tree(root: &Path, seed: u64) {
    fs::create_dir_all(root.join("wp-content/uploads/2026")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    fs::write(
        root.join("index.php"),
        format!("<?php echo {seed};\n").repeat(50),
    )
    .unwrap();
    fs::write(
        root.join("wp-content/uploads/2026/photo.jpg"),
        noise(3_000_000, seed),
    )
    .unwrap();
    fs::write(
        root.join("wp-content/big.log"),
        "log line\n".repeat(300_000),
    )
    .unwrap();
    fs::write(root.join("wp-content/empty.txt"), b"").unwrap();
    std::os::unix::fs::symlink("index.php", root.join("current")).unwrap();
    fs::set_permissions(root.join("index.php"), fs::Permissions::from_mode(0o640)).unwrap();
}

/// Assert two trees are identical: names, kinds, content, permission bits,
/// modification times (files and symlinks, and directories), link targets.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let mut entries_a = list(a);
    let mut entries_b = list(b);
    entries_a.sort();
    entries_b.sort();
    let names_a: Vec<&PathBuf> = entries_a.iter().collect();
    let names_b: Vec<&PathBuf> = entries_b.iter().collect();
    assert_eq!(
        names_a,
        names_b,
        "different entries under {} and {}",
        a.display(),
        b.display()
    );
    for rel in entries_a.iter().chain(std::iter::once(&PathBuf::new())) {
        let (pa, pb) = (a.join(rel), b.join(rel));
        let (ma, mb) = (
            fs::symlink_metadata(&pa).unwrap(),
            fs::symlink_metadata(&pb).unwrap(),
        );
        assert_eq!(ma.file_type(), mb.file_type(), "kind of {}", rel.display());
        if ma.file_type().is_symlink() {
            assert_eq!(
                fs::read_link(&pa).unwrap(),
                fs::read_link(&pb).unwrap(),
                "target of {}",
                rel.display()
            );
        } else {
            assert_eq!(
                ma.mode() & 0o7777,
                mb.mode() & 0o7777,
                "mode of {}",
                rel.display()
            );
        }
        if ma.is_file() {
            assert!(
                fs::read(&pa).unwrap() == fs::read(&pb).unwrap(),
                "content of {}",
                rel.display()
            );
        }
        if !rel.as_os_str().is_empty() {
            assert_eq!(
                (ma.mtime(), ma.mtime_nsec()),
                (mb.mtime(), mb.mtime_nsec()),
                "mtime of {}",
                rel.display()
            );
        }
    }
}

fn list(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in fs::read_dir(root.join(&rel)).unwrap() {
            let entry = entry.unwrap();
            let child = rel.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                stack.push(child.clone());
            }
            out.push(child);
        }
    }
    out
}

/// Every object file under a directory of the repository.
pub fn objects(repo_dir: &Path, sub: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![repo_dir.join(sub)];
    while let Some(dir) = stack.pop() {
        let Ok(read) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in read.flatten() {
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    out
}

/// Total size of the files under a directory.
pub fn dir_size(dir: &Path) -> u64 {
    objects(dir, "")
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}
