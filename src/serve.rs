//! `pagefleet serve`: the single-machine server. Every stage, started
//! through the one launcher with every flag the stage commands take, plus
//! `/metrics` on the HTTP API, until SIGINT or SIGTERM. While it runs,
//! `serve.json` in its data folder says where its HTTP API and NATS are, so
//! that `watch` and `doctor` find it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use pagefleet::home::Home;
use pagefleet::launch::{IngestLaunch, Launch};

use crate::cli::{HomeArgs, ServeArgs};
use crate::stages::{ingest_config, pipeline_launch};

pub(crate) fn run(home: &HomeArgs, args: ServeArgs) -> ExitCode {
    crate::block_on(serve(Home::resolve(home.path.as_deref()), args))
}

async fn serve(home: Home, args: ServeArgs) -> anyhow::Result<()> {
    let ingest = ingest_config(
        &args.intake,
        &args.shared.store,
        &args.shared.queue,
        args.http_addr,
        &args.pipeline.model.profile.to_string(),
        args.pipeline.model.max_pixels,
    )?;
    // Bind first: a taken port fails before anything starts.
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.http_addr))?;
    let http = listener.local_addr()?;
    let launch = Launch {
        ingest: Some(IngestLaunch {
            config: ingest,
            listener: Some(listener),
            metrics: true,
        }),
        ..pipeline_launch(&home, "pagefleet-serve", &args.shared, &args.pipeline)?
    };
    let data = launch.data.clone();
    let launched = launch.start(&home).await?;
    let note = ServeNote::write(&data, &format!("http://{http}"), &launched.url);
    // The two addresses a user needs, on standard output whatever the log
    // level.
    println!("pagefleet serving");
    println!(
        "  HTTP API: http://{http}  (OpenAPI at http://{http}/openapi.json, metrics at /metrics)"
    );
    println!("  NATS:     {}", launched.url);
    let outcome = launched.until_signal().await;
    drop(note);
    outcome
}

/// `serve.json` in the data folder, removed when serve stops: where a
/// running serve's HTTP API and NATS are.
struct ServeNote(Option<PathBuf>);

impl ServeNote {
    fn write(data: &Path, http: &str, nats: &str) -> Self {
        let path = pagefleet::settings::serve_note(data);
        let body = serde_json::json!({
            "http": http,
            "nats": nats,
            "pid": std::process::id(),
        });
        match std::fs::write(&path, body.to_string()) {
            Ok(()) => Self(Some(path)),
            Err(e) => {
                tracing::warn!(path = %path.display(), "cannot write where serve is: {e}");
                Self(None)
            }
        }
    }
}

impl Drop for ServeNote {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}
