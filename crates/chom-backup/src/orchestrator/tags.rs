//! How a backup is labelled in its snapshot: enough to rebuild the catalog
//! from the repository alone.

use std::collections::BTreeMap;

use chom_repo::Snapshot;

use crate::domain::{Backup, BackupId, Site};

pub(super) const SITE: &str = "chom.site";
pub(super) const SITE_NAME: &str = "chom.site.name";
pub(super) const SITE_DEF: &str = "chom.site.def";
pub(super) const BACKUP: &str = "chom.backup";
pub(super) const TYPE: &str = "chom.type";
pub(super) const TRIGGER: &str = "chom.trigger";
pub(super) const RETENTION: &str = "chom.retention_days";
pub(super) const COMPRESSION: &str = "chom.compression";
pub(super) const CREATED: &str = "chom.created";

/// The tags of a backup's snapshot.
pub(super) fn for_backup(site: &Site, backup: &Backup) -> BTreeMap<String, String> {
    let c = &backup.configuration;
    let mut tags = BTreeMap::new();
    tags.insert(SITE.into(), site.id.to_string());
    tags.insert(SITE_NAME.into(), site.name.clone());
    tags.insert(
        SITE_DEF.into(),
        serde_json::to_string(site).expect("sites serialize"),
    );
    tags.insert(BACKUP.into(), backup.id.to_string());
    tags.insert(TYPE.into(), c.backup_type().to_string());
    tags.insert(TRIGGER.into(), backup.trigger.as_str().into());
    tags.insert(RETENTION.into(), c.retention_days().to_string());
    tags.insert(COMPRESSION.into(), c.compression_level().to_string());
    tags.insert(CREATED.into(), backup.created_at.to_string());
    tags
}

/// The backup id a snapshot belongs to, if it is a site backup.
pub(super) fn backup_id(snapshot: &Snapshot) -> Option<BackupId> {
    snapshot.tags.get(BACKUP).and_then(|t| t.parse().ok())
}
