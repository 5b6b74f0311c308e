//! A job as clients see it: the body of `GET /v1/jobs/{id}`, of the NATS
//! status request's answer and of each job in `GET /v1/jobs`. Ingest fills
//! it from the job's state; clients can read it back with these types.

use serde::{Deserialize, Serialize};

use crate::Format;

/// A job as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    /// The job's id.
    pub job_id: String,
    /// `queued`, `running`, `waiting` (see `waiting`), `success`,
    /// `partial_success`, `failed` or `cancelled`.
    pub status: String,
    /// Why a running job's pages are not being read, when that is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    /// The document's file name.
    pub filename: String,
    /// Where the document came from.
    pub source: String,
    /// Model profile.
    pub profile: String,
    /// The document's language as the job names it: `auto`, or codes
    /// such as `en,de`.
    #[serde(default = "crate::language::auto")]
    pub language: String,
    /// The outputs the job writes, each fetched with `result?format=`.
    pub formats: Vec<Format>,
    /// Pages done, failed and in all.
    pub progress: Progress,
    /// Submission time, milliseconds since the Unix epoch.
    pub submitted_at_ms: u64,
    /// Completion time.
    pub finished_at_ms: Option<u64>,
    /// Why the document could not be read, if it could not.
    pub error: Option<String>,
    /// The job's metrics, once it is finished.
    pub metrics: Option<serde_json::Value>,
    /// The first pages that failed, in order, with why (at most 20; the
    /// count is in `progress`, every page in `result.json`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_pages: Vec<FailedPage>,
}

/// A page that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedPage {
    /// Page number, counted from 1.
    pub page: u32,
    /// Why it failed.
    pub error: String,
}

/// A job's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Pages read.
    pub pages_done: u32,
    /// Pages failed.
    pub pages_failed: u32,
    /// Pages in the document, once known.
    pub total_pages: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_reads_back_as_it_was_written() {
        let view = JobView {
            job_id: "j1".into(),
            status: "running".into(),
            waiting: None,
            filename: "a.pdf".into(),
            source: "upload".into(),
            profile: "fast".into(),
            language: "en".into(),
            formats: vec![Format::Txt, Format::Json],
            progress: Progress {
                pages_done: 1,
                pages_failed: 0,
                total_pages: Some(3),
            },
            submitted_at_ms: 1,
            finished_at_ms: None,
            error: None,
            metrics: None,
            failed_pages: vec![FailedPage {
                page: 2,
                error: "unreadable".into(),
            }],
        };
        let json = serde_json::to_value(&view).unwrap_or_default();
        assert_eq!(json["formats"], serde_json::json!(["txt", "json"]));
        assert!(json.get("waiting").is_none(), "{json}");
        match serde_json::from_value::<JobView>(json) {
            Ok(back) => assert_eq!(back, view),
            Err(e) => panic!("the view does not read back: {e}"),
        }
    }
}
