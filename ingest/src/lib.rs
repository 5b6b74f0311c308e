//! The ingest stage of pagefleet: the ways documents enter the pipeline.
//!
//! It will store each submitted document in object storage and publish a
//! document job for the rasterizer; the HTTP API, NATS submission and bucket
//! triggers live here. Nothing is implemented yet: the crate reserves its place
//! in the workspace so the binary's shape stays fixed.
#![deny(unreachable_pub)]
