//! Sites in the catalog.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Catalog, CatalogError, CatalogResult, from_micros, parse, to_micros};
use crate::domain::{DatabaseSpec, DbLocation, PasswordRef, Site, SiteId};

/// The table's columns, as a literal for `concat!`.
macro_rules! site_columns {
    () => {
        "id, name, root, excludes, db_engine, db_location, db_name, db_user, db_password_ref, timezone, created_at"
    };
}

fn site_from_row(row: &AnyRow) -> CatalogResult<Site> {
    let excludes: String = row.try_get("excludes")?;
    let engine: Option<String> = row.try_get("db_engine")?;
    let database = match engine {
        None => None,
        Some(engine) => {
            let location: String = row.try_get("db_location")?;
            let location: DbLocation = serde_json::from_str(&location)
                .map_err(|e| CatalogError::Corrupt(format!("db_location: {e}")))?;
            let password: Option<String> = row.try_get("db_password_ref")?;
            Some(DatabaseSpec {
                engine: engine
                    .parse()
                    .map_err(|e| CatalogError::Corrupt(format!("db_engine: {e}")))?,
                location,
                name: row.try_get("db_name")?,
                user: row.try_get("db_user")?,
                password: password
                    .map(|p| p.parse::<PasswordRef>())
                    .transpose()
                    .map_err(|e| CatalogError::Corrupt(format!("db_password_ref: {e}")))?,
            })
        }
    };
    Ok(Site {
        id: parse(row, "id")?,
        name: row.try_get("name")?,
        root: row.try_get::<String, _>("root")?.into(),
        excludes: serde_json::from_str(&excludes)
            .map_err(|e| CatalogError::Corrupt(format!("excludes: {e}")))?,
        database,
        timezone: row.try_get("timezone")?,
        created_at: from_micros(row.try_get("created_at")?)?,
    })
}

impl Catalog {
    /// Add a site. Fails on a duplicate name (a unique violation).
    pub async fn insert_site(&self, site: &Site) -> CatalogResult<()> {
        let db = site.database.as_ref();
        sqlx::query(concat!(
            "INSERT INTO sites (",
            site_columns!(),
            ", updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(site.id.to_string())
        .bind(&site.name)
        .bind(site.root.to_string_lossy().into_owned())
        .bind(serde_json::to_string(&site.excludes).expect("excludes serialize"))
        .bind(db.map(|d| d.engine.as_str().to_string()))
        .bind(db.map(|d| serde_json::to_string(&d.location).expect("location serializes")))
        .bind(db.map(|d| d.name.clone()))
        .bind(db.and_then(|d| d.user.clone()))
        .bind(db.and_then(|d| d.password.as_ref().map(|p| p.to_string())))
        .bind(&site.timezone)
        .bind(to_micros(site.created_at))
        .bind(to_micros(site.created_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Replace a site's settings (its name and id stay).
    pub async fn update_site(&self, site: &Site) -> CatalogResult<()> {
        let db = site.database.as_ref();
        sqlx::query(
            "UPDATE sites SET root = $1, excludes = $2, db_engine = $3, db_location = $4, db_name = $5, db_user = $6, \
             db_password_ref = $7, timezone = $8, updated_at = $9 WHERE id = $10",
        )
        .bind(site.root.to_string_lossy().into_owned())
        .bind(serde_json::to_string(&site.excludes).expect("excludes serialize"))
        .bind(db.map(|d| d.engine.as_str().to_string()))
        .bind(db.map(|d| serde_json::to_string(&d.location).expect("location serializes")))
        .bind(db.map(|d| d.name.clone()))
        .bind(db.and_then(|d| d.user.clone()))
        .bind(db.and_then(|d| d.password.as_ref().map(|p| p.to_string())))
        .bind(&site.timezone)
        .bind(to_micros(jiff::Timestamp::now()))
        .bind(site.id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Find a site by name or id.
    pub async fn find_site(&self, name_or_id: &str) -> CatalogResult<Option<Site>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            site_columns!(),
            " FROM sites WHERE name = $1 OR id = $1"
        ))
        .bind(name_or_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(site_from_row).transpose()
    }

    /// A site by id.
    pub async fn site(&self, id: SiteId) -> CatalogResult<Option<Site>> {
        self.find_site(&id.to_string()).await
    }

    /// All sites by name.
    pub async fn list_sites(&self) -> CatalogResult<Vec<Site>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            site_columns!(),
            " FROM sites ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(site_from_row).collect()
    }

    /// Remove a site (its backups, schedule and lock must be gone first).
    pub async fn delete_site(&self, id: SiteId) -> CatalogResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM schedules WHERE site_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sites WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
