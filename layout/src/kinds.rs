//! Block kinds that need the text: list items, captions and headings, decided
//! once the lines of a laid-out page are recognised.

use pagefleet_schemas::{BlockKind, OcrLine};

/// A short block this much taller than the page's median line is a heading:
/// LaTeX's `\\section` is set 1.44 times the body size; single lines of body
/// text measure up to 1.2 times the median with their ascenders and descenders.
const HEADING_HEIGHT: f32 = 1.25;
/// Headings are short: at most this many lines and characters.
const HEADING_LINES: usize = 3;
const HEADING_CHARS: usize = 150;
/// A numbered title of body height ("2.1 Results") is at most this long.
const NUMBERED_HEADING_CHARS: usize = 70;
/// A block is set in a monospaced font when at least this many of its words
/// (of two characters or more) are as wide per character as their median,
/// within [`MONO_SPREAD`] of it, and it has [`MONO_WORDS`] such words. On the
/// sample pages, blocks of code and verbatim text measure 1.00 from their
/// text layers and from their pixels; running text in proportional fonts at
/// most 0.86 from text layers and 0.95 from pixels (recognised word boxes
/// are less exact than glyph boxes).
const MONO_SHARE: f32 = 0.98;
const MONO_SPREAD: f32 = 0.12;
const MONO_WORDS: usize = 5;
/// Monospaced text is code when this share of its characters are the marks
/// code is written with (running text has 2-7% of them, a line of code 6-30%)
/// or when a line after its first is indented: a paragraph of typewritten
/// prose indents its first line only.
const CODE_MARKS: f32 = 0.05;
const CODE_MARK_CHARS: &str = "{}()[];=<>#/\\\"'_|$%&*+:`~^@";
/// An indent of a listing lies between two and this many characters.
const CODE_INDENT: f32 = 16.0;

/// Splits list items into blocks of their own, sets each block's kind from
/// its text, and numbers the blocks again from 0 in reading order. Lines come
/// in reading order with each block's lines consecutive.
pub fn refine_kinds(lines: &mut [OcrLine]) {
    if lines.is_empty() {
        return;
    }
    let mut heights: Vec<f32> = lines.iter().map(OcrLine::height).collect();
    heights.sort_by(f32::total_cmp);
    let unit = heights[heights.len() / 2].max(1.0);

    // Code first: a listing's lines that start like list items stay in it.
    let mut start = 0;
    while start < lines.len() {
        let id = lines[start].block;
        let end = start + lines[start..].iter().take_while(|l| l.block == id).count();
        if lines[start].block_kind == BlockKind::Text && is_code(&lines[start..end]) {
            for line in &mut lines[start..end] {
                line.block_kind = BlockKind::Code;
            }
        }
        start = end;
    }

    // New block numbers: a new one where the old one changes, and before a
    // list marker at the left edge of a text block.
    let mut next = 0u32;
    let mut left = f32::MAX;
    let mut old = Vec::with_capacity(lines.len());
    for i in 0..lines.len() {
        old.push(lines[i].block);
        let starts = i == 0 || old[i] != old[i - 1];
        let x0 = lines[i].bounds().0;
        if starts {
            left = x0;
        }
        let item = !starts
            && lines[i].block_kind == BlockKind::Text
            && list_marker(&lines[i].text)
            && x0 - left < 0.5 * unit;
        if i > 0 && (starts || item) {
            next += 1;
        }
        lines[i].block = next;
    }

    let mut start = 0;
    while start < lines.len() {
        let id = lines[start].block;
        let end = start + lines[start..].iter().take_while(|l| l.block == id).count();
        let block = &lines[start..end];
        let kind = kind_of(block, unit);
        for line in &mut lines[start..end] {
            line.block_kind = kind;
        }
        start = end;
    }
}

fn kind_of(block: &[OcrLine], unit: f32) -> BlockKind {
    let first = &block[0].text;
    if matches!(block[0].block_kind, BlockKind::Table | BlockKind::Code) {
        return block[0].block_kind;
    }
    if list_marker(first) {
        return BlockKind::List;
    }
    if caption(first) {
        return BlockKind::Caption;
    }
    let chars: usize = block.iter().map(|l| l.text.chars().count()).sum();
    let mut heights: Vec<f32> = block.iter().map(OcrLine::height).collect();
    heights.sort_by(f32::total_cmp);
    let height = heights[heights.len() / 2];
    let tall = height >= HEADING_HEIGHT * unit && !first.ends_with(['.', ',', ';']);
    let numbered = block.len() == 1
        && chars <= NUMBERED_HEADING_CHARS
        && numbered_title(first)
        && height >= 0.9 * unit;
    if block.len() <= HEADING_LINES && chars <= HEADING_CHARS && (tall || numbered) {
        BlockKind::Heading
    } else {
        BlockKind::Text
    }
}

/// The width of a character of the lines' monospaced font: the median width
/// per character of their words of two characters or more, when at least
/// [`MONO_SHARE`] of [`MONO_WORDS`] or more such words agree with it within
/// [`MONO_SPREAD`]. `None` for text in a proportional font.
pub fn monospaced_advance(lines: &[OcrLine]) -> Option<f32> {
    let mut advances: Vec<f32> = lines
        .iter()
        .flat_map(|l| &l.words)
        .filter_map(|w| {
            let chars = w.text.chars().count();
            let (x0, _, x1, _) = w.bounds();
            (chars >= 2 && x1 > x0).then(|| (x1 - x0) / chars as f32)
        })
        .collect();
    if advances.len() < MONO_WORDS {
        return None;
    }
    advances.sort_by(f32::total_cmp);
    let median = advances[advances.len() / 2];
    let agree = advances
        .iter()
        .filter(|&&a| (a - median).abs() <= MONO_SPREAD * median)
        .count();
    (agree as f32 >= MONO_SHARE * advances.len() as f32).then_some(median)
}

/// Whether a block is code: monospaced, and written with code's marks or
/// indented as a listing is.
fn is_code(block: &[OcrLine]) -> bool {
    let Some(advance) = monospaced_advance(block) else {
        return false;
    };
    let (mut chars, mut marks) = (0usize, 0usize);
    for c in block.iter().flat_map(|l| l.text.chars()) {
        if !c.is_whitespace() {
            chars += 1;
            marks += usize::from(CODE_MARK_CHARS.contains(c));
        }
    }
    let left = block.iter().map(|l| l.bounds().0).fold(f32::MAX, f32::min);
    let indented = block[1..].iter().any(|l| {
        let indent = (l.bounds().0 - left) / advance;
        (1.5..=CODE_INDENT).contains(&indent)
    });
    marks as f32 >= CODE_MARKS * chars.max(1) as f32 || indented
}

/// Whether a line starts with a bullet, `1.`, `1)`, `(1)`, `a)` or `(a)`.
pub(crate) fn list_marker(text: &str) -> bool {
    let mut chars = text.chars();
    let Some(c) = chars.next() else {
        return false;
    };
    if "•·▪◦‣●○■□►▸✓–—*-".contains(c) {
        // A bullet alone is a marker; `-5` or `--flag` is not.
        return chars.next().is_none_or(|n| n.is_whitespace());
    }
    let rest = text.strip_prefix('(').unwrap_or(text);
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    let (marker, tail) = if digits > 0 {
        if digits > 3 {
            return false;
        }
        rest.split_at(digits)
    } else {
        match rest.chars().next() {
            Some(l) if l.is_ascii_lowercase() => rest.split_at(1),
            _ => return false,
        }
    };
    let mut tail = tail.chars();
    let closing = tail.next();
    let ok = match closing {
        Some(')') => true,
        // `1.` but not `a.` (an abbreviation such as `e.g.`).
        Some('.') => digits > 0 && !text.starts_with('('),
        _ => false,
    };
    ok && !marker.is_empty() && tail.next().is_some_and(char::is_whitespace)
}

/// Whether a line starts like a caption: `Figure 2:`, `Fig. 3`, `Table 1.`.
fn caption(text: &str) -> bool {
    let lower = text.to_lowercase();
    let rest = ["figure", "fig.", "table", "listing", "tab."]
        .iter()
        .find_map(|w| lower.strip_prefix(w));
    let Some(rest) = rest else {
        return false;
    };
    let rest = rest.trim_start();
    rest.chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || "ivx".contains(c) && rest.len() > 1)
        && rest.len() < lower.len()
}

/// Whether a line is a numbered title: `3 Results`, `2.1 The method`,
/// `A.2 Proofs`, with no full stop at its end.
fn numbered_title(text: &str) -> bool {
    let Some((number, title)) = text.split_once(char::is_whitespace) else {
        return false;
    };
    let number = number.strip_suffix('.').unwrap_or(number);
    let parts: Vec<&str> = number.split('.').collect();
    let numeric = !parts.is_empty()
        && parts.iter().enumerate().all(|(k, p)| {
            (!p.is_empty() && p.len() <= 2 && p.chars().all(|c| c.is_ascii_digit()))
                || (k == 0
                    && parts.len() > 1
                    && p.len() == 1
                    && p.chars().all(|c| c.is_ascii_uppercase()))
        });
    let title = title.trim();
    numeric
        && title.chars().next().is_some_and(char::is_uppercase)
        && !title.ends_with(['.', ',', ';', ':'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, block: u32, x: f32, y: f32, h: f32) -> OcrLine {
        OcrLine {
            text: text.into(),
            confidence: 0.9,
            polygon: [[x, y], [x + 300.0, y], [x + 300.0, y + h], [x, y + h]],
            column: 0,
            block,
            block_kind: BlockKind::Text,
            cell: None,
            words: Vec::new(),
        }
    }

    /// A line of words set `advance` pixels a character (monospaced), or at
    /// a width per character that changes from word to word (proportional).
    fn set(text: &str, block: u32, x: f32, y: f32, advance: Option<f32>) -> OcrLine {
        let mut words = Vec::new();
        let mut at = x;
        for (k, word) in text.split(' ').enumerate() {
            let n = word.chars().count() as f32;
            let per = advance.unwrap_or(8.0 + 5.0 * (k % 3) as f32);
            words.push(pagefleet_schemas::OcrWord {
                text: word.into(),
                confidence: 0.9,
                polygon: [
                    [at, y],
                    [at + n * per, y],
                    [at + n * per, y + 20.0],
                    [at, y + 20.0],
                ],
            });
            at += (n + 1.0) * per;
        }
        OcrLine {
            words,
            ..line(text, block, x, y, 20.0)
        }
    }

    #[test]
    fn monospaced_listings_are_code_and_prose_is_not() {
        let mono = Some(10.0);
        let mut lines = vec![
            // A listing: indented lines after its first.
            set("if (nargin == 1)", 0, 0.0, 0.0, mono),
            set("val = p.poly;", 0, 20.0, 22.0, mono),
            set("- not a list item", 0, 20.0, 44.0, mono),
            set("endif", 0, 0.0, 66.0, mono),
            // A command with code's marks, on one line.
            set(
                "# set title \"My First Plot\"; plot 'data'",
                1,
                0.0,
                110.0,
                mono,
            ),
            // Typewritten prose: monospaced, its first line indented only.
            set(
                "It was a dark and stormy night and the",
                2,
                30.0,
                150.0,
                mono,
            ),
            set(
                "rain fell in torrents except at occasional",
                2,
                0.0,
                172.0,
                mono,
            ),
            // Proportional text with an indented line, and with marks.
            set("Some running text in a proportional", 3, 0.0, 220.0, None),
            set(
                "font that (for once) = has [marks] {here}",
                3,
                30.0,
                242.0,
                None,
            ),
        ];
        refine_kinds(&mut lines);
        let kinds: Vec<(u32, BlockKind)> = lines.iter().map(|l| (l.block, l.block_kind)).collect();
        use BlockKind::*;
        assert_eq!(
            kinds,
            vec![
                (0, Code),
                (0, Code),
                (0, Code),
                (0, Code),
                (1, Code),
                (2, Text),
                (2, Text),
                (3, Text),
                (3, Text)
            ]
        );
        assert_eq!(monospaced_advance(&lines[..4]), Some(10.0));
        assert_eq!(monospaced_advance(&lines[7..]), None);
    }

    #[test]
    fn markers() {
        for yes in [
            "• item",
            "- item",
            "1. first",
            "12) twelfth",
            "(3) third",
            "a) one",
            "(b) two",
        ] {
            assert!(list_marker(yes), "{yes}");
        }
        for no in [
            "e.g. this",
            "-5 degrees",
            "--flag",
            "1.5 times",
            "2020. A year",
            "A. Smith",
            "word",
        ] {
            assert!(!list_marker(no), "{no}");
        }
    }

    #[test]
    fn numbered_titles() {
        assert!(numbered_title("2 Results"));
        assert!(numbered_title("2.1 The method"));
        assert!(numbered_title("A.2 Proofs"));
        assert!(!numbered_title("2 apples were eaten."));
        assert!(!numbered_title("In 2020 We"));
        assert!(!numbered_title("1999 Was a year."));
    }

    #[test]
    fn kinds_from_text_and_height() {
        let mut lines = vec![
            line("A Title", 0, 0.0, 0.0, 40.0),
            line("Some text that runs on", 1, 0.0, 60.0, 20.0),
            line("and on.", 1, 0.0, 82.0, 20.0),
            line("• one", 2, 0.0, 120.0, 20.0),
            line("• two", 2, 0.0, 142.0, 20.0),
            line("continued", 2, 20.0, 164.0, 20.0),
            line("Figure 1: a plot", 3, 0.0, 200.0, 20.0),
            line("2 Method", 4, 0.0, 240.0, 20.0),
            line("Text again.", 5, 0.0, 270.0, 20.0),
        ];
        refine_kinds(&mut lines);
        let got: Vec<(u32, BlockKind)> = lines.iter().map(|l| (l.block, l.block_kind)).collect();
        use BlockKind::*;
        assert_eq!(
            got,
            vec![
                (0, Heading),
                (1, Text),
                (1, Text),
                (2, List),
                (3, List),
                (3, List),
                (4, Caption),
                (5, Heading),
                (6, Text)
            ]
        );
    }
}
