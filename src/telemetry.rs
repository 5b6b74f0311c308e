//! Logging and tracing, set up once per process.
//!
//! Logs: timestamped lines (or JSON) on standard error, filtered by
//! `RUST_LOG`; a line inside a job's span carries the span's `job_id` and
//! `trace_id` fields.
//!
//! Traces: exported over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, with the standard
//! `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc` or `http/protobuf`, the default),
//! `OTEL_SERVICE_NAME` and `OTEL_BSP_*` variables; off otherwise. W3C trace
//! context crosses NATS in message headers (`pagefleet_stagekit::trace`), so a
//! job is one trace over every process.

use std::io::IsTerminal as _;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::SpanExporter;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::cli::{LogArgs, LogFormat};

/// Keeps the exporter alive; [`Telemetry::shutdown`] flushes what is left.
pub(crate) struct Telemetry {
    provider: Option<SdkTracerProvider>,
    // The gRPC exporter's connection lives on this runtime, apart from any
    // runtime a command starts and stops.
    _runtime: Option<tokio::runtime::Runtime>,
}

impl Telemetry {
    /// Exports the spans still buffered. Called after the command's own
    /// runtime has finished, so nothing waits on a busy worker thread.
    pub(crate) fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("pagefleet: exporting the last traces failed: {e}");
        }
    }
}

fn env_set(key: &str) -> bool {
    std::env::var(key).is_ok_and(|v| !v.trim().is_empty())
}

/// Whether the environment asks for trace export.
pub(crate) fn tracing_enabled() -> bool {
    env_set("OTEL_EXPORTER_OTLP_ENDPOINT") || env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
}

/// The tracer provider exporting over OTLP as the environment says.
fn provider(service: &str) -> anyhow::Result<(SdkTracerProvider, tokio::runtime::Runtime)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otlp")
        .enable_all()
        .build()
        .context("starting the trace exporter's runtime")?;
    let grpc = std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .is_ok_and(|p| p.trim() == "grpc");
    let exporter = {
        let _inside = runtime.enter();
        if grpc {
            SpanExporter::builder().with_tonic().build()
        } else {
            SpanExporter::builder().with_http().build()
        }
        .context("configuring the OTLP exporter from OTEL_EXPORTER_OTLP_*")?
    };
    // The builder reads OTEL_SERVICE_NAME; the stage's name is the fallback.
    let mut resource = Resource::builder();
    if !env_set("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name(format!("pagefleet-{service}"));
    }
    let provider = SdkTracerProvider::builder()
        .with_resource(resource.build())
        .with_batch_exporter(exporter)
        .build();
    Ok((provider, runtime))
}

/// Installs the global subscriber. `RUST_LOG` filters; the default is `info`,
/// or `warn` when `quiet_default` (a progress bar owns the terminal).
/// `service` names the process in traces unless `OTEL_SERVICE_NAME` does.
pub(crate) fn init(args: &LogArgs, quiet_default: bool, service: &str) -> Telemetry {
    let default = if quiet_default {
        "warn"
    } else {
        "info,ort=warn,async_nats=warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // The object store's client logs every retry of every request at info
    // (ten lines a request through an outage); the stages log an outage
    // once as it starts and once as it ends, and count the retries.
    let filter = if std::env::var("RUST_LOG").is_ok_and(|v| v.contains("object_store")) {
        filter
    } else {
        filter.add_directive(
            "object_store::client::retry=warn"
                .parse()
                .expect("a valid directive"),
        )
    };
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let (provider, runtime, failure) = if tracing_enabled() {
        match provider(service) {
            Ok((p, r)) => (Some(p), Some(r), None),
            Err(e) => (None, None, Some(e)),
        }
    } else {
        (None, None, None)
    };
    // Traces do not depend on the log level, and never include the
    // exporter's own HTTP and gRPC crates: only pagefleet's spans.
    let traced = Targets::new()
        .with_target("pagefleet", Level::INFO)
        .with_target("pagefleet_schemas", Level::INFO)
        .with_target("pagefleet_ingest", Level::INFO)
        .with_target("pagefleet_rasterizer", Level::INFO)
        .with_target("pagefleet_ocr_worker", Level::INFO)
        .with_target("pagefleet_aggregator", Level::INFO);
    let otel = provider.as_ref().map(|p| {
        opentelemetry::global::set_tracer_provider(p.clone());
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(pagefleet_stagekit::trace::TRACER))
            .with_filter(traced)
    });
    let fmt = match args.format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            // Colour codes only for a person at a terminal, not in log files.
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(otel)
        .with(fmt.with_filter(filter))
        .init();
    if let Some(e) = failure {
        tracing::error!("traces will not be exported: {e:#}");
    }
    Telemetry {
        provider,
        _runtime: runtime,
    }
}
