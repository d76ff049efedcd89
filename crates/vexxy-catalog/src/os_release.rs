//! `os-release(5)`: shell-like `KEY=value` lines, values optionally quoted.

use std::collections::HashMap;

use crate::Distro;

/// Parses os-release text. Lines that are not assignments are ignored, as
/// the format asks. `ID` defaults to `linux` as `os-release(5)` specifies.
pub(crate) fn parse(text: &str) -> Distro {
    let mut vars: HashMap<&str, String> = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        vars.insert(key, unquote(value.trim()));
    }
    let mut take = |key: &str| vars.remove(key).filter(|v| !v.is_empty());
    Distro {
        id: take("ID").unwrap_or_else(|| "linux".to_owned()),
        version_id: take("VERSION_ID"),
        version_codename: take("VERSION_CODENAME"),
        pretty_name: take("PRETTY_NAME"),
    }
}

/// Removes one level of shell quoting: `"…"` with backslash escapes of
/// `\ " $ \``, or `'…'` verbatim; an unquoted value is taken as is.
fn unquote(value: &str) -> String {
    if let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some(next @ ('\\' | '"' | '$' | '`')) => out.push(next),
                    Some(next) => {
                        out.push('\\');
                        out.push(next);
                    }
                    None => out.push('\\'),
                }
            } else {
                out.push(c);
            }
        }
        out
    } else if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        inner.to_owned()
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoting_and_defaults() {
        let cases: [(&str, Distro); 3] = [
            (
                "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n",
                Distro {
                    id: "debian".into(),
                    version_id: Some("12".into()),
                    version_codename: Some("bookworm".into()),
                    pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()),
                },
            ),
            (
                "# comment\nID='ubuntu'\nVERSION_ID=\"24.04\"\nPRETTY_NAME=\"say \\\"hi\\\" \\$x\"\ngarbage line\n",
                Distro {
                    id: "ubuntu".into(),
                    version_id: Some("24.04".into()),
                    version_codename: None,
                    pretty_name: Some("say \"hi\" $x".into()),
                },
            ),
            ("VERSION_ID=\n", Distro { id: "linux".into(), version_id: None, version_codename: None, pretty_name: None }),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), want, "{text:?}");
        }
    }
}
