//! Format detection for [`read_vex`].

use std::path::Path;

use serde_json::Value;
use vexxy_model::VexDocument;

use crate::{common::from_value, csaf::RawCsaf, cyclonedx::RawBom, openvex::RawDocument, VexError};

/// The VEX formats [`read_vex`] recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VexFormat {
    /// OpenVEX, any 0.x context.
    OpenVex,
    /// CycloneDX 1.4–1.6 with `vulnerabilities[].analysis`.
    CycloneDx,
    /// CSAF 2.0 (`csaf_vex` profile).
    Csaf,
}

/// Which format a parsed JSON value is in, if any.
pub fn detect_format(value: &Value) -> Option<VexFormat> {
    if value
        .get("@context")
        .and_then(Value::as_str)
        .is_some_and(|c| c.starts_with("https://openvex.dev/ns"))
    {
        Some(VexFormat::OpenVex)
    } else if value.get("bomFormat").and_then(Value::as_str) == Some("CycloneDX") {
        Some(VexFormat::CycloneDx)
    } else if value
        .get("document")
        .and_then(|d| d.get("csaf_version"))
        .is_some()
    {
        Some(VexFormat::Csaf)
    } else {
        None
    }
}

/// Reads a VEX document in any supported format (auto-detected).
///
/// Statements get `Decider::Human { author }` when the document names no
/// generating tool (OpenVEX `tooling`, CycloneDX `metadata.tools`, CSAF
/// `document.tracking.generator`) and `Decider::Imported { author }`
/// otherwise; their confidence is 1.0 unless an embedded `vexxy_evidence`
/// says otherwise. Errors name `origin` and the JSON Pointer of the value.
pub fn read_vex(bytes: &[u8], origin: &Path) -> Result<VexDocument, VexError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|source| VexError::Json {
        file: origin.to_path_buf(),
        source,
    })?;
    match detect_format(&value) {
        Some(VexFormat::OpenVex) => {
            VexDocument::try_from(from_value::<RawDocument>(value, origin)?)
                .map_err(|e| e.in_file(origin))
        }
        Some(VexFormat::CycloneDx) => VexDocument::try_from(from_value::<RawBom>(value, origin)?)
            .map_err(|e| e.in_file(origin)),
        Some(VexFormat::Csaf) => VexDocument::try_from(from_value::<RawCsaf>(value, origin)?)
            .map_err(|e| e.in_file(origin)),
        None => Err(VexError::UnknownFormat {
            file: origin.to_path_buf(),
        }),
    }
}
