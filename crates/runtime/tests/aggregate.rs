//! The aggregate executor against the real PostgreSQL: load, fold, decide,
//! append with the outbox in the caller's transaction; facts kept as the
//! envelopes they came in; a refusal writes nothing; a writer that owns its
//! transaction retries when another one moved the stream on.

use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Result;
use omnisaga_runtime::{
    aggregate::{Aggregate, Decider, ExecuteError, Executor, Wire},
    db,
    event::{self, EventMeta},
    pb::{envelope::Payload, OrderCancelled, StockReserved},
    store, testing,
};
use sqlx::{Connection as _, PgPool};

/// A test aggregate: reservations counted until the order is cancelled.
struct Tally;

#[derive(Debug, Clone, PartialEq)]
enum Event {
    Reserved(StockReserved),
    Cancelled(OrderCancelled),
}

enum Command {
    Reserve,
    RecordCancellation(OrderCancelled),
}

#[derive(Default, Debug, PartialEq)]
struct State {
    reserved: u32,
    cancelled: bool,
}

impl Decider for Tally {
    type State = State;
    type Command = Command;
    type Event = Event;
    type Error = &'static str;
    fn decide(state: &State, cmd: Command) -> Result<Vec<Event>, &'static str> {
        if state.cancelled {
            return Err("cancelled");
        }
        Ok(match cmd {
            Command::Reserve => vec![Event::Reserved(StockReserved {
                order_id: "o-1".into(),
                ..Default::default()
            })],
            Command::RecordCancellation(c) => vec![Event::Cancelled(c)],
        })
    }
    fn evolve(mut state: State, event: &Event) -> State {
        match event {
            Event::Reserved(_) => state.reserved += 1,
            Event::Cancelled(_) => state.cancelled = true,
        }
        state
    }
}

impl Aggregate for Tally {
    const PRODUCER: &'static str = "warehouse";
    fn stream(order_id: &str) -> String {
        format!("tally-{order_id}")
    }
    fn from_wire(payload: &Payload) -> Option<Event> {
        match payload {
            Payload::StockReserved(e) => Some(Event::Reserved(e.clone())),
            Payload::OrderCancelled(e) => Some(Event::Cancelled(e.clone())),
            _ => None,
        }
    }
    fn to_wire(event: &Event) -> Wire {
        match event {
            Event::Reserved(e) => Wire::Own {
                payload: Box::new(Payload::StockReserved(e.clone())),
                publish: true,
            },
            Event::Cancelled(_) => Wire::Fact,
        }
    }
}

async fn database() -> Result<(PgPool, String)> {
    let url = testing::fresh_database("aggregate").await?;
    let pool = db::connect(&url, 3).await?;
    db::migrate(&pool, sqlx::migrate!("./tests/migrations")).await?;
    Ok((pool, url))
}

/// Another writer, on its own connection and runtime, appends a
/// reservation to `order_id`'s stream and commits, while the caller waits.
fn competing_reservation(url: &str, order_id: &str) {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                Executor::<Tally>::new("warehouse-events")
                    .execute(&mut conn, order_id, Command::Reserve, None, &meta())
                    .await
                    .unwrap();
            })
        });
    });
}

fn meta() -> EventMeta {
    EventMeta {
        correlation_id: "req-1".into(),
        causation_id: String::new(),
        trace: Default::default(),
    }
}

async fn outbox_rows(pool: &PgPool) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(pool)
        .await?)
}

#[tokio::test]
async fn commands_append_and_publish_own_events_and_keep_facts_as_they_came() -> Result<()> {
    let (pool, _) = database().await?;
    let exec = Executor::<Tally>::new("warehouse-events");
    let mut tx = pool.begin().await?;
    for expected in 1..=2 {
        let done = exec
            .execute(&mut tx, "o-1", Command::Reserve, None, &meta())
            .await?;
        assert_eq!(done.version, expected);
        assert_eq!(done.state.reserved, expected as u32);
        assert_eq!(done.published.len(), 1);
        assert_eq!(done.published[0].producer, "warehouse");
        assert_eq!(done.published[0].correlation_id, "req-1");
    }
    tx.commit().await?;
    assert_eq!(outbox_rows(&pool).await?, 2);

    // Another service's fact: stored as the envelope it came in, not published.
    let cancellation = OrderCancelled {
        order_id: "o-1".into(),
        reason: "customer_request".into(),
    };
    let cause = event::envelope(
        "order",
        "o-1",
        Payload::OrderCancelled(cancellation.clone()),
        &meta(),
        chrono::Utc::now(),
    );
    let mut conn = pool.acquire().await?;
    let command = || Command::RecordCancellation(cancellation.clone());
    let missing = exec.execute(&mut conn, "o-1", command(), None, &meta()).await;
    assert!(matches!(missing, Err(ExecuteError::FactWithoutCause)));
    let done = exec
        .execute(&mut conn, "o-1", command(), Some(&cause), &meta())
        .await?;
    assert!(done.published.is_empty());
    let stream = store::load(&mut conn, "tally-o-1").await?;
    assert_eq!(stream.len(), 3);
    assert_eq!(stream[2].envelope, cause, "the fact is the envelope it came in");
    assert_eq!(outbox_rows(&pool).await?, 2);

    // Loading folds the whole stream; a refusal writes nothing.
    let loaded = exec.load(&mut conn, "o-1").await?;
    assert_eq!(
        (loaded.state, loaded.version),
        (
            State {
                reserved: 2,
                cancelled: true
            },
            3
        )
    );
    let refused = exec
        .execute(&mut conn, "o-1", Command::Reserve, None, &meta())
        .await;
    assert!(matches!(refused, Err(ExecuteError::Refused("cancelled"))));
    assert_eq!(store::load(&mut conn, "tally-o-1").await?.len(), 3);
    Ok(())
}

#[tokio::test]
async fn a_writer_with_its_own_transaction_retries_when_the_stream_moved_on() -> Result<()> {
    let (pool, url) = database().await?;
    let exec = Executor::<Tally>::new("warehouse-events");
    let calls = AtomicU32::new(0);
    let done = exec
        .execute_in_own_transaction(
            &pool,
            "o-2",
            |_state| {
                // On the first try another writer appends after this one loaded.
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    competing_reservation(&url, "o-2");
                }
                Command::Reserve
            },
            &meta(),
            3,
        )
        .await?;
    assert_eq!(calls.load(Ordering::SeqCst), 2, "decided again on the new stream");
    assert_eq!((done.version, done.state.reserved), (2, 2));
    assert_eq!(
        outbox_rows(&pool).await?,
        2,
        "the rolled-back try left no outbox row"
    );

    // With no retries left the conflict is the caller's.
    let exhausted = exec
        .execute_in_own_transaction(
            &pool,
            "o-2",
            |_state| {
                competing_reservation(&url, "o-2");
                Command::Reserve
            },
            &meta(),
            1,
        )
        .await;
    assert!(matches!(
        exhausted,
        Err(ExecuteError::Store(store::StoreError::Conflict { .. }))
    ));
    assert_eq!(outbox_rows(&pool).await?, 3, "only the competitor's reservation");
    Ok(())
}
