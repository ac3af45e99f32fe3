//! Hostile snapshots: crafted trees with `..`, absolute names, names with a
//! slash, and symlink-then-directory tricks are refused by restore and
//! export, with nothing written outside the target.

use std::collections::BTreeMap;

use chom_repo::{
    BlobKind, Error, ExportFormat, ExportOptions, FileName, Node, NodeKind, Progress,
    RestoreOptions, Snapshot, Summary, Tree,
};

use super::util::Scratch;

fn node(name: &[u8], kind: NodeKind) -> Node {
    Node {
        name: FileName(name.to_vec()),
        kind,
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime_ns: 0,
        ctime_ns: 0,
        inode: 0,
        size: 0,
        target: None,
        content: vec![],
        subtree: None,
    }
}

async fn snapshot_of(s: &Scratch, root: Tree) -> chom_repo::Id {
    let tree = s.repo.save_tree(&root).await.unwrap();
    let snap = Snapshot {
        time: jiff::Timestamp::now(),
        host: "attacker".into(),
        username: "x".into(),
        paths: vec![],
        tags: BTreeMap::new(),
        tree,
        parent: None,
        summary: Summary::default(),
        program: "crafted".into(),
    };
    s.repo.save_snapshot(&snap).await.unwrap()
}

async fn file_node(s: &Scratch, name: &[u8], content: &[u8]) -> Node {
    let ids = s
        .repo
        .save_blobs(vec![(BlobKind::Data, content.to_vec())])
        .await
        .unwrap();
    let mut n = node(name, NodeKind::File);
    n.size = content.len() as u64;
    n.content = ids;
    n
}

async fn assert_refused(s: &Scratch, id: chom_repo::Id, outside: &std::path::Path) {
    let target = s.path("target");
    let err = s
        .repo
        .restore(&id, &target, &RestoreOptions::default(), Progress::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnsafeEntry { .. }), "restore: {err}");
    assert!(!outside.exists(), "restore wrote outside the target");
    assert!(
        !target.exists() || std::fs::read_dir(&target).unwrap().next().is_none(),
        "restore wrote something"
    );
    let out = std::fs::File::create(s.path("export.tar")).unwrap();
    let err = s
        .repo
        .export(
            &id,
            out,
            ExportFormat::Tar,
            &ExportOptions::default(),
            Progress::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnsafeEntry { .. }), "export: {err}");
    assert_eq!(
        std::fs::metadata(s.path("export.tar")).unwrap().len(),
        0,
        "export wrote before refusing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dot_dot_and_absolute_names_are_refused() {
    let s = Scratch::new().await;
    let outside = s.path("escaped");
    for bad in [
        b"..".to_vec(),
        b"../escaped".to_vec(),
        outside.to_str().unwrap().as_bytes().to_vec(),
        b"a/../../escaped".to_vec(),
    ] {
        let f = file_node(&s, &bad, b"pwned").await;
        let id = snapshot_of(&s, Tree { nodes: vec![f] }).await;
        assert_refused(&s, id, &outside).await;
        // Also one level down.
        let f = file_node(&s, &bad, b"pwned").await;
        let inner = s.repo.save_tree(&Tree { nodes: vec![f] }).await.unwrap();
        let mut dir = node(b"site", NodeKind::Dir);
        dir.subtree = Some(inner);
        let id = snapshot_of(&s, Tree { nodes: vec![dir] }).await;
        assert_refused(&s, id, &outside).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn symlink_then_directory_is_refused() {
    let s = Scratch::new().await;
    let outside = s.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    // "a" is a symlink to a directory outside, and "a" is also a directory
    // holding "payload": following the link would write outside.
    let mut link = node(b"a", NodeKind::Symlink);
    link.target = Some(FileName(outside.to_str().unwrap().as_bytes().to_vec()));
    let payload = file_node(&s, b"payload", b"pwned").await;
    let inner = s
        .repo
        .save_tree(&Tree {
            nodes: vec![payload],
        })
        .await
        .unwrap();
    let mut dir = node(b"a", NodeKind::Dir);
    dir.subtree = Some(inner);
    let id = snapshot_of(
        &s,
        Tree {
            nodes: vec![link, dir],
        },
    )
    .await;
    assert_refused(&s, id, &outside.join("payload")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_existing_symlink_in_the_target_is_replaced_not_followed() {
    let s = Scratch::new().await;
    let outside = s.path("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let f = file_node(&s, b"index.php", b"restored content").await;
    let inner = s.repo.save_tree(&Tree { nodes: vec![f] }).await.unwrap();
    let mut dir = node(b"site", NodeKind::Dir);
    dir.subtree = Some(inner);
    dir.mode = 0o755;
    let id = snapshot_of(&s, Tree { nodes: vec![dir] }).await;
    // The target already has site -> outside, and a file symlink too.
    let target = s.path("target");
    std::fs::create_dir_all(&target).unwrap();
    std::os::unix::fs::symlink(&outside, target.join("site")).unwrap();
    s.repo
        .restore(&id, &target, &RestoreOptions::default(), Progress::new())
        .await
        .unwrap();
    assert!(
        !outside.join("index.php").exists(),
        "wrote through a symlink"
    );
    assert!(
        !std::fs::symlink_metadata(target.join("site"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read(target.join("site/index.php")).unwrap(),
        b"restored content"
    );
}
