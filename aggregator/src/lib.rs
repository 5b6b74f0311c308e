//! The aggregator stage of pagefleet: page results in, finished jobs out.
//!
//! Reads: [`ResultMessage`]s (page results, page failures, job manifests) from
//! `pagefleet.results.>`, and max-deliveries advisories of the page stream.
//! Writes: job state in the `pagefleet-jobs` bucket (compare-and-set, so
//! several aggregators can run side by side), each page's result object, the
//! job's `result.txt`, `result.md`, `result.json`, `result.pdf` (the
//! searchable PDF), `result.hocr` and `result.alto.xml` as asked, and
//! `progress` and
//! `completed` events on `pagefleet.events.<job_id>.*`. A job is completed
//! exactly once: its completion event carries a `Nats-Msg-Id`.
//!
//! [`ResultMessage`]: pagefleet_schemas::messages::ResultMessage

#![deny(unreachable_pub)]

pub mod pdf;
pub mod report;
pub mod stage;
pub mod xml;
