//! What the tests comparing two analyses' verdicts share: the real Grype
//! report of the official nginx image, JSON reading that names the file,
//! and an OpenVEX document's statements as a comparable set.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use serde_json::Value;

/// The real Grype report of the official nginx image in `../shared/testdata`.
pub(crate) fn nginx_grype() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/scanner-reports/dimpact_nginx-latest_2025-06-08_grype.json")
}

/// A JSON file, panicking with its name.
pub(crate) fn read(path: &Path) -> Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every statement of an OpenVEX document as (vulnerability, product with
/// its subcomponents, status, justification).
pub(crate) fn statements(doc: &Value) -> BTreeSet<(String, String, String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut out = BTreeSet::new();
    for s in doc["statements"].as_array().expect("statements") {
        for p in s["products"].as_array().expect("products") {
            let subcomponents: BTreeSet<String> = p["subcomponents"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| text(&c["@id"]))
                .collect();
            let product = format!(
                "{} [{}]",
                text(&p["@id"]),
                subcomponents.into_iter().collect::<Vec<_>>().join(", ")
            );
            out.insert((
                text(&s["vulnerability"]["name"]),
                product,
                text(&s["status"]),
                text(&s["justification"]),
            ));
        }
    }
    out
}
