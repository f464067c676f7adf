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
use rstuf_engine::ports::{ArtifactIndex, PortError, PortErrorKind, RoleRecord};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Executor, Row};

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

fn sql_error(context: &str, e: sqlx::Error) -> PortError {
    let kind = match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => PortErrorKind::Conflict,
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_) => PortErrorKind::Transient,
        _ => PortErrorKind::Other,
    };
    PortError::new(kind, format!("{context}: {e}"))
}

fn naive(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}

impl PgIndex {
    /// Connects to `url` (`postgresql://user:password@host/db`).
    pub async fn connect(url: &str) -> Result<Self, PortError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect(url)
            .await
            .map_err(|e| sql_error("connecting to PostgreSQL", e))?;
        Ok(PgIndex { pool })
    }

    /// Creates the schema on an empty database, or checks an existing one is at revision
    /// `1effe827d0cd`.
    pub async fn ensure_schema(&self) -> Result<SchemaState, PortError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| sql_error("starting a transaction", e))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SCHEMA_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(|e| sql_error("locking the schema", e))?;
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() \
             AND table_name IN ('alembic_version', 'rstuf_target_roles', 'rstuf_target_files')",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| sql_error("inspecting the schema", e))?;
        if tables.is_empty() {
            for statement in SCHEMA {
                tx.execute(*statement)
                    .await
                    .map_err(|e| sql_error("creating the schema", e))?;
            }
            tx.commit()
                .await
                .map_err(|e| sql_error("creating the schema", e))?;
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
                .map_err(|e| sql_error("reading alembic_version", e))?;
        match revision.as_deref() {
            Some(ALEMBIC_REVISION) if tables.len() == 3 => Ok(SchemaState::Current),
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
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| sql_error("starting a transaction", e))?;
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
        .map_err(|e| sql_error("creating roles", e))?;
        tx.commit()
            .await
            .map_err(|e| sql_error("creating roles", e))
    }

    async fn role(&self, name: &str) -> Result<Option<RoleRecord>, PortError> {
        let row = sqlx::query(
            "SELECT rolename, version, expires, active FROM rstuf_target_roles WHERE rolename = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| sql_error("reading a role", e))?;
        Ok(row.map(|r| RoleRecord {
            name: r.get("rolename"),
            version: u64::try_from(r.get::<i32, _>("version")).unwrap_or(0),
            expires: r.get::<NaiveDateTime, _>("expires").and_utc(),
            active: r.get("active"),
        }))
    }
}
