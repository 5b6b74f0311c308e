//! Submission over NATS for `nats` CLI users, JSON in and out, registered
//! with the NATS services API so that `nats micro ls|info|stats` show it:
//!
//! - `pagefleet.jobs.submit` takes `{"source": "s3://bucket/key"}` (or
//!   `"key"`, plus `dpi`, `profile`, `idempotency_key`) and answers
//!   `{"job_id", "created", "events"}`;
//! - `pagefleet.jobs.status` takes `{"job_id"}` and answers the job.
//!
//! A refused request is answered with `{"error": ...}` and the service error
//! headers.

use async_nats::service::{self, ServiceExt};
use bytes::Bytes;
use futures::StreamExt;
use pagefleet_schemas::names;
use pagefleet_schemas::submit::SubmitRequest;
use serde::Deserialize;
use serde_json::json;
use tracing::warn;

use crate::bucket::BucketConfig;
use crate::http::{Asked, options_for, stored_key};
use crate::intake::{Intake, IntakeError};
use crate::jobs::{self, JobError};

#[derive(Debug, Deserialize)]
struct StatusRequest {
    job_id: String,
}

/// The NATS service could not be registered, or an endpoint of it added.
#[derive(Debug, thiserror::Error)]
#[error("NATS service: {what}: {source}")]
pub struct ServiceError {
    what: &'static str,
    #[source]
    source: async_nats::Error,
}

/// Serves the endpoints until `shutdown`.
pub async fn serve(
    client: async_nats::Client,
    intake: Intake,
    bucket: Option<BucketConfig>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServiceError> {
    let failed = |what| move |source| ServiceError { what, source };
    let service = client
        .service_builder()
        .description("pagefleet document OCR: submit documents, ask for their jobs")
        .start(names::SERVICE_NAME, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(failed("registering it"))?;
    let group = service.group(names::SERVICE_GROUP);
    let mut submit = group
        .endpoint(names::SUBMIT_ENDPOINT)
        .await
        .map_err(failed("adding its submit endpoint"))?;
    let mut status = group
        .endpoint(names::STATUS_ENDPOINT)
        .await
        .map_err(failed("adding its status endpoint"))?;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(request) = submit.next() => {
                let answer = handle_submit(&intake, bucket.as_ref(), &request.message.payload).await;
                respond(&request, answer).await;
            }
            Some(request) = status.next() => {
                let answer = handle_status(&intake, &request.message.payload).await;
                respond(&request, answer).await;
            }
        }
    }
    let _ = service.stop().await;
    Ok(())
}

/// A refusal: the code for the service error header, and the message.
type Refusal = (usize, String);

async fn respond(request: &service::Request, answer: Result<serde_json::Value, Refusal>) {
    let sent = match answer {
        Ok(body) => request.respond(Ok(Bytes::from(body.to_string()))).await,
        Err((code, message)) => {
            // The JSON body serves clients that do not read headers; the
            // service error headers are those `nats req` shows. (The
            // service's stats count requests and time, not these errors:
            // async-nats counts only replies sent without a body.)
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Service-Error", message.as_str());
            headers.insert("Nats-Service-Error-Code", code.to_string().as_str());
            let body = json!({ "error": message, "code": code }).to_string();
            request.respond_with_headers(Ok(body.into()), headers).await
        }
    };
    if let Err(e) = sent {
        warn!("answering a NATS request: {e}");
    }
}

fn refusal_of(e: IntakeError) -> Refusal {
    let code = match &e {
        IntakeError::TooLarge { .. } => 413,
        IntakeError::WrongType(_) => 415,
        IntakeError::NotFound(_) => 404,
        IntakeError::Submit(s) if s.is_transient() => 503,
        _ => 400,
    };
    (code, e.to_string())
}

async fn handle_submit(
    intake: &Intake,
    bucket: Option<&BucketConfig>,
    payload: &[u8],
) -> Result<serde_json::Value, Refusal> {
    let req: SubmitRequest = serde_json::from_slice(payload).map_err(|e| {
        (
            400,
            format!("request is not JSON like {{\"source\": \"s3://bucket/key\"}}: {e}"),
        )
    })?;
    let options =
        options_for(intake, Asked::from(&req), req.idempotency_key.clone()).map_err(refusal_of)?;
    let (key, source) =
        stored_key(bucket, req.source.as_deref(), req.key.as_deref()).map_err(refusal_of)?;
    let submitted = intake
        .submit_stored(key, source, &options)
        .await
        .map_err(refusal_of)?;
    Ok(json!({
        "job_id": submitted.job_id,
        "created": submitted.created,
        "events": names::events_of_job(&submitted.job_id),
    }))
}

async fn handle_status(intake: &Intake, payload: &[u8]) -> Result<serde_json::Value, Refusal> {
    let req: StatusRequest = serde_json::from_slice(payload).map_err(|e| {
        (
            400,
            format!("request is not JSON like {{\"job_id\": \"...\"}}: {e}"),
        )
    })?;
    match jobs::view(intake, &req.job_id).await {
        Ok(view) => Ok(serde_json::to_value(view).unwrap_or_default()),
        Err(e @ JobError::NotFound(_)) => Err((404, e.to_string())),
        Err(e @ JobError::Gone { .. }) => Err((410, e.to_string())),
        Err(e) => Err((503, e.to_string())),
    }
}
