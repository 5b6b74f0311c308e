//! Jobs nobody reads: when a rasterized job's pages sit untaken for
//! [`Limits::waiting_after`](crate::Limits::waiting_after) and no healthy
//! worker serves its profile, a `waiting` event says so on the job's event
//! subject, where `pagefleet watch` and the HTTP event stream see it.
//!
//! Each ingest replica follows the `rasterized` events and looks at each job
//! again once its time is up; the event's `Nats-Msg-Id` makes the replicas'
//! events one. A job whose profile is served but whose pages are still
//! queued (a busy fleet) is looked at again after twice the last wait, up to
//! ten minutes, in case its workers go.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use pagefleet_schemas::messages::{EventKind, JobEvent, JobStatus, Message, now_ms};
use pagefleet_schemas::names;
use pagefleet_stagekit::bus::publish_acked;
use tracing::{info, warn};

use crate::intake::Intake;
use crate::jobs::{self, JobError};

/// Jobs followed at once; past this, newly rasterized jobs are not
/// followed (their status still says `waiting` when asked).
const MAX_FOLLOWED: usize = 100_000;

/// A job still queued behind a busy fleet is looked at again after twice
/// the last wait, at most this long: a deep queue costs few reads.
const MAX_LOOK_AGAIN: Duration = Duration::from_secs(600);

/// Why jobs that wait for a worker can no longer be followed.
#[derive(Debug, thiserror::Error)]
pub enum WaitingError {
    /// The subscription to rasterized events could not be made.
    #[error("waiting jobs: cannot follow rasterized events: {0}")]
    Subscribe(#[from] async_nats::SubscribeError),
    /// The subscription ended (the connection closed).
    #[error("waiting jobs: the rasterized event subscription ended")]
    Ended,
}

/// Follows rasterized jobs until `stop` completes.
pub(crate) async fn watch(
    intake: Intake,
    client: async_nats::Client,
    stop: impl Future<Output = ()>,
) -> Result<(), WaitingError> {
    let mut rasterized = client
        .subscribe(names::events_of_kind(EventKind::Rasterized.token()))
        .await?;
    let period = intake.limits.waiting_after.max(Duration::from_millis(100));
    // (when, job, how long the wait before it was).
    let mut due: BinaryHeap<Reverse<(u64, String, u64)>> = BinaryHeap::new();
    let mut full_logged = false;
    let mut stop = std::pin::pin!(stop);
    loop {
        let next = due.peek().map(|Reverse((at, _, _))| *at);
        let sleep = next.map_or(Duration::from_secs(3600), |at| {
            Duration::from_millis(at.saturating_sub(now_ms()))
        });
        tokio::select! {
            () = &mut stop => return Ok(()),
            message = rasterized.next() => {
                let Some(message) = message else {
                    return Err(WaitingError::Ended);
                };
                let Ok(event) = JobEvent::decode(&message.payload) else {
                    continue;
                };
                if event.total_pages.unwrap_or(0) == 0 {
                    continue;
                }
                if due.len() >= MAX_FOLLOWED {
                    if !full_logged {
                        warn!("following {MAX_FOLLOWED} jobs for waiting events: newer jobs are not followed");
                        full_logged = true;
                    }
                    continue;
                }
                full_logged = false;
                let at = event.at_ms.max(now_ms().saturating_sub(period.as_millis() as u64));
                let wait = period.as_millis() as u64;
                due.push(Reverse((at + wait, event.job_id, wait)));
            }
            () = tokio::time::sleep(sleep), if next.is_some() => {
                let Some(Reverse((_, job_id, wait))) = due.pop() else {
                    continue;
                };
                if look_again(&intake, &job_id).await {
                    let wait = (wait * 2).min(MAX_LOOK_AGAIN.as_millis() as u64);
                    due.push(Reverse((now_ms() + wait, job_id, wait)));
                }
            }
        }
    }
}

/// Publishes the job's waiting event if it is waiting; true when it should
/// be looked at again (no page taken yet, but its profile is served or the
/// look failed).
async fn look_again(intake: &Intake, job_id: &str) -> bool {
    let view = match jobs::view(intake, job_id).await {
        Ok(view) => view,
        Err(JobError::NotFound(_) | JobError::Gone { .. }) => return false,
        Err(e) => {
            warn!(%job_id, "cannot look at a job for its waiting event: {e}");
            return true;
        }
    };
    let untaken = view.progress.pages_done + view.progress.pages_failed == 0;
    match (view.status.as_str(), view.waiting) {
        ("waiting", Some(reason)) => {
            let event = JobEvent {
                v: pagefleet_schemas::messages::SCHEMA_VERSION,
                job_id: job_id.to_owned(),
                kind: EventKind::Waiting,
                total_pages: view.progress.total_pages,
                pages_done: 0,
                pages_failed: 0,
                status: JobStatus::Running,
                at_ms: now_ms(),
                waiting: Some(reason.clone()),
                page: None,
                page_ok: None,
            };
            info!(%job_id, "job waiting: {reason}");
            if let Err(e) = publish_acked(
                &intake.js,
                names::event_subject(job_id, EventKind::Waiting.token()),
                names::waiting_msg_id(job_id),
                event.encode(),
            )
            .await
            {
                warn!(%job_id, "cannot publish the waiting event: {e}");
                return true;
            }
            false
        }
        ("running", _) => untaken,
        _ => false,
    }
}
