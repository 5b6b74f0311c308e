//! `compose.yaml`, the Dockerfile and the manifests under `deploy/` against
//! the code: every variable they set is one the command they run reads,
//! every port and probe path is one the stage serves, and the subjects,
//! streams and consumers they name are the ones `schemas` defines. A rename
//! in the code that the deployment files miss fails here.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns fail loudly by design

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::root;
use pagefleet_schemas::names;
use regex::Regex;
use serde_norway::Value;

/// The `PAGEFLEET_*` variables one command reads, from its `--help`.
fn env_of(command: &str) -> BTreeSet<String> {
    let args: Vec<&str> = command.split(' ').chain(["--help"]).collect();
    let output = common::pagefleet_command().args(&args).output().unwrap();
    assert!(output.status.success(), "pagefleet {command} --help failed");
    let help = String::from_utf8_lossy(&output.stdout);
    let env = Regex::new(r"\[env: ([A-Z0-9_]+)").unwrap();
    env.captures_iter(&help).map(|c| c[1].to_owned()).collect()
}

/// Flags one command takes, from its `--help`.
fn flags_of(command: &str) -> BTreeSet<String> {
    let args: Vec<&str> = command.split(' ').chain(["--help"]).collect();
    let output = common::pagefleet_command().args(&args).output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    let flag = Regex::new(r"(--[a-z0-9-]+)").unwrap();
    flag.captures_iter(&help).map(|c| c[1].to_owned()).collect()
}

const STAGES: [&str; 4] = ["ingest", "rasterizer", "ocr-worker", "aggregator"];

/// Every command and the variables it reads.
fn commands() -> BTreeMap<&'static str, BTreeSet<String>> {
    [
        "ingest",
        "rasterizer",
        "ocr-worker",
        "aggregator",
        "nats setup",
        "doctor",
        "serve",
        "run",
        "ocr",
        "submit",
        "status",
        "result",
        "watch",
    ]
    .into_iter()
    .map(|c| (c, env_of(c)))
    .collect()
}

/// The OpenTelemetry variables the telemetry module honours, as it names them.
fn otel_vars() -> BTreeSet<String> {
    let source = std::fs::read_to_string(root().join("src/telemetry.rs")).unwrap();
    let otel = Regex::new(r"OTEL_[A-Z_]*[A-Z]").unwrap();
    otel.find_iter(&source)
        .map(|m| m.as_str().to_owned())
        .collect()
}

/// Names in `schemas` that deployment files may spell.
fn stream_names() -> BTreeSet<String> {
    [
        names::DOCS_STREAM,
        names::PAGES_STREAM,
        names::RESULTS_STREAM,
        names::EVENTS_STREAM,
        names::ADVISORIES_STREAM,
        names::BUCKET_EVENTS_STREAM,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// Variables outside pagefleet's own that a stage reads.
fn foreign_ok(name: &str) -> bool {
    matches!(
        name,
        "RUST_LOG" | "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" | "AWS_REGION"
    )
}

fn deploy_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut files = vec![root().join("compose.yaml"), root().join("Dockerfile")];
    walk(&root().join("deploy"), &mut files);
    files.sort();
    files
}

/// Every YAML document of a file, merge keys applied.
fn yaml(path: &Path) -> Vec<Value> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| {
            let mut value = Value::deserialize(doc).unwrap();
            value.apply_merge().unwrap();
            value
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn every_variable_named_anywhere_is_read_by_the_code() {
    let commands = commands();
    let all: BTreeSet<String> = commands.values().flatten().cloned().collect();
    let streams = stream_names();
    let otel = otel_vars();
    assert!(otel.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{otel:?}");
    let pagefleet = Regex::new(r"PAGEFLEET_[A-Z0-9_]*[A-Z0-9]").unwrap();
    let otel_re = Regex::new(r"OTEL_[A-Z_]*[A-Z]").unwrap();
    let mut unknown = Vec::new();
    for file in deploy_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.strip_prefix(root()).unwrap().display().to_string();
        for m in pagefleet.find_iter(&text) {
            let var = m.as_str();
            if !all.contains(var) && !streams.contains(var) {
                unknown.push(format!("{name}: {var}"));
            }
        }
        for m in otel_re.find_iter(&text) {
            if !otel.contains(m.as_str()) {
                unknown.push(format!("{name}: {}", m.as_str()));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "names the code does not read: {unknown:#?}"
    );
}

#[test]
fn compose_matches_the_code() {
    let commands = commands();
    let doc = &yaml(&root().join("compose.yaml"))[0];
    let services = &doc["services"];
    let shared: BTreeSet<String> = doc["x-pagefleet-env"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(string)
        .collect();
    let stage_vars: BTreeSet<String> = STAGES
        .iter()
        .flat_map(|s| commands[s].iter().cloned())
        .collect();
    for var in shared.iter().filter(|v| v.starts_with("PAGEFLEET_")) {
        assert!(stage_vars.contains(var), "shared {var} is read by no stage");
    }
    for stage in STAGES {
        let service = &services[stage];
        assert!(service.is_mapping(), "service {stage} missing");
        let command: Vec<String> = service["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(string)
            .collect();
        assert_eq!(command[0], stage, "{stage} runs `pagefleet {stage}`");
        let flags = flags_of(stage);
        for flag in command.iter().filter(|a| a.starts_with("--")) {
            let flag = flag.split('=').next().unwrap();
            assert!(flags.contains(flag), "{stage}: {flag} is not a flag of it");
        }
        let env: BTreeMap<String, String> = service["environment"]
            .as_mapping()
            .unwrap()
            .iter()
            .map(|(k, v)| (string(k), string(v)))
            .collect();
        for var in env.keys() {
            let read = commands[stage].contains(var)
                || (shared.contains(var) && !var.starts_with("PAGEFLEET_"))
                || shared.contains(var) && stage_vars.contains(var)
                || var.starts_with("OTEL_")
                || foreign_ok(var);
            assert!(read, "{stage}: {var} is not read by `pagefleet {stage}`");
        }
        // The health check asks the port the stage serves its probes on.
        let check = service["healthcheck"]["test"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(string)
            .collect::<Vec<_>>()
            .join(" ");
        let port = if stage == "ingest" {
            port_of(&env["PAGEFLEET_HTTP_ADDR"])
        } else {
            port_of(&env["PAGEFLEET_HEALTH_ADDR"])
        };
        assert!(
            check.contains(&format!(":{port}/healthz")),
            "{stage}: health check {check} is not on port {port}"
        );
    }
    // `--scale ocr-worker=N` needs no fixed name and no host port.
    assert!(services["ocr-worker"]["container_name"].is_null());
    assert!(services["ocr-worker"]["ports"].is_null());
    // The ingest API is published on the port it listens on.
    let published = string(&services["ingest"]["ports"][0]);
    let ingest_port = port_of(&string(
        &services["ingest"]["environment"]["PAGEFLEET_HTTP_ADDR"],
    ));
    assert!(
        published.ends_with(&format!(":{ingest_port}")),
        "{published}"
    );
    // MinIO notifies on the subject ingest consumes, for objects under the
    // prefix ingest takes as input.
    let minio = &services["minio"]["environment"];
    assert_eq!(
        string(&minio["MINIO_NOTIFY_NATS_SUBJECT_PRIMARY"]),
        names::BUCKET_EVENTS_SUBJECT
    );
    assert_eq!(string(&minio["MINIO_NOTIFY_NATS_JETSTREAM_PRIMARY"]), "on");
    let setup = services["minio-setup"]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(string)
        .collect::<String>();
    let input = string(&services["ingest"]["environment"]["PAGEFLEET_INPUT_PREFIX"]);
    assert!(setup.contains(&format!("--prefix {input}")), "{setup}");
    let bucket = string(&doc["x-pagefleet-env"]["PAGEFLEET_STORE"]);
    let bucket = bucket.trim_start_matches("s3://");
    assert!(setup.contains(&format!("local/{bucket}")), "{setup}");
    // The NATS URL's port is the server's.
    let nats_url = string(&doc["x-pagefleet-env"]["PAGEFLEET_NATS_URL"]);
    let nats_ports = services["nats"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(string)
        .collect::<Vec<_>>();
    assert!(
        nats_ports
            .iter()
            .any(|p| p.ends_with(&format!(":{}", port_of(&nats_url)))),
        "{nats_ports:?}"
    );
    // `nats setup` is a command.
    let setup_command: Vec<String> = services["nats-setup"]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(string)
        .collect();
    assert_eq!(setup_command, ["nats", "setup"]);
}

/// The containers of every manifest under `deploy/`, with their file.
fn containers() -> Vec<(String, Value, Value)> {
    let mut found = Vec::new();
    for file in deploy_files() {
        if file.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        for doc in yaml(&file) {
            let Some(spec) = doc["spec"]["template"]["spec"].as_mapping() else {
                continue;
            };
            let name = file.strip_prefix(root()).unwrap().display().to_string();
            // Only pagefleet's own containers (not the NATS exporter's).
            for c in spec
                .get("containers")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
                .filter(|c| c["image"].is_null() || string(&c["image"]).starts_with("pagefleet:"))
            {
                found.push((name.clone(), doc.clone(), c.clone()));
            }
        }
    }
    found
}

#[test]
fn kubernetes_manifests_match_the_code() {
    let commands = commands();
    let config = yaml(&root().join("deploy/base/configmap.yaml"))[0]["data"].clone();
    let config: BTreeMap<String, String> = config
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (string(k), string(v)))
        .collect();
    let stage_vars: BTreeSet<String> = STAGES
        .iter()
        .flat_map(|s| commands[s].iter().cloned())
        .collect();
    for var in config.keys().filter(|v| v.starts_with("PAGEFLEET_")) {
        assert!(
            stage_vars.contains(var),
            "configmap {var} is read by no stage"
        );
    }
    let health_port = port_of(&config["PAGEFLEET_HEALTH_ADDR"]);
    let mut seen = BTreeSet::new();
    for (file, doc, container) in containers() {
        // An overlay's patch names its container and leaves the rest to the base.
        let patch = container["args"].is_null();
        let args: Vec<String> = match container["args"].as_sequence() {
            Some(args) => args.iter().map(string).collect(),
            None => vec![string(&container["name"])],
        };
        let command = args.join(" ");
        let command = commands
            .keys()
            .find(|c| command == **c || command.starts_with(&format!("{c} ")))
            .unwrap_or_else(|| panic!("{file}: `pagefleet {command}` is no command"));
        seen.insert(*command);
        let env: BTreeMap<String, String> = container["env"]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(|e| (string(&e["name"]), string(&e["value"])))
            .collect();
        for var in env.keys() {
            let read =
                commands[command].contains(var) || var.starts_with("OTEL_") || foreign_ok(var);
            assert!(read, "{file}: {var} is not read by `pagefleet {command}`");
        }
        if !STAGES.contains(command) || patch {
            continue;
        }
        // Probes: /healthz and /readyz on the port the stage serves them on.
        let ports: BTreeMap<String, u16> = container["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    string(&p["name"]),
                    p["containerPort"].as_u64().unwrap() as u16,
                )
            })
            .collect();
        let serves = if *command == "ingest" {
            port_of(
                env.get("PAGEFLEET_HTTP_ADDR")
                    .unwrap_or(&config["PAGEFLEET_HEALTH_ADDR"]),
            )
        } else {
            health_port
        };
        for (probe, path) in [
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
            ("startupProbe", "/healthz"),
        ] {
            let get = &container[probe]["httpGet"];
            assert_eq!(string(&get["path"]), path, "{file}: {probe}");
            let port = match &get["port"] {
                Value::Number(n) => n.as_u64().unwrap() as u16,
                named => ports[&string(named)],
            };
            assert_eq!(
                port, serves,
                "{file}: {probe} on port {port}, stage serves {serves}"
            );
        }
        if *command == "ocr-worker" {
            let grace = doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
                .as_u64()
                .unwrap();
            let deadline: f64 = env
                .get("PAGEFLEET_PAGE_DEADLINE")
                .map_or(120.0, |d| d.parse().unwrap());
            assert!(
                grace as f64 > deadline,
                "{file}: grace {grace} s <= page deadline"
            );
        }
    }
    for stage in STAGES.iter().chain(&["nats setup"]) {
        assert!(seen.contains(stage), "no manifest runs `pagefleet {stage}`");
    }

    // KEDA scales the worker Deployment on its consumers of the page stream,
    // one trigger per lane.
    let scaled = &yaml(&root().join("deploy/base/ocr-worker-scaledobject.yaml"))[0];
    assert_eq!(
        string(&scaled["spec"]["scaleTargetRef"]["name"]),
        "ocr-worker"
    );
    for (i, lane) in names::Lane::ALL.into_iter().enumerate() {
        let trigger = &scaled["spec"]["triggers"][i];
        assert_eq!(string(&trigger["type"]), "nats-jetstream");
        assert_eq!(string(&trigger["metadata"]["stream"]), names::PAGES_STREAM);
        assert_eq!(
            string(&trigger["metadata"]["consumer"]),
            names::worker_consumer(&config["PAGEFLEET_PROFILE"], lane)
        );
    }
    let meta = &scaled["spec"]["triggers"][0]["metadata"];
    let monitoring = port_of(&string(&meta["natsServerMonitoringEndpoint"]));
    let values = &yaml(&root().join("deploy/nats-values.yaml"))[0];
    assert_eq!(
        values["config"]["monitor"]["port"].as_u64(),
        Some(u64::from(monitoring)),
        "KEDA reads the monitoring port NATS serves"
    );
    assert_eq!(
        values["config"]["nats"]["port"].as_u64(),
        Some(u64::from(port_of(&config["PAGEFLEET_NATS_URL"])))
    );

    // The GPU overlay asks for a provider the worker knows.
    let gpu =
        std::fs::read_to_string(root().join("deploy/overlays/gpu/ocr-worker-gpu.yaml")).unwrap();
    let help = common::pagefleet_command()
        .args(["ocr-worker", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        gpu.contains("value: cuda") && help.contains("cuda"),
        "{gpu}"
    );
}

/// The series the NATS exporter (prometheus-nats-exporter with `-jsz=all`)
/// documents for JetStream consumers, as its `collector/jsz.go` names them,
/// and the labels they carry that the dashboard and the rules select on.
const NATS_EXPORTER_METRICS: [&str; 8] = [
    "jetstream_consumer_delivered_consumer_seq",
    "jetstream_consumer_delivered_stream_seq",
    "jetstream_consumer_num_ack_pending",
    "jetstream_consumer_num_redelivered",
    "jetstream_consumer_num_waiting",
    "jetstream_consumer_num_pending",
    "jetstream_consumer_ack_floor_stream_seq",
    "jetstream_consumer_ack_floor_consumer_seq",
];
const NATS_EXPORTER_LABELS: [&str; 3] = ["stream_name", "consumer_name", "server_name"];

/// Every PromQL expression of the dashboard and of both rule files.
fn monitoring_exprs() -> Vec<(String, String)> {
    let dir = root().join("deploy/monitoring");
    let mut exprs = Vec::new();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("grafana/pagefleet-dashboard.json")).unwrap(),
    )
    .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            exprs.push((
                format!("dashboard: {}", panel["title"]),
                target["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }
    let plain = &yaml(&dir.join("prometheus-rules.yaml"))[0]["groups"];
    let operator = &yaml(&dir.join("prometheusrule.yaml"))[0]["spec"]["groups"];
    assert_eq!(plain, operator, "the two rule files say different things");
    for group in plain.as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            exprs.push((
                format!("rule {}", string(&rule["alert"])),
                string(&rule["expr"]),
            ));
        }
    }
    exprs
}

/// A metric an expression selects, with its matchers: each label, and the
/// value of an `=` matcher.
type Selector = (String, Vec<(String, Option<String>)>);

/// The selectors of an expression, and the labels it groups by.
fn selectors(expr: &str) -> (Vec<Selector>, Vec<String>) {
    const KEYWORDS: [&str; 11] = [
        "by",
        "without",
        "and",
        "or",
        "unless",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
    ];
    let grouping = Regex::new(r"\b(?:by|without)\s*\(([^)]*)\)").unwrap();
    let groups: Vec<String> = grouping
        .captures_iter(expr)
        .flat_map(|c| {
            c[1].split(',')
                .map(|l| l.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    let bare = grouping.replace_all(expr, " ");
    let bare = Regex::new(r"\[[^\]]*\]").unwrap().replace_all(&bare, " ");
    let selector = Regex::new(r"\b([A-Za-z_][A-Za-z0-9_:]*)\s*(\{[^}]*\})?\s*(\()?").unwrap();
    let matcher = Regex::new(r#"([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!=|!~|=)\s*"([^"]*)""#).unwrap();
    let mut found = Vec::new();
    for c in selector.captures_iter(&bare) {
        let name = &c[1];
        if c.get(3).is_some() || KEYWORDS.contains(&name) {
            continue; // a function, or an operator
        }
        let matchers = c.get(2).map_or(Vec::new(), |m| {
            matcher
                .captures_iter(m.as_str())
                .map(|m| {
                    let value = (&m[2] == "=").then(|| m[3].to_owned());
                    (m[1].to_owned(), value)
                })
                .collect()
        });
        found.push((name.to_owned(), matchers));
    }
    (found, groups)
}

/// Every series of a `/metrics` text: name and labels.
fn series(text: &str) -> Vec<(String, BTreeMap<String, String>)> {
    let label = Regex::new(r#"([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)""#).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            let labels = match (line.find('{'), line.rfind('}')) {
                (Some(a), Some(b)) if a < b => label
                    .captures_iter(&line[a..b])
                    .map(|c| (c[1].to_owned(), c[2].to_owned()))
                    .collect(),
                _ => BTreeMap::new(),
            };
            (line[..end].to_owned(), labels)
        })
        .collect()
}

/// The dashboard and the alert rules under `deploy/monitoring` use metrics
/// that real stages serve: every stage runs as a process with its probe
/// port, a PDF goes through, and every `pagefleet_*` name, label and label
/// value the expressions select on must be in what the four `/metrics`
/// answer; `jetstream_*` names are the NATS exporter's documented ones, and
/// `up` is Prometheus's own.
#[test]
fn the_dashboard_and_the_alerts_use_metrics_the_stages_serve() {
    use common::pipeline::{NatsServer, StageProcess, free_tcp_port, http_get};
    let nats = NatsServer::start();
    let store = tempfile::tempdir().unwrap();
    let env = [("PAGEFLEET_STORE", store.path().to_str().unwrap())];
    let http = free_tcp_port();
    let http_addr = format!("127.0.0.1:{http}");
    let mut probes = BTreeMap::new();
    let mut stages = Vec::new();
    for (stage, extra) in [
        (
            "ingest",
            vec!["--http-addr", http_addr.as_str(), "--no-bucket-events"],
        ),
        ("rasterizer", vec![]),
        ("ocr-worker", vec!["--slots", "1"]),
        ("aggregator", vec![]),
    ] {
        let port = free_tcp_port();
        let addr = format!("127.0.0.1:{port}");
        let mut args = vec![stage, "--health-addr", addr.as_str()];
        args.extend(extra);
        stages.push(StageProcess::spawn_with(&args, &nats.url, &[], &env));
        probes.insert(stage, port);
    }
    let start = std::time::Instant::now();
    for (stage, port) in &probes {
        while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err()
            || http_get(*port, "/readyz").0 != 200
        {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(120),
                "{stage} never became ready"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
    let api = format!("http://{http_addr}");
    let welcome = root().join("examples/welcome.pdf");
    let submitted = common::pagefleet(&[
        "submit".as_ref(),
        "--wait".as_ref(),
        "--api".as_ref(),
        api.as_ref(),
        welcome.as_os_str(),
    ]);
    assert!(submitted.status.success(), "{}", submitted.stderr);
    let mut served: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    for (stage, port) in &probes {
        let (code, text) = http_get(*port, "/metrics");
        assert_eq!(code, 200, "{stage}");
        for (name, labels) in series(&text) {
            served.entry(name).or_default().push(labels);
        }
    }
    let exprs = monitoring_exprs();
    assert!(exprs.len() >= 20, "{} expressions", exprs.len());
    let mut used = BTreeSet::new();
    let mut wrong = Vec::new();
    for (place, expr) in &exprs {
        let (found, groups) = selectors(expr);
        assert!(!found.is_empty(), "{place}: no metric in {expr}");
        for (name, matchers) in found {
            used.insert(name.clone());
            let mut labels: Vec<String> = matchers.iter().map(|(l, _)| l.clone()).collect();
            labels.extend(groups.iter().cloned());
            if name.starts_with("jetstream_") {
                if !NATS_EXPORTER_METRICS.contains(&name.as_str()) {
                    wrong.push(format!("{place}: {name} is not a NATS exporter metric"));
                }
                for (label, value) in &matchers {
                    if !NATS_EXPORTER_LABELS.contains(&label.as_str()) {
                        wrong.push(format!("{place}: {name} has no label {label}"));
                    }
                    if label == "stream_name"
                        && value.as_ref().is_some_and(|v| !stream_names().contains(v))
                    {
                        wrong.push(format!("{place}: no stream {value:?}"));
                    }
                }
                continue;
            }
            if name == "up" {
                continue;
            }
            let Some(series) = served.get(&name) else {
                wrong.push(format!("{place}: no stage serves {name}"));
                continue;
            };
            for label in labels
                .iter()
                .filter(|l| *l != "le" && *l != "instance" && *l != "job")
            {
                if !series.iter().any(|s| s.contains_key(label)) {
                    wrong.push(format!("{place}: {name} has no label {label}"));
                }
            }
            for (label, value) in &matchers {
                if let Some(value) = value
                    && !series.iter().any(|s| s.get(label) == Some(value))
                {
                    wrong.push(format!(
                        "{place}: no {name}{{{label}=\"{value}\"}} is served"
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // What the issue asks the dashboard and the alerts to show is there.
    for name in [
        "pagefleet_pages_processed_total",
        "pagefleet_step_seconds_bucket",
        "pagefleet_pages_in_flight",
        "pagefleet_pages_failed_total",
        "pagefleet_page_redeliveries_total",
        "pagefleet_job_duration_seconds_bucket",
        "pagefleet_ready",
        "jetstream_consumer_num_pending",
    ] {
        assert!(used.contains(name), "{name} is not used: {used:?}");
    }
    drop(stages);
}
