//! The ingest stage of pagefleet: the ways documents enter the pipeline and
//! clients follow them.
//!
//! - [`http`]: the HTTP API (`/v1/jobs` and its results, events and
//!   cancellation; the replaced cluster's `/ocr/pdf`, `/ocr/image`,
//!   `/workers/status`, `/health`; a bucket webhook; probes; OpenAPI).
//! - a web page at `/` for people (`web`): upload, follow, read and download
//!   jobs through the same API, from files embedded in the binary.
//! - [`service`]: `pagefleet.jobs.submit` and `pagefleet.jobs.status` over
//!   NATS, registered with the NATS services API.
//! - [`bucket`]: S3 event notifications in MinIO's format from the bucket
//!   event stream, and a watcher polling a prefix.
//! - [`retention`]: ended jobs removed once their retention has passed.
//!
//! Every way in ends in [`submit::submit_document`], after [`intake`]'s
//! checks (size, type by content, page limit).
//!
//! Reads: bucket events on `pagefleet.bucket.events`, requests on
//! `pagefleet.jobs.*`, job state (`pagefleet-jobs`), worker heartbeats
//! (`pagefleet-workers`), job events, outputs in the store.
//! Writes: the source object, the job's submission record, claims in
//! `pagefleet-submissions`, [`DocumentJob`](pagefleet_schemas::messages::DocumentJob)
//! on `pagefleet.docs.<job_id>`, events on `pagefleet.events.<job_id>.*`.
//! Removes (on `DELETE`, and past the retention): a job's objects under
//! `jobs/<job_id>/`, its events, and its state (a tombstone stays); the
//! retention sweep's lease in `pagefleet-leases`.

#![deny(unreachable_pub)]

pub mod bucket;
pub mod fleet;
pub mod http;
pub mod intake;
pub mod jobs;
pub mod openapi;
pub mod retention;
pub mod service;
pub mod stage;
pub mod submit;
pub mod waiting;
mod web;

pub use intake::{DocType, Intake, IntakeError, JobDefaults, Limits};
pub use submit::{Document, SubmitError, SubmitOptions, Submitted, submit, submit_document};
