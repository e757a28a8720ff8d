//! The event store against the real PostgreSQL: a saga step's events and
//! its outbox rows are written by one statement, all or nothing.

use std::collections::BTreeMap;

use anyhow::Result;
use omnisaga_runtime::{
    db,
    event::{self, EventMeta, TraceContext},
    outbox,
    pb::{envelope::Payload, OrderPlaced, StockReserved},
    store::{self, StoreError},
    testing, work,
};
use sqlx::PgPool;

async fn pool() -> Result<PgPool> {
    let pool = db::connect(&testing::fresh_database("store").await?, 2).await?;
    db::migrate(&pool, sqlx::migrate!("./tests/migrations")).await?;
    Ok(pool)
}

fn meta() -> EventMeta {
    EventMeta {
        correlation_id: "req-1".into(),
        causation_id: String::new(),
        trace: TraceContext {
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
            tracestate: None,
        },
    }
}

/// One outbox row: topic, key, payload and headers.
type OutboxRow = (String, String, Vec<u8>, BTreeMap<String, String>);

/// The outbox rows, in id order.
async fn outbox_rows(pool: &PgPool) -> Result<Vec<OutboxRow>> {
    let rows = sqlx::query_as::<
        _,
        (
            String,
            String,
            Vec<u8>,
            sqlx::types::Json<BTreeMap<String, String>>,
        ),
    >("SELECT topic, message_key, payload, headers FROM outbox ORDER BY id")
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(t, k, p, h)| (t, k, p, h.0)).collect())
}

#[tokio::test]
async fn the_events_decided_are_appended_and_only_those_picked_go_to_the_outbox() -> Result<()> {
    let pool = pool().await?;
    let now = chrono::Utc::now();
    let fact = event::envelope(
        "order",
        "o-1",
        Payload::OrderPlaced(OrderPlaced::default()),
        &meta(),
        now,
    );
    let own = event::envelope(
        "warehouse",
        "o-1",
        Payload::StockReserved(StockReserved::default()),
        &meta(),
        now,
    );
    let mut tx = pool.begin().await?;
    let (appended, written) = work::noting(store::append_publishing(
        &mut tx,
        "warehouse-o-1",
        0,
        &[fact.clone(), own.clone()],
        |e| (e.producer == "warehouse").then(|| e.clone()),
        "warehouse-events",
        &meta().trace,
    ))
    .await;
    assert_eq!(appended?, 2, "the stream's version after the append");
    assert_eq!(written, work::Written::OUTBOX);
    tx.commit().await?;

    let stream = store::load(&mut *pool.acquire().await?, "warehouse-o-1").await?;
    let versions: Vec<(i64, String)> = stream
        .iter()
        .map(|e| (e.version, e.envelope.event_id.clone()))
        .collect();
    assert_eq!(
        versions,
        vec![(1, fact.event_id.clone()), (2, own.event_id.clone())]
    );

    let rows = outbox_rows(&pool).await?;
    assert_eq!(
        rows.len(),
        1,
        "only the warehouse's own event is published: {rows:?}"
    );
    let (topic, key, payload, headers) = &rows[0];
    assert_eq!((topic.as_str(), key.as_str()), ("warehouse-events", "o-1"));
    assert_eq!(payload, &prost::Message::encode_to_vec(&own));
    assert_eq!(headers, &outbox::headers(&own, &meta().trace));
    assert_eq!(
        headers.get("event_type").map(String::as_str),
        Some("StockReserved")
    );
    Ok(())
}

#[tokio::test]
async fn an_append_behind_the_stream_writes_neither_events_nor_outbox_rows() -> Result<()> {
    let pool = pool().await?;
    let now = chrono::Utc::now();
    let first = event::envelope(
        "order",
        "o-2",
        Payload::OrderPlaced(OrderPlaced::default()),
        &meta(),
        now,
    );
    let mut conn = pool.acquire().await?;
    store::append_publishing(
        &mut conn,
        "order-o-2",
        0,
        &[first],
        |e| Some(e.clone()),
        "orders",
        &meta().trace,
    )
    .await?;

    // A second writer that loaded the stream at version 0 too.
    let late = event::envelope(
        "order",
        "o-2",
        Payload::OrderPlaced(OrderPlaced::default()),
        &meta(),
        now,
    );
    let mut tx = pool.begin().await?;
    let conflict = store::append_publishing(
        &mut tx,
        "order-o-2",
        0,
        &[late],
        |e| Some(e.clone()),
        "orders",
        &meta().trace,
    )
    .await;
    assert!(
        matches!(conflict, Err(StoreError::Conflict { expected: 0, .. })),
        "{conflict:?}"
    );
    tx.rollback().await?;
    assert_eq!(store::load(&mut conn, "order-o-2").await?.len(), 1);
    assert_eq!(
        outbox_rows(&pool).await?.len(),
        1,
        "the loser's outbox row is not there"
    );

    // Nothing to append is no statement and no change.
    assert_eq!(store::append(&mut conn, "order-o-2", 1, &[]).await?, 1);
    Ok(())
}

/// The database connection is encrypted when the URL asks, and checked
/// against the CA it names (or the system's) and the host name: the local
/// server's certificate (self-signed, for `localhost`) is accepted as its
/// own CA when the server is reached as `localhost` and refused when it is
/// reached by an address the certificate does not name, and
/// `sslmode=disable` goes without.
#[tokio::test]
async fn the_database_connection_is_tls_when_asked_and_checks_the_certificate() -> Result<()> {
    use sqlx::{Connection as _, PgConnection};
    let url = testing::fresh_database("tls").await?;
    let mut admin = PgConnection::connect(&format!("{}/postgres", testing::pg_server())).await?;
    let cert: String = sqlx::query_scalar("SELECT current_setting('ssl_cert_file')")
        .fetch_one(&mut admin)
        .await?;
    let encrypted = |url: String| async move {
        let pool = db::connect(&url, 1).await?;
        let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&pool)
            .await?;
        pool.close().await;
        anyhow::Ok(ssl)
    };
    let by_name = url.replacen("@127.0.0.1:", "@localhost:", 1);
    assert!(encrypted(format!("{by_name}?sslmode=verify-full&sslrootcert={cert}")).await?);
    assert!(!encrypted(format!("{url}?sslmode=disable")).await?);

    // The same server by an address its certificate does not name.
    let refused = PgConnection::connect(&format!("{url}?sslmode=verify-full&sslrootcert={cert}")).await;
    let err = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        err.contains("not valid for name"),
        "a certificate for another name was accepted, or refused for something else: {err:?}"
    );
    Ok(())
}
