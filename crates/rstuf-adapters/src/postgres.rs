//! The artifact index in PostgreSQL, on exactly the schema of the reference worker's alembic
//! revision `1effe827d0cd` (tables `rstuf_target_roles` and `rstuf_target_files`, enum
//! `targetaction`, and `alembic_version`), so the Python worker, the RSTUF CLI's
//! `import-artifacts` and this worker share one database.
//!
//! [`PgIndex::ensure_schema`] creates that schema on an empty database, statement for statement
//! as alembic does (so a later `alembic upgrade head` is a no-op), accepts a database already at
//! that revision, and refuses anything else. Timestamps are stored as naive UTC.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use rstuf_engine::ports::{
    ArtifactAction, ArtifactIndex, ArtifactRow, NewArtifact, PortError, PortErrorKind, RoleRecord,
    RowChange,
};
use rstuf_metadata::pyjson::to_python_json_ordered;
use rstuf_metadata::schema::TargetFile;
use serde_json::Value;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Executor, Row};

use crate::error::Context;

/// The only alembic revision the worker knows.
pub const ALEMBIC_REVISION: &str = "1effe827d0cd";

/// The DDL of revision `1effe827d0cd`, as `alembic upgrade head --sql` prints it.
const SCHEMA: &[&str] = &[
    "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))",
    "CREATE TABLE rstuf_target_roles (id SERIAL NOT NULL, rolename VARCHAR NOT NULL, expires TIMESTAMP WITHOUT TIME ZONE NOT NULL, version INTEGER NOT NULL, active BOOLEAN NOT NULL, last_update TIMESTAMP WITHOUT TIME ZONE, PRIMARY KEY (id))",
    "CREATE INDEX ix_rstuf_target_roles_id ON rstuf_target_roles (id)",
    "CREATE UNIQUE INDEX ix_rstuf_target_roles_rolename ON rstuf_target_roles (rolename)",
    "CREATE TYPE targetaction AS ENUM ('ADD', 'REMOVE')",
    "CREATE TABLE rstuf_target_files (id SERIAL NOT NULL, path VARCHAR NOT NULL, info JSON NOT NULL, published BOOLEAN NOT NULL, action targetaction NOT NULL, last_update TIMESTAMP WITHOUT TIME ZONE, targets_role INTEGER, PRIMARY KEY (id), FOREIGN KEY(targets_role) REFERENCES rstuf_target_roles (id))",
    "CREATE INDEX ix_rstuf_target_files_id ON rstuf_target_files (id)",
    "CREATE UNIQUE INDEX ix_rstuf_target_files_path ON rstuf_target_files (path)",
    "INSERT INTO alembic_version (version_num) VALUES ('1effe827d0cd')",
];

/// Indexes this worker adds for its own queries, so that a publish costs what the changed roles
/// hold and not what the whole table holds. Alembic does not know them and does not mind them:
/// `alembic upgrade head` stays a no-op, and the reference worker's queries are unaffected.
const WORKER_INDEXES: &[&str] = &[
    "CREATE INDEX IF NOT EXISTS rstuf_worker_files_role ON rstuf_target_files (targets_role)",
    "CREATE INDEX IF NOT EXISTS rstuf_worker_files_unpublished ON rstuf_target_files (targets_role) WHERE NOT published",
];

/// Serialises schema creation between workers starting at once.
const SCHEMA_LOCK: i64 = 0x5253_5455_4600_0001;

/// What `ensure_schema` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaState {
    /// The database was empty; the schema was created.
    Created,
    /// The database was already at revision `1effe827d0cd`.
    Current,
}

/// Roles and artifacts in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgIndex {
    pool: PgPool,
}

fn naive(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}

impl PgIndex {
    /// A new transaction on the pool.
    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, PortError> {
        self.pool.begin().await.ctx("starting a transaction")
    }

    /// The rows of `roles`; only the unpublished ones (through the partial index) when asked.
    async fn rows_of(
        &self,
        roles: &[String],
        unpublished_only: bool,
    ) -> Result<Vec<ArtifactRow>, PortError> {
        // Two statements, so that each has its own plan: the unpublished rows come from the
        // partial index without touching the published ones.
        let sql = if unpublished_only {
            "SELECT f.path, f.info::text AS info, f.action::text AS action, f.published, r.rolename \
             FROM rstuf_target_roles r JOIN rstuf_target_files f ON f.targets_role = r.id \
             WHERE r.rolename = ANY($1) AND NOT f.published"
        } else {
            "SELECT f.path, f.info::text AS info, f.action::text AS action, f.published, r.rolename \
             FROM rstuf_target_roles r JOIN rstuf_target_files f ON f.targets_role = r.id \
             WHERE r.rolename = ANY($1)"
        };
        let rows = sqlx::query(sql)
            .bind(roles)
            .fetch_all(&self.pool)
            .await
            .ctx("reading artifacts")?;
        Ok(rows
            .iter()
            .map(|r| ArtifactRow {
                path: r.get("path"),
                info: r.get("info"),
                action: if r.get::<String, _>("action") == "REMOVE" {
                    ArtifactAction::Remove
                } else {
                    ArtifactAction::Add
                },
                published: r.get("published"),
                role: r.get("rolename"),
            })
            .collect())
    }

    /// Connects to `url` (`postgresql://user:password@host/db`).
    pub async fn connect(url: &str) -> Result<Self, PortError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect(url)
            .await
            .ctx("connecting to PostgreSQL")?;
        Ok(PgIndex { pool })
    }

    /// [`PgIndex::connect`], then [`PgIndex::ensure_schema`]: what a worker does at start, as
    /// the reference worker's entrypoint runs `alembic upgrade head`.
    pub async fn open(url: &str) -> Result<Self, PortError> {
        let index = PgIndex::connect(url).await?;
        index.ensure_schema().await?;
        Ok(index)
    }

    /// Creates the schema on an empty database, or checks an existing one is at revision
    /// `1effe827d0cd`.
    pub async fn ensure_schema(&self) -> Result<SchemaState, PortError> {
        let mut tx = self.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SCHEMA_LOCK)
            .execute(&mut *tx)
            .await
            .ctx("locking the schema")?;
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() \
             AND table_name IN ('alembic_version', 'rstuf_target_roles', 'rstuf_target_files')",
        )
        .fetch_all(&mut *tx)
        .await
        .ctx("inspecting the schema")?;
        if tables.is_empty() {
            for statement in SCHEMA.iter().chain(WORKER_INDEXES) {
                tx.execute(*statement).await.ctx("creating the schema")?;
            }
            tx.commit().await.ctx("creating the schema")?;
            return Ok(SchemaState::Created);
        }
        if !tables.iter().any(|t| t == "alembic_version") {
            return Err(PortError::new(
                PortErrorKind::Other,
                "the database has RSTUF tables but no alembic_version; refusing to guess its schema",
            ));
        }
        let revision: Option<String> =
            sqlx::query_scalar("SELECT version_num FROM alembic_version")
                .fetch_optional(&mut *tx)
                .await
                .ctx("reading alembic_version")?;
        match revision.as_deref() {
            Some(ALEMBIC_REVISION) if tables.len() == 3 => {
                for statement in WORKER_INDEXES {
                    tx.execute(*statement)
                        .await
                        .ctx("adding the worker's indexes")?;
                }
                tx.commit().await.ctx("adding the worker's indexes")?;
                Ok(SchemaState::Current)
            }
            other => Err(PortError::new(
                PortErrorKind::Other,
                format!(
                    "the database is at alembic revision {other:?}; this worker knows {ALEMBIC_REVISION}"
                ),
            )),
        }
    }

    /// The pool, for adapters and tests that need raw access.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl ArtifactIndex for PgIndex {
    async fn create_roles(&self, roles: &[RoleRecord]) -> Result<(), PortError> {
        let now = naive(Utc::now());
        let mut tx = self.begin().await?;
        // One statement for all rows: bootstrap inserts up to 16,384 of them.
        let names: Vec<&str> = roles.iter().map(|r| r.name.as_str()).collect();
        let expires: Vec<NaiveDateTime> = roles.iter().map(|r| naive(r.expires)).collect();
        let versions: Vec<i32> = roles
            .iter()
            .map(|r| {
                i32::try_from(r.version)
                    .map_err(|_| PortError::new(PortErrorKind::Other, "version out of range"))
            })
            .collect::<Result<_, _>>()?;
        let active: Vec<bool> = roles.iter().map(|r| r.active).collect();
        sqlx::query(
            "INSERT INTO rstuf_target_roles (rolename, expires, version, active, last_update) \
             SELECT name, expires, version, active, $5 FROM UNNEST($1::varchar[], $2::timestamp[], $3::int[], $4::bool[]) \
             AS t(name, expires, version, active)",
        )
        .bind(&names)
        .bind(&expires)
        .bind(&versions)
        .bind(&active)
        .bind(now)
        .execute(&mut *tx)
        .await
        .ctx("creating roles")?;
        tx.commit().await.ctx("creating roles")
    }

    async fn clear(&self) -> Result<(), PortError> {
        let mut tx = self.begin().await?;
        // Artifacts first: their rows reference the roles.
        for delete in [
            "DELETE FROM rstuf_target_files",
            "DELETE FROM rstuf_target_roles",
        ] {
            sqlx::query(delete)
                .execute(&mut *tx)
                .await
                .ctx("clearing the index")?;
        }
        tx.commit().await.ctx("clearing the index")
    }

    async fn role(&self, name: &str) -> Result<Option<RoleRecord>, PortError> {
        let row = sqlx::query(
            "SELECT rolename, version, expires, active FROM rstuf_target_roles WHERE rolename = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .ctx("reading a role")?;
        Ok(row.as_ref().map(role_record))
    }

    async fn active_roles(
        &self,
        expiring_before: Option<DateTime<Utc>>,
    ) -> Result<Vec<RoleRecord>, PortError> {
        let rows = sqlx::query(
            "SELECT rolename, version, expires, active FROM rstuf_target_roles \
             WHERE active AND ($1::timestamp IS NULL OR expires < $1) ORDER BY rolename",
        )
        .bind(expiring_before.map(naive))
        .fetch_all(&self.pool)
        .await
        .ctx("reading roles")?;
        Ok(rows.iter().map(role_record).collect())
    }

    async fn add_artifacts(&self, artifacts: &[NewArtifact]) -> Result<(), PortError> {
        let mut tx = self.begin().await?;
        add_rows(&mut tx, artifacts, naive(Utc::now())).await?;
        tx.commit().await.ctx("adding artifacts")
    }

    async fn remove_artifacts(&self, paths: &[String]) -> Result<Vec<String>, PortError> {
        let mut tx = self.begin().await?;
        let changed = remove_rows(&mut tx, paths, naive(Utc::now())).await?;
        tx.commit().await.ctx("removing artifacts")?;
        Ok(changed)
    }

    async fn apply_changes(&self, changes: &[RowChange]) -> Result<Vec<Vec<String>>, PortError> {
        let now = naive(Utc::now());
        let mut tx = self.begin().await?;
        let mut changed = Vec::with_capacity(changes.len());
        for change in changes {
            changed.push(match change {
                RowChange::Add(rows) => {
                    add_rows(&mut tx, rows, now).await?;
                    Vec::new()
                }
                RowChange::Remove(paths) => remove_rows(&mut tx, paths, now).await?,
            });
        }
        tx.commit().await.ctx("writing artifact changes")?;
        Ok(changed)
    }

    async fn roles_with_unpublished(&self) -> Result<Vec<String>, PortError> {
        sqlx::query_scalar(
            "SELECT DISTINCT r.rolename::text FROM rstuf_target_roles r \
             JOIN rstuf_target_files f ON f.targets_role = r.id WHERE NOT f.published ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await
        .ctx("reading unpublished roles")
    }

    async fn artifacts_of(&self, roles: &[String]) -> Result<Vec<ArtifactRow>, PortError> {
        self.rows_of(roles, false).await
    }

    async fn unpublished_of(&self, roles: &[String]) -> Result<Vec<ArtifactRow>, PortError> {
        self.rows_of(roles, true).await
    }

    async fn commit_publication(
        &self,
        roles: &[RoleRecord],
        published: &[ArtifactRow],
    ) -> Result<(), PortError> {
        let now = naive(Utc::now());
        let mut tx = self.begin().await?;
        let names: Vec<&str> = roles.iter().map(|r| r.name.as_str()).collect();
        let versions: Vec<i32> = roles
            .iter()
            .map(|r| {
                i32::try_from(r.version)
                    .map_err(|_| PortError::new(PortErrorKind::Other, "version out of range"))
            })
            .collect::<Result<_, _>>()?;
        let expires: Vec<NaiveDateTime> = roles.iter().map(|r| naive(r.expires)).collect();
        let active: Vec<bool> = roles.iter().map(|r| r.active).collect();
        let updated = sqlx::query(
            "UPDATE rstuf_target_roles r SET version = t.v, expires = t.e, active = t.a, last_update = $4 \
             FROM UNNEST($1::varchar[], $2::int[], $3::timestamp[], $5::bool[]) AS t(n, v, e, a) \
             WHERE r.rolename = t.n",
        )
        .bind(&names)
        .bind(&versions)
        .bind(&expires)
        .bind(now)
        .bind(&active)
        .execute(&mut *tx)
        .await
        .ctx("recording role versions")?;
        if updated.rows_affected() != roles.len() as u64 {
            // Dropping the transaction rolls it back: nothing of this publication is kept.
            return Err(PortError::new(
                PortErrorKind::Other,
                format!(
                    "recording role versions: {} of {} roles have a row",
                    updated.rows_affected(),
                    roles.len()
                ),
            ));
        }
        let paths: Vec<&str> = published.iter().map(|r| r.path.as_str()).collect();
        let actions: Vec<&str> = published
            .iter()
            .map(|r| match r.action {
                ArtifactAction::Add => "ADD",
                ArtifactAction::Remove => "REMOVE",
            })
            .collect();
        let infos: Vec<&str> = published.iter().map(|r| r.info.as_str()).collect();
        sqlx::query(
            "UPDATE rstuf_target_files f SET published = true, last_update = $4 \
             FROM UNNEST($1::varchar[], $2::text[], $3::text[]) AS t(p, a, i) \
             WHERE f.path = t.p AND f.action::text = t.a AND f.info::text = t.i AND NOT f.published",
        )
        .bind(&paths)
        .bind(&actions)
        .bind(&infos)
        .bind(now)
        .execute(&mut *tx)
        .await
        .ctx("marking artifacts published")?;
        tx.commit().await.ctx("recording the publication")
    }
}

/// The text an artifact's info is stored as: what the API's model dumps and SQLAlchemy
/// writes (`json.dumps` of a dict with `length`, `hashes` and `custom` first, in that order,
/// then any other field), so the reference worker and the CLI read the same rows.
pub fn info_text(info: &TargetFile) -> Result<String, PortError> {
    let length = Value::from(info.length);
    let hashes = Value::Object(
        info.hashes
            .iter()
            .map(|(alg, digest)| (alg.clone(), Value::String(digest.clone())))
            .collect(),
    );
    let first = [("length", &length), ("hashes", &hashes)];
    let custom = info.unrecognized.get_key_value("custom");
    let rest = info
        .unrecognized
        .iter()
        .filter(|(k, _)| k.as_str() != "custom");
    let entries = first
        .into_iter()
        .chain(custom.into_iter().chain(rest).map(|(k, v)| (k.as_str(), v)));
    to_python_json_ordered(entries)
        .map_err(|e| PortError::new(PortErrorKind::Other, format!("encoding artifact info: {e}")))
}

/// Adds or re-adds `artifacts` in `tx` (one statement for all rows).
async fn add_rows(
    tx: &mut sqlx::PgConnection,
    artifacts: &[NewArtifact],
    now: NaiveDateTime,
) -> Result<(), PortError> {
    if artifacts.is_empty() {
        return Ok(());
    }
    let mut names: Vec<&str> = artifacts.iter().map(|a| a.role.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let ids: Vec<(i32, String)> = sqlx::query_as(
        "SELECT id, rolename FROM rstuf_target_roles WHERE active AND rolename = ANY($1)",
    )
    .bind(&names)
    .fetch_all(&mut *tx)
    .await
    .ctx("reading roles")?;
    let ids: std::collections::HashMap<String, i32> =
        ids.into_iter().map(|(id, name)| (name, id)).collect();
    let mut role_ids = Vec::with_capacity(artifacts.len());
    for a in artifacts {
        let id = ids.get(&a.role).ok_or_else(|| {
            PortError::new(
                PortErrorKind::Other,
                format!("role {} has no active row", a.role),
            )
        })?;
        role_ids.push(*id);
    }
    let paths: Vec<&str> = artifacts.iter().map(|a| a.path.as_str()).collect();
    let infos: Vec<String> = artifacts
        .iter()
        .map(|a| info_text(&a.info))
        .collect::<Result<_, _>>()?;
    sqlx::query(
        "INSERT INTO rstuf_target_files (path, info, published, action, last_update, targets_role) \
         SELECT p, i::json, false, 'ADD', $4, r FROM UNNEST($1::varchar[], $2::text[], $3::int[]) AS t(p, i, r) \
         ON CONFLICT (path) DO UPDATE SET info = EXCLUDED.info, published = false, action = 'ADD', \
         last_update = EXCLUDED.last_update, targets_role = EXCLUDED.targets_role",
    )
    .bind(&paths)
    .bind(&infos)
    .bind(&role_ids)
    .bind(now)
    .execute(&mut *tx)
    .await
    .ctx("adding artifacts")?;
    Ok(())
}

/// Marks `paths` for removal in `tx`; returns those changed, in input order.
async fn remove_rows(
    tx: &mut sqlx::PgConnection,
    paths: &[String],
    now: NaiveDateTime,
) -> Result<Vec<String>, PortError> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let changed: Vec<String> = sqlx::query_scalar(
        "UPDATE rstuf_target_files SET published = false, action = 'REMOVE', last_update = $2 \
         WHERE path = ANY($1) AND NOT (action = 'REMOVE' AND published) RETURNING path",
    )
    .bind(paths)
    .bind(now)
    .fetch_all(&mut *tx)
    .await
    .ctx("removing artifacts")?;
    let changed: std::collections::HashSet<String> = changed.into_iter().collect();
    Ok(paths
        .iter()
        .filter(|p| changed.contains(*p))
        .cloned()
        .collect())
}

fn role_record(r: &sqlx::postgres::PgRow) -> RoleRecord {
    RoleRecord {
        name: r.get("rolename"),
        version: u64::try_from(r.get::<i32, _>("version")).unwrap_or(0),
        expires: r.get::<NaiveDateTime, _>("expires").and_utc(),
        active: r.get("active"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_text_is_what_the_api_model_dumps() {
        let info: TargetFile = serde_json::from_value(serde_json::json!({
            "zz": [1], "custom": {"b": "\u{e9}", "a": null}, "hashes": {"sha512": "bb", "sha256": "aa"},
            "length": 18446744073709551615u64, "aa": true}))
        .unwrap();
        assert_eq!(
            info_text(&info).unwrap(),
            r#"{"length": 18446744073709551615, "hashes": {"sha256": "aa", "sha512": "bb"}, "custom": {"a": null, "b": "\u00e9"}, "aa": true, "zz": [1]}"#
        );
        let plain: TargetFile =
            serde_json::from_value(serde_json::json!({"length": 0, "hashes": {"sha256": "00"}}))
                .unwrap();
        assert_eq!(
            info_text(&plain).unwrap(),
            r#"{"length": 0, "hashes": {"sha256": "00"}}"#
        );
    }
}
