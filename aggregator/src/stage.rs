//! The aggregator stage: records every page outcome in the job's state and
//! finishes each job exactly once.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, kv};
use futures::{FutureExt, StreamExt};
use pagefleet_schemas::bus::publish_acked;
use pagefleet_schemas::messages::{
    EventKind, JobEvent, JobState, JobStatus, Message, PageFailure, PageRecord, PageResult,
    ResultMessage, SCHEMA_VERSION, now_ms,
};
use pagefleet_schemas::names;
use pagefleet_schemas::state::update;
use pagefleet_schemas::store::{self, Store};
use pagefleet_schemas::topology::{self, TopologyConfig};
use serde::Deserialize;
use tracing::{Instrument, error, info, info_span, warn};

use crate::report;

/// Settings of the aggregator stage.
#[derive(Debug, Clone)]
pub struct StageConfig {
    /// Streams and consumer settings.
    pub topology: TopologyConfig,
    /// This aggregator's name in logs and failures it records.
    pub name: String,
}

/// What the stage works with.
pub struct Deps {
    /// JetStream.
    pub js: jetstream::Context,
    /// Object storage.
    pub store: Store,
}

/// Errors that stop the stage.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The topology could not be set up.
    #[error(transparent)]
    Topology(#[from] topology::TopologyError),
    /// A consumer or the bucket failed.
    #[error("aggregator: {0}")]
    Nats(String),
}

/// Runs the stage until `shutdown` completes.
pub async fn run(
    config: StageConfig,
    deps: Deps,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StageError> {
    topology::ensure(&deps.js, &config.topology).await?;
    let results = topology::consumer(
        &deps.js,
        names::RESULTS_STREAM,
        names::AGGREGATOR_CONSUMER,
        names::RESULTS_SUBJECTS,
        &config.topology.results,
    )
    .await?;
    let advisories = topology::consumer(
        &deps.js,
        names::ADVISORIES_STREAM,
        names::ADVISORY_CONSUMER,
        names::PAGES_MAX_DELIVERIES_ADVISORIES,
        &config.topology.results,
    )
    .await?;
    let kv = deps
        .js
        .get_key_value(names::JOBS_BUCKET)
        .await
        .map_err(|e| StageError::Nats(e.to_string()))?;
    // Shared: it is awaited in several places and may be polled again after
    // it fired.
    let shutdown = shutdown.boxed().shared();
    info!(name = %config.name, "aggregator ready");
    loop {
        let fetch = results
            .batch()
            .max_messages(64)
            .expires(Duration::from_secs(1))
            .messages();
        let mut batch = tokio::select! {
            _ = shutdown.clone() => break,
            b = fetch => b.map_err(|e| StageError::Nats(e.to_string()))?,
        };
        // Waiting for the batch to fill is cut short by shutdown; a message
        // already received is still handled.
        while let Some(msg) = tokio::select! {
            _ = shutdown.clone() => None,
            m = batch.next() => m,
        } {
            match msg {
                Ok(msg) => handle_result(&config, &deps, &kv, msg).await,
                Err(e) => warn!("fetching results: {e}"),
            }
        }
        // Advisories are rare: a short poll after each round of results.
        let fetch = advisories.fetch().max_messages(16).messages().await;
        if let Ok(mut batch) = fetch {
            while let Some(Ok(msg)) = batch.next().await {
                handle_advisory(&config, &deps, msg).await;
            }
        }
    }
    info!("aggregator stopped");
    Ok(())
}

/// A max-deliveries advisory as JetStream publishes it.
#[derive(Debug, Deserialize)]
struct MaxDeliveries {
    stream_seq: u64,
    deliveries: u64,
}

/// A page that exhausted its deliveries becomes a page failure, and its job
/// message is removed so that nothing stays stuck in the page stream.
async fn handle_advisory(config: &StageConfig, deps: &Deps, msg: jetstream::Message) {
    let Ok(advisory) = serde_json::from_slice::<MaxDeliveries>(&msg.payload) else {
        warn!("dropping an unreadable advisory");
        let _ = msg.ack_with(AckKind::Term).await;
        return;
    };
    let stream = match deps.js.get_stream(names::PAGES_STREAM).await {
        Ok(s) => s,
        Err(e) => {
            warn!("page stream unavailable, advisory kept: {e}");
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                .await;
            return;
        }
    };
    let page_msg = match stream.get_raw_message(advisory.stream_seq).await {
        Ok(m) => m,
        Err(e) => {
            // Already gone: it was acknowledged late, or handled before.
            info!(
                seq = advisory.stream_seq,
                "page job of an advisory is gone: {e}"
            );
            let _ = msg.ack().await;
            return;
        }
    };
    let Some((job_id, page)) = names::parse_page_subject(page_msg.subject.as_str()) else {
        warn!(subject = %page_msg.subject, "advisory for a subject that is not a page job");
        let _ = msg.ack().await;
        return;
    };
    let failure = PageFailure {
        v: SCHEMA_VERSION,
        job_id: job_id.clone(),
        page,
        worker: config.name.clone(),
        error: format!(
            "page was delivered {} times without finishing: it crashed, hung or outlasted the deadline of the workers that took it",
            advisory.deliveries
        ),
        deliveries: advisory.deliveries,
    };
    warn!(%job_id, page, deliveries = advisory.deliveries, "page gave up after max deliveries");
    metrics::counter!("pagefleet_pages_failed_total", "stage" => "max-deliveries").increment(1);
    let published = publish_acked(
        &deps.js,
        names::result_subject(&job_id, page),
        names::result_msg_id(&job_id, page),
        ResultMessage::Failure(failure).encode(),
    )
    .await;
    match published {
        Ok(()) => {
            let _ = stream.delete_message(advisory.stream_seq).await;
            let _ = msg.double_ack().await;
        }
        Err(e) => {
            warn!("cannot record the failure yet: {e}");
            let _ = msg
                .ack_with(AckKind::Nak(Some(Duration::from_secs(5))))
                .await;
        }
    }
}

async fn handle_result(config: &StageConfig, deps: &Deps, kv: &kv::Store, msg: jetstream::Message) {
    let result = match ResultMessage::decode(&msg.payload) {
        Ok(r) => r,
        Err(e) => {
            error!(subject = %msg.subject, "dropping an undecodable result: {e}");
            let _ = msg.ack_with(AckKind::Term).await;
            return;
        }
    };
    let job_id = result.job_id().to_owned();
    if !names::valid_job_id(&job_id) {
        error!(%job_id, "dropping a result with an invalid job id");
        let _ = msg.ack_with(AckKind::Term).await;
        return;
    }
    let page = match &result {
        ResultMessage::Page(p) => Some(p.page),
        ResultMessage::Failure(f) => Some(f.page),
        ResultMessage::Manifest(_) => None,
    };
    let span = info_span!(
        "aggregate",
        job_id = %job_id,
        page,
        worker = %config.name,
        trace_id = tracing::field::Empty,
    );
    pagefleet_schemas::trace::follow(&span, msg.headers.as_ref());
    async {
        let started = std::time::Instant::now();
        let recorded = record(config, deps, kv, &result).await;
        metrics::histogram!("pagefleet_stage_seconds", "stage" => "aggregate_result")
            .record(started.elapsed().as_secs_f64());
        match recorded {
            Ok(()) => {
                let _ = msg.double_ack().await;
            }
            Err(e) => {
                warn!("result not recorded yet, will see it again: {e}");
                let _ = msg
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(2))))
                    .await;
            }
        }
    }
    .instrument(span)
    .await
}

/// Records one result in the job's state; finishes the job when it is complete.
async fn record(
    _config: &StageConfig,
    deps: &Deps,
    kv: &kv::Store,
    result: &ResultMessage,
) -> Result<(), String> {
    let job_id = result.job_id();
    // The page's full result goes to storage first: the state only says it is there.
    if let ResultMessage::Page(page) = result {
        store::put(
            deps.store.as_ref(),
            &names::keys::page_result(job_id, page.page),
            page.encode(),
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    let state = update(kv, job_id, |state| apply(state, result)).await?;
    let event = JobEvent::of_state(&state, EventKind::Progress, state.status, now_ms());
    let _ = deps
        .js
        .publish(
            names::event_subject(job_id, EventKind::Progress.token()),
            event.encode().into(),
        )
        .await;
    if state.is_complete() {
        finish(deps, kv, state).await?;
    }
    Ok(())
}

/// Applies a result to a state; false when it changes nothing (a duplicate,
/// or a late result of a cancelled job).
fn apply(state: &mut JobState, result: &ResultMessage) -> bool {
    if state.status == JobStatus::Cancelled {
        return false;
    }
    match result {
        ResultMessage::Manifest(m) => {
            if state.manifest.is_some() {
                return false;
            }
            state.manifest = Some(m.clone());
            true
        }
        ResultMessage::Page(PageResult {
            page,
            worker,
            deliveries,
            ocr,
            ..
        }) => {
            if state.pages.contains_key(page) {
                return false;
            }
            state.pages.insert(
                *page,
                PageRecord {
                    ok: true,
                    worker: worker.clone(),
                    deliveries: *deliveries,
                    processing_ms: ocr.timings.total_ms,
                    error: None,
                },
            );
            true
        }
        ResultMessage::Failure(f) => {
            if state.pages.contains_key(&f.page) {
                return false;
            }
            state.pages.insert(
                f.page,
                PageRecord {
                    ok: false,
                    worker: f.worker.clone(),
                    deliveries: f.deliveries,
                    processing_ms: 0.0,
                    error: Some(f.error.clone()),
                },
            );
            true
        }
    }
}

/// Writes the outputs, marks the job finished (once, by compare-and-set) and
/// publishes its completion event (deduplicated by message id, so a finisher
/// that crashed halfway and its successor publish it once).
async fn finish(deps: &Deps, kv: &kv::Store, state: JobState) -> Result<(), String> {
    let job_id = state.job_id.clone();
    let mut end_ms = state.finished_at_ms.unwrap_or_else(now_ms);
    if state.status == JobStatus::Running {
        let mut results = BTreeMap::new();
        for (&page, rec) in &state.pages {
            if rec.ok {
                let bytes = store::get(
                    deps.store.as_ref(),
                    &names::keys::page_result(&job_id, page),
                )
                .await
                .map_err(|e| e.to_string())?;
                results.insert(page, PageResult::decode(&bytes).map_err(|e| e.to_string())?);
            }
        }
        let job_report = report::build(&state, &results, end_ms);
        let json = serde_json::to_vec_pretty(&job_report).map_err(|e| e.to_string())?;
        let outputs = [
            ("json", bytes::Bytes::from(json)),
            ("txt", report::text(&job_report).into()),
            ("md", report::markdown(&job_report).into()),
        ];
        // A bucket-triggered job also gets its outputs beside its input.
        let output_base = state
            .submission
            .as_ref()
            .and_then(|s| s.output_base.clone());
        async {
            for (format, bytes) in outputs {
                let mut keys = vec![names::keys::output(&job_id, format)];
                keys.extend(output_base.as_ref().map(|base| format!("{base}.{format}")));
                for key in keys {
                    store::put(deps.store.as_ref(), &key, bytes.clone())
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            Ok::<(), String>(())
        }
        .instrument(info_span!("result_write", pages = state.pages.len()))
        .await?;
        let final_state = update(kv, &job_id, |s| {
            if s.status != JobStatus::Running {
                return false;
            }
            s.status = s.final_status();
            s.finished_at_ms = Some(end_ms);
            true
        })
        .await?;
        end_ms = final_state.finished_at_ms.unwrap_or(end_ms);
        info!(status = ?final_state.status, pages = final_state.pages.len(), "job finished");
        let status = match final_state.status {
            JobStatus::Success => "success",
            JobStatus::PartialSuccess => "partial_success",
            JobStatus::Failed | JobStatus::Running => "failed",
            JobStatus::Cancelled => "cancelled",
        };
        let start_ms = final_state
            .manifest
            .as_ref()
            .map_or(final_state.first_seen_ms, |m| m.submitted_at_ms);
        metrics::counter!("pagefleet_jobs_finished_total", "status" => status).increment(1);
        metrics::histogram!("pagefleet_job_duration_seconds", "status" => status)
            .record(end_ms.saturating_sub(start_ms) as f64 / 1000.0);
    }
    let event = JobEvent::of_state(&state, EventKind::Completed, state.final_status(), end_ms);
    publish_acked(
        &deps.js,
        names::event_subject(&job_id, EventKind::Completed.token()),
        names::completed_msg_id(&job_id),
        event.encode(),
    )
    .await
    .map_err(|e| e.to_string())
}
