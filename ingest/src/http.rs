//! The HTTP API: the `/v1` job resource, the endpoints existing clients of
//! the OCR cluster pagefleet replaces call (`/ocr/pdf`, `/ocr/image`,
//! `/workers/status`, `/health`), the bucket webhook, probes, and the OpenAPI
//! document describing all of them.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use futures::StreamExt;
use pagefleet_schemas::language::Language;
use pagefleet_schemas::messages::{EventKind, JobStatus, Removal, WorkerHeartbeat, now_ms};
use pagefleet_schemas::names;
use pagefleet_schemas::submit::SubmitRequest;
use pagefleet_schemas::{Format, UnknownFormat};
use pagefleet_stagekit::store::{self, Presigner, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::bucket::{self, BucketConfig, BucketEvent};
use crate::fleet::{self, fresh, healthy};
use crate::intake::{DocType, Intake, IntakeError};
use crate::jobs::{self, EventView, JobError};
use crate::openapi;
use crate::submit::SubmitOptions;
use crate::web;

/// Settings of the HTTP API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Bearer token required on every endpoint but the probes and the
    /// OpenAPI document; `None` for no authentication.
    pub token: Option<String>,
    /// How long the synchronous endpoints wait for a job.
    pub sync_timeout: Duration,
    /// Bucket triggers (for the webhook), if configured.
    pub bucket: Option<BucketConfig>,
    /// Signs URLs to results on an S3 store, for `?redirect=true`; `None`
    /// serves the bytes.
    pub presigner: Option<Presigner>,
}

/// The default of [`ApiConfig::sync_timeout`].
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(600);

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            token: None,
            sync_timeout: SYNC_TIMEOUT,
            bucket: Some(BucketConfig::default()),
            presigner: None,
        }
    }
}

struct Api {
    intake: Intake,
    client: async_nats::Client,
    config: ApiConfig,
    token_digest: Option<[u8; 32]>,
}

type Shared = State<Arc<Api>>;

/// The router of the API.
pub fn router(intake: Intake, client: async_nats::Client, config: ApiConfig) -> Router {
    let limit = intake.limits.max_upload_bytes;
    let token_digest = config.token.as_ref().map(|t| digest(t));
    let api = Arc::new(Api {
        intake,
        client,
        config,
        token_digest,
    });
    let protected = Router::new()
        .route("/v1/options", get(get_options))
        .route("/v1/jobs", post(create_job).get(list_jobs))
        .route("/v1/jobs/{id}", get(get_job).delete(delete_job))
        .route("/v1/jobs/{id}/result", get(get_result))
        .route("/v1/jobs/{id}/events", get(job_events))
        .route("/v1/jobs/{id}/pages/{page}/image", get(page_image))
        .route("/v1/bucket-events", post(bucket_webhook))
        .route("/ocr/pdf", post(ocr_pdf))
        .route("/ocr/image", post(ocr_image))
        .route("/workers/status", get(workers_status))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&api), authorize));
    Router::new()
        .merge(web::router())
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/health", get(health))
        .route(
            "/openapi.json",
            get(|| async { axum::Json(openapi::document()) }),
        )
        .merge(protected)
        .layer(middleware::from_fn_with_state(limit, refuse_oversize))
        // Multipart framing adds a little to the document itself.
        .layer(DefaultBodyLimit::max(body_limit(limit)))
        .with_state(api)
}

fn body_limit(max_upload: u64) -> usize {
    usize::try_from(max_upload.saturating_add(64 * 1024)).unwrap_or(usize::MAX)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// An error answer: a status and a JSON body `{"error": ...}`.
pub(crate) struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.0, axum::Json(json!({ "error": self.1 }))).into_response();
        // A body refused for its size is left unread: the connection cannot
        // carry another request, and the client must not reuse it.
        if self.0 == StatusCode::PAYLOAD_TOO_LARGE {
            response.headers_mut().insert(
                header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

impl From<IntakeError> for ApiError {
    fn from(e: IntakeError) -> Self {
        let status = match &e {
            IntakeError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            IntakeError::WrongType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IntakeError::BadRequest(_) | IntakeError::UnknownProfile { .. } => {
                StatusCode::BAD_REQUEST
            }
            IntakeError::NotFound(_) => StatusCode::NOT_FOUND,
            IntakeError::Submit(s) if s.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
            IntakeError::Submit(_) => StatusCode::BAD_REQUEST,
        };
        Self(status, e.to_string())
    }
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        let status = match &e {
            JobError::NotFound(_) | JobError::NotAsked { .. } => StatusCode::NOT_FOUND,
            JobError::NotFinished(_) | JobError::Ended { .. } | JobError::Running(_) => {
                StatusCode::CONFLICT
            }
            JobError::Gone { .. } => StatusCode::GONE,
            JobError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        Self(status, e.to_string())
    }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

/// Refuses a declared body over the limit before reading any of it.
async fn refuse_oversize(State(limit): State<u64>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(size) if size > body_limit(limit) as u64 => ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body is {size} bytes, over the limit of {limit} bytes (max upload size)"
            ),
        )
        .into_response(),
        _ => next.run(request).await,
    }
}

/// Bearer-token check. The digests are compared, so the comparison's time
/// says nothing about the token.
async fn authorize(State(api): Shared, request: Request, next: Next) -> Response {
    let Some(expected) = api.token_digest else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        // The scheme is case-insensitive (RFC 9110, section 11.1).
        .and_then(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer").then_some(token));
    match given {
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(
                json!({"error": "missing bearer token: send Authorization: Bearer <token>"}),
            ),
        )
            .into_response(),
        Some(token) if digest(token.trim()) == expected => next.run(request).await,
        Some(_) => ApiError(StatusCode::FORBIDDEN, "invalid bearer token".into()).into_response(),
    }
}

/// Links of a job.
fn links(job_id: &str) -> Value {
    json!({
        "self": format!("/v1/jobs/{job_id}"),
        "result": format!("/v1/jobs/{job_id}/result"),
        "events": format!("/v1/jobs/{job_id}/events"),
        "nats_events": names::events_of_job(job_id),
    })
}

/// What a request asks for besides its document.
#[derive(Debug, Default)]
pub(crate) struct Asked<'a> {
    pub(crate) dpi: Option<f32>,
    pub(crate) profile: Option<&'a str>,
    pub(crate) formats: Option<&'a [String]>,
    pub(crate) text_layer: Option<&'a str>,
    pub(crate) language: Option<&'a str>,
}

impl<'a> From<&'a SubmitRequest> for Asked<'a> {
    fn from(request: &'a SubmitRequest) -> Self {
        Self {
            dpi: request.dpi,
            profile: request.profile.as_deref(),
            formats: request.formats.as_deref(),
            text_layer: request.text_layer.as_deref(),
            language: request.language.as_deref(),
        }
    }
}

/// Checks the output formats a request names; each once, in the order
/// named.
pub fn requested_formats(formats: &[String]) -> Result<Vec<Format>, IntakeError> {
    let mut requested = Vec::new();
    for name in formats.iter().map(|f| f.trim()).filter(|f| !f.is_empty()) {
        let format: Format = name
            .parse()
            .map_err(|e: UnknownFormat| IntakeError::BadRequest(e.to_string()))?;
        if !requested.contains(&format) {
            requested.push(format);
        }
    }
    Ok(requested)
}

/// The resolutions a job may ask for.
pub const DPI_RANGE: std::ops::RangeInclusive<f32> = 36.0..=1200.0;

/// Checks a request's options and turns them into submit options.
pub(crate) fn options_for(
    intake: &Intake,
    asked: Asked<'_>,
    idempotency_key: Option<String>,
) -> Result<SubmitOptions, IntakeError> {
    let Asked {
        dpi,
        profile,
        formats,
        text_layer,
        language,
    } = asked;
    let mut options = intake.default_options();
    if let Some(dpi) = dpi {
        if !DPI_RANGE.contains(&dpi) {
            return Err(IntakeError::BadRequest(format!(
                "dpi {dpi} is out of range: {} to {}",
                DPI_RANGE.start(),
                DPI_RANGE.end()
            )));
        }
        options.dpi = dpi;
    }
    if let Some(profile) = profile.filter(|p| !p.is_empty()) {
        if !names::valid_job_id(profile) || profile.len() > 32 {
            return Err(IntakeError::BadRequest(format!(
                "profile {profile:?} is not a profile name"
            )));
        }
        options.profile = profile.to_owned();
    }
    crate::intake::latin_alias(&mut options);
    if let Some(formats) = formats.filter(|f| !f.is_empty()) {
        options.formats = requested_formats(formats)?;
    }
    if let Some(mode) = text_layer.filter(|m| !m.is_empty()) {
        options.text_layer = mode.parse().map_err(IntakeError::BadRequest)?;
    }
    if let Some(language) = language.filter(|l| !l.trim().is_empty()) {
        options.language =
            Language::parse(language).map_err(|e| IntakeError::BadRequest(e.to_string()))?;
    }
    options
        .language
        .check_profile(&options.profile)
        .map_err(IntakeError::BadRequest)?;
    if let Some(key) = &idempotency_key
        && (key.is_empty() || key.len() > 256)
    {
        return Err(IntakeError::BadRequest(
            "idempotency key must have 1 to 256 characters".into(),
        ));
    }
    options.idempotency_key = idempotency_key;
    Ok(options)
}

/// Resolves a stored source (`s3://bucket/key` of this deployment's store,
/// or a key in the store) to a store key.
pub(crate) fn stored_key(
    bucket: Option<&BucketConfig>,
    source: Option<&str>,
    key: Option<&str>,
) -> Result<(String, String), IntakeError> {
    if let Some(key) = key {
        let key = key.trim_start_matches('/');
        if key.is_empty() || key.split('/').any(|p| p == "..") {
            return Err(IntakeError::BadRequest(format!(
                "{key:?} is not an object key"
            )));
        }
        return Ok((key.to_owned(), key.to_owned()));
    }
    let Some(source) = source else {
        return Err(IntakeError::BadRequest(
            "name a document: a multipart `file`, or JSON with `source` (s3://bucket/key) or `key`"
                .into(),
        ));
    };
    let Some(rest) = source.strip_prefix("s3://") else {
        return Err(IntakeError::BadRequest(format!(
            "source {source:?} is not an s3://bucket/key address"
        )));
    };
    let (bucket_name, object) = rest.split_once('/').unwrap_or((rest, ""));
    let store_prefix = bucket.map_or("", |b| b.store_prefix.as_str());
    match bucket.and_then(|b| b.bucket.as_deref()) {
        Some(own) if own != bucket_name => {
            return Err(IntakeError::BadRequest(format!(
                "source {source} is outside this deployment's bucket {own}"
            )));
        }
        _ => {}
    }
    let key = object
        .strip_prefix(store_prefix)
        .map(|k| k.trim_start_matches('/'))
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            IntakeError::BadRequest(format!(
                "source {source} is outside this deployment's store prefix {store_prefix:?}"
            ))
        })?;
    Ok((key.to_owned(), source.to_owned()))
}

/// The file and fields of a multipart form. The file is read chunk by
/// chunk and refused as soon as it passes the limit.
struct Form {
    file: Option<(String, Bytes)>,
    fields: std::collections::HashMap<String, String>,
}

async fn read_form(mut multipart: Multipart, limit: u64) -> Result<Form, ApiError> {
    let mut form = Form {
        file: None,
        fields: Default::default(),
    };
    let too_large = || {
        ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("upload is over the limit of {limit} bytes (max upload size)"),
        )
    };
    let form_error = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            bad_request(format!("malformed multipart body: {}", e.body_text()))
        }
    };
    while let Some(mut field) = multipart.next_field().await.map_err(form_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            let filename = field.file_name().unwrap_or("document").to_owned();
            let mut bytes = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(form_error)? {
                if (bytes.len() + chunk.len()) as u64 > limit {
                    return Err(too_large());
                }
                bytes.extend_from_slice(&chunk);
            }
            form.file = Some((filename, bytes.into()));
        } else {
            let text = field.text().await.map_err(form_error)?;
            form.fields.insert(name, text);
        }
    }
    Ok(form)
}

fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"))
}

/// `POST /v1/jobs`: a multipart upload, or JSON naming an object.
async fn create_job(
    State(api): Shared,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let header_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let limit = api.intake.limits.max_upload_bytes;
    let submitted = if is_multipart(&headers) {
        let multipart = Multipart::from_request(request, &())
            .await
            .map_err(|e| bad_request(format!("malformed multipart body: {}", e.body_text())))?;
        let form = read_form(multipart, limit).await?;
        let field = |n: &str| {
            form.fields
                .get(n)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
        };
        let req = SubmitRequest::from_form(field).map_err(bad_request)?;
        let key = header_key.or(req.idempotency_key.clone());
        let options = options_for(&api.intake, Asked::from(&req), key)?;
        match form.file {
            Some((filename, bytes)) => {
                api.intake
                    .submit_upload(&filename, bytes, &options)
                    .await?
                    .0
            }
            None => match req.source.as_deref() {
                Some(source) => submit_named(&api, Some(source), None, &options).await?,
                None => return Err(bad_request("the form has no `file` field")),
            },
        }
    } else {
        let body = axum::body::to_bytes(request.into_body(), body_limit(limit))
            .await
            .map_err(|e| bad_request(format!("cannot read the body: {e}")))?;
        let req: SubmitRequest = serde_json::from_slice(&body)
            .map_err(|e| bad_request(format!("body is not a job request: {e}")))?;
        let key = header_key.or(req.idempotency_key.clone());
        let options = options_for(&api.intake, Asked::from(&req), key)?;
        submit_named(&api, req.source.as_deref(), req.key.as_deref(), &options).await?
    };
    let status = if submitted.created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let body = json!({
        "job_id": submitted.job_id,
        "created": submitted.created,
        "status": if submitted.created { "queued" } else { "existing" },
        "links": links(&submitted.job_id),
    });
    Ok((status, axum::Json(body)).into_response())
}

async fn submit_named(
    api: &Api,
    source: Option<&str>,
    key: Option<&str>,
    options: &SubmitOptions,
) -> Result<crate::submit::Submitted, IntakeError> {
    let (key, source) = stored_key(api.config.bucket.as_ref(), source, key)?;
    api.intake.submit_stored(key, source, options).await
}

/// `GET /v1/options`: what a submission may ask for here.
async fn get_options(State(api): Shared) -> Response {
    let intake = &api.intake;
    let defaults = intake.default_options();
    let now = now_ms();
    let beats = fleet::heartbeats(&intake.js).await.unwrap_or_default();
    let profiles = fleet::profiles(&intake.limits.profiles, &beats, |b| fresh(b, now));
    let served = fleet::profiles(&[], &beats, |b| healthy(b, now));
    axum::Json(json!({
        "profiles": profiles,
        "served_profiles": served,
        "default_profile": defaults.profile,
        "languages": pagefleet_schemas::language::readable(),
        "default_language": defaults.language.to_string(),
        "text_layers": pagefleet_schemas::TextLayer::NAMES,
        "default_text_layer": defaults.text_layer.as_str(),
        "dpi": {"default": defaults.dpi, "min": DPI_RANGE.start(), "max": DPI_RANGE.end()},
        "formats": Format::ALL,
        "default_formats": defaults.formats,
        "max_upload_bytes": intake.limits.max_upload_bytes,
        "max_pages": intake.limits.max_pages,
        "allowed_types": intake.limits.allowed_types.iter().map(|t| t.name()).collect::<Vec<_>>(),
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

/// The most jobs `GET /v1/jobs` lists.
pub const MAX_LISTED_JOBS: usize = 100;

/// `GET /v1/jobs?limit=N`: the most recently changed jobs, newest
/// submission first.
async fn list_jobs(State(api): Shared, Query(q): Query<ListQuery>) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(20);
    if !(1..=MAX_LISTED_JOBS).contains(&limit) {
        return Err(bad_request(format!(
            "limit {limit} is out of range: 1 to {MAX_LISTED_JOBS}"
        )));
    }
    let views = jobs::recent(&api.intake.js, limit).await?;
    let jobs: Vec<Value> = views.iter().map(job_body).collect();
    Ok(axum::Json(json!({ "jobs": jobs })).into_response())
}

/// `GET /v1/jobs/{id}/pages/{page}/image`: the page as it was rendered
/// for reading (PNG), the image its result's polygons refer to.
async fn page_image(
    State(api): Shared,
    Path((id, page)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let state = jobs::load(&api.intake.js, &id).await?;
    let total = state.manifest.as_ref().map(|m| m.total_pages);
    let not_found = |why: String| ApiError(StatusCode::NOT_FOUND, why);
    let page: u32 = page
        .parse()
        .ok()
        .filter(|&p| p >= 1)
        .ok_or_else(|| not_found(format!("page {page:?} is not a page number")))?;
    match total {
        None => return Err(not_found(format!("job {id} is not rasterized yet"))),
        Some(total) if page > total => {
            return Err(not_found(format!("job {id} has {total} pages, not {page}")));
        }
        Some(_) => {}
    }
    match store::get(
        api.intake.store.as_ref(),
        &names::keys::page_image(&id, page),
    )
    .await
    {
        Ok(png) => Ok((
            [
                (header::CONTENT_TYPE, "image/png"),
                (header::CACHE_CONTROL, "private, max-age=3600"),
            ],
            png,
        )
            .into_response()),
        Err(StoreError::NotFound(_)) => Err(not_found(format!(
            "page {page} of job {id} has no image: not rendered yet, or its text came from the PDF's text layer"
        ))),
        Err(e) => Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    }
}

/// `GET /v1/jobs/{id}`.
async fn get_job(State(api): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    let view = jobs::view(&api.intake, &id).await?;
    Ok(axum::Json(job_body(&view)).into_response())
}

/// A job as the API shows it: its view and its links.
fn job_body(view: &jobs::JobView) -> Value {
    let mut body = serde_json::to_value(view).unwrap_or_default();
    body["links"] = links(&view.job_id);
    body
}

#[derive(Debug, Deserialize)]
struct ResultQuery {
    format: Option<String>,
    #[serde(default)]
    redirect: bool,
}

/// `GET /v1/jobs/{id}/result?format=txt|md|json|pdf|hocr|alto`; with
/// `redirect=true` on an S3 store, a 307 to a presigned URL of the result
/// instead of its bytes (a large searchable PDF need not pass through
/// ingest).
async fn get_result(
    State(api): Shared,
    Path(id): Path<String>,
    Query(q): Query<ResultQuery>,
) -> Result<Response, ApiError> {
    let format = match q.format.as_deref() {
        None => Format::Txt,
        Some(name) => name
            .parse()
            .map_err(|e: UnknownFormat| bad_request(e.to_string()))?,
    };
    if let (true, Some(presigner)) = (q.redirect, &api.config.presigner) {
        let key = jobs::result_key(&api.intake.js, &api.intake.store, &id, format).await?;
        let url = presigner
            .url(&key)
            .await
            .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        return Ok((StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, url)]).into_response());
    }
    let bytes = jobs::result(&api.intake.js, &api.intake.store, &id, format).await?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], bytes).into_response())
}

#[derive(Debug, Deserialize)]
struct DeleteQuery {
    #[serde(default)]
    purge: bool,
}

/// `DELETE /v1/jobs/{id}`: removes an ended job (its state, objects and
/// events); cancels a running one, and with `?purge=true` removes it too.
async fn delete_job(
    State(api): Shared,
    Path(id): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Result<Response, ApiError> {
    let (js, store) = (&api.intake.js, &api.intake.store);
    let state = jobs::load(js, &id).await?;
    if state.status == JobStatus::Running {
        let cancelled = jobs::cancel(js, &id).await?;
        if !q.purge {
            return Ok(axum::Json(jobs::view_of(&cancelled, None)).into_response());
        }
    }
    let removed = jobs::remove(js, store, &id, Removal::Deleted).await?;
    Ok(axum::Json(serde_json::json!({
        "job_id": id,
        "status": "deleted",
        "deleted_at_ms": removed.removed.map(|r| r.at_ms),
    }))
    .into_response())
}

/// `GET /v1/jobs/{id}/events`: server-sent events, from the job's first to
/// its completion.
async fn job_events(State(api): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    // Unknown jobs are a 404, not an endless stream.
    let state = jobs::load(&api.intake.js, &id).await?;
    let events = jobs::events(&api.intake.js, &id).await?;
    let finished = state.status != JobStatus::Running;
    let last = jobs::view_of(&state, None);
    // Events are kept for a while only: a finished job whose events expired
    // still ends its stream with its completion.
    let tail = futures::stream::once(async move {
        EventView {
            job_id: last.job_id,
            kind: EventKind::Completed.token(),
            pages_done: last.progress.pages_done,
            pages_failed: last.progress.pages_failed,
            total_pages: last.progress.total_pages,
            status: last.status,
            at_ms: last.finished_at_ms.unwrap_or_else(now_ms),
            waiting: None,
            page: None,
            page_status: None,
        }
    });
    let live = events.map(|e| EventView::from(&e));
    let stream: futures::stream::BoxStream<'static, EventView> = if finished {
        // Replay what is kept, bounded by a short wait, then the final state.
        let replay = live.take_until(tokio::time::sleep(Duration::from_millis(500)));
        replay.chain(tail).boxed()
    } else {
        live.boxed()
    };
    // Ends right after the completion, without waiting for a next event.
    let sse = futures::stream::unfold(Some(stream), |stream| async move {
        let mut stream = stream?;
        let event = stream.next().await?;
        let more = (event.kind != EventKind::Completed.token()).then_some(stream);
        Some((event, more))
    })
    .map(|e| {
        Ok::<_, Infallible>(
            Event::default()
                .event(e.kind)
                .data(serde_json::to_string(&e).unwrap_or_default()),
        )
    });
    Ok(Sse::new(sse)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// `POST /v1/bucket-events`: an S3 event notification (MinIO's format).
async fn bucket_webhook(State(api): Shared, body: Bytes) -> Result<Response, ApiError> {
    let Some(config) = &api.config.bucket else {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            "bucket triggers are not configured here".into(),
        ));
    };
    let event: BucketEvent = serde_json::from_slice(&body)
        .map_err(|e| bad_request(format!("not an S3 event notification: {e}")))?;
    let jobs = bucket::handle_event(&api.intake, config, &event).await?;
    Ok(axum::Json(json!({ "jobs": jobs })).into_response())
}

/// `POST /ocr/pdf`.
async fn ocr_pdf(State(api): Shared, multipart: Multipart) -> Result<Response, ApiError> {
    ocr_sync(api, multipart, false).await
}

/// `POST /ocr/image`.
async fn ocr_image(State(api): Shared, multipart: Multipart) -> Result<Response, ApiError> {
    ocr_sync(api, multipart, true).await
}

/// The synchronous endpoints of the replaced cluster: form fields `file`,
/// `language`, `dpi`; the answer is the finished job.
async fn ocr_sync(api: Arc<Api>, multipart: Multipart, image: bool) -> Result<Response, ApiError> {
    let form = read_form(multipart, api.intake.limits.max_upload_bytes).await?;
    let Some((filename, bytes)) = form.file else {
        return Err(bad_request("the form has no `file` field"));
    };
    let dpi = match form
        .fields
        .get("dpi")
        .map(|d| d.trim())
        .filter(|d| !d.is_empty())
    {
        Some(d) => Some(
            d.parse::<f32>()
                .map_err(|_| bad_request(format!("dpi {d:?} is not a number")))?,
        ),
        None => None,
    };
    let asked = Asked {
        dpi,
        language: form.fields.get("language").map(String::as_str),
        ..Asked::default()
    };
    let options = options_for(&api.intake, asked, None)?;
    let language = options.language.to_string();
    let kind = api.intake.check(bytes.len() as u64, &bytes)?;
    match (image, kind) {
        (true, DocType::Pdf) => {
            return Err(ApiError(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "this is a PDF: send it to /ocr/pdf".into(),
            ));
        }
        (false, k) if k.is_image() => {
            return Err(ApiError(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("this is a {k} image: send it to /ocr/image"),
            ));
        }
        _ => {}
    }
    let (submitted, _) = api.intake.submit_upload(&filename, bytes, &options).await?;
    let job_id = submitted.job_id;
    let state = jobs::wait(&api.intake.js, &job_id, api.config.sync_timeout).await?;
    if state.status == JobStatus::Running {
        return Err(ApiError(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "job {job_id} not finished within {} s; follow it at /v1/jobs/{job_id}",
                api.config.sync_timeout.as_secs()
            ),
        ));
    }
    let read = |format: Format| {
        let api = Arc::clone(&api);
        let job_id = job_id.clone();
        async move { jobs::output(&api.intake.store, &job_id, format).await }
    };
    let report: Value = serde_json::from_slice(&read(Format::Json).await?)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let text = String::from_utf8_lossy(&read(Format::Txt).await?).into_owned();
    let markdown = String::from_utf8_lossy(&read(Format::Md).await?).into_owned();
    let status = match state.status {
        JobStatus::Failed => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::OK,
    };
    let body = json!({
        "job_id": job_id,
        "status": state.status.as_str(),
        "language": language,
        "metrics": report["metrics"],
        "results": report["pages"],
        "combined_text": text,
        "combined_markdown": markdown,
    });
    Ok((status, axum::Json(body)).into_response())
}

/// Every worker's last heartbeat.
async fn heartbeats(js: &async_nats::jetstream::Context) -> Result<Vec<WorkerHeartbeat>, ApiError> {
    fleet::heartbeats(js)
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e))
}

/// `GET /workers/status`, in the replaced cluster's shape, from the workers'
/// own heartbeats.
async fn workers_status(State(api): Shared) -> Result<Response, ApiError> {
    let now = now_ms();
    let beats = heartbeats(&api.intake.js).await?;
    let workers: Vec<Value> = beats
        .iter()
        .map(|b| {
            let status = if healthy(b, now) {
                "healthy"
            } else if fresh(b, now) {
                b.status.as_str()
            } else {
                "stale"
            };
            json!({
                "name": b.name,
                "status": status,
                "profile": b.profile,
                "execution_provider": b.execution_provider,
                "slots": b.slots,
                "pages_in_flight": b.pages_in_flight,
                "last_heartbeat_ms": b.at_ms,
                "health": {
                    "cpu_percent": b.cpu_percent,
                    "memory_percent": b.memory_percent,
                    "memory_mb": b.memory_mb,
                    "uptime_seconds": b.uptime_seconds,
                    "total_requests": b.pages_done + b.pages_failed,
                    "pages_done": b.pages_done,
                    "pages_failed": b.pages_failed,
                },
            })
        })
        .collect();
    let healthy = workers.iter().filter(|w| w["status"] == "healthy").count();
    Ok(axum::Json(json!({
        "total_workers": workers.len(),
        "healthy_workers": healthy,
        "workers": workers,
    }))
    .into_response())
}

/// What is not ready: NATS and the store.
async fn failures(api: &Api) -> Vec<String> {
    pagefleet_stagekit::health::connection_failures(&api.client, api.intake.store.as_ref()).await
}

/// `GET /readyz`.
async fn readyz(State(api): Shared) -> Response {
    let failures = failures(&api).await;
    if failures.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready:\n{}\n", failures.join("\n")),
        )
            .into_response()
    }
}

/// `GET /health`, the replaced cluster's health check.
async fn health(State(api): Shared) -> Response {
    let failures = failures(&api).await;
    let workers = heartbeats(&api.intake.js).await.unwrap_or_default();
    let now = now_ms();
    let healthy = workers.iter().filter(|b| healthy(b, now)).count();
    let status = if failures.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if failures.is_empty() { "healthy" } else { "unhealthy" },
        "checks": failures,
        "total_workers": workers.len(),
        "healthy_workers": healthy,
    });
    (status, axum::Json(body)).into_response()
}
