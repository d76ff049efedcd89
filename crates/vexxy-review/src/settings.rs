//! An organisation's review rules and the reasons a statement needs a person.

use std::{fmt, str::FromStr};

use crate::ReviewError;

/// Which automated statements an organisation wants a person to look at.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReviewSettings {
    /// `not_affected` verdicts below this confidence (`0..=1`) need review.
    pub review_below: f64,
    /// Every `not_affected` verdict about a high or critical vulnerability
    /// needs a second pair of eyes.
    pub four_eyes: bool,
}

impl Default for ReviewSettings {
    fn default() -> Self {
        Self {
            review_below: vexxy_decide::Policy::DEFAULT_REVIEW_BELOW,
            four_eyes: false,
        }
    }
}

impl ReviewSettings {
    /// Checked settings: `review_below` must be a number in `0..=1`.
    pub fn new(review_below: f64, four_eyes: bool) -> Result<Self, ReviewError> {
        if !(review_below.is_finite() && (0.0..=1.0).contains(&review_below)) {
            return Err(ReviewError::field(
                "review_below",
                format!("{review_below} is outside 0..=1"),
            ));
        }
        Ok(Self {
            review_below,
            four_eyes,
        })
    }
}

/// Why a statement is in the review queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReviewReason {
    /// The engine could not decide (`under_investigation`).
    UnderInvestigation,
    /// `affected`, and no fixed version is known.
    AffectedWithoutFix,
    /// `not_affected` below the organisation's confidence threshold.
    LowConfidence,
    /// `not_affected` about a high or critical vulnerability, with four eyes on.
    FourEyes,
}

impl ReviewReason {
    pub const ALL: [ReviewReason; 4] = [
        Self::UnderInvestigation,
        Self::AffectedWithoutFix,
        Self::LowConfidence,
        Self::FourEyes,
    ];

    /// The stored and API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnderInvestigation => "under_investigation",
            Self::AffectedWithoutFix => "affected_no_fix",
            Self::LowConfidence => "low_confidence",
            Self::FourEyes => "four_eyes",
        }
    }
}

impl fmt::Display for ReviewReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReviewReason {
    type Err = ReviewError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                ReviewError::field(
                    "reason",
                    format!(
                        "unknown review reason {s:?}; expected one of {}",
                        Self::ALL.map(Self::as_str).join(", ")
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reasons_round_trip_and_unknown_ones_are_named() {
        for r in ReviewReason::ALL {
            assert_eq!(r.as_str().parse::<ReviewReason>().unwrap(), r);
            assert_eq!(r.to_string(), r.as_str());
        }
        let e = "lazy".parse::<ReviewReason>().unwrap_err();
        assert!(e
            .to_string()
            .starts_with("reason: unknown review reason \"lazy\""));
    }

    #[test]
    fn settings_are_checked() {
        assert_eq!(ReviewSettings::default().review_below, 0.6);
        assert!(ReviewSettings::new(0.0, true).is_ok());
        assert!(ReviewSettings::new(1.0, false).is_ok());
        for bad in [-0.1, 1.01, f64::NAN, f64::INFINITY] {
            let e = ReviewSettings::new(bad, false).unwrap_err();
            assert!(e.to_string().starts_with("review_below: "), "{e}");
        }
    }
}
