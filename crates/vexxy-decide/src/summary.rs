use std::collections::BTreeMap;

use vexxy_model::Status;

use crate::{Decision, Policy};

/// Confidence bands of automated decisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Band {
    /// ≥ 0.85
    High,
    /// ≥ 0.60
    Medium,
    /// < 0.60
    Low,
}

impl Band {
    pub fn of(confidence: f64) -> Self {
        if confidence >= 0.85 {
            Self::High
        } else if confidence >= 0.6 {
            Self::Medium
        } else {
            Self::Low
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
        }
    }
}

/// Triage counts over findings (one vulnerability in one package).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub findings: usize,
    /// Distinct vulnerabilities (= statements written).
    pub statements: usize,
    pub by_status: BTreeMap<Status, usize>,
    /// Findings vexxy decided itself (not under_investigation), per band.
    pub automated_by_band: BTreeMap<Band, usize>,
    /// Findings decided by statements that already existed.
    pub existing: usize,
    pub under_investigation: usize,
    /// Under investigation, plus automated decisions below the review threshold.
    pub needs_review: usize,
    /// Findings decided automatically per justification.
    pub by_justification: BTreeMap<String, usize>,
}

impl Summary {
    pub(crate) fn of(decisions: &[Decision], statements: usize, policy: &Policy) -> Self {
        let mut s = Self {
            findings: decisions.len(),
            statements,
            ..Self::default()
        };
        for d in decisions {
            let v = &d.verdict;
            *s.by_status.entry(v.status()).or_insert(0) += 1;
            if d.existing {
                s.existing += 1;
                continue;
            }
            if v.status() == Status::UnderInvestigation {
                s.under_investigation += 1;
                s.needs_review += 1;
                continue;
            }
            *s.automated_by_band
                .entry(Band::of(v.confidence.get()))
                .or_insert(0) += 1;
            if let Some(j) = v.justification() {
                *s.by_justification.entry(j.as_str().to_owned()).or_insert(0) += 1;
            }
            if v.confidence.get() < policy.review_below.get() {
                s.needs_review += 1;
            }
        }
        s
    }

    /// Findings decided automatically (any band).
    pub fn automated(&self) -> usize {
        self.automated_by_band.values().sum()
    }
}
