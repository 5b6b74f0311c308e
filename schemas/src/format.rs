//! The outputs a finished job can have, named once: every way in checks a
//! request against [`Format`], the aggregator and `pagefleet ocr` write by
//! it, and the object keys, file names and content types follow from it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One output of a finished job. On the wire and in requests it is its
/// lowercase name (`txt`, `md`, `json`, `pdf`, `hocr`, `alto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Plain text, a form feed after each page.
    Txt,
    /// Markdown: headings, paragraphs, lists, tables, page separators.
    Md,
    /// JSON with the job's metrics and every page's lines, words and boxes;
    /// always written, since the job's metrics are read from it.
    Json,
    /// Searchable PDF: the pages as they were, with the text invisible on
    /// them.
    Pdf,
    /// hOCR 1.2 (XHTML): pages, blocks, lines and words with boxes.
    Hocr,
    /// ALTO 4 XML: the same structure.
    Alto,
}

impl Format {
    /// Every format, in the order outputs are written and listed.
    pub const ALL: [Format; 6] = [
        Format::Txt,
        Format::Md,
        Format::Json,
        Format::Pdf,
        Format::Hocr,
        Format::Alto,
    ];

    /// The formats of a job that names none.
    pub const DEFAULT: [Format; 3] = [Format::Txt, Format::Md, Format::Json];

    /// Its name in requests, messages and flags.
    pub fn name(self) -> &'static str {
        match self {
            Self::Txt => "txt",
            Self::Md => "md",
            Self::Json => "json",
            Self::Pdf => "pdf",
            Self::Hocr => "hocr",
            Self::Alto => "alto",
        }
    }

    /// Its file extension: the name, but `alto.xml` for ALTO, which is XML
    /// that tools look for by that name.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Alto => "alto.xml",
            other => other.name(),
        }
    }

    /// Its HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Txt => "text/plain; charset=utf-8",
            Self::Md => "text/markdown; charset=utf-8",
            Self::Json => "application/json",
            Self::Pdf => "application/pdf",
            Self::Hocr => "text/html; charset=utf-8",
            Self::Alto => "application/xml; charset=utf-8",
        }
    }

    /// The formats a job asked for (`requested`; none: the default ones),
    /// in [`Format::ALL`]'s order.
    pub fn asked(requested: &[Format]) -> Vec<Format> {
        let asked: &[Format] = if requested.is_empty() {
            &Self::DEFAULT
        } else {
            requested
        };
        Self::ALL
            .into_iter()
            .filter(|f| asked.contains(f))
            .collect()
    }

    /// The formats written for a job: those it asked for, and JSON always.
    pub fn written(requested: &[Format]) -> Vec<Format> {
        let asked = Self::asked(requested);
        Self::ALL
            .into_iter()
            .filter(|f| *f == Self::Json || asked.contains(f))
            .collect()
    }

    /// The names of every format, comma-separated, for messages.
    pub fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("format {0:?} is unknown: {formats}", formats = Format::names())]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFormat(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_gets_the_formats_it_asked_for_and_json() {
        use Format::*;
        assert_eq!(Format::written(&[]), [Txt, Md, Json]);
        assert_eq!(Format::asked(&[Alto, Txt]), [Txt, Alto]);
        assert_eq!(Format::written(&[Alto, Txt]), [Txt, Json, Alto]);
        assert_eq!(Alto.extension(), "alto.xml");
    }

    #[test]
    fn names_parse_back_and_others_are_refused_with_the_list() {
        for format in Format::ALL {
            assert_eq!(format.name().parse::<Format>(), Ok(format));
            assert_eq!(
                serde_json::to_string(&format).unwrap_or_default(),
                format!("\"{format}\"")
            );
        }
        let e = "docx".parse::<Format>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "format \"docx\" is unknown: txt, md, json, pdf, hocr, alto"
        );
    }
}
