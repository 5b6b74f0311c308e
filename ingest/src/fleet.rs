//! The worker fleet as ingest sees it: the workers' own heartbeats in the
//! workers bucket, and from them the profiles the deployment serves now.

use async_nats::jetstream;
use futures::StreamExt;
use pagefleet_schemas::messages::WorkerHeartbeat;
use pagefleet_schemas::names;
use tracing::warn;

/// A heartbeat older than this marks its worker unhealthy (it is sent every
/// few seconds; the bucket forgets it altogether later).
pub const HEALTHY_WITHIN_MS: u64 = 15_000;

/// Whether a heartbeat is recent enough to count.
pub fn fresh(beat: &WorkerHeartbeat, now_ms: u64) -> bool {
    now_ms.saturating_sub(beat.at_ms) <= HEALTHY_WITHIN_MS
}

/// Whether a worker counts as healthy: ready, and heard from recently.
pub fn healthy(beat: &WorkerHeartbeat, now_ms: u64) -> bool {
    fresh(beat, now_ms) && beat.status == "ready"
}

/// Every worker's last heartbeat, by name.
pub async fn heartbeats(js: &jetstream::Context) -> Result<Vec<WorkerHeartbeat>, String> {
    let kv = js
        .get_key_value(names::WORKERS_BUCKET)
        .await
        .map_err(|e| format!("workers bucket: {e}"))?;
    let mut keys = kv
        .keys()
        .await
        .map_err(|e| format!("workers bucket: {e}"))?;
    let mut beats = Vec::new();
    while let Some(key) = keys.next().await {
        let Ok(key) = key else { continue };
        if let Ok(Some(bytes)) = kv.get(&key).await {
            match serde_json::from_slice::<WorkerHeartbeat>(&bytes) {
                Ok(beat) => beats.push(beat),
                Err(e) => warn!(%key, "unreadable heartbeat: {e}"),
            }
        }
    }
    beats.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(beats)
}

/// Whether a healthy worker serves `profile` now. `None` when the workers
/// bucket cannot be read.
pub async fn serves(js: &jetstream::Context, profile: &str, now_ms: u64) -> Option<bool> {
    let beats = heartbeats(js).await.ok()?;
    Some(
        beats
            .iter()
            .any(|b| b.profile == profile && healthy(b, now_ms)),
    )
}

/// The profiles a job may name: those configured, and those a live worker
/// advertises in its heartbeat; sorted, without repeats.
pub async fn known_profiles(
    js: &jetstream::Context,
    configured: &[String],
    now_ms: u64,
) -> Vec<String> {
    let beats = heartbeats(js).await.unwrap_or_default();
    profiles(configured, &beats, |b| fresh(b, now_ms))
}

/// `configured` and the profiles of the heartbeats `keep` takes; sorted,
/// without repeats.
pub fn profiles(
    configured: &[String],
    beats: &[WorkerHeartbeat],
    keep: impl Fn(&WorkerHeartbeat) -> bool,
) -> Vec<String> {
    let mut known: Vec<String> = configured.to_vec();
    known.extend(beats.iter().filter(|b| keep(b)).map(|b| b.profile.clone()));
    known.sort();
    known.dedup();
    known
}
