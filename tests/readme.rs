//! README's examples, run the way a reader runs them: in a fresh clone (the
//! checkout's `examples/` and the bootstrapped runtime, nothing else), with
//! this build's `pagefleet` on the PATH, one command after another in one
//! shell session.
//!
//! Two kinds of shell block:
//! - ```` ```console ```` is a transcript and runs: every `$ ` line is a
//!   command (run by `bash` in the clone; it must exit 0), the lines under it
//!   what it prints on standard output. `pagefleet serve` runs in the
//!   background until the next `pagefleet serve` or the end (`serve` takes
//!   `PAGEFLEET_HTTP_ADDR=127.0.0.1:0`, so it answers on a free port and
//!   prints it, as a reader's would print 8000). A command whose comment
//!   says `later` is run again until it prints what the README shows, for
//!   up to two minutes.
//! - ```` ```sh ```` shows commands for other machines (a cluster, a
//!   Kubernetes pod, a NATS client that bootstrap does not install): not
//!   run here, but every `pagefleet` command in one must parse (its flags
//!   exist and their values are valid).
//!
//! What a transcript shows is matched this way: `...` stands for any text
//! (lines too), a number for any number, whitespace for any whitespace, and
//! a line break followed by an indent for nothing at all (the README wraps
//! long JSON). A job id, or a `127.0.0.1:PORT` address, stands for the one
//! printed in its place; once printed, later commands use the real one
//! where the README has its stand-in, and a command that names one that no
//! earlier command printed fails.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use regex::Regex;

use common::{pagefleet, root};

/// How long one command may run.
const COMMAND_LIMIT: Duration = Duration::from_secs(180);

/// How long a `later` command is tried again, and a background command
/// waited on for what it prints.
const LATER_LIMIT: Duration = Duration::from_secs(120);

/// A fenced block of README.
struct Block {
    /// Its first line's number in README (from 1).
    line: usize,
    /// What follows the opening fence: `console`, `sh`, ...
    info: String,
    /// Its lines, the fence's indent taken off.
    lines: Vec<String>,
}

/// The fenced blocks of a markdown text.
fn blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, Block)> = None;
    for (number, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match open.take() {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    let block = Block {
                        line: number + 1,
                        info: info.trim().to_owned(),
                        lines: Vec::new(),
                    };
                    open = Some((indent, block));
                }
            }
            Some((fence_indent, mut block)) => {
                if trimmed == "```" {
                    blocks.push(block);
                } else {
                    let cut = indent.min(fence_indent);
                    block.lines.push(line[cut..].to_owned());
                    open = Some((fence_indent, block));
                }
            }
        }
    }
    assert!(open.is_none(), "README ends inside a fenced block");
    blocks
}

/// One command of a transcript and what README shows it printing.
struct Step {
    line: usize,
    command: String,
    expected: String,
}

/// The commands of a `console` block.
fn steps(block: &Block) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for (i, line) in block.lines.iter().enumerate() {
        if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step {
                line: block.line + 1 + i,
                command: command.to_owned(),
                expected: String::new(),
            });
        } else {
            let step = steps.last_mut().unwrap_or_else(|| {
                panic!(
                    "README line {}: output before any `$ ` command",
                    block.line + 1 + i
                )
            });
            step.expected.push_str(line);
            step.expected.push('\n');
        }
    }
    steps
}

/// The stand-ins README prints that a run prints otherwise: job ids and
/// local addresses.
fn stand_ins() -> Regex {
    Regex::new(r"\b[0-9a-f]{32}\b|127\.0\.0\.1:\d+").unwrap()
}

/// What a step's output must match, and the stand-ins it binds, in the
/// order of the pattern's groups.
fn pattern(expected: &str) -> (Regex, Vec<String>) {
    let pieces = Regex::new(
        r"(?P<dots>\.\.\.)|(?P<id>\b[0-9a-f]{32}\b)|(?P<addr>127\.0\.0\.1:\d+)|(?P<num>\d+(?:\.\d+)?)|(?P<ws>\s+)",
    )
    .unwrap();
    let mut out = String::from("^");
    let mut bound = Vec::new();
    let mut at = 0;
    for piece in pieces.captures_iter(expected) {
        let whole = piece.get(0).unwrap();
        out.push_str(&regex::escape(&expected[at..whole.start()]));
        at = whole.end();
        if piece.name("dots").is_some() {
            out.push_str("(?s:.*?)");
        } else if piece.name("id").is_some() {
            out.push_str("([0-9a-f]{32})");
            bound.push(whole.as_str().to_owned());
        } else if piece.name("addr").is_some() {
            out.push_str(r"(127\.0\.0\.1:\d+)");
            bound.push(whole.as_str().to_owned());
        } else if piece.name("num").is_some() {
            out.push_str(r"\d+(?:\.\d+)?");
        } else if whole.as_str().contains('\n') && whole.as_str().ends_with(' ') {
            out.push_str(r"\s*");
        } else if whole.as_str().contains('\n') {
            out.push_str(r"\s*\n\s*");
        } else {
            out.push_str(r"\s+");
        }
    }
    out.push_str(&regex::escape(&expected[at..]));
    out.push('$');
    let regex = regex::RegexBuilder::new(&out)
        .size_limit(1 << 26)
        .build()
        .unwrap();
    (regex, bound)
}

/// How far the output agrees with what README shows: the first line of
/// README's that it no longer matches.
fn agreeing(expected: &str, output: &str) -> String {
    let lines: Vec<&str> = expected.trim().lines().collect();
    let agree = (0..=lines.len())
        .rev()
        .find(|&n| {
            let (regex, _) = pattern(&format!("{}...", lines[..n].join("\n")));
            regex.is_match(output.trim())
        })
        .unwrap_or(0);
    match lines.get(agree) {
        Some(line) => format!("(the first line of README's it does not match: `{line}`)"),
        None => String::new(),
    }
}

/// A command left running, its standard error in a file.
struct Background {
    child: Child,
    stderr: PathBuf,
}

impl Background {
    /// SIGTERM, then its exit status: a serve that cannot stop fails the
    /// example that stops it.
    fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                panic!("a background command did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// One reader's shell session in a fresh clone.
struct Session {
    clone: tempfile::TempDir,
    logs: tempfile::TempDir,
    /// README's stand-ins and what they stand for in this run.
    bound: HashMap<String, String>,
    background: Option<Background>,
}

impl Session {
    /// A clone: `examples/` and a runtime home holding what bootstrap
    /// installed (no data).
    fn new() -> Self {
        let clone = tempfile::tempdir().unwrap();
        let examples = clone.path().join("examples");
        std::fs::create_dir(&examples).unwrap();
        for entry in std::fs::read_dir(root().join("examples")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), examples.join(entry.file_name())).unwrap();
        }
        let home = clone.path().join(".pagefleet");
        std::fs::create_dir(&home).unwrap();
        for entry in std::fs::read_dir(common::pipeline::home()).unwrap() {
            let entry = entry.unwrap();
            if !matches!(entry.file_name().to_str(), Some("data" | "cache")) {
                std::os::unix::fs::symlink(entry.path(), home.join(entry.file_name())).unwrap();
            }
        }
        Self {
            clone,
            logs: tempfile::tempdir().unwrap(),
            bound: HashMap::new(),
            background: None,
        }
    }

    /// `bash -c command` in the clone, as a reader's shell would run it.
    fn shell(&self, command: &str) -> Command {
        let bin = Path::new(env!("CARGO_BIN_EXE_pagefleet")).parent().unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        let mut shell = Command::new("bash");
        shell
            .args(["-c", command])
            .current_dir(self.clone.path())
            .env("PATH", path)
            .env("PAGEFLEET_HTTP_ADDR", "127.0.0.1:0");
        for var in [
            "PAGEFLEET_HOME",
            "PAGEFLEET_DATA",
            "PAGEFLEET_API_URL",
            "PAGEFLEET_API_TOKEN",
            "PAGEFLEET_NATS_URL",
            "RUST_LOG",
        ] {
            shell.env_remove(var);
        }
        shell
    }

    /// The step's command with README's stand-ins replaced by what they
    /// stand for.
    fn command(&self, step: &Step) -> String {
        let mut command = step.command.clone();
        for stand_in in stand_ins().find_iter(&step.command) {
            let real = self.bound.get(stand_in.as_str()).unwrap_or_else(|| {
                panic!(
                    "README line {}: `{}` uses {}, which no earlier example printed",
                    step.line,
                    step.command,
                    stand_in.as_str()
                )
            });
            command = command.replace(stand_in.as_str(), real);
        }
        command
    }

    /// Whether `output` is what the step shows; binds its stand-ins when
    /// it is (`rebind`: a new serve's addresses replace the old ones).
    fn matches(&mut self, step: &Step, output: &str, rebind: bool) -> Result<(), String> {
        let (regex, stand_ins) = pattern(step.expected.trim());
        let Some(found) = regex.captures(output.trim()) else {
            return Err(format!(
                "README line {}: `{}` printed\n{output}\nwhere README shows\n{}\n{}",
                step.line,
                step.command,
                step.expected,
                agreeing(&step.expected, output)
            ));
        };
        for (i, stand_in) in stand_ins.iter().enumerate() {
            let real = &found[i + 1];
            match self.bound.get(stand_in) {
                Some(earlier) if earlier != real && !rebind => {
                    return Err(format!(
                        "README line {}: {stand_in} stands for {earlier} here, but `{}` printed {real} in its place",
                        step.line, step.command
                    ));
                }
                _ => {
                    self.bound.insert(stand_in.clone(), real.to_owned());
                }
            }
        }
        Ok(())
    }

    /// Runs one step: in the background (`pagefleet serve`) or to its end.
    fn run(&mut self, step: &Step) {
        if step.command.starts_with("pagefleet serve") {
            self.start(step);
            return;
        }
        let command = self.command(step);
        let later = step
            .command
            .split_once('#')
            .is_some_and(|(_, comment)| comment.contains("later"));
        let start = Instant::now();
        loop {
            let ran = self
                .to_end(&command, step)
                .and_then(|output| self.matches(step, &output, false));
            match ran {
                Ok(()) => return,
                Err(_) if later && start.elapsed() < LATER_LIMIT => {
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(why) => panic!("{why}{}", self.serve_log()),
            }
        }
    }

    /// Runs a command to its end: what it printed, unless it did not exit 0
    /// within the limit.
    fn to_end(&self, command: &str, step: &Step) -> Result<String, String> {
        let output = self
            .shell(&format!(
                "timeout {} bash -c {}",
                COMMAND_LIMIT.as_secs(),
                quote(command)
            ))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            return Ok(stdout);
        }
        Err(format!(
            "README line {}: `{command}` exited {}\n{stdout}{}",
            step.line,
            output.status,
            String::from_utf8_lossy(&output.stderr),
        ))
    }

    /// Starts a background command, after stopping the one before, and
    /// waits until it has printed what README shows.
    fn start(&mut self, step: &Step) {
        self.stop_background();
        let stderr = self.logs.path().join(format!("line-{}.stderr", step.line));
        let mut child = self
            .shell(&format!("exec {}", self.command(step)))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stdout.take().unwrap();
        let sink = stdout.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        self.background = Some(Background { child, stderr });
        let start = Instant::now();
        loop {
            let printed = stdout.lock().unwrap().clone();
            let last = self.matches(step, &printed, true);
            match last {
                Ok(()) => return,
                Err(why) => {
                    let exited = self.background.as_mut().unwrap().child.try_wait().unwrap();
                    if exited.is_some() || start.elapsed() > LATER_LIMIT {
                        panic!("{why}{}", self.serve_log());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the background command; it must exit 0.
    fn stop_background(&mut self) {
        if let Some(background) = self.background.take() {
            let log = background.stderr.clone();
            let status = background.stop();
            assert!(
                status.success(),
                "the background serve exited {status} on SIGTERM\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    }

    /// The background serve's standard error, for a failure's message.
    fn serve_log(&self) -> String {
        self.background.as_ref().map_or_else(String::new, |b| {
            let log = std::fs::read_to_string(&b.stderr).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!(
                "\n--- serve's standard error (last lines) ---\n{}",
                tail.join("\n")
            )
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(background) = self.background.take() {
            let _ = background.stop();
        }
    }
}

/// A word for `bash -c`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Shell words of a simple command line (quotes taken off, no expansion).
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, '#') if word.is_none() => break,
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// The `pagefleet` commands of a `sh` block, continuation lines joined.
fn pagefleet_commands(block: &Block) -> Vec<(usize, Vec<String>)> {
    let mut commands = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in block.lines.iter().enumerate() {
        let line = line.strip_prefix("$ ").unwrap_or(line);
        let (start, mut text) = pending
            .take()
            .unwrap_or((block.line + 1 + i, String::new()));
        text.push_str(line.trim_end_matches('\\'));
        text.push(' ');
        if line.ends_with('\\') {
            pending = Some((start, text));
            continue;
        }
        let words = words(&text);
        if words.first().is_some_and(|w| w == "pagefleet") {
            commands.push((start, words));
        }
    }
    commands
}

#[test]
fn a_transcript_is_matched_with_its_stand_ins() {
    let (regex, bound) = pattern(
        "{\"job_id\":\"a7aaa4edf4874a9280d4fba63cf0cbc0\",\n \"ms\":547,...}\n  NATS: nats://127.0.0.1:38985",
    );
    let found = regex
        .captures(
            "{\"job_id\":\"0123456789abcdef0123456789abcdef\",\"ms\":12,\"more\":1}\n  NATS: nats://127.0.0.1:4222",
        )
        .unwrap();
    assert_eq!(
        bound,
        ["a7aaa4edf4874a9280d4fba63cf0cbc0", "127.0.0.1:38985"]
    );
    assert_eq!(&found[1], "0123456789abcdef0123456789abcdef");
    assert_eq!(&found[2], "127.0.0.1:4222");
    // Words are words: a different status is not what README shows.
    assert!(!regex.is_match(
        "{\"job_id\":\"0123456789abcdef0123456789abcdef\",\"mss\":12}\n  NATS: nats://127.0.0.1:4222"
    ));
    assert_eq!(
        words(r#"pagefleet ingest --api-token "$TOKEN" --x 'a b'   # note"#),
        ["pagefleet", "ingest", "--api-token", "$TOKEN", "--x", "a b"]
    );
}

/// Every `pagefleet` command README shows for other machines parses.
#[test]
fn readme_commands_for_other_machines_parse() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut checked = 0;
    for block in blocks(&readme).iter().filter(|b| b.info == "sh") {
        for (line, words) in pagefleet_commands(block) {
            let mut args: Vec<String> = words[1..].to_vec();
            args.push("--help".to_owned());
            let ran = pagefleet(&args);
            assert_eq!(
                ran.code(),
                0,
                "README line {line}: `{}` does not parse:\n{}",
                words.join(" "),
                ran.said()
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 5,
        "only {checked} commands found in README's sh blocks"
    );
}

/// Every transcript in README runs as shown, in order, in one session.
#[test]
fn readme_transcripts_run_as_shown() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let transcripts: Vec<Block> = blocks(&readme)
        .into_iter()
        .filter(|b| b.info == "console")
        .collect();
    assert!(
        transcripts.len() >= 5,
        "only {} console blocks in README",
        transcripts.len()
    );
    let mut session = Session::new();
    for block in &transcripts {
        for step in steps(block) {
            session.run(&step);
        }
    }
    session.stop_background();
}
