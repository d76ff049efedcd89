//! The only places untrusted text enters a rendered document.
//!
//! Every string that comes from an image, a scanner report, a VEX document
//! or a trace (image names, package names and versions, vulnerability ids,
//! evidence text, paths) passes through exactly one of these functions on
//! its way out. Control characters never survive: they would break a
//! Markdown table row or make an HTML document invalid.

/// Text for HTML element content and double- or single-quoted attribute
/// values: `& < > " '` become character references, control characters
/// other than tab and newline become U+FFFD (HTML5 forbids them).
pub(crate) fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(c),
            c if is_forbidden(c) => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Characters that must not appear in HTML text or in a Markdown line:
/// C0 and C1 controls (except tab and newline, handled by the callers),
/// DEL, and Unicode noncharacters.
fn is_forbidden(c: char) -> bool {
    let n = u32::from(c);
    c.is_control() || (0xFDD0..=0xFDEF).contains(&n) || (n & 0xFFFE) == 0xFFFE
}

/// Text for a terminal: control characters (escape sequences, carriage
/// returns, line breaks) become U+FFFD.
pub(crate) fn plain(text: &str) -> String {
    text.chars()
        .map(|c| if is_forbidden(c) { '\u{fffd}' } else { c })
        .collect()
}

/// Inline Markdown prose: CommonMark/GFM punctuation that could start
/// markup (emphasis, links, raw HTML, entities, table cells, strikethrough,
/// math) is backslash-escaped; line breaks and control characters become
/// spaces, so the text stays on its line (and in its table cell).
pub(crate) fn md_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '&' | '#' | '$' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\t' | '\n' | '\r' => out.push(' '),
            c if is_forbidden(c) => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// An identifier (name, version, id, path) as a Markdown code span, which
/// shows it verbatim. The fence is one backtick longer than the longest
/// run inside; `|` is escaped because GFM splits table cells before it
/// parses code spans. Empty text renders as an em dash.
pub(crate) fn md_code(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if is_forbidden(c) || c == '\t' { ' ' } else { c })
        .collect();
    if clean.trim().is_empty() {
        return "—".to_owned();
    }
    let mut longest = 0usize;
    let mut run = 0usize;
    for c in clean.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let fence = "`".repeat(longest + 1);
    let pad = if clean.starts_with(['`', ' ']) || clean.ends_with(['`', ' ']) {
        " "
    } else {
        ""
    };
    let body = clean.replace('|', "\\|");
    format!("{fence}{pad}{body}{pad}{fence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_markup_and_controls() {
        assert_eq!(
            html("<script>alert('x&y')</script>\"\u{0}\u{7f}\u{85}"),
            "&lt;script&gt;alert(&#39;x&amp;y&#39;)&lt;/script&gt;&quot;\u{fffd}\u{fffd}\u{fffd}"
        );
        assert_eq!(html("libssl3 3.0.15-1~deb12u1"), "libssl3 3.0.15-1~deb12u1");
    }

    #[test]
    fn plain_text_has_no_controls() {
        assert_eq!(plain("a\u{1b}[31mb\nc"), "a\u{fffd}[31mb\u{fffd}c");
    }

    #[test]
    fn markdown_text_cannot_start_markup() {
        assert_eq!(
            md_text("a|b *c* <script> [x](y) \n~z~ &amp; `q`"),
            "a\\|b \\*c\\* \\<script\\> \\[x\\](y)  \\~z\\~ \\&amp; \\`q\\`"
        );
    }

    #[test]
    fn markdown_code_spans_hold_anything() {
        assert_eq!(md_code("libssl3"), "`libssl3`");
        assert_eq!(md_code("a`b"), "``a`b``");
        assert_eq!(md_code("`x"), "`` `x ``");
        assert_eq!(md_code("a|b\nc"), "`a\\|b c`");
        assert_eq!(md_code(""), "—");
        assert_eq!(md_code("<script>"), "`<script>`");
    }
}
