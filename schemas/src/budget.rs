//! The pixel budget: the largest image any stage will hold for one page.
//!
//! pagefleet exists partly because an unbounded 3068×3835 upload took an inference
//! server down, so every page size is checked and scaled here before anything
//! allocates per-pixel memory for it.

use serde::{Deserialize, Serialize};

/// Default pixel budget per page image: about an A4 page at 300 DPI (2480×3508 is
/// 8.7 MP) is scaled slightly; a 200 DPI page (1700×2200) fits untouched.
pub const DEFAULT_MAX_PIXELS: u64 = 8_000_000;

/// Longest side over shortest side beyond which an image is refused: no real page
/// is that thin, and such inputs only exist to make one side huge.
pub const DEFAULT_MAX_ASPECT_RATIO: f64 = 200.0;

/// Why a page size is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BudgetError {
    /// One side is zero (or the size is not a finite positive number).
    #[error("page has no area: {width}x{height}")]
    Empty {
        /// Width as given.
        width: f64,
        /// Height as given.
        height: f64,
    },
    /// The page is thinner than the budget allows.
    #[error(
        "aspect ratio {ratio:.0}:1 of a {width:.0}x{height:.0} page exceeds the limit of {limit:.0}:1"
    )]
    AspectRatio {
        /// Width as given.
        width: f64,
        /// Height as given.
        height: f64,
        /// Longest over shortest side.
        ratio: f64,
        /// The configured limit.
        limit: f64,
    },
}

/// The size an image will have once it fits the budget, and the factor applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaledSize {
    /// Width in pixels, at least 1.
    pub width: u32,
    /// Height in pixels, at least 1.
    pub height: u32,
    /// Factor from the requested size to this one (1.0 when it already fit).
    pub scale: f64,
}

/// Limits on the size of one page image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PixelBudget {
    /// Most pixels (width × height) a page image may have.
    pub max_pixels: u64,
    /// Longest over shortest side beyond which a page is refused.
    pub max_aspect_ratio: f64,
}

impl Default for PixelBudget {
    fn default() -> Self {
        Self {
            max_pixels: DEFAULT_MAX_PIXELS,
            max_aspect_ratio: DEFAULT_MAX_ASPECT_RATIO,
        }
    }
}

impl PixelBudget {
    /// A budget of `max_pixels` with the default aspect-ratio limit.
    pub fn new(max_pixels: u64) -> Self {
        Self {
            max_pixels: max_pixels.max(1),
            ..Self::default()
        }
    }

    /// Fits a requested size (possibly fractional, as for a PDF page at some DPI)
    /// into the budget, keeping the aspect ratio. Never scales up.
    pub fn fit(&self, width: f64, height: f64) -> Result<ScaledSize, BudgetError> {
        if !(width.is_finite() && height.is_finite()) || width < 1.0 || height < 1.0 {
            return Err(BudgetError::Empty { width, height });
        }
        let ratio = width.max(height) / width.min(height);
        if ratio > self.max_aspect_ratio {
            return Err(BudgetError::AspectRatio {
                width,
                height,
                ratio,
                limit: self.max_aspect_ratio,
            });
        }
        let max_pixels = self.max_pixels.max(1) as f64;
        let mut scale = (max_pixels / (width * height)).sqrt().min(1.0);
        // Rounding can overshoot the budget by a row or column: shrink until it holds.
        loop {
            let w = ((width * scale).floor() as u32).max(1);
            let h = ((height * scale).floor() as u32).max(1);
            if (w as u64) * (h as u64) <= self.max_pixels.max(1) || scale <= 0.0 {
                return Ok(ScaledSize {
                    width: w,
                    height: h,
                    scale,
                });
            }
            scale *= 0.999;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_page_is_untouched() {
        let s = PixelBudget::default().fit(1700.0, 2200.0).unwrap();
        assert_eq!((s.width, s.height, s.scale), (1700, 2200, 1.0));
    }

    #[test]
    fn large_upload_is_scaled_within_budget_keeping_aspect() {
        // The upload that took down the cluster pagefleet replaces.
        let s = PixelBudget::default().fit(3068.0, 3835.0).unwrap();
        assert!((s.width as u64) * (s.height as u64) <= DEFAULT_MAX_PIXELS);
        assert!(s.scale < 1.0);
        let before = 3068.0 / 3835.0;
        let after = s.width as f64 / s.height as f64;
        assert!((before - after).abs() < 0.002, "{before} vs {after}");
        // It uses the budget, not a fraction of it.
        assert!((s.width as u64) * (s.height as u64) > DEFAULT_MAX_PIXELS * 99 / 100);
    }

    #[test]
    fn every_size_holds_the_budget() {
        let budget = PixelBudget::new(1_000_003);
        for (w, h) in [
            (1.0, 199.0),
            (99_999.0, 1000.0),
            (12345.6, 7890.1),
            (1001.0, 999.0),
            (5e6, 5e4),
        ] {
            let s = budget.fit(w, h).unwrap();
            assert!(
                (s.width as u64) * (s.height as u64) <= 1_000_003,
                "{w}x{h} -> {s:?}"
            );
            assert!(s.width >= 1 && s.height >= 1);
        }
    }

    #[test]
    fn thin_and_empty_pages_are_refused() {
        let b = PixelBudget::default();
        assert!(matches!(
            b.fit(20_100.0, 100.0),
            Err(BudgetError::AspectRatio { .. })
        ));
        assert!(b.fit(20_000.0, 100.0).is_ok());
        assert!(matches!(b.fit(0.0, 100.0), Err(BudgetError::Empty { .. })));
        assert!(matches!(
            b.fit(f64::NAN, 100.0),
            Err(BudgetError::Empty { .. })
        ));
        assert!(matches!(
            b.fit(f64::INFINITY, 100.0),
            Err(BudgetError::Empty { .. })
        ));
        let msg = b.fit(30_000.0, 10.0).unwrap_err().to_string();
        assert!(msg.contains("3000:1") && msg.contains("200:1"), "{msg}");
    }
}
