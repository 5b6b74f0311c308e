//! Helpers shared by the integration tests: where the runtime and the samples
//! are, and a scorer that normalises text the way `shared/tools/score.py` does.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

/// The checkout's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// This build's `pagefleet`, to give arguments and run as the test likes.
pub fn pagefleet_command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pagefleet"))
}

/// What a `pagefleet` command that ran to its end said.
#[derive(Debug)]
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Its exit code (-1 when a signal ended it).
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    /// Standard output and standard error, for a failing assertion.
    pub fn said(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl From<std::process::Output> for Ran {
    fn from(output: std::process::Output) -> Self {
        Self {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Runs this build's `pagefleet` with `args` to its end.
pub fn pagefleet<S: AsRef<OsStr>>(args: &[S]) -> Ran {
    pagefleet_command()
        .args(args)
        .output()
        .expect("run pagefleet")
        .into()
}

/// Waits until `done` holds, looking every 100 ms; fails the test, naming
/// `what`, once `limit` has passed.
pub fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The sample PDFs (in [`samples`]) that the end-to-end tests read.
pub const SAMPLE_PDFS: [&str; 4] = [
    "gnuplot-manual",
    "ltnews34",
    "octave-manual",
    "texlive-guide-pl",
];

/// Runs a Python `script` with `args` and one wheel the bootstrap installed
/// (`.pagefleet/python/<wheel>`) on its path; it must succeed. Its
/// standard output, read as JSON.
pub fn python_json<S: AsRef<OsStr>>(wheel: &str, script: &str, args: &[S]) -> serde_json::Value {
    let wheel = pipeline::home().join("python").join(wheel);
    assert!(
        wheel.is_file(),
        "{} missing: run scripts/bootstrap",
        wheel.display()
    );
    let output = Command::new("python3")
        .env("PYTHONPATH", &wheel)
        .args(["-c", script])
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "python3 with {} failed: {}",
        wheel.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the script's output is JSON")
}

/// The sample documents with ground truth: `PAGEFLEET_SAMPLES`, else the
/// `shared/samples` folder beside the checkout.
pub fn samples() -> PathBuf {
    let dir = std::env::var_os("PAGEFLEET_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/samples"));
    assert!(
        dir.join("truth").is_dir(),
        "sample documents not found at {}; set PAGEFLEET_SAMPLES to the samples folder",
        dir.display()
    );
    dir
}

/// Text normalised for comparison: NFKC, words hyphenated across lines joined,
/// dot leaders as one "...", control and private-use characters dropped,
/// whitespace collapsed.
pub fn normalize(text: &str) -> String {
    let text: String = text.nfkc().collect();
    let hyphen =
        Regex::new(r"(\w)[-\u{2010}\u{00ad}][ \t]*\r?\n[ \t\x0c\r\n]*(\w)").expect("regex");
    let text = hyphen.replace_all(&text, "$1$2");
    let leaders = Regex::new(r"[ \t]*(?:\.[ \t]*){3,}").expect("regex");
    let text = leaders.replace_all(&text, " ... ");
    let kept: String = text
        .chars()
        .filter(|&c| {
            let private = ('\u{e000}'..='\u{f8ff}').contains(&c);
            let selector = ('\u{fe00}'..='\u{fe0f}').contains(&c);
            (!c.is_control() || c.is_whitespace()) && !private && !selector
        })
        .collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Edit distances and word-bag overlap of one or more pages.
#[derive(Debug, Default, Clone, Copy)]
pub struct Score {
    pub char_edits: usize,
    pub truth_chars: usize,
    pub word_edits: usize,
    pub truth_words: usize,
    pub bow_common: usize,
    pub bow_hyp: usize,
    pub bow_truth: usize,
}

impl Score {
    pub fn page(hyp: &str, truth: &str) -> Self {
        let (h, t) = (normalize(hyp), normalize(truth));
        let hc: Vec<char> = h.chars().collect();
        let tc: Vec<char> = t.chars().collect();
        let hw: Vec<&str> = h.split(' ').filter(|w| !w.is_empty()).collect();
        let tw: Vec<&str> = t.split(' ').filter(|w| !w.is_empty()).collect();
        let bag = |words: &[&str]| {
            let mut m: HashMap<String, usize> = HashMap::new();
            for w in words {
                let w = w.trim_matches(|c: char| !c.is_alphanumeric());
                if !w.is_empty() {
                    *m.entry(w.to_owned()).or_default() += 1;
                }
            }
            m
        };
        let (hb, tb) = (bag(&hw), bag(&tw));
        let common = hb
            .iter()
            .map(|(w, n)| (*n).min(tb.get(w).copied().unwrap_or(0)))
            .sum();
        Self {
            char_edits: strsim::generic_levenshtein(&hc, &tc),
            truth_chars: tc.len(),
            word_edits: strsim::generic_levenshtein(&hw, &tw),
            truth_words: tw.len(),
            bow_common: common,
            bow_hyp: hb.values().sum(),
            bow_truth: tb.values().sum(),
        }
    }

    pub fn add(&mut self, other: Score) {
        self.char_edits += other.char_edits;
        self.truth_chars += other.truth_chars;
        self.word_edits += other.word_edits;
        self.truth_words += other.truth_words;
        self.bow_common += other.bow_common;
        self.bow_hyp += other.bow_hyp;
        self.bow_truth += other.bow_truth;
    }

    pub fn cer(&self) -> f64 {
        self.char_edits as f64 / self.truth_chars.max(1) as f64
    }

    pub fn wer(&self) -> f64 {
        self.word_edits as f64 / self.truth_words.max(1) as f64
    }

    pub fn bow_f1(&self) -> f64 {
        let p = self.bow_common as f64 / self.bow_hyp.max(1) as f64;
        let r = self.bow_common as f64 / self.bow_truth.max(1) as f64;
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

#[test]
fn scorer_normalises_like_the_reference() {
    assert_eq!(normalize("Lay-\nout  ﬁne\u{c}\n"), "Layout fine");
    assert_eq!(normalize("Intro . . . . . 3"), "Intro ... 3");
    let s = Score::page("the cat sat", "the cat sat on");
    assert_eq!((s.word_edits, s.truth_words), (1, 4));
    assert!((s.bow_f1() - 2.0 * 1.0 * 0.75 / 1.75).abs() < 1e-9);
    let same = Score::page("a, b", "a b");
    assert_eq!(same.bow_f1(), 1.0);
}
pub mod pdf;
pub mod pipeline;
pub mod serve;
