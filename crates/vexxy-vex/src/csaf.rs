//! CSAF 2.0 VEX (`csaf_vex` profile): writer and reader.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use vexxy_model::{
    Confidence, Justification, Product, Purl, Status, Verdict, VexDocument, VexStatement,
};

use crate::{
    common::{
        content_hash, group_statements, parse_opt_time, parse_time, product_from_id,
        reader_decider, rfc3339, to_compact, to_pretty, Group, VEXXY_VERSION,
    },
    cyclonedx::id_scheme,
    error::ConvertError,
    VexError,
};

/// How [`write_csaf`] names the publisher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsafOptions {
    /// `document.publisher.name`; `None` uses the document's author.
    pub publisher_name: Option<String>,
    /// `document.publisher.namespace`, a URL identifying the publisher.
    pub publisher_namespace: String,
}

impl Default for CsafOptions {
    fn default() -> Self {
        Self {
            publisher_name: None,
            publisher_namespace: "https://github.com/vexxy".to_owned(),
        }
    }
}

#[derive(Serialize)]
struct OutCsaf {
    document: OutDocument,
    product_tree: OutProductTree,
    vulnerabilities: Vec<OutVulnerability>,
}

#[derive(Serialize)]
struct OutDocument {
    category: &'static str,
    csaf_version: &'static str,
    publisher: OutPublisher,
    title: String,
    tracking: OutTracking,
}

#[derive(Serialize)]
struct OutPublisher {
    category: &'static str,
    name: String,
    namespace: String,
}

#[derive(Serialize)]
struct OutTracking {
    id: String,
    status: &'static str,
    version: String,
    initial_release_date: String,
    current_release_date: String,
    revision_history: [OutRevision; 1],
    generator: OutGenerator,
}

#[derive(Serialize)]
struct OutRevision {
    date: String,
    number: String,
    summary: &'static str,
}

#[derive(Serialize)]
struct OutGenerator {
    date: String,
    engine: OutEngine,
}

#[derive(Serialize)]
struct OutEngine {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct OutProductTree {
    full_product_names: Vec<OutFullProductName>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    relationships: Vec<OutRelationship>,
}

#[derive(Serialize)]
struct OutFullProductName {
    name: String,
    product_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    product_identification_helper: Option<OutHelper>,
}

#[derive(Serialize)]
struct OutHelper {
    purl: String,
}

#[derive(Serialize)]
struct OutRelationship {
    category: &'static str,
    full_product_name: OutFullProductName,
    product_reference: String,
    relates_to_product_reference: String,
}

#[derive(Serialize)]
struct OutVulnerability {
    #[serde(skip_serializing_if = "Option::is_none")]
    cve: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ids: Vec<OutId>,
    notes: Vec<OutNote>,
    product_status: OutProductStatus,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    flags: Vec<OutFlag>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    threats: Vec<OutThreat>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    remediations: Vec<OutRemediation>,
}

#[derive(Serialize)]
struct OutId {
    system_name: String,
    text: String,
}

#[derive(Serialize)]
struct OutNote {
    category: &'static str,
    title: &'static str,
    text: String,
}

#[derive(Serialize, Default)]
struct OutProductStatus {
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    fixed: BTreeSet<String>,
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    known_affected: BTreeSet<String>,
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    known_not_affected: BTreeSet<String>,
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    under_investigation: BTreeSet<String>,
}

#[derive(Serialize)]
struct OutFlag {
    #[serde(skip_serializing_if = "Option::is_none")]
    date: Option<String>,
    label: &'static str,
    product_ids: Vec<String>,
}

#[derive(Serialize)]
struct OutThreat {
    category: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    date: Option<String>,
    details: String,
    product_ids: Vec<String>,
}

#[derive(Serialize)]
struct OutRemediation {
    category: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    date: Option<String>,
    details: String,
    product_ids: Vec<String>,
}

fn is_cve(id: &str) -> bool {
    let mut parts = id.splitn(3, '-');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some("CVE"), Some(y), Some(n))
            if y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit()) && n.len() >= 4 && n.bytes().all(|b| b.is_ascii_digit())
    )
}

/// The remediation category an action statement reads as: `none_available`
/// or `no_fix_planned` when it says so, `vendor_fix` otherwise.
fn remediation_category(action: &str) -> &'static str {
    let a = action.to_ascii_lowercase();
    if a.contains("no fix planned")
        || a.contains("will not fix")
        || a.contains("won't fix")
        || a.contains("wont fix")
    {
        "no_fix_planned"
    } else if a.contains("no fix") || a.contains("none available") || a.contains("not yet fixed") {
        "none_available"
    } else {
        "vendor_fix"
    }
}

/// Product ids: images `IMAGE-n`, packages `PACKAGE-n`, and
/// `PACKAGE-n:IMAGE-m` for a package inside an image.
struct Ids {
    images: BTreeMap<String, String>,
    packages: BTreeMap<String, String>,
}

impl Ids {
    fn new(groups: &[Group<'_>]) -> Self {
        let image_purls: BTreeSet<&str> = groups.iter().map(|g| g.product_purl.as_str()).collect();
        let package_purls: BTreeSet<String> = groups
            .iter()
            .flat_map(|g| g.subcomponents.iter().map(ToString::to_string))
            .collect();
        Self {
            images: image_purls
                .into_iter()
                .enumerate()
                .map(|(i, p)| (p.to_owned(), format!("IMAGE-{}", i + 1)))
                .collect(),
            packages: package_purls
                .into_iter()
                .enumerate()
                .map(|(i, p)| (p, format!("PACKAGE-{}", i + 1)))
                .collect(),
        }
    }

    fn image(&self, purl: &str) -> String {
        self.images.get(purl).cloned().unwrap_or_default()
    }

    /// The product ids a group's status applies to.
    fn of(&self, g: &Group<'_>) -> Vec<String> {
        let image = self.image(&g.product_purl);
        if g.subcomponents.is_empty() {
            return vec![image];
        }
        let mut ids: Vec<String> = g
            .subcomponents
            .iter()
            .map(|s| {
                format!(
                    "{}:{image}",
                    self.packages.get(&s.to_string()).map_or("", String::as_str)
                )
            })
            .collect();
        ids.sort();
        ids
    }
}

fn product_tree(groups: &[Group<'_>], ids: &Ids) -> OutProductTree {
    let mut full_product_names = Vec::new();
    let mut seen = BTreeSet::new();
    let mut images: Vec<(&String, &Product)> = Vec::new();
    for g in groups {
        if seen.insert(&g.product_purl) {
            images.push((&g.product_purl, g.product));
        }
    }
    images.sort_by_key(|(purl, _)| ids.image(purl));
    for (purl, product) in &images {
        full_product_names.push(OutFullProductName {
            name: product.to_string(),
            product_id: ids.image(purl),
            product_identification_helper: Some(OutHelper {
                purl: (*purl).clone(),
            }),
        });
    }
    // Numbered in purl order, so the map's order is the id order.
    for (purl, id) in &ids.packages {
        full_product_names.push(OutFullProductName {
            name: (*purl).clone(),
            product_id: (*id).clone(),
            product_identification_helper: Some(OutHelper {
                purl: (*purl).clone(),
            }),
        });
    }
    // Ordered by package purl, which is also the package id order.
    let mut pairs: BTreeSet<(String, String, String, String)> = BTreeSet::new();
    for g in groups {
        let image = ids.image(&g.product_purl);
        for s in &g.subcomponents {
            let purl = s.to_string();
            let pkg = ids.packages.get(&purl).cloned().unwrap_or_default();
            pairs.insert((purl, image.clone(), pkg, g.product.to_string()));
        }
    }
    let relationships = pairs
        .into_iter()
        .map(|(purl, image, pkg, product)| OutRelationship {
            category: "default_component_of",
            full_product_name: OutFullProductName {
                name: format!("{purl} as a component of {product}"),
                product_id: format!("{pkg}:{image}"),
                product_identification_helper: None,
            },
            product_reference: pkg,
            relates_to_product_reference: image,
        })
        .collect();
    OutProductTree {
        full_product_names,
        relationships,
    }
}

fn vulnerability(id: &str, groups: &[&Group<'_>], ids: &Ids) -> Result<OutVulnerability, VexError> {
    let mut aliases: BTreeSet<&str> = BTreeSet::new();
    for g in groups {
        aliases.extend(g.aliases.iter().map(String::as_str));
    }
    let (cve, other_ids): (Option<String>, Vec<&str>) = if is_cve(id) {
        (
            Some(id.to_owned()),
            aliases.iter().copied().filter(|a| !is_cve(a)).collect(),
        )
    } else {
        let cve = aliases.iter().find(|a| is_cve(a)).map(|a| (*a).to_owned());
        let mut rest = vec![id];
        rest.extend(aliases.iter().copied().filter(|a| !is_cve(a)));
        (cve, rest)
    };
    let mut notes = Vec::new();
    if let Some(d) = groups.iter().find_map(|g| g.description) {
        notes.push(OutNote {
            category: "description",
            title: "description",
            text: d.to_owned(),
        });
    }
    let details: Vec<String> = groups
        .iter()
        .map(|g| {
            let notes = g.status_notes();
            if notes.is_empty() {
                format!("{}: {}", g.product_purl, g.status)
            } else {
                format!("{}: {}: {notes}", g.product_purl, g.status)
            }
        })
        .collect();
    notes.push(OutNote {
        category: "details",
        title: "vexxy status notes",
        text: details.join("\n"),
    });
    let mut out = OutVulnerability {
        cve,
        ids: other_ids
            .into_iter()
            .map(|t| OutId {
                system_name: id_scheme(t),
                text: t.to_owned(),
            })
            .collect(),
        notes,
        product_status: OutProductStatus::default(),
        flags: Vec::new(),
        threats: Vec::new(),
        remediations: Vec::new(),
    };
    for g in groups {
        let pids = ids.of(g);
        let date = g.timestamp.map(rfc3339).transpose()?;
        let list = match g.status {
            Status::NotAffected => &mut out.product_status.known_not_affected,
            Status::Affected => &mut out.product_status.known_affected,
            Status::Fixed => &mut out.product_status.fixed,
            Status::UnderInvestigation => &mut out.product_status.under_investigation,
        };
        list.extend(pids.iter().cloned());
        match g.status {
            Status::NotAffected => {
                if let Some(j) = g.justification {
                    out.flags.push(OutFlag {
                        date: date.clone(),
                        label: j.as_str(),
                        product_ids: pids.clone(),
                    });
                }
                let details = match (g.justification, &g.impact_statement) {
                    (None, Some(i)) => i.clone(),
                    _ => g.status_notes(),
                };
                out.threats.push(OutThreat {
                    category: "impact",
                    date,
                    details,
                    product_ids: pids,
                });
            }
            Status::Affected => {
                let action = g.action_statement.clone().unwrap_or_default();
                out.remediations.push(OutRemediation {
                    category: remediation_category(&action),
                    date,
                    details: action,
                    product_ids: pids,
                });
            }
            Status::Fixed | Status::UnderInvestigation => {}
        }
    }
    Ok(out)
}

/// Writes a CSAF 2.0 VEX document (`csaf_vex` profile).
///
/// Images and packages are full product names with a purl helper; every
/// package a statement names is joined to its image by a
/// `default_component_of` relationship, and statuses list those combined
/// product ids (an image id alone when no package is named). Byte-stable:
/// ids are numbered in sorted order and the tracking id is a content hash
/// unless the document has an id.
pub fn write_csaf(doc: &VexDocument, opts: &CsafOptions) -> Result<String, VexError> {
    if doc.statements.is_empty() {
        return Err(VexError::Unwritable {
            format: "csaf",
            reason: "a csaf vex document needs at least one vulnerability".into(),
        });
    }
    let groups = group_statements(doc)?;
    let ids = Ids::new(&groups);
    let product_tree = product_tree(&groups, &ids);
    let mut by_vuln: BTreeMap<&str, Vec<&Group<'_>>> = BTreeMap::new();
    for g in &groups {
        by_vuln.entry(g.vulnerability_id).or_default().push(g);
    }
    let vulnerabilities = by_vuln
        .iter()
        .map(|(id, gs)| vulnerability(id, gs, &ids))
        .collect::<Result<Vec<_>, _>>()?;
    let tracking_id = match &doc.id {
        Some(id) => id.clone(),
        None => {
            let mut content = to_compact(&product_tree, "csaf")?;
            content.push_str(&to_compact(&vulnerabilities, "csaf")?);
            format!(
                "vexxy-{}",
                &hex::encode(content_hash("csaf-vex", content.as_bytes()))[..16]
            )
        }
    };
    let date = rfc3339(doc.timestamp)?;
    let mut products: Vec<String> = product_tree
        .full_product_names
        .iter()
        .filter(|f| f.product_id.starts_with("IMAGE-"))
        .map(|f| f.name.clone())
        .collect();
    products.dedup();
    if doc.version == 0 {
        return Err(VexError::Unwritable {
            format: "csaf",
            reason: "document version must be at least 1".into(),
        });
    }
    let version = doc.version.to_string();
    let out = OutCsaf {
        document: OutDocument {
            category: "csaf_vex",
            csaf_version: "2.0",
            publisher: OutPublisher {
                category: "vendor",
                name: opts
                    .publisher_name
                    .clone()
                    .unwrap_or_else(|| doc.author.clone()),
                namespace: opts.publisher_namespace.clone(),
            },
            title: format!("vexxy vex for {}", products.join(", ")),
            tracking: OutTracking {
                id: tracking_id,
                status: "final",
                version: version.clone(),
                initial_release_date: date.clone(),
                current_release_date: date.clone(),
                revision_history: [OutRevision {
                    date: date.clone(),
                    number: version,
                    summary: "generated by vexxy",
                }],
                generator: OutGenerator {
                    date,
                    engine: OutEngine {
                        name: "vexxy",
                        version: VEXXY_VERSION,
                    },
                },
            },
        },
        product_tree,
        vulnerabilities,
    };
    to_pretty(&out, "csaf")
}

// ---------------------------------------------------------------- reading

#[derive(Deserialize)]
pub(crate) struct RawCsaf {
    document: RawDocument,
    #[serde(default)]
    product_tree: Option<RawProductTree>,
    #[serde(default)]
    vulnerabilities: Vec<RawVulnerability>,
}

#[derive(Deserialize)]
struct RawDocument {
    publisher: RawPublisher,
    tracking: RawTracking,
}

#[derive(Deserialize)]
struct RawPublisher {
    name: String,
}

#[derive(Deserialize)]
struct RawTracking {
    id: String,
    current_release_date: String,
    version: String,
    #[serde(default)]
    generator: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct RawProductTree {
    #[serde(default)]
    branches: Vec<RawBranch>,
    #[serde(default)]
    full_product_names: Vec<RawFullProductName>,
    #[serde(default)]
    relationships: Vec<RawRelationship>,
    #[serde(default)]
    product_groups: Vec<RawGroup>,
}

#[derive(Deserialize)]
struct RawBranch {
    #[serde(default)]
    product: Option<RawFullProductName>,
    #[serde(default)]
    branches: Vec<RawBranch>,
}

#[derive(Deserialize)]
struct RawFullProductName {
    name: String,
    product_id: String,
    #[serde(default)]
    product_identification_helper: Option<RawHelper>,
}

#[derive(Deserialize)]
struct RawHelper {
    #[serde(default)]
    purl: Option<String>,
    /// CSAF 2.1 spelling.
    #[serde(default)]
    purls: Vec<String>,
}

#[derive(Deserialize)]
struct RawRelationship {
    full_product_name: RawFullProductName,
    product_reference: String,
    relates_to_product_reference: String,
}

#[derive(Deserialize)]
struct RawGroup {
    group_id: String,
    product_ids: Vec<String>,
}

#[derive(Deserialize)]
struct RawVulnerability {
    #[serde(default)]
    cve: Option<String>,
    #[serde(default)]
    ids: Vec<RawId>,
    #[serde(default)]
    notes: Vec<RawNote>,
    #[serde(default)]
    product_status: Option<RawProductStatus>,
    #[serde(default)]
    flags: Vec<RawFlag>,
    #[serde(default)]
    threats: Vec<RawThreat>,
    #[serde(default)]
    remediations: Vec<RawRemediation>,
}

#[derive(Deserialize)]
struct RawId {
    text: String,
}

#[derive(Deserialize)]
struct RawNote {
    category: String,
    text: String,
}

#[derive(Deserialize, Default)]
struct RawProductStatus {
    #[serde(default)]
    fixed: Vec<String>,
    #[serde(default)]
    first_fixed: Vec<String>,
    #[serde(default)]
    known_affected: Vec<String>,
    #[serde(default)]
    known_not_affected: Vec<String>,
    #[serde(default)]
    under_investigation: Vec<String>,
}

#[derive(Deserialize)]
struct RawFlag {
    label: RawLabel,
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    product_ids: Vec<String>,
    #[serde(default)]
    group_ids: Vec<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum RawLabel {
    ComponentNotPresent,
    VulnerableCodeNotPresent,
    VulnerableCodeNotInExecutePath,
    VulnerableCodeCannotBeControlledByAdversary,
    InlineMitigationsAlreadyExist,
}

impl From<RawLabel> for Justification {
    fn from(l: RawLabel) -> Self {
        match l {
            RawLabel::ComponentNotPresent => Justification::ComponentNotPresent,
            RawLabel::VulnerableCodeNotPresent => Justification::VulnerableCodeNotPresent,
            RawLabel::VulnerableCodeNotInExecutePath => {
                Justification::VulnerableCodeNotInExecutePath
            }
            RawLabel::VulnerableCodeCannotBeControlledByAdversary => {
                Justification::VulnerableCodeCannotBeControlledByAdversary
            }
            RawLabel::InlineMitigationsAlreadyExist => Justification::InlineMitigationsAlreadyExist,
        }
    }
}

#[derive(Deserialize)]
struct RawThreat {
    category: String,
    details: String,
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    product_ids: Vec<String>,
    #[serde(default)]
    group_ids: Vec<String>,
}

#[derive(Deserialize)]
struct RawRemediation {
    category: String,
    details: String,
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    product_ids: Vec<String>,
    #[serde(default)]
    group_ids: Vec<String>,
}

/// What the product tree says about product ids.
struct Tree {
    /// product id → purl helper or name.
    names: HashMap<String, String>,
    /// combined id → (component id, product id).
    relations: HashMap<String, (String, String)>,
    /// combined id → its own full product name.
    relation_names: HashMap<String, String>,
    groups: HashMap<String, Vec<String>>,
}

impl Tree {
    fn new(raw: RawProductTree) -> Self {
        fn add(f: &RawFullProductName, names: &mut HashMap<String, String>) {
            let helper = f.product_identification_helper.as_ref();
            let target = helper
                .and_then(|h| h.purl.clone().or_else(|| h.purls.first().cloned()))
                .unwrap_or_else(|| f.name.clone());
            names.insert(f.product_id.clone(), target);
        }
        fn walk(b: &RawBranch, names: &mut HashMap<String, String>) {
            if let Some(p) = &b.product {
                add(p, names);
            }
            for child in &b.branches {
                walk(child, names);
            }
        }
        let mut names = HashMap::new();
        for b in &raw.branches {
            walk(b, &mut names);
        }
        for f in &raw.full_product_names {
            add(f, &mut names);
        }
        let mut relations = HashMap::new();
        let mut relation_names = HashMap::new();
        for r in raw.relationships {
            let id = r.full_product_name.product_id.clone();
            relation_names.insert(id.clone(), r.full_product_name.name);
            relations.insert(id, (r.product_reference, r.relates_to_product_reference));
        }
        let groups = raw
            .product_groups
            .into_iter()
            .map(|g| (g.group_id, g.product_ids))
            .collect();
        Self {
            names,
            relations,
            relation_names,
            groups,
        }
    }

    fn name(&self, id: &str) -> String {
        self.names.get(id).cloned().unwrap_or_else(|| id.to_owned())
    }

    /// Whether a list of product and group ids covers `pid` (or, for a
    /// combined id, the image it belongs to).
    fn covers(&self, product_ids: &[String], group_ids: &[String], pid: &str) -> bool {
        let direct = |id: &str| {
            product_ids.iter().any(|p| p == id)
                || group_ids.iter().any(|g| {
                    self.groups
                        .get(g)
                        .is_some_and(|ids| ids.iter().any(|p| p == id))
                })
        };
        direct(pid)
            || self
                .relations
                .get(pid)
                .is_some_and(|(_, image)| direct(image))
    }

    /// The product and, for a combined id, the package it names.
    fn resolve(&self, pid: &str) -> (Product, Option<Purl>) {
        match self.relations.get(pid) {
            Some((component, image)) => match self.name(component).parse::<Purl>() {
                Ok(purl) => (product_from_id(&self.name(image), None), Some(purl)),
                Err(_) => {
                    let name = self
                        .relation_names
                        .get(pid)
                        .cloned()
                        .unwrap_or_else(|| pid.to_owned());
                    (product_from_id(&name, None), None)
                }
            },
            None => (product_from_id(&self.name(pid), None), None),
        }
    }
}

struct VulnContext<'a> {
    tree: &'a Tree,
    decider: &'a vexxy_model::Decider,
    at: String,
}

fn verdict_for(
    v: &RawVulnerability,
    status: Status,
    pid: &str,
    list_at: &str,
    cx: &VulnContext<'_>,
) -> Result<(Verdict, Option<String>), ConvertError> {
    let tree = cx.tree;
    let mut date: Option<String> = None;
    let (justification, impact, notes, action) = match status {
        Status::NotAffected => {
            let flag = v
                .flags
                .iter()
                .find(|f| tree.covers(&f.product_ids, &f.group_ids, pid));
            let threat = v
                .threats
                .iter()
                .find(|t| t.category == "impact" && tree.covers(&t.product_ids, &t.group_ids, pid));
            date = flag
                .and_then(|f| f.date.clone())
                .or_else(|| threat.and_then(|t| t.date.clone()));
            match flag {
                Some(f) => (
                    Some(Justification::from(f.label)),
                    None,
                    threat.map(|t| t.details.clone()),
                    None,
                ),
                None => (None, threat.map(|t| t.details.clone()), None, None),
            }
        }
        Status::Affected => {
            let r = v
                .remediations
                .iter()
                .find(|r| tree.covers(&r.product_ids, &r.group_ids, pid));
            date = r.and_then(|r| r.date.clone());
            let action = r.map(|r| {
                if r.details.is_empty() {
                    r.category.clone()
                } else {
                    r.details.clone()
                }
            });
            (None, None, None, action)
        }
        Status::Fixed | Status::UnderInvestigation => (None, None, None, None),
    };
    let verdict = Verdict::new(status, justification, impact, action, cx.decider.clone())
        .map_err(|e| ConvertError::new(list_at, format!("product {pid}: {e} (csaf needs a flag or impact threat for not affected products and a remediation for affected ones)")))?
        .with_confidence(Confidence::CERTAIN)
        .with_notes(notes.unwrap_or_default());
    Ok((verdict, date))
}

fn statements_of(
    v: RawVulnerability,
    i: usize,
    tree: &Tree,
    decider: &vexxy_model::Decider,
) -> Result<Vec<VexStatement>, ConvertError> {
    let at = format!("/vulnerabilities/{i}");
    let (id, aliases) = match (&v.cve, v.ids.first()) {
        (Some(cve), _) => (
            cve.clone(),
            v.ids.iter().map(|x| x.text.clone()).collect::<Vec<_>>(),
        ),
        (None, Some(first)) => (
            first.text.clone(),
            v.ids.iter().skip(1).map(|x| x.text.clone()).collect(),
        ),
        (None, None) => {
            return Err(ConvertError::new(
                &at,
                "vulnerability has neither cve nor ids",
            ))
        }
    };
    let description = v
        .notes
        .iter()
        .find(|n| n.category == "description")
        .map(|n| n.text.clone());
    let cx = VulnContext {
        tree,
        decider,
        at: at.clone(),
    };
    let status = v.product_status.as_ref();
    let lists: [(Status, &str, Vec<&String>); 4] = [
        (
            Status::NotAffected,
            "known_not_affected",
            status
                .map(|s| s.known_not_affected.iter().collect())
                .unwrap_or_default(),
        ),
        (
            Status::Affected,
            "known_affected",
            status
                .map(|s| s.known_affected.iter().collect())
                .unwrap_or_default(),
        ),
        (
            Status::Fixed,
            "fixed",
            status
                .map(|s| s.fixed.iter().chain(&s.first_fixed).collect())
                .unwrap_or_default(),
        ),
        (
            Status::UnderInvestigation,
            "under_investigation",
            status
                .map(|s| s.under_investigation.iter().collect())
                .unwrap_or_default(),
        ),
    ];
    // Statements with the same product and verdict collect their packages.
    let mut out: Vec<VexStatement> = Vec::new();
    for (st, field, pids) in lists {
        for (k, pid) in pids.into_iter().enumerate() {
            let list_at = format!("{}/product_status/{field}/{k}", cx.at);
            let (verdict, date) = verdict_for(&v, st, pid, &list_at, &cx)?;
            let timestamp = parse_opt_time(date.as_deref(), &list_at)?;
            let (product, package) = tree.resolve(pid);
            let existing = out
                .iter_mut()
                .find(|s| s.product == product && s.verdict == verdict && s.timestamp == timestamp);
            match existing {
                Some(s) => s.subcomponents.extend(package),
                None => out.push(VexStatement {
                    vulnerability_id: id.clone(),
                    aliases: aliases.clone(),
                    description: description.clone(),
                    product,
                    subcomponents: package.into_iter().collect(),
                    verdict,
                    timestamp,
                }),
            }
        }
    }
    Ok(out)
}

impl TryFrom<RawCsaf> for VexDocument {
    type Error = ConvertError;

    fn try_from(raw: RawCsaf) -> Result<Self, Self::Error> {
        let tracking = &raw.document.tracking;
        let timestamp = parse_time(
            &tracking.current_release_date,
            "/document/tracking/current_release_date",
        )?;
        // Integer versions, or the major number of a semantic version.
        let version = tracking
            .version
            .split('.')
            .next()
            .and_then(|v| v.parse::<u32>().ok())
            .ok_or_else(|| {
                ConvertError::new(
                    "/document/tracking/version",
                    format!(
                        "version {:?} is neither an integer nor semver",
                        tracking.version
                    ),
                )
            })?;
        let author = raw.document.publisher.name.clone();
        let tooling = tracking.generator.as_ref().map(|g| {
            let engine = g.get("engine");
            let name = engine
                .and_then(|e| e.get("name"))
                .and_then(|n| n.as_str())
                .unwrap_or("unknown generator");
            match engine
                .and_then(|e| e.get("version"))
                .and_then(|n| n.as_str())
            {
                Some(v) => format!("{name} {v}"),
                None => name.to_owned(),
            }
        });
        let decider = reader_decider(&author, tooling.is_some());
        let tree = Tree::new(raw.product_tree.unwrap_or_default());
        let mut statements = Vec::new();
        for (i, v) in raw.vulnerabilities.into_iter().enumerate() {
            statements.extend(statements_of(v, i, &tree, &decider)?);
        }
        Ok(VexDocument {
            id: Some(raw.document.tracking.id),
            author,
            role: None,
            timestamp,
            last_updated: None,
            version,
            tooling,
            statements,
        })
    }
}
