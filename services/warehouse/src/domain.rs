//! Fulfilment of one order, pure: `decide` turns a command into the events
//! the order's warehouse stream gets, and `evolve` folds them into the state.
//! Facts from other services (`PaymentAuthorized`, `OrderCancelled`) come in
//! with their command and are among the events decided, so the stream is
//! exactly what `decide` said; [`publishes`] tells them from the warehouse's
//! own. No I/O: stock shortfalls, ids and carrier data come with the command.
//! `crate::wire` maps the [`Event`]s to and from the protobuf payloads.

use omnisaga_proto::{
    v1::{
        LineItem, OrderCancelled, OrderReadyForShipment, PaymentAuthorized, PickTaskCreated, StockReleased,
        StockReserved, StockUnavailable,
    },
    v2,
};
use omnisaga_runtime::aggregate::Decider;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

/// What an order's warehouse stream holds: the warehouse's own events and
/// the facts of other services it keeps.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    StockReserved(StockReserved),
    StockUnavailable(StockUnavailable),
    PickTaskCreated(PickTaskCreated),
    StockReleased(StockReleased),
    /// "Order ready for shipment": picked and packed.
    OrderReadyForShipment(OrderReadyForShipment),
    /// Shipped, in parcels.
    OrderShipped(Shipped),
    /// Payment's fact: the order is paid, its pick task may be worked.
    PaymentAuthorized(PaymentAuthorized),
    /// The order service's fact: the order is cancelled.
    OrderCancelled(OrderCancelled),
}

/// An order's shipment: `OrderShipped` version 2, one tracking number per
/// parcel, and whether it goes on the wire as version 1
/// (`WAREHOUSE_ORDER_SHIPPED_VERSION=1`, while a reader of version 1 may
/// still run; its first parcel is all that version holds).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Shipped {
    pub shipment: v2::OrderShipped,
    pub as_v1: bool,
}

/// The fulfilment aggregate of one order: [`decide`] and [`evolve`] over
/// [`Fulfilment`], for the executor (`crate::wire`) and the tests.
pub struct FulfilmentAggregate;

impl Decider for FulfilmentAggregate {
    type State = Fulfilment;
    type Command = Command;
    type Event = Event;
    type Error = FulfilmentError;
    fn decide(state: &Fulfilment, cmd: Command) -> Result<Vec<Event>, FulfilmentError> {
        decide(state, cmd)
    }
    fn evolve(state: Fulfilment, event: &Event) -> Fulfilment {
        evolve(state, event)
    }
}

/// The folded warehouse stream of one order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fulfilment {
    pub reserved: Option<Vec<LineItem>>,
    pub pick_task_id: Option<String>,
    pub unavailable: bool,
    pub paid: bool,
    pub ready: bool,
    /// The parcels it was packed into.
    pub parcels: u32,
    pub shipped: bool,
    pub released: bool,
    pub cancelled: bool,
}

impl Fulfilment {
    /// Whether its pick task may be worked now: reserved, paid, not yet packed, not cancelled.
    pub fn pickable(&self) -> bool {
        self.pick_task_id.is_some() && self.paid && !self.ready && !self.cancelled
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Reserve the items of a placed order and create its pick task;
    /// `short` lists the SKUs the stock could not cover.
    Reserve {
        order_id: String,
        items: Vec<LineItem>,
        short: Vec<String>,
        pick_task_id: String,
    },
    /// The order is paid: its pick task may be worked (now, or once reserved).
    ReleaseForPicking(PaymentAuthorized),
    /// The order is cancelled: stock it holds and has not shipped goes back.
    Cancel(OrderCancelled),
    /// The pick task was picked and packed into `parcels`.
    Pack {
        order_id: String,
        pick_task_id: String,
        parcels: u32,
    },
    /// The packed order left with `carrier`, one tracking number per
    /// parcel: `tracking_number`, suffixed `-1`, `-2`... when there are
    /// several. `as_v1`: see [`Shipped`].
    Ship {
        order_id: String,
        pick_task_id: String,
        carrier: String,
        tracking_number: String,
        as_v1: bool,
    },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FulfilmentError {
    #[error("stock for this order is already reserved")]
    AlreadyReserved,
    #[error("stock for this order was unavailable")]
    StockWasUnavailable,
    #[error("the order is cancelled")]
    OrderCancelled,
    #[error("the order is already cancelled")]
    AlreadyCancelled,
    #[error("the order is already paid")]
    AlreadyPaid,
    #[error("the order has no pick task {0}")]
    UnknownPickTask(String),
    #[error("the order is not paid")]
    NotPaid,
    #[error("the order is already packed")]
    AlreadyPacked,
    #[error("the order is not packed yet")]
    NotPacked,
    #[error("the order has already shipped")]
    AlreadyShipped,
}

/// Decides which events a command appends to the order's stream.
pub fn decide(state: &Fulfilment, cmd: Command) -> Result<Vec<Event>, FulfilmentError> {
    match cmd {
        Command::Reserve {
            order_id,
            items,
            short,
            pick_task_id,
        } => reserve(state, order_id, items, short, pick_task_id),
        Command::ReleaseForPicking(paid) => {
            if state.cancelled {
                return Err(FulfilmentError::OrderCancelled);
            }
            if state.unavailable {
                return Err(FulfilmentError::StockWasUnavailable);
            }
            if state.paid {
                return Err(FulfilmentError::AlreadyPaid);
            }
            Ok(vec![Event::PaymentAuthorized(paid)])
        }
        Command::Cancel(cancelled) => cancel(state, cancelled),
        Command::Pack {
            order_id,
            pick_task_id,
            parcels,
        } => {
            workable(state, &pick_task_id)?;
            if !state.paid {
                return Err(FulfilmentError::NotPaid);
            }
            if state.ready {
                return Err(FulfilmentError::AlreadyPacked);
            }
            Ok(vec![Event::OrderReadyForShipment(OrderReadyForShipment {
                order_id,
                pick_task_id,
                parcels,
            })])
        }
        Command::Ship {
            order_id,
            pick_task_id,
            carrier,
            tracking_number,
            as_v1,
        } => {
            workable(state, &pick_task_id)?;
            if !state.ready {
                return Err(FulfilmentError::NotPacked);
            }
            let count = state.parcels.max(1);
            let parcels = (1..=count)
                .map(|n| v2::Parcel {
                    carrier: carrier.clone(),
                    tracking_number: if count == 1 {
                        tracking_number.clone()
                    } else {
                        format!("{tracking_number}-{n}")
                    },
                })
                .collect();
            Ok(vec![Event::OrderShipped(Shipped {
                shipment: v2::OrderShipped { order_id, parcels },
                as_v1,
            })])
        }
    }
}

fn reserve(
    state: &Fulfilment,
    order_id: String,
    items: Vec<LineItem>,
    short: Vec<String>,
    pick_task_id: String,
) -> Result<Vec<Event>, FulfilmentError> {
    if state.cancelled {
        return Err(FulfilmentError::OrderCancelled);
    }
    if state.reserved.is_some() {
        return Err(FulfilmentError::AlreadyReserved);
    }
    if state.unavailable {
        return Err(FulfilmentError::StockWasUnavailable);
    }
    if !short.is_empty() {
        return Ok(vec![Event::StockUnavailable(StockUnavailable {
            order_id,
            skus: short,
        })]);
    }
    Ok(vec![
        Event::StockReserved(StockReserved {
            order_id: order_id.clone(),
            items: items.clone(),
        }),
        Event::PickTaskCreated(PickTaskCreated {
            order_id,
            pick_task_id,
            items,
        }),
    ])
}

/// Records the cancellation; stock reserved and not shipped goes back, once.
fn cancel(state: &Fulfilment, cancelled: OrderCancelled) -> Result<Vec<Event>, FulfilmentError> {
    if state.cancelled {
        return Err(FulfilmentError::AlreadyCancelled);
    }
    let release = match &state.reserved {
        Some(items) if !state.shipped && !state.released => Some(Event::StockReleased(StockReleased {
            order_id: cancelled.order_id.clone(),
            items: items.clone(),
        })),
        _ => None,
    };
    Ok(std::iter::once(Event::OrderCancelled(cancelled))
        .chain(release)
        .collect())
}

/// Whether the order's pick task `pick_task_id` can still be worked on.
fn workable(state: &Fulfilment, pick_task_id: &str) -> Result<(), FulfilmentError> {
    if state.cancelled {
        return Err(FulfilmentError::OrderCancelled);
    }
    if state.pick_task_id.as_deref() != Some(pick_task_id) {
        return Err(FulfilmentError::UnknownPickTask(pick_task_id.to_owned()));
    }
    if state.shipped {
        return Err(FulfilmentError::AlreadyShipped);
    }
    Ok(())
}

/// Whether the warehouse publishes `event`; the others are facts from other
/// services it only records in the stream.
pub fn publishes(event: &Event) -> bool {
    match event {
        Event::StockReserved(_)
        | Event::StockUnavailable(_)
        | Event::PickTaskCreated(_)
        | Event::StockReleased(_)
        | Event::OrderReadyForShipment(_)
        | Event::OrderShipped(_) => true,
        Event::PaymentAuthorized(_) | Event::OrderCancelled(_) => false,
    }
}

/// Folds one event into the state. No rules here: only what happened.
pub fn evolve(mut state: Fulfilment, event: &Event) -> Fulfilment {
    match event {
        Event::StockReserved(e) => state.reserved = Some(e.items.clone()),
        Event::StockUnavailable(_) => state.unavailable = true,
        Event::PickTaskCreated(e) => state.pick_task_id = Some(e.pick_task_id.clone()),
        Event::PaymentAuthorized(_) => state.paid = true,
        Event::OrderReadyForShipment(e) => {
            state.ready = true;
            state.parcels = e.parcels;
        }
        Event::OrderShipped(_) => state.shipped = true,
        Event::StockReleased(_) => state.released = true,
        Event::OrderCancelled(_) => state.cancelled = true,
    }
    state
}
