//! One submission request for every way in: the HTTP API's JSON body, the
//! NATS service's request and, as form fields beside the document, an
//! upload; `pagefleet submit` builds the same.

use serde::{Deserialize, Serialize};

/// What a submission asks for besides the document's bytes. Every field is
/// optional: what it leaves out is the deployment's default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubmitRequest {
    /// `s3://bucket/key` of an object in the deployment's store (a request
    /// that uploads no document names one this way or by `key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The key of an object in the deployment's store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Resolution PDF pages are rendered at, and images that declare none
    /// are taken at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpi: Option<f32>,
    /// Model profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Outputs to write (`json` always is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formats: Option<Vec<String>>,
    /// What is done with PDF pages that carry text: `ocr`, `skip` or `use`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_layer: Option<String>,
    /// The document's language: `auto`, an ISO 639-1 or 639-3 code, or a
    /// comma-separated list ([`crate::language::Language`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Same key, same job: a repeated submission runs nothing new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

impl SubmitRequest {
    /// The request from the text fields of a multipart upload, `field`
    /// giving each one's value (`None` when absent or empty); `formats` is
    /// comma-separated there. Fails on a `dpi` that is not a number.
    pub fn from_form<'a>(field: impl Fn(&str) -> Option<&'a str>) -> Result<Self, String> {
        let owned = |name: &str| field(name).map(str::to_owned);
        let dpi = field("dpi")
            .map(|d| {
                d.parse::<f32>()
                    .map_err(|_| format!("dpi {d:?} is not a number"))
            })
            .transpose()?;
        Ok(Self {
            source: owned("source"),
            key: owned("key"),
            dpi,
            profile: owned("profile"),
            formats: field("formats").map(|f| f.split(',').map(|s| s.trim().to_owned()).collect()),
            text_layer: owned("text_layer"),
            language: owned("language"),
            idempotency_key: owned("idempotency_key"),
        })
    }

    /// The request as the text fields of a multipart upload, which
    /// [`SubmitRequest::from_form`] reads back.
    pub fn form_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = Vec::new();
        let mut add = |name, value: Option<String>| {
            if let Some(value) = value {
                fields.push((name, value));
            }
        };
        add("source", self.source.clone());
        add("key", self.key.clone());
        add("dpi", self.dpi.map(|d| d.to_string()));
        add("profile", self.profile.clone());
        add("formats", self.formats.as_ref().map(|f| f.join(",")));
        add("text_layer", self.text_layer.clone());
        add("language", self.language.clone());
        add("idempotency_key", self.idempotency_key.clone());
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_read_back_as_the_same_request() {
        let request = SubmitRequest {
            source: Some("s3://docs/a.pdf".into()),
            dpi: Some(150.0),
            formats: Some(vec!["txt".into(), "pdf".into()]),
            text_layer: Some("use".into()),
            language: Some("fr,de".into()),
            ..Default::default()
        };
        let fields = request.form_fields();
        let field = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(SubmitRequest::from_form(field), Ok(request));
        let bad = SubmitRequest::from_form(|name| (name == "dpi").then_some("high"));
        assert_eq!(bad, Err("dpi \"high\" is not a number".to_owned()));
    }

    #[test]
    fn json_leaves_out_what_is_not_asked() {
        let request = SubmitRequest {
            key: Some("inbox/a.pdf".into()),
            ..Default::default()
        };
        let json = serde_json::to_string(&request).unwrap_or_default();
        assert_eq!(json, r#"{"key":"inbox/a.pdf"}"#);
        let back: SubmitRequest = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, request);
    }
}
