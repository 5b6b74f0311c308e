//! Bucket triggers: "drop a document in the bucket, get its text beside it".
//!
//! S3 event notifications in MinIO's format arrive over NATS (captured in the
//! bucket event stream) or posted to the webhook endpoint; a watcher polls a
//! prefix for stores that send none. Each new object under the input prefix
//! becomes one job, however often its event is repeated: the object's key and
//! version (ETag, else sequencer) are claimed in the submissions bucket.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use object_store::ObjectStore;
use pagefleet_schemas::names;
use pagefleet_stagekit::queue::{
    ConsumerSpec, Delivery, Driver, DriverError, Fault, FaultKind, Handled, Handler,
};
use pagefleet_stagekit::store::Store;
use pagefleet_stagekit::topology::TopologyConfig;
use serde::Deserialize;
use tracing::{info, warn};

use crate::intake::{Intake, IntakeError};
use crate::submit::Submitted;

/// Where bucket-triggered documents come from and where their results go.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketConfig {
    /// The bucket the store lives in (`None` for a local folder store: events
    /// are then matched on their key alone).
    pub bucket: Option<String>,
    /// The store's own prefix inside the bucket (empty for none).
    pub store_prefix: String,
    /// Only objects under this prefix (relative to the store) start jobs.
    pub input_prefix: String,
    /// Results go to `<output_prefix><key below input_prefix>.txt|.md|.json|.hocr|.alto.xml`.
    pub output_prefix: String,
}

/// The default of [`BucketConfig::input_prefix`].
pub const INPUT_PREFIX: &str = "inbox/";
/// The default of [`BucketConfig::output_prefix`].
pub const OUTPUT_PREFIX: &str = "outbox/";

impl Default for BucketConfig {
    fn default() -> Self {
        Self {
            bucket: None,
            store_prefix: String::new(),
            input_prefix: INPUT_PREFIX.to_owned(),
            output_prefix: OUTPUT_PREFIX.to_owned(),
        }
    }
}

impl BucketConfig {
    /// The store key of an object of the bucket, if it is an input.
    fn input_key(&self, bucket: &str, object_key: &str) -> Option<String> {
        if let Some(own) = &self.bucket
            && own != bucket
        {
            return None;
        }
        let key = object_key.strip_prefix(&self.store_prefix)?;
        let key = key.trim_start_matches('/');
        (key.starts_with(&self.input_prefix) && !key.ends_with('/')).then(|| key.to_owned())
    }

    /// Where the outputs of an input go.
    pub fn output_base(&self, key: &str) -> String {
        let below = key.strip_prefix(&self.input_prefix).unwrap_or(key);
        format!("{}{below}", self.output_prefix)
    }

    /// How the source is shown in the job's record.
    fn source(&self, key: &str) -> String {
        match &self.bucket {
            Some(b) if self.store_prefix.is_empty() => format!("s3://{b}/{key}"),
            Some(b) => format!("s3://{b}/{}/{key}", self.store_prefix.trim_end_matches('/')),
            None => key.to_owned(),
        }
    }
}

/// An S3 event notification as MinIO sends it.
#[derive(Debug, Deserialize)]
pub struct BucketEvent {
    /// `s3:ObjectCreated:Put`, ...
    #[serde(rename = "EventName", default)]
    pub event_name: String,
    /// `bucket/key` (not URL-encoded).
    #[serde(rename = "Key", default)]
    pub key: String,
    /// The records, one per object.
    #[serde(rename = "Records", default)]
    pub records: Vec<Record>,
}

/// One record of an event.
#[derive(Debug, Deserialize)]
pub struct Record {
    /// `s3:ObjectCreated:Put`, ... (AWS spells it without the `s3:`).
    #[serde(rename = "eventName", default)]
    pub event_name: String,
    /// Bucket and object.
    pub s3: S3Entity,
}

/// Bucket and object of a record.
#[derive(Debug, Deserialize)]
pub struct S3Entity {
    /// The bucket.
    pub bucket: BucketEntity,
    /// The object.
    pub object: ObjectEntity,
}

/// The bucket of a record.
#[derive(Debug, Deserialize)]
pub struct BucketEntity {
    /// Its name.
    pub name: String,
}

/// The object of a record.
#[derive(Debug, Deserialize)]
pub struct ObjectEntity {
    /// Its key, URL-encoded as a query string (`+` for a space).
    pub key: String,
    /// Its ETag.
    #[serde(rename = "eTag", default)]
    pub e_tag: String,
    /// Orders events of one key.
    #[serde(default)]
    pub sequencer: String,
}

/// Decodes an object key of an event record: `+` is a space, `%XX` a byte.
pub fn decode_key(encoded: &str) -> String {
    let plus_decoded = encoded.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_decoded)
        .decode_utf8_lossy()
        .into_owned()
}

/// What one event led to.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Triggered {
    /// The object's key in the store.
    pub key: String,
    /// Its job.
    pub job_id: String,
    /// False when an earlier event of the same object version made the job.
    pub created: bool,
}

/// Turns every created object of an event that is an input into a job.
/// Records of other kinds and objects outside the input prefix are skipped.
pub async fn handle_event(
    intake: &Intake,
    config: &BucketConfig,
    event: &BucketEvent,
) -> Result<Vec<Triggered>, IntakeError> {
    let mut triggered = Vec::new();
    for record in &event.records {
        let name = if record.event_name.is_empty() {
            &event.event_name
        } else {
            &record.event_name
        };
        if !name.trim_start_matches("s3:").starts_with("ObjectCreated:") {
            continue;
        }
        let object_key = decode_key(&record.s3.object.key);
        let Some(key) = config.input_key(&record.s3.bucket.name, &object_key) else {
            continue;
        };
        let version = match (&record.s3.object.e_tag, &record.s3.object.sequencer) {
            (etag, _) if !etag.is_empty() => etag.trim_matches('"').to_owned(),
            (_, seq) => seq.clone(),
        };
        let submitted = submit_object(intake, config, &key, &version).await?;
        triggered.push(Triggered {
            key,
            job_id: submitted.job_id,
            created: submitted.created,
        });
    }
    Ok(triggered)
}

/// Submits an object of the store once per version.
async fn submit_object(
    intake: &Intake,
    config: &BucketConfig,
    key: &str,
    version: &str,
) -> Result<Submitted, IntakeError> {
    let mut options = intake.default_options();
    options.idempotency_key = Some(format!("object:{key}@{version}"));
    options.output_base = Some(config.output_base(key));
    let submitted = intake
        .submit_stored(key.to_owned(), config.source(key), &options)
        .await?;
    if submitted.created {
        info!(%key, job_id = %submitted.job_id, "object submitted");
    }
    Ok(submitted)
}

/// Why a bucket event made no job.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The event is not JSON of MinIO's shape.
    #[error("unreadable bucket event: {0}")]
    Unreadable(#[from] serde_json::Error),
    /// Its object could not be submitted.
    #[error(transparent)]
    Intake(#[from] IntakeError),
}

impl Fault for EventError {
    fn kind(&self) -> FaultKind {
        match self {
            Self::Unreadable(_) => FaultKind::Permanent,
            Self::Intake(e) => e.kind(),
        }
    }
}

/// The bucket event consumer's handling of events.
struct Events {
    intake: Intake,
    config: BucketConfig,
}

impl Handler for Events {
    type Job = BucketEvent;
    type Error = EventError;

    fn decode(&self, payload: &[u8]) -> Result<BucketEvent, EventError> {
        Ok(serde_json::from_slice(payload)?)
    }

    fn span(&self, event: &BucketEvent, _delivery: &Delivery) -> tracing::Span {
        tracing::info_span!("bucket_event", key = %event.key)
    }

    async fn handle(
        &self,
        event: &BucketEvent,
        _delivery: &Delivery,
    ) -> Result<Handled, EventError> {
        handle_event(&self.intake, &self.config, event).await?;
        Ok(Handled::Done)
    }
}

/// Consumes the bucket event stream until `shutdown`: each event is
/// acknowledged once its jobs exist, kept while NATS or the store is out,
/// and dropped (with a warning) when it cannot be read or refers to an
/// object that cannot be a job.
pub async fn consume_events(
    intake: Intake,
    config: BucketConfig,
    topology: TopologyConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + Clone + 'static,
) -> Result<(), DriverError> {
    let driver = Driver {
        what: "bucket event",
        concurrency: 4,
        batch: 16,
        expires: Duration::from_secs(1),
        backoff: Default::default(),
        attempt_limit: None,
    };
    let spec = ConsumerSpec {
        stream: names::BUCKET_EVENTS_STREAM.to_owned(),
        name: names::BUCKET_EVENTS_CONSUMER.to_owned(),
        filter: names::BUCKET_EVENTS_SUBJECT.to_owned(),
        settings: topology.docs.clone(),
    };
    let js = intake.js.clone();
    let handler = std::sync::Arc::new(Events { intake, config });
    driver.run(&js, &topology, &spec, handler, shutdown).await
}

/// Polls the input prefix every `interval` and submits each object version
/// it has not submitted before, once it looks the same on two polls in a row
/// (a file still being copied into a folder store changes between them). Its
/// memory of what it submitted is the submissions bucket, so a restarted
/// watcher submits nothing twice; the sets in memory only spare the bucket a
/// look per object per poll.
pub async fn watch(
    intake: Intake,
    config: BucketConfig,
    store: Store,
    interval: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + Clone,
) {
    let mut seen: HashSet<(String, String)> = HashSet::new();
    // What the previous poll saw, not yet submitted: key to version.
    let mut settling: HashMap<String, String> = HashMap::new();
    let prefix = object_store::path::Path::from(config.input_prefix.trim_end_matches('/'));
    loop {
        let mut listing = store.list(Some(&prefix));
        while let Some(item) = tokio::select! {
            _ = shutdown.clone() => return,
            i = listing.next() => i,
        } {
            let meta = match item {
                Ok(m) => m,
                Err(e) => {
                    warn!("watching {}: {e}", config.input_prefix);
                    break;
                }
            };
            let key = meta.location.to_string();
            if !key.starts_with(&config.input_prefix) {
                continue;
            }
            // Stores quote ETags, events do not: the same version either way.
            let version = meta.e_tag.as_deref().map_or_else(
                || format!("{}-{}", meta.last_modified.timestamp_millis(), meta.size),
                |etag| etag.trim_matches('"').to_owned(),
            );
            let id = (key.clone(), version.clone());
            if seen.contains(&id) {
                continue;
            }
            let stable = format!("{version}/{}", meta.size);
            if settling.insert(key.clone(), stable.clone()) != Some(stable) {
                continue;
            }
            settling.remove(&key);
            match submit_object(&intake, &config, &key, &version).await {
                Ok(_) => {
                    seen.insert(id);
                }
                Err(e) => warn!(%key, "watcher could not submit: {e}"),
            }
        }
        tokio::select! {
            _ = shutdown.clone() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_decode_like_query_strings() {
        assert_eq!(
            decode_key("inbox%2Fannual+report+%282025%29.pdf"),
            "inbox/annual report (2025).pdf"
        );
        assert_eq!(decode_key("inbox/caf%C3%A9.pdf"), "inbox/café.pdf");
    }

    #[test]
    fn only_inputs_of_the_store_bucket_count() {
        let config = BucketConfig {
            bucket: Some("docs".into()),
            store_prefix: String::new(),
            input_prefix: "inbox/".into(),
            output_prefix: "outbox/".into(),
        };
        assert_eq!(
            config.input_key("docs", "inbox/a.pdf").as_deref(),
            Some("inbox/a.pdf")
        );
        assert_eq!(config.input_key("other", "inbox/a.pdf"), None);
        assert_eq!(config.input_key("docs", "outbox/a.pdf.txt"), None);
        assert_eq!(config.input_key("docs", "jobs/x/source"), None);
        assert_eq!(config.input_key("docs", "inbox/folder/"), None);
        assert_eq!(config.output_base("inbox/a/b.pdf"), "outbox/a/b.pdf");
        let prefixed = BucketConfig {
            store_prefix: "pagefleet/".into(),
            ..config
        };
        assert_eq!(
            prefixed
                .input_key("docs", "pagefleet/inbox/a.pdf")
                .as_deref(),
            Some("inbox/a.pdf")
        );
        assert_eq!(prefixed.input_key("docs", "inbox/a.pdf"), None);
        assert_eq!(
            prefixed.source("inbox/a.pdf"),
            "s3://docs/pagefleet/inbox/a.pdf"
        );
    }

    #[test]
    fn minio_fixture_parses() {
        let body = include_str!("../tests/fixtures/minio-put-event.json");
        let event: BucketEvent = serde_json::from_str(body).unwrap();
        assert_eq!(event.event_name, "s3:ObjectCreated:Put");
        let record = &event.records[0];
        assert_eq!(record.s3.bucket.name, "pagefleet");
        assert_eq!(
            decode_key(&record.s3.object.key),
            "pagefleet/inbox/quarterly report 2025.pdf"
        );
        assert!(!record.s3.object.e_tag.is_empty());
    }
}
