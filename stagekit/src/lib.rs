//! What every pagefleet stage runs on.
//!
//! The contracts the stages agree on are `pagefleet-schemas`'; this crate
//! is how a stage acts on them: the one queue driver through which every
//! stage consumes its JetStream work queue ([`queue`]), acknowledged
//! publishing with trace context ([`bus`], [`trace`]), the object store
//! ([`store`]), the streams, consumers and buckets set up at start-up
//! ([`topology`]), a job's state changed by compare-and-set ([`state`]),
//! the handle of a started stage ([`running`]), the connection checks behind
//! readiness ([`health`]), the metrics more than one stage records
//! ([`metrics`]), and PDFium for the stages that read or write PDFs
//! ([`pdfium`]), and the resolution an image file declares ([`resolution`]).

#![deny(unreachable_pub)]

pub mod bus;
pub mod health;
pub mod metrics;
pub mod pdfium;
pub mod queue;
pub mod resolution;
pub mod running;
pub mod state;
pub mod store;
pub mod topology;
pub mod trace;
