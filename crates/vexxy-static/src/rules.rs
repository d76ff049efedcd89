//! Declarative configuration rules: "when these facts about the image's
//! configuration hold, then these findings are not affected, because …".
//!
//! The TOML format is documented in `docs/rules.md`. Raw serde types mirror
//! the file exactly (`deny_unknown_fields` everywhere) and convert into the
//! typed [`RuleSet`] with `TryFrom`; every error names the file, the line
//! and the key.

use std::{
    collections::HashSet,
    ops::Range,
    path::{Path, PathBuf},
};

use regex::Regex;
use serde::Deserialize;
use toml::Spanned;
use vexxy_model::{Confidence, Justification, RuleOutcome, SecurityData, Selector, Status};
use vexxy_rootfs::{RootFs, RootFsError};

use crate::{
    glob,
    nginx::{NginxConfig, NginxLoader},
    StaticError,
};

/// The only rules-file format version.
pub const RULES_VERSION: u32 = 1;
/// Upper bound on the size of a file a `file_matches` condition reads.
const MAX_MATCH_FILE_BYTES: u64 = 16 << 20;
/// Placeholders an observation may use.
const PLACEHOLDERS: [&str; 3] = ["id", "files", "matches"];

// ---------------------------------------------------------------- raw ---

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuleFile {
    version: Spanned<u32>,
    #[serde(default)]
    rule: Vec<RawRule>,
    #[serde(default)]
    security_data: Vec<RawSecurityData>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecurityData {
    id: Spanned<String>,
    kind: String,
    packages: Spanned<Vec<String>>,
    #[serde(default)]
    paths: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Spanned<String>,
    description: String,
    when: Spanned<RawWhen>,
    then: RawThen,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWhen {
    #[serde(default)]
    entrypoint_is: Vec<Spanned<String>>,
    #[serde(default)]
    path_exists: Vec<Spanned<String>>,
    #[serde(default)]
    path_absent: Vec<Spanned<String>>,
    #[serde(default)]
    file_matches: Vec<RawFileMatch>,
    #[serde(default)]
    file_not_matches: Vec<RawFileMatch>,
    #[serde(default)]
    nginx_module_loaded: Vec<Spanned<String>>,
    #[serde(default)]
    nginx_module_not_loaded: Vec<Spanned<String>>,
    #[serde(default)]
    nginx_directive_present: Vec<RawDirectiveMatch>,
    #[serde(default)]
    nginx_directive_absent: Vec<RawDirectiveMatch>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFileMatch {
    paths: Vec<Spanned<String>>,
    regex: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirectiveMatch {
    directive: Spanned<String>,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThen {
    #[serde(default)]
    packages: Vec<String>,
    #[serde(default)]
    vulnerabilities: Vec<String>,
    status: Spanned<String>,
    #[serde(default)]
    justification: Option<Spanned<String>>,
    confidence: Spanned<f64>,
    observation: Spanned<String>,
}

/// A conversion error before the file name and line are known.
#[derive(Debug)]
struct RawError {
    span: Option<Range<usize>>,
    key: String,
    message: String,
}

fn raw_err<T>(s: &Spanned<T>, key: impl Into<String>, message: impl Into<String>) -> RawError {
    RawError {
        span: Some(s.span()),
        key: key.into(),
        message: message.into(),
    }
}

// -------------------------------------------------------------- typed ---

/// A set of rules and where they came from.
#[derive(Clone, Debug)]
pub struct RuleSet {
    /// The rules file (or the name of an embedded one).
    pub origin: PathBuf,
    /// The rules, in file order; ids are unique.
    pub rules: Vec<Rule>,
    /// Data packages with security relevance (`[[security_data]]`), in
    /// file order; ids are unique.
    pub security_data: Vec<SecurityData>,
}

/// One rule: conditions that must all hold, and what follows.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Unique id, e.g. `nginx-image-filter-not-loaded`.
    pub id: String,
    /// What the rule is about, for people.
    pub description: String,
    /// All must hold (at least one).
    pub conditions: Vec<Condition>,
    /// Which findings the outcome applies to.
    pub selector: Selector,
    /// The VEX status to propose.
    pub status: Status,
    /// Present exactly when `status` is `not_affected`.
    pub justification: Option<Justification>,
    /// How sure the rule is when its conditions hold.
    pub confidence: Confidence,
    /// Observation template; `{id}`, `{files}` and `{matches}` are filled in.
    pub observation: String,
}

/// One condition of a rule.
#[derive(Clone, Debug)]
pub enum Condition {
    /// One of the analysed entrypoint programs has this file name (e.g.
    /// `nginx`): rules about one program's configuration say nothing when
    /// another program is what runs.
    EntrypointIs(String),
    /// The path (or glob) names at least one existing file or directory.
    PathExists(String),
    /// The path (or glob) names nothing that exists.
    PathAbsent(String),
    /// Some line of some file matching the globs matches the regex.
    FileMatches(FileMatch),
    /// No line of any file matching the globs matches the regex (true when
    /// no file exists).
    FileNotMatches(FileMatch),
    /// nginx's configuration loads the named dynamic module.
    NginxModuleLoaded(String),
    /// nginx's configuration exists and does not load the named module.
    NginxModuleNotLoaded(String),
    /// nginx's configuration has the directive (with one of the values).
    NginxDirectivePresent(DirectiveMatch),
    /// nginx's configuration exists and nowhere has the directive (with one
    /// of the values).
    NginxDirectiveAbsent(DirectiveMatch),
}

/// Files and a line regex.
#[derive(Clone, Debug)]
pub struct FileMatch {
    /// Absolute image paths, globs allowed.
    pub paths: Vec<String>,
    /// Matched against each line.
    pub regex: Regex,
}

/// A directive name and values, matched case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectiveMatch {
    /// Directive name, e.g. `ssl_verify_client`.
    pub directive: String,
    /// Any argument equal to one of these matches; empty matches any use.
    pub values: Vec<String>,
}

impl DirectiveMatch {
    fn matches(&self, name: &str, args: &[String]) -> bool {
        name == self.directive
            && (self.values.is_empty()
                || args
                    .iter()
                    .any(|a| self.values.iter().any(|v| v.eq_ignore_ascii_case(a))))
    }

    fn describe(&self) -> String {
        if self.values.is_empty() {
            self.directive.clone()
        } else {
            format!("{} {}", self.directive, self.values.join("|"))
        }
    }
}

impl Condition {
    /// The condition as one line, e.g. `nginx_module_not_loaded ngx_http_geoip_module`.
    pub fn describe(&self) -> String {
        match self {
            Self::EntrypointIs(n) => format!("entrypoint_is {n}"),
            Self::PathExists(p) => format!("path_exists {p}"),
            Self::PathAbsent(p) => format!("path_absent {p}"),
            Self::FileMatches(m) => {
                format!("file_matches {} /{}/", m.paths.join(","), m.regex.as_str())
            }
            Self::FileNotMatches(m) => format!(
                "file_not_matches {} /{}/",
                m.paths.join(","),
                m.regex.as_str()
            ),
            Self::NginxModuleLoaded(m) => format!("nginx_module_loaded {m}"),
            Self::NginxModuleNotLoaded(m) => format!("nginx_module_not_loaded {m}"),
            Self::NginxDirectivePresent(d) => format!("nginx_directive_present {}", d.describe()),
            Self::NginxDirectiveAbsent(d) => format!("nginx_directive_absent {}", d.describe()),
        }
    }
}

fn check_path(p: &Spanned<String>, key: &str) -> Result<String, RawError> {
    let path = p.get_ref();
    if !path.starts_with('/') {
        return Err(raw_err(p, key, format!("path {path:?} is not absolute")));
    }
    glob::validate(path).map_err(|e| raw_err(p, key, format!("bad glob {path:?}: {e}")))?;
    Ok(path.clone())
}

fn file_match(m: RawFileMatch, key: &str) -> Result<FileMatch, RawError> {
    if m.paths.is_empty() {
        return Err(raw_err(
            &m.regex,
            format!("{key}.paths"),
            "needs at least one path",
        ));
    }
    let paths = m
        .paths
        .iter()
        .map(|p| check_path(p, &format!("{key}.paths")))
        .collect::<Result<_, _>>()?;
    let regex = Regex::new(m.regex.get_ref())
        .map_err(|e| raw_err(&m.regex, format!("{key}.regex"), e.to_string()))?;
    Ok(FileMatch { paths, regex })
}

fn directive_match(m: RawDirectiveMatch, key: &str) -> Result<DirectiveMatch, RawError> {
    let d = m.directive.get_ref();
    if d.is_empty() || d.chars().any(char::is_whitespace) {
        return Err(raw_err(
            &m.directive,
            format!("{key}.directive"),
            format!("{d:?} is not a directive name"),
        ));
    }
    Ok(DirectiveMatch {
        directive: d.clone(),
        values: m.values,
    })
}

fn module_name(m: &Spanned<String>, key: &str) -> Result<String, RawError> {
    let name = m.get_ref();
    if name.is_empty() || name.contains('/') {
        return Err(raw_err(
            m,
            key,
            format!(
                "{name:?} is not a module name (use the file name, e.g. ngx_http_geoip_module)"
            ),
        ));
    }
    Ok(name.clone())
}

impl TryFrom<RawRule> for Rule {
    type Error = RawError;

    fn try_from(raw: RawRule) -> Result<Self, RawError> {
        let id = raw.id.get_ref().clone();
        let p = |k: &str| format!("rule {id}: {k}");
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(raw_err(
                &raw.id,
                "id",
                format!("{id:?} is not an id (letters, digits, - _ .)"),
            ));
        }
        let when_span = raw.when.span();
        let w = raw.when.into_inner();
        let mut conditions = Vec::new();
        for x in &w.path_exists {
            conditions.push(Condition::PathExists(check_path(
                x,
                &p("when.path_exists"),
            )?));
        }
        for x in &w.path_absent {
            conditions.push(Condition::PathAbsent(check_path(
                x,
                &p("when.path_absent"),
            )?));
        }
        for x in w.file_matches {
            conditions.push(Condition::FileMatches(file_match(
                x,
                &p("when.file_matches"),
            )?));
        }
        for x in w.file_not_matches {
            conditions.push(Condition::FileNotMatches(file_match(
                x,
                &p("when.file_not_matches"),
            )?));
        }
        for x in &w.entrypoint_is {
            let name = x.get_ref();
            if name.is_empty() || name.contains('/') {
                return Err(raw_err(
                    x,
                    p("when.entrypoint_is"),
                    format!("{name:?} is not a program file name"),
                ));
            }
            conditions.push(Condition::EntrypointIs(name.clone()));
        }
        for x in &w.nginx_module_loaded {
            conditions.push(Condition::NginxModuleLoaded(module_name(
                x,
                &p("when.nginx_module_loaded"),
            )?));
        }
        for x in &w.nginx_module_not_loaded {
            conditions.push(Condition::NginxModuleNotLoaded(module_name(
                x,
                &p("when.nginx_module_not_loaded"),
            )?));
        }
        for x in w.nginx_directive_present {
            conditions.push(Condition::NginxDirectivePresent(directive_match(
                x,
                &p("when.nginx_directive_present"),
            )?));
        }
        for x in w.nginx_directive_absent {
            conditions.push(Condition::NginxDirectiveAbsent(directive_match(
                x,
                &p("when.nginx_directive_absent"),
            )?));
        }
        if conditions.is_empty() {
            return Err(RawError {
                span: Some(when_span),
                key: p("when"),
                message: "a rule needs at least one condition".into(),
            });
        }

        let t = raw.then;
        let status = Status::from_openvex(t.status.get_ref()).ok_or_else(|| {
            raw_err(
                &t.status,
                p("then.status"),
                format!(
                    "unknown status {:?} (not_affected, affected, fixed, under_investigation)",
                    t.status.get_ref()
                ),
            )
        })?;
        let justification = match &t.justification {
            Some(j) => Some(Justification::from_openvex(j.get_ref()).ok_or_else(|| {
                raw_err(
                    j,
                    p("then.justification"),
                    format!("unknown justification {:?}", j.get_ref()),
                )
            })?),
            None => None,
        };
        match (status, &justification, &t.justification) {
            (Status::NotAffected, None, _) => {
                return Err(raw_err(
                    &t.status,
                    p("then.justification"),
                    "a not_affected rule needs a justification",
                ))
            }
            (s, Some(_), Some(j)) if s != Status::NotAffected => {
                return Err(raw_err(
                    j,
                    p("then.justification"),
                    format!("a {s} rule carries no justification"),
                ))
            }
            _ => {}
        }
        let confidence = Confidence::new(*t.confidence.get_ref())
            .map_err(|e| raw_err(&t.confidence, p("then.confidence"), e.to_string()))?;
        let observation = t.observation.get_ref().clone();
        check_template(&observation)
            .map_err(|m| raw_err(&t.observation, p("then.observation"), m))?;
        Ok(Rule {
            id,
            description: raw.description,
            conditions,
            selector: Selector {
                packages: t.packages,
                vulnerabilities: t.vulnerabilities,
            },
            status,
            justification,
            confidence,
            observation,
        })
    }
}

fn check_template(t: &str) -> Result<(), String> {
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err("unclosed \"{\" in observation".into());
        };
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder {{{name}}} (known: {{id}}, {{files}}, {{matches}})"
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

impl TryFrom<RawRuleFile> for Vec<Rule> {
    type Error = RawError;

    fn try_from(raw: RawRuleFile) -> Result<Self, RawError> {
        if *raw.version.get_ref() != RULES_VERSION {
            return Err(raw_err(
                &raw.version,
                "version",
                format!(
                    "unsupported version {} (expected {RULES_VERSION})",
                    raw.version.get_ref()
                ),
            ));
        }
        let mut ids = HashSet::new();
        let mut rules = Vec::with_capacity(raw.rule.len());
        for r in raw.rule {
            if !ids.insert(r.id.get_ref().clone()) {
                return Err(raw_err(
                    &r.id,
                    "id",
                    format!("duplicate rule id {:?}", r.id.get_ref()),
                ));
            }
            rules.push(Rule::try_from(r)?);
        }
        Ok(rules)
    }
}

fn security_data(raw: Vec<RawSecurityData>) -> Result<Vec<SecurityData>, RawError> {
    let mut ids = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, d) in raw.into_iter().enumerate() {
        let key = format!("security_data[{i}]");
        if !ids.insert(d.id.get_ref().clone()) {
            return Err(raw_err(
                &d.id,
                format!("{key}.id"),
                format!("duplicate security_data id {:?}", d.id.get_ref()),
            ));
        }
        if d.packages.get_ref().is_empty() || d.packages.get_ref().iter().any(String::is_empty) {
            return Err(raw_err(
                &d.packages,
                format!("{key}.packages"),
                "needs at least one non-empty package name",
            ));
        }
        let mut paths = Vec::with_capacity(d.paths.len());
        for p in &d.paths {
            paths.push(check_path(p, &format!("{key}.paths"))?);
        }
        out.push(SecurityData {
            id: d.id.into_inner(),
            kind: d.kind,
            packages: d.packages.into_inner(),
            paths,
        });
    }
    Ok(out)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map_or(0, |s| s.matches('\n').count() + 1)
}

/// Parses a rules file. `origin` names it in errors and outcomes.
pub fn parse_rules(text: &str, origin: &Path) -> Result<RuleSet, StaticError> {
    let err = |span: Option<Range<usize>>, key: String, message: String| StaticError::Rules {
        file: origin.to_owned(),
        line: span.map_or(0, |s| line_of(text, s.start)),
        key,
        message,
    };
    let de = toml::de::Deserializer::parse(text)
        .map_err(|e| err(e.span(), "(document)".into(), e.message().to_owned()))?;
    let raw: RawRuleFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        err(inner.span(), key, inner.message().to_owned())
    })?;
    let security = raw.security_data;
    let raw = RawRuleFile {
        version: raw.version,
        rule: raw.rule,
        security_data: Vec::new(),
    };
    let rules = Vec::<Rule>::try_from(raw).map_err(|e| err(e.span, e.key, e.message))?;
    let security_data = security_data(security).map_err(|e| err(e.span, e.key, e.message))?;
    Ok(RuleSet {
        origin: origin.to_owned(),
        rules,
        security_data,
    })
}

const BUILTIN: &str = include_str!("../rules/builtin.toml");

/// The rules vexxy ships (`rules/builtin.toml`, documented in
/// `docs/rules.md`). A test guarantees they parse; were they ever not to,
/// the set would be empty rather than wrong.
pub fn builtin_rules() -> RuleSet {
    let origin = Path::new("builtin:rules/builtin.toml");
    parse_rules(BUILTIN, origin).unwrap_or_else(|_| RuleSet {
        origin: origin.to_owned(),
        rules: Vec::new(),
        security_data: Vec::new(),
    })
}

// ---------------------------------------------------------- evaluation ---

/// What a holding condition saw.
#[derive(Default)]
struct Seen {
    files: Vec<String>,
    matches: Vec<String>,
}

impl Seen {
    fn file(&mut self, f: &str) {
        if !self.files.iter().any(|x| x == f) {
            self.files.push(f.to_owned());
        }
    }
}

/// Loaded once per evaluation: nginx's configuration, when usable.
struct Context<'a> {
    root: &'a RootFs,
    entrypoints: &'a [String],
    nginx: Option<Option<NginxConfig>>,
    loader: NginxLoader,
}

impl Context<'_> {
    fn nginx(&mut self) -> Result<Option<&NginxConfig>, StaticError> {
        if self.nginx.is_none() {
            let loaded = match NginxConfig::load(self.root, &self.loader.conf) {
                Ok(c) => c,
                // nginx refuses to start with such a configuration: its
                // rules do not apply.
                Err(StaticError::NginxSyntax { .. }) => None,
                Err(StaticError::RootFs(
                    RootFsError::NotFound { .. } | RootFsError::NotAFile { .. },
                )) => None,
                Err(e) => return Err(e),
            };
            self.nginx = Some(loaded);
        }
        Ok(self.nginx.as_ref().and_then(Option::as_ref))
    }

    fn read_lines(&self, m: &FileMatch, seen: &mut Seen) -> Result<(), StaticError> {
        for pattern in &m.paths {
            for f in glob::expand(self.root, pattern) {
                let text = match self.root.read_to_string(&f, MAX_MATCH_FILE_BYTES) {
                    Ok(t) => t,
                    Err(RootFsError::NotFound { .. } | RootFsError::NotAFile { .. }) => continue,
                    Err(e) => return Err(e.into()),
                };
                seen.file(&f);
                for (n, line) in text.lines().enumerate() {
                    if m.regex.is_match(line) {
                        seen.matches.push(format!("{f}:{}", n + 1));
                    }
                }
            }
        }
        Ok(())
    }

    /// `Some` with what was seen when the condition holds.
    fn check(&mut self, c: &Condition) -> Result<Option<Seen>, StaticError> {
        let mut seen = Seen::default();
        let holds = match c {
            Condition::EntrypointIs(name) => {
                let hits: Vec<String> = self
                    .entrypoints
                    .iter()
                    .filter(|e| e.rsplit('/').next() == Some(name.as_str()))
                    .cloned()
                    .collect();
                seen.matches = hits;
                !seen.matches.is_empty()
            }
            Condition::PathExists(p) => {
                let found = glob::expand(self.root, p);
                found.iter().for_each(|f| seen.matches.push(f.clone()));
                !found.is_empty()
            }
            Condition::PathAbsent(p) => glob::expand(self.root, p).is_empty(),
            Condition::FileMatches(m) => {
                self.read_lines(m, &mut seen)?;
                !seen.matches.is_empty()
            }
            Condition::FileNotMatches(m) => {
                self.read_lines(m, &mut seen)?;
                seen.matches.is_empty()
            }
            Condition::NginxModuleLoaded(name) | Condition::NginxModuleNotLoaded(name) => {
                let root = self.root;
                let loader = self.loader.clone();
                let Some(cfg) = self.nginx()? else {
                    return Ok(None);
                };
                cfg.files.iter().for_each(|f| seen.file(f));
                let hits: Vec<String> = loader
                    .loaded_modules(root, cfg)
                    .into_iter()
                    .filter(|m| m.is(name))
                    .map(|m| format!("{}:{}", m.file, m.line))
                    .collect();
                let loaded = !hits.is_empty();
                seen.matches = hits;
                loaded == matches!(c, Condition::NginxModuleLoaded(_))
            }
            Condition::NginxDirectivePresent(d) | Condition::NginxDirectiveAbsent(d) => {
                let Some(cfg) = self.nginx()? else {
                    return Ok(None);
                };
                cfg.files.iter().for_each(|f| seen.file(f));
                seen.matches = cfg
                    .all()
                    .into_iter()
                    .filter(|(x, _)| d.matches(&x.name, &x.args))
                    .map(|(x, _)| format!("{}:{}", x.file, x.line))
                    .collect();
                seen.matches.is_empty() == matches!(c, Condition::NginxDirectiveAbsent(_))
            }
        };
        Ok(holds.then_some(seen))
    }
}

/// Evaluates every rule against a root filesystem and returns an outcome
/// for each rule whose conditions all hold. Missing files are not errors
/// (an absent nginx configuration makes every nginx condition false);
/// unreadable ones are.
///
/// `entrypoints` are the canonical paths of the programs the image runs
/// (from [`crate::entrypoints`]); `entrypoint_is` conditions test them, and
/// are false when none are known.
pub fn evaluate(
    rules: &RuleSet,
    root: &RootFs,
    entrypoints: &[String],
) -> Result<Vec<RuleOutcome>, StaticError> {
    let mut ctx = Context {
        root,
        entrypoints,
        nginx: None,
        loader: NginxLoader::default(),
    };
    let mut out = Vec::new();
    'rules: for rule in &rules.rules {
        let mut files: Vec<String> = Vec::new();
        let mut matches: Vec<String> = Vec::new();
        let mut facts = vec![
            ("rule".to_owned(), rule.id.clone()),
            ("rules_file".to_owned(), rules.origin.display().to_string()),
        ];
        for c in &rule.conditions {
            let Some(seen) = ctx.check(c)? else {
                continue 'rules;
            };
            facts.push(("condition".to_owned(), c.describe()));
            for f in seen.files {
                if !files.contains(&f) {
                    files.push(f);
                }
            }
            matches.extend(seen.matches);
        }
        for f in &files {
            facts.push(("file_read".to_owned(), f.clone()));
        }
        for m in &matches {
            facts.push(("match".to_owned(), m.clone()));
        }
        let files_text = if files.is_empty() {
            "no files".to_owned()
        } else {
            files.join(", ")
        };
        let matches_text = if matches.is_empty() {
            "none".to_owned()
        } else {
            matches.join(", ")
        };
        let observation = rule
            .observation
            .replace("{id}", &rule.id)
            .replace("{files}", &files_text)
            .replace("{matches}", &matches_text);
        out.push(RuleOutcome {
            rule_id: rule.id.clone(),
            description: rule.description.clone(),
            selector: rule.selector.clone(),
            status: rule.status,
            justification: rule.justification,
            confidence: rule.confidence,
            observation,
            facts,
        });
    }
    Ok(out)
}
