//! Text recognition: line images to a padded batch, and CTC decoding of the
//! network's per-timestep class probabilities.

use image::RgbImage;
use ndarray::{Array4, ArrayView2};

use super::pixels::{Planes, resize};
use super::script::Script;

/// Resizes each line to `height` keeping its aspect ratio, normalises it with
/// `(x/255 - 0.5) / 0.5` in BGR order, and pads it with zeros on the right to the
/// widest line of the batch, at least `min_width`.
pub(crate) fn batch_tensor(lines: &[&RgbImage], height: u32, min_width: u32) -> Array4<f32> {
    let widths: Vec<u32> = lines.iter().map(|img| target_width(img, height)).collect();
    let batch_w = widths.iter().copied().max().unwrap_or(0).max(min_width);
    fill(lines, &widths, height, batch_w, lines.len())
}

/// A batch of exactly `batch` rows of `width` pixels: each line resized to
/// `height` keeping its aspect ratio (lines wider than `width` squeezed to
/// it), normalised as in [`batch_tensor`], zeros in the padding and in the
/// rows past the lines. Every batch of a width has one shape.
pub(crate) fn fixed_tensor(
    lines: &[&RgbImage],
    height: u32,
    width: u32,
    batch: usize,
) -> Array4<f32> {
    let widths: Vec<u32> = lines
        .iter()
        .map(|img| target_width(img, height).min(width))
        .collect();
    fill(lines, &widths, height, width, batch.max(lines.len()))
}

fn fill(
    lines: &[&RgbImage],
    widths: &[u32],
    height: u32,
    batch_w: u32,
    batch: usize,
) -> Array4<f32> {
    let (rows, stride) = (height as usize, batch_w as usize);
    let mut tensor = Array4::<f32>::zeros((batch, 3, rows, stride));
    let planes = Planes::new([2, 1, 0], |_, v| v as f32 / 127.5 - 1.0);
    for (mut line, (img, &w)) in tensor.outer_iter_mut().zip(lines.iter().zip(widths)) {
        if let Some(chw) = line.as_slice_mut() {
            planes.write(&resize(img, w, height), chw, rows, stride);
        }
    }
    tensor
}

/// Width of a line image scaled to `height`, at least one pixel.
pub(crate) fn target_width(img: &RgbImage, height: u32) -> u32 {
    let ratio = img.width() as f64 / img.height().max(1) as f64;
    ((height as f64 * ratio).ceil() as u32).max(1)
}

/// Tightly set text (`disp (p)`) often gets no timestep where the space is
/// the most probable class, only blanks where it comes second. A space is put
/// between two characters when a blank between them gave the space at least
/// this probability. Measured with PP-OCRv6 tiny on the samples and the layout
/// set (CER / BoW-F1): never 2.17% / 0.975 and 7.34% / 0.962; 0.1: 2.22% /
/// 0.976 and 7.36% / 0.969; 0.2: 2.15% / 0.978 and 7.31% / 0.970; 0.3:
/// 2.13% / 0.979 and 7.29% / 0.969; 0.4: 2.11% / 0.978 and 7.31% / 0.967.
const SPACE_EVIDENCE: f32 = 0.3;

/// What greedy CTC decoding reads of one timestep.
struct Step {
    /// The most probable class.
    best: usize,
    /// Its probability.
    p: f32,
    /// The space's probability (0 without a space class).
    space: f32,
}

/// A decoded line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// The text.
    pub text: String,
    /// Mean probability of the emitted characters (0 when none was emitted).
    pub confidence: f32,
    /// The text's words (split at spaces), with where CTC emitted them.
    pub words: Vec<DecodedWord>,
}

/// A word of a decoded line and the timesteps its characters were emitted
/// at: its place along the line image.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedWord {
    /// The word.
    pub text: String,
    /// Mean probability of its characters.
    pub confidence: f32,
    /// Timestep of its first character.
    pub first: usize,
    /// Timestep of its last character.
    pub last: usize,
}

/// The recognition vocabulary: class 0 is the CTC blank, class i is `chars[i-1]`.
#[derive(Debug, Clone)]
pub struct Vocabulary {
    chars: Vec<String>,
}

impl Vocabulary {
    /// Builds the vocabulary from a PaddleOCR dictionary (one symbol per line,
    /// `\n` or `\r\n`), with a space appended as PaddleOCR's `use_space_char` does.
    pub fn from_dict(text: &str, with_space: bool) -> Self {
        let mut chars: Vec<String> = text
            .lines()
            .map(|l| l.strip_suffix('\r').unwrap_or(l).to_owned())
            .collect();
        // A trailing empty line is an artefact of the file, not a symbol.
        while chars.last().is_some_and(|c| c.is_empty()) {
            chars.pop();
        }
        if with_space {
            chars.push(" ".into());
        }
        Self { chars }
    }

    /// The classes whose symbols `script` keeps, in order, the blank (0)
    /// first.
    pub fn classes_of(&self, script: Script) -> Vec<usize> {
        let kept = self
            .chars
            .iter()
            .enumerate()
            .filter(|(_, c)| script.keeps(c));
        std::iter::once(0).chain(kept.map(|(i, _)| i + 1)).collect()
    }

    /// The vocabulary of a network cut to `classes` (from
    /// [`Vocabulary::classes_of`]).
    pub fn subset(&self, classes: &[usize]) -> Self {
        let chars = classes.iter().filter_map(|&c| c.checked_sub(1));
        Self {
            chars: chars.filter_map(|i| self.chars.get(i).cloned()).collect(),
        }
    }

    /// The class of the space, when the vocabulary has one (the last).
    pub fn space_class(&self) -> Option<usize> {
        (self.chars.last().map(String::as_str) == Some(" ")).then_some(self.chars.len())
    }

    /// Number of classes the network must output: the symbols plus the blank.
    pub fn classes(&self) -> usize {
        self.chars.len() + 1
    }

    /// Greedy CTC decoding of a `[timesteps, classes]` probability matrix: the
    /// best class per step, repeats merged, blanks dropped, and a space where
    /// the blanks between two characters say one is likely
    /// ([`SPACE_EVIDENCE`]).
    pub fn decode(&self, probs: ArrayView2<f32>) -> Decoded {
        let space = self.space_class();
        self.decode_steps(probs.rows().into_iter().map(|row| {
            let (best, p) = row
                .iter()
                .enumerate()
                .fold(
                    (0usize, f32::MIN),
                    |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc },
                );
            Step {
                best,
                p,
                space: space.map_or(0.0, |sp| row[sp]),
            }
        }))
    }

    /// [`Vocabulary::decode`] of a recognizer whose output is already
    /// summarised per timestep (`[timesteps, 4]`: best class, its
    /// probability, the space's probability, the class count; see
    /// [`super::head::summarize_steps`]).
    pub fn decode_summary(&self, steps: ArrayView2<f32>) -> Decoded {
        self.decode_steps(steps.rows().into_iter().map(|row| Step {
            best: row[0] as usize,
            p: row[1],
            space: row[2],
        }))
    }

    fn decode_steps(&self, steps: impl Iterator<Item = Step>) -> Decoded {
        let mut text = String::new();
        let mut conf_sum = 0.0f32;
        let mut emitted = 0u32;
        let mut prev = 0usize;
        let mut words: Vec<DecodedWord> = Vec::new();
        // Characters of the last word so far, while it is open.
        let mut open: Option<u32> = None;
        let space = self.space_class();
        // The most probable space among the blanks since the last character.
        let mut space_seen = 0.0f32;
        for (step, Step { best, p, space: sp }) in steps.enumerate() {
            if space.is_some() && best == 0 {
                space_seen = space_seen.max(sp);
            }
            if best != 0
                && best != prev
                && let Some(symbol) = self.chars.get(best - 1)
            {
                if space_seen >= SPACE_EVIDENCE
                    && Some(best) != space
                    && !text.is_empty()
                    && !text.ends_with(' ')
                {
                    text.push(' ');
                    open = None;
                }
                text.push_str(symbol);
                conf_sum += p;
                emitted += 1;
                if symbol.trim().is_empty() {
                    open = None;
                } else {
                    match (open, words.last_mut()) {
                        (Some(n), Some(word)) => {
                            word.text.push_str(symbol);
                            word.confidence += (p - word.confidence) / (n + 1) as f32;
                            word.last = step;
                            open = Some(n + 1);
                        }
                        _ => {
                            words.push(DecodedWord {
                                text: symbol.clone(),
                                confidence: p,
                                first: step,
                                last: step,
                            });
                            open = Some(1);
                        }
                    }
                }
            }
            if best != 0 {
                space_seen = 0.0;
            }
            prev = best;
        }
        let confidence = if emitted == 0 {
            0.0
        } else {
            conf_sum / emitted as f32
        };
        Decoded {
            text,
            confidence,
            words,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn probs(steps: &[usize], classes: usize) -> Array2<f32> {
        let mut m = Array2::<f32>::from_elem((steps.len(), classes), 0.01);
        for (t, &c) in steps.iter().enumerate() {
            m[[t, c]] = 0.9;
        }
        m
    }

    #[test]
    fn ctc_merges_repeats_and_drops_blanks() {
        let vocab = Vocabulary::from_dict("a\r\nb\r\nl\r\n", true);
        assert_eq!(vocab.classes(), 5);
        // "b a l l" needs a blank between the two l's; the space is class 4.
        let m = probs(&[0, 2, 2, 1, 0, 3, 3, 0, 3, 4, 0, 1], 5);
        let d = vocab.decode(m.view());
        assert_eq!(d.text, "ball a");
        assert!((d.confidence - 0.9).abs() < 1e-6);
    }

    #[test]
    fn a_space_second_to_the_blank_separates_words() {
        let vocab = Vocabulary::from_dict("a\nb\n", true);
        // "a", blanks where the space (class 3) has 0.35, 0.1 and 0.25, "b".
        let mut m = probs(&[1, 0, 0, 2, 0, 1, 0, 2], 4);
        m[[1, 3]] = 0.35;
        m[[4, 3]] = 0.1;
        m[[6, 3]] = 0.25;
        assert_eq!(vocab.decode(m.view()).text, "a bab");
        // A vocabulary without a space never invents one.
        let no_space = Vocabulary::from_dict("a\nb\nc\n", false);
        assert_eq!(no_space.decode(m.view()).text, "abab");
    }

    #[test]
    fn ctc_of_only_blanks_is_empty_with_zero_confidence() {
        let vocab = Vocabulary::from_dict("a\nb\n", false);
        let d = vocab.decode(probs(&[0, 0, 0], 3).view());
        assert_eq!(d, Decoded::default());
    }

    #[test]
    fn words_say_where_their_characters_were_emitted() {
        let vocab = Vocabulary::from_dict("a\nb\n", true);
        // "ab", a space emitted at step 4, "ba", then a space only as
        // evidence among blanks (step 9), "a".
        let mut m = probs(&[0, 1, 1, 2, 3, 0, 2, 0, 1, 0, 0, 1, 0], 4);
        m[[9, 3]] = 0.4;
        m[[7, 1]] = 0.5;
        let d = vocab.decode(m.view());
        assert_eq!(d.text, "ab ba a");
        let spans: Vec<(&str, usize, usize)> = d
            .words
            .iter()
            .map(|w| (w.text.as_str(), w.first, w.last))
            .collect();
        assert_eq!(spans, [("ab", 1, 3), ("ba", 6, 8), ("a", 11, 11)]);
        // The word's confidence is its characters' mean.
        let ba = &d.words[1];
        assert!((ba.confidence - 0.9).abs() < 1e-6, "{ba:?}");
        let words: Vec<&str> = d.words.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(words, d.text.split_whitespace().collect::<Vec<_>>());
    }

    #[test]
    fn a_latin_subset_keeps_the_blank_the_space_and_latin_symbols_in_order() {
        let vocab = Vocabulary::from_dict("a\n中\nł\nＡ\n", true);
        let classes = vocab.classes_of(Script::Latin);
        assert_eq!(classes, [0, 1, 3, 5]);
        let latin = vocab.subset(&classes);
        assert_eq!(latin.classes(), 4);
        assert_eq!(latin.space_class(), Some(3));
        assert_eq!(latin.decode(probs(&[1, 0, 2, 3, 1], 4).view()).text, "ał a");
        assert_eq!(vocab.classes_of(Script::All), [0, 1, 2, 3, 4, 5]);
    }

    /// What [`super::super::head::summarize_steps`] makes of `probs`.
    fn summary(probs: &Array2<f32>, space: Option<usize>) -> Array2<f32> {
        let (steps, classes) = probs.dim();
        Array2::from_shape_fn((steps, 4), |(t, col)| {
            let row = probs.row(t);
            let best = (0..classes).fold(0, |b, i| if row[i] > row[b] { i } else { b });
            match col {
                0 => best as f32,
                1 => row[best],
                2 => row[space.unwrap_or(0)],
                _ => classes as f32,
            }
        })
    }

    #[test]
    fn a_summarised_output_decodes_as_the_whole_one() {
        let vocab = Vocabulary::from_dict("a\nb\n", true);
        let mut m = probs(&[0, 1, 1, 2, 3, 0, 2, 0, 1, 0, 0, 1, 0], 4);
        m[[9, 3]] = 0.4;
        m[[7, 1]] = 0.5;
        // A tie: the first of the equal classes wins in both.
        m[[12, 2]] = 0.9;
        let whole = vocab.decode(m.view());
        assert_eq!(whole.text, "ab ba a");
        assert_eq!(
            vocab.decode_summary(summary(&m, vocab.space_class()).view()),
            whole
        );
        let no_space = Vocabulary::from_dict("a\nb\nc\n", false);
        assert_eq!(
            no_space.decode_summary(summary(&m, None).view()),
            no_space.decode(m.view())
        );
    }

    #[test]
    fn multi_byte_symbols_survive() {
        let vocab = Vocabulary::from_dict("ą\nł\n„\n", false);
        assert_eq!(vocab.decode(probs(&[3, 1, 0, 2], 4).view()).text, "„ął");
    }

    #[test]
    fn a_fixed_batch_has_its_shape_whatever_its_lines() {
        let a = RgbImage::from_pixel(100, 24, image::Rgb([255, 255, 255]));
        let wide = RgbImage::from_pixel(1000, 24, image::Rgb([255, 255, 255]));
        let t = fixed_tensor(&[&a], 48, 320, 4);
        assert_eq!(t.dim(), (4, 3, 48, 320));
        assert!((t[[0, 0, 0, 199]] - 1.0).abs() < 1e-6);
        assert_eq!(t[[0, 0, 0, 200]], 0.0);
        assert!(t.index_axis(ndarray::Axis(0), 1).iter().all(|&v| v == 0.0));
        // Too wide for the width: squeezed into it, not cut.
        let t = fixed_tensor(&[&wide, &a], 48, 320, 2);
        assert_eq!(t.dim(), (2, 3, 48, 320));
        assert!((t[[0, 0, 0, 319]] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn batch_is_padded_to_widest_line_and_minimum_width() {
        let a = RgbImage::from_pixel(100, 24, image::Rgb([255, 255, 255]));
        let b = RgbImage::from_pixel(10, 24, image::Rgb([0, 0, 0]));
        let t = batch_tensor(&[&a, &b], 48, 320);
        assert_eq!(t.dim(), (2, 3, 48, 320));
        assert!((t[[0, 0, 0, 199]] - 1.0).abs() < 1e-6);
        assert_eq!(t[[0, 0, 0, 200]], 0.0);
        assert!((t[[1, 1, 10, 19]] + 1.0).abs() < 1e-6);
        assert_eq!(t[[1, 1, 10, 20]], 0.0);
        let wide = RgbImage::new(1000, 24);
        assert_eq!(batch_tensor(&[&wide], 48, 320).dim(), (1, 3, 48, 2000));
    }
}
