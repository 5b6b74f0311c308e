//! A private nats-server for single-machine mode: JetStream on, its store in a
//! data folder, a free port on the loopback interface, stopped with the process
//! however the process ends.
//!
//! Two guards keep a crash from leaving anything behind: the server is asked
//! for SIGTERM by the kernel when the thread that started it dies (Linux's
//! parent-death signal, so `kill -9` of serve ends it too), and it holds a
//! lock on its store folder (a file lock it inherits), so that a second
//! start on a folder a live server still uses stops with an error instead
//! of running two servers over one store.

use std::fs::File;
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
    /// The store folder's lock (the server holds it too).
    _lock: File,
}

impl NatsServer {
    /// Starts `binary` with JetStream storing under `store_dir` and waits until
    /// it accepts clients.
    // The one unsafe call: std's `pre_exec`, to set the parent-death signal,
    // which no safe interface offers.
    #[allow(unsafe_code)]
    pub async fn start(binary: &Path, store_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(store_dir)
            .with_context(|| format!("cannot create {}", store_dir.display()))?;
        let lock = lock_store(store_dir)?;
        let mut command = Command::new(binary);
        // SAFETY: between fork and exec the closure calls only
        // async-signal-safe functions (prctl, getppid) and allocates nothing.
        let parent = std::process::id() as libc::pid_t;
        unsafe {
            command.pre_exec(move || {
                // SIGTERM when the starting thread (and so this process) dies.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before the prctl took hold.
                if libc::getppid() != parent {
                    return Err(std::io::Error::other(
                        "pagefleet exited while starting nats-server",
                    ));
                }
                Ok(())
            });
        }
        let mut child = command
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
            // Its standard input is the store's lock, so that the lock is
            // held while the server lives, whatever becomes of this process.
            .stdin(Stdio::from(lock.try_clone()?))
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
        Ok(Self {
            child,
            url,
            _lock: lock,
        })
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

/// The lock file in a store folder: held by the nats-server that uses it.
const LOCK_FILE: &str = "pagefleet.lock";

/// Locks `store_dir` for one nats-server, or says which process holds it.
fn lock_store(store_dir: &Path) -> anyhow::Result<File> {
    let path = store_dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            bail!(
                "the NATS store {} is in use by another nats-server (started by pagefleet process {}); \
                 stop it, or give this one another --data folder",
                store_dir.display(),
                holder.trim()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    use std::io::{Seek, Write};
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    Ok(file)
}
