//! Shared contracts of pagefleet.
//!
//! Every stage agrees on what is written here: the pixel budget that bounds every
//! page image before a per-pixel buffer exists; the OCR result of one page; every
//! message that crosses NATS (document job, page job, page result, page failure,
//! job manifest, job event, job state), encoded with MessagePack; the one
//! submission request of every way in ([`submit`]) and the job view every
//! way out answers with ([`view`]); the document types read;
//! and every subject, stream, consumer, bucket and object key ([`names`]). No
//! other crate spells a subject.
//!
//! Types, encodings and names only: this crate reads and writes nothing. What
//! acts on them (the queue driver, the store, the topology set up at start-up)
//! is `pagefleet-stagekit`'s.

#![deny(unreachable_pub)]

mod budget;
mod document;
mod format;
pub mod language;
pub mod messages;
pub mod names;
mod page;
pub mod submit;
pub mod view;

pub use budget::{
    BudgetError, DEFAULT_MAX_ASPECT_RATIO, DEFAULT_MAX_PIXELS, PixelBudget, ScaledSize,
};
pub use document::{DEFAULT_DPI, DocumentKind, sniff};
pub use format::{Format, UnknownFormat};
pub use page::{
    Block, BlockKind, LayerCheck, OcrLine, OcrWord, PageOcr, StepTimings, TableCell, TableShape,
    TextCounts, TextLayer, TextLayerLines, TextSource, polygon_bounds, polygon_height,
};
