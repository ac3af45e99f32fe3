//! Sites and schedules.

use std::path::PathBuf;

use crate::catalog::{AuditOutcome, Changes};
use crate::domain::{
    BackupConfiguration, DatabaseSpec, Frequency, Schedule, Site, SiteId, validate_site_name,
};
use crate::error::{Error, Result};

use super::BackupOrchestrator;

/// What is needed to add a site.
#[derive(Debug, Clone)]
pub struct NewSite {
    /// Unique name.
    pub name: String,
    /// Document root (absolute).
    pub root: PathBuf,
    /// Exclude patterns.
    pub excludes: Vec<String>,
    /// Database, if any.
    pub database: Option<DatabaseSpec>,
    /// IANA time zone (default UTC).
    pub timezone: Option<String>,
}

impl BackupOrchestrator {
    /// Add a site. With `probe`, its database is contacted first so a wrong
    /// host, name or password is found now rather than at the first backup.
    pub async fn add_site(&self, new: NewSite, probe: bool) -> Result<Site> {
        validate_site_name(&new.name)?;
        if self.catalog.find_site(&new.name).await?.is_some() {
            return Err(Error::SiteExists(new.name));
        }
        let site = Site {
            id: SiteId::new(self.now()),
            name: new.name,
            root: new.root,
            excludes: new.excludes,
            database: new.database,
            timezone: new.timezone.unwrap_or_else(|| "UTC".into()),
            created_at: self.now(),
        };
        self.check_site(&site, probe).await?;
        self.catalog.insert_site(&site).await?;
        let detail = Some(format!("root {}", site.root.display()));
        self.catalog
            .audit(&self.audit("site.add", Some(&site), None, AuditOutcome::Ok, detail))
            .await?;
        Ok(site)
    }

    /// Replace a site's settings (root, excludes, database, time zone).
    pub async fn update_site(&self, site: Site, probe: bool) -> Result<Site> {
        self.check_site(&site, probe).await?;
        self.catalog.update_site(&site).await?;
        let detail = Some(format!("root {}", site.root.display()));
        self.catalog
            .audit(&self.audit("site.update", Some(&site), None, AuditOutcome::Ok, detail))
            .await?;
        Ok(site)
    }

    /// Validate a site's settings; with `probe`, contact its database.
    async fn check_site(&self, site: &Site, probe: bool) -> Result<()> {
        if !site.root.is_absolute() {
            return Err(crate::domain::DomainError::new(
                "root",
                format!(
                    "the document root {} must be an absolute path",
                    site.root.display()
                ),
            )
            .into());
        }
        chom_repo::Excludes::new(&site.excludes)
            .map_err(|e| crate::domain::DomainError::new("exclude", e.to_string()))?;
        jiff::tz::TimeZone::get(&site.timezone).map_err(|_| {
            crate::domain::DomainError::new(
                "timezone",
                format!(
                    "unknown time zone {:?} (use an IANA name like Europe/Paris)",
                    site.timezone
                ),
            )
        })?;
        if probe && let Some(db) = &site.database {
            let (db, scratch, name) = (db.clone(), self.scratch.clone(), site.name.clone());
            tokio::task::spawn_blocking(move || crate::dump::probe(&db, &scratch))
                .await
                .expect("probe task")
                .map_err(|source| Error::Database { site: name, source })?;
        }
        Ok(())
    }

    /// All sites.
    pub async fn sites(&self) -> Result<Vec<Site>> {
        Ok(self.catalog.list_sites().await?)
    }

    /// Remove a site from the catalog. Refused while it has backups (delete
    /// them or apply retention first); its schedule goes with it.
    pub async fn remove_site(&self, name_or_id: &str) -> Result<Site> {
        let site = self.site(name_or_id).await?;
        let backups = self.catalog.list_backups(Some(site.id)).await?;
        if !backups.is_empty() {
            return Err(Error::Conflict(format!(
                "site {} still has {} backups: delete them first (`chom-backup backup delete ID`)",
                site.name,
                backups.len()
            )));
        }
        self.catalog.delete_site(site.id).await?;
        self.catalog
            .audit(&self.audit("site.remove", Some(&site), None, AuditOutcome::Ok, None))
            .await?;
        Ok(site)
    }

    /// Store a schedule for the site (the service runs it).
    pub async fn schedule_automatic_backup(
        &self,
        site: &str,
        frequency: Frequency,
        configuration: BackupConfiguration,
    ) -> Result<Schedule> {
        let site = self.site(site).await?;
        self.check_request(&site, &configuration)?;
        let schedule = Schedule {
            site_id: site.id,
            frequency,
            configuration,
            created_at: self.now(),
        };
        self.catalog.set_schedule(&schedule).await?;
        let detail = Some(format!(
            "{} {} backups kept {} days",
            schedule.frequency,
            configuration.backup_type(),
            configuration.retention_days()
        ));
        self.commit(Changes {
            audit: Some(self.audit("schedule.set", Some(&site), None, AuditOutcome::Ok, detail)),
            ..Changes::default()
        })
        .await?;
        Ok(schedule)
    }

    /// Remove the site's schedule.
    pub async fn remove_schedule(&self, site: &str) -> Result<bool> {
        let site = self.site(site).await?;
        let removed = self.catalog.remove_schedule(site.id).await?;
        self.catalog
            .audit(&self.audit("schedule.remove", Some(&site), None, AuditOutcome::Ok, None))
            .await?;
        Ok(removed)
    }
}
