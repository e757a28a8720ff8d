//! The analytics service records every saga stage event of every order in a
//! star schema analysts query (docs/analytics.md), and answers with stage
//! counts, fulfilment time percentiles and the payment success share,
//! overall and per channel, of every order or a window's (`GET
//! /v1/summary`), one order's stages, the order facts of a window as CSV,
//! each customer's payments (for a CRM), and a dashboard for people (`GET
//! /dashboard`). Its tables are projections of the events it received,
//! kept in its own database.

pub mod api;
pub mod app;
pub mod config;
pub mod dashboard;
pub mod domain;
pub mod handlers;
pub mod projection;
pub mod store;
pub mod window;
