//! The aggregator stage of pagefleet: page results in, finished jobs out.
//!
//! It will consume page results and failures, keep each job's state in JetStream
//! KV, and write each job's combined text, markdown and JSON exactly once.
//! Nothing is implemented yet: the crate reserves its place in the workspace so
//! the binary's shape stays fixed.
#![deny(unreachable_pub)]
