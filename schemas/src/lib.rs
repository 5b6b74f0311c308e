//! Shared contracts of pagefleet.
//!
//! Every stage agrees on what is written here: the pixel budget that bounds every
//! page image before a per-pixel buffer exists, and the OCR result of one page
//! (lines, boxes, confidence, counts, step timings). The pipeline's NATS messages,
//! subjects, streams and buckets are defined in this crate as they are added, so
//! no other crate ever spells one.
//!
//! Reads nothing, writes nothing: plain serde types and pure functions.

#![deny(unreachable_pub)]

mod budget;
mod page;

pub use budget::{
    BudgetError, DEFAULT_MAX_ASPECT_RATIO, DEFAULT_MAX_PIXELS, PixelBudget, ScaledSize,
};
pub use page::{OcrLine, PageOcr, StepTimings, TextCounts};
