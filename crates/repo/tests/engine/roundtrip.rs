//! Back up, restore, compare: generated trees, incremental backups, streams,
//! partial restores, listing, diff and export through GNU tar.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use chom_repo::{
    BackupOptions, Change, Error, ExportFormat, ExportOptions, InitOptions, Progress, Repository,
    RestoreOptions, Source, Storage,
};
use proptest::prelude::*;

use super::util::{PASSWORD, Scratch, assert_same_tree, fast_init, noise, sample_tree};

#[derive(Debug, Clone)]
enum Entry {
    File {
        size_class: u8,
        seed: u64,
        mode: u32,
    },
    Symlink {
        target: String,
    },
    Dir {
        mode: u32,
    },
}

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9éüß漢字😀 _.-]{1,12}".prop_filter("not . or ..", |n| n != "." && n != "..")
}

fn entry() -> impl Strategy<Value = Entry> {
    let mode = prop::sample::select(vec![
        0o644, 0o600, 0o755, 0o700, 0o444, 0o4755, 0o2750, 0o1777, 0o000,
    ]);
    prop_oneof![
        (0u8..4, any::<u64>(), mode.clone()).prop_map(|(size_class, seed, mode)| Entry::File {
            size_class,
            seed,
            mode
        }),
        "[a-z/._ ]{1,20}".prop_map(|target| Entry::Symlink { target }),
        prop::sample::select(vec![0o755, 0o700, 0o555, 0o2775])
            .prop_map(|mode| Entry::Dir { mode }),
    ]
}

fn build(root: &Path, entries: &[(Vec<String>, Entry)], seed_mtime: i64) {
    fs::create_dir_all(root).unwrap();
    let mut dirs = Vec::new();
    for (i, (parts, entry)) in entries.iter().enumerate() {
        let mut path = root.to_path_buf();
        for p in &parts[..parts.len() - 1] {
            path.push(p);
            if path.is_file() || path.is_symlink() {
                return; // a file stands where a directory should be: skip the rest
            }
            fs::create_dir_all(&path).unwrap();
        }
        path.push(parts.last().unwrap());
        if path.symlink_metadata().is_ok() {
            continue;
        }
        match entry {
            Entry::File {
                size_class,
                seed,
                mode,
            } => {
                let size = match size_class {
                    0 => 0,
                    1 => (*seed % 200) as usize,
                    2 => 10_000 + (*seed % 90_000) as usize,
                    _ => 1_500_000 + (*seed % 3_000_000) as usize,
                };
                fs::write(&path, noise(size, *seed)).unwrap();
                fs::set_permissions(&path, fs::Permissions::from_mode(*mode)).unwrap();
            }
            Entry::Symlink { target } => std::os::unix::fs::symlink(target, &path).unwrap(),
            Entry::Dir { mode } => {
                fs::create_dir_all(&path).unwrap();
                dirs.push((path.clone(), *mode));
            }
        }
        let t = filetime::FileTime::from_unix_time(
            seed_mtime + i as i64 * 7919,
            (i as u32 * 7_777_777) % 1_000_000_000,
        );
        filetime::set_symlink_file_times(&path, t, t).unwrap();
    }
    // Directory modes and times last, deepest first, as a real tree would be.
    for (dir, mode) in dirs.iter().rev() {
        fs::set_permissions(dir, fs::Permissions::from_mode(*mode)).unwrap();
        let t = filetime::FileTime::from_unix_time(seed_mtime - 100, 5);
        filetime::set_symlink_file_times(dir, t, t).unwrap();
    }
}

fn entries() -> impl Strategy<Value = Vec<(Vec<String>, Entry)>> {
    let path = prop::collection::vec(name(), 1..4);
    let deep = prop::collection::vec(name(), 20..40);
    (
        prop::collection::vec((path, entry()), 0..40),
        deep,
        any::<u64>(),
    )
        .prop_map(|(mut list, deep, seed)| {
            list.push((
                deep,
                Entry::File {
                    size_class: 1,
                    seed,
                    mode: 0o600,
                },
            ));
            list
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random trees (unicode names, empty and large files, symlinks, deep
    /// directories, odd permissions) restore byte-identical with the same
    /// modes and modification times.
    #[test]
    fn random_trees_round_trip(list in entries(), mtime in 1_000_000_000i64..1_900_000_000) {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let s = Scratch::new().await;
            let src = s.path("src");
            build(&src, &list, mtime);
            let done = s.backup(&src).await;
            let out = s.restore(&done.id, "out").await;
            assert_same_tree(&src, &out.join("src"));
        });
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_backup_reads_only_changed_files() {
    let s = Scratch::new().await;
    let src = s.path("site");
    sample_tree(&src, 1);
    let first = s.backup(&src).await;
    assert_eq!(
        first.snapshot.summary.files_new, 4,
        "four files (the symlink is not one)"
    );
    assert!(first.snapshot.parent.is_none());

    let second = s.backup(&src).await;
    let sum = &second.snapshot.summary;
    assert_eq!(second.snapshot.parent, Some(first.id));
    assert_eq!(
        (sum.files_new, sum.files_changed, sum.files_unchanged),
        (0, 0, 4)
    );
    assert_eq!(sum.bytes_read, 0, "unchanged files are not read");
    assert_eq!(
        second.snapshot.tree, first.snapshot.tree,
        "unchanged trees are reused"
    );

    fs::write(src.join("index.php"), "changed").unwrap();
    fs::write(src.join("new.txt"), "new").unwrap();
    let third = s.backup(&src).await;
    let sum = &third.snapshot.summary;
    assert_eq!(
        (sum.files_new, sum.files_changed, sum.files_unchanged),
        (1, 1, 3)
    );
    assert_eq!(sum.bytes_read, 10);
    let out = s.restore(&third.id, "out3").await;
    assert_same_tree(&src, &out.join("site"));
    // The first snapshot still restores as it was.
    let old = s.restore(&first.id, "out1").await;
    assert_eq!(
        fs::read_to_string(old.join("site/index.php")).unwrap(),
        "<?php echo 1;\n".repeat(50)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_go_into_the_snapshot_without_temporary_files() {
    let s = Scratch::new().await;
    let src = s.path("files");
    sample_tree(&src, 2);
    let dump = "INSERT INTO t VALUES (1);\n".repeat(100_000);
    let mut opts = BackupOptions::default();
    opts.tags = chom_repo::parse_tags(&["site=blog", "type=full"]).unwrap();
    let done = s
        .repo
        .backup(
            vec![
                Source::path_as(&src, "files"),
                Source::stream("database/blog.sql", std::io::Cursor::new(dump.clone())),
            ],
            &opts,
            Progress::new(),
        )
        .await
        .unwrap();
    assert_eq!(done.snapshot.paths.len(), 2);
    let out = s.restore(&done.id, "out").await;
    assert_same_tree(&src, &out.join("files"));
    assert_eq!(
        fs::read_to_string(out.join("database/blog.sql")).unwrap(),
        dump
    );
    let mode = fs::metadata(out.join("database/blog.sql"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "dumps are private");

    // `latest` with tags, and partial restore of one path.
    let tags = chom_repo::parse_tags(&["site=blog"]).unwrap();
    let (latest, _) = s.repo.find_snapshot("latest", &tags).await.unwrap();
    assert_eq!(latest, done.id);
    let mut ropts = RestoreOptions::default();
    ropts.includes = vec!["database".into()];
    let part = s.path("part");
    s.repo
        .restore(&done.id, &part, &ropts, Progress::new())
        .await
        .unwrap();
    assert!(part.join("database/blog.sql").exists());
    assert!(!part.join("files").exists());
    ropts.includes = vec!["nope".into()];
    let err = s
        .repo
        .restore(&done.id, &part, &ropts, Progress::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::PathNotFound(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_stream_fails_the_backup_and_commits_nothing() {
    struct Broken(usize);
    impl std::io::Read for Broken {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other(
                    "mysqldump: Got error 2013: Lost connection",
                ));
            }
            let n = buf.len().min(self.0).min(1000);
            buf[..n].fill(b'x');
            self.0 -= n;
            Ok(n)
        }
    }
    let s = Scratch::new().await;
    let err = s
        .repo
        .backup(
            vec![Source::stream("db.sql", Broken(50_000))],
            &BackupOptions::default(),
            Progress::new(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Lost connection"), "{err}");
    assert!(
        s.repo.snapshots().await.unwrap().is_empty(),
        "no snapshot after a failed stream"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ls_diff_and_export_through_gnu_tar() {
    let s = Scratch::new().await;
    let src = s.path("site");
    sample_tree(&src, 3);
    let a = s.backup(&src).await;
    fs::remove_file(src.join("wp-content/big.log")).unwrap();
    fs::write(src.join("added.txt"), "hi").unwrap();
    fs::write(src.join("index.php"), "new content").unwrap();
    let b = s.backup(&src).await;

    let listing = s.repo.ls(&b.id, "site/wp-content").await.unwrap();
    let paths: Vec<&str> = listing.iter().map(|e| e.path.as_str()).collect();
    assert!(
        paths.contains(&"site/wp-content/uploads/2026/photo.jpg"),
        "{paths:?}"
    );
    assert!(!paths.contains(&"site/index.php"));

    let diff = s.repo.diff(&a.id, &b.id).await.unwrap();
    let find = |p: &str| diff.iter().find(|d| d.path == p).map(|d| d.change);
    assert_eq!(find("site/added.txt"), Some(Change::Added));
    assert_eq!(find("site/wp-content/big.log"), Some(Change::Removed));
    assert_eq!(find("site/index.php"), Some(Change::Modified));
    assert_eq!(find("site/wp-content/uploads/2026/photo.jpg"), None);

    for (format, ext, flag) in [
        (ExportFormat::Tar, "tar", ""),
        (ExportFormat::TarGz, "tar.gz", "--gzip"),
        (ExportFormat::TarZst, "tar.zst", "--zstd"),
    ] {
        let file = s.path(&format!("export.{ext}"));
        let out = fs::File::create(&file).unwrap();
        let summary = s
            .repo
            .export(
                &b.id,
                out,
                format,
                &ExportOptions::default(),
                Progress::new(),
            )
            .await
            .unwrap();
        assert_eq!(summary.files, 4);
        let dest = s.path(&format!("untar-{ext}"));
        fs::create_dir_all(&dest).unwrap();
        let mut cmd = std::process::Command::new("tar");
        cmd.arg("-x").arg("-f").arg(&file).arg("-C").arg(&dest);
        if !flag.is_empty() {
            cmd.arg(flag);
        }
        let status = cmd.status().expect("GNU tar runs");
        assert!(status.success(), "tar failed on {ext}");
        assert_same_tree(&src, &dest.join("site"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn passwords_and_missing_repositories_give_clear_errors() {
    let s = Scratch::new().await;
    let url = s.repo_dir();
    let storage = || Storage::open(url.to_str().unwrap(), false).unwrap();
    let err = Repository::open(storage(), Some("wrong"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::WrongPassword { .. }), "{err}");
    assert!(err.to_string().contains("wrong password"));
    let err = Repository::open(storage(), None).await.err().unwrap();
    assert!(matches!(err, Error::PasswordRequired { .. }), "{err}");
    let err = Storage::open(s.path("elsewhere").to_str().unwrap(), false).unwrap_err();
    assert!(matches!(err, Error::NotARepository { .. }), "{err}");
    let again = Repository::init(
        Storage::open(url.to_str().unwrap(), true).unwrap(),
        Some("x"),
        fast_init(),
    )
    .await;
    assert!(matches!(again, Err(Error::AlreadyInitialized { .. })));

    // Key slots: add, open with either, change, remove.
    let repo = s.reopen().await;
    let fast = fast_init().kdf;
    let second = repo.add_key("second password", fast).await.unwrap();
    let by_second = Repository::open(storage(), Some("second password"))
        .await
        .unwrap();
    assert_eq!(by_second.keys().await.unwrap().len(), 2);
    assert!(
        by_second.remove_key(&second.to_hex()).await.is_err(),
        "the slot in use stays"
    );
    let first_slot = by_second
        .keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| !k.current)
        .unwrap()
        .id;
    by_second
        .remove_key(&first_slot.to_hex()[..10])
        .await
        .unwrap();
    assert!(matches!(
        Repository::open(storage(), Some(PASSWORD)).await,
        Err(Error::WrongPassword { .. })
    ));
    by_second.change_password("third", fast).await.unwrap();
    assert!(Repository::open(storage(), Some("third")).await.is_ok());
    assert!(
        Repository::open(storage(), Some("second password"))
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unencrypted_repositories_work_and_say_so() {
    let mut opts = fast_init();
    opts.encrypt = false;
    let s = Scratch::with(opts).await;
    assert!(!s.repo.is_encrypted());
    let src = s.path("site");
    sample_tree(&src, 4);
    let done = s.backup(&src).await;
    let out = s.restore(&done.id, "out").await;
    assert_same_tree(&src, &out.join("site"));
    let reopened = Repository::open(
        Storage::open(s.repo_dir().to_str().unwrap(), false).unwrap(),
        None,
    )
    .await
    .unwrap();
    assert!(!reopened.is_encrypted());
    // Content is readable in the packs without a key: the repository is
    // really unencrypted, as asked.
    let packs = super::util::objects(&s.repo_dir(), "data");
    let all: Vec<u8> = packs.iter().flat_map(|p| fs::read(p).unwrap()).collect();
    assert!(all.windows(9).any(|w| w == b"<?php ech"));
    let _ = InitOptions::default();
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_clearly() {
    let s = Scratch::new().await;
    let missing = s.path("missing");
    let err = s
        .repo
        .backup(
            vec![Source::path(&missing)],
            &BackupOptions::default(),
            Progress::new(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
    let err = s
        .repo
        .backup(vec![], &BackupOptions::default(), Progress::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nothing to back up"), "{err}");
    let mut opts = BackupOptions::default();
    opts.excludes = vec!["[".into()];
    let src = s.path("x");
    fs::create_dir_all(&src).unwrap();
    let err = s
        .repo
        .backup(vec![Source::path(&src)], &opts, Progress::new())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("exclude pattern"), "{err}");
    let err = s
        .repo
        .backup(
            vec![Source::stream("../etc/x", std::io::empty())],
            &BackupOptions::default(),
            Progress::new(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a valid name"), "{err}");
    assert!(s.repo.snapshots().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn excludes_leave_out_matching_paths() {
    let s = Scratch::new().await;
    let src = s.path("site");
    sample_tree(&src, 5);
    fs::create_dir_all(src.join("wp-content/cache")).unwrap();
    fs::write(src.join("wp-content/cache/page.html"), "cached").unwrap();
    let mut opts = BackupOptions::default();
    opts.excludes = vec!["*.log".into(), "wp-content/cache".into()];
    let done = s
        .repo
        .backup(vec![Source::path(&src)], &opts, Progress::new())
        .await
        .unwrap();
    let listing = s.repo.ls(&done.id, "").await.unwrap();
    assert!(
        listing
            .iter()
            .all(|e| !e.path.ends_with(".log") && !e.path.contains("cache")),
        "{listing:?}"
    );
    assert!(listing.iter().any(|e| e.path == "site/index.php"));
}
