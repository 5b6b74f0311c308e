//! Which head of the recognizer reads a page: the job's language decides,
//! and for `auto` a sample of the page's lines.
//!
//! PP-OCR's whole output reads Chinese, Japanese and Latin script, but on a
//! Latin page it costs a matrix product over some 6,900 classes for every
//! timestep and now and then puts a CJK look-alike in the text (`（` for
//! `(`). The Latin head is the same network cut to a few hundred classes. For
//! a job that names its languages the choice is plain; for `auto` a few lines
//! of the page are read with the whole output first, and a page whose sample
//! holds no more CJK than a Latin page's stray look-alike is read with the
//! Latin head.

use std::time::Instant;

use image::RgbImage;
use pagefleet_schemas::StepTimings;
use pagefleet_schemas::language::Reading;

use super::share::LineResult;
use super::{Engine, EngineError, Script};

/// Lines read to decide a page's script: a few lines of a Chinese page are
/// nearly all CJK, so a handful decide. (Six cost 185 ms of a page's 1,032
/// ms of recognition on the samples, all of them read again.)
const SAMPLE_LINES: usize = 4;

impl Engine {
    /// Reads the page's line images as `reading` asks; with `Auto`, the
    /// time its sample took goes to `timings.sample_ms`.
    pub(super) fn read_as(
        &mut self,
        images: Vec<RgbImage>,
        reading: Reading,
        timings: &mut StepTimings,
    ) -> Result<Vec<LineResult>, EngineError> {
        let script = match reading {
            Reading::Latin => Script::Latin,
            Reading::All => Script::All,
            // A page of a few lines is read whole rather than twice.
            Reading::Auto
                if images.len() > SAMPLE_LINES
                    && self.has_head(Script::Latin)
                    && self.has_head(Script::All) =>
            {
                return self.read_sampled(images, timings);
            }
            Reading::Auto => Script::All,
        };
        // Without that head (a custom model that cannot be cut), the one
        // there is reads.
        self.use_head(script);
        self.recognize_lines(images)
    }

    /// `auto`: a sample of the lines read with the whole output; a page it
    /// finds CJK in is read with the whole output, any other with the Latin
    /// head. Sampled lines are kept as read where they need not be read
    /// again: on a CJK page all of them, on a Latin page those whose every
    /// character the Latin head has (where the whole output's best symbol at
    /// every step is one of the Latin head's, the Latin head picks the same).
    fn read_sampled(
        &mut self,
        images: Vec<RgbImage>,
        timings: &mut StepTimings,
    ) -> Result<Vec<LineResult>, EngineError> {
        let t = Instant::now();
        let sample = sample_lines(&images);
        self.use_head(Script::All);
        let sampled = self.recognize_lines(sample.iter().map(|&i| images[i].clone()).collect())?;
        timings.sample_ms = t.elapsed().as_secs_f64() * 1000.0;
        let cjk = is_cjk(sampled.iter().map(|(d, _)| d.text.as_str()));
        let (kept, sampled): (Vec<usize>, Vec<LineResult>) = if cjk {
            (sample, sampled)
        } else {
            self.use_head(Script::Latin);
            sample
                .into_iter()
                .zip(sampled)
                .filter(|(_, (d, _))| Script::Latin.keeps(&d.text))
                .unzip()
        };
        let rest: Vec<usize> = (0..images.len()).filter(|i| !kept.contains(i)).collect();
        let mut images: Vec<Option<RgbImage>> = images.into_iter().map(Some).collect();
        let rest_images = rest.iter().filter_map(|&i| images[i].take()).collect();
        let read = self.recognize_lines(rest_images)?;
        let mut lines: Vec<Option<LineResult>> = vec![None; images.len()];
        for (i, line) in kept
            .into_iter()
            .zip(sampled)
            .chain(rest.into_iter().zip(read))
        {
            lines[i] = Some(line);
        }
        Ok(lines.into_iter().map(Option::unwrap_or_default).collect())
    }
}

/// The lines that make the sample: spread over the page in reading order,
/// the widest of each stretch (a heading's or a paragraph's line rather
/// than a page number).
fn sample_lines(images: &[RgbImage]) -> Vec<usize> {
    let all: Vec<usize> = (0..images.len()).collect();
    spread(&all, SAMPLE_LINES, |i| {
        let image = &images[i];
        // Width over height: how many characters the line may hold.
        image.width() * 16 / image.height().max(1)
    })
}

/// At most `count` of `pool` (line indices in reading order), spread over
/// it: the pool cut into `count` even stretches, and of each the line with
/// the largest `key`.
pub(super) fn spread<K: Ord>(pool: &[usize], count: usize, key: impl Fn(usize) -> K) -> Vec<usize> {
    let stretch = pool.len().div_ceil(count).max(1);
    pool.chunks(stretch)
        .filter_map(|chunk| chunk.iter().copied().max_by_key(|&i| key(i)))
        .collect()
}

/// Whether lines read with the whole output are CJK text: Han, kana or
/// Hangul make at least a tenth of their characters, and at least two. A
/// Latin page's stray look-alike (a bracket or a full-width letter, which
/// are not counted) does not make it so.
pub(super) fn is_cjk<'a>(texts: impl Iterator<Item = &'a str>) -> bool {
    let (mut cjk, mut all) = (0usize, 0usize);
    for c in texts.flat_map(str::chars).filter(|c| !c.is_whitespace()) {
        all += 1;
        cjk += usize::from(cjk_letter(c));
    }
    cjk >= 2 && cjk * 10 >= all
}

/// Han ideographs, kana and Hangul syllables.
fn cjk_letter(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF       // hiragana, katakana
        | 0x3400..=0x4DBF     // CJK extension A
        | 0x4E00..=0x9FFF     // CJK unified ideographs
        | 0xAC00..=0xD7AF     // Hangul syllables
        | 0xF900..=0xFAFF     // CJK compatibility ideographs
        | 0x20000..=0x2FA1F) // CJK extensions B and later
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cjk_pages_are_told_from_latin_ones_with_a_stray_look_alike() {
        assert!(is_cjk(["本文介绍 ctex 宏集的用法", "第一章"].into_iter()));
        assert!(is_cjk(["これは日本語の文です"].into_iter()));
        // A Latin page read with the whole output: full-width brackets and
        // one stray ideograph are not CJK text.
        assert!(!is_cjk(
            [
                "Die Übersetzung（siehe Abschnitt 2) ist vollständig.",
                "Le résultat est 〈name) et c2ml（( comme prévu.",
                "Zażółć gęślą jaźń 口 w tekście polskim.",
            ]
            .into_iter()
        ));
        assert!(!is_cjk(std::iter::empty::<&str>()));
    }

    #[test]
    fn the_sample_spreads_over_the_page_and_takes_the_widest_lines() {
        let line = |w| RgbImage::new(w, 32);
        let images: Vec<RgbImage> = [40, 900, 300, 800, 100, 50, 700, 600, 500, 30, 1000, 20, 400]
            .into_iter()
            .map(line)
            .collect();
        let sample = sample_lines(&images);
        assert!(sample.len() <= SAMPLE_LINES, "{sample:?}");
        assert_eq!(sample, [1, 6, 10, 12]);
        assert!(sample_lines(&[]).is_empty());
    }
}
