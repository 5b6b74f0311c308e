//! A job's state in the jobs bucket, changed only by compare-and-set so that
//! several aggregators (and ingest, which records submissions and
//! cancellations) can write it side by side.

use async_nats::jetstream::kv;

use crate::messages::{JobState, Message, now_ms};

/// Read-modify-write of a job's state with compare-and-set, retried on conflict.
pub async fn update(
    kv: &kv::Store,
    job_id: &str,
    mut change: impl FnMut(&mut JobState) -> bool,
) -> Result<JobState, String> {
    for _ in 0..100 {
        let entry = kv.entry(job_id).await.map_err(|e| e.to_string())?;
        let (mut state, revision) = match entry {
            Some(e) if e.operation == kv::Operation::Put => (
                JobState::decode(&e.value).map_err(|e| e.to_string())?,
                Some(e.revision),
            ),
            _ => (JobState::new(job_id, now_ms()), None),
        };
        if !change(&mut state) {
            return Ok(state);
        }
        let bytes = state.encode().into();
        let written = match revision {
            Some(rev) => kv
                .update(job_id, bytes, rev)
                .await
                .map(|_| ())
                .map_err(|e| {
                    (
                        e.kind() == kv::UpdateErrorKind::WrongLastRevision,
                        e.to_string(),
                    )
                }),
            None => kv.create(job_id, bytes).await.map(|_| ()).map_err(|e| {
                (
                    e.kind() == kv::CreateErrorKind::AlreadyExists,
                    e.to_string(),
                )
            }),
        };
        match written {
            Ok(()) => return Ok(state),
            // Another aggregator wrote first: read again.
            Err((true, _)) => continue,
            Err((false, e)) => return Err(e),
        }
    }
    Err(format!(
        "job {job_id}: state kept changing under 100 attempts"
    ))
}

/// Whether a job was cancelled. A state that cannot be read counts as not
/// cancelled: the work goes on, and the aggregator drops a cancelled job's
/// late results anyway.
pub async fn is_cancelled(kv: &kv::Store, job_id: &str) -> bool {
    match kv.get(job_id).await {
        Ok(Some(bytes)) => JobState::decode(&bytes)
            .is_ok_and(|s| s.status == crate::messages::JobStatus::Cancelled),
        _ => false,
    }
}
