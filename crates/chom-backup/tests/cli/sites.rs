//! Site backups end to end through the binary, with real MariaDB and
//! PostgreSQL databases: back up, damage, restore, compare every table.

use std::path::Path;

use super::util::{
    Home, damage_biggest_pack, db_name, mariadb, mariadb_available, noise, postgres_available,
    psql, same_content,
};

fn make_root(dir: &Path) {
    std::fs::create_dir_all(dir.join("wp-content/uploads")).unwrap();
    std::fs::create_dir_all(dir.join("wp-content/cache")).unwrap();
    std::fs::write(
        dir.join("index.php"),
        "<?php require 'wp-blog-header.php';\n",
    )
    .unwrap();
    std::fs::write(dir.join("wp-content/uploads/photo.jpg"), noise(300_000, 7)).unwrap();
    std::fs::write(dir.join("wp-content/cache/page.html"), "cached page").unwrap();
}

fn mariadb_checksums(db: &str) -> String {
    let tables = mariadb(&format!(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = '{db}' ORDER BY table_name"
    ));
    let list: Vec<String> = tables.lines().map(|t| format!("`{db}`.`{t}`")).collect();
    format!(
        "{tables}\n{}",
        mariadb(&format!("CHECKSUM TABLE {} EXTENDED", list.join(", ")))
    )
}

fn postgres_checksums(db: &str) -> String {
    let tables = psql(
        db,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
    );
    let mut out = tables.clone();
    for t in tables.lines() {
        out.push_str(&psql(db, &format!("SELECT '{t}', count(*), md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) FROM {t} x")));
    }
    out
}

#[test]
fn mariadb_site_backup_damage_restore_and_restore_elsewhere() {
    if !mariadb_available() {
        return;
    }
    let home = Home::new();
    let db = db_name("chom_e2e_my");
    let other_db = db_name("chom_e2e_my2");
    mariadb(&format!(
        "CREATE DATABASE {db}; USE {db}; \
         CREATE TABLE posts (id INT PRIMARY KEY, title VARCHAR(200), body LONGTEXT, published DATETIME); \
         CREATE TABLE users (id INT PRIMARY KEY AUTO_INCREMENT, login VARCHAR(60) UNIQUE, bio BLOB); \
         CREATE TRIGGER posts_title BEFORE INSERT ON posts FOR EACH ROW SET NEW.title = TRIM(NEW.title); \
         INSERT INTO users (login, bio) VALUES ('admin', 0x00FF10), ('editor', NULL);"
    ));
    mariadb(&format!(
        "USE {db}; INSERT INTO posts SELECT seq, CONCAT(' Post ', seq, ' '), REPEAT(CONCAT('lorem ipsum ', seq, ' '), 20), \
         '2026-01-01 00:00:00' + INTERVAL seq MINUTE FROM seq_0_to_1999"
    ));
    mariadb(&format!("CREATE DATABASE {other_db}"));
    let before = mariadb_checksums(&db);

    let root = home.path("blog");
    make_root(&root);
    let url = format!("mysql://root@127.0.0.1:3306/{db}");
    home.ok(&[
        "site",
        "add",
        "blog",
        "--root",
        root.to_str().unwrap(),
        "--db",
        &url,
        "--exclude",
        "wp-content/cache",
    ]);
    let backup = home.json(&["backup", "create", "blog"]);
    assert_eq!(backup["status"], "completed");
    let id = backup["id"].as_str().unwrap().to_string();

    // Damage: drop a table, change rows, add a table, change files.
    mariadb(&format!(
        "USE {db}; DROP TABLE users; UPDATE posts SET title = 'defaced'; CREATE TABLE junk (x INT)"
    ));
    std::fs::write(root.join("index.php"), "hacked").unwrap();
    std::fs::write(
        root.join("wp-content/evil.php"),
        "<?php system($_GET['c']);",
    )
    .unwrap();

    let restored = home.json(&["backup", "restore", &id]);
    assert_eq!(restored["files"], true);
    assert_eq!(restored["database"], true);
    assert!(restored["safety_backup"].is_string());
    assert_eq!(mariadb_checksums(&db), before, "every table as it was");
    assert_eq!(
        std::fs::read_to_string(root.join("index.php")).unwrap(),
        "<?php require 'wp-blog-header.php';\n"
    );
    assert!(!root.join("wp-content/evil.php").exists());
    assert!(
        !root.join("wp-content/cache").exists(),
        "excluded paths are not in the backup"
    );

    // Into another site: its own root and database.
    let root2 = home.path("blog-copy");
    let url2 = format!("mysql://root@127.0.0.1:3306/{other_db}");
    home.ok(&[
        "site",
        "add",
        "blog-copy",
        "--root",
        root2.to_str().unwrap(),
        "--db",
        &url2,
    ]);
    home.ok(&["backup", "restore", &id, "--to-site", "blog-copy"]);
    assert_eq!(
        mariadb_checksums(&other_db).replace(&other_db, "X"),
        before.replace(&db, "X")
    );
    assert_eq!(
        std::fs::read(root2.join("wp-content/uploads/photo.jpg")).unwrap(),
        noise(300_000, 7)
    );

    mariadb(&format!("DROP DATABASE {db}; DROP DATABASE {other_db}"));
}

#[test]
fn postgres_site_backup_and_partial_restores() {
    if !postgres_available() {
        return;
    }
    let home = Home::new();
    let db = db_name("chom_e2e_pg");
    psql("postgres", &format!("CREATE DATABASE {db}"));
    psql(
        &db,
        "CREATE TABLE posts (id int PRIMARY KEY, title text, tags text[], meta jsonb); \
         CREATE TABLE comments (id serial PRIMARY KEY, post_id int REFERENCES posts(id), body text); \
         CREATE VIEW titles AS SELECT title FROM posts; \
         INSERT INTO posts SELECT i, 'post ' || i, ARRAY['a', 'b'], jsonb_build_object('n', i) FROM generate_series(1, 3000) i; \
         INSERT INTO comments (post_id, body) SELECT i, 'nice ' || i FROM generate_series(1, 3000) i;",
    );
    let before = postgres_checksums(&db);
    let root = home.path("shop");
    make_root(&root);
    let url = format!("postgres://postgres@127.0.0.1:5432/{db}");
    home.ok(&[
        "site",
        "add",
        "shop",
        "--root",
        root.to_str().unwrap(),
        "--db",
        &url,
    ]);

    // Database-only round trip.
    let db_only = home.json(&["backup", "create", "shop", "--type", "database"]);
    psql(
        &db,
        "DELETE FROM comments; DROP VIEW titles; UPDATE posts SET title = 'x'",
    );
    std::fs::write(root.join("index.php"), "changed").unwrap();
    home.ok(&["backup", "restore", db_only["id"].as_str().unwrap()]);
    assert_eq!(postgres_checksums(&db), before);
    assert_eq!(
        std::fs::read_to_string(root.join("index.php")).unwrap(),
        "changed",
        "a database backup leaves files alone"
    );

    // Files-only round trip leaves the database alone.
    let files_only = home.json(&["backup", "create", "shop", "--type", "files"]);
    std::fs::remove_dir_all(root.join("wp-content")).unwrap();
    psql(&db, "INSERT INTO posts VALUES (99999, 'new', NULL, NULL)");
    home.ok(&["backup", "restore", files_only["id"].as_str().unwrap()]);
    assert!(root.join("wp-content/uploads/photo.jpg").exists());
    assert_eq!(psql(&db, "SELECT count(*) FROM posts").trim(), "3001");

    // --only and --path on a full backup.
    let full = home.json(&["backup", "create", "shop"]);
    let full_id = full["id"].as_str().unwrap();
    std::fs::write(root.join("index.php"), "edited again").unwrap();
    std::fs::write(root.join("wp-content/uploads/photo.jpg"), "replaced").unwrap();
    psql(&db, "DELETE FROM posts WHERE id = 99999");
    home.ok(&["backup", "restore", full_id, "--path", "index.php"]);
    assert_eq!(
        std::fs::read_to_string(root.join("index.php")).unwrap(),
        "changed"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("wp-content/uploads/photo.jpg")).unwrap(),
        "replaced",
        "other paths untouched"
    );
    assert_eq!(
        psql(&db, "SELECT count(*) FROM posts").trim(),
        "3000",
        "--path leaves the database alone"
    );
    home.ok(&["backup", "restore", full_id, "--only", "database"]);
    assert_eq!(psql(&db, "SELECT count(*) FROM posts").trim(), "3001");
    assert_eq!(
        std::fs::read_to_string(root.join("wp-content/uploads/photo.jpg")).unwrap(),
        "replaced"
    );
    let err = home.fails(&[
        "backup",
        "restore",
        files_only["id"].as_str().unwrap(),
        "--only",
        "database",
    ]);
    assert!(err.contains("holds no database"), "{err}");

    psql("postgres", &format!("DROP DATABASE {db} WITH (FORCE)"));
}

#[test]
fn sqlite_database_written_during_backup_stays_consistent() {
    let home = Home::new();
    let root = home.path("app");
    make_root(&root);
    let dbfile = home.path("app.db");
    // A writer process keeps inserting while the backup runs (WAL mode).
    let script = format!(
        "import sqlite3, time, sys\n\
         c = sqlite3.connect('{}')\n\
         c.execute('PRAGMA journal_mode=WAL')\n\
         c.execute('CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, payload TEXT)')\n\
         c.execute('CREATE TABLE IF NOT EXISTS counter (n INTEGER)')\n\
         c.execute('INSERT INTO counter VALUES (0)')\n\
         c.commit()\n\
         sys.stdout.write('ready\\n'); sys.stdout.flush()\n\
         for i in range(100000):\n\
         \x20   c.execute('INSERT INTO events (payload) VALUES (?)', ('x' * 200,))\n\
         \x20   c.execute('UPDATE counter SET n = n + 1')\n\
         \x20   c.commit()\n",
        dbfile.display()
    );
    let mut writer = std::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(writer.stdout.as_mut().unwrap()),
        &mut ready,
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    home.ok(&[
        "site",
        "add",
        "app",
        "--root",
        root.to_str().unwrap(),
        "--db",
        &format!("sqlite:{}", dbfile.display()),
    ]);
    let b = home.json(&["backup", "create", "app", "--type", "database"]);
    let _ = writer.kill();
    writer.wait().unwrap();
    // Restore into a fresh file and check it is consistent: one counter
    // increment per event, as every transaction did.
    let restored = home.path("restored.db");
    std::fs::write(&restored, b"").unwrap();
    home.ok(&[
        "site",
        "add",
        "app-copy",
        "--root",
        home.path("app-copy").to_str().unwrap(),
        "--db",
        &format!("sqlite:{}", restored.display()),
        "--no-probe",
    ]);
    home.ok(&[
        "backup",
        "restore",
        b["id"].as_str().unwrap(),
        "--to-site",
        "app-copy",
        "--no-safety-backup",
    ]);
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sqlite3; c = sqlite3.connect('{}'); print(c.execute('PRAGMA integrity_check').fetchone()[0], c.execute('SELECT count(*) FROM events').fetchone()[0], c.execute('SELECT n FROM counter').fetchone()[0])",
            restored.display()
        ))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let parts: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(parts[0], "ok", "{text}");
    assert_eq!(
        parts[1], parts[2],
        "events and counter agree: a consistent copy"
    );
    assert!(parts[1].parse::<u64>().unwrap() > 0);
}

#[test]
fn bad_input_gives_clear_errors_and_no_half_state() {
    let home = Home::new();
    let root = home.path("site");
    make_root(&root);
    home.ok(&["site", "add", "plain", "--root", root.to_str().unwrap()]);
    let count = |home: &Home| home.json(&["backup", "list"]).as_array().unwrap().len();

    assert!(
        home.fails(&["backup", "create", "nope"])
            .contains("site \"nope\" not found")
    );
    let out = home.run(&["backup", "create", "plain", "--type", "incremental"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("full, files or database"));
    for days in ["0", "366"] {
        let err = home.fails(&["backup", "create", "plain", "--retention-days", days]);
        assert!(err.contains("1 to 365"), "{err}");
    }
    assert!(
        home.fails(&["backup", "create", "plain"])
            .contains("has no database")
    );
    assert_eq!(count(&home), 0, "refused requests leave nothing");

    // Unreachable and misconfigured databases.
    assert!(
        home.fails(&[
            "site",
            "add",
            "down",
            "--root",
            root.to_str().unwrap(),
            "--db",
            "mysql://root@127.0.0.1:1/x"
        ])
        .contains("database")
    );
    home.ok(&[
        "site",
        "add",
        "down",
        "--root",
        root.to_str().unwrap(),
        "--db",
        "mysql://root@127.0.0.1:1/x",
        "--no-probe",
    ]);
    let err = home.fails(&["backup", "create", "down"]);
    assert!(err.contains("database of site down"), "{err}");
    let list = home.json(&["backup", "list", "--site", "down"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(
        list[0]["status"], "failed",
        "a failed record, and no snapshot"
    );
    assert!(list[0]["snapshot_id"].is_null());
    let repo_snapshots = home
        .env
        .command()
        .args([
            "repo",
            "snapshots",
            "--json",
            "--repo",
            home.path("home/repository").to_str().unwrap(),
            "--password-file",
            home.path("home/repository.key").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let snaps: serde_json::Value = serde_json::from_slice(&repo_snapshots.stdout).unwrap();
    assert!(
        snaps.as_array().unwrap().is_empty(),
        "no snapshot left by the failed backup"
    );
    let failed_id = list[0]["id"].as_str().unwrap();
    assert!(
        home.fails(&["backup", "restore", failed_id])
            .contains("nothing to restore")
    );
    assert!(
        home.fails(&[
            "site",
            "add",
            "bad",
            "--root",
            root.to_str().unwrap(),
            "--db",
            "mysql://u:pw@h/db"
        ])
        .contains("--db-password-file")
    );
    assert!(
        home.fails(&["site", "add", "Bad Name", "--root", root.to_str().unwrap()])
            .contains("site name")
    );
    assert!(
        home.fails(&["schedule", "set", "plain", "every tuesday"])
            .contains("cron")
    );
    assert!(
        home.fails(&[
            "retention",
            "apply",
            "plain",
            "--max-backups",
            "0",
            "--max-age-days",
            "5"
        ])
        .contains("at least 1")
    );
}

#[test]
fn verify_turns_invalid_when_a_pack_is_damaged() {
    let home = Home::new();
    let root = home.path("site");
    make_root(&root);
    home.ok(&["site", "add", "blog", "--root", root.to_str().unwrap()]);
    let b = home.json(&["backup", "create", "blog", "--type", "files"]);
    let id = b["id"].as_str().unwrap();
    let report = home.json(&["backup", "verify", id, "--deep"]);
    assert_eq!(report["valid"], true);
    // Damage the biggest data pack (the photo).
    damage_biggest_pack(&home);
    let out = home.run(&["backup", "verify", id, "--deep", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["data_intact"], false);
    // A shallow verify reads no data: still valid.
    assert_eq!(home.run(&["backup", "verify", id]).status.code(), Some(0));
}

#[test]
fn retention_with_backdated_backups_for_every_policy() {
    let home = Home::new();
    let root = home.path("site");
    make_root(&root);
    home.ok(&["site", "add", "blog", "--root", root.to_str().unwrap()]);
    // One backup a day for 120 days, made "in the past" with an injected clock.
    let start: jiff::Timestamp = "2026-06-01T03:00:00Z".parse().unwrap();
    for day in 0..120 {
        let at = start + jiff::SignedDuration::from_hours(24 * day);
        let out = home.run_at(
            &at.to_string(),
            &[
                "backup",
                "create",
                "blog",
                "--type",
                "files",
                "--retention-days",
                "365",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let now = (start + jiff::SignedDuration::from_hours(24 * 119 + 2)).to_string();
    let dry = |args: &[&str]| -> (usize, usize) {
        let mut all = vec!["retention", "apply", "blog", "--dry-run", "--json"];
        all.extend_from_slice(args);
        let out = home.run_at(&now, &all);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            v["deleted"].as_array().unwrap().len(),
            v["kept"].as_array().unwrap().len(),
        )
    };
    assert_eq!(dry(&["--policy", "default"]), (110, 10));
    assert_eq!(dry(&["--policy", "aggressive"]), (115, 5));
    assert_eq!(dry(&["--policy", "conservative"]), (90, 30));
    assert_eq!(dry(&["--policy", "compliance"]), (20, 100));
    assert_eq!(
        dry(&["--max-backups", "50", "--max-age-days", "14"]),
        (106, 14)
    );
    // Calendar: 7 daily + 4 weekly + 3 monthly, overlapping.
    let (deleted, kept) = dry(&[
        "--keep-daily",
        "7",
        "--keep-weekly",
        "4",
        "--keep-monthly",
        "3",
    ]);
    assert_eq!(deleted + kept, 120);
    assert!((11..=14).contains(&kept), "kept {kept}");

    // Apply for real: records and snapshots go.
    let applied = home.run_at(
        &now,
        &[
            "retention",
            "apply",
            "blog",
            "--policy",
            "aggressive",
            "--json",
        ],
    );
    assert!(applied.status.success());
    let list = home.json(&["backup", "list", "--site", "blog"]);
    assert_eq!(list.as_array().unwrap().len(), 5);
    let audit = home.json(&["audit", "list", "--site", "blog"]);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "retention.apply")
    );
    let stats = home.json(&["stats", "blog"]);
    assert_eq!(stats["total_backups"], 5);
}

#[test]
fn catalog_rebuild_recovers_records_from_the_repository() {
    let home = Home::new();
    let root = home.path("site");
    make_root(&root);
    home.ok(&[
        "site",
        "add",
        "blog",
        "--root",
        root.to_str().unwrap(),
        "--exclude",
        "*.html",
    ]);
    let a = home.json(&[
        "backup",
        "create",
        "blog",
        "--type",
        "files",
        "--retention-days",
        "14",
    ]);
    home.json(&["backup", "create", "blog", "--type", "files"]);
    for f in ["catalog.db", "catalog.db-wal", "catalog.db-shm"] {
        let _ = std::fs::remove_file(home.path("home").join(f));
    }
    assert!(
        home.json(&["site", "list"]).as_array().unwrap().is_empty(),
        "the catalog is gone"
    );
    let report = home.json(&["catalog", "rebuild"]);
    assert_eq!(report["backups_created"], 2);
    assert_eq!(report["sites_created"], 1);
    let site = home.json(&["site", "show", "blog"]);
    assert_eq!(site["site"]["excludes"][0], "*.html");
    let back = home.json(&["backup", "show", a["id"].as_str().unwrap()]);
    assert_eq!(back["configuration"]["retention_days"], 14);
    std::fs::write(root.join("index.php"), "changed").unwrap();
    home.ok(&["backup", "restore", a["id"].as_str().unwrap()]);
    assert!(
        same_content(&root, &root)
            && std::fs::read_to_string(root.join("index.php"))
                .unwrap()
                .starts_with("<?php")
    );
    assert_eq!(
        home.json(&["catalog", "rebuild"])["backups_present"],
        3,
        "idempotent (the safety backup is there too)"
    );
}

#[test]
fn database_passwords_never_reach_argv_logs_or_json() {
    if !mariadb_available() {
        return;
    }
    let home = Home::new();
    let db = db_name("chom_e2e_secret");
    let user = format!("u{}", &db[db.len() - 8..]);
    let secret = "Sup3r-S3cret-P@ss\"word'";
    mariadb(&format!(
        "CREATE DATABASE {db}; USE {db}; CREATE TABLE t (x LONGTEXT); \
         INSERT INTO t SELECT REPEAT('a', 100000) FROM seq_1_to_200; \
         CREATE USER '{user}'@'%' IDENTIFIED BY '{}'; GRANT ALL ON {db}.* TO '{user}'@'%'; \
         GRANT PROCESS, EVENT ON *.* TO '{user}'@'%';",
        secret.replace('\'', "''").replace('"', "\\\"")
    ));
    let pwfile = home.path("db-password");
    std::fs::write(&pwfile, format!("{secret}\n")).unwrap();
    // Misconfigured: a wrong password is caught when the site is added.
    let wrong = home.path("wrong-password");
    std::fs::write(&wrong, "not it\n").unwrap();
    let url_wrong = format!("mysql://{user}@127.0.0.1:3306/{db}");
    let err = home.fails(&[
        "site",
        "add",
        "w",
        "--root",
        home.path("w").to_str().unwrap(),
        "--db",
        &url_wrong,
        "--db-password-file",
        wrong.to_str().unwrap(),
    ]);
    assert!(
        err.contains("Access denied") && !err.contains("not it"),
        "{err}"
    );
    let root = home.path("site");
    make_root(&root);
    let url = format!("mysql://{user}@127.0.0.1:3306/{db}");
    let added = home.json(&[
        "site",
        "add",
        "s",
        "--root",
        root.to_str().unwrap(),
        "--db",
        &url,
        "--db-password-file",
        pwfile.to_str().unwrap(),
    ]);
    assert!(!added.to_string().contains("S3cret"));

    // Watch every process's command line while backing up.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let watcher = {
        let (stop, seen) = (stop.clone(), seen.clone());
        std::thread::spawn(move || {
            let mut scans = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for entry in std::fs::read_dir("/proc").unwrap().flatten() {
                    if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
                        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                        if text.contains("S3cret") {
                            seen.lock().unwrap().push(text);
                        }
                    }
                }
                scans += 1;
            }
            scans
        })
    };
    let out = home
        .command()
        .args(["backup", "create", "s", "--json"])
        .output()
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let scans = watcher.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(scans > 3, "the watcher ran");
    assert!(
        seen.lock().unwrap().is_empty(),
        "password seen in argv: {:?}",
        seen.lock().unwrap()
    );
    for text in [
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    ] {
        assert!(!text.contains("S3cret"));
    }
    let audit = home.ok(&["audit", "list", "--json"]);
    assert!(!audit.contains("S3cret"));
    // The dump really came through with the user's password.
    let id = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    mariadb(&format!("DELETE FROM {db}.t"));
    home.ok(&["backup", "restore", &id, "--only", "database"]);
    assert_eq!(
        mariadb(&format!("SELECT COUNT(*) FROM {db}.t")).trim(),
        "200"
    );
    mariadb(&format!("DROP DATABASE {db}; DROP USER '{user}'@'%'"));
}

#[test]
fn a_failed_restore_rolls_the_database_back_and_leaves_the_files() {
    if !mariadb_available() {
        return;
    }
    let home = Home::new();
    let db = db_name("chom_e2e_rollback");
    mariadb(&format!(
        "CREATE DATABASE {db}; USE {db}; CREATE TABLE t (id INT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'backed up')"
    ));
    let root = home.path("site");
    make_root(&root);
    home.ok(&[
        "site",
        "add",
        "s",
        "--root",
        root.to_str().unwrap(),
        "--db",
        &format!("mysql://root@127.0.0.1:3306/{db}"),
    ]);
    let id = home.json(&["backup", "create", "s"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The site moves on after the backup.
    mariadb(&format!(
        "USE {db}; UPDATE t SET v = 'current'; INSERT INTO t VALUES (2, 'new row')"
    ));
    std::fs::write(root.join("index.php"), "current files").unwrap();
    let current = mariadb_checksums(&db);
    // Sabotage the final swap: a file stands where the old tree is moved aside.
    let aside = root.with_file_name(format!(".site.chom-old-{id}"));
    std::fs::write(&aside, "in the way").unwrap();

    let err = home.fails(&["backup", "restore", &id]);
    assert!(err.contains("moving into place"), "{err}");
    assert_eq!(
        mariadb_checksums(&db),
        current,
        "the database was rolled back from the safety backup"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("index.php")).unwrap(),
        "current files",
        "files untouched"
    );
    let staging = root.with_file_name(format!(".site.chom-restore-{id}"));
    assert!(!staging.exists(), "no staging directory left behind");
    let audit = home.json(&["audit", "list", "--site", "s"]);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "backup.restore" && e["outcome"] == "failed")
    );
    std::fs::remove_file(&aside).unwrap();
    home.ok(&["backup", "restore", &id]);
    assert_eq!(
        mariadb(&format!("SELECT v FROM {db}.t")).trim(),
        "backed up"
    );
    mariadb(&format!("DROP DATABASE {db}"));
}

#[test]
fn key_operations_are_audited_and_rotation_keeps_access() {
    let home = Home::new();
    let root = home.path("site");
    make_root(&root);
    home.ok(&["site", "add", "blog", "--root", root.to_str().unwrap()]);
    let key_file = home.path("home/repository.key");
    let before = std::fs::read_to_string(&key_file).unwrap();
    home.ok(&["key", "rotate"]);
    assert_ne!(
        std::fs::read_to_string(&key_file).unwrap(),
        before,
        "a new password in the key file"
    );
    home.ok(&["backup", "create", "blog", "--type", "files"]);
    let keys = home.json(&["key", "list"]);
    assert_eq!(keys.as_array().unwrap().len(), 1, "the old slot is gone");
    std::fs::write(home.path("second"), "a second password\n").unwrap();
    home.ok(&[
        "key",
        "add",
        "--new-password-file",
        home.path("second").to_str().unwrap(),
    ]);
    assert_eq!(home.json(&["key", "list"]).as_array().unwrap().len(), 2);
    let audit = home.json(&["audit", "list"]);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "key.add").count(),
        2,
        "{actions:?}"
    );
    assert!(actions.contains(&"key.remove"), "{actions:?}");
    assert!(!audit.to_string().contains("a second password"));
}

#[test]
fn backup_export_opens_with_gnu_tar() {
    let home = Home::new();
    let root = home.path("site");
    make_root(&root);
    let db = home.path("app.db");
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!("import sqlite3; c = sqlite3.connect('{}'); c.execute('CREATE TABLE t (x)'); c.execute(\"INSERT INTO t VALUES ('row')\"); c.commit()", db.display()))
        .status()
        .unwrap();
    assert!(out.success());
    home.ok(&[
        "site",
        "add",
        "blog",
        "--root",
        root.to_str().unwrap(),
        "--db",
        &format!("sqlite:{}", db.display()),
    ]);
    let id = home.json(&["backup", "create", "blog"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    for name in ["blog.tar", "blog.tar.gz", "blog.tar.zst"] {
        let archive = home.path(name);
        home.ok(&[
            "backup",
            "export",
            &id[..10],
            "-o",
            archive.to_str().unwrap(),
        ]);
        let dest = home.path(&format!("x-{name}"));
        std::fs::create_dir_all(&dest).unwrap();
        let mut tar = std::process::Command::new("tar");
        tar.arg("-xf").arg(&archive).arg("-C").arg(&dest);
        if name.ends_with(".zst") {
            tar.arg("--zstd");
        }
        assert!(tar.status().unwrap().success(), "GNU tar extracts {name}");
        assert!(same_content(&root, &dest.join("files")), "{name}: files");
        let dump = std::fs::read(dest.join("database/app.db")).unwrap();
        assert!(
            dump.starts_with(b"SQLite format 3\0"),
            "{name}: the database copy"
        );
    }
    let err = home.fails(&[
        "backup",
        "export",
        &id,
        "-o",
        home.path("x.zip").to_str().unwrap(),
    ]);
    assert!(err.contains(".tar"), "{err}");
}
