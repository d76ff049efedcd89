use std::fmt;

use crate::Evidence;

/// VEX status (the four OpenVEX / CISA statuses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    NotAffected,
    Affected,
    Fixed,
    UnderInvestigation,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Self::NotAffected,
        Self::Affected,
        Self::Fixed,
        Self::UnderInvestigation,
    ];

    /// The OpenVEX spelling (`not_affected`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotAffected => "not_affected",
            Self::Affected => "affected",
            Self::Fixed => "fixed",
            Self::UnderInvestigation => "under_investigation",
        }
    }
    pub fn from_openvex(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a product is not affected (the OpenVEX / CISA justifications).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Justification {
    ComponentNotPresent,
    VulnerableCodeNotPresent,
    VulnerableCodeNotInExecutePath,
    VulnerableCodeCannotBeControlledByAdversary,
    InlineMitigationsAlreadyExist,
}

impl Justification {
    pub const ALL: [Justification; 5] = [
        Self::ComponentNotPresent,
        Self::VulnerableCodeNotPresent,
        Self::VulnerableCodeNotInExecutePath,
        Self::VulnerableCodeCannotBeControlledByAdversary,
        Self::InlineMitigationsAlreadyExist,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ComponentNotPresent => "component_not_present",
            Self::VulnerableCodeNotPresent => "vulnerable_code_not_present",
            Self::VulnerableCodeNotInExecutePath => "vulnerable_code_not_in_execute_path",
            Self::VulnerableCodeCannotBeControlledByAdversary => {
                "vulnerable_code_cannot_be_controlled_by_adversary"
            }
            Self::InlineMitigationsAlreadyExist => "inline_mitigations_already_exist",
        }
    }
    pub fn from_openvex(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|j| j.as_str() == s)
    }
}

impl fmt::Display for Justification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How sure a verdict is, `0.0..=1.0`.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Confidence(f64);

#[derive(Debug, thiserror::Error)]
#[error("confidence {0} is outside 0..=1")]
pub struct ConfidenceError(pub f64);

impl Confidence {
    pub const CERTAIN: Confidence = Confidence(1.0);
    pub const NONE: Confidence = Confidence(0.0);

    pub fn new(value: f64) -> Result<Self, ConfidenceError> {
        if value.is_finite() && (0.0..=1.0).contains(&value) {
            Ok(Self(value))
        } else {
            Err(ConfidenceError(value))
        }
    }
    /// Like [`Confidence::new`], clamping into range (NaN becomes 0).
    pub fn clamped(value: f64) -> Self {
        if value.is_nan() {
            Self(0.0)
        } else {
            Self(value.clamp(0.0, 1.0))
        }
    }
    pub fn get(self) -> f64 {
        self.0
    }
    /// Rounded to two decimals, the precision documents carry.
    pub fn rounded(self) -> f64 {
        (self.0 * 100.0).round() / 100.0
    }
}

impl fmt::Display for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2}", self.0)
    }
}

/// Who or what reached a verdict.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Decider {
    /// An automated evidence provider of vexxy, by its id.
    Automated { provider: String },
    /// A person, by the author string of the statement they wrote.
    Human { author: String },
    /// Imported from another tool's VEX document whose author we name.
    Imported { author: String },
}

impl Decider {
    pub fn automated(provider: &str) -> Self {
        Self::Automated {
            provider: provider.to_owned(),
        }
    }
    pub fn is_human(&self) -> bool {
        matches!(self, Self::Human { .. })
    }
}

/// A decision about one vulnerability in one package of one product.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    status: Status,
    justification: Option<Justification>,
    impact_statement: Option<String>,
    action_statement: Option<String>,
    pub confidence: Confidence,
    pub evidence: Vec<Evidence>,
    pub decided_by: Decider,
    /// A one-line human explanation; becomes `status_notes`.
    pub notes: String,
}

/// A verdict that would not make a valid VEX statement.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerdictError {
    #[error("a not_affected verdict needs a justification or an impact statement")]
    NotAffectedWithoutReason,
    #[error("an affected verdict needs an action statement")]
    AffectedWithoutAction,
    #[error("a {0} verdict carries no justification, impact or action statement")]
    UnexpectedStatement(Status),
}

impl Verdict {
    /// Builds a verdict, enforcing what each status must and must not carry.
    pub fn new(
        status: Status,
        justification: Option<Justification>,
        impact_statement: Option<String>,
        action_statement: Option<String>,
        decided_by: Decider,
    ) -> Result<Self, VerdictError> {
        match status {
            Status::NotAffected if justification.is_none() && impact_statement.is_none() => {
                return Err(VerdictError::NotAffectedWithoutReason)
            }
            Status::Affected if action_statement.is_none() => {
                return Err(VerdictError::AffectedWithoutAction)
            }
            Status::Fixed | Status::UnderInvestigation
                if justification.is_some()
                    || impact_statement.is_some()
                    || action_statement.is_some() =>
            {
                return Err(VerdictError::UnexpectedStatement(status))
            }
            _ => {}
        }
        let (justification, impact_statement) = match status {
            Status::NotAffected => (justification, impact_statement),
            _ => (None, None),
        };
        Ok(Self {
            status,
            justification,
            impact_statement,
            action_statement: if status == Status::Affected {
                action_statement
            } else {
                None
            },
            confidence: Confidence::NONE,
            evidence: Vec::new(),
            decided_by,
            notes: String::new(),
        })
    }

    pub fn not_affected(justification: Justification, decided_by: Decider) -> Self {
        Self {
            status: Status::NotAffected,
            justification: Some(justification),
            impact_statement: None,
            action_statement: None,
            confidence: Confidence::NONE,
            evidence: Vec::new(),
            decided_by,
            notes: String::new(),
        }
    }

    pub fn affected(action_statement: String, decided_by: Decider) -> Self {
        Self {
            status: Status::Affected,
            justification: None,
            impact_statement: None,
            action_statement: Some(action_statement),
            confidence: Confidence::NONE,
            evidence: Vec::new(),
            decided_by,
            notes: String::new(),
        }
    }

    pub fn under_investigation(decided_by: Decider) -> Self {
        Self {
            status: Status::UnderInvestigation,
            justification: None,
            impact_statement: None,
            action_statement: None,
            confidence: Confidence::NONE,
            evidence: Vec::new(),
            decided_by,
            notes: String::new(),
        }
    }

    pub fn fixed(decided_by: Decider) -> Self {
        Self {
            status: Status::Fixed,
            ..Self::under_investigation(decided_by)
        }
    }

    #[must_use]
    pub fn with_confidence(mut self, c: Confidence) -> Self {
        self.confidence = c;
        self
    }
    #[must_use]
    pub fn with_evidence(mut self, e: Evidence) -> Self {
        self.evidence.push(e);
        self
    }
    #[must_use]
    pub fn with_notes(mut self, notes: impl Into<String>) -> Self {
        self.notes = notes.into();
        self
    }

    pub fn status(&self) -> Status {
        self.status
    }
    pub fn justification(&self) -> Option<Justification> {
        self.justification
    }
    pub fn impact_statement(&self) -> Option<&str> {
        self.impact_statement.as_deref()
    }
    pub fn action_statement(&self) -> Option<&str> {
        self.action_statement.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_rules_are_enforced() {
        let d = || Decider::automated("test");
        assert_eq!(
            Verdict::new(Status::NotAffected, None, None, None, d()).err(),
            Some(VerdictError::NotAffectedWithoutReason)
        );
        assert_eq!(
            Verdict::new(Status::Affected, None, None, None, d()).err(),
            Some(VerdictError::AffectedWithoutAction)
        );
        assert!(Verdict::new(
            Status::Fixed,
            Some(Justification::ComponentNotPresent),
            None,
            None,
            d()
        )
        .is_err());
        assert!(Verdict::new(Status::NotAffected, None, Some("x".into()), None, d()).is_ok());
        assert!(Confidence::new(1.5).is_err() && Confidence::new(f64::NAN).is_err());
        assert_eq!(Confidence::clamped(2.0).get(), 1.0);
    }

    #[test]
    fn spellings_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::from_openvex(s.as_str()), Some(s));
        }
        for j in Justification::ALL {
            assert_eq!(Justification::from_openvex(j.as_str()), Some(j));
        }
    }
}
