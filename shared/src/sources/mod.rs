//! Where rows come from: the lake ([`lake`]: listing, the passes over its objects, de-duplication, the events
//! and persons readers, and writing sample data) and synthetic events ([`synthetic`], for tests and benchmarks).
//! A source never imports the engine's sinks or a destination.

pub mod lake;
pub mod synthetic;
