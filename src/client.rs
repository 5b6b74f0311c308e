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

use crate::batch;
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

/// `pagefleet submit`: one job per document. A document that cannot be
/// submitted, or whose job does not succeed, does not stop the others; the
/// exit status says whether every one succeeded.
pub(crate) async fn submit(home: &Home, args: SubmitArgs) -> anyhow::Result<()> {
    let api = Api::new(home, &args.api)?;
    if args.out.is_none() && args.output.len() > 1 {
        bail!("--format names several formats: write them with --out DIR");
    }
    let expanded = batch::expand(&args.documents);
    let several = expanded.len() > 1;
    // Each document's job id, or why it has none.
    let mut submitted: Vec<(String, Result<String, String>)> = Vec::new();
    let mut documents = Vec::new();
    for document in expanded {
        let document = match document {
            Ok(d) => d,
            Err((argument, why)) => {
                submitted.push((argument, Err(why)));
                continue;
            }
        };
        let key = args.idempotency_key.as_ref().map(|key| match several {
            true => format!("{key}/{}", document.label()),
            false => key.clone(),
        });
        let job = submit_one(&api, &args, &document, key)
            .await
            .map_err(|e| format!("{e:#}"));
        if let Ok(id) = &job {
            if args.wait || args.out.is_some() {
                match several {
                    true => eprintln!("job {id}: {}", document.label()),
                    false => eprintln!("job {id}"),
                }
            }
            documents.push((document.clone(), id.clone()));
        }
        submitted.push((document.label(), job));
    }
    if !args.wait && args.out.is_none() {
        for (label, job) in &submitted {
            match job {
                Ok(id) if several => println!("{id}\t{label}"),
                Ok(id) => println!("{id}"),
                Err(why) => eprintln!("{label}: not submitted: {why}"),
            }
        }
        return all_went(&submitted, "were not submitted");
    }
    let ids: Vec<String> = documents.iter().map(|(_, id)| id.clone()).collect();
    let jobs = match ids.is_empty() {
        true => Vec::new(),
        false => follow(&api, &ids).await?,
    };
    if !several && args.out.is_none() {
        // One document: its result on standard output, as before batches.
        let (Some(job), Some(id)) = (jobs.first(), ids.first()) else {
            return all_went(&submitted, "were not submitted");
        };
        return print_result(&api, id, job, args.output[0]).await;
    }
    let names = batch::output_names(documents.iter().map(|(d, _)| d));
    // A line per document on standard output: how it ended.
    let mut outcomes: Vec<(String, Result<String, String>)> = Vec::new();
    for (label, job) in &submitted {
        if let Err(why) = job {
            println!("{label}: not submitted: {why}");
            outcomes.push((label.clone(), Err(why.clone())));
        }
    }
    for (((document, id), job), name) in documents.iter().zip(&jobs).zip(&names) {
        let status = job["status"].as_str().unwrap_or("unknown");
        let mut outcome = match status {
            "success" => Ok(format!("success, job {id}")),
            _ => Err(format!(
                "{status}, job {id}: {}",
                job["error"].as_str().unwrap_or("some pages failed")
            )),
        };
        // A job that read some pages has results; a failed one has none.
        let has_results = matches!(status, "success" | "partial_success");
        if let (Some(dir), true) = (&args.out, has_results)
            && let Err(e) = write_results(&api, id, dir, name, &args.output).await
        {
            outcome = Err(format!("{status}, job {id}: {e:#}"));
        }
        match &outcome {
            Ok(said) => println!("{}: {said}", document.label()),
            Err(why) => println!("{}: {why}", document.label()),
        }
        outcomes.push((document.label(), outcome));
    }
    all_went(&outcomes, "did not succeed")
}

/// Submits one document; returns its job's id.
async fn submit_one(
    api: &Api,
    args: &SubmitArgs,
    document: &batch::Document,
    idempotency_key: Option<String>,
) -> anyhow::Result<String> {
    let mut request = api.request(reqwest::Method::POST, "/v1/jobs");
    if let Some(key) = idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    // The standard outputs, and the ones printed or written.
    let mut formats = Format::DEFAULT.to_vec();
    for format in &args.output {
        if !formats.contains(format) {
            formats.push(*format);
        }
    }
    let mut submission = SubmitRequest {
        dpi: args.dpi,
        profile: args.profile.clone(),
        formats: Some(formats.iter().map(|f| f.name().to_owned()).collect()),
        text_layer: args.text_layer.map(|mode| mode.as_str().to_owned()),
        language: args.language.clone(),
        ..Default::default()
    };
    let request = match document {
        batch::Document::Stored(url) => {
            submission.source = Some(url.clone());
            request.json(&submission)
        }
        batch::Document::File(path) => {
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
        }
    };
    let accepted: Value = api.send(request).await?.json().await?;
    Ok(accepted["job_id"]
        .as_str()
        .context("the API answered without a job id")?
        .to_owned())
}

/// A single document's result on standard output; an error when its job
/// did not succeed.
async fn print_result(api: &Api, job_id: &str, job: &Value, format: Format) -> anyhow::Result<()> {
    let status = job["status"].as_str().unwrap_or("unknown");
    if status == "cancelled" {
        bail!("job {job_id} was cancelled");
    }
    let output = api.result(job_id, format).await?;
    std::io::stdout().write_all(&output)?;
    if status != "success" {
        let error = job["error"].as_str().unwrap_or("some pages failed");
        bail!("job {job_id} ended {status}: {error}");
    }
    Ok(())
}

/// Writes a job's results in `formats` to `dir` as `name.<extension>`.
async fn write_results(
    api: &Api,
    job_id: &str,
    dir: &std::path::Path,
    name: &str,
    formats: &[Format],
) -> anyhow::Result<()> {
    tokio::fs::create_dir_all(dir)
        .await
        .with_context(|| format!("cannot create {}", dir.display()))?;
    for &format in formats {
        let bytes = api.result(job_id, format).await?;
        let path = dir.join(format!("{name}.{}", format.extension()));
        tokio::fs::write(&path, &bytes)
            .await
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// `Ok` when no document's outcome is an error; else an error counting
/// those that are, which `failed` says what became of.
fn all_went(outcomes: &[(String, Result<String, String>)], failed: &str) -> anyhow::Result<()> {
    let count = outcomes.iter().filter(|(_, o)| o.is_err()).count();
    if count > 0 {
        bail!("{count} of {} documents {failed}", outcomes.len());
    }
    Ok(())
}

/// Polls jobs until every one has ended, drawing one progress line for all
/// of them (on a terminal, in place); returns their views in order.
async fn follow(api: &Api, job_ids: &[String]) -> anyhow::Result<Vec<Value>> {
    let terminal = std::io::stderr().is_terminal();
    let mut last = String::new();
    let mut jobs: Vec<Option<Value>> = vec![None; job_ids.len()];
    loop {
        let mut ended = 0;
        let (mut done, mut failed, mut total, mut counted) = (0, 0, 0, 0);
        for (id, slot) in job_ids.iter().zip(&mut jobs) {
            let job = match slot.take() {
                Some(job) if !running(&job) => job,
                _ => api.job(id).await?,
            };
            done += job["progress"]["pages_done"].as_u64().unwrap_or(0);
            failed += job["progress"]["pages_failed"].as_u64().unwrap_or(0);
            if let Some(pages) = job["progress"]["total_pages"].as_u64() {
                total += pages;
                counted += 1;
            }
            ended += usize::from(!running(&job));
            *slot = Some(job);
        }
        let line = match (job_ids.len(), &jobs[..]) {
            (1, [Some(job)]) => {
                let status = job["status"].as_str().unwrap_or("unknown");
                match counted {
                    1 => format!(
                        "{}, {status}",
                        crate::run::progress_line(done, failed, total)
                    ),
                    _ => format!("{status}, waiting for the page count"),
                }
            }
            (n, _) => format!(
                "{}, {ended} of {n} documents ended{}",
                crate::run::progress_line(done, failed, total),
                match n - counted {
                    0 => String::new(),
                    waiting => format!(", {waiting} waiting for their page count"),
                }
            ),
        };
        if line != last {
            if terminal {
                eprint!("\r{line}   ");
            } else {
                eprintln!("{line}");
            }
            last = line;
        }
        if ended == job_ids.len() {
            if terminal {
                eprintln!();
            }
            return Ok(jobs.into_iter().flatten().collect());
        }
        // One request per running job each round: rounds come further apart
        // as more jobs run, so a large batch asks at most about 30 times a
        // second (300 ms for up to ten jobs, at most 5 s).
        let running = (job_ids.len() - ended) as u64;
        tokio::time::sleep(Duration::from_millis((30 * running).clamp(300, 5000))).await;
    }
}

/// Whether a job view says the job has not ended.
fn running(job: &Value) -> bool {
    matches!(
        job["status"].as_str().unwrap_or("unknown"),
        "queued" | "running" | "waiting"
    )
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
