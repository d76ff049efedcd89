//! What every page shares: the layout's fields and the formatting of
//! numbers, times, digests and verdicts for people. Pure functions.

use crate::session::Signed;

/// The frame of every signed-in page: who is signed in, the CSRF token
/// its forms carry, the navigation entry that is current, and a message
/// about what just happened.
#[derive(Debug)]
pub(crate) struct Layout {
    pub org: String,
    pub who: String,
    pub csrf: String,
    pub active: &'static str,
    pub flash: Option<Flash>,
}

/// A message about the last action.
#[derive(Debug)]
pub(crate) struct Flash {
    pub text: String,
    /// The VEX version the action issued, when it issued one.
    pub vex_version: Option<i64>,
}

impl Layout {
    pub(crate) fn new(signed: &Signed, active: &'static str) -> Self {
        Self {
            org: signed.caller.org.name.clone(),
            who: signed.caller.who().to_owned(),
            csrf: signed.csrf.clone(),
            active,
            flash: None,
        }
    }

    /// `aria-current` for a navigation entry.
    pub(crate) fn current(&self, entry: &str) -> &'static str {
        if self.active == entry {
            "page"
        } else {
            "false"
        }
    }
}

/// An RFC 3339 time as people read it: `2026-12-06 16:43 UTC`.
pub(crate) fn when(rfc3339: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    match time::OffsetDateTime::parse(rfc3339, &Rfc3339) {
        Ok(t) => {
            let t = t.to_offset(time::UtcOffset::UTC);
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        }
        Err(_) => rfc3339.to_owned(),
    }
}

/// A ratio as a percentage with one decimal.
pub(crate) fn percent(ratio: f64) -> String {
    format!("{:.1}%", ratio * 100.0)
}

/// A digest shortened for a table: `sha256:` and 12 hex digits.
pub(crate) fn short_digest(digest: &str) -> String {
    match digest.split_once(':') {
        Some((alg, hex)) if hex.len() > 12 => format!("{alg}:{}", &hex[..12]),
        _ => digest.to_owned(),
    }
}

/// A verdict or label for people: `not_affected` → `not affected`.
pub(crate) fn words(token: &str) -> String {
    token.replace('_', " ")
}

/// A duration in seconds, roughly: `42 s`, `7 min`, `3 h`, `2 d`.
pub(crate) fn age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

/// One bar of a chart, in the SVG's user units.
#[derive(Debug)]
pub(crate) struct Bar {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub class: &'static str,
    pub label: String,
}

/// A grouped bar chart of weekly numbers, laid out for an SVG
/// `viewBox="0 0 WIDTH HEIGHT"`: one group per week, one bar per series.
#[derive(Debug)]
pub(crate) struct WeeklyChart {
    pub width: u32,
    pub height: u32,
    pub bars: Vec<Bar>,
    /// Week labels under the groups: (x of the group's middle, text).
    pub labels: Vec<(u32, String)>,
    pub max: i64,
}

/// Lays out `weeks` as (label, [series values]) with `series` classes.
pub(crate) fn weekly_chart(weeks: &[(String, [i64; 3])], series: [&'static str; 3]) -> WeeklyChart {
    const HEIGHT: u32 = 160;
    const PLOT: u32 = 130;
    const GROUP: u32 = 48;
    const BAR: u32 = 12;
    let max = weeks
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut bars = Vec::new();
    let mut labels = Vec::new();
    for (i, (label, values)) in weeks.iter().enumerate() {
        let gx = 8 + i as u32 * GROUP;
        for (j, v) in values.iter().enumerate() {
            let h = ((*v).max(0) as f64 / max as f64 * f64::from(PLOT)).round() as u32;
            bars.push(Bar {
                x: gx + j as u32 * (BAR + 2),
                y: PLOT - h,
                width: BAR,
                height: h.max(1),
                class: series[j],
                label: format!("{label}: {v} {}", words(series[j])),
            });
        }
        labels.push((gx + (3 * BAR + 4) / 2, label.clone()));
    }
    WeeklyChart {
        width: 16 + weeks.len() as u32 * GROUP,
        height: HEIGHT,
        bars,
        labels,
        max,
    }
}

/// [`words`] as a method, for templates: `{{ status.words() }}`.
pub(crate) trait Words {
    fn words(&self) -> String;
}

impl Words for str {
    fn words(&self) -> String {
        words(self)
    }
}

impl Words for String {
    fn words(&self) -> String {
        words(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_for_people() {
        assert_eq!(when("2026-12-06T16:43:11Z"), "2026-12-06 16:43 UTC");
        assert_eq!(when("not a time"), "not a time");
        assert_eq!(percent(0.4567), "45.7%");
        assert_eq!(
            short_digest(&format!("sha256:{}", "a".repeat(64))),
            "sha256:aaaaaaaaaaaa"
        );
        assert_eq!(words("not_affected"), "not affected");
        assert_eq!(age(30), "30 s");
        assert_eq!(age(4000), "66 min");
        assert_eq!(age(90_000), "25 h");
        assert_eq!(age(900_000), "10 d");
    }

    #[test]
    fn the_tallest_bar_fills_the_plot() {
        let c = weekly_chart(
            &[("a".into(), [1, 4, 0]), ("b".into(), [2, 0, 3])],
            ["analyses", "new_findings", "decisions"],
        );
        assert_eq!(c.bars.len(), 6);
        assert_eq!(c.max, 4);
        let tallest = c.bars.iter().map(|b| b.height).max().unwrap_or(0);
        assert_eq!(tallest, 130);
        // a zero still shows as a hairline
        assert!(c
            .bars
            .iter()
            .all(|b| b.height >= 1 && b.y + b.height <= 131));
    }
}
