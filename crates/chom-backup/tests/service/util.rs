//! An in-process service on an ephemeral loopback port.

use std::sync::Arc;
use std::time::Duration;

use chom_backup::domain::{Clock, Permission, SiteScope, SystemClock};
use chom_backup::service::{Service, ServiceConfig};
use chom_backup::{BackupOrchestrator, Catalog, NewSite};
use chom_repo::{InitOptions, KdfParams, Repository, Storage};
use serde_json::Value;

use crate::pg::PgDatabase;

pub struct TestService {
    pub dir: tempfile::TempDir,
    /// The PostgreSQL catalog's database, dropped at `stop`.
    postgres: Option<PgDatabase>,
    pub service: Arc<Service>,
    pub base: String,
    pub admin: String,
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub async fn orchestrator(
    dir: &std::path::Path,
    catalog_url: Option<&str>,
    clock: Arc<dyn Clock>,
) -> BackupOrchestrator {
    let sqlite = format!("sqlite:{}", dir.join("catalog.db").display());
    let catalog = Catalog::open(catalog_url.unwrap_or(&sqlite)).await.unwrap();
    let mut init = InitOptions::default();
    init.kdf = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let storage = Storage::open(dir.join("repo").to_str().unwrap(), true).unwrap();
    let repo = Repository::init(storage, Some("pw"), init).await.unwrap();
    BackupOrchestrator::new(catalog, repo, dir.join("tmp"), clock, "test")
}

impl TestService {
    pub async fn start() -> Self {
        Self::start_with(Arc::new(SystemClock), |_| {}).await
    }

    pub async fn start_with(clock: Arc<dyn Clock>, tweak: impl FnOnce(&mut ServiceConfig)) -> Self {
        Self::start_on(None, clock, tweak).await
    }

    /// The service on a fresh PostgreSQL catalog; `None` when PostgreSQL is
    /// not reachable (outside CI).
    pub async fn start_on_postgres(
        clock: Arc<dyn Clock>,
        tweak: impl FnOnce(&mut ServiceConfig),
    ) -> Option<Self> {
        let db = PgDatabase::create("service").await?;
        Some(Self::start_on(Some(db), clock, tweak).await)
    }

    async fn start_on(
        postgres: Option<PgDatabase>,
        clock: Arc<dyn Clock>,
        tweak: impl FnOnce(&mut ServiceConfig),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = postgres.as_ref().map(PgDatabase::url);
        let orchestrator = orchestrator(dir.path(), url.as_deref(), clock).await;
        let (_, admin) = orchestrator
            .create_token("admin", true, vec![])
            .await
            .unwrap();
        let mut config = ServiceConfig {
            workers: 2,
            lease: Duration::from_secs(5),
            poll: Duration::from_millis(100),
            shutdown_timeout: Duration::from_secs(10),
            ..ServiceConfig::default()
        };
        config.scheduler.tick = Duration::from_secs(3600);
        config.scheduler.prune = None;
        config.scheduler.verify = None;
        tweak(&mut config);
        let service = Service::new(orchestrator, config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let runner = service.clone();
        let task = tokio::spawn(async move {
            runner
                .run(listener, async move {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
        TestService {
            dir,
            postgres,
            service,
            base,
            admin,
            client: reqwest::Client::new(),
            stop: Some(stop_tx),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(db) = self.postgres.take() {
            self.service.orchestrator().catalog().close().await;
            db.drop_it().await;
        }
    }

    /// Add a site with a small document root.
    pub async fn site(&self, name: &str) -> chom_backup::domain::Site {
        let root = self.dir.path().join("sites").join(name);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("index.html"), format!("<h1>{name}</h1>")).unwrap();
        self.service
            .orchestrator()
            .add_site(
                NewSite {
                    name: name.into(),
                    root,
                    excludes: vec![],
                    database: None,
                    timezone: None,
                },
                false,
            )
            .await
            .unwrap()
    }

    /// A token scoped to sites with permissions.
    pub async fn token(
        &self,
        name: &str,
        sites: &[&chom_backup::domain::Site],
        permissions: &[Permission],
    ) -> String {
        let scopes = sites
            .iter()
            .map(|s| SiteScope {
                site_id: s.id,
                permissions: permissions.to_vec(),
            })
            .collect();
        self.service
            .orchestrator()
            .create_token(name, false, scopes)
            .await
            .unwrap()
            .1
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Wait for a job to end; returns it.
    pub async fn wait_job(&self, id: &str) -> Value {
        for _ in 0..600 {
            let (status, job) = self
                .call("GET", &format!("/v1/jobs/{id}"), Some(&self.admin), None)
                .await;
            assert_eq!(status, 200, "{job}");
            if ["completed", "failed", "cancelled"].contains(&job["status"].as_str().unwrap()) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {id} did not finish");
    }
}
