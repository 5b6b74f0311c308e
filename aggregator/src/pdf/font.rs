//! The font of the invisible text: an empty glyph for every character of
//! Unicode's Basic Multilingual Plane, each glyph numbered as its character.
//!
//! PDFium embeds a TrueType font as a CID font keyed by glyph number, and
//! writes its ToUnicode map from the font's character map. Text stays text
//! only when every character has a glyph of its own: a glyphless font that
//! shares one blank glyph among all characters (OCRmyPDF's, Tesseract's)
//! reads back as that one character. The glyphs draw nothing and share one
//! advance width; each word is stretched to its box anyway. The font is built
//! once per process, about 400 KB; saved PDFs compress it to a few KB.

use std::sync::OnceLock;

use write_fonts::FontBuilder;
use write_fonts::tables::cmap::Cmap;
use write_fonts::tables::glyf::{GlyfLocaBuilder, Glyph};
use write_fonts::tables::head::Head;
use write_fonts::tables::hhea::Hhea;
use write_fonts::tables::hmtx::{Hmtx, LongMetric};
use write_fonts::tables::maxp::Maxp;
use write_fonts::tables::name::{Name, NameRecord};
use write_fonts::tables::post::Post;
use write_fonts::types::{FWord, GlyphId, NameId, UfWord, Version16Dot16};

/// Font units per em.
const UNITS_PER_EM: u16 = 1000;
/// Advance width of every glyph, in font units.
const ADVANCE: u16 = 500;
/// The advance as a share of the em: the width of every character at size 1.
pub(crate) const ADVANCE_PER_EM: f32 = ADVANCE as f32 / UNITS_PER_EM as f32;
/// Ascent and descent, in font units (those of common text faces).
const ASCENT: i16 = 800;
const DESCENT: i16 = -200;
/// The last character with a glyph: glyph numbers are 16-bit and U+FFFE and
/// U+FFFF are not characters.
const LAST: u32 = 0xFFFD;
/// The font's name, as PDF readers show it.
const FAMILY: &str = "pagefleet invisible text";
const POSTSCRIPT: &str = "pagefleet-invisible-text";

/// The font's file (TrueType), built on first use.
pub(crate) fn invisible_text() -> Result<&'static [u8], String> {
    static FONT: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    FONT.get_or_init(build)
        .as_ref()
        .map(Vec::as_slice)
        .map_err(Clone::clone)
}

fn build() -> Result<Vec<u8>, String> {
    let err = |e: &dyn std::fmt::Display| format!("invisible-text font: {e}");
    let glyphs = LAST as u16 + 1;
    let mut glyf = GlyfLocaBuilder::new();
    for _ in 0..glyphs {
        glyf.add_glyph(&Glyph::Empty).map_err(|e| err(&e))?;
    }
    let (glyf, loca, loca_format) = glyf.build();
    // Glyph 0 is .notdef; every character from U+0001 up has the glyph of
    // its own number (surrogates are not characters and are skipped).
    let cmap = Cmap::from_mappings(
        (1..=LAST).filter_map(|c| char::from_u32(c).map(|ch| (ch, GlyphId::new(c)))),
    )
    .map_err(|e| err(&e))?;
    let head = Head {
        units_per_em: UNITS_PER_EM,
        x_max: ADVANCE as i16,
        y_min: DESCENT,
        y_max: ASCENT,
        index_to_loc_format: loca_format as i16,
        ..Default::default()
    };
    let hhea = Hhea {
        ascender: FWord::new(ASCENT),
        descender: FWord::new(DESCENT),
        advance_width_max: UfWord::new(ADVANCE),
        x_max_extent: FWord::new(0),
        caret_slope_rise: 1,
        number_of_h_metrics: 1,
        ..Default::default()
    };
    // One metric for all: the glyphs after the first repeat its advance.
    let hmtx = Hmtx::new(
        vec![LongMetric::new(ADVANCE, 0)],
        vec![0; glyphs as usize - 1],
    );
    let record = |id: NameId, text: &str| NameRecord::new(3, 1, 0x409, id, text.to_owned().into());
    let name = Name::new(vec![
        record(NameId::FAMILY_NAME, FAMILY),
        record(NameId::SUBFAMILY_NAME, "Regular"),
        record(NameId::FULL_NAME, FAMILY),
        record(NameId::POSTSCRIPT_NAME, POSTSCRIPT),
    ]);
    let mut font = FontBuilder::new();
    font.add_table(&head)
        .and_then(|f| f.add_table(&hhea))
        .and_then(|f| f.add_table(&Maxp::new(glyphs)))
        .and_then(|f| f.add_table(&hmtx))
        .and_then(|f| f.add_table(&cmap))
        .and_then(|f| f.add_table(&loca))
        .and_then(|f| f.add_table(&glyf))
        .and_then(|f| f.add_table(&name))
        .and_then(|f| {
            f.add_table(&Post {
                version: Version16Dot16::VERSION_3_0,
                ..Default::default()
            })
        })
        .map_err(|e| err(&e))?;
    Ok(font.build())
}
