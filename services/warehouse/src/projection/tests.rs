use chrono::TimeZone;
use omnisaga_proto::v1::{
    GoodsReceived, OrderCancelled, OrderReadyForShipment, PaymentAuthorized, PickTaskCreated, StockReleased,
    StockReserved, StockUnavailable,
};
use omnisaga_runtime::event::{envelope, EventMeta};

use super::*;

fn at(second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 8, 1, 0, second).unwrap()
}

fn env(order_id: &str, payload: Payload, second: u32) -> Envelope {
    envelope("warehouse", order_id, payload, &EventMeta::default(), at(second))
}

fn items(lines: &[(&str, u32)]) -> Vec<LineItem> {
    lines
        .iter()
        .map(|(sku, quantity)| LineItem {
            sku: (*sku).into(),
            quantity: *quantity,
            ..Default::default()
        })
        .collect()
}

fn received(sku: &str, quantity: i64) -> Envelope {
    let g = GoodsReceived {
        sku: sku.into(),
        quantity,
        source: "import".into(),
    };
    env("", Payload::GoodsReceived(g), 0)
}

fn reserved(order: &str, lines: &[(&str, u32)]) -> Envelope {
    let r = StockReserved {
        order_id: order.into(),
        items: items(lines),
    };
    env(order, Payload::StockReserved(r), 1)
}

fn released(order: &str, lines: &[(&str, u32)]) -> Envelope {
    let r = StockReleased {
        order_id: order.into(),
        items: items(lines),
    };
    env(order, Payload::StockReleased(r), 2)
}

fn shipped(order: &str) -> Envelope {
    env(order, Payload::OrderShippedV2(Default::default()), 3)
}

fn delta(on_hand: i64, reserved: i64, shipped: i64) -> StockDelta {
    StockDelta {
        on_hand,
        reserved,
        shipped,
    }
}

#[test]
fn stock_is_what_came_in_what_is_reserved_and_what_shipped() {
    let batch = [
        received("A", 10),
        received("B", 5),
        reserved("o1", &[("A", 2), ("B", 1)]),
        reserved("o2", &[("A", 3)]),
        released("o2", &[("A", 3)]),
        shipped("o1"),
        received("A", 4),
    ];
    let batch: Vec<&Envelope> = batch.iter().collect();
    let tasks = HashMap::from([("o1".to_owned(), task_items(&items(&[("A", 2), ("B", 1)])))]);
    let deltas = stock_deltas(&batch, &tasks).unwrap();
    assert_eq!(
        deltas,
        BTreeMap::from([
            ("A".to_owned(), delta(14, 2, 2)),
            ("B".to_owned(), delta(5, 1, 1))
        ])
    );
    // The same events in two batches, the later first: the same sums.
    let (early, late) = batch.split_at(3);
    let mut split = stock_deltas(late, &tasks).unwrap();
    for (sku, d) in stock_deltas(early, &tasks).unwrap() {
        let s = split.entry(sku).or_default();
        *s = delta(
            s.on_hand + d.on_hand,
            s.reserved + d.reserved,
            s.shipped + d.shipped,
        );
    }
    assert_eq!(split, deltas);
}

#[test]
fn a_shipment_whose_order_has_no_pick_task_is_an_error() {
    let batch = [shipped("o9")];
    let err = stock_deltas(&batch.iter().collect::<Vec<_>>(), &HashMap::new()).unwrap_err();
    assert!(err.to_string().contains("o9"), "{err}");
}

#[test]
fn a_task_is_where_the_queue_puts_it_by_its_stream() {
    let order = Uuid::new_v4().to_string();
    let task_id = Uuid::new_v4();
    let created = env(
        &order,
        Payload::PickTaskCreated(PickTaskCreated {
            order_id: order.clone(),
            pick_task_id: task_id.to_string(),
            items: items(&[("A", 2)]),
        }),
        5,
    );
    let paid = env(
        &order,
        Payload::PaymentAuthorized(PaymentAuthorized::default()),
        6,
    );
    let packed = env(
        &order,
        Payload::OrderReadyForShipment(OrderReadyForShipment::default()),
        7,
    );
    let cancelled = env(&order, Payload::OrderCancelled(OrderCancelled::default()), 8);
    let placed = reserved(&order, &[("A", 2)]);
    let stream = |more: &[&Envelope]| {
        let mut s = vec![placed.clone(), created.clone()];
        s.extend(more.iter().map(|e| (*e).clone()));
        s
    };
    let sent = shipped(&order);
    // The time of the last event that moved the task: created at 5, paid
    // at 6, packed at 7, shipped at 3 (clocks differ), cancelled at 8.
    for (history, status, updated) in [
        (stream(&[]), TaskStatus::WaitingPayment, 5),
        (stream(&[&paid]), TaskStatus::Ready, 6),
        (
            vec![paid.clone(), placed.clone(), created.clone()],
            TaskStatus::Ready,
            5,
        ),
        (stream(&[&paid, &packed]), TaskStatus::Packed, 7),
        (stream(&[&paid, &packed, &sent]), TaskStatus::Shipped, 3),
        (
            stream(&[&paid, &packed, &sent, &cancelled]),
            TaskStatus::Shipped,
            3,
        ),
        (stream(&[&paid, &cancelled]), TaskStatus::Cancelled, 8),
    ] {
        let row = task_row(&history).unwrap().expect("a task");
        let expected = TaskRow {
            pick_task_id: task_id,
            order_id: order.parse().unwrap(),
            items: vec![TaskItem {
                sku: "A".into(),
                quantity: 2,
            }],
            status,
            created_at: at(5),
            updated_at: at(updated),
        };
        assert_eq!(row, expected, "{status:?}");
    }
    let unavailable = env(&order, Payload::StockUnavailable(StockUnavailable::default()), 1);
    assert_eq!(task_row(&[unavailable, cancelled]).unwrap(), None);
}
