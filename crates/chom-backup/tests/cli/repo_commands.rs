//! The `repo` command group: outputs, JSON, exit statuses and errors.

use std::io::Write;
use std::process::Stdio;

use super::util::{Env, PASSWORD, files_under, noise, same_content};

fn site(env: &Env) -> std::path::PathBuf {
    let src = env.path("site");
    std::fs::create_dir_all(src.join("wp-content")).unwrap();
    std::fs::write(src.join("index.php"), "<?php echo 'hi';\n").unwrap();
    std::fs::write(src.join("wp-content/photo.jpg"), noise(500_000, 1)).unwrap();
    src
}

#[test]
fn init_backup_list_restore_check_with_json() {
    let env = Env::new();
    let src = site(&env);
    let init = env.json(&["repo", "init"]);
    assert_eq!(init["encrypted"], true);
    let backup = env.json(&[
        "repo",
        "backup",
        src.to_str().unwrap(),
        "--tag",
        "site=blog",
    ]);
    let id = backup["id"].as_str().unwrap().to_string();
    assert_eq!(backup["summary"]["files"], 2);
    assert_eq!(backup["tags"]["site"], "blog");

    let list = env.json(&["repo", "snapshots", "--tag", "site=blog"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(
        env.json(&["repo", "snapshots", "--tag", "site=other"])
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let target = env.path("out");
    env.ok(&[
        "repo",
        "restore",
        &id[..8],
        "--target",
        target.to_str().unwrap(),
    ]);
    assert!(same_content(&src, &target.join("site")));

    let check = env.json(&["repo", "check", "--read-data"]);
    assert_eq!(check["problems"].as_array().unwrap().len(), 0);
    let stats = env.json(&["repo", "stats"]);
    assert_eq!(stats["snapshots"], 1);
    assert!(stats["index_bytes_per_blob"].as_f64().unwrap() <= 100.0);
    let human = env.ok(&["repo", "snapshots"]);
    assert!(
        human.contains(&id[..8]) && human.contains("site=blog"),
        "{human}"
    );
}

#[test]
fn check_exits_3_on_damage_and_names_it() {
    let env = Env::new();
    let src = site(&env);
    env.ok(&["repo", "init"]);
    env.ok(&["repo", "backup", src.to_str().unwrap()]);
    let pack = files_under(&env.repo().join("data"))
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&pack, bytes).unwrap();
    let out = env.run(&["repo", "check", "--read-data"]);
    assert_eq!(out.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("damaged: pack"), "{stdout}");
    let out = env.run(&["repo", "check", "--read-data", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(report["problems"].as_array().unwrap().len(), 1);
    // Structure alone does not read pack data: the damage is invisible to it.
    assert_eq!(env.run(&["repo", "check"]).status.code(), Some(0));
}

#[test]
fn errors_are_clear_and_machine_readable() {
    let env = Env::new();
    // Not a repository.
    let out = env.run(&["repo", "snapshots", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let err: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["error"]["kind"], "not_a_repository");
    assert!(String::from_utf8_lossy(&out.stderr).contains("repo init"));
    // Wrong password, from a password file.
    env.ok(&["repo", "init"]);
    std::fs::write(env.path("wrong"), "nope\n").unwrap();
    let out = env.run(&[
        "repo",
        "snapshots",
        "--password-file",
        env.path("wrong").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("wrong password"), "{stderr}");
    assert!(!stderr.contains(PASSWORD));
    // The right password file works (its trailing newline is not part of it).
    env.ok(&[
        "repo",
        "snapshots",
        "--password-file",
        env.path("password").to_str().unwrap(),
    ]);
    // Unknown snapshot, bad tag, bad usage.
    let out = env.run(&[
        "repo",
        "restore",
        "deadbeef",
        "--target",
        env.path("x").to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no snapshot matches"));
    let out = env.run(&["repo", "snapshots", "--tag", "novalue"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("key=value"));
    assert_eq!(
        env.run(&["repo", "prune", "--grace", "soon"]).status.code(),
        Some(2)
    );
    // Initialising twice refuses.
    let out = env.run(&["repo", "init"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
}

#[test]
fn stdin_stream_export_and_unencrypted_warning() {
    let env = Env::new();
    env.ok(&["repo", "init", "--no-encryption"]);
    let dump = "INSERT INTO posts VALUES (1, 'hello');\n".repeat(10_000);
    let mut child = env
        .command()
        .args([
            "repo",
            "backup",
            "--stdin-name",
            "database/blog.sql",
            "--json",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dump.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not encrypted"),
        "every command warns"
    );
    let export = env.path("dump.tar.zst");
    env.ok(&["repo", "export", "latest", "-o", export.to_str().unwrap()]);
    let dest = env.path("untar");
    std::fs::create_dir_all(&dest).unwrap();
    let status = std::process::Command::new("tar")
        .args(["--zstd", "-xf"])
        .arg(&export)
        .arg("-C")
        .arg(&dest)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        std::fs::read_to_string(dest.join("database/blog.sql")).unwrap(),
        dump
    );
    assert!(!env.path("dump.tar.zst.partial").exists());
}

#[test]
fn prune_forget_diff_and_keys() {
    let env = Env::new();
    let src = site(&env);
    env.ok(&["repo", "init"]);
    let a = env.json(&["repo", "backup", src.to_str().unwrap()])["id"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(src.join("new.txt"), "new").unwrap();
    std::fs::remove_file(src.join("wp-content/photo.jpg")).unwrap();
    let b = env.json(&["repo", "backup", src.to_str().unwrap()])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let diff = env.json(&["repo", "diff", &a, &b]);
    let changes: Vec<(String, String)> = diff
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["change"].as_str().unwrap().to_string(),
                c["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        changes.contains(&("added".into(), "site/new.txt".into())),
        "{changes:?}"
    );
    assert!(
        changes.contains(&("removed".into(), "site/wp-content/photo.jpg".into())),
        "{changes:?}"
    );
    env.ok(&["repo", "forget", &a]);
    let report = env.json(&["repo", "prune", "--grace", "0"]);
    assert!(report["packs_deleted"].as_u64().unwrap() >= 1, "{report}");
    env.ok(&["repo", "check", "--read-data"]);

    std::fs::write(env.path("new-password"), "another one\n").unwrap();
    env.ok(&[
        "repo",
        "key",
        "add",
        "--new-password-file",
        env.path("new-password").to_str().unwrap(),
    ]);
    let keys = env.json(&["repo", "key", "list"]);
    assert_eq!(keys.as_array().unwrap().len(), 2);
    let out = env
        .command()
        .env("CHOM_BACKUP_PASSWORD", "another one")
        .args(["repo", "snapshots"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let repaired = env.json(&["repo", "repair-index"]);
    assert!(repaired["packs_indexed"].as_u64().unwrap() >= 1);
    env.ok(&["repo", "check", "--read-data"]);
    let target = env.path("out");
    env.ok(&[
        "repo",
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert!(same_content(&src, &target.join("site")));
}

#[test]
fn demo_runs_the_main_job_end_to_end() {
    let env = Env::new();
    let dir = env.path("demo");
    let out = env.ok(&["demo", "--dir", dir.to_str().unwrap()]);
    assert!(out.contains("both backups verified"), "{out}");
    assert!(
        out.contains("restored into site demo-copy: files identical, 20001 posts"),
        "{out}"
    );
    assert!(out.contains("2 backups (2 completed)"), "{out}");
    assert!(
        dir.join("data/repository/config").exists(),
        "--dir keeps the work"
    );
    // A second run refuses to reuse the data directory.
    let again = env.run(&["demo", "--dir", dir.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already set up"));
}
