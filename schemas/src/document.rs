//! The documents pagefleet reads, recognised by their content: every way in
//! refuses what is not one of them, the rasterizer decides how to render by
//! it, and the aggregator how to write a searchable PDF.

/// The resolution PDF pages are rendered at unless a job says otherwise, and
/// the size an image that declares none is taken to have.
pub const DEFAULT_DPI: f32 = 200.0;

/// Document types pagefleet reads, as recognised from their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// Portable Document Format.
    Pdf,
    /// PNG image.
    Png,
    /// JPEG image.
    Jpeg,
    /// TIFF image, possibly with several pages.
    Tiff,
}

/// Recognises a document by its magic bytes, never by its name.
pub fn sniff(bytes: &[u8]) -> Option<DocumentKind> {
    // PDF readers accept the header anywhere in the first 1024 bytes.
    let head = &bytes[..bytes.len().min(1024)];
    if head.windows(5).any(|w| w == b"%PDF-") {
        return Some(DocumentKind::Pdf);
    }
    match bytes {
        [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, ..] => Some(DocumentKind::Png),
        [0xff, 0xd8, 0xff, ..] => Some(DocumentKind::Jpeg),
        [b'I', b'I', 42, 0, ..] | [b'M', b'M', 0, 42, ..] => Some(DocumentKind::Tiff),
        _ => None,
    }
}
