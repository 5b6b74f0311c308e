//! `pagefleet serve` as a process: started with its HTTP API on a port of
//! its choosing, read back from what it prints, stopped with SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::pipeline::http_get;
use super::{pagefleet_command, wait_until};

/// A running `pagefleet serve`, stopped with SIGTERM on drop (killed
/// outright it would leave its nats-server behind).
pub struct Serve {
    child: std::process::Child,
    /// The port of its HTTP API.
    pub http_port: u16,
    /// The NATS URL it printed.
    pub nats: String,
}

impl Serve {
    /// Starts serve with `args` (its HTTP API on a port of its choosing)
    /// and waits until it prints its addresses and the API answers.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    /// [`Serve::start`] with more environment variables (a store's).
    pub fn start_with_env(args: &[&str], env: &[(&str, String)]) -> Self {
        let mut child = pagefleet_command()
            .args(["serve", "--http-addr", "127.0.0.1:0", "--slots", "1"])
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut http_port, mut nats) = (None, None);
        while nats.is_none() {
            let line = lines.next().expect("serve exited before serving").unwrap();
            if let Some(rest) = line.trim().strip_prefix("HTTP API: http://127.0.0.1:") {
                http_port = rest.split_whitespace().next().and_then(|p| p.parse().ok());
            }
            if let Some(url) = line.trim().strip_prefix("NATS:") {
                nats = Some(url.trim().to_owned());
            }
        }
        std::thread::spawn(move || for _ in lines {});
        let serve = Self {
            child,
            http_port: http_port.expect("serve printed no HTTP address"),
            nats: nats.unwrap(),
        };
        wait_until(Duration::from_secs(60), "serve's /healthz", || {
            std::net::TcpStream::connect(("127.0.0.1", serve.http_port)).is_ok()
                && http_get(serve.http_port, "/healthz").0 == 200
        });
        serve
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// SIGTERM, then the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "serve did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Serve {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crash or the OOM killer would end it; waits for it.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Serve {
    /// SIGTERM however the test ends; killed after 20 s (a panic here
    /// would abort the test binary).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(20) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
