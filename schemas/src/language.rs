//! The languages a job may name, and which of them the installed models read.
//!
//! A job's `language` is `auto` (the default: each page is looked at), one
//! code or a list (`en,de`), in ISO 639-1 or ISO 639-3 (bibliographic codes
//! too: `ger`, `fre`), with or without a region (`en-GB`, `pt_BR`); Tesseract's
//! `chi_sim` and `chi_tra` are Chinese. What reads a page follows from it: a
//! list of Latin-script languages is read with the recognizer's output cut to
//! Latin script, a list naming Chinese or Japanese with its whole output.
//!
//! Which languages are read comes from the PP-OCRv6 dictionaries the
//! bootstrap installs: every letter of each language below is a class of
//! both the tiny (`fast`) and the small (`accurate`) model, except where an
//! entry says that only the small one has them (Japanese kana; Romanian's
//! ș and ț, which the tiny one has only as ş and ţ; Azerbaijani's ə).
//! Languages of other scripts are refused in words: the models have no
//! Cyrillic, Arabic, Hebrew, Indic, Thai, Hangul or Georgian letters, and
//! Greek letters only without their accents (formulas, not Greek text).

use std::fmt;

/// The language of a message written before jobs named one: `auto`.
pub fn auto() -> String {
    "auto".to_owned()
}

/// What reads the pages of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Each page is looked at: a sample of its lines read with the whole
    /// output decides between the two below.
    Auto,
    /// The recognizer's output cut to Latin script.
    Latin,
    /// The recognizer's whole output (Chinese, Japanese and Latin).
    All,
}

/// A language's script, as far as reading it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    Latin,
    Han,
    /// Not read by the installed models; the words say why.
    Unread(&'static str),
}

/// One language: its codes (ISO 639-1 first where it has one, then ISO
/// 639-3 and bibliographic codes), its English name, its script, and
/// whether only the `accurate` profile's dictionary has all its letters.
struct Entry {
    codes: &'static [&'static str],
    name: &'static str,
    script: Script,
    accurate_only: bool,
}

const fn latin(codes: &'static [&'static str], name: &'static str) -> Entry {
    Entry {
        codes,
        name,
        script: Script::Latin,
        accurate_only: false,
    }
}

const fn unread(codes: &'static [&'static str], name: &'static str, why: &'static str) -> Entry {
    Entry {
        codes,
        name,
        script: Script::Unread(why),
        accurate_only: false,
    }
}

const CYRILLIC: &str = "Cyrillic script";
const ARABIC: &str = "Arabic script";
const HEBREW: &str = "Hebrew script";
const INDIC: &str = "an Indic script";

/// Every language pagefleet knows a code of.
const LANGUAGES: &[Entry] = &[
    latin(&["en", "eng"], "English"),
    latin(&["fr", "fra", "fre"], "French"),
    latin(&["de", "deu", "ger"], "German"),
    latin(&["es", "spa"], "Spanish"),
    latin(&["pt", "por"], "Portuguese"),
    latin(&["it", "ita"], "Italian"),
    latin(&["nl", "nld", "dut"], "Dutch"),
    latin(&["pl", "pol"], "Polish"),
    latin(&["cs", "ces", "cze"], "Czech"),
    latin(&["sk", "slk", "slo"], "Slovak"),
    latin(&["sl", "slv"], "Slovenian"),
    latin(&["hr", "hrv"], "Croatian"),
    latin(&["bs", "bos"], "Bosnian"),
    latin(&["hu", "hun"], "Hungarian"),
    Entry {
        codes: &["ro", "ron", "rum"],
        name: "Romanian",
        script: Script::Latin,
        accurate_only: true,
    },
    latin(&["sv", "swe"], "Swedish"),
    latin(&["da", "dan"], "Danish"),
    latin(&["no", "nor", "nb", "nob", "nn", "nno"], "Norwegian"),
    latin(&["fi", "fin"], "Finnish"),
    latin(&["is", "isl", "ice"], "Icelandic"),
    latin(&["fo", "fao"], "Faroese"),
    latin(&["et", "est"], "Estonian"),
    latin(&["lv", "lav"], "Latvian"),
    latin(&["lt", "lit"], "Lithuanian"),
    latin(&["tr", "tur"], "Turkish"),
    Entry {
        codes: &["az", "aze"],
        name: "Azerbaijani",
        script: Script::Latin,
        accurate_only: true,
    },
    latin(&["ca", "cat"], "Catalan"),
    latin(&["gl", "glg"], "Galician"),
    latin(&["eu", "eus", "baq"], "Basque"),
    latin(&["oc", "oci"], "Occitan"),
    latin(&["ga", "gle"], "Irish"),
    latin(&["cy", "cym", "wel"], "Welsh"),
    latin(&["br", "bre"], "Breton"),
    latin(&["lb", "ltz"], "Luxembourgish"),
    latin(&["mt", "mlt"], "Maltese"),
    latin(&["sq", "sqi", "alb"], "Albanian"),
    latin(&["eo", "epo"], "Esperanto"),
    latin(&["la", "lat"], "Latin"),
    latin(&["af", "afr"], "Afrikaans"),
    latin(&["id", "ind"], "Indonesian"),
    latin(&["ms", "msa", "may"], "Malay"),
    latin(&["tl", "tgl"], "Tagalog"),
    latin(&["sw", "swa"], "Swahili"),
    Entry {
        codes: &["zh", "zho", "chi", "chi_sim", "chi_tra"],
        name: "Chinese",
        script: Script::Han,
        accurate_only: false,
    },
    Entry {
        codes: &["ja", "jpn"],
        name: "Japanese",
        script: Script::Han,
        accurate_only: true,
    },
    unread(&["ru", "rus"], "Russian", CYRILLIC),
    unread(&["uk", "ukr"], "Ukrainian", CYRILLIC),
    unread(&["be", "bel"], "Belarusian", CYRILLIC),
    unread(&["bg", "bul"], "Bulgarian", CYRILLIC),
    unread(&["mk", "mkd", "mac"], "Macedonian", CYRILLIC),
    unread(&["sr", "srp"], "Serbian", CYRILLIC),
    unread(&["kk", "kaz"], "Kazakh", CYRILLIC),
    unread(&["mn", "mon"], "Mongolian", CYRILLIC),
    unread(&["el", "ell", "gre"], "Greek", "accented Greek letters"),
    unread(&["ar", "ara"], "Arabic", ARABIC),
    unread(&["fa", "fas", "per"], "Persian", ARABIC),
    unread(&["ur", "urd"], "Urdu", ARABIC),
    unread(&["he", "heb"], "Hebrew", HEBREW),
    unread(&["yi", "yid"], "Yiddish", HEBREW),
    unread(&["hi", "hin"], "Hindi", INDIC),
    unread(&["mr", "mar"], "Marathi", INDIC),
    unread(&["ne", "nep"], "Nepali", INDIC),
    unread(&["bn", "ben"], "Bengali", INDIC),
    unread(&["pa", "pan"], "Punjabi", INDIC),
    unread(&["gu", "guj"], "Gujarati", INDIC),
    unread(&["ta", "tam"], "Tamil", INDIC),
    unread(&["te", "tel"], "Telugu", INDIC),
    unread(&["kn", "kan"], "Kannada", INDIC),
    unread(&["ml", "mal"], "Malayalam", INDIC),
    unread(&["si", "sin"], "Sinhala", "Sinhala script"),
    unread(&["th", "tha"], "Thai", "Thai script"),
    unread(&["lo", "lao"], "Lao", "Lao script"),
    unread(&["km", "khm"], "Khmer", "Khmer script"),
    unread(&["my", "mya", "bur"], "Burmese", "Myanmar script"),
    unread(&["ko", "kor"], "Korean", "Hangul"),
    unread(&["ka", "kat", "geo"], "Georgian", "Georgian script"),
    unread(&["hy", "hye", "arm"], "Armenian", "Armenian script"),
    unread(&["am", "amh"], "Amharic", "Ethiopic script"),
    unread(&["vi", "vie"], "Vietnamese", "most Vietnamese letters"),
];

/// A job's language: `auto`, or the languages it names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Language {
    /// Indices into [`LANGUAGES`], in the order named, without repeats;
    /// empty for `auto`.
    named: Vec<usize>,
}

/// Why a language was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LanguageError {
    /// Not a code pagefleet knows.
    #[error(
        "unknown language {0:?}: expected auto, or ISO 639-1 or 639-3 codes (a list like en,de) of the languages the models read: {list}",
        list = readable_list()
    )]
    Unknown(String),
    /// A language of a script the models have no letters of.
    #[error(
        "{name} ({code}) cannot be read: the installed models (PP-OCRv6) have no {why}; they read Chinese, Japanese and Latin-script languages"
    )]
    Unread {
        /// The code as given.
        code: String,
        /// The language's English name.
        name: &'static str,
        /// What the models lack to read it.
        why: &'static str,
    },
}

impl Language {
    /// Each page decides.
    pub const AUTO: Language = Language { named: Vec::new() };

    /// Parses `auto`, one code or a comma-separated list; blank is `auto`.
    pub fn parse(text: &str) -> Result<Self, LanguageError> {
        let mut named = Vec::new();
        for part in text.split([',', '+', ' ']).filter(|p| !p.trim().is_empty()) {
            let part = part.trim();
            if part.eq_ignore_ascii_case("auto") {
                continue;
            }
            let index = lookup(part).ok_or_else(|| LanguageError::Unknown(part.to_owned()))?;
            let entry = &LANGUAGES[index];
            if let Script::Unread(why) = entry.script {
                return Err(LanguageError::Unread {
                    code: part.to_owned(),
                    name: entry.name,
                    why,
                });
            }
            if !named.contains(&index) {
                named.push(index);
            }
        }
        Ok(Self { named })
    }

    /// Whether each page decides.
    pub fn is_auto(&self) -> bool {
        self.named.is_empty()
    }

    /// What reads the job's pages.
    pub fn reading(&self) -> Reading {
        if self.is_auto() {
            Reading::Auto
        } else if self.entries().any(|e| matches!(e.script, Script::Han)) {
            Reading::All
        } else {
            Reading::Latin
        }
    }

    /// The first named language whose letters only the `accurate` profile's
    /// dictionary has, with its name.
    pub fn needs_accurate(&self) -> Option<&'static str> {
        self.entries().find(|e| e.accurate_only).map(|e| e.name)
    }

    /// Refuses a language whose letters the profile's dictionary lacks:
    /// those only `accurate`'s has, for `fast` (and its `-latin` form).
    pub fn check_profile(&self, profile: &str) -> Result<(), String> {
        match self.needs_accurate() {
            Some(name) if matches!(profile, "fast" | "fast-latin") => Err(format!(
                "{name} is read by the accurate profile only: the {profile} profile's dictionary lacks some of its letters"
            )),
            _ => Ok(()),
        }
    }

    fn entries(&self) -> impl Iterator<Item = &'static Entry> + '_ {
        self.named.iter().map(|&i| &LANGUAGES[i])
    }
}

impl fmt::Display for Language {
    /// `auto`, or the ISO 639-1 codes (639-3 where a language has no 639-1
    /// code) joined by commas: what the job records.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_auto() {
            return f.write_str("auto");
        }
        let codes: Vec<&str> = self.entries().map(|e| e.codes[0]).collect();
        f.write_str(&codes.join(","))
    }
}

impl std::str::FromStr for Language {
    type Err = LanguageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The language a code names: exact codes, then the code before a region
/// (`en-GB`, `pt_BR`, `zh-Hans`), case aside.
fn lookup(code: &str) -> Option<usize> {
    let code = code.to_ascii_lowercase();
    let find = |c: &str| LANGUAGES.iter().position(|e| e.codes.contains(&c));
    find(&code).or_else(|| find(code.split(['-', '_']).next()?))
}

/// A language the installed models read, as `/v1/options` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Readable {
    /// Its ISO 639-1 code (639-3 where it has none).
    pub code: &'static str,
    /// Its English name.
    pub name: &'static str,
    /// `latin` or `han`: what its pages are read with.
    pub script: &'static str,
    /// The profiles whose dictionaries have all its letters.
    pub profiles: &'static [&'static str],
}

/// Every language the installed models read.
pub fn readable() -> Vec<Readable> {
    LANGUAGES
        .iter()
        .filter_map(|e| {
            let script = match e.script {
                Script::Latin => "latin",
                Script::Han => "han",
                Script::Unread(_) => return None,
            };
            Some(Readable {
                code: e.codes[0],
                name: e.name,
                script,
                profiles: if e.accurate_only {
                    &["accurate"]
                } else {
                    &["fast", "accurate"]
                },
            })
        })
        .collect()
}

fn readable_list() -> String {
    let codes: Vec<&str> = readable().iter().map(|r| r.code).collect();
    codes.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_of_either_standard_and_regions_name_one_language() {
        for (text, shown) in [
            ("en", "en"),
            ("eng", "en"),
            ("EN-gb", "en"),
            ("ger", "de"),
            ("pt_BR", "pt"),
            ("chi_sim", "zh"),
            ("zh-Hans", "zh"),
            ("fr,de", "fr,de"),
            ("fra+deu", "fr,de"),
            ("en, en", "en"),
            ("auto", "auto"),
            ("", "auto"),
        ] {
            assert_eq!(Language::parse(text).unwrap().to_string(), shown, "{text}");
        }
    }

    #[test]
    fn the_language_decides_the_head() {
        let reading = |s: &str| Language::parse(s).unwrap().reading();
        assert_eq!(reading("auto"), Reading::Auto);
        assert_eq!(reading("fr,pl,nl"), Reading::Latin);
        assert_eq!(reading("zh"), Reading::All);
        assert_eq!(reading("en,ja"), Reading::All);
        assert_eq!(
            Language::parse("ja").unwrap().needs_accurate(),
            Some("Japanese")
        );
        assert_eq!(Language::parse("de,zh").unwrap().needs_accurate(), None);
        let japanese = Language::parse("ja").unwrap();
        assert!(japanese.check_profile("accurate").is_ok());
        let refused = japanese.check_profile("fast").unwrap_err();
        assert!(
            refused.contains("Japanese is read by the accurate profile only"),
            "{refused}"
        );
    }

    #[test]
    fn languages_the_models_cannot_read_are_refused_in_words() {
        let e = Language::parse("en,ru").unwrap_err();
        assert!(matches!(
            e,
            LanguageError::Unread {
                name: "Russian",
                ..
            }
        ));
        let said = e.to_string();
        assert!(said.contains("Russian (ru) cannot be read"), "{said}");
        assert!(said.contains("Cyrillic"), "{said}");
        for code in ["ar", "ko", "el", "hi", "he", "th", "vi"] {
            assert!(
                matches!(Language::parse(code), Err(LanguageError::Unread { .. })),
                "{code}"
            );
        }
        let unknown = Language::parse("xx").unwrap_err().to_string();
        assert!(unknown.contains("unknown language \"xx\""), "{unknown}");
        assert!(unknown.contains("en, fr, de"), "{unknown}");
    }

    /// Letters of each language beyond ASCII (both cases where they have
    /// them), and a sample of the letters of languages of other scripts.
    const LETTERS: &[(&str, &str)] = &[
        ("en", ""),
        ("fr", "àâæçéèêëîïôœùûüÿÀÂÆÇÉÈÊËÎÏÔŒÙÛÜŸ"),
        ("de", "äöüßÄÖÜ"),
        ("es", "áéíñóúü¿ÁÉÍÑÓÚÜ"),
        ("pt", "ãâáàçéêíóôõúÃÂÁÀÇÉÊÍÓÔÕÚ"),
        ("it", "àèéìíîòóùúÀÈÉÌÍÎÒÓÙÚ"),
        ("nl", "éëïóöüĳ"),
        ("pl", "ąćęłńóśźżĄĆĘŁŃÓŚŹŻ"),
        ("cs", "áčďéěíňóřšťúůýžÁČĎÉĚÍŇÓŘŠŤÚŮÝŽ"),
        ("sk", "áäčďéíĺľňóôŕšťúýžÁÄČĎÉÍĹĽŇÓÔŔŠŤÚÝŽ"),
        ("sl", "čšžČŠŽ"),
        ("hr", "čćđšžČĆĐŠŽ"),
        ("bs", "čćđšžČĆĐŠŽ"),
        ("hu", "áéíóöőúüűÁÉÍÓÖŐÚÜŰ"),
        ("ro", "ăâîșțĂÂÎȘȚ"),
        ("sv", "åäöÅÄÖ"),
        ("da", "æøåÆØÅ"),
        ("no", "æøåÆØÅ"),
        ("fi", "äöåÄÖÅ"),
        ("is", "áðéíóúýþæöÁÐÉÍÓÚÝÞÆÖ"),
        ("fo", "áðíóúýæøÁÐÍÓÚÝÆØ"),
        ("et", "äöõüšžÄÖÕÜŠŽ"),
        ("lv", "āčēģīķļņšūžĀČĒĢĪĶĻŅŠŪŽ"),
        ("lt", "ąčęėįšųūžĄČĘĖĮŠŲŪŽ"),
        ("tr", "çğıöşüÇĞİÖŞÜ"),
        ("az", "çəğıöşüÇƏĞİÖŞÜ"),
        ("ca", "àçèéíïòóúü·ÀÇÈÉÍÏÒÓÚÜ"),
        ("gl", "áéíóúñüÁÉÍÓÚÑÜ"),
        ("eu", "ñÑ"),
        ("oc", "àáèéíòóúçïÀÁÈÉÍÒÓÚÇÏ"),
        ("ga", "áéíóúÁÉÍÓÚ"),
        ("cy", "âêîôûŵŷÂÊÎÔÛŴŶ"),
        ("br", "âêñùÂÊÑÙ"),
        ("lb", "äëéÄËÉ"),
        ("mt", "ċġħżĊĠĦŻ"),
        ("sq", "ëçËÇ"),
        ("eo", "ĉĝĥĵŝŭĈĜĤĴŜŬ"),
        ("la", ""),
        ("af", "êëïôûÊËÏÔÛ"),
        ("id", ""),
        ("ms", ""),
        ("tl", "ñÑ"),
        ("sw", ""),
        ("zh", "的一是不了人我在有他这为"),
        ("ja", "あいうえおかきくけこアイウエオ"),
        ("ru", "бгджзийлпфцчшщъыьэюя"),
        ("el", "άέήίόύώ"),
        ("ko", "가나다한국어"),
        ("vi", "ơưảạấầẩẫậ"),
    ];

    /// The symbols of an installed dictionary, when the bootstrap has run.
    fn dictionary(file: &str) -> Option<std::collections::HashSet<char>> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../.pagefleet/models/ppocrv6")
            .join(file);
        let text = std::fs::read_to_string(path).ok()?;
        Some(text.lines().flat_map(str::chars).collect())
    }

    /// The list of languages is the models' dictionaries' letters: each
    /// language read by a profile has every letter in that profile's
    /// dictionary; each refused one, or one left to `accurate`, misses some.
    #[test]
    fn the_languages_read_are_the_letters_the_dictionaries_hold() {
        let (Some(tiny), Some(small)) = (
            dictionary("ppocrv6_tiny_dict.txt"),
            dictionary("ppocrv6_dict.txt"),
        ) else {
            panic!("no PP-OCRv6 dictionaries: run scripts/bootstrap");
        };
        let holds = |dict: &std::collections::HashSet<char>, letters: &str| {
            letters.chars().all(|c| dict.contains(&c))
        };
        for entry in LANGUAGES {
            let code = entry.codes[0];
            let Some((_, letters)) = LETTERS.iter().find(|(c, _)| *c == code) else {
                continue;
            };
            match entry.script {
                Script::Unread(_) => assert!(
                    !holds(&small, letters) && !holds(&tiny, letters),
                    "{code} is refused but the dictionaries have its letters"
                ),
                _ => {
                    assert!(holds(&small, letters), "{code}: not every letter in small");
                    assert_eq!(
                        holds(&tiny, letters),
                        !entry.accurate_only,
                        "{code}: tiny's letters and accurate_only disagree"
                    );
                }
            }
        }
        for r in readable() {
            assert!(
                LETTERS.iter().any(|(c, _)| *c == r.code),
                "{} has no letters to check",
                r.code
            );
        }
    }

    /// README's Languages section names every language read, in the
    /// profiles that read it, and no other.
    #[test]
    fn readme_lists_the_languages_read() {
        let readme = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"),
        )
        .unwrap_or_default();
        let section = readme
            .split("\n## Languages\n")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .unwrap_or_default();
        let listed = section
            .split("The languages read")
            .nth(1)
            .unwrap_or_default();
        let (read, refused) = listed.split_once("Refused, in words").unwrap_or_default();
        for r in readable() {
            assert!(read.contains(r.name), "README does not list {}", r.name);
            let accurate_only = read
                .lines()
                .skip_while(|l| !l.contains("`accurate` only"))
                .take_while(|l| !l.starts_with("- Chinese"))
                .any(|l| {
                    [",", " (", "."]
                        .iter()
                        .any(|end| l.contains(&format!("{}{end}", r.name)))
                });
            if r.name != "Japanese" {
                assert_eq!(
                    accurate_only,
                    r.profiles == ["accurate"],
                    "README and the table disagree on {}'s profiles",
                    r.name
                );
            }
        }
        for e in LANGUAGES
            .iter()
            .filter(|e| matches!(e.script, Script::Unread(_)))
        {
            assert!(!read.contains(e.name), "README lists {} as read", e.name);
        }
        assert!(refused.contains("Cyrillic"), "{refused}");
    }

    #[test]
    fn the_readable_list_has_no_refused_language() {
        let list = readable();
        assert!(list.iter().any(|r| r.code == "zh" && r.script == "han"));
        assert!(
            list.iter()
                .any(|r| r.code == "ja" && r.profiles == ["accurate"])
        );
        assert!(!list.iter().any(|r| r.code == "ru"));
        for r in &list {
            assert!(Language::parse(r.code).is_ok(), "{}", r.code);
        }
    }
}
