//! CycloneDX VEX: the 1.6 writer and a 1.4–1.6 reader.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use vexxy_model::{
    Confidence, Justification, Product, Purl, Status, Verdict, VexDocument, VexStatement,
};

use crate::{
    common::{
        content_urn, group_statements, parse_opt_time, product_from_id, reader_decider, rfc3339,
        to_compact, to_pretty, EmbeddedEvidence, Group, VEXXY_VERSION,
    },
    error::ConvertError,
    VexError,
};

/// The SBOM a CycloneDX VEX refers to, so `affects` can use BOM-Links
/// (`urn:cdx:<serial>/<version>#<bom-ref>`), which `trivy sbom` applies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BomLink {
    /// The SBOM's `serialNumber` (`urn:uuid:…`; the prefix is optional).
    pub serial_number: String,
    /// The SBOM's `version`.
    pub version: u32,
    /// Package purl → the SBOM's `bom-ref` for it. Purls are compared in VEX
    /// form (no qualifiers, no epoch version), so the SBOM's full purls can
    /// be used as keys.
    pub refs: BTreeMap<String, String>,
}

/// How [`write_cyclonedx`] writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CycloneDxOptions {
    /// Link `affects` to this SBOM's components when it has them.
    pub sbom: Option<BomLink>,
    /// Add a `vexxy:evidence` property (compact JSON) to each vulnerability.
    pub embed_evidence: bool,
}

/// Property names vexxy adds to CycloneDX vulnerabilities.
const PROP_PRODUCT: &str = "vexxy:product";
const PROP_JUSTIFICATION: &str = "vexxy:justification";
const PROP_EVIDENCE: &str = "vexxy:evidence";

#[derive(Serialize)]
struct OutBom<'a> {
    #[serde(rename = "bomFormat")]
    bom_format: &'static str,
    #[serde(rename = "specVersion")]
    spec_version: &'static str,
    #[serde(rename = "serialNumber")]
    serial_number: String,
    version: u32,
    metadata: OutMetadata<'a>,
    vulnerabilities: Vec<OutVulnerability<'a>>,
}

#[derive(Serialize)]
struct OutMetadata<'a> {
    timestamp: String,
    tools: OutTools,
    authors: [OutContact<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    component: Option<OutComponent>,
}

#[derive(Serialize)]
struct OutTools {
    components: [OutTool; 1],
}

#[derive(Serialize)]
struct OutTool {
    #[serde(rename = "type")]
    ty: &'static str,
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct OutContact<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct OutComponent {
    #[serde(rename = "type")]
    ty: &'static str,
    #[serde(rename = "bom-ref")]
    bom_ref: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    purl: String,
}

#[derive(Serialize)]
struct OutVulnerability<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    references: Vec<OutReference<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recommendation: Option<&'a str>,
    analysis: OutAnalysis,
    affects: Vec<OutAffect>,
    properties: Vec<OutProperty>,
}

#[derive(Serialize)]
struct OutReference<'a> {
    id: &'a str,
    source: OutSource,
}

#[derive(Serialize)]
struct OutSource {
    name: String,
}

#[derive(Serialize)]
struct OutAnalysis {
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    justification: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    response: Vec<&'static str>,
    detail: String,
    #[serde(rename = "lastUpdated", skip_serializing_if = "Option::is_none")]
    last_updated: Option<String>,
}

#[derive(Serialize)]
struct OutAffect {
    #[serde(rename = "ref")]
    reference: String,
}

#[derive(Serialize)]
struct OutProperty {
    name: &'static str,
    value: String,
}

/// CycloneDX `analysis.state` for a VEX status.
fn cdx_state(s: Status) -> &'static str {
    match s {
        Status::NotAffected => "not_affected",
        Status::Affected => "exploitable",
        Status::Fixed => "resolved",
        Status::UnderInvestigation => "in_triage",
    }
}

/// CycloneDX `analysis.justification` for an OpenVEX justification (the
/// mapping is documented in `docs/vex-outputs.md`).
fn cdx_justification(j: Justification) -> &'static str {
    match j {
        Justification::ComponentNotPresent | Justification::VulnerableCodeNotPresent => {
            "code_not_present"
        }
        Justification::VulnerableCodeNotInExecutePath => "code_not_reachable",
        Justification::VulnerableCodeCannotBeControlledByAdversary => "requires_configuration",
        Justification::InlineMitigationsAlreadyExist => "protected_by_mitigating_control",
    }
}

/// The id scheme a vulnerability id belongs to (`CVE`, `GHSA`, …).
pub(crate) fn id_scheme(id: &str) -> String {
    id.split('-').next().unwrap_or(id).to_ascii_uppercase()
}

/// Resolves package purls to SBOM BOM-Links.
struct Linker {
    prefix: String,
    by_vex_form: HashMap<String, Vec<String>>,
}

impl Linker {
    fn new(link: &BomLink) -> Self {
        let serial = link
            .serial_number
            .strip_prefix("urn:uuid:")
            .unwrap_or(&link.serial_number);
        let mut by_vex_form: HashMap<String, Vec<String>> = HashMap::new();
        for (purl, bom_ref) in &link.refs {
            let key = purl
                .parse::<Purl>()
                .map(|p| p.vex_form().to_string())
                .unwrap_or_else(|_| purl.clone());
            by_vex_form.entry(key).or_default().push(bom_ref.clone());
        }
        for refs in by_vex_form.values_mut() {
            refs.sort();
            refs.dedup();
        }
        Self {
            prefix: format!("urn:cdx:{serial}/{}#", link.version),
            by_vex_form,
        }
    }

    /// BOM-Links for a purl, or none.
    fn links(&self, purl: &str) -> Vec<String> {
        let key = purl
            .parse::<Purl>()
            .map(|p| p.vex_form().to_string())
            .unwrap_or_else(|_| purl.to_owned());
        self.by_vex_form
            .get(&key)
            .map(|refs| refs.iter().map(|r| format!("{}{r}", self.prefix)).collect())
            .unwrap_or_default()
    }
}

fn affects(g: &Group<'_>, linker: Option<&Linker>) -> Vec<OutAffect> {
    let targets: Vec<String> = if g.subcomponents.is_empty() {
        vec![g.product_purl.clone()]
    } else {
        g.subcomponents.iter().map(ToString::to_string).collect()
    };
    let mut out = Vec::new();
    for t in targets {
        let links = linker.map(|l| l.links(&t)).unwrap_or_default();
        if links.is_empty() {
            out.push(OutAffect { reference: t });
        } else {
            out.extend(links.into_iter().map(|reference| OutAffect { reference }));
        }
    }
    out
}

fn out_vulnerability<'a>(
    g: &'a Group<'a>,
    linker: Option<&Linker>,
    embed: bool,
) -> Result<OutVulnerability<'a>, VexError> {
    let mut detail = g.status_notes();
    if g.justification.is_none() {
        if let Some(i) = &g.impact_statement {
            detail = format!("{i}; {detail}");
        }
    }
    let mut properties = vec![OutProperty {
        name: PROP_PRODUCT,
        value: g.product_purl.clone(),
    }];
    if let Some(j) = g.justification {
        properties.push(OutProperty {
            name: PROP_JUSTIFICATION,
            value: j.as_str().to_owned(),
        });
    }
    if embed {
        properties.push(OutProperty {
            name: PROP_EVIDENCE,
            value: to_compact(&g.evidence_json(), "cyclonedx")?,
        });
    }
    Ok(OutVulnerability {
        id: g.vulnerability_id,
        references: g
            .aliases
            .iter()
            .map(|a| OutReference {
                id: a,
                source: OutSource { name: id_scheme(a) },
            })
            .collect(),
        description: g.description,
        recommendation: g.action_statement.as_deref(),
        analysis: OutAnalysis {
            state: cdx_state(g.status),
            justification: g.justification.map(cdx_justification),
            response: if g.status == Status::Affected {
                vec!["update"]
            } else {
                Vec::new()
            },
            detail,
            last_updated: g.timestamp.map(rfc3339).transpose()?,
        },
        affects: affects(g, linker),
        properties,
    })
}

/// Writes a CycloneDX 1.6 VEX document.
///
/// One vulnerability entry per (product, vulnerability), sorted like the
/// OpenVEX statements. `affects` names the packages as BOM-Links into
/// `opts.sbom` when it has a bom-ref for them, else as purls (the image purl
/// when a statement names no package). The serial number is derived from
/// the content, so the same input always gives the same bytes.
pub fn write_cyclonedx(doc: &VexDocument, opts: &CycloneDxOptions) -> Result<String, VexError> {
    let groups = group_statements(doc)?;
    let linker = opts.sbom.as_ref().map(Linker::new);
    let vulnerabilities = groups
        .iter()
        .map(|g| out_vulnerability(g, linker.as_ref(), opts.embed_evidence))
        .collect::<Result<Vec<_>, _>>()?;
    let mut products: Vec<&Product> = groups.iter().map(|g| g.product).collect();
    products.sort_by_key(|p| p.oci_purl());
    products.dedup_by_key(|p| p.oci_purl());
    let component = match products.as_slice() {
        [only] => Some(OutComponent {
            ty: "container",
            bom_ref: only.oci_purl(),
            name: only.name.clone(),
            version: only.digest.as_ref().map(ToString::to_string),
            purl: only.oci_purl(),
        }),
        _ => None,
    };
    let mut hashed = to_compact(&vulnerabilities, "cyclonedx")?;
    hashed.push_str(&to_compact(&component, "cyclonedx")?);
    let bom = OutBom {
        bom_format: "CycloneDX",
        spec_version: "1.6",
        serial_number: content_urn("cyclonedx-vex", hashed.as_bytes()),
        version: 1,
        metadata: OutMetadata {
            timestamp: rfc3339(doc.timestamp)?,
            tools: OutTools {
                components: [OutTool {
                    ty: "application",
                    name: "vexxy",
                    version: VEXXY_VERSION,
                }],
            },
            authors: [OutContact { name: &doc.author }],
            component,
        },
        vulnerabilities,
    };
    to_pretty(&bom, "cyclonedx")
}

// ---------------------------------------------------------------- reading

#[derive(Deserialize)]
pub(crate) struct RawBom {
    #[serde(rename = "serialNumber", default)]
    serial_number: Option<String>,
    #[serde(default)]
    version: Option<u32>,
    #[serde(default)]
    metadata: Option<RawMetadata>,
    #[serde(default)]
    components: Vec<RawComponent>,
    #[serde(default)]
    vulnerabilities: Vec<RawVulnerability>,
}

#[derive(Deserialize)]
struct RawMetadata {
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    tools: Option<RawTools>,
    #[serde(default)]
    authors: Vec<RawNamed>,
    #[serde(default)]
    supplier: Option<RawNamed>,
    #[serde(default)]
    manufacturer: Option<RawNamed>,
    #[serde(default)]
    component: Option<RawComponent>,
}

/// 1.4 wrote tools as a list; 1.5 and later as `{components, services}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawTools {
    Legacy(Vec<RawNamed>),
    Modern {
        #[serde(default)]
        components: Vec<RawNamed>,
        #[serde(default)]
        services: Vec<RawNamed>,
    },
}

impl RawTools {
    fn names(&self) -> Vec<String> {
        let list: Vec<&RawNamed> = match self {
            Self::Legacy(l) => l.iter().collect(),
            Self::Modern {
                components,
                services,
            } => components.iter().chain(services).collect(),
        };
        list.iter()
            .filter_map(|t| {
                t.name.as_ref().map(|n| match &t.version {
                    Some(v) => format!("{n} {v}"),
                    None => n.clone(),
                })
            })
            .collect()
    }
}

#[derive(Deserialize)]
struct RawNamed {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
}

#[derive(Deserialize)]
struct RawComponent {
    #[serde(rename = "bom-ref", default)]
    bom_ref: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    purl: Option<String>,
    #[serde(default)]
    components: Vec<RawComponent>,
}

#[derive(Deserialize)]
struct RawVulnerability {
    id: String,
    #[serde(default)]
    references: Vec<RawReference>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    recommendation: Option<String>,
    #[serde(default)]
    analysis: Option<RawAnalysis>,
    #[serde(default)]
    affects: Vec<RawAffect>,
    #[serde(default)]
    properties: Vec<RawProperty>,
    #[serde(default)]
    updated: Option<String>,
}

#[derive(Deserialize)]
struct RawReference {
    id: String,
}

#[derive(Deserialize)]
struct RawAffect {
    #[serde(rename = "ref")]
    reference: String,
}

#[derive(Deserialize)]
struct RawProperty {
    name: String,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize)]
struct RawAnalysis {
    #[serde(default)]
    state: Option<RawState>,
    #[serde(default)]
    justification: Option<RawJustification>,
    #[serde(default)]
    response: Vec<RawResponse>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(rename = "firstIssued", default)]
    first_issued: Option<String>,
    #[serde(rename = "lastUpdated", default)]
    last_updated: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RawState {
    Resolved,
    ResolvedWithPedigree,
    Exploitable,
    InTriage,
    FalsePositive,
    NotAffected,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RawJustification {
    CodeNotPresent,
    CodeNotReachable,
    RequiresConfiguration,
    RequiresDependency,
    RequiresEnvironment,
    ProtectedByCompiler,
    ProtectedAtRuntime,
    ProtectedAtPerimeter,
    ProtectedByMitigatingControl,
}

impl From<RawJustification> for Justification {
    fn from(j: RawJustification) -> Self {
        match j {
            RawJustification::CodeNotPresent => Justification::VulnerableCodeNotPresent,
            RawJustification::CodeNotReachable => Justification::VulnerableCodeNotInExecutePath,
            RawJustification::RequiresConfiguration
            | RawJustification::RequiresDependency
            | RawJustification::RequiresEnvironment => {
                Justification::VulnerableCodeCannotBeControlledByAdversary
            }
            RawJustification::ProtectedByCompiler
            | RawJustification::ProtectedAtRuntime
            | RawJustification::ProtectedAtPerimeter
            | RawJustification::ProtectedByMitigatingControl => {
                Justification::InlineMitigationsAlreadyExist
            }
        }
    }
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RawResponse {
    CanNotFix,
    WillNotFix,
    Update,
    Rollback,
    WorkaroundAvailable,
}

impl RawResponse {
    fn as_str(self) -> &'static str {
        match self {
            Self::CanNotFix => "can_not_fix",
            Self::WillNotFix => "will_not_fix",
            Self::Update => "update",
            Self::Rollback => "rollback",
            Self::WorkaroundAvailable => "workaround_available",
        }
    }
}

/// bom-ref → purl (or name) of every component in the document.
fn component_index(bom: &RawBom) -> HashMap<String, String> {
    fn walk(c: &RawComponent, into: &mut HashMap<String, String>) {
        if let Some(r) = &c.bom_ref {
            if let Some(target) = c.purl.clone().or_else(|| c.name.clone()) {
                into.insert(r.clone(), target);
            }
        }
        for child in &c.components {
            walk(child, into);
        }
    }
    let mut index = HashMap::new();
    if let Some(c) = bom.metadata.as_ref().and_then(|m| m.component.as_ref()) {
        walk(c, &mut index);
    }
    for c in &bom.components {
        walk(c, &mut index);
    }
    index
}

/// A BOM-Link or bom-ref resolved through the components when possible;
/// an unresolvable BOM-Link falls back to its bom-ref, which in many SBOMs
/// is a purl itself.
fn resolve_ref(r: &str, index: &HashMap<String, String>) -> String {
    let bom_ref = match r.strip_prefix("urn:cdx:") {
        Some(link) => link.split_once('#').map_or(r, |(_, frag)| frag),
        None => r,
    };
    match index.get(bom_ref) {
        Some(target) => target.clone(),
        None if bom_ref.starts_with("pkg:") => bom_ref.to_owned(),
        None => r.to_owned(),
    }
}

fn property<'a>(props: &'a [RawProperty], name: &str) -> Option<(usize, &'a str)> {
    props
        .iter()
        .enumerate()
        .find(|(_, p)| p.name == name)
        .and_then(|(i, p)| p.value.as_deref().map(|v| (i, v)))
}

struct Context {
    author: String,
    decider: vexxy_model::Decider,
    doc_product: Option<Product>,
    index: HashMap<String, String>,
}

fn verdict_of(
    v: &RawVulnerability,
    a: &RawAnalysis,
    state: RawState,
    ctx: &Context,
    at: &str,
) -> Result<Verdict, ConvertError> {
    let detail = a.detail.clone().filter(|d| !d.is_empty());
    let (status, justification, impact, action) = match state {
        RawState::NotAffected | RawState::FalsePositive => {
            let exact = match property(&v.properties, PROP_JUSTIFICATION) {
                Some((i, value)) => Some(Justification::from_openvex(value).ok_or_else(|| {
                    ConvertError::new(
                        format!("{at}/properties/{i}/value"),
                        format!("unknown justification {value:?}"),
                    )
                })?),
                None => None,
            };
            let justification = exact.or(a.justification.map(Justification::from));
            let impact = match (justification, state) {
                (None, RawState::FalsePositive) => Some(
                    detail
                        .clone()
                        .unwrap_or_else(|| "false_positive".to_owned()),
                ),
                (None, _) => detail.clone(),
                _ => None,
            };
            (Status::NotAffected, justification, impact, None)
        }
        RawState::Exploitable => {
            let responses: Vec<&str> = a.response.iter().map(|r| r.as_str()).collect();
            let action = v
                .recommendation
                .clone()
                .filter(|r| !r.is_empty())
                .or_else(|| detail.clone())
                .or_else(|| {
                    (!responses.is_empty()).then(|| format!("response: {}", responses.join(", ")))
                });
            (Status::Affected, None, None, action)
        }
        RawState::Resolved | RawState::ResolvedWithPedigree => (Status::Fixed, None, None, None),
        RawState::InTriage => (Status::UnderInvestigation, None, None, None),
    };
    let mut verdict = Verdict::new(status, justification, impact, action, ctx.decider.clone())
        .map_err(|e| ConvertError::new(format!("{at}/analysis"), e.to_string()))?
        .with_confidence(Confidence::CERTAIN)
        .with_notes(detail.unwrap_or_default());
    if let Some((i, json)) = property(&v.properties, PROP_EVIDENCE) {
        let p_at = format!("{at}/properties/{i}/value");
        let ev: EmbeddedEvidence = serde_json::from_str(json)
            .map_err(|e| ConvertError::new(&p_at, format!("not a vexxy evidence object: {e}")))?;
        verdict = verdict.with_confidence(ev.confidence(&p_at)?);
        verdict.evidence = ev.evidence();
    }
    Ok(verdict)
}

fn statements_of(
    v: RawVulnerability,
    i: usize,
    ctx: &Context,
) -> Result<Vec<VexStatement>, ConvertError> {
    let at = format!("/vulnerabilities/{i}");
    // A vulnerability without an analysis state is a finding (VDR), not a
    // VEX statement.
    let Some((analysis, state)) = v.analysis.as_ref().and_then(|a| a.state.map(|s| (a, s))) else {
        return Ok(Vec::new());
    };
    let verdict = verdict_of(&v, analysis, state, ctx, &at)?;
    let timestamp = match (&analysis.last_updated, &analysis.first_issued, &v.updated) {
        (Some(t), _, _) => parse_opt_time(Some(t), &format!("{at}/analysis/lastUpdated"))?,
        (None, Some(t), _) => parse_opt_time(Some(t), &format!("{at}/analysis/firstIssued"))?,
        (None, None, Some(t)) => parse_opt_time(Some(t), &format!("{at}/updated"))?,
        (None, None, None) => None,
    };
    let product = match property(&v.properties, PROP_PRODUCT) {
        Some((_, id)) => Some(product_from_id(id, None)),
        None => ctx.doc_product.clone(),
    };
    let mut subcomponents: Vec<Purl> = Vec::new();
    let mut own_products: Vec<Product> = Vec::new();
    for a in &v.affects {
        let target = resolve_ref(&a.reference, &ctx.index);
        match target.parse::<Purl>() {
            Ok(p) if p.ty() != "oci" && product.is_some() => subcomponents.push(p),
            _ => {
                let p = product_from_id(&target, None);
                if product
                    .as_ref()
                    .is_none_or(|main| main.oci_purl() != p.oci_purl())
                {
                    own_products.push(p);
                }
            }
        }
    }
    let make = |product: Product, subcomponents: Vec<Purl>| VexStatement {
        vulnerability_id: v.id.clone(),
        aliases: v
            .references
            .iter()
            .map(|r| r.id.clone())
            .filter(|r| *r != v.id)
            .collect(),
        description: v.description.clone(),
        product,
        subcomponents,
        verdict: verdict.clone(),
        timestamp,
    };
    let mut out = Vec::new();
    match product {
        Some(main) if !subcomponents.is_empty() || own_products.is_empty() => {
            out.push(make(main, subcomponents))
        }
        _ => {}
    }
    out.extend(own_products.into_iter().map(|p| make(p, Vec::new())));
    if out.is_empty() {
        return Err(ConvertError::new(
            format!("{at}/affects"),
            "vulnerability affects nothing",
        ));
    }
    Ok(out)
}

impl TryFrom<RawBom> for VexDocument {
    type Error = ConvertError;

    fn try_from(bom: RawBom) -> Result<Self, Self::Error> {
        let index = component_index(&bom);
        let meta = bom.metadata.as_ref();
        let tools = meta
            .and_then(|m| m.tools.as_ref())
            .map(RawTools::names)
            .unwrap_or_default();
        let author = meta
            .and_then(|m| {
                let authors: Vec<&str> =
                    m.authors.iter().filter_map(|a| a.name.as_deref()).collect();
                (!authors.is_empty())
                    .then(|| authors.join(", "))
                    .or_else(|| m.supplier.as_ref().and_then(|s| s.name.clone()))
                    .or_else(|| m.manufacturer.as_ref().and_then(|s| s.name.clone()))
            })
            .or_else(|| tools.first().cloned())
            .unwrap_or_else(|| "unknown".to_owned());
        let doc_product = meta.and_then(|m| m.component.as_ref()).and_then(|c| {
            c.purl
                .as_deref()
                .map(|p| product_from_id(p, None))
                .or_else(|| c.name.as_deref().map(|n| product_from_id(n, None)))
        });
        let timestamp = match meta.and_then(|m| m.timestamp.as_deref()) {
            Some(t) => crate::common::parse_time(t, "/metadata/timestamp")?,
            None => OffsetDateTime::UNIX_EPOCH,
        };
        let ctx = Context {
            decider: reader_decider(&author, !tools.is_empty()),
            author,
            doc_product,
            index,
        };
        let mut statements = Vec::new();
        for (i, v) in bom.vulnerabilities.into_iter().enumerate() {
            statements.extend(statements_of(v, i, &ctx)?);
        }
        Ok(VexDocument {
            id: bom.serial_number,
            author: ctx.author,
            role: None,
            timestamp,
            last_updated: None,
            version: bom.version.unwrap_or(1),
            tooling: (!tools.is_empty()).then(|| tools.join(", ")),
            statements,
        })
    }
}
