//! A strict reader of Debian control data (the deb822 stanzas of
//! `/var/lib/dpkg/status`): fields, multi-line continuations, blank-line
//! separated stanzas. It keeps every field's first line and the line number
//! where each stanza and field starts; continuation lines are validated and
//! skipped, since no field vexxy reads spans lines.

/// One field of a stanza: its name, its first-line value (trimmed), and the
/// 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field<'a> {
    pub(crate) name: &'a str,
    pub(crate) value: &'a str,
    pub(crate) line: usize,
}

/// A paragraph of fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stanza<'a> {
    /// 1-based line of the stanza's first field.
    pub(crate) line: usize,
    pub(crate) fields: Vec<Field<'a>>,
}

impl<'a> Stanza<'a> {
    /// The first field with this name (field names are case-insensitive).
    pub(crate) fn get(&self, name: &str) -> Option<&Field<'a>> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

/// Malformed control data at a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub(crate) line: usize,
    pub(crate) reason: String,
}

/// Splits control data into stanzas.
pub(crate) fn parse(text: &str) -> Result<Vec<Stanza<'_>>, SyntaxError> {
    let mut stanzas = Vec::new();
    let mut current: Option<Stanza<'_>> = None;
    for (index, raw) in text.split('\n').enumerate() {
        let line_no = index + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            if let Some(stanza) = current.take() {
                stanzas.push(stanza);
            }
            continue;
        }
        if line.starts_with('#') && current.as_ref().is_none_or(|s| s.fields.is_empty()) {
            // deb822 allows comment lines; dpkg never writes them.
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if current.is_none() {
                return Err(SyntaxError {
                    line: line_no,
                    reason: "continuation line outside a field".to_owned(),
                });
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(SyntaxError {
                line: line_no,
                reason: format!("line is not a field: {:?}", clip(line)),
            });
        };
        if name.is_empty()
            || name.starts_with('-')
            || name.contains(|c: char| c.is_whitespace() || c.is_control())
        {
            return Err(SyntaxError {
                line: line_no,
                reason: format!("invalid field name {:?}", clip(name)),
            });
        }
        let stanza = current.get_or_insert_with(|| Stanza {
            line: line_no,
            fields: Vec::new(),
        });
        stanza.fields.push(Field {
            name,
            value: value.trim(),
            line: line_no,
        });
    }
    if let Some(stanza) = current.take() {
        stanzas.push(stanza);
    }
    Ok(stanzas)
}

/// At most 60 characters of hostile text for an error message.
fn clip(s: &str) -> String {
    s.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanzas_fields_and_continuations() {
        let text = "Package: a\nDescription: one\n two\n .\n\tthree\nVersion: 1\n\n\n# comment\nPackage: b\r\nConffiles:\n /etc/x 0123\n";
        let stanzas = parse(text).expect("parses");
        assert_eq!(stanzas.len(), 2);
        assert_eq!(stanzas[0].line, 1);
        assert_eq!(
            stanzas[0].get("version").map(|f| (f.value, f.line)),
            Some(("1", 6))
        );
        assert_eq!(stanzas[0].get("DESCRIPTION").map(|f| f.value), Some("one"));
        assert_eq!(stanzas[1].line, 10);
        assert_eq!(stanzas[1].get("package").map(|f| f.value), Some("b"));
        assert_eq!(stanzas[1].get("conffiles").map(|f| f.value), Some(""));
    }

    #[test]
    fn syntax_errors_name_the_line() {
        for (text, line, needle) in [
            (" leading continuation\n", 1, "continuation"),
            ("Package: a\nnot a field\n", 2, "not a field"),
            ("Package: a\n\n: empty name\n", 3, "invalid field name"),
            ("Package: a\nbad name: x\n", 2, "invalid field name"),
        ] {
            let err = parse(text).expect_err(text);
            assert_eq!(err.line, line, "{text:?}");
            assert!(err.reason.contains(needle), "{text:?}: {}", err.reason);
        }
    }
}
