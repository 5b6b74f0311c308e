//! The checks every submission passes, whichever way it came in: the size
//! limit, the type decided by content, and the page limit handed to the
//! rasterizer. A refusal names the limit.

use std::fmt;

use async_nats::jetstream;
use bytes::Bytes;
use object_store::{GetOptions, GetRange, ObjectStore};
use pagefleet_schemas::{DocumentKind, sniff};
use pagefleet_stagekit::store::Store;

use crate::submit::{self, Document, SubmitError, SubmitOptions, Submitted};

/// A document type pagefleet can be told to accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocType {
    /// PDF.
    Pdf,
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// TIFF, any number of pages.
    Tiff,
}

impl DocType {
    /// Every type.
    pub const ALL: [DocType; 4] = [Self::Pdf, Self::Png, Self::Jpeg, Self::Tiff];

    /// The type's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pdf => "pdf",
            Self::Png => "png",
            Self::Jpeg => "jpeg",
            Self::Tiff => "tiff",
        }
    }

    /// Whether the type is an image.
    pub fn is_image(self) -> bool {
        self != Self::Pdf
    }

    fn of(kind: DocumentKind) -> Self {
        match kind {
            DocumentKind::Pdf => Self::Pdf,
            DocumentKind::Png => Self::Png,
            DocumentKind::Jpeg => Self::Jpeg,
            DocumentKind::Tiff => Self::Tiff,
        }
    }

    /// The type of a document, from its first bytes.
    pub fn sniff(head: &[u8]) -> Option<Self> {
        sniff(head).map(Self::of)
    }
}

impl std::str::FromStr for DocType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pdf" => Ok(Self::Pdf),
            "png" => Ok(Self::Png),
            "jpg" | "jpeg" => Ok(Self::Jpeg),
            "tif" | "tiff" => Ok(Self::Tiff),
            other => Err(format!(
                "unknown document type {other:?}: pdf, png, jpeg or tiff"
            )),
        }
    }
}

impl fmt::Display for DocType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a deployment accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest document, bytes.
    pub max_upload_bytes: u64,
    /// Most pages per job.
    pub max_pages: u32,
    /// Accepted types, decided by content.
    pub allowed_types: Vec<DocType>,
    /// Profiles a job may name besides those live workers advertise.
    pub profiles: Vec<String>,
    /// How long a rasterized job may go without a page read before its
    /// status says that no worker serves its profile.
    pub waiting_after: std::time::Duration,
}

/// The profiles of this build.
pub const PROFILES: [&str; 2] = ["fast", "accurate"];

/// `fast-latin` and `accurate-latin` stay accepted for a while as names of
/// `fast` and `accurate` with language `en`: every worker holds both heads
/// of its recognizer, and the language decides which reads a page.
pub fn latin_alias(options: &mut SubmitOptions) {
    let base = match options.profile.as_str() {
        "fast-latin" => "fast",
        "accurate-latin" => "accurate",
        _ => return,
    };
    options.profile = base.to_owned();
    options.language = pagefleet_schemas::language::Language::parse("en").unwrap_or_default();
}

/// The default of [`Limits::max_upload_bytes`].
pub const MAX_UPLOAD_BYTES: u64 = 100 * 1024 * 1024;

/// The default of [`Limits::max_pages`].
pub const MAX_JOB_PAGES: u32 = 10_000;

/// The default of [`Limits::waiting_after`].
pub const WAITING_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_upload_bytes: MAX_UPLOAD_BYTES,
            max_pages: MAX_JOB_PAGES,
            allowed_types: DocType::ALL.to_vec(),
            profiles: PROFILES.map(str::to_owned).to_vec(),
            waiting_after: WAITING_AFTER,
        }
    }
}

/// Why a submission was not taken.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// Over the size limit.
    #[error("document is {size} bytes, over the limit of {limit} bytes (max upload size)")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Not an accepted type.
    #[error("{0}")]
    WrongType(String),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The named object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The job names a profile that no worker serves and none is configured.
    #[error("profile {profile:?} is unknown: known profiles are {}", known.join(", "))]
    UnknownProfile {
        /// The profile asked for.
        profile: String,
        /// The profiles the deployment knows.
        known: Vec<String>,
    },
    /// Submission failed.
    #[error(transparent)]
    Submit(#[from] SubmitError),
}

impl pagefleet_stagekit::queue::Fault for IntakeError {
    fn kind(&self) -> pagefleet_stagekit::queue::FaultKind {
        if self.is_transient() {
            pagefleet_stagekit::queue::FaultKind::Transient {
                retry_after: pagefleet_stagekit::queue::RETRY_AFTER,
            }
        } else {
            pagefleet_stagekit::queue::FaultKind::Permanent
        }
    }
}

impl IntakeError {
    /// Whether a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Submit(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// Defaults of jobs submitted without options.
#[derive(Debug, Clone, PartialEq)]
pub struct JobDefaults {
    /// Resolution PDF pages are rendered at, and images that declare none
    /// are taken at.
    pub dpi: f32,
    /// Model profile.
    pub profile: String,
    /// Pixel budget per page.
    pub max_pixels: u64,
    /// Output formats of jobs that name none (bucket-triggered jobs among
    /// them); empty: the default ones.
    pub formats: Vec<pagefleet_schemas::Format>,
    /// What jobs that name no mode do with PDF pages that carry text.
    pub text_layer: pagefleet_schemas::TextLayer,
    /// The language of jobs that name none (bucket-triggered jobs among
    /// them).
    pub language: pagefleet_schemas::language::Language,
}

impl Default for JobDefaults {
    fn default() -> Self {
        Self {
            dpi: pagefleet_schemas::DEFAULT_DPI,
            profile: PROFILES[0].to_owned(),
            max_pixels: pagefleet_schemas::DEFAULT_MAX_PIXELS,
            formats: Vec::new(),
            text_layer: pagefleet_schemas::TextLayer::Auto,
            language: pagefleet_schemas::language::Language::AUTO,
        }
    }
}

/// Takes submissions in: checks them, then submits.
#[derive(Clone)]
pub struct Intake {
    /// JetStream.
    pub js: jetstream::Context,
    /// The store.
    pub store: Store,
    /// What is accepted.
    pub limits: Limits,
    /// Job defaults.
    pub defaults: JobDefaults,
}

impl Intake {
    /// Options from the defaults and the limits.
    pub fn default_options(&self) -> SubmitOptions {
        let mut options = SubmitOptions {
            dpi: self.defaults.dpi,
            profile: self.defaults.profile.clone(),
            max_pixels: self.defaults.max_pixels,
            max_pages: self.limits.max_pages,
            formats: self.defaults.formats.clone(),
            text_layer: self.defaults.text_layer,
            language: self.defaults.language.clone(),
            ..SubmitOptions::default()
        };
        latin_alias(&mut options);
        options
    }

    /// Checks a document's size and type; returns its type.
    pub fn check(&self, size: u64, head: &[u8]) -> Result<DocType, IntakeError> {
        if size > self.limits.max_upload_bytes {
            return Err(IntakeError::TooLarge {
                size,
                limit: self.limits.max_upload_bytes,
            });
        }
        let allowed = || {
            self.limits
                .allowed_types
                .iter()
                .map(|t| t.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some(kind) = DocType::sniff(head) else {
            let what = if size == 0 {
                "the document is empty".to_owned()
            } else {
                "the content is not a document type pagefleet reads".to_owned()
            };
            return Err(IntakeError::WrongType(format!(
                "{what}; allowed types: {} (decided by content, not by file name)",
                allowed()
            )));
        };
        if !self.limits.allowed_types.contains(&kind) {
            return Err(IntakeError::WrongType(format!(
                "{kind} documents are not accepted here; allowed types: {}",
                allowed()
            )));
        }
        Ok(kind)
    }

    /// Checks that a profile is one the deployment serves: configured, or
    /// advertised by a live worker.
    pub async fn check_profile(&self, profile: &str) -> Result<(), IntakeError> {
        if self.limits.profiles.iter().any(|p| p == profile) {
            return Ok(());
        }
        let known = crate::fleet::known_profiles(
            &self.js,
            &self.limits.profiles,
            pagefleet_schemas::messages::now_ms(),
        )
        .await;
        if known.iter().any(|p| p == profile) {
            return Ok(());
        }
        Err(IntakeError::UnknownProfile {
            profile: profile.to_owned(),
            known,
        })
    }

    /// Checks and submits uploaded bytes.
    pub async fn submit_upload(
        &self,
        filename: &str,
        bytes: Bytes,
        options: &SubmitOptions,
    ) -> Result<(Submitted, DocType), IntakeError> {
        let kind = self.check(bytes.len() as u64, &bytes)?;
        self.check_profile(&options.profile).await?;
        let document = Document::Upload {
            filename: filename.to_owned(),
            bytes,
        };
        let submitted = submit::submit_document(&self.js, &self.store, document, options).await?;
        Ok((submitted, kind))
    }

    /// Checks the object `key` of the store (its size, and its type from its
    /// first bytes) and submits it in place; `source` says where it came from.
    pub async fn submit_stored(
        &self,
        key: String,
        source: String,
        options: &SubmitOptions,
    ) -> Result<Submitted, IntakeError> {
        self.check_profile(&options.profile).await?;
        let path = object_store::path::Path::from(key.as_str());
        let head = GetOptions {
            range: Some(GetRange::Bounded(0..1024)),
            ..Default::default()
        };
        let object = match self.store.get_opts(&path, head).await {
            Ok(o) => o,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(IntakeError::NotFound(format!("object {key} not found")));
            }
            // An empty object has no first bytes to give.
            Err(e) if e.to_string().contains("Range") => {
                return Err(IntakeError::WrongType(format!(
                    "object {key} is empty; allowed types: pdf, png, jpeg, tiff"
                )));
            }
            Err(e) => {
                return Err(SubmitError::Store(
                    pagefleet_stagekit::store::StoreError::Unavailable(format!("{key}: {e}")),
                )
                .into());
            }
        };
        let size = object.meta.size;
        let first = object
            .bytes()
            .await
            .map_err(|e| SubmitError::Publish(format!("{key}: {e}")))?;
        self.check(size, &first)?;
        let document = Document::Stored { key, size, source };
        Ok(submit::submit_document(&self.js, &self.store, document, options).await?)
    }
}
