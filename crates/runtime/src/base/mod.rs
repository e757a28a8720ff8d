//! The bottom layer: what every other layer uses and which knows none of
//! them: the environment, the wall clock, failpoints, the metrics registry,
//! the PostgreSQL pool and migrations, waiting on a condition with a deadline.

pub mod clock;
pub mod db;
mod db_spans;
pub mod env;
pub mod exemplars;
pub mod failpoint;
pub mod metrics;
pub mod openmetrics;
pub mod process;
pub mod wait;
