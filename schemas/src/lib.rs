//! Shared contracts of pagefleet.
//!
//! Every stage agrees on what is written here: the pixel budget that bounds every
//! page image before a per-pixel buffer exists; the OCR result of one page; every
//! message that crosses NATS (document job, page job, page result, page failure,
//! job manifest, job event, job state), encoded with MessagePack; every subject,
//! stream, consumer, bucket and object key ([`names`]); and the JetStream
//! topology that holds them ([`topology`]). No other crate spells a subject.
//!
//! Reads and writes nothing by itself: [`topology::ensure`] creates the streams,
//! consumers and bucket when a stage starts.

#![deny(unreachable_pub)]

mod budget;
pub mod bus;
pub mod health;
pub mod messages;
pub mod metrics;
pub mod names;
mod page;
pub mod queue;
pub mod running;
pub mod state;
pub mod store;
pub mod topology;
pub mod trace;

pub use budget::{
    BudgetError, DEFAULT_MAX_ASPECT_RATIO, DEFAULT_MAX_PIXELS, PixelBudget, ScaledSize,
};
pub use page::{
    Block, BlockKind, OcrLine, OcrWord, PageOcr, StepTimings, TableCell, TableShape, TextCounts,
    TextLayer, TextSource, polygon_bounds, polygon_height,
};
