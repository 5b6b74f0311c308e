//! A private nats-server for single-machine mode: JetStream on, its store in a
//! data folder, a free port on the loopback interface, stopped with the process.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A running nats-server, killed on drop.
pub struct NatsServer {
    child: Child,
    url: String,
}

impl NatsServer {
    /// Starts `binary` with JetStream storing under `store_dir` and waits until
    /// it accepts clients.
    pub async fn start(binary: &Path, store_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(store_dir)
            .with_context(|| format!("cannot create {}", store_dir.display()))?;
        let mut child = Command::new(binary)
            .args([
                "--jetstream",
                "--addr",
                "127.0.0.1",
                "--port",
                "-1",
                "--http_port",
                "-1",
            ])
            .arg("--store_dir")
            .arg(store_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stderr = child.stderr.take().context("nats-server has no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let url = tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(line) = lines.next_line().await? {
                // "Listening for client connections on 127.0.0.1:40123"
                if let Some(addr) = line.split("Listening for client connections on ").nth(1) {
                    return Ok(format!("nats://{}", addr.trim()));
                }
                if line.contains("[FTL]") || line.contains("[ERR]") {
                    bail!("nats-server failed: {line}");
                }
            }
            bail!("nats-server exited before accepting clients")
        })
        .await
        .context("nats-server did not start within 15 s")??;
        // Keep draining its log so it never blocks on a full pipe.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(target: "nats_server", "{line}");
            }
        });
        Ok(Self { child, url })
    }

    /// The client URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
