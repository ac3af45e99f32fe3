//! `chom-backup storage`: whole files under keys, through the binary.

use sha2::{Digest, Sha256};

use super::util::{Home, damage_every_pack, noise};

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[test]
fn stored_files_round_trip_replace_verify_and_delete() {
    let home = Home::new();
    let archive = home.path("blog.tar.gz");
    let first = noise(5 << 20, 7);
    std::fs::write(&archive, &first).unwrap();

    let stored = home.json(&[
        "storage",
        "store",
        archive.to_str().unwrap(),
        "imports/blog.tar.gz",
    ]);
    assert_eq!(stored["key"], "imports/blog.tar.gz");
    assert_eq!(stored["size"], first.len() as u64);
    assert_eq!(stored["sha256"], sha256(&first));
    assert_eq!(
        home.run(&["storage", "exists", "imports/blog.tar.gz"])
            .status
            .code(),
        Some(0)
    );
    let shown = home.json(&["storage", "show", "imports/blog.tar.gz"]);
    assert_eq!(shown["size"], first.len() as u64);
    assert_eq!(shown["sha256"], sha256(&first));

    // Stored again with other content: the new version replaces the old.
    let mut second = first.clone();
    second[4 << 20] ^= 1;
    std::fs::write(&archive, &second).unwrap();
    home.ok(&[
        "storage",
        "store",
        archive.to_str().unwrap(),
        "imports/blog.tar.gz",
    ]);
    let listed = home.json(&["storage", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["sha256"], sha256(&second));

    let back = home.path("restored/blog.tar.gz");
    std::fs::create_dir_all(back.parent().unwrap()).unwrap();
    home.ok(&[
        "storage",
        "retrieve",
        "imports/blog.tar.gz",
        back.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read(&back).unwrap() == second,
        "retrieved bytes differ"
    );

    // Keys must be plain relative paths; errors name the key and exit 2.
    for bad in ["../etc/passwd", "/abs/path", "a//b", ""] {
        let out = home.run(&["storage", "store", archive.to_str().unwrap(), bad]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {stderr}");
        assert!(stderr.contains("not a usable key"), "{bad:?}: {stderr}");
    }
    let missing = home.fails(&["storage", "retrieve", "nope.tar", back.to_str().unwrap()]);
    assert!(
        missing.contains("nothing is stored under \"nope.tar\""),
        "{missing}"
    );

    // Damaged data: retrieve fails and leaves the existing file as it was,
    // with no temporary file beside it.
    // (Every pack: blobs land in packs in no fixed order, and the replaced
    // version's chunk is still in one of them, unreferenced.)
    damage_every_pack(&home);
    home.fails(&[
        "storage",
        "retrieve",
        "imports/blog.tar.gz",
        back.to_str().unwrap(),
    ]);
    assert!(std::fs::read(&back).unwrap() == second, "target changed");
    let beside: Vec<_> = std::fs::read_dir(back.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside.len(), 1, "{beside:?}");

    let deleted = home.json(&["storage", "delete", "imports/blog.tar.gz"]);
    assert_eq!(deleted["deleted"], true);
    assert_eq!(
        home.run(&["storage", "exists", "imports/blog.tar.gz"])
            .status
            .code(),
        Some(1)
    );
    // Every store and delete is audited, refused ones as failed.
    let audit = home.json(&["audit", "list"]);
    let count = |action: &str, outcome: &str| {
        audit
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == action && e["outcome"] == outcome)
            .count()
    };
    assert_eq!(count("storage.store", "ok"), 2, "{audit}");
    assert_eq!(count("storage.store", "failed"), 4, "{audit}");
    assert_eq!(count("storage.delete", "ok"), 1, "{audit}");
}
