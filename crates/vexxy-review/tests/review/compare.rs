//! Comparing two issued documents.

use vexxy_model::{Severity, Status};
use vexxy_review::{compare, issue, Issue, ReviewError, StatementRecord};

use crate::support::{
    finding, findings, outcome, override_affected, product, record, records, DIGEST_A, DIGEST_B,
    T0, T1,
};

#[test]
fn compare_reports_added_removed_and_changed() {
    let a = product(DIGEST_A);
    let old_records = records();
    let old = issue(&Issue {
        product: &a,
        records: &old_records,
        humans: &[],
        version: 1,
        first_issued: T0,
        last_updated: None,
        author: "Example Org",
    })
    .unwrap();

    // the next digest: libgnutls30's finding is gone, a new one appeared,
    // and alice overrode libtiff6
    let mut next = findings();
    next.retain(|f| f.package.name != "libgnutls30");
    next.push(finding("CVE-2024-0006", "libssl3", Severity::High, &[]));
    let b = product(DIGEST_B);
    let new_records = StatementRecord::from_outcome(&next, &outcome(&next, DIGEST_B).decisions);
    let tiff = record(&new_records, "CVE-2024-0002", "libtiff6");
    let humans = [override_affected(tiff, T1)];
    let new = issue(&Issue {
        product: &b,
        records: &new_records,
        humans: &humans,
        version: 1,
        first_issued: T1,
        last_updated: None,
        author: "Example Org",
    })
    .unwrap();

    let diff = compare(&old, &new).unwrap();
    let keys = |list: &[vexxy_report::DiffEntry]| -> Vec<(String, String)> {
        list.iter()
            .map(|e| (e.key.vulnerability.clone(), e.key.package.clone()))
            .collect()
    };
    assert_eq!(
        keys(&diff.added),
        [(
            "CVE-2024-0006".to_owned(),
            "pkg:deb/debian/libssl3".to_owned()
        )]
    );
    assert_eq!(
        keys(&diff.removed),
        [(
            "CVE-2024-0004".to_owned(),
            "pkg:deb/debian/libgnutls30".to_owned()
        )]
    );
    assert_eq!(diff.changed.len(), 1, "{diff:?}");
    let c = &diff.changed[0];
    assert_eq!(c.key.vulnerability, "CVE-2024-0002");
    assert_eq!(
        (c.old.status, c.new.status, c.regression),
        (Status::NotAffected, Status::Affected, true)
    );
    assert_eq!(diff.old.timestamp, "2026-03-01T09:00:00Z");
    assert_eq!(diff.new.products.len(), 1);
    assert!(diff.new.products[0].ends_with(DIGEST_B));

    assert!(compare(&old, &old).unwrap().is_empty());
    match compare(b"{}", &new) {
        Err(ReviewError::Vex { which: "old", .. }) => {}
        other => panic!("expected an error about the old document, got {other:?}"),
    }
    match compare(&old, b"not json") {
        Err(ReviewError::Vex { which: "new", .. }) => {}
        other => panic!("expected an error about the new document, got {other:?}"),
    }
}
