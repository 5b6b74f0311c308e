//! The client commands against a running deployment: `submit`, `status` and
//! `result` speak to the HTTP API; `watch` follows job events on NATS.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{Context, bail};
use futures::StreamExt;
use pagefleet_schemas::messages::{EventKind, JobEvent, Message};
use pagefleet_schemas::names;
use pagefleet_schemas::submit::SubmitRequest;
use serde_json::Value;

use pagefleet::connect;
use pagefleet::home::Home;
use pagefleet::settings::ServeAddresses;

use crate::cli::{ApiArgs, DeleteArgs, JobArgs, ResultArgs, SubmitArgs, WatchArgs};
use pagefleet_schemas::Format;

/// The HTTP API client commands speak to when nothing says which.
const DEFAULT_API_URL: &str = "http://127.0.0.1:8000";

/// How long `watch` waits for NATS to answer before it says what it tried.
const WATCH_CONNECT_LIMIT: Duration = Duration::from_secs(5);

/// A client of the HTTP API.
struct Api {
    http: reqwest::Client,
    base: String,
    /// Why the default address was taken, if it was: said when it does not
    /// answer.
    guessed: String,
    token: Option<String>,
}

impl Api {
    /// The API `--api` names; else the one of the serve running on the
    /// data folder; else the default address.
    fn new(home: &Home, args: &ApiArgs) -> anyhow::Result<Self> {
        let (base, guessed) = match &args.url {
            Some(url) => (url.clone(), String::new()),
            None => match ServeAddresses::find(&args.data.dir_or(home)) {
                Ok(serve) => (serve.http, String::new()),
                Err(why) => (
                    DEFAULT_API_URL.to_owned(),
                    format!(" (no serve found: {why})"),
                ),
            },
        };
        Ok(Self {
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()?,
            base: base.trim_end_matches('/').to_owned(),
            guessed,
            token: args.token.clone(),
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => request.bearer_auth(t),
            None => request,
        }
    }

    /// Sends a request; an error answer becomes an error naming the server's message.
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let response = request.send().await.with_context(|| {
            format!(
                "cannot reach the pagefleet API at {}{}",
                self.base, self.guessed
            )
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(body);
        bail!("{status}: {message}")
    }

    async fn job(&self, job_id: &str) -> anyhow::Result<Value> {
        let response = self
            .send(self.request(reqwest::Method::GET, &format!("/v1/jobs/{job_id}")))
            .await?;
        Ok(response.json().await?)
    }

    async fn result(&self, job_id: &str, format: Format) -> anyhow::Result<bytes::Bytes> {
        let path = format!("/v1/jobs/{job_id}/result?format={}", format.name());
        let response = self.send(self.request(reqwest::Method::GET, &path)).await?;
        Ok(response.bytes().await?)
    }
}

/// `pagefleet submit`.
pub(crate) async fn submit(home: &Home, args: SubmitArgs) -> anyhow::Result<()> {
    let api = Api::new(home, &args.api)?;
    let mut request = api.request(reqwest::Method::POST, "/v1/jobs");
    if let Some(key) = &args.idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    // The standard outputs, and the one printed.
    let mut formats = Format::DEFAULT.to_vec();
    if !formats.contains(&args.output) {
        formats.push(args.output);
    }
    let mut submission = SubmitRequest {
        dpi: args.dpi,
        profile: args.profile.clone(),
        formats: Some(formats.iter().map(|f| f.name().to_owned()).collect()),
        text_layer: args.text_layer.map(|mode| mode.as_str().to_owned()),
        language: args.language.clone(),
        ..Default::default()
    };
    let request = if args.document.starts_with("s3://") {
        submission.source = Some(args.document.clone());
        request.json(&submission)
    } else {
        let path = std::path::Path::new(&args.document);
        let bytes = tokio::fs::read(path)
            .await
            .with_context(|| format!("cannot read {}", path.display()))?;
        let filename = path
            .file_name()
            .map_or_else(|| "document".into(), |f| f.to_string_lossy().into_owned());
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(filename),
        );
        let form = submission
            .form_fields()
            .into_iter()
            .fold(form, |form, (name, value)| form.text(name, value));
        request.multipart(form)
    };
    let accepted: Value = api.send(request).await?.json().await?;
    let job_id = accepted["job_id"]
        .as_str()
        .context("the API answered without a job id")?
        .to_owned();
    if !args.wait {
        println!("{job_id}");
        return Ok(());
    }
    eprintln!("job {job_id}");
    let job = follow(&api, &job_id).await?;
    let status = job["status"].as_str().unwrap_or("unknown").to_owned();
    if status == "cancelled" {
        bail!("job {job_id} was cancelled");
    }
    let output = api.result(&job_id, args.output).await?;
    std::io::stdout().write_all(&output)?;
    if status != "success" {
        let error = job["error"].as_str().unwrap_or("some pages failed");
        bail!("job {job_id} ended {status}: {error}");
    }
    Ok(())
}

/// Polls a job until it ends, drawing a progress bar on a terminal.
async fn follow(api: &Api, job_id: &str) -> anyhow::Result<Value> {
    let terminal = std::io::stderr().is_terminal();
    let mut last = String::new();
    loop {
        let job = api.job(job_id).await?;
        let status = job["status"].as_str().unwrap_or("unknown");
        let done = job["progress"]["pages_done"].as_u64().unwrap_or(0);
        let failed = job["progress"]["pages_failed"].as_u64().unwrap_or(0);
        let total = job["progress"]["total_pages"].as_u64();
        let line = match total {
            Some(total) => format!(
                "{}, {status}",
                crate::run::progress_line(done, failed, total)
            ),
            None => format!("{status}, waiting for the page count"),
        };
        if line != last {
            if terminal {
                eprint!("\r{line}   ");
            } else {
                eprintln!("{line}");
            }
            last = line;
        }
        if !matches!(status, "queued" | "running" | "waiting") {
            if terminal {
                eprintln!();
            }
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// `pagefleet status`.
pub(crate) async fn status(home: &Home, args: JobArgs) -> anyhow::Result<()> {
    let api = Api::new(home, &args.api)?;
    let job = api.job(&args.job_id).await?;
    println!("{}", serde_json::to_string_pretty(&job)?);
    Ok(())
}

/// `pagefleet result`.
pub(crate) async fn result(home: &Home, args: ResultArgs) -> anyhow::Result<()> {
    let api = Api::new(home, &args.api)?;
    let output = api.result(&args.job_id, args.output).await?;
    std::io::stdout().write_all(&output)?;
    Ok(())
}

/// `pagefleet delete`: prints what became of the job (`deleted`, or
/// `cancelled` for a running job without `--purge`).
pub(crate) async fn delete(home: &Home, args: DeleteArgs) -> anyhow::Result<()> {
    let api = Api::new(home, &args.api)?;
    let path = format!(
        "/v1/jobs/{}{}",
        args.job_id,
        if args.purge { "?purge=true" } else { "" }
    );
    let answer: Value = api
        .send(api.request(reqwest::Method::DELETE, &path))
        .await?
        .json()
        .await?;
    println!(
        "{} {}",
        args.job_id,
        answer["status"].as_str().unwrap_or("unknown")
    );
    Ok(())
}

/// `pagefleet watch`: one line per job event. With a job id, its events
/// from the first (kept in the event stream) until it completes; without,
/// every job's events from now on.
pub(crate) async fn watch(home: &Home, args: WatchArgs) -> anyhow::Result<()> {
    let (nats, tried) = args.nats.or_running_serve(&args.data.dir_or(home));
    let client = match tokio::time::timeout(
        WATCH_CONNECT_LIMIT,
        connect::nats_once(&nats, "pagefleet-watch"),
    )
    .await
    {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => bail!("no NATS to watch: tried {tried}: {e:#}"),
        Err(_) => bail!(
            "no NATS to watch: tried {tried}: no answer within {} s",
            WATCH_CONNECT_LIMIT.as_secs()
        ),
    };
    let mut events: futures::stream::BoxStream<'static, JobEvent> = match &args.job_id {
        Some(id) => {
            let js = async_nats::jetstream::new(client.clone());
            pagefleet_ingest::jobs::events(&js, id).await?.boxed()
        }
        None => client
            .subscribe(names::EVENTS_SUBJECTS)
            .await?
            .filter_map(|m| async move { JobEvent::decode(&m.payload).ok() })
            .boxed(),
    };
    eprintln!("watching job events on {}", nats.url_or_default());
    let mut stop = std::pin::pin!(connect::shutdown_signal());
    loop {
        let event = tokio::select! {
            _ = &mut stop => return Ok(()),
            e = events.next() => match e {
                Some(e) => e,
                None => bail!("the NATS subscription ended"),
            },
        };
        let total = event
            .total_pages
            .map_or_else(|| "?".to_owned(), |t| t.to_string());
        let why = event
            .waiting
            .as_deref()
            .map_or_else(String::new, |w| format!(": {w}"));
        println!(
            "{} {} {:<10} {}/{} pages, {} failed, {}{why}",
            event.at_ms,
            event.job_id,
            event.kind.token(),
            event.pages_done,
            total,
            event.pages_failed,
            event.status.as_str()
        );
        if args.job_id.is_some() && event.kind == EventKind::Completed {
            return Ok(());
        }
    }
}
