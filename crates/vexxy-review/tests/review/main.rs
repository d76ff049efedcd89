//! Tests of the review loop: records, reasons, decisions, issuing, comparing.
#![allow(clippy::unwrap_used)]

mod compare;
mod decisions;
mod issue;
mod reasons;
mod records;
mod support;
