//! Hostile and broken documents against the real PDFium: every one ends in a
//! precise error or in pages within the budget, never in a panic, a hang or an
//! unbounded allocation. Each file is built here.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns fail loudly by design

use std::io::Cursor;
use std::path::PathBuf;

use pagefleet_rasterizer::{Page, RasterError, Rasterizer, RenderOptions};
use pagefleet_schemas::PixelBudget;

#[path = "../../tests/common/pdf.rs"]
mod hand_made;
use hand_made::pdf;

fn pdfium() -> PathBuf {
    let home = std::env::var_os("PAGEFLEET_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.pagefleet"));
    let lib = home.join("lib/libpdfium.so");
    assert!(
        lib.is_file(),
        "PDFium not found at {}; run scripts/bootstrap",
        lib.display()
    );
    lib
}

fn rasterizer() -> Rasterizer {
    Rasterizer::new(&pdfium()).expect("bind pdfium")
}

/// A PDF whose trailer names a standard security handler (RC4, revision 2)
/// with owner and user password hashes that the empty password does not
/// match: any reader needs the password to open it.
fn encrypted_pdf() -> Vec<u8> {
    let mut out = one_page_pdf("/MediaBox [0 0 612 792]", "1");
    let hex32 = |b: u8| format!("<{}>", format!("{b:02x}").repeat(32));
    let encrypt = format!(
        "<< /Filter /Standard /V 1 /R 2 /Length 40 /P -44 /O {} /U {} >>",
        hex32(0x5a),
        hex32(0xa5)
    );
    // Append the /Encrypt dictionary as object 6 in an incremental update.
    let offset = out.len();
    out.extend_from_slice(format!("6 0 obj\n{encrypt}\nendobj\n").as_bytes());
    let prev = {
        let text = String::from_utf8_lossy(&out);
        let start = text.rfind("startxref\n").unwrap() + "startxref\n".len();
        text[start..].lines().next().unwrap().trim().to_owned()
    };
    let xref = out.len();
    out.extend_from_slice(
        format!(
            "xref\n6 1\n{offset:010} 00000 n \ntrailer\n<< /Size 7 /Root 1 0 R /Encrypt 6 0 R /Prev {prev} /ID [<0123456789abcdef0123456789abcdef> <0123456789abcdef0123456789abcdef>] >>\nstartxref\n{xref}\n%%EOF\n"
        )
        .as_bytes(),
    );
    out
}

/// One page with the given page-dictionary extras and a line of Helvetica text.
fn one_page_pdf(page_extra: &str, count: &str) -> Vec<u8> {
    let content = "BT /F1 24 Tf 72 700 Td (Hello pagefleet) Tj ET";
    pdf(&[
        "<< /Type /Catalog /Pages 2 0 R >>".into(),
        format!("<< /Type /Pages /Kids [3 0 R] /Count {count} >>"),
        format!(
            "<< /Type /Page /Parent 2 0 R {page_extra} /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>"
        ),
        format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".into(),
    ])
}

/// Runs the rasterizer, collecting pages and per-page errors.
fn run(
    bytes: &[u8],
    options: &RenderOptions,
) -> (Result<usize, RasterError>, Vec<Result<Page, RasterError>>) {
    let mut pages = Vec::new();
    let result = rasterizer().pages(bytes, options, |page| {
        pages.push(page);
        Ok(())
    });
    (result, pages)
}

fn refused_message(pages: &[Result<Page, RasterError>]) -> String {
    match pages {
        [Err(RasterError::PageRefused { page: 1, message })] => message.clone(),
        other => panic!("expected page 1 refused, got {other:?}"),
    }
}

#[test]
fn a_plain_pdf_renders_at_the_requested_dpi() {
    let (result, pages) = run(
        &one_page_pdf("/MediaBox [0 0 612 792]", "1"),
        &RenderOptions::default(),
    );
    assert_eq!(result.unwrap(), 1);
    let page = pages.into_iter().next().unwrap().unwrap();
    // Letter at 200 DPI.
    assert_eq!(page.image.dimensions(), (1700, 2200));
    assert_eq!((page.number, page.count, page.scale), (1, 1, 1.0));
    // Text was drawn: some dark pixels on white.
    assert!(page.image.pixels().any(|p| p.0[0] < 64));
    assert_eq!(page.image.get_pixel(5, 5).0, [255, 255, 255]);
}

#[test]
fn text_named_pdf_and_empty_files_are_not_documents() {
    let (result, pages) = run(
        b"Quarterly report\nnot really a PDF\n",
        &RenderOptions::default(),
    );
    let err = result.unwrap_err();
    assert!(
        matches!(err, RasterError::Unsupported(_)) && err.to_string().contains("text"),
        "{err}"
    );
    assert!(pages.is_empty());
    let (result, _) = run(b"", &RenderOptions::default());
    assert!(result.unwrap_err().to_string().contains("empty file"));
}

#[test]
fn truncated_pdf_is_corrupt() {
    let full = one_page_pdf("/MediaBox [0 0 612 792]", "1");
    let (result, pages) = run(&full[..40], &RenderOptions::default());
    assert!(matches!(result, Err(RasterError::Corrupt(_))), "{result:?}");
    assert!(pages.is_empty());
}

#[test]
fn password_protected_pdf_is_refused_as_such() {
    let (result, pages) = run(&encrypted_pdf(), &RenderOptions::default());
    assert!(matches!(result, Err(RasterError::Encrypted)), "{result:?}");
    assert!(pages.is_empty());
    assert_eq!(
        RasterError::Encrypted.to_string(),
        "document is password-protected"
    );
}

#[test]
fn zero_pages_is_an_error() {
    let bytes = pdf(&[
        "<< /Type /Catalog /Pages 2 0 R >>".into(),
        "<< /Type /Pages /Kids [] /Count 0 >>".into(),
    ]);
    let (result, _) = run(&bytes, &RenderOptions::default());
    assert!(matches!(result, Err(RasterError::NoPages)), "{result:?}");
}

#[test]
fn a_page_tree_that_refers_to_itself_is_one_line_in_words() {
    // The page tree's only kid is the tree itself: no page at all, said in
    // one line, not counted as a page.
    let bytes = pdf(&[
        "<< /Type /Catalog /Pages 2 0 R >>".into(),
        "<< /Type /Pages /Kids [2 0 R] /Count 1 >>".into(),
    ]);
    let (result, pages) = run(&bytes, &RenderOptions::default());
    let err = result.unwrap_err();
    assert!(matches!(err, RasterError::Corrupt(_)), "{err:?}");
    let said = err.to_string();
    assert!(
        said.contains("page tree") && said.contains("refers to itself"),
        "{said}"
    );
    assert!(!said.contains('\n') && !said.contains("Pdfium"), "{said}");
    assert!(pages.is_empty());

    // Itself and one page, claiming two: one page, read.
    let bytes = pdf(&[
        "<< /Type /Catalog /Pages 2 0 R >>".into(),
        "<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>".into(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>".into(),
    ]);
    let (result, pages) = run(&bytes, &RenderOptions::default());
    assert_eq!(result.unwrap(), 1);
    assert_eq!(pages.len(), 1);
    let page = pages.into_iter().next().unwrap().unwrap();
    assert_eq!((page.number, page.count), (1, 1));
}

#[test]
fn a_claimed_page_count_never_drives_the_work() {
    let options = RenderOptions {
        max_pages: 100,
        ..Default::default()
    };
    let (result, pages) = run(
        &one_page_pdf("/MediaBox [0 0 612 792]", "1000000000"),
        &options,
    );
    match result {
        // PDFium counts the kids that exist...
        Ok(n) => assert_eq!((n, pages.len()), (1, 1)),
        // ...or believes /Count, and the page limit refuses the document.
        Err(e @ RasterError::TooManyPages { limit: 100, .. }) => {
            assert!(e.to_string().contains("limit of 100 pages"), "{e}")
        }
        Err(other) => panic!("unexpected {other}"),
    }
}

#[test]
fn zero_size_page_is_refused() {
    let (result, pages) = run(
        &one_page_pdf("/MediaBox [0 0 0 0]", "1"),
        &RenderOptions::default(),
    );
    assert_eq!(result.unwrap(), 1);
    let message = refused_message(&pages);
    assert!(message.contains("no area"), "{message}");
}

#[test]
fn giant_pages_render_within_the_budget() {
    // 200 × 200 inches, and a UserUnit that multiplies it by 75 where honoured.
    let options = RenderOptions {
        budget: PixelBudget::new(2_000_000),
        ..Default::default()
    };
    let (result, pages) = run(
        &one_page_pdf("/MediaBox [0 0 14400 14400] /UserUnit 75", "1"),
        &options,
    );
    assert_eq!(result.unwrap(), 1);
    let page = pages.into_iter().next().unwrap().unwrap();
    let (w, h) = page.image.dimensions();
    assert!(w as u64 * h as u64 <= 2_000_000, "{w}x{h}");
    assert!(w > 1000 && (w as i64 - h as i64).abs() <= 1, "{w}x{h}");
    assert!(page.scale < 0.1);
}

#[test]
fn thin_poster_pages_are_refused() {
    let (result, pages) = run(
        &one_page_pdf("/MediaBox [0 0 72000 72]", "1"),
        &RenderOptions::default(),
    );
    assert_eq!(result.unwrap(), 1);
    assert!(refused_message(&pages).contains("aspect ratio"));
}

fn png_bytes(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image::RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]))
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

#[test]
fn image_bomb_is_refused_before_decoding() {
    // 1×1 PNG whose header claims 20000×20000 (CRC fixed up so only the size is
    // wrong): the refusal must come from the header.
    let mut bytes = png_bytes(1, 1);
    bytes[16..20].copy_from_slice(&20_000u32.to_be_bytes());
    bytes[20..24].copy_from_slice(&20_000u32.to_be_bytes());
    let crc = crc32fast::hash(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    let (result, pages) = run(&bytes, &RenderOptions::default());
    assert_eq!(result.unwrap(), 1);
    let message = refused_message(&pages);
    assert!(
        message.contains("20000x20000") && message.contains("decode limit"),
        "{message}"
    );
}

#[test]
fn corrupt_images_are_errors() {
    let mut jpeg = vec![0xff, 0xd8, 0xff, 0xe0];
    jpeg.extend(std::iter::repeat_n(0x5a, 300));
    let (result, _) = run(&jpeg, &RenderOptions::default());
    assert!(matches!(result, Err(RasterError::Corrupt(_))), "{result:?}");
    let png = png_bytes(64, 64);
    let (result, _) = run(&png[..png.len() - 20], &RenderOptions::default());
    assert!(matches!(result, Err(RasterError::Corrupt(_))), "{result:?}");
}

#[test]
fn multi_page_tiff_gives_every_page() {
    use tiff::encoder::{TiffEncoder, colortype};
    let mut bytes = Vec::new();
    {
        let mut enc = TiffEncoder::new(Cursor::new(&mut bytes)).unwrap();
        let gray: Vec<u8> = vec![200; 300 * 200];
        enc.write_image::<colortype::Gray8>(300, 200, &gray)
            .unwrap();
        let rgb: Vec<u8> = [10u8, 20, 30].repeat(120 * 90);
        enc.write_image::<colortype::RGB8>(120, 90, &rgb).unwrap();
        let big: Vec<u8> = vec![255; 1000 * 1000];
        enc.write_image::<colortype::Gray8>(1000, 1000, &big)
            .unwrap();
    }
    let options = RenderOptions {
        budget: PixelBudget::new(250_000),
        ..Default::default()
    };
    let (result, pages) = run(&bytes, &options);
    assert_eq!(result.unwrap(), 3);
    let pages: Vec<Page> = pages.into_iter().map(|p| p.unwrap()).collect();
    assert_eq!(
        pages
            .iter()
            .map(|p| (p.number, p.count))
            .collect::<Vec<_>>(),
        vec![(1, 3), (2, 3), (3, 3)]
    );
    assert_eq!(pages[0].image.dimensions(), (300, 200));
    assert_eq!(pages[0].image.get_pixel(0, 0).0, [200, 200, 200]);
    assert_eq!(pages[1].image.get_pixel(5, 5).0, [10, 20, 30]);
    // The third page is scaled into the budget.
    assert_eq!(pages[2].image.dimensions(), (500, 500));
}

#[test]
fn a_tiff_page_over_the_decode_limit_spares_the_others() {
    use tiff::encoder::{TiffEncoder, colortype};
    let mut bytes = Vec::new();
    {
        let mut enc = TiffEncoder::new(Cursor::new(&mut bytes)).unwrap();
        enc.write_image::<colortype::Gray8>(100, 100, &[0u8; 100 * 100])
            .unwrap();
        enc.write_image::<colortype::Gray8>(2000, 1000, &vec![0u8; 2000 * 1000])
            .unwrap();
    }
    let options = RenderOptions {
        max_decode_pixels: 1_000_000,
        ..Default::default()
    };
    let (result, pages) = run(&bytes, &options);
    assert_eq!(result.unwrap(), 2);
    assert!(pages[0].is_ok());
    match &pages[1] {
        Err(RasterError::PageRefused { page: 2, message }) => {
            assert!(message.contains("decode limit"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}
