//! The OCR worker of pagefleet.
//!
//! The [`engine`] is a synchronous library that turns one page image into
//! lines of text with boxes and confidence, using PP-OCR detection, optional
//! 180° line classification and recognition models on ONNX Runtime; the
//! [`pool`] runs engines on dedicated threads; the [`stage`] pulls page jobs
//! from JetStream and publishes page results; [`heartbeat`] tells the fleet
//! what this worker is doing.
//!
//! Reads: page jobs, page images, model files.
//! Writes: page results and failures, heartbeats in `pagefleet-workers`.

#![deny(unreachable_pub)]

pub mod engine;
pub mod heartbeat;
pub mod pool;
pub mod slots;
pub mod stage;

pub use engine::{Engine, EngineConfig, EngineError, ErrorKind, ModelSet, Profile};
pub use pool::{JobHandle, Pool};
pub use slots::PoolConfig;
