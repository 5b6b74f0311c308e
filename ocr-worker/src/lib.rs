//! The OCR worker of pagefleet.
//!
//! Today this crate is the OCR engine: a synchronous library that turns one page
//! image into lines of text with boxes and confidence, using PP-OCR detection,
//! optional 180° line classification and recognition models on ONNX Runtime. It
//! has no async runtime inside; the worker service that pulls page jobs from
//! JetStream and publishes page results will drive it from dedicated threads.
//!
//! Reads: a decoded page image (`image::RgbImage`) and model files.
//! Writes: [`pagefleet_schemas::PageOcr`].

#![deny(unreachable_pub)]

pub mod engine;
pub mod pool;
pub mod stage;

pub use engine::{Engine, EngineConfig, EngineError, ErrorKind, ModelSet, Profile};
pub use pool::{JobHandle, Pool};
