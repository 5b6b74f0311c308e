//! One trace per job across every process: an OTLP/HTTP receiver inside the
//! test collects the spans the ingest, rasterizer, OCR worker and aggregator
//! processes export while a document goes through, and checks that they
//! form one trace with the right parent links and job attributes.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns fail loudly by design

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::routing::post;
use common::pipeline::{NatsServer, StageProcess, free_tcp_port};
use common::root;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;

const TIMEOUT: Duration = Duration::from_secs(240);

/// A span as received, with the service that sent it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent: Vec<u8>,
    attributes: HashMap<String, String>,
    start_ns: u64,
    end_ns: u64,
}

type Spans = Arc<Mutex<Vec<Received>>>;

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

async fn traces(
    State(spans): State<Spans>,
    body: Bytes,
) -> (StatusCode, [(header::HeaderName, &'static str); 1], Vec<u8>) {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/plain")],
            Vec::new(),
        );
    };
    let mut received = spans.lock().unwrap();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
            .map(|kv| text(kv.value.as_ref()))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                received.push(Received {
                    service: service.clone(),
                    name: span.name.clone(),
                    trace_id: span.trace_id.clone(),
                    span_id: span.span_id.clone(),
                    parent: span.parent_span_id.clone(),
                    attributes: span
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
                        .collect(),
                    start_ns: span.start_time_unix_nano,
                    end_ns: span.end_time_unix_nano,
                });
            }
        }
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

/// An OTLP/HTTP receiver on a free port: its endpoint and what it received.
async fn receiver() -> (String, Spans) {
    let spans: Spans = Arc::default();
    let app = Router::new()
        .route("/v1/traces", post(traces))
        .with_state(Arc::clone(&spans));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), spans)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_one_trace_across_every_process() {
    let (endpoint, spans) = receiver().await;
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap().to_owned();
    let env = |service: &'static str| {
        vec![
            ("PAGEFLEET_STORE", store.clone()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_owned()),
            ("OTEL_SERVICE_NAME", service.to_owned()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        ]
    };
    let spawn = |args: &[&str], service: &'static str| {
        let vars = env(service);
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        StageProcess::spawn_with(args, &nats.url, &[], &vars)
    };
    let port = free_tcp_port();
    let addr = format!("127.0.0.1:{port}");
    let _stages = [
        spawn(&["ingest", "--http-addr", &addr], "ingest"),
        spawn(&["rasterizer"], "rasterizer"),
        spawn(
            &["ocr-worker", "--slots", "1", "--classify-lines"],
            "ocr-worker",
        ),
        spawn(&["aggregator"], "aggregator"),
    ];
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let start = Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "ingest never came up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pdf = std::fs::read(root().join("examples/welcome.pdf")).unwrap();
    // Read from its pixels, so that every step of OCR is in the trace (the
    // quick-start PDF's own text would be taken after a check otherwise).
    let form = reqwest::multipart::Form::new()
        .text("text_layer", "ocr")
        .part(
            "file",
            reqwest::multipart::Part::bytes(pdf).file_name("welcome.pdf"),
        );
    let accepted: serde_json::Value = http
        .post(format!("{base}/v1/jobs"))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job_id = accepted["job_id"].as_str().unwrap().to_owned();

    // Every step of the job, once its spans have arrived.
    let wanted = [
        "submit",
        "source_upload",
        "rasterize",
        "render_page",
        "queue_wait",
        "ocr",
        "detect",
        "crop",
        "classify",
        "recognize",
        "result_publish",
        "aggregate",
        "result_write",
    ];
    let start = Instant::now();
    let trace = loop {
        let all = spans.lock().unwrap().clone();
        let root = all
            .iter()
            .find(|s| s.name == "submit" && s.attributes.get("job_id") == Some(&job_id));
        if let Some(root) = root {
            let trace: Vec<Received> = all
                .iter()
                .filter(|s| s.trace_id == root.trace_id)
                .cloned()
                .collect();
            let names: BTreeSet<&str> = trace.iter().map(|s| s.name.as_str()).collect();
            if wanted.iter().all(|w| names.contains(w)) {
                break trace;
            }
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "spans of job {job_id} missing; received: {:?}",
            all.iter()
                .map(|s| (&s.service, &s.name))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // One trace across the four processes.
    let services: BTreeSet<&str> = trace.iter().map(|s| s.service.as_str()).collect();
    for service in ["ingest", "rasterizer", "ocr-worker", "aggregator"] {
        assert!(
            services.contains(service),
            "{service} missing from {services:?}"
        );
    }
    let one = |name: &str| -> &Received {
        trace
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    // The parent links: submission, then rasterization, then each page.
    let submit = one("submit");
    assert!(submit.parent.is_empty(), "submit is the root");
    assert_eq!(submit.service, "ingest");
    assert_eq!(one("source_upload").parent, submit.span_id);
    let rasterize = one("rasterize");
    assert_eq!(rasterize.parent, submit.span_id);
    assert_eq!(rasterize.service, "rasterizer");
    let render = one("render_page");
    assert_eq!(render.parent, rasterize.span_id);
    assert_eq!(render.attributes["page"], "1");
    let ocr = one("ocr");
    assert_eq!(ocr.parent, rasterize.span_id);
    assert_eq!(ocr.service, "ocr-worker");
    assert_eq!(ocr.attributes["page"], "1");
    assert_eq!(ocr.attributes["profile"], "fast");
    assert!(ocr.attributes["worker"].starts_with("ocr-worker"));
    let wait = one("queue_wait");
    assert_eq!(wait.parent, rasterize.span_id);
    assert!(wait.end_ns >= wait.start_ns);
    for step in ["detect", "crop", "classify", "recognize", "result_publish"] {
        let s = one(step);
        assert_eq!(s.parent, ocr.span_id, "{step} is a child of ocr");
        assert!(
            s.start_ns >= ocr.start_ns && s.end_ns <= ocr.end_ns,
            "{step} within ocr"
        );
    }
    let publish = one("result_publish");
    let aggregates: Vec<&Received> = trace.iter().filter(|s| s.name == "aggregate").collect();
    assert!(
        aggregates.iter().any(|a| a.parent == publish.span_id),
        "the page result's aggregation follows its publication"
    );
    assert!(
        aggregates.iter().any(|a| a.parent == rasterize.span_id),
        "the manifest's aggregation follows the rasterization"
    );
    let write = one("result_write");
    assert!(aggregates.iter().any(|a| a.span_id == write.parent));
    for span in &trace {
        if [
            "submit",
            "rasterize",
            "ocr",
            "aggregate",
            "queue_wait",
            "render_page",
        ]
        .contains(&span.name.as_str())
        {
            assert_eq!(
                span.attributes.get("job_id"),
                Some(&job_id),
                "{}",
                span.name
            );
        }
        // Every parent is in the trace.
        assert!(
            span.parent.is_empty() || trace.iter().any(|p| p.span_id == span.parent),
            "{} has a parent outside the trace",
            span.name
        );
    }
}
