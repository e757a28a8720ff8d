//! Support for the whole-saga tests: starting the stack as processes.
