//! Integration tests of vexxy-vex: writers (snapshots and schemas), readers
//! (fixtures and bad input), round trips, merge and validation.

mod merge;
mod readers;
mod roundtrip;
mod support;
mod validate;
mod writers;
