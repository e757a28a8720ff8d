//! Service tests of the order API against the real PostgreSQL and broker.
mod admin_orders;
mod audit;
mod audit_bounds;
mod auth;
mod catalog_import;
mod deadlines;
mod documents;
mod helpers;
mod limits;
mod live;
mod live_all;
mod live_cost;
mod place_order;
mod reconcile;
mod rejects_bad_input;
mod scopes;
mod stage_deadlines;
