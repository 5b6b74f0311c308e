//! The scripts a recognizer's output layer can be cut to, and which
//! characters each keeps.

use std::str::FromStr;

/// Which characters a recognizer's output layer keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Script {
    /// Every class of the model's dictionary.
    #[default]
    All,
    /// Latin letters (with Vietnamese and the IPA), Greek for formulas,
    /// digits, punctuation and the common symbols: what European-language
    /// documents are written in.
    Latin,
}

impl Script {
    /// The name used in profile names and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Latin => "latin",
        }
    }

    /// Whether `symbol` (one dictionary entry) is written in this script.
    pub fn keeps(self, symbol: &str) -> bool {
        match self {
            Self::All => true,
            Self::Latin => symbol.chars().all(latin),
        }
    }
}

impl FromStr for Script {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(Self::All),
            "latin" => Ok(Self::Latin),
            other => Err(format!("unknown script {other:?}; expected all or latin")),
        }
    }
}

/// Characters of Latin-script text. Full-width forms (U+FF00 block) and CJK
/// punctuation are left out on purpose: they are how a CJK dictionary spells
/// Latin letters, and the look-alikes they are in Latin text.
fn latin(c: char) -> bool {
    matches!(c as u32,
        0x20..=0x7E           // ASCII
        | 0xA0..=0x24F        // Latin-1, Latin Extended-A and -B
        | 0x250..=0x2FF       // IPA, spacing modifier letters
        | 0x370..=0x3FF       // Greek, for formulas and units
        | 0x1E00..=0x1EFF     // Latin Extended Additional (Vietnamese)
        | 0x2000..=0x2BFF     // punctuation, super- and subscripts, currency,
                              // letterlike, number forms, arrows, mathematics,
                              // technical, enclosed, box, geometric, symbols
        | 0xFB00..=0xFB06) // Latin ligatures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin_keeps_european_text_and_drops_cjk_and_full_width_forms() {
        for s in [
            "a", "Z", "ą", "ł", "ß", "é", "ư", "α", "Ω", "–", "„", "€", "±", "→", "ﬁ", "½",
        ] {
            assert!(Script::Latin.keeps(s), "{s}");
        }
        for s in ["中", "の", "한", "Ａ", "，", "。", "ж"] {
            assert!(!Script::Latin.keeps(s), "{s}");
            assert!(Script::All.keeps(s));
        }
        assert_eq!("latin".parse::<Script>(), Ok(Script::Latin));
        assert!("cyrillic".parse::<Script>().is_err());
    }
}
