use time::OffsetDateTime;

use crate::{Product, Purl, Verdict};

/// One VEX statement: a verdict about one vulnerability in one product
/// (optionally narrowed to subcomponents).
#[derive(Clone, Debug, PartialEq)]
pub struct VexStatement {
    pub vulnerability_id: String,
    pub aliases: Vec<String>,
    pub description: Option<String>,
    pub product: Product,
    /// Packages of the product the statement is about (purls in VEX form).
    pub subcomponents: Vec<Purl>,
    pub verdict: Verdict,
    /// When the statement's information was known to be true.
    pub timestamp: Option<OffsetDateTime>,
}

/// A VEX document in the abstract; writers choose the wire format.
#[derive(Clone, Debug, PartialEq)]
pub struct VexDocument {
    /// The document IRI; `None` lets the writer derive a stable one from the content.
    pub id: Option<String>,
    pub author: String,
    pub role: Option<String>,
    /// When the document was first issued.
    pub timestamp: OffsetDateTime,
    /// When this version of the document was issued, if it is not the first.
    pub last_updated: Option<OffsetDateTime>,
    pub version: u32,
    pub tooling: Option<String>,
    pub statements: Vec<VexStatement>,
}

impl VexStatement {
    /// The key scanners apply statements by: product × vulnerability.
    pub fn key(&self) -> (String, String) {
        (self.product.oci_purl(), self.vulnerability_id.clone())
    }
}
