//! Bytes a page image takes in the store: every page of the PDFs named on
//! the command line rendered at 200 dpi, encoded as the rasterizer stores
//! it (`encode_png`: 1-bit, grey, palette or RGB, the smallest that keeps
//! the page) and as RGB (what it stored before), one line per document,
//! then the totals by the form each page was stored in.
//!
//! `cargo run --release -p pagefleet-rasterizer --example page_bytes -- FILE.pdf...`

use std::collections::BTreeMap;
use std::path::PathBuf;

use image::ImageEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use pagefleet_rasterizer::{Rasterizer, RenderOptions, encode_png};

/// The earlier encoding: RGB, fastest compression.
fn rgb_png(image: &image::RgbImage) -> usize {
    let mut png = Vec::new();
    PngEncoder::new_with_quality(
        std::io::Cursor::new(&mut png),
        CompressionType::Fast,
        FilterType::Sub,
    )
    .write_image(
        image.as_raw(),
        image.width(),
        image.height(),
        image::ExtendedColorType::Rgb8,
    )
    .expect("encode");
    png.len()
}

/// The form a stored page image took: `1-bit`, `grey`, `palette` or `RGB`.
fn form(png_bytes: &[u8]) -> &'static str {
    let reader = png::Decoder::new(std::io::Cursor::new(png_bytes))
        .read_info()
        .expect("a PNG");
    match (reader.info().color_type, reader.info().bit_depth) {
        (png::ColorType::Grayscale, png::BitDepth::One) => "1-bit",
        (png::ColorType::Grayscale, _) => "grey",
        (png::ColorType::Indexed, _) => "palette",
        _ => "RGB",
    }
}

fn main() {
    let home = std::env::var_os("PAGEFLEET_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.pagefleet"));
    let rasterizer = Rasterizer::new(&home.join("lib/libpdfium.so")).expect("PDFium");
    let options = RenderOptions {
        max_pages: 100_000,
        ..Default::default()
    };
    // Form: (pages, RGB bytes, stored bytes).
    let mut forms: BTreeMap<&'static str, (usize, usize, usize)> = BTreeMap::new();
    println!("document\tpages\tRGB bytes/page\tstored bytes/page");
    for file in std::env::args().skip(1) {
        let bytes = std::fs::read(&file).expect("read");
        let (mut n, mut b, mut a) = (0usize, 0usize, 0usize);
        rasterizer
            .pages(&bytes, &options, |page| {
                if let Ok(page) = page {
                    let stored = encode_png(&page.image, page.dpi).expect("encode");
                    let rgb = rgb_png(&page.image);
                    let entry = forms.entry(form(&stored)).or_default();
                    *entry = (entry.0 + 1, entry.1 + rgb, entry.2 + stored.len());
                    (n, b, a) = (n + 1, b + rgb, a + stored.len());
                }
                Ok(())
            })
            .expect("render");
        let name = std::path::Path::new(&file)
            .file_name()
            .map_or(file.clone(), |f| f.to_string_lossy().into_owned());
        println!("{name}\t{n}\t{}\t{}", b / n.max(1), a / n.max(1));
    }
    let all = forms
        .values()
        .fold((0, 0, 0), |t, f| (t.0 + f.0, t.1 + f.1, t.2 + f.2));
    for (form, (n, before, after)) in forms.into_iter().chain([("all", all)]) {
        println!(
            "{form}\t{n}\t{}\t{}\t({:.1}% of before)",
            before / n.max(1),
            after / n.max(1),
            100.0 * after as f64 / before.max(1) as f64
        );
    }
}
