//! PDFs built by hand for tests: objects in order, with a correct
//! cross-reference table. Shared with the rasterizer's hostile-document
//! tests (`rasterizer/tests/hostile.rs` includes this file).

use std::io::Write;

/// A PDF with the given objects (numbered from 1, object 1 the catalog) and a
/// correct cross-reference table.
#[allow(unreachable_pub, clippy::unwrap_used)] // public to the test crates that include it
pub fn pdf(objects: &[String]) -> Vec<u8> {
    let mut out = b"%PDF-1.7\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        write!(out, "{} 0 obj\n{body}\nendobj\n", i + 1).unwrap();
    }
    let xref = out.len();
    write!(out, "xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).unwrap();
    for off in offsets {
        writeln!(out, "{off:010} 00000 n ").unwrap();
    }
    write!(
        out,
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    )
    .unwrap();
    out
}
