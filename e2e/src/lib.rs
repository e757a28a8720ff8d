//! Whole-saga tests against real processes: the five services, Apache
//! Kafka, PostgreSQL and the trace viewer, started through
//! [`omnisaga_stack`] (the launcher behind `make run`); the fault suite is
//! [`omnisaga_chaos`], the load generator [`omnisaga_bench`]. A test
//! imports all of them from here.

pub use omnisaga_bench as bench;
pub use omnisaga_chaos as chaos;
pub use omnisaga_stack::*;
