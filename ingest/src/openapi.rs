//! The OpenAPI 3.1 document of the HTTP API, served at `/openapi.json`.
//! Written out by hand: the API is small, and a test checks that every route
//! the router serves is described here.

use pagefleet_schemas::Format;
use serde_json::{Value, json};

/// Every path and method the API serves, as the router declares them.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/options"),
    ("post", "/v1/jobs"),
    ("get", "/v1/jobs"),
    ("get", "/v1/jobs/{id}"),
    ("delete", "/v1/jobs/{id}"),
    ("get", "/v1/jobs/{id}/result"),
    ("get", "/v1/jobs/{id}/events"),
    ("get", "/v1/jobs/{id}/pages/{page}/image"),
    ("post", "/v1/bucket-events"),
    ("post", "/ocr/pdf"),
    ("post", "/ocr/image"),
    ("get", "/workers/status"),
    ("get", "/health"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/openapi.json"),
    ("get", "/"),
    ("get", "/ui/app.js"),
    ("get", "/ui/style.css"),
];

fn error_responses(codes: &[&str]) -> Value {
    let mut map = serde_json::Map::new();
    for code in codes {
        let description = match *code {
            "400" => "malformed request or option out of range",
            "401" => "missing bearer token",
            "403" => "wrong bearer token",
            "404" => "no such job or object",
            "409" => "the job is not in a state that allows this",
            "410" => "the job was removed (deleted, or expired); the message says when",
            "413" => "over the upload size limit (the message names it)",
            "415" => "not an accepted document type (decided by content)",
            "422" => "the document could not be read",
            "503" => "NATS or the store is unavailable",
            "504" => "the job did not finish within the synchronous timeout",
            _ => "error",
        };
        map.insert(
            (*code).to_owned(),
            json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
    }
    Value::Object(map)
}

fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

fn job_id_param() -> Value {
    json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}})
}

fn upload_form() -> Value {
    json!({"required": true, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary"},
        "language": {"type": "string", "description": "auto (default: each page decides), or ISO 639-1/639-3 codes such as en or en,de; the languages read are in GET /v1/options; others are refused with 400"},
        "dpi": {"type": "number", "minimum": 36, "maximum": 1200}
    }}}}})
}

fn sync_answer() -> Value {
    with(
        json!({"200": {"description": "the finished job", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SyncResult"}}}}}),
        error_responses(&["400", "401", "403", "413", "415", "422", "503", "504"]),
    )
}

/// The document.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "pagefleet",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Distributed document OCR: submit PDFs and images, follow their jobs, fetch text, markdown and JSON."
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
                "JobRequest": {"type": "object", "properties": {
                    "source": {"type": "string", "description": "s3://bucket/key of an object in this deployment's store"},
                    "key": {"type": "string", "description": "an object key in the store"},
                    "dpi": {"type": "number", "minimum": 36, "maximum": 1200},
                    "profile": {"type": "string", "description": "model profile, e.g. fast or accurate"},
                    "formats": {"type": "array", "items": {"enum": Format::ALL}},
                    "text_layer": {"enum": ["auto", "ocr", "skip", "use"], "description": "PDF pages that already carry text: taken from their text layer when a sample of its lines read from the pixels agrees with it, else read (auto, the default), read from their pixels (ocr), left out (skip), or taken as they are, unchecked (use)"},
                    "language": {"type": "string", "description": "auto (each page decides from a sample of its lines), or ISO 639-1/639-3 codes such as en or en,de: Latin-script languages are read with the recognizer cut to Latin script, Chinese and Japanese with its whole output; GET /v1/options lists them, others are refused with 400"},
                    "idempotency_key": {"type": "string", "description": "same key, same job: repeats run nothing"}
                }},
                "Accepted": {"type": "object", "properties": {
                    "job_id": {"type": "string"}, "created": {"type": "boolean"},
                    "status": {"enum": ["queued", "existing"]},
                    "links": {"type": "object", "additionalProperties": {"type": "string"}}
                }},
                "Job": {"type": "object", "properties": {
                    "job_id": {"type": "string"},
                    "status": {"enum": ["queued", "running", "waiting", "success", "partial_success", "failed", "cancelled"]},
                    "waiting": {"type": "string", "description": "while status is waiting: why no page is being read, e.g. no worker serves profile accurate"},
                    "filename": {"type": "string"}, "source": {"type": "string"}, "profile": {"type": "string"}, "language": {"type": "string"},
                    "formats": {"type": "array", "items": {"type": "string"}, "description": "the outputs the job writes"},
                    "progress": {"type": "object", "properties": {
                        "pages_done": {"type": "integer"}, "pages_failed": {"type": "integer"},
                        "total_pages": {"type": ["integer", "null"]}}},
                    "submitted_at_ms": {"type": "integer"}, "finished_at_ms": {"type": ["integer", "null"]},
                    "error": {"type": ["string", "null"]},
                    "metrics": {"type": ["object", "null"], "description": "the job's metrics once finished"},
                    "failed_pages": {"type": "array", "description": "in a single job's view: the first 20 pages that failed, with why (every page is in result.json)", "items": {"type": "object", "properties": {
                        "page": {"type": "integer"}, "error": {"type": "string"}}}},
                    "links": {"type": "object"}
                }},
                "Event": {"type": "object", "properties": {
                    "job_id": {"type": "string"}, "kind": {"enum": ["submitted", "rasterized", "progress", "waiting", "completed"]}, "waiting": {"type": "string", "description": "on a waiting event: why no page is being read"},
                    "pages_done": {"type": "integer"}, "pages_failed": {"type": "integer"},
                    "total_pages": {"type": ["integer", "null"]}, "status": {"type": "string"}, "at_ms": {"type": "integer"},
                    "page": {"type": "integer", "description": "on a progress event about one page's result: the page"},
                    "page_status": {"enum": ["ok", "failed"], "description": "with page: how it went"}
                }},
                "SyncResult": {"type": "object", "required": ["metrics", "results", "combined_text", "combined_markdown"], "properties": {
                    "job_id": {"type": "string"}, "status": {"type": "string"}, "language": {"type": "string"},
                    "metrics": {"type": "object", "description": "job_id, filename, total_pages, pages_processed, pages_failed, total_words, total_chars, total_lines, avg_confidence, start_time, end_time, total_duration_ms, avg_page_time_ms, file_size_bytes, file_size_mb, ocr_rounds_per_worker (worker name: pages), worker_metrics (list of {worker, pages, time_ms, errors}), redeliveries, status, errors"},
                    "results": {"type": "array", "items": {"type": "object", "description": "one page: page, status, worker, text, lines with confidence and polygon"}},
                    "combined_text": {"type": "string"}, "combined_markdown": {"type": "string"}
                }},
                "WorkersStatus": {"type": "object", "properties": {
                    "total_workers": {"type": "integer"}, "healthy_workers": {"type": "integer"},
                    "workers": {"type": "array", "items": {"type": "object", "properties": {
                        "name": {"type": "string"}, "status": {"type": "string"},
                        "health": {"type": "object", "properties": {
                            "cpu_percent": {"type": "number"}, "memory_percent": {"type": "number"},
                            "memory_mb": {"type": "number"}, "uptime_seconds": {"type": "integer"},
                            "total_requests": {"type": "integer"}}}}}}
                }}
            }
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/options": {"get": {"summary": "What a submission may ask for here: profiles (and those a live worker serves), the languages the models read and the default one, dpi range and default, output formats and defaults, upload and page limits, accepted types",
                "responses": with(json!({"200": {"description": "the options", "content": {"application/json": {"schema": {"type": "object"}}}}}), error_responses(&["401", "403"]))}},
            "/v1/jobs": {"get": {
                "summary": "The most recently changed jobs, newest submission first (without their per-page list)",
                "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}}],
                "responses": with(json!({"200": {"description": "jobs", "content": {"application/json": {"schema": {"type": "object", "properties": {
                    "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}}}}}}}}), error_responses(&["400", "401", "403", "503"]))
            }, "post": {
                "summary": "Submit a document: a multipart upload (field file, plus dpi, profile, language, formats, text_layer, idempotency_key) or JSON naming an object",
                "parameters": [{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {
                    "multipart/form-data": {"schema": {"type": "object", "properties": {
                        "file": {"type": "string", "format": "binary"}, "dpi": {"type": "number"},
                        "profile": {"type": "string"}, "formats": {"type": "string"},
                        "text_layer": {"enum": ["auto", "ocr", "skip", "use"]}, "language": {"type": "string"},
                        "idempotency_key": {"type": "string"}}}},
                    "application/json": {"schema": {"$ref": "#/components/schemas/JobRequest"}}}},
                "responses": with(json!({
                    "202": {"description": "job created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}},
                    "200": {"description": "the idempotency key named an existing job", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}}
                }), error_responses(&["400", "401", "403", "404", "413", "415", "503"]))
            }},
            "/v1/jobs/{id}": {
                "get": {"summary": "A job's status, progress and (once finished) metrics", "parameters": [job_id_param()],
                    "responses": with(json!({"200": {"description": "the job", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}}}), error_responses(&["401", "403", "404", "410", "503"]))},
                "delete": {"summary": "Remove an ended job (its state, objects and events); cancel a running one (its waiting pages are dropped, not read), and remove it too with purge=true", "parameters": [job_id_param(),
                        {"name": "purge", "in": "query", "schema": {"type": "boolean", "default": false}, "description": "a running job: cancel it and remove it"}],
                    "responses": with(json!({"200": {"description": "deleted ({\"job_id\",\"status\":\"deleted\",\"deleted_at_ms\"}), or cancelled (the job's view)", "content": {"application/json": {"schema": {"oneOf": [{"$ref": "#/components/schemas/Job"}, {"type": "object", "required": ["job_id", "status"], "properties": {"job_id": {"type": "string"}, "status": {"const": "deleted"}, "deleted_at_ms": {"type": "integer"}}}]}}}}}), error_responses(&["401", "403", "404", "409", "410", "503"]))}
            },
            "/v1/jobs/{id}/result": {"get": {
                "summary": "A finished job's output in one format (text, markdown, JSON, searchable PDF, hOCR, ALTO)",
                "parameters": [job_id_param(), {"name": "format", "in": "query", "schema": {"enum": Format::ALL, "default": Format::Txt}},
                    {"name": "redirect", "in": "query", "schema": {"type": "boolean", "default": false}, "description": "on an S3 store, answer 307 to a presigned URL of the output, valid for the deployment's --presign-ttl, instead of its bytes; on a folder store the bytes as without it"}],
                "responses": with(json!({"200": {"description": "the output", "content": {
                    "text/plain": {"schema": {"type": "string"}}, "text/markdown": {"schema": {"type": "string"}},
                    "application/json": {"schema": {"type": "object"}}, "application/pdf": {"schema": {"type": "string", "format": "binary"}},
                    "text/html": {"schema": {"type": "string"}}, "application/xml": {"schema": {"type": "string"}}}},
                    "307": {"description": "redirect=true on an S3 store: Location is a presigned URL of the output", "headers": {"Location": {"schema": {"type": "string", "format": "uri"}}}}}), error_responses(&["400", "401", "403", "404", "410", "409", "503"]))
            }},
            "/v1/jobs/{id}/events": {"get": {
                "summary": "Server-sent events of a job: submitted, rasterized, progress (and waiting while no worker serves its profile), then completed (the stream ends)",
                "parameters": [job_id_param()],
                "responses": with(json!({"200": {"description": "event stream; each data line is an Event", "content": {"text/event-stream": {"schema": {"$ref": "#/components/schemas/Event"}}}}}), error_responses(&["401", "403", "404", "410", "503"]))
            }},
            "/v1/jobs/{id}/pages/{page}/image": {"get": {
                "summary": "A page as it was rendered for reading (PNG): the image its result's polygons refer to",
                "parameters": [job_id_param(), {"name": "page", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1}}],
                "responses": with(json!({"200": {"description": "the page image", "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}}), error_responses(&["401", "403", "404", "410", "503"]))
            }},
            "/v1/bucket-events": {"post": {
                "summary": "Webhook for S3 event notifications in MinIO's format: each new object under the input prefix becomes one job",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "properties": {
                    "EventName": {"type": "string"}, "Key": {"type": "string"}, "Records": {"type": "array", "items": {"type": "object"}}}}}}},
                "responses": with(json!({"200": {"description": "the jobs of the event's objects", "content": {"application/json": {"schema": {"type": "object"}}}}}), error_responses(&["400", "401", "403", "404", "413", "415", "503"]))
            }},
            "/ocr/pdf": {"post": {"summary": "OCR a PDF and wait for it (compatible with the replaced cluster)", "requestBody": upload_form(), "responses": sync_answer()}},
            "/ocr/image": {"post": {"summary": "OCR an image and wait for it (compatible with the replaced cluster)", "requestBody": upload_form(), "responses": sync_answer()}},
            "/workers/status": {"get": {"summary": "The OCR workers, from their heartbeats",
                "responses": with(json!({"200": {"description": "workers", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/WorkersStatus"}}}}}), error_responses(&["401", "403", "503"]))}},
            "/health": {"get": {"summary": "Health in the replaced cluster's shape", "security": [],
                "responses": {"200": {"description": "healthy"}, "503": {"description": "NATS or the store is unreachable"}}}},
            "/healthz": {"get": {"summary": "Liveness", "security": [], "responses": {"200": {"description": "alive"}}}},
            "/readyz": {"get": {"summary": "Readiness: NATS connected and the store reachable", "security": [],
                "responses": {"200": {"description": "ready"}, "503": {"description": "not ready, with the failing checks"}}}},
            "/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/": {"get": {"summary": "The web page: upload documents, follow their jobs, read and download results (it asks for the token)", "security": [], "responses": {"200": {"description": "HTML"}}}},
            "/ui/app.js": {"get": {"summary": "The web page's script", "security": [], "responses": {"200": {"description": "JavaScript"}}}},
            "/ui/style.css": {"get": {"summary": "The web page's style sheet", "security": [], "responses": {"200": {"description": "CSS"}}}}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described() {
        let doc = document();
        for (method, path) in ROUTES {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} missing from the OpenAPI document"
            );
        }
        let described: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum();
        assert_eq!(
            described,
            ROUTES.len(),
            "the document describes a route the router lacks"
        );
    }
}
