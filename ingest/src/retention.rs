//! Retention: a job that ended longer ago than the retention is removed
//! (its state becomes a tombstone, its objects and events go, as a
//! `DELETE` does), and its routes then answer 410 naming the expiry.
//!
//! There is no timer to forget: each sweep reads the jobs bucket and
//! removes what is due, so a restart only delays a removal until the next
//! sweep. Several ingest processes share the work without doing it twice at
//! once: a sweep runs only in the process that takes the sweep's lease (a
//! key in [`names::LEASES_BUCKET`] naming its holder and until when, taken
//! by compare-and-set once it has run out). A running job is never removed.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use pagefleet_schemas::messages::{JobState, JobStatus, Message, Removal, now_ms};
use pagefleet_schemas::names;
use pagefleet_stagekit::store::Store;
use tracing::{info, warn};

use crate::jobs::{self, JobError};

/// The default retention: a week.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The lease key of the sweep.
const LEASE: &str = "retention-sweep";

/// How often a retention of `keep` is swept: a tenth of it, between 1 s
/// and 5 minutes.
pub fn sweep_interval(keep: Duration) -> Duration {
    (keep / 10).clamp(Duration::from_secs(1), Duration::from_secs(300))
}

/// Sweeps every [`sweep_interval`] until `shutdown` completes; a zero
/// retention keeps everything and never sweeps.
pub async fn sweep_forever(
    js: jetstream::Context,
    store: Store,
    keep: Duration,
    holder: String,
    shutdown: impl Future<Output = ()>,
) {
    if keep.is_zero() {
        return;
    }
    let interval = sweep_interval(keep);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut failing = false;
    loop {
        match sweep_once(&js, &store, keep, interval, &holder).await {
            Ok(removed) => {
                if failing {
                    info!("retention sweeps work again");
                    failing = false;
                }
                if removed > 0 {
                    info!(removed, "jobs past their retention removed");
                }
            }
            Err(e) => {
                if !failing {
                    warn!("a retention sweep failed (tried again every {interval:?}): {e}");
                    failing = true;
                }
            }
        }
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(interval) => {}
        }
    }
    // A process that stops hands the lease on; one that crashed holds it
    // until it runs out (the next sweep is late, not lost).
    release_lease(&js, &holder).await;
}

/// One sweep, if this process takes the lease: the number of jobs removed.
pub async fn sweep_once(
    js: &jetstream::Context,
    store: &Store,
    keep: Duration,
    interval: Duration,
    holder: &str,
) -> Result<usize, JobError> {
    let unavailable = |e: &dyn std::fmt::Display| JobError::Unavailable(e.to_string());
    if !take_lease(js, interval, holder).await? {
        return Ok(0);
    }
    let bucket = jobs::jobs_bucket(js).await?;
    let now = now_ms();
    let keep_ms = keep.as_millis() as u64;
    let mut removed = 0;
    for key in jobs::job_keys(js).await? {
        let Some(bytes) = bucket.get(&key).await.map_err(|e| unavailable(&e))? else {
            continue;
        };
        let Ok(state) = JobState::decode(&bytes) else {
            continue;
        };
        // A removed job's tombstone answers 410 for one more retention,
        // then goes too: the bucket does not grow with every job ever run.
        if let Some(gone) = state.removed
            && gone.at_ms.saturating_add(keep_ms) <= now
        {
            jobs::forget(js, &key).await?;
            continue;
        }
        let due = state.status != JobStatus::Running
            && state.removed.is_none()
            && state
                .finished_at_ms
                .is_some_and(|at| at.saturating_add(keep_ms) <= now);
        if !due {
            continue;
        }
        match jobs::remove(js, store, &key, Removal::Expired).await {
            Ok(_) => removed += 1,
            // Removed by another hand meanwhile, or restarted: not ours.
            Err(JobError::Gone { .. } | JobError::Running(_) | JobError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// Takes the sweep's lease until most of an interval from now, unless
/// another process holds it: a lease is a value `until_ms holder`, taken
/// by compare-and-set, so two processes never both take it.
async fn take_lease(
    js: &jetstream::Context,
    interval: Duration,
    holder: &str,
) -> Result<bool, JobError> {
    let unavailable = |e: &dyn std::fmt::Display| JobError::Unavailable(e.to_string());
    let leases = leases(js).await?;
    let now = now_ms();
    let until = now + interval.mul_f64(0.9).as_millis() as u64;
    let value = bytes::Bytes::from(format!("{until} {holder}"));
    let taken = match leases.entry(LEASE).await.map_err(|e| unavailable(&e))? {
        Some(entry) if entry.operation == kv::Operation::Put => {
            let held_until = std::str::from_utf8(&entry.value)
                .ok()
                .and_then(|v| v.split(' ').next()?.parse::<u64>().ok())
                .unwrap_or(0);
            if held_until > now {
                return Ok(false);
            }
            leases.update(LEASE, value, entry.revision).await.is_ok()
        }
        _ => leases.create(LEASE, value).await.is_ok(),
    };
    Ok(taken)
}

/// Gives up the sweep's lease if this holder has it.
async fn release_lease(js: &jetstream::Context, holder: &str) {
    let Ok(leases) = leases(js).await else {
        return;
    };
    if let Ok(Some(entry)) = leases.entry(LEASE).await
        && entry.operation == kv::Operation::Put
        && entry.value.ends_with(format!(" {holder}").as_bytes())
    {
        let _ = leases
            .delete_expect_revision(LEASE, Some(entry.revision))
            .await;
    }
}

/// The leases bucket.
async fn leases(js: &jetstream::Context) -> Result<kv::Store, JobError> {
    if let Ok(bucket) = js.get_key_value(names::LEASES_BUCKET).await {
        return Ok(bucket);
    }
    js.create_key_value(kv::Config {
        bucket: names::LEASES_BUCKET.to_owned(),
        description: "pagefleet's leases: which process does a periodic task now".to_owned(),
        history: 1,
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| JobError::Unavailable(e.to_string()))
}
