//! The decide-and-render half every entry point shares: verdicts from the
//! evidence, then the documents and reports.

use vexxy_model::{ExecutionProfile, Finding, Inventory, Product, ReachFacts, VexDocument};

use crate::{
    context::Timings, AnalyzeError, ArtifactKind, Artifacts, Context, DecideSettings, Phase,
};

/// The tool name written into documents.
pub(crate) const TOOL: &str = concat!("vexxy/", env!("CARGO_PKG_VERSION"));

/// Everything a decision is made from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Evidence<'a> {
    pub(crate) product: &'a Product,
    pub(crate) findings: &'a [Finding],
    pub(crate) inventory: Option<&'a Inventory>,
    pub(crate) facts: &'a ReachFacts,
    pub(crate) profile: Option<&'a ExecutionProfile>,
    /// The run started another command than the image's own.
    pub(crate) command_override: Option<&'a vexxy_model::CommandOverride>,
}

/// Decides every finding; the document is `None` when there is nothing
/// to state (VEX documents need at least one statement).
pub(crate) fn decide(
    evidence: &Evidence<'_>,
    settings: &DecideSettings,
    ctx: &Context<'_>,
    timings: &mut Timings,
) -> (vexxy_decide::Outcome, Option<VexDocument>) {
    let step = ctx.start(Phase::Deciding);
    let inputs = vexxy_decide::Inputs {
        product: evidence.product,
        findings: evidence.findings,
        inventory: evidence.inventory,
        facts: evidence.facts,
        existing: &settings.existing,
        profile: evidence.profile,
        command_override: evidence.command_override,
    };
    let mut outcome = vexxy_decide::decide(&inputs, &settings.policy);
    vexxy_decide::record_claims(&inputs, &settings.claims, &mut outcome);
    let document = (!outcome.statements.is_empty()).then(|| {
        vexxy_decide::document(
            outcome.statements.clone(),
            &settings.author,
            TOOL,
            settings.timestamp,
        )
    });
    timings.finish(
        ctx,
        step,
        format!("{} statements", outcome.statements.len()),
    );
    (outcome, document)
}

/// A VEX document format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VexFormat {
    /// OpenVEX 0.2.0 (Trivy and Grype apply it).
    OpenVex,
    /// CycloneDX 1.6 VEX.
    CycloneDx,
    /// CSAF 2.0 VEX profile.
    Csaf,
}

/// How a single VEX document is rendered.
#[derive(Clone, Debug, Default)]
pub struct VexOptions {
    /// Add a `vexxy_evidence` object to each statement (outside the
    /// OpenVEX schema).
    pub embed_evidence: bool,
    /// BOM-link CycloneDX VEX to this SBOM.
    pub bom_link: Option<vexxy_vex::BomLink>,
}

/// One VEX document in `format`. OpenVEX is checked against the official
/// schema first: a document that fails it is a bug of ours, never written.
pub fn render_vex(
    doc: &VexDocument,
    format: VexFormat,
    options: &VexOptions,
) -> Result<Vec<u8>, AnalyzeError> {
    let text = match format {
        VexFormat::OpenVex => {
            let text = vexxy_vex::write_openvex(
                doc,
                &vexxy_vex::OpenVexOptions {
                    embed_evidence: options.embed_evidence,
                    pretty: true,
                },
            )?;
            if !options.embed_evidence {
                let checked = vexxy_vex::validate_openvex(
                    text.as_bytes(),
                    std::path::Path::new(ArtifactKind::OpenVex.file_name()),
                )?;
                if !checked.is_valid() {
                    return Err(AnalyzeError::internal(format!(
                        "the OpenVEX document fails the official schema: {:?}",
                        checked.problems
                    )));
                }
            }
            text
        }
        VexFormat::CycloneDx => vexxy_vex::write_cyclonedx(
            doc,
            &vexxy_vex::CycloneDxOptions {
                sbom: options.bom_link.clone(),
                embed_evidence: options.embed_evidence,
            },
        )?,
        VexFormat::Csaf => vexxy_vex::write_csaf(doc, &vexxy_vex::CsafOptions::default())?,
    };
    Ok(text.into_bytes())
}

/// The evidence JSON of a document (docs/evidence-schema.md).
pub fn render_evidence(doc: &VexDocument) -> Result<Vec<u8>, AnalyzeError> {
    Ok(vexxy_vex::write_evidence(doc)?.into_bytes())
}

/// What the full set of artifacts is rendered from.
#[derive(Debug)]
pub(crate) struct Rendering<'a> {
    pub(crate) evidence: Evidence<'a>,
    pub(crate) inventory: &'a Inventory,
    pub(crate) profile: &'a ExecutionProfile,
    pub(crate) distro: Option<String>,
    pub(crate) outcome: &'a vexxy_decide::Outcome,
    pub(crate) document: Option<&'a VexDocument>,
    pub(crate) timestamp: time::OffsetDateTime,
}

/// Every artifact of an analysis; returns them and how many packages had
/// code used.
pub(crate) fn render_all(
    r: &Rendering<'_>,
    ctx: &Context<'_>,
    timings: &mut Timings,
) -> Result<(Artifacts, usize), AnalyzeError> {
    let step = ctx.start(Phase::Rendering);
    let mut artifacts = Artifacts::default();
    if let Some(doc) = r.document {
        artifacts.insert(
            ArtifactKind::OpenVex,
            render_vex(doc, VexFormat::OpenVex, &VexOptions::default())?,
        );
        artifacts.insert(
            ArtifactKind::CycloneDxVex,
            render_vex(
                doc,
                VexFormat::CycloneDx,
                &VexOptions {
                    embed_evidence: true,
                    bom_link: None,
                },
            )?,
        );
        artifacts.insert(
            ArtifactKind::Csaf,
            render_vex(doc, VexFormat::Csaf, &VexOptions::default())?,
        );
        artifacts.insert(ArtifactKind::Evidence, render_evidence(doc)?);
    }
    let mut profile_json = vexxy_profile::to_json(r.profile);
    profile_json.push(b'\n');
    artifacts.insert(ArtifactKind::Profile, profile_json);

    let used = vexxy_report::runtime_inventory(r.inventory, r.profile);
    let subject = vexxy_sbom::SbomSubject {
        name: r.evidence.product.name.clone(),
        digest: r.evidence.product.digest.clone(),
        distro: r.distro.clone(),
    };
    let sbom_opts = vexxy_sbom::SbomOptions {
        timestamp: r.timestamp,
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
        include_files: true,
    };
    artifacts.insert(
        ArtifactKind::RuntimeSbom,
        vexxy_sbom::write_cyclonedx(&subject, &used, &sbom_opts)?.into_bytes(),
    );

    let named = timings.named();
    let mut report =
        vexxy_report::ReportInput::new(r.evidence.product, r.evidence.findings, r.outcome);
    report.inventory = Some(r.inventory);
    report.profile = Some(r.profile);
    report.timings = &named;
    artifacts.insert(
        ArtifactKind::ReportMarkdown,
        vexxy_report::markdown(&report).into_bytes(),
    );
    artifacts.insert(
        ArtifactKind::ReportHtml,
        vexxy_report::html(&report).into_bytes(),
    );
    timings.finish(ctx, step, format!("{} artifacts", artifacts.len()));
    Ok((artifacts, used.packages().len()))
}
