//! nginx configuration: a tokenizer following nginx's own rules (quotes,
//! backslash escapes, `#` comments, `${var}` words, blocks), a parser into
//! directives, `include` expansion beneath a root filesystem, and the
//! plugin loader that decides which dynamic modules nginx loads.

use std::collections::BTreeSet;

use vexxy_rootfs::{normalize, RootFs, RootFsError};

use crate::{glob, ElfGraph, PluginLoader, PluginState, StaticError};

/// Nesting bound for `include`.
pub const MAX_INCLUDE_DEPTH: usize = 16;
/// Upper bound on the size of one configuration file.
const MAX_CONF_BYTES: u64 = 16 << 20;

/// One token of an nginx configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    /// A word, quoted or not, with escapes already applied.
    Word(String),
    /// `;`
    Semicolon,
    /// `{`
    BlockStart,
    /// `}`
    BlockEnd,
}

/// A token and the 1-based line it starts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spanned {
    /// The token.
    pub token: Token,
    /// 1-based line.
    pub line: usize,
}

fn syntax(file: &str, line: usize, message: impl Into<String>) -> StaticError {
    StaticError::NginxSyntax {
        file: file.to_owned(),
        line,
        message: message.into(),
    }
}

/// Applies nginx's escapes to a raw word: `\"`, `\'`, `\\`, `\t`, `\r`,
/// `\n`; any other backslash is kept.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some(n @ ('"' | '\'' | '\\')) => {
                out.push(n);
                chars.next();
            }
            Some('t') => {
                out.push('\t');
                chars.next();
            }
            Some('r') => {
                out.push('\r');
                chars.next();
            }
            Some('n') => {
                out.push('\n');
                chars.next();
            }
            _ => out.push('\\'),
        }
    }
    out
}

/// Splits nginx configuration text into tokens. `file` only names the
/// source in errors.
pub fn tokenize(text: &str, file: &str) -> Result<Vec<Spanned>, StaticError> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut line = 1;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            ' ' | '\t' | '\r' => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            ';' => {
                out.push(Spanned {
                    token: Token::Semicolon,
                    line,
                });
                i += 1;
            }
            '{' => {
                out.push(Spanned {
                    token: Token::BlockStart,
                    line,
                });
                i += 1;
            }
            '}' => {
                out.push(Spanned {
                    token: Token::BlockEnd,
                    line,
                });
                i += 1;
            }
            '"' | '\'' => {
                let start_line = line;
                let quote = c;
                let mut raw = String::new();
                i += 1;
                loop {
                    let Some(&ch) = chars.get(i) else {
                        return Err(syntax(
                            file,
                            start_line,
                            format!("unterminated {quote}-quoted string"),
                        ));
                    };
                    if ch == '\n' {
                        line += 1;
                    }
                    if ch == '\\' {
                        raw.push(ch);
                        if let Some(&next) = chars.get(i + 1) {
                            if next == '\n' {
                                line += 1;
                            }
                            raw.push(next);
                        }
                        i += 2;
                        continue;
                    }
                    i += 1;
                    if ch == quote {
                        break;
                    }
                    raw.push(ch);
                }
                match chars.get(i) {
                    None | Some(' ' | '\t' | '\r' | '\n' | ';' | '{' | ')') => {}
                    Some(other) => {
                        return Err(syntax(
                            file,
                            line,
                            format!("unexpected \"{other}\" after a quoted string"),
                        ))
                    }
                }
                out.push(Spanned {
                    token: Token::Word(unescape(&raw)),
                    line: start_line,
                });
            }
            _ => {
                let start_line = line;
                let mut raw = String::new();
                while let Some(&ch) = chars.get(i) {
                    if ch == '\\' {
                        raw.push(ch);
                        if let Some(&next) = chars.get(i + 1) {
                            if next == '\n' {
                                line += 1;
                            }
                            raw.push(next);
                        }
                        i += 2;
                        continue;
                    }
                    if ch == '{' && raw.ends_with('$') {
                        // `${name}`: the braces belong to the word.
                        while let Some(&v) = chars.get(i) {
                            raw.push(v);
                            i += 1;
                            if v == '}' {
                                break;
                            }
                        }
                        continue;
                    }
                    if matches!(ch, ' ' | '\t' | '\r' | '\n' | ';' | '{') {
                        break;
                    }
                    raw.push(ch);
                    i += 1;
                }
                out.push(Spanned {
                    token: Token::Word(unescape(&raw)),
                    line: start_line,
                });
            }
        }
    }
    Ok(out)
}

/// One directive: a name, its arguments and, for block directives, the
/// directives inside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    /// The directive name, e.g. `load_module`.
    pub name: String,
    /// The arguments after the name.
    pub args: Vec<String>,
    /// Image path of the file it was read from.
    pub file: String,
    /// 1-based line of the name.
    pub line: usize,
    /// `Some` for a block directive (`http { … }`).
    pub block: Option<Vec<Directive>>,
}

/// Parses nginx configuration text into directives (no `include`
/// expansion). `file` names the source in directives and errors.
pub fn parse(text: &str, file: &str) -> Result<Vec<Directive>, StaticError> {
    let tokens = tokenize(text, file)?;
    let mut pos = 0;
    let directives = parse_block(&tokens, &mut pos, file, false)?;
    Ok(directives)
}

fn parse_block(
    tokens: &[Spanned],
    pos: &mut usize,
    file: &str,
    nested: bool,
) -> Result<Vec<Directive>, StaticError> {
    let mut out = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut first_line = 0;
    while let Some(t) = tokens.get(*pos) {
        *pos += 1;
        match &t.token {
            Token::Word(w) => {
                if words.is_empty() {
                    first_line = t.line;
                }
                words.push(w.clone());
            }
            Token::Semicolon => {
                let Some((name, args)) = words.split_first() else {
                    return Err(syntax(file, t.line, "unexpected \";\""));
                };
                out.push(Directive {
                    name: name.clone(),
                    args: args.to_vec(),
                    file: file.to_owned(),
                    line: first_line,
                    block: None,
                });
                words.clear();
            }
            Token::BlockStart => {
                let Some((name, args)) = words.split_first() else {
                    return Err(syntax(file, t.line, "unexpected \"{\""));
                };
                let (name, args) = (name.clone(), args.to_vec());
                let inner = parse_block(tokens, pos, file, true)?;
                out.push(Directive {
                    name,
                    args,
                    file: file.to_owned(),
                    line: first_line,
                    block: Some(inner),
                });
                words.clear();
            }
            Token::BlockEnd => {
                if !words.is_empty() || !nested {
                    return Err(syntax(file, t.line, "unexpected \"}\""));
                }
                return Ok(out);
            }
        }
    }
    let last = tokens.last().map_or(1, |t| t.line);
    if !words.is_empty() {
        return Err(syntax(
            file,
            last,
            "unexpected end of file, expecting \";\" or \"}\"",
        ));
    }
    if nested {
        return Err(syntax(
            file,
            last,
            "unexpected end of file, expecting \"}\"",
        ));
    }
    Ok(out)
}

/// A whole nginx configuration with every `include` expanded in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NginxConfig {
    /// Every file read, in reading order (image paths as written or globbed).
    pub files: Vec<String>,
    /// The top-level directives.
    pub directives: Vec<Directive>,
    /// `include` targets without glob characters that do not exist.
    pub missing_includes: Vec<String>,
}

impl NginxConfig {
    /// Reads `main` and everything it includes. Relative include paths are
    /// relative to the directory of `main` (nginx's configuration prefix).
    /// `Ok(None)` when `main` does not exist; a syntax error, an include
    /// loop or nesting deeper than [`MAX_INCLUDE_DEPTH`] is an error.
    pub fn load(root: &RootFs, main: &str) -> Result<Option<Self>, StaticError> {
        let main = normalize(main);
        if !root.is_file(&main) {
            return Ok(None);
        }
        let prefix = main.rsplit_once('/').map(|(d, _)| {
            if d.is_empty() {
                "/".to_owned()
            } else {
                d.to_owned()
            }
        });
        let prefix = prefix.unwrap_or_else(|| "/".to_owned());
        let mut cfg = NginxConfig {
            files: Vec::new(),
            directives: Vec::new(),
            missing_includes: Vec::new(),
        };
        let mut stack = Vec::new();
        cfg.directives = cfg.read_file(root, &main, &prefix, &mut stack)?;
        Ok(Some(cfg))
    }

    fn read_file(
        &mut self,
        root: &RootFs,
        path: &str,
        prefix: &str,
        stack: &mut Vec<String>,
    ) -> Result<Vec<Directive>, StaticError> {
        let canonical = root.canonical(path)?;
        if stack.contains(&canonical) {
            return Err(syntax(
                path,
                0,
                format!(
                    "include loop: {path} includes itself through {}",
                    stack.join(" -> ")
                ),
            ));
        }
        if stack.len() >= MAX_INCLUDE_DEPTH {
            return Err(syntax(
                path,
                0,
                format!("includes nest deeper than {MAX_INCLUDE_DEPTH} levels"),
            ));
        }
        let text = root.read_to_string(path, MAX_CONF_BYTES)?;
        self.files.push(path.to_owned());
        stack.push(canonical);
        let parsed = parse(&text, path)?;
        let expanded = self.expand(root, parsed, prefix, stack);
        stack.pop();
        expanded
    }

    fn expand(
        &mut self,
        root: &RootFs,
        directives: Vec<Directive>,
        prefix: &str,
        stack: &mut Vec<String>,
    ) -> Result<Vec<Directive>, StaticError> {
        let mut out = Vec::with_capacity(directives.len());
        for mut d in directives {
            if d.name == "include" && d.block.is_none() {
                let [arg] = d.args.as_slice() else {
                    return Err(syntax(
                        &d.file,
                        d.line,
                        "include takes exactly one argument",
                    ));
                };
                let pattern = if arg.starts_with('/') {
                    arg.clone()
                } else {
                    format!("{prefix}/{arg}")
                };
                if glob::has_magic(&pattern) {
                    for file in glob::expand(root, &pattern) {
                        if root.is_file(&file) {
                            out.extend(self.read_file(root, &file, prefix, stack)?);
                        }
                    }
                } else {
                    let file = normalize(&pattern);
                    match self.read_file(root, &file, prefix, stack) {
                        Ok(ds) => out.extend(ds),
                        Err(StaticError::RootFs(
                            RootFsError::NotFound { .. } | RootFsError::NotAFile { .. },
                        )) => {
                            self.missing_includes.push(file);
                        }
                        Err(e) => return Err(e),
                    }
                }
                continue;
            }
            if let Some(block) = d.block.take() {
                d.block = Some(self.expand(root, block, prefix, stack)?);
            }
            out.push(d);
        }
        Ok(out)
    }

    /// Every directive at any depth, with the names of its enclosing blocks
    /// (outermost first), in file order.
    pub fn all(&self) -> Vec<(&Directive, Vec<&str>)> {
        fn walk<'a>(
            ds: &'a [Directive],
            ctx: &mut Vec<&'a str>,
            out: &mut Vec<(&'a Directive, Vec<&'a str>)>,
        ) {
            for d in ds {
                out.push((d, ctx.clone()));
                if let Some(b) = &d.block {
                    ctx.push(&d.name);
                    walk(b, ctx, out);
                    ctx.pop();
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.directives, &mut Vec::new(), &mut out);
        out
    }

    /// The `load_module` directives of the main context.
    pub fn load_modules(&self) -> impl Iterator<Item = &Directive> {
        self.directives
            .iter()
            .filter(|d| d.name == "load_module" && d.block.is_none())
    }
}

/// The plugin loader for nginx dynamic modules (Debian layout by default).
#[derive(Clone, Debug)]
pub struct NginxLoader {
    /// The main configuration file.
    pub conf: String,
    /// nginx's prefix: relative `load_module` paths are relative to it.
    pub prefix: String,
    /// Directories whose `*.so` files are nginx modules.
    pub module_dirs: Vec<String>,
}

impl Default for NginxLoader {
    fn default() -> Self {
        Self {
            conf: "/etc/nginx/nginx.conf".into(),
            prefix: "/usr/share/nginx".into(),
            module_dirs: vec![
                "/usr/lib/nginx/modules".into(),
                "/usr/share/nginx/modules".into(),
            ],
        }
    }
}

/// A module a configuration loads: the canonical file and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedModule {
    /// The `load_module` argument as written.
    pub written: String,
    /// The canonical image path, when the file exists.
    pub canonical: Option<String>,
    /// Configuration file and line of the directive.
    pub file: String,
    /// 1-based line.
    pub line: usize,
}

impl LoadedModule {
    /// Whether this is the module called `name` (file name with or without `.so`).
    pub fn is(&self, name: &str) -> bool {
        let stem = |p: &str| {
            let base = p.rsplit('/').next().unwrap_or(p).to_owned();
            base.strip_suffix(".so").map(str::to_owned).unwrap_or(base)
        };
        let want = name.strip_suffix(".so").unwrap_or(name);
        stem(&self.written) == want || self.canonical.as_deref().is_some_and(|c| stem(c) == want)
    }
}

impl NginxLoader {
    /// The modules `config` loads, resolved beneath `root`.
    pub fn loaded_modules(&self, root: &RootFs, config: &NginxConfig) -> Vec<LoadedModule> {
        config
            .load_modules()
            .filter_map(|d| {
                let written = d.args.first()?.clone();
                let path = if written.starts_with('/') {
                    written.clone()
                } else {
                    format!("{}/{written}", self.prefix)
                };
                let canonical = root.canonical(&path).ok().filter(|c| root.is_file(c));
                Some(LoadedModule {
                    written,
                    canonical,
                    file: d.file.clone(),
                    line: d.line,
                })
            })
            .collect()
    }

    fn candidates(&self, root: &RootFs) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for dir in &self.module_dirs {
            let Ok(entries) = root.read_dir(dir) else {
                continue;
            };
            for e in entries.iter().filter(|e| e.path.ends_with(".so")) {
                if let Ok(c) = root.canonical(&e.path) {
                    if root.is_file(&c) {
                        out.insert(c);
                    }
                }
            }
        }
        out
    }
}

impl PluginLoader for NginxLoader {
    fn name(&self) -> &str {
        "nginx"
    }

    fn plugins(&self, root: &RootFs, _graph: &ElfGraph) -> Vec<(String, PluginState)> {
        // Without a configuration that nginx would accept there is no
        // verdict to give: the modules stay unexplained.
        let Ok(Some(config)) = NginxConfig::load(root, &self.conf) else {
            return Vec::new();
        };
        let loaded = self.loaded_modules(root, &config);
        let files = config.files.join(", ");
        let mut out: Vec<(String, PluginState)> = Vec::new();
        for m in &loaded {
            if let Some(c) = &m.canonical {
                if !out.iter().any(|(p, _)| p == c) {
                    let reason = format!("load_module {} in {}:{}", m.written, m.file, m.line);
                    out.push((c.clone(), PluginState::Loaded { reason }));
                }
            }
        }
        for c in self.candidates(root) {
            if !out.iter().any(|(p, _)| *p == c) {
                let reason = format!("no load_module directive loads it (read {files})");
                out.push((c, PluginState::NotLoaded { reason }));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        tokenize(text, "t.conf")
            .expect("tokenizes")
            .into_iter()
            .map(|t| match t.token {
                Token::Word(w) => w,
                Token::Semicolon => ";".into(),
                Token::BlockStart => "{".into(),
                Token::BlockEnd => "}".into(),
            })
            .collect()
    }

    #[test]
    fn tokenizer_table() {
        let cases: &[(&str, &[&str])] = &[
            ("a b;", &["a", "b", ";"]),
            ("a b; # c d;\ne;", &["a", "b", ";", "e", ";"]),
            ("a#b;", &["a#b", ";"]),
            ("x \"q ; { } # not\";", &["x", "q ; { } # not", ";"]),
            ("x 'single \"dq\"';", &["x", "single \"dq\"", ";"]),
            ("x \"esc \\\" \\\\ \\t\";", &["x", "esc \" \\ \t", ";"]),
            ("x a\\ b;", &["x", "a\\ b", ";"]),
            ("x \\d+;", &["x", "\\d+", ";"]),
            ("s ${host}x;", &["s", "${host}x", ";"]),
            (
                "http{server{listen 80;}}",
                &["http", "{", "server", "{", "listen", "80", ";", "}", "}"],
            ),
            (
                "if ($a = \"b\") { return 404; }",
                &["if", "($a", "=", "b", ")", "{", "return", "404", ";", "}"],
            ),
        ];
        for (text, want) in cases {
            assert_eq!(words(text), *want, "{text:?}");
        }
    }

    #[test]
    fn tokenizer_lines_and_errors() {
        let toks = tokenize("a;\n# c\n\"multi\nline\" b;\nc;", "f").expect("ok");
        let lines: Vec<usize> = toks.iter().map(|t| t.line).collect();
        assert_eq!(lines, [1, 1, 3, 4, 4, 5, 5]);
        for (text, line, msg) in [
            ("a \"open;", 1, "unterminated"),
            ("a\n\"x\"y;", 2, "after a quoted string"),
        ] {
            let err = tokenize(text, "/etc/nginx/x.conf")
                .expect_err(text)
                .to_string();
            assert!(
                err.contains(&format!("/etc/nginx/x.conf, line {line}")) && err.contains(msg),
                "{err}"
            );
        }
    }

    #[test]
    fn parser_blocks_and_errors() {
        let ds = parse(
            "user www;\nhttp {\n  server { listen 443 ssl; }\n}\n",
            "n.conf",
        )
        .expect("parses");
        assert_eq!(ds.len(), 2);
        assert_eq!(ds[1].name, "http");
        let server = &ds[1].block.as_ref().expect("block")[0];
        assert_eq!(
            server.block.as_ref().expect("block")[0].args,
            ["443", "ssl"]
        );
        assert_eq!(server.line, 3);
        for (text, msg) in [
            ("a;}", "unexpected \"}\""),
            ("http { a;", "expecting \"}\""),
            ("a b", "expecting \";\" or \"}\""),
            (";", "unexpected \";\""),
            ("{ }", "unexpected \"{\""),
        ] {
            let err = parse(text, "n.conf").expect_err(text).to_string();
            assert!(err.contains(msg), "{text}: {err}");
        }
    }
}
