//! The human reports: a Markdown snapshot, HTML well-formedness and
//! escaping.

mod common;

use scraper::{Html, Selector};
use vexxy_model::{ExecutionProfile, LostEvents, Severity, Verdict};
use vexxy_report::{html, markdown, ReportInput};

fn full_input<'a>(
    product: &'a vexxy_model::Product,
    findings: &'a [vexxy_model::Finding],
    outcome: &'a vexxy_decide::Outcome,
    inventory: &'a vexxy_model::Inventory,
    profile: &'a ExecutionProfile,
    timings: &'a [(String, std::time::Duration)],
) -> ReportInput<'a> {
    ReportInput {
        inventory: Some(inventory),
        profile: Some(profile),
        timings,
        ..ReportInput::new(product, findings, outcome)
    }
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).expect("valid selector")
}

#[test]
fn markdown_report_snapshot() {
    let (product, findings, outcome) = (common::product(), common::findings(), common::outcome());
    let (inventory, profile, timings) = (common::inventory(), common::profile(), common::timings());
    let input = full_input(
        &product, &findings, &outcome, &inventory, &profile, &timings,
    );
    let md = markdown(&input);
    insta::assert_snapshot!("nginx_markdown", md);
    assert_eq!(md, markdown(&input), "rendering is deterministic");
}

#[test]
fn markdown_without_run_or_inventory() {
    let (product, findings, outcome) = (common::product(), common::findings(), common::outcome());
    let md = markdown(&ReportInput::new(&product, &findings, &outcome));
    assert!(!md.contains("## Run"), "{md}");
    assert!(!md.contains("## Phase timings"), "{md}");
    assert!(!md.contains("Code used at runtime"), "{md}");
    assert!(md.contains("| `affected` | 2 | 25.0% |"), "{md}");
}

#[test]
fn rows_are_ordered_by_status_then_severity() {
    let (product, findings, outcome) = (common::product(), common::findings(), common::outcome());
    let md = markdown(&ReportInput::new(&product, &findings, &outcome));
    let order: Vec<&str> = md
        .lines()
        .filter(|l| l.starts_with("| `") && l.contains("` | `"))
        .filter_map(|l| l.split('`').nth(1))
        .collect();
    assert_eq!(
        order,
        [
            "libssl3",
            "perl-base",
            "linux-libc-dev",
            "libtiff6",
            "libgcc-s1",
            "libgd3"
        ]
    );
}

#[test]
fn lost_events_are_named() {
    let (product, findings, outcome) = (common::product(), common::findings(), common::outcome());
    let mut profile = common::profile();
    let md = markdown(&ReportInput {
        profile: Some(&profile),
        ..ReportInput::new(&product, &findings, &outcome)
    });
    assert!(md.contains("- **Lost events:** no events lost"), "{md}");
    profile.lost = LostEvents {
        ring_buffer: 3,
        map_full: [("files".to_owned(), 12)].into(),
        truncated_paths: 2,
        ..LostEvents::default()
    };
    let md = markdown(&ReportInput {
        profile: Some(&profile),
        ..ReportInput::new(&product, &findings, &outcome)
    });
    assert!(
        md.contains("- **Lost events:** 3 process events (ring buffer full), 12 entries of map files (map full), 2 truncated paths"),
        "{md}"
    );
}

#[test]
fn html_is_well_formed_and_self_contained() {
    let (product, findings, outcome) = (common::product(), common::findings(), common::outcome());
    let (inventory, profile, timings) = (common::inventory(), common::profile(), common::timings());
    let input = full_input(
        &product, &findings, &outcome, &inventory, &profile, &timings,
    );
    let page = html(&input);
    assert!(page.starts_with("<!DOCTYPE html>\n"));
    let doc = Html::parse_document(&page);
    assert!(
        doc.errors.is_empty(),
        "html5 parse errors: {:?}",
        doc.errors
    );
    assert_eq!(format!("{:?}", doc.quirks_mode), "NoQuirks");

    // One row per package × verdict: libssl3 (2 CVEs), perl-base,
    // linux-libc-dev (2 CVEs), libtiff6, libgd3, libgcc-s1.
    let rows: Vec<_> = doc.select(&sel("table#verdicts > tbody > tr")).collect();
    assert_eq!(rows.len(), 6);
    let header_cells = doc.select(&sel("table#verdicts > thead > tr > th")).count();
    for r in &rows {
        assert_eq!(r.select(&sel("td")).count(), header_cells);
    }
    let first: String = rows[0]
        .select(&sel("td"))
        .next()
        .expect("cell")
        .text()
        .collect();
    assert_eq!(first, "libssl3");
    assert_eq!(rows[0].value().attr("class"), Some("row-affected"));
    assert_eq!(
        doc.select(&sel("table#timing-table > tbody > tr")).count(),
        5
    );
    assert!(doc.select(&sel("section#run")).next().is_some());

    // Nothing is fetched or run.
    for tag in ["script", "link", "img", "iframe", "object", "embed", "base"] {
        assert_eq!(doc.select(&sel(tag)).count(), 0, "<{tag}> present");
    }
    assert_eq!(doc.select(&sel("[src], [href], [style]")).count(), 0);
    let csp = doc
        .select(&sel("meta[http-equiv=\"Content-Security-Policy\"]"))
        .next()
        .and_then(|m| m.value().attr("content"));
    assert_eq!(csp, Some("default-src 'none'; style-src 'unsafe-inline'"));
}

#[test]
fn untrusted_strings_are_escaped() {
    let evil = "<script>alert(1)</script>";
    let mut product = common::product();
    product.name = "evil\"><img src=x onerror=alert(1)>".to_owned();
    let mut findings = common::findings();
    findings[6].package.name = evil.to_owned();
    findings[6].package.version = "1.0'\"&<b>".to_owned();
    findings[6].vulnerability.id = "CVE-<i>1</i>".to_owned();
    findings[6].vulnerability.severity = Severity::Critical;
    let mut verdicts = common::verdicts();
    verdicts[6].0 = Verdict::under_investigation(vexxy_model::Decider::automated("vexxy"))
        .with_notes(format!("notes {evil} | with a pipe\nand a newline"))
        .with_evidence(
            vexxy_model::Evidence::new(
                "runtime",
                vexxy_model::EvidenceSource::Runtime,
                format!("observed {evil}"),
            )
            .fact(
                "path",
                "</td></tr></table><script>x</script>\u{0}\u{1b}[31m",
            ),
        );
    let outcome = common::outcome_for(verdicts, 8);
    let input = ReportInput::new(&product, &findings, &outcome);

    let page = html(&input);
    assert!(!page.contains("<script"), "raw <script> in html");
    assert!(!page.contains("<img"), "raw <img> in html");
    assert!(!page.contains("<b>") && !page.contains("<i>1"));
    assert!(!page.contains('\u{0}') && !page.contains('\u{1b}'));
    let doc = Html::parse_document(&page);
    assert!(
        doc.errors.is_empty(),
        "html5 parse errors: {:?}",
        doc.errors
    );
    assert_eq!(doc.select(&sel("script, img")).count(), 0);
    assert_eq!(doc.select(&sel("table#verdicts > tbody > tr")).count(), 6);
    // The browser shows the original text.
    let cells: Vec<String> = doc
        .select(&sel("table#verdicts > tbody > tr.row-under_investigation"))
        .next()
        .expect("the under_investigation row")
        .select(&sel("td"))
        .map(|c| c.text().collect())
        .collect();
    assert_eq!(cells[0], evil);
    assert_eq!(cells[1], "1.0'\"&<b>");
    let title: String = doc
        .select(&sel("title"))
        .next()
        .expect("title")
        .text()
        .collect();
    assert_eq!(
        title,
        "vexxy report: evil\"><img src=x onerror=alert(1)>:1.27"
    );

    let md = markdown(&input);
    assert!(
        md.contains("`<script>alert(1)</script>`"),
        "name as a code span"
    );
    assert!(
        md.contains("observed \\<script\\>alert(1)\\</script\\>"),
        "prose escaped"
    );
    assert!(md.contains("notes \\<script\\>alert(1)\\</script\\> \\| with a pipe and a newline"));
    assert!(!md.contains('\u{0}') && !md.contains('\u{1b}'));
    // Every table row still has its cells: no pipe or newline broke out.
    let row = md
        .lines()
        .find(|l| l.starts_with("| `<script>"))
        .expect("row of the evil package");
    let unescaped_pipes = row
        .char_indices()
        .filter(|(i, c)| *c == '|' && (*i == 0 || row.as_bytes()[i - 1] != b'\\'))
        .count();
    assert_eq!(unescaped_pipes, 9, "{row}");
}

#[test]
fn empty_outcome_renders() {
    let product = common::product();
    let outcome = common::outcome_for(Vec::new(), 0);
    let input = ReportInput::new(&product, &[], &outcome);
    let md = markdown(&input);
    assert!(md.contains("No findings."));
    assert!(md.contains("| **total** | 0 | 0.0% |"), "{md}");
    let doc = Html::parse_document(&html(&input));
    assert!(doc.errors.is_empty(), "{:?}", doc.errors);
}

#[test]
fn out_of_range_decisions_are_skipped() {
    let (product, outcome) = (common::product(), common::outcome());
    let findings = &common::findings()[..3];
    let md = markdown(&ReportInput::new(&product, findings, &outcome));
    assert!(
        md.contains("libtiff6") && !md.contains("`perl-base`"),
        "{md}"
    );
}
