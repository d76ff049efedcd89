//! Go build information embedded in binaries (`.go.buildinfo`).
//!
//! Go ≥ 1.18 writes a 32-byte header — the magic `\xff Go buildinf:`, the
//! pointer size, a flags byte — and, when flag bit 1 (pointer-free) is set,
//! the Go version and the module information right after it, each as a
//! uvarint length and the bytes. The module information is framed by two
//! 16-byte sentinels and holds tab-separated lines: `path`, `mod` (main
//! module), `dep` (a dependency), `=>` (the previous module's replacement)
//! and `build` settings. The older format stores pointers to the strings
//! instead; it is reported as unsupported.

/// The build-info magic.
pub(crate) const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
/// Flags bit: version and module info follow the header inline.
const FLAG_INLINE: u8 = 0x2;
/// Largest string accepted in the build info.
const MAX_STRING: u64 = 16 << 20;

/// One module of a Go binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Module {
    pub(crate) path: String,
    pub(crate) version: String,
}

/// What the build info says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuildInfo {
    /// `go1.22.1` (first word of the runtime version).
    pub(crate) go_version: String,
    /// The main module (`mod` line), absent for `go run` and test binaries.
    pub(crate) main: Option<Module>,
    /// Dependencies, replacements applied.
    pub(crate) deps: Vec<Module>,
}

/// Why build info was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BuildInfoError {
    /// No magic in the data.
    NoMagic,
    /// The pre-1.18 pointer format.
    PointerFormat,
    /// Truncated or inconsistent data.
    Malformed(String),
}

/// Parses the contents of a `.go.buildinfo` section (or the bytes where
/// the magic was found). The magic is looked for at 16-byte alignment.
pub(crate) fn parse(data: &[u8]) -> Result<BuildInfo, BuildInfoError> {
    let start = (0..data.len())
        .step_by(16)
        .find(|&i| data[i..].starts_with(MAGIC))
        .ok_or(BuildInfoError::NoMagic)?;
    let data = &data[start..];
    if data.len() < 32 {
        return Err(BuildInfoError::Malformed("header truncated".to_owned()));
    }
    let flags = data[15];
    if flags & FLAG_INLINE == 0 {
        return Err(BuildInfoError::PointerFormat);
    }
    let mut pos = 32usize;
    let version = read_string(data, &mut pos)?;
    let modinfo = read_string(data, &mut pos)?;
    let go_version = version
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    if go_version.is_empty() {
        return Err(BuildInfoError::Malformed("empty go version".to_owned()));
    }
    let modinfo = strip_sentinels(&modinfo);
    let (main, deps) = parse_modinfo(modinfo)?;
    Ok(BuildInfo {
        go_version,
        main,
        deps,
    })
}

fn read_string(data: &[u8], pos: &mut usize) -> Result<String, BuildInfoError> {
    let len = read_uvarint(data, pos)?;
    if len > MAX_STRING {
        return Err(BuildInfoError::Malformed(format!("string of {len} bytes")));
    }
    let len =
        usize::try_from(len).map_err(|_| BuildInfoError::Malformed("string length".to_owned()))?;
    let end = pos
        .checked_add(len)
        .filter(|&e| e <= data.len())
        .ok_or_else(|| BuildInfoError::Malformed("string runs past the section".to_owned()))?;
    let s = String::from_utf8_lossy(&data[*pos..end]).into_owned();
    *pos = end;
    Ok(s)
}

fn read_uvarint(data: &[u8], pos: &mut usize) -> Result<u64, BuildInfoError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(&b) = data.get(*pos) else {
            return Err(BuildInfoError::Malformed("truncated length".to_owned()));
        };
        *pos += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(BuildInfoError::Malformed(
        "length varint too long".to_owned(),
    ))
}

/// Removes the 16-byte sentinels around the module info, when present.
fn strip_sentinels(s: &str) -> &str {
    let b = s.as_bytes();
    if b.len() >= 33 && b[b.len() - 17] == b'\n' {
        // Sentinels are arbitrary bytes: slice on byte offsets, falling back
        // to the whole string if that would split a character.
        s.get(16..s.len() - 16).unwrap_or(s)
    } else {
        s
    }
}

type Modules = (Option<Module>, Vec<Module>);

fn parse_modinfo(text: &str) -> Result<Modules, BuildInfoError> {
    let mut main = None;
    let mut deps: Vec<Module> = Vec::new();
    // Whether the last module line was the main module (for `=>`).
    let mut last_was_main = false;
    for (index, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split('\t').collect();
        let module = |what: &str| -> Result<Module, BuildInfoError> {
            match fields.get(1) {
                Some(path) if !path.is_empty() => Ok(Module {
                    path: (*path).to_owned(),
                    version: fields.get(2).copied().unwrap_or_default().to_owned(),
                }),
                _ => Err(BuildInfoError::Malformed(format!(
                    "module info line {}: {what} without a module path",
                    index + 1
                ))),
            }
        };
        match fields.first().copied() {
            Some("mod") => {
                main = Some(module("mod")?);
                last_was_main = true;
            }
            Some("dep") => {
                deps.push(module("dep")?);
                last_was_main = false;
            }
            Some("=>") => {
                let mut replacement = module("=>")?;
                let target = if last_was_main {
                    main.as_mut()
                } else {
                    deps.last_mut()
                };
                let Some(target) = target else {
                    return Err(BuildInfoError::Malformed(format!(
                        "module info line {}: replacement without a module",
                        index + 1
                    )));
                };
                // A local directory replacement has no version: keep the
                // original path and say it is a development build.
                if replacement.version.is_empty() {
                    replacement.path.clone_from(&target.path);
                    replacement.version = DEVEL.to_owned();
                }
                *target = replacement;
            }
            _ => {}
        }
    }
    Ok((main, deps))
}

/// The version Go records for a module built from a working tree.
pub(crate) const DEVEL: &str = "(devel)";

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Build info as Go ≥ 1.18 writes it, for fixtures.
    pub(crate) fn encode(version: &str, modinfo: &str) -> Vec<u8> {
        let mut out = Vec::from(&MAGIC[..]);
        out.push(8);
        out.push(FLAG_INLINE);
        out.resize(32, 0);
        for s in [
            version.to_owned(),
            format!("{}{modinfo}{}", "0".repeat(16), "1".repeat(16)),
        ] {
            let mut n = s.len() as u64;
            loop {
                let b = (n & 0x7f) as u8;
                n >>= 7;
                if n == 0 {
                    out.push(b);
                    break;
                }
                out.push(b | 0x80);
            }
            out.extend_from_slice(s.as_bytes());
        }
        out
    }

    #[test]
    fn parses_modules_and_replacements() {
        let modinfo = "path\texample.com/cmd/app\nmod\texample.com/app\tv1.2.3\th1:x=\ndep\tgithub.com/a/b\tv0.1.0\th1:y=\ndep\tgolang.org/x/net\tv0.1.0\th1:z=\n=>\tgithub.com/fork/net\tv0.2.0\th1:w=\ndep\texample.com/local\tv1.0.0\n=>\t../local\t\nbuild\t-compiler=gc\n";
        let info = parse(&encode("go1.22.1 X:boringcrypto", modinfo)).expect("parses");
        assert_eq!(info.go_version, "go1.22.1");
        assert_eq!(
            info.main,
            Some(Module {
                path: "example.com/app".into(),
                version: "v1.2.3".into()
            })
        );
        let deps: Vec<(&str, &str)> = info
            .deps
            .iter()
            .map(|m| (m.path.as_str(), m.version.as_str()))
            .collect();
        assert_eq!(
            deps,
            [
                ("github.com/a/b", "v0.1.0"),
                ("github.com/fork/net", "v0.2.0"),
                ("example.com/local", "(devel)")
            ]
        );
    }

    #[test]
    fn malformed_build_info_is_an_error() {
        let mut pointer = encode("go1.17", "");
        pointer[15] = 0;
        let mut truncated = encode("go1.22.1", "mod\tx\tv1\n");
        truncated.truncate(40);
        let mut huge = Vec::from(&MAGIC[..]);
        huge.extend_from_slice(&[8, FLAG_INLINE]);
        huge.resize(32, 0);
        huge.extend_from_slice(&[0xff; 12]);
        let cases: [(&str, Vec<u8>, BuildInfoError); 6] = [
            ("empty", Vec::new(), BuildInfoError::NoMagic),
            ("no magic", vec![0u8; 64], BuildInfoError::NoMagic),
            ("pointer format", pointer, BuildInfoError::PointerFormat),
            (
                "short header",
                MAGIC.to_vec(),
                BuildInfoError::Malformed("header truncated".into()),
            ),
            (
                "truncated",
                truncated,
                BuildInfoError::Malformed("string runs past the section".into()),
            ),
            (
                "varint overflow",
                huge,
                BuildInfoError::Malformed("length varint too long".into()),
            ),
        ];
        for (name, data, want) in cases {
            assert_eq!(parse(&data), Err(want), "{name}");
        }
        let no_path = encode("go1.22.1", "dep\t\tv1\n");
        assert!(
            matches!(parse(&no_path), Err(BuildInfoError::Malformed(m)) if m.contains("line 1"))
        );
        let orphan = encode("go1.22.1", "=>\tx\tv1\n");
        assert!(
            matches!(parse(&orphan), Err(BuildInfoError::Malformed(m)) if m.contains("replacement"))
        );
    }
}
