//! The PostgreSQL index against the real server (127.0.0.1:5432, user postgres, trust auth),
//! one fresh database per test.

use chrono::{TimeZone, Utc};
use rstuf_adapters::postgres::{PgIndex, SchemaState};
use rstuf_engine::ports::{ArtifactIndex, PortErrorKind, RoleRecord};
use rstuf_test_support as support;
use sqlx::{Connection, Executor, PgConnection};

async fn fresh_db(name: &str) -> String {
    support::fresh_postgres_db(name).await
}

/// Columns, indexes, constraints and enum labels: the schema as the catalogs describe it.
async fn catalog(url: &str) -> Vec<String> {
    let mut c = PgConnection::connect(url).await.unwrap();
    let queries = [
        "SELECT table_name::text || '.' || column_name::text || ' ' || data_type::text || ' ' || is_nullable || ' ' || coalesce(column_default, '') \
         FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1",
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' \
         AND indexname NOT LIKE 'rstuf\\_worker\\_%' ORDER BY 1",
        "SELECT conname::text || ' ' || contype::text || ' ' || pg_get_constraintdef(oid) FROM pg_constraint \
         WHERE connamespace = 'public'::regnamespace ORDER BY 1",
        "SELECT t.typname::text || ' ' || string_agg(e.enumlabel::text, ',' ORDER BY e.enumsortorder) FROM pg_type t \
         JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY t.typname ORDER BY 1",
        "SELECT version_num FROM alembic_version",
    ];
    let mut out = Vec::new();
    for q in queries {
        let rows: Vec<String> = sqlx::query_scalar(q).fetch_all(&mut c).await.unwrap();
        out.extend(rows);
    }
    out
}

async fn worker_indexes(url: &str) -> Vec<String> {
    let mut c = PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE indexname LIKE 'rstuf\\_worker\\_%' ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .unwrap()
}

#[tokio::test]
async fn created_schema_is_the_alembic_schema() {
    let ours = fresh_db("ours").await;
    let index = PgIndex::connect(&ours).await.unwrap();
    assert_eq!(index.ensure_schema().await.unwrap(), SchemaState::Created);
    assert_eq!(index.ensure_schema().await.unwrap(), SchemaState::Current);

    let reference = fresh_db("reference").await;
    support::create_reference_schema(&reference).await;
    // The reference's schema is accepted as current, and both describe themselves the same way.
    assert_eq!(
        PgIndex::connect(&reference)
            .await
            .unwrap()
            .ensure_schema()
            .await
            .unwrap(),
        SchemaState::Current
    );
    let (a, b) = (catalog(&ours).await, catalog(&reference).await);
    assert!(a.len() > 15, "{a:#?}");
    assert_eq!(a, b);
    // Beyond alembic's schema, only our own indexes, on both databases.
    for url in [&ours, &reference] {
        assert_eq!(
            worker_indexes(url).await,
            ["rstuf_worker_files_role", "rstuf_worker_files_unpublished"]
        );
    }
}

#[tokio::test]
async fn unknown_revisions_and_foreign_tables_are_refused() {
    let url = fresh_db("revision").await;
    let index = PgIndex::connect(&url).await.unwrap();
    index.ensure_schema().await.unwrap();
    sqlx::query("UPDATE alembic_version SET version_num = 'ffffffffffff'")
        .execute(index.pool())
        .await
        .unwrap();
    let err = index.ensure_schema().await.unwrap_err();
    assert!(err.message.contains("ffffffffffff"), "{err}");

    let url = fresh_db("foreign").await;
    let mut c = PgConnection::connect(&url).await.unwrap();
    c.execute("CREATE TABLE rstuf_target_roles (id int)")
        .await
        .unwrap();
    let err = PgIndex::connect(&url)
        .await
        .unwrap()
        .ensure_schema()
        .await
        .unwrap_err();
    assert!(err.message.contains("no alembic_version"), "{err}");
}

#[tokio::test]
async fn workers_starting_together_create_the_schema_once() {
    let url = fresh_db("race").await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            PgIndex::connect(&url)
                .await
                .unwrap()
                .ensure_schema()
                .await
                .unwrap()
        }));
    }
    let mut created = 0;
    for t in tasks {
        if t.await.unwrap() == SchemaState::Created {
            created += 1;
        }
    }
    assert_eq!(created, 1);
}

#[tokio::test]
async fn roles_are_inserted_all_or_nothing() {
    let url = fresh_db("roles").await;
    let index = PgIndex::connect(&url).await.unwrap();
    index.ensure_schema().await.unwrap();
    let expires = Utc.with_ymd_and_hms(2026, 11, 26, 1, 30, 54).unwrap();
    let rows: Vec<RoleRecord> = (0..16_384)
        .map(|i| RoleRecord {
            name: format!("bins-{i:04x}"),
            version: 1,
            expires,
            active: true,
        })
        .collect();
    index.create_roles(&rows).await.unwrap();
    assert_eq!(
        index.role("bins-3fff").await.unwrap(),
        Some(rows[16_383].clone())
    );
    assert_eq!(index.role("bins-4000").await.unwrap(), None);

    let again = vec![
        RoleRecord {
            name: "new-role".into(),
            version: 1,
            expires,
            active: true,
        },
        rows[0].clone(),
    ];
    let err = index.create_roles(&again).await.unwrap_err();
    assert_eq!(err.kind, PortErrorKind::Conflict);
    // The database's error stays the cause: a unique violation, and the text shows it.
    let cause = std::error::Error::source(&err).expect("the sqlx error is the source");
    let db = cause.downcast_ref::<sqlx::Error>().expect("a sqlx error");
    assert!(
        matches!(db, sqlx::Error::Database(d) if d.is_unique_violation()),
        "{db:?}"
    );
    assert_eq!(err.to_string(), format!("creating roles: {db}"));
    assert_eq!(
        index.role("new-role").await.unwrap(),
        None,
        "a failed insert leaves no rows"
    );
}

#[tokio::test]
async fn pg_index_keeps_the_artifact_index_contract() {
    let url = fresh_db("contract").await;
    let index = PgIndex::connect(&url).await.unwrap();
    index.ensure_schema().await.unwrap();
    rstuf_engine::testing::artifact_index_conformance(&index).await;
}
