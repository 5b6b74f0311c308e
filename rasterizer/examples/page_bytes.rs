//! Bytes a page image takes in the store: every page of the PDFs named on
//! the command line rendered at 200 dpi, encoded as the rasterizer stores
//! it (`encode_png`: one grey channel for grey pages) and as RGB (what it
//! stored before), one line per document and the totals.
//!
//! `cargo run --release -p pagefleet-rasterizer --example page_bytes -- FILE.pdf...`

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

fn main() {
    let home = std::env::var_os("PAGEFLEET_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.pagefleet"));
    let rasterizer = Rasterizer::new(&home.join("lib/libpdfium.so")).expect("PDFium");
    let options = RenderOptions {
        max_pages: 100_000,
        ..Default::default()
    };
    let (mut pages, mut grey_pages, mut before, mut after) = (0usize, 0usize, 0usize, 0usize);
    let (mut grey_before, mut grey_after) = (0usize, 0usize);
    println!("document\tpages\tgrey\tRGB bytes/page\tstored bytes/page");
    for file in std::env::args().skip(1) {
        let bytes = std::fs::read(&file).expect("read");
        let (mut n, mut grey, mut b, mut a) = (0usize, 0usize, 0usize, 0usize);
        rasterizer
            .pages(&bytes, &options, |page| {
                if let Ok(page) = page {
                    let stored = encode_png(&page.image).expect("encode");
                    let is_grey = image::load_from_memory(&stored)
                        .map(|i| i.color() == image::ColorType::L8)
                        .unwrap_or(false);
                    let rgb = rgb_png(&page.image);
                    n += 1;
                    b += rgb;
                    a += stored.len();
                    if is_grey {
                        grey += 1;
                        grey_before += rgb;
                        grey_after += stored.len();
                    }
                }
                Ok(())
            })
            .expect("render");
        let name = std::path::Path::new(&file)
            .file_name()
            .map_or(file.clone(), |f| f.to_string_lossy().into_owned());
        println!("{name}\t{n}\t{grey}\t{}\t{}", b / n.max(1), a / n.max(1));
        (pages, grey_pages, before, after) = (pages + n, grey_pages + grey, before + b, after + a);
    }
    println!(
        "grey\t{grey_pages}\t{grey_pages}\t{}\t{}\t({:.1}% of before)",
        grey_before / grey_pages.max(1),
        grey_after / grey_pages.max(1),
        100.0 * grey_after as f64 / grey_before.max(1) as f64
    );
    println!(
        "all\t{pages}\t{grey_pages}\t{}\t{}\t({:.1}% of before)",
        before / pages.max(1),
        after / pages.max(1),
        100.0 * after as f64 / before.max(1) as f64
    );
}
