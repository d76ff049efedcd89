//! OpenVEX: the 0.2.0 writer and a reader for every 0.x document.

use serde::{Deserialize, Serialize};
use vexxy_model::{Confidence, Justification, Purl, Status, Verdict, VexDocument, VexStatement};

use crate::{
    common::{
        content_urn, group_statements, parse_opt_time, parse_time, product_from_id, reader_decider,
        rfc3339, to_compact, to_pretty, EmbeddedEvidence, Group,
    },
    error::ConvertError,
    VexError,
};

/// The only context scanners accept as OpenVEX 0.2.0.
pub const OPENVEX_CONTEXT: &str = "https://openvex.dev/ns/v0.2.0";

/// How [`write_openvex`] writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenVexOptions {
    /// Add a `vexxy_evidence` object to each statement (outside the official
    /// schema: scanners ignore it, strict validators reject it).
    pub embed_evidence: bool,
    /// Indent the JSON (two spaces, final newline); otherwise one line.
    pub pretty: bool,
}

#[derive(Serialize)]
struct OutDocument<'a> {
    #[serde(rename = "@context")]
    context: &'static str,
    #[serde(rename = "@id")]
    id: String,
    author: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_updated: Option<String>,
    version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    tooling: Option<&'a str>,
    statements: Vec<OutStatement<'a>>,
}

#[derive(Serialize)]
struct OutStatement<'a> {
    vulnerability: OutVulnerability<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<String>,
    products: Vec<OutProduct>,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    justification: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    impact_statement: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action_statement: Option<String>,
    status_notes: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    vexxy_evidence: Option<EmbeddedEvidence>,
}

#[derive(Serialize)]
struct OutVulnerability<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    aliases: &'a [String],
}

#[derive(Serialize)]
struct OutProduct {
    #[serde(rename = "@id")]
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hashes: Option<OutHashes>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    subcomponents: Vec<OutSubcomponent>,
}

#[derive(Serialize)]
struct OutHashes {
    #[serde(rename = "sha-256")]
    sha256: String,
}

#[derive(Serialize)]
struct OutSubcomponent {
    #[serde(rename = "@id")]
    id: String,
}

fn out_statement<'a>(g: &'a Group<'a>) -> Result<OutStatement<'a>, VexError> {
    // The official schema wants exactly one of justification and impact
    // statement for not_affected; the justification wins and the impact
    // statement moves into status_notes (see Group::status_notes).
    let impact_statement = match g.justification {
        Some(_) => None,
        None => g.impact_statement.clone(),
    };
    Ok(OutStatement {
        vulnerability: OutVulnerability {
            name: g.vulnerability_id,
            description: g.description,
            aliases: &g.aliases,
        },
        timestamp: g.timestamp.map(rfc3339).transpose()?,
        products: vec![OutProduct {
            id: g.product_purl.clone(),
            hashes: g.product.digest.as_ref().map(|d| OutHashes {
                sha256: d.hex().to_owned(),
            }),
            subcomponents: g
                .subcomponents
                .iter()
                .map(|p| OutSubcomponent { id: p.to_string() })
                .collect(),
        }],
        status: g.status.as_str(),
        justification: g.justification.map(Justification::as_str),
        impact_statement,
        action_statement: g.action_statement.clone(),
        status_notes: g.status_notes(),
        vexxy_evidence: None,
    })
}

/// Writes an OpenVEX 0.2.0 document that Trivy and Grype apply.
///
/// One statement per (product, vulnerability), sorted by vulnerability id
/// then product purl; statements with the same key and verdict are merged,
/// different verdicts for one key are refused. Without `doc.id` the `@id` is
/// a `urn:uuid:` derived from the SHA-256 of the statements, so the same
/// input always gives the same bytes.
pub fn write_openvex(doc: &VexDocument, opts: &OpenVexOptions) -> Result<String, VexError> {
    if doc.version == 0 {
        return Err(VexError::Unwritable {
            format: "openvex",
            reason: "document version must be at least 1".into(),
        });
    }
    if doc.statements.is_empty() {
        return Err(VexError::Unwritable {
            format: "openvex",
            reason: "an openvex document needs at least one statement".into(),
        });
    }
    let groups = group_statements(doc)?;
    let mut statements = groups
        .iter()
        .map(out_statement)
        .collect::<Result<Vec<_>, _>>()?;
    let id = match &doc.id {
        Some(id) => id.clone(),
        None => content_urn(
            "openvex-statements",
            to_compact(&statements, "openvex")?.as_bytes(),
        ),
    };
    if opts.embed_evidence {
        for (s, g) in statements.iter_mut().zip(&groups) {
            s.vexxy_evidence = Some(g.evidence_json());
        }
    }
    let out = OutDocument {
        context: OPENVEX_CONTEXT,
        id,
        author: &doc.author,
        role: doc.role.as_deref(),
        timestamp: rfc3339(doc.timestamp)?,
        last_updated: doc.last_updated.map(rfc3339).transpose()?,
        version: doc.version,
        tooling: doc.tooling.as_deref(),
        statements,
    };
    if opts.pretty {
        to_pretty(&out, "openvex")
    } else {
        to_compact(&out, "openvex")
    }
}

// ---------------------------------------------------------------- reading

#[derive(Deserialize)]
pub(crate) struct RawDocument {
    #[serde(rename = "@context")]
    _context: String,
    #[serde(rename = "@id", default)]
    id: Option<String>,
    author: String,
    #[serde(default)]
    role: Option<String>,
    timestamp: String,
    #[serde(default)]
    last_updated: Option<String>,
    #[serde(default)]
    version: Option<RawVersion>,
    #[serde(default)]
    tooling: Option<String>,
    #[serde(default)]
    statements: Vec<RawStatement>,
}

/// Early documents wrote the version as a string.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawVersion {
    Number(u32),
    Text(String),
}

#[derive(Deserialize)]
struct RawStatement {
    vulnerability: RawVulnerability,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    last_updated: Option<String>,
    #[serde(default)]
    products: Vec<RawComponent>,
    /// v0.0.1 put subcomponents on the statement.
    #[serde(default)]
    subcomponents: Vec<RawComponent>,
    status: RawStatus,
    #[serde(default)]
    justification: Option<RawJustification>,
    #[serde(default)]
    impact_statement: Option<String>,
    #[serde(default)]
    action_statement: Option<String>,
    #[serde(default)]
    status_notes: Option<String>,
    #[serde(default)]
    vexxy_evidence: Option<EmbeddedEvidence>,
}

/// v0.0.1 wrote the vulnerability as a bare string.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawVulnerability {
    Name(String),
    Object {
        name: String,
        #[serde(default)]
        description: Option<String>,
        #[serde(default)]
        aliases: Vec<String>,
    },
}

/// v0.0.1 wrote products and subcomponents as bare strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawComponent {
    Id(String),
    Object {
        #[serde(rename = "@id", default)]
        id: Option<String>,
        #[serde(default)]
        identifiers: Option<RawIdentifiers>,
        #[serde(default)]
        hashes: Option<RawHashes>,
        #[serde(default)]
        subcomponents: Vec<RawComponent>,
    },
}

#[derive(Deserialize)]
struct RawIdentifiers {
    #[serde(default)]
    purl: Option<String>,
}

#[derive(Deserialize)]
struct RawHashes {
    #[serde(rename = "sha-256", default)]
    sha256: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RawStatus {
    NotAffected,
    Affected,
    Fixed,
    UnderInvestigation,
}

impl From<RawStatus> for Status {
    fn from(s: RawStatus) -> Self {
        match s {
            RawStatus::NotAffected => Status::NotAffected,
            RawStatus::Affected => Status::Affected,
            RawStatus::Fixed => Status::Fixed,
            RawStatus::UnderInvestigation => Status::UnderInvestigation,
        }
    }
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RawJustification {
    ComponentNotPresent,
    VulnerableCodeNotPresent,
    VulnerableCodeNotInExecutePath,
    VulnerableCodeCannotBeControlledByAdversary,
    InlineMitigationsAlreadyExist,
}

impl From<RawJustification> for Justification {
    fn from(j: RawJustification) -> Self {
        match j {
            RawJustification::ComponentNotPresent => Justification::ComponentNotPresent,
            RawJustification::VulnerableCodeNotPresent => Justification::VulnerableCodeNotPresent,
            RawJustification::VulnerableCodeNotInExecutePath => {
                Justification::VulnerableCodeNotInExecutePath
            }
            RawJustification::VulnerableCodeCannotBeControlledByAdversary => {
                Justification::VulnerableCodeCannotBeControlledByAdversary
            }
            RawJustification::InlineMitigationsAlreadyExist => {
                Justification::InlineMitigationsAlreadyExist
            }
        }
    }
}

impl RawComponent {
    /// The component's id: `@id`, else `identifiers.purl`.
    fn id(&self) -> Option<&str> {
        match self {
            Self::Id(id) => Some(id),
            Self::Object {
                id, identifiers, ..
            } => id
                .as_deref()
                .or_else(|| identifiers.as_ref().and_then(|i| i.purl.as_deref())),
        }
    }
    fn sha256(&self) -> Option<&str> {
        match self {
            Self::Id(_) => None,
            Self::Object { hashes, .. } => hashes.as_ref().and_then(|h| h.sha256.as_deref()),
        }
    }
    fn subcomponents(&self) -> &[RawComponent] {
        match self {
            Self::Id(_) => &[],
            Self::Object { subcomponents, .. } => subcomponents,
        }
    }
}

fn subcomponent_purls(list: &[RawComponent], path: &str) -> Result<Vec<Purl>, ConvertError> {
    list.iter()
        .enumerate()
        .map(|(k, c)| {
            let at = format!("{path}/{k}");
            let id = c.id().ok_or_else(|| {
                ConvertError::new(&at, "subcomponent has neither @id nor identifiers.purl")
            })?;
            id.parse::<Purl>()
                .map_err(|e| ConvertError::new(&at, e.to_string()))
        })
        .collect()
}

impl TryFrom<RawDocument> for VexDocument {
    type Error = ConvertError;

    fn try_from(raw: RawDocument) -> Result<Self, Self::Error> {
        let timestamp = parse_time(&raw.timestamp, "/timestamp")?;
        let last_updated = parse_opt_time(raw.last_updated.as_deref(), "/last_updated")?;
        let version = match raw.version {
            None => 1,
            Some(RawVersion::Number(n)) => n,
            Some(RawVersion::Text(t)) => t.trim().parse().map_err(|_| {
                ConvertError::new("/version", format!("version {t:?} is not an integer"))
            })?,
        };
        let decider = reader_decider(&raw.author, raw.tooling.is_some());
        let mut statements = Vec::new();
        for (i, s) in raw.statements.into_iter().enumerate() {
            let at = format!("/statements/{i}");
            let (vulnerability_id, description, aliases) = match s.vulnerability {
                RawVulnerability::Name(n) => (n, None, Vec::new()),
                RawVulnerability::Object {
                    name,
                    description,
                    aliases,
                } => (name, description, aliases),
            };
            let mut verdict = Verdict::new(
                s.status.into(),
                s.justification.map(Justification::from),
                s.impact_statement,
                s.action_statement,
                decider.clone(),
            )
            .map_err(|e| ConvertError::new(&at, e.to_string()))?
            .with_notes(s.status_notes.unwrap_or_default())
            .with_confidence(Confidence::CERTAIN);
            if let Some(ev) = &s.vexxy_evidence {
                let ev_at = format!("{at}/vexxy_evidence");
                verdict = verdict.with_confidence(ev.confidence(&ev_at)?);
                verdict.evidence = ev.evidence();
            }
            let stamp = s
                .timestamp
                .as_deref()
                .map(|t| (t, "timestamp"))
                .or(s.last_updated.as_deref().map(|t| (t, "last_updated")));
            let stamp = match stamp {
                Some((t, field)) => parse_opt_time(Some(t), &format!("{at}/{field}"))?,
                None => None,
            };
            let shared_subs = subcomponent_purls(&s.subcomponents, &format!("{at}/subcomponents"))?;
            if s.products.is_empty() {
                return Err(ConvertError::new(
                    format!("{at}/products"),
                    "statement names no product",
                ));
            }
            for (j, p) in s.products.iter().enumerate() {
                let p_at = format!("{at}/products/{j}");
                let id = p.id().ok_or_else(|| {
                    ConvertError::new(&p_at, "product has neither @id nor identifiers.purl")
                })?;
                let mut subcomponents =
                    subcomponent_purls(p.subcomponents(), &format!("{p_at}/subcomponents"))?;
                subcomponents.extend(shared_subs.iter().cloned());
                statements.push(VexStatement {
                    vulnerability_id: vulnerability_id.clone(),
                    aliases: aliases.clone(),
                    description: description.clone(),
                    product: product_from_id(id, p.sha256()),
                    subcomponents,
                    verdict: verdict.clone(),
                    timestamp: stamp,
                });
            }
        }
        Ok(VexDocument {
            id: raw.id,
            author: raw.author,
            role: raw.role,
            timestamp,
            last_updated,
            version,
            tooling: raw.tooling,
            statements,
        })
    }
}
