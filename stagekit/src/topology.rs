//! The JetStream topology: streams, consumers and the jobs bucket, created or
//! updated idempotently by every stage at start-up (and by `pagefleet nats setup`).

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, kv};

use pagefleet_schemas::names::*;

/// Settings of the streams, the bucket and the consumers.
#[derive(Debug, Clone, PartialEq)]
pub struct TopologyConfig {
    /// Replicas of every stream and bucket (1 for a single server, 3 on a
    /// cluster). `None` keeps what each one has, and makes a new one with 1:
    /// a stage started without the setting never scales a cluster's streams
    /// down.
    pub replicas: Option<usize>,
    /// How long repeated publishes with one `Nats-Msg-Id` are recognised. It
    /// must outlast a rasterizer's or worker's redelivery.
    pub duplicate_window: Duration,
    /// How long job events are kept.
    pub events_max_age: Duration,
    /// Largest message (a page result of a dense page is about 100 KiB).
    pub max_message_size: i32,
    /// How long a worker's heartbeat is kept: a worker silent for longer is
    /// gone from the workers bucket.
    pub heartbeat_ttl: Duration,
    /// Consumer settings for document jobs.
    pub docs: ConsumerSettings,
    /// Consumer settings for page jobs.
    pub pages: ConsumerSettings,
    /// Consumer settings for results.
    pub results: ConsumerSettings,
}

/// Settings of one durable pull consumer.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerSettings {
    /// How long a delivered message may go unacknowledged (progress acks extend it).
    pub ack_wait: Duration,
    /// Deliveries before a message is given up (then a max-deliveries advisory).
    pub max_deliver: i64,
    /// Delays between redeliveries; empty for `ack_wait` each time.
    pub backoff: Vec<Duration>,
    /// Most messages delivered and not yet acknowledged, over all subscribers.
    pub max_ack_pending: i64,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        Self {
            replicas: None,
            duplicate_window: Duration::from_secs(30 * 60),
            events_max_age: Duration::from_secs(24 * 3600),
            max_message_size: 8 * 1024 * 1024,
            heartbeat_ttl: Duration::from_secs(30),
            docs: ConsumerSettings {
                ack_wait: Duration::from_secs(60),
                max_deliver: 5,
                backoff: Vec::new(),
                max_ack_pending: 64,
            },
            pages: ConsumerSettings {
                ack_wait: Duration::from_secs(30),
                max_deliver: 4,
                backoff: Vec::new(),
                max_ack_pending: 1024,
            },
            results: ConsumerSettings {
                ack_wait: Duration::from_secs(30),
                max_deliver: 20,
                backoff: Vec::new(),
                max_ack_pending: 1024,
            },
        }
    }
}

/// Errors while setting up the topology.
#[derive(Debug, thiserror::Error)]
#[error("jetstream setup of {what}: {message}")]
pub struct TopologyError {
    what: String,
    message: String,
}

fn err(what: impl Into<String>, e: impl std::fmt::Display) -> TopologyError {
    TopologyError {
        what: what.into(),
        message: e.to_string(),
    }
}

/// Replicas a stream is to have: the configured number, else the number it
/// has now (1 when it does not exist yet).
async fn replicas_of(
    js: &jetstream::Context,
    stream: &str,
    config: &TopologyConfig,
) -> Result<usize, TopologyError> {
    if let Some(n) = config.replicas {
        return Ok(n.max(1));
    }
    match js.get_stream(stream).await {
        Ok(s) => Ok(s.cached_info().config.num_replicas.max(1)),
        Err(e) if stream_missing(&e) => Ok(1),
        // Not knowing what it has, changing it could scale a cluster down.
        Err(e) => Err(err(format!("stream {stream}"), e)),
    }
}

/// Whether looking up a stream failed because it does not exist (rather
/// than for want of an answer).
pub fn stream_missing(e: &jetstream::context::GetStreamError) -> bool {
    use jetstream::context::GetStreamErrorKind;
    matches!(e.kind(), GetStreamErrorKind::JetStream(j)
        if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND)
}

/// Creates or updates the streams and the jobs bucket.
pub async fn ensure(js: &jetstream::Context, config: &TopologyConfig) -> Result<(), TopologyError> {
    let work_queue = |name: &str, subjects: &str| stream::Config {
        name: name.to_owned(),
        subjects: vec![subjects.to_owned()],
        retention: RetentionPolicy::WorkQueue,
        storage: StorageType::File,
        duplicate_window: config.duplicate_window,
        max_message_size: config.max_message_size,
        discard: DiscardPolicy::Old,
        allow_direct: true,
        ..Default::default()
    };
    for cfg in [
        work_queue(DOCS_STREAM, DOCS_SUBJECTS),
        work_queue(PAGES_STREAM, PAGES_SUBJECTS),
        work_queue(RESULTS_STREAM, RESULTS_SUBJECTS),
        work_queue(ADVISORIES_STREAM, PAGES_MAX_DELIVERIES_ADVISORIES),
        work_queue(BUCKET_EVENTS_STREAM, BUCKET_EVENTS_SUBJECT),
        stream::Config {
            name: EVENTS_STREAM.to_owned(),
            subjects: vec![EVENTS_SUBJECTS.to_owned()],
            retention: RetentionPolicy::Limits,
            max_age: config.events_max_age,
            duplicate_window: config.duplicate_window.min(config.events_max_age),
            storage: StorageType::File,
            allow_direct: true,
            ..Default::default()
        },
    ] {
        let name = cfg.name.clone();
        let cfg = stream::Config {
            num_replicas: replicas_of(js, &name, config).await?,
            ..cfg
        };
        js.create_or_update_stream(cfg)
            .await
            .map_err(|e| err(format!("stream {name}"), e))?;
    }
    ensure_jobs_bucket(js, config).await?;
    js.create_or_update_key_value(kv::Config {
        bucket: SUBMISSIONS_BUCKET.to_owned(),
        description: "pagefleet submissions that must make one job: digest to job id".to_owned(),
        history: 1,
        storage: StorageType::File,
        num_replicas: replicas_of(js, &format!("KV_{SUBMISSIONS_BUCKET}"), config).await?,
        ..Default::default()
    })
    .await
    .map_err(|e| err(format!("bucket {SUBMISSIONS_BUCKET}"), e))?;
    ensure_workers_bucket(js, config).await?;
    Ok(())
}

/// Creates or updates the jobs bucket: a job's state under its id, each of
/// its pages' records under `<id>.<page>`. A page's record and its job's
/// counters are written in one atomic batch, which the bucket's stream
/// must allow; an existing bucket is updated in place, so that a stage
/// starting beside running ones never turns that off, even for a moment.
async fn ensure_jobs_bucket(
    js: &jetstream::Context,
    config: &TopologyConfig,
) -> Result<(), TopologyError> {
    let name = format!("KV_{JOBS_BUCKET}");
    let replicas = replicas_of(js, &name, config).await?;
    let wanted = |cfg: &mut stream::Config| {
        cfg.description = Some("pagefleet job state: a key per job, a key per page".to_owned());
        cfg.max_message_size = config.max_message_size;
        cfg.num_replicas = replicas;
        cfg.allow_atomic_publish = true;
    };
    let current = match js.get_stream(&name).await {
        Ok(stream) => stream.cached_info().config.clone(),
        Err(e) if stream_missing(&e) => {
            let created = js
                .create_key_value(kv::Config {
                    bucket: JOBS_BUCKET.to_owned(),
                    history: 1,
                    max_value_size: config.max_message_size,
                    storage: StorageType::File,
                    num_replicas: replicas,
                    ..Default::default()
                })
                .await;
            // Stages starting side by side: another one made the bucket
            // between the look and the create, and may have updated it
            // already (JetStream then refuses the plain create as a
            // different configuration). Its bucket is taken as it is.
            if let Err(e) = created
                && js.get_stream(&name).await.is_err()
            {
                return Err(err(format!("bucket {JOBS_BUCKET}"), e));
            }
            js.get_stream(&name)
                .await
                .map_err(|e| err(format!("bucket {JOBS_BUCKET}"), e))?
                .cached_info()
                .config
                .clone()
        }
        Err(e) => return Err(err(format!("bucket {JOBS_BUCKET}"), e)),
    };
    let mut cfg = current.clone();
    wanted(&mut cfg);
    if cfg != current {
        js.update_stream(cfg)
            .await
            .map_err(|e| err(format!("bucket {JOBS_BUCKET}"), e))?;
    }
    Ok(())
}

/// Creates or updates the workers bucket. It is file-backed, so that a
/// restarted nats-server still has it; one created memory-backed by an older
/// version is replaced (it holds only heartbeats, rewritten within seconds).
pub async fn ensure_workers_bucket(
    js: &jetstream::Context,
    config: &TopologyConfig,
) -> Result<kv::Store, TopologyError> {
    let bucket = kv::Config {
        bucket: WORKERS_BUCKET.to_owned(),
        description: "pagefleet worker heartbeats, expiring with their worker".to_owned(),
        history: 1,
        max_age: config.heartbeat_ttl,
        storage: StorageType::File,
        num_replicas: replicas_of(js, &format!("KV_{WORKERS_BUCKET}"), config).await?,
        ..Default::default()
    };
    match js.create_or_update_key_value(bucket.clone()).await {
        Ok(kv) => Ok(kv),
        Err(first) => {
            let memory_backed = match js.get_stream(format!("KV_{WORKERS_BUCKET}")).await {
                Ok(mut stream) => stream
                    .info()
                    .await
                    .is_ok_and(|i| i.config.storage == StorageType::Memory),
                Err(_) => false,
            };
            if !memory_backed {
                return Err(err(format!("bucket {WORKERS_BUCKET}"), first));
            }
            js.delete_key_value(WORKERS_BUCKET)
                .await
                .map_err(|e| err(format!("bucket {WORKERS_BUCKET}"), e))?;
            js.create_key_value(bucket)
                .await
                .map_err(|e| err(format!("bucket {WORKERS_BUCKET}"), e))
        }
    }
}

/// Creates or updates a durable pull consumer and returns it.
pub async fn consumer(
    js: &jetstream::Context,
    stream: &str,
    name: &str,
    filter: &str,
    settings: &ConsumerSettings,
) -> Result<jetstream::consumer::Consumer<pull::Config>, TopologyError> {
    let stream_handle = js
        .get_stream(stream)
        .await
        .map_err(|e| err(format!("stream {stream}"), e))?;
    stream_handle
        .create_consumer(pull::Config {
            durable_name: Some(name.to_owned()),
            filter_subject: filter.to_owned(),
            ack_policy: AckPolicy::Explicit,
            deliver_policy: DeliverPolicy::All,
            ack_wait: settings.ack_wait,
            max_deliver: settings.max_deliver,
            backoff: settings.backoff.clone(),
            max_ack_pending: settings.max_ack_pending,
            ..Default::default()
        })
        .await
        .map_err(|e| err(format!("consumer {name} on {stream}"), e))
}
