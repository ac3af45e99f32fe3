//! A fresh PostgreSQL database per test (127.0.0.1:5432, trust auth, user
//! postgres), shared by the test binaries that run on both catalogs.

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh PostgreSQL database for one test, dropped by `drop_it`.
pub struct PgDatabase {
    name: String,
}

impl PgDatabase {
    /// Create one; `None` (with a notice) when PostgreSQL is not reachable,
    /// except on CI, where it is required.
    pub async fn create(purpose: &str) -> Option<Self> {
        sqlx::any::install_default_drivers();
        let admin = match sqlx::AnyPool::connect(PG_ADMIN).await {
            Ok(pool) => pool,
            Err(e) => {
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("PostgreSQL is required on CI at {PG_ADMIN}: {e}");
                }
                eprintln!(
                    "notice: PostgreSQL not reachable at {PG_ADMIN} ({e}); skipping the PostgreSQL {purpose} tests"
                );
                return None;
            }
        };
        let name = format!(
            "chom_{purpose}_test_{}",
            chom_backup::domain::random_u128() % 1_000_000_000
        );
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        Some(PgDatabase { name })
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    pub async fn drop_it(self) {
        let admin = sqlx::AnyPool::connect(PG_ADMIN).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&admin)
        .await
        .unwrap();
        admin.close().await;
    }
}
