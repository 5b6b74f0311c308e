//! The engine's one error type.

use std::path::PathBuf;

/// What the caller should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The runtime or a model is missing or broken: nothing will work until the
    /// installation is fixed.
    Setup,
    /// This page cannot be processed (bad size, undecodable data): give up on it.
    BadInput,
    /// Inference failed or was cancelled; another try may succeed.
    Inference,
}

/// An error of the OCR engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A model, dictionary or library file is missing or unreadable.
    #[error("{what} not found at {path}: {hint}")]
    Missing {
        /// What was looked for.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// How to fix it.
        hint: String,
    },
    /// ONNX Runtime could not be loaded or set up.
    #[error("onnx runtime: {0}")]
    Runtime(String),
    /// A model does not have the inputs, outputs or vocabulary expected of it.
    #[error("model {path}: {message}")]
    Model {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The page cannot be processed.
    #[error("bad page: {0}")]
    BadInput(String),
    /// The page was cancelled (its deadline passed).
    #[error("cancelled")]
    Cancelled,
    /// Running a model failed.
    #[error("inference failed in {step}: {message}")]
    Inference {
        /// detect, classify or recognize.
        step: &'static str,
        /// ONNX Runtime's message.
        message: String,
    },
}

impl EngineError {
    /// Whether the error concerns the installation, the page, or the run.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Missing { .. } | Self::Runtime(_) | Self::Model { .. } => ErrorKind::Setup,
            Self::BadInput(_) => ErrorKind::BadInput,
            Self::Inference { .. } | Self::Cancelled => ErrorKind::Inference,
        }
    }
}

impl From<pagefleet_schemas::BudgetError> for EngineError {
    fn from(err: pagefleet_schemas::BudgetError) -> Self {
        Self::BadInput(err.to_string())
    }
}
