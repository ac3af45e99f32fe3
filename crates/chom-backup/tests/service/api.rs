//! The HTTP API: routes and OpenAPI agree, every token kind against every
//! endpoint, and the backup → export → restore → verify flow through jobs.

use std::collections::BTreeSet;
use std::io::Read;

use chom_backup::RunOptions;
use chom_backup::domain::{BackupConfiguration, Permission, Trigger};
use serde_json::{Value, json};

use super::util::TestService;

const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/sites"),
    ("post", "/v1/sites"),
    ("get", "/v1/sites/{site}"),
    ("put", "/v1/sites/{site}"),
    ("delete", "/v1/sites/{site}"),
    ("get", "/v1/sites/{site}/backups"),
    ("post", "/v1/sites/{site}/backups"),
    ("get", "/v1/backups/{id}"),
    ("delete", "/v1/backups/{id}"),
    ("post", "/v1/backups/{id}/restore"),
    ("post", "/v1/backups/{id}/verify"),
    ("get", "/v1/backups/{id}/export"),
    ("get", "/v1/sites/{site}/stats"),
    ("post", "/v1/sites/{site}/retention"),
    ("get", "/v1/sites/{site}/schedules"),
    ("put", "/v1/sites/{site}/schedules"),
    ("delete", "/v1/sites/{site}/schedules"),
    ("get", "/v1/jobs"),
    ("get", "/v1/jobs/{id}"),
    ("delete", "/v1/jobs/{id}"),
    ("get", "/v1/events"),
    ("get", "/v1/audit"),
    ("get", "/v1/health"),
    ("get", "/metrics"),
    ("get", "/v1/webhooks"),
    ("post", "/v1/webhooks"),
    ("delete", "/v1/webhooks/{id}"),
    ("get", "/v1/webhooks/{id}/deliveries"),
];

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_matches_the_routes() {
    let t = TestService::start().await;
    let (status, doc) = t.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(status, 200, "the document is open");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                documented.insert((method.clone(), path.clone()));
            }
        }
    }
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, expected);
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // And every documented route is really served (not 404/405) for an admin.
    let site = t.site("probe").await;
    t.site("doomed").await;
    for (method, path) in ROUTES {
        // Deleting a site is tried on a site of its own.
        let name = if *method == "delete" && *path == "/v1/sites/{site}" {
            "doomed"
        } else {
            site.name.as_str()
        };
        let path = path
            .replace("{site}", name)
            .replace("{id}", "01AAAAAAAAAAAAAAAAAAAAAAAA");
        let (status, _) = t
            .call(
                &method.to_uppercase(),
                &path,
                Some(&t.admin),
                Some(json!({})),
            )
            .await;
        assert_ne!(status, 405, "{method} {path} is not routed");
        let (_, reply) = t
            .call(
                &method.to_uppercase(),
                &path,
                Some(&t.admin),
                Some(json!({})),
            )
            .await;
        assert_ne!(
            reply["detail"], "no such route",
            "{method} {path} is not routed"
        );
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_token_kind_against_every_endpoint() {
    let t = TestService::start().await;
    let a = t.site("alpha").await;
    let b = t.site("beta").await;
    let orchestrator = t.service.orchestrator();
    let config = BackupConfiguration::files_only(7).unwrap();
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(
            orchestrator
                .create_backup("alpha", config, Trigger::Manual, &RunOptions::default())
                .await
                .unwrap()
                .id
                .to_string(),
        );
    }
    let job = t
        .service
        .enqueue(
            &chom_backup::domain::JobRequest::Verify {
                backup: ids[0].parse().unwrap(),
                deep: false,
            },
            Some(a.id),
            "test",
        )
        .await
        .unwrap()
        .0;
    t.wait_job(&job.id).await;

    let a_view = t.token("alpha-view", &[&a], &[Permission::View]).await;
    let a_all = t
        .token(
            "alpha-all",
            &[&a],
            &[
                Permission::Backup,
                Permission::Restore,
                Permission::Download,
                Permission::Delete,
            ],
        )
        .await;
    let b_view = t.token("beta-view", &[&b], &[Permission::View]).await;
    let tokens = [
        ("none", None),
        ("bogus", Some("chom_not_a_real_token")),
        ("admin", Some(t.admin.as_str())),
        ("a_view", Some(a_view.as_str())),
        ("a_all", Some(a_all.as_str())),
        ("b_view", Some(b_view.as_str())),
    ];

    // (method, path, body, expected for: none, bogus, admin, a_view, a_all, b_view)
    let backup = json!({"type": "files", "retention_days": 3});
    let site_body = json!({"name": "gamma", "root": "/srv/gamma", "probe": false});
    let table: Vec<(&str, String, Option<Value>, [u16; 6])> = vec![
        (
            "GET",
            "/v1/health".into(),
            None,
            [200, 200, 200, 200, 200, 200],
        ),
        (
            "GET",
            "/v1/openapi.json".into(),
            None,
            [200, 200, 200, 200, 200, 200],
        ),
        (
            "GET",
            "/v1/sites".into(),
            None,
            [401, 401, 200, 200, 200, 200],
        ),
        (
            "GET",
            "/v1/sites/alpha".into(),
            None,
            [401, 401, 200, 200, 200, 404],
        ),
        (
            "GET",
            "/v1/sites/alpha/backups".into(),
            None,
            [401, 401, 200, 200, 200, 404],
        ),
        (
            "GET",
            format!("/v1/backups/{}", ids[0]),
            None,
            [401, 401, 200, 200, 200, 404],
        ),
        (
            "GET",
            "/v1/sites/alpha/stats".into(),
            None,
            [401, 401, 200, 200, 200, 404],
        ),
        (
            "GET",
            "/v1/sites/alpha/schedules".into(),
            None,
            [401, 401, 200, 200, 200, 404],
        ),
        (
            "GET",
            format!("/v1/jobs/{}", job.id),
            None,
            [401, 401, 200, 200, 200, 404],
        ),
        (
            "GET",
            "/v1/jobs".into(),
            None,
            [401, 401, 200, 200, 200, 200],
        ),
        (
            "GET",
            "/v1/events".into(),
            None,
            [401, 401, 200, 200, 200, 200],
        ),
        (
            "GET",
            "/v1/audit".into(),
            None,
            [401, 401, 200, 200, 200, 200],
        ),
        (
            "GET",
            format!("/v1/backups/{}/export", ids[0]),
            None,
            [401, 401, 200, 403, 200, 404],
        ),
        (
            "POST",
            "/v1/sites/alpha/backups".into(),
            Some(backup.clone()),
            [401, 401, 202, 403, 202, 404],
        ),
        (
            "POST",
            format!("/v1/backups/{}/verify", ids[0]),
            None,
            [401, 401, 202, 202, 202, 404],
        ),
        (
            "POST",
            format!("/v1/backups/{}/restore", ids[0]),
            Some(json!({})),
            [401, 401, 202, 403, 202, 404],
        ),
        (
            "POST",
            "/v1/sites/alpha/retention".into(),
            Some(json!({"policy": "default", "dry_run": true})),
            [401, 401, 200, 403, 200, 404],
        ),
        (
            "PUT",
            "/v1/sites/alpha/schedules".into(),
            Some(json!({"frequency": "daily", "type": "files"})),
            [401, 401, 200, 403, 200, 404],
        ),
        (
            "DELETE",
            format!("/v1/jobs/{}", job.id),
            None,
            [401, 401, 200, 403, 200, 404],
        ),
        (
            "GET",
            "/metrics".into(),
            None,
            [401, 401, 200, 403, 403, 403],
        ),
        (
            "GET",
            "/v1/webhooks".into(),
            None,
            [401, 401, 200, 403, 403, 403],
        ),
        (
            "POST",
            "/v1/sites".into(),
            Some(site_body.clone()),
            [401, 401, 201, 403, 403, 403],
        ),
        (
            "PUT",
            "/v1/sites/alpha".into(),
            Some(json!({"root": a.root.display().to_string(), "probe": false})),
            [401, 401, 200, 403, 403, 403],
        ),
        (
            "DELETE",
            "/v1/sites/alpha/schedules".into(),
            None,
            [401, 401, 204, 403, 404, 404],
        ),
    ];
    for (method, path, body, expected) in &table {
        for ((name, token), want) in tokens.iter().zip(expected) {
            let (status, reply) = t.call(method, path, *token, body.clone()).await;
            assert_eq!(status, *want, "{method} {path} as {name}: {reply}");
            if status == 401 || status == 403 || status == 404 {
                assert!(
                    reply["code"].is_string(),
                    "problem details for {method} {path} as {name}: {reply}"
                );
            }
        }
        // Schedules removed by the admin are set again for the next tokens.
        if path.ends_with("/schedules") && *method == "DELETE" {
            t.call(
                "PUT",
                "/v1/sites/alpha/schedules",
                Some(&t.admin),
                Some(json!({"frequency": "daily", "type": "files"})),
            )
            .await;
        }
    }
    // Deleting a backup: a_view and b_view may not, a_all may.
    let del = |i: usize| format!("/v1/backups/{}", ids[i]);
    assert_eq!(t.call("DELETE", &del(1), None, None).await.0, 401);
    assert_eq!(t.call("DELETE", &del(1), Some(&a_view), None).await.0, 403);
    assert_eq!(t.call("DELETE", &del(1), Some(&b_view), None).await.0, 404);
    assert_eq!(t.call("DELETE", &del(1), Some(&a_all), None).await.0, 204);
    assert_eq!(t.call("DELETE", &del(2), Some(&t.admin), None).await.0, 204);
    // A scoped token lists only its sites and their jobs and events.
    let (_, sites) = t.call("GET", "/v1/sites", Some(&b_view), None).await;
    assert_eq!(
        sites
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec!["beta"]
    );
    let (_, jobs) = t.call("GET", "/v1/jobs", Some(&b_view), None).await;
    assert!(jobs.as_array().unwrap().is_empty());
    let (_, events) = t.call("GET", "/v1/events", Some(&b_view), None).await;
    assert!(events.as_array().unwrap().is_empty());
    // Changes made through the API are audited under the token's name.
    let (_, audit) = t
        .call("GET", "/v1/audit?site=alpha", Some(&t.admin), None)
        .await;
    let actors: BTreeSet<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert!(actors.contains("token:alpha-all"), "{actors:?}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_export_restore_and_verify_through_jobs() {
    let t = TestService::start().await;
    let site = t.site("shop").await;
    let admin = Some(t.admin.as_str());

    // Bad input names the field, as problem details.
    for (body, field) in [
        (json!({"type": "incremental"}), "type"),
        (
            json!({"type": "files", "retention_days": 0}),
            "retention_days",
        ),
        (json!({"retention_days": "many"}), "retention_days"),
        (json!({"colour": "blue"}), "colour"),
    ] {
        let resp = t
            .client
            .post(format!("{}/v1/sites/shop/backups", t.base))
            .bearer_auth(&t.admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{body}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let problem: Value = resp.json().await.unwrap();
        assert_eq!(problem["field"], field, "{problem}");
        assert_eq!(problem["code"], "invalid_input");
    }
    let (status, problem) = t
        .call("POST", "/v1/sites", admin, Some(json!({"name": "x"})))
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (400, Some("root")),
        "{problem}"
    );

    let (status, created) = t
        .call(
            "POST",
            "/v1/sites/shop/backups",
            admin,
            Some(json!({"type": "files", "retention_days": 14})),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    let backup_id = created["backup"]["id"].as_str().unwrap().to_string();
    assert_eq!(created["backup"]["status"], "pending");
    let job = t.wait_job(created["job"]["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["result"]["id"], backup_id.as_str());
    // The job's progress (published while it runs, recorded at the end)
    // counts the site's one file.
    let page = "<h1>shop</h1>".len();
    assert_eq!(
        job["progress"],
        json!({"bytes_done": page, "files_done": 1, "bytes_total": page, "files_total": 1}),
        "{job}"
    );
    let (_, backup) = t
        .call("GET", &format!("/v1/backups/{backup_id}"), admin, None)
        .await;
    assert_eq!(backup["status"], "completed");

    // Export streams a tar.gz of the backup.
    let resp = t
        .client
        .get(format!("{}/v1/backups/{backup_id}/export", t.base))
        .bearer_auth(&t.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let bytes = resp.bytes().await.unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    let mut found = None;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().ends_with("index.html") {
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            found = Some(text);
        }
    }
    assert_eq!(found.as_deref(), Some("<h1>shop</h1>"));

    // Restore through a job, after damaging the site.
    std::fs::write(site.root.join("index.html"), "defaced").unwrap();
    let (status, queued) = t
        .call(
            "POST",
            &format!("/v1/backups/{backup_id}/restore"),
            admin,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 202);
    let job = t.wait_job(queued["job"]["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(
        std::fs::read_to_string(site.root.join("index.html")).unwrap(),
        "<h1>shop</h1>"
    );

    // Verify: the job's result is the integrity report.
    let (_, queued) = t
        .call(
            "POST",
            &format!("/v1/backups/{backup_id}/verify?deep=true"),
            admin,
            None,
        )
        .await;
    let job = t.wait_job(queued["job"]["id"].as_str().unwrap()).await;
    assert_eq!(job["result"]["valid"], true, "{job}");
    assert_eq!(job["result"]["data_intact"], true);

    // Events and statistics.
    let (_, events) = t.call("GET", "/v1/events?site=shop", admin, None).await;
    let kinds: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"BackupCreated") && kinds.contains(&"BackupRestored"),
        "{kinds:?}"
    );
    let (_, stats) = t.call("GET", "/v1/sites/shop/stats", admin, None).await;
    assert!(stats["completed_backups"].as_u64().unwrap() >= 2, "{stats}");
    let (status, plan) = t
        .call(
            "POST",
            "/v1/sites/shop/retention",
            admin,
            Some(json!({"max_backups": 1, "max_age_days": 30, "dry_run": true})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        plan["deleted"].as_array().unwrap().len() + plan["kept"].as_array().unwrap().len(),
        stats["total_backups"].as_u64().unwrap() as usize
    );
    let (status, missing) = t
        .call("GET", "/v1/backups/01AAAAAAAAAAAAAAAAAAAAAAAA", admin, None)
        .await;
    assert_eq!((status, missing["code"].as_str()), (404, Some("not_found")));
    t.stop().await;
}
