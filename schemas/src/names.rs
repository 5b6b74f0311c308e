//! Every subject, stream, consumer, bucket and object key of pagefleet. No other
//! crate spells one.

/// Work queue of document jobs: one message per submitted document.
pub const DOCS_STREAM: &str = "PAGEFLEET_DOCS";
/// Work queue of page jobs: one message per page, subject carries the profile.
pub const PAGES_STREAM: &str = "PAGEFLEET_PAGES";
/// Page results, page failures and job manifests, consumed by the aggregator.
pub const RESULTS_STREAM: &str = "PAGEFLEET_RESULTS";
/// Job events (progress, completion), kept for a while, one subject per job.
pub const EVENTS_STREAM: &str = "PAGEFLEET_EVENTS";
/// Max-deliveries advisories of the page stream, kept until the aggregator has
/// recorded the page as failed (a core subscription would lose those raised
/// while no aggregator runs).
pub const ADVISORIES_STREAM: &str = "PAGEFLEET_ADVISORIES";
/// Key-value bucket of job state, one key per job id.
pub const JOBS_BUCKET: &str = "pagefleet-jobs";
/// Key-value bucket of submissions that must create one job however often
/// they are repeated (idempotency keys, bucket objects): a digest of what was
/// submitted maps to its job id.
pub const SUBMISSIONS_BUCKET: &str = "pagefleet-submissions";
/// Key-value bucket of worker heartbeats, one key per worker, each expiring
/// when its worker stops sending.
pub const WORKERS_BUCKET: &str = "pagefleet-workers";
/// S3 event notifications (MinIO's format) published into NATS by the object
/// store; ingest turns each new object under its input prefix into a job.
pub const BUCKET_EVENTS_STREAM: &str = "PAGEFLEET_BUCKET_EVENTS";
/// Key-value bucket of leases: which process runs a periodic task (the
/// retention sweep) until when.
pub const LEASES_BUCKET: &str = "pagefleet-leases";
/// The subject the object store publishes its notifications on.
pub const BUCKET_EVENTS_SUBJECT: &str = "pagefleet.bucket.events";
/// Durable consumer of ingest on the bucket event stream.
pub const BUCKET_EVENTS_CONSUMER: &str = "ingest-bucket-events";

/// Name of the NATS service (`nats micro ls`) that takes submissions.
pub const SERVICE_NAME: &str = "pagefleet";
/// Group of the service's endpoints: `pagefleet.jobs.submit`, `pagefleet.jobs.status`.
pub const SERVICE_GROUP: &str = "pagefleet.jobs";
/// Endpoint that takes a JSON submission and answers with the job id.
pub const SUBMIT_ENDPOINT: &str = "submit";
/// Endpoint that takes `{"job_id": ...}` and answers with the job's status.
pub const STATUS_ENDPOINT: &str = "status";

/// Durable consumer of the rasterizer stage.
pub const RASTERIZER_CONSUMER: &str = "rasterizer";
/// Durable consumer of the aggregator stage.
pub const AGGREGATOR_CONSUMER: &str = "aggregator";
/// Durable consumer of the aggregator on the advisory stream.
pub const ADVISORY_CONSUMER: &str = "aggregator-advisories";

/// Subject filter of the document stream.
pub const DOCS_SUBJECTS: &str = "pagefleet.docs.*";
/// Subject filter of the page stream.
pub const PAGES_SUBJECTS: &str = "pagefleet.pages.>";
/// Subject filter of the result stream.
pub const RESULTS_SUBJECTS: &str = "pagefleet.results.>";
/// Subject filter of the event stream.
pub const EVENTS_SUBJECTS: &str = "pagefleet.events.>";

/// Subject of a document job.
pub fn doc_subject(job_id: &str) -> String {
    format!("pagefleet.docs.{job_id}")
}

/// The lanes of the page stream: pages of small jobs go to the lane that
/// workers serve first, so that a short document is not queued behind a
/// long one; pages of long jobs go to the bulk lane, which keeps a share of
/// every worker's pulls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Jobs of at most [`SMALL_JOB_PAGES`] pages.
    Small,
    /// Longer jobs.
    Bulk,
}

/// The most pages a job in the small lane has: a few page-times of work.
pub const SMALL_JOB_PAGES: u32 = 8;

impl Lane {
    /// Every lane, in the order workers serve them.
    pub const ALL: [Lane; 2] = [Lane::Small, Lane::Bulk];

    /// The lane of a job of `page_count` pages.
    pub fn of_job(page_count: u32) -> Self {
        if page_count <= SMALL_JOB_PAGES {
            Self::Small
        } else {
            Self::Bulk
        }
    }

    /// Its subject token.
    pub fn token(self) -> &'static str {
        match self {
            Self::Small => "small",
            Self::Bulk => "bulk",
        }
    }
}

/// Subject of a page job: the profile comes first so that separate worker
/// pools can serve separate profiles, then the lane.
pub fn page_subject(profile: &str, lane: Lane, job_id: &str, page: u32) -> String {
    format!("pagefleet.pages.{profile}.{}.{job_id}.{page}", lane.token())
}

/// Every page job of one job, whatever its profile and lane.
pub fn pages_of_job(job_id: &str) -> String {
    format!("pagefleet.pages.*.*.{job_id}.*")
}

/// Filter of the page jobs of one profile and lane.
pub fn pages_of_lane(profile: &str, lane: Lane) -> String {
    format!("pagefleet.pages.{profile}.{}.>", lane.token())
}

/// Durable consumer of the OCR workers serving one lane of `profile`. The
/// bulk lane keeps the name of the one consumer of earlier versions.
pub fn worker_consumer(profile: &str, lane: Lane) -> String {
    match lane {
        Lane::Bulk => format!("ocr-worker-{profile}"),
        Lane::Small => format!("ocr-worker-{profile}-small"),
    }
}

/// Subject of a page's result or failure.
pub fn result_subject(job_id: &str, page: u32) -> String {
    format!("pagefleet.results.{job_id}.{page}")
}

/// Subject of a job's manifest (its page count, or why it has none).
pub fn manifest_subject(job_id: &str) -> String {
    format!("pagefleet.results.{job_id}.manifest")
}

/// Subject of one kind of event of a job.
pub fn event_subject(job_id: &str, kind: &str) -> String {
    format!("pagefleet.events.{job_id}.{kind}")
}

/// Every event of one job.
pub fn events_of_job(job_id: &str) -> String {
    format!("pagefleet.events.{job_id}.*")
}

/// Advisory JetStream publishes when a page job reached its delivery limit.
pub fn max_deliveries_advisory(consumer: &str) -> String {
    format!("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{PAGES_STREAM}.{consumer}")
}

/// Every page-stream max-deliveries advisory, whatever the worker pool.
pub const PAGES_MAX_DELIVERIES_ADVISORIES: &str =
    "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.PAGEFLEET_PAGES.*";

/// Job id and page number of a page job's subject.
pub fn parse_page_subject(subject: &str) -> Option<(String, u32)> {
    let mut parts = subject.strip_prefix("pagefleet.pages.")?.split('.');
    let (_profile, _lane, job, page) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some((job.to_owned(), page.parse().ok()?))
}

/// This process's name among a stage's instances: the stage, the host
/// name and the process id.
pub fn instance_name(stage: &str) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let host = if host.is_empty() { "localhost" } else { &host };
    format!("{stage}-{host}-{}", std::process::id())
}

/// `Nats-Msg-Id` of a document job.
pub fn doc_msg_id(job_id: &str) -> String {
    format!("doc.{job_id}")
}

/// `Nats-Msg-Id` of a page job.
pub fn page_msg_id(job_id: &str, page: u32) -> String {
    format!("page.{job_id}.{page}")
}

/// `Nats-Msg-Id` of a page result or failure from one delivery of the page:
/// a publish repeated by that delivery is dropped by the stream, while a
/// second delivery's result reaches the aggregator, which keeps the first
/// and counts the redelivery.
pub fn result_msg_id(job_id: &str, page: u32, delivery: u64) -> String {
    format!("result.{job_id}.{page}.{delivery}")
}

/// `Nats-Msg-Id` of a manifest.
pub fn manifest_msg_id(job_id: &str) -> String {
    format!("manifest.{job_id}")
}

/// `Nats-Msg-Id` of a job's completion event.
pub fn completed_msg_id(job_id: &str) -> String {
    format!("completed.{job_id}")
}

/// `Nats-Msg-Id` of a job's waiting event: ingest replicas that all notice
/// the job publish it once.
pub fn waiting_msg_id(job_id: &str) -> String {
    format!("waiting.{job_id}")
}

/// Subject filter of every job's event of one kind.
pub fn events_of_kind(kind: &str) -> String {
    format!("pagefleet.events.*.{kind}")
}

/// Object-store keys of a job.
pub mod keys {
    /// The submitted document.
    pub fn source(job_id: &str) -> String {
        format!("jobs/{job_id}/source")
    }
    /// A rendered page image (PNG).
    pub fn page_image(job_id: &str, page: u32) -> String {
        format!("jobs/{job_id}/pages/{page:05}.png")
    }
    /// A page's own text layer, beside its image.
    pub fn page_layer(job_id: &str, page: u32) -> String {
        format!("jobs/{job_id}/pages/{page:05}.layer.mpk")
    }
    /// A page's OCR result, kept by the aggregator until the job is assembled.
    pub fn page_result(job_id: &str, page: u32) -> String {
        format!("{}/{page:05}.mpk", page_results(job_id))
    }
    /// The folder of a job's page results.
    pub fn page_results(job_id: &str) -> String {
        format!("jobs/{job_id}/results")
    }
    /// One output of a finished job.
    pub fn output(job_id: &str, format: crate::Format) -> String {
        format!("jobs/{job_id}/result.{}", format.extension())
    }
}

/// Key of a page's record in the jobs bucket: beside its job's state
/// (`<job>`), one token more, so that a filter on one token (`*`) sees
/// job states only.
pub fn page_record_key(job_id: &str, page: u32) -> String {
    format!("{job_id}.{page}")
}

/// The subject of the jobs bucket's stream that holds job states only (one
/// token after the prefix), not the pages' records.
pub fn job_states_subject() -> String {
    format!("$KV.{JOBS_BUCKET}.*")
}

/// The subject of the jobs bucket's stream that holds a job's page records.
pub fn page_records_subject(job_id: &str) -> String {
    format!("$KV.{JOBS_BUCKET}.{job_id}.*")
}

/// Key of a worker's heartbeat in the workers bucket (a KV key allows
/// letters, digits, `-`, `_`, `=`, `.` and `/`).
pub fn worker_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_=".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Whether a string may be used as a job id: it becomes one subject token and
/// one path segment.
pub fn valid_job_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_key_has_its_format_s_extension() {
        assert_eq!(
            keys::output("j", crate::Format::Alto),
            "jobs/j/result.alto.xml"
        );
    }

    #[test]
    fn subjects_fall_under_their_streams() {
        assert!(doc_subject("j1").starts_with("pagefleet.docs."));
        assert_eq!(
            page_subject("fast", Lane::Small, "j1", 3),
            "pagefleet.pages.fast.small.j1.3"
        );
        for lane in Lane::ALL {
            assert!(
                page_subject("fast", lane, "j1", 3)
                    .starts_with(pages_of_lane("fast", lane).trim_end_matches('>'))
            );
        }
        assert_eq!(Lane::of_job(1), Lane::Small);
        assert_eq!(Lane::of_job(SMALL_JOB_PAGES + 1), Lane::Bulk);
        assert_eq!(manifest_subject("j1"), "pagefleet.results.j1.manifest");
        assert_eq!(
            event_subject("j1", "completed"),
            "pagefleet.events.j1.completed"
        );
        assert_eq!(keys::page_image("j1", 7), "jobs/j1/pages/00007.png");
        assert_eq!(
            parse_page_subject(&page_subject("fast", Lane::Bulk, "j1", 3)),
            Some(("j1".into(), 3))
        );
        assert_eq!(parse_page_subject("pagefleet.pages.fast.small.j1"), None);
    }

    #[test]
    fn job_ids_are_single_tokens() {
        assert!(valid_job_id("0b7c-aa_1"));
        for bad in ["", "a.b", "a b", "a*", "a>", "../x", &"x".repeat(65)] {
            assert!(!valid_job_id(bad), "{bad}");
        }
    }
}
