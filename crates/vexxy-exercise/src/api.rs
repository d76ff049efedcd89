//! Requests beyond the crawl: those an OpenAPI/Swagger document describes
//! (parameters filled with type-appropriate sample values), and a bounded
//! fuzz phase (mutated query parameters and form fields, unusual headers,
//! other methods) to reach error paths.
//!
//! Everything here produces paths (with query) on the crawl's own origin;
//! a document's `servers`/`host` never choose where requests go (only a
//! base path is taken from them).

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

/// Where OpenAPI/Swagger documents are commonly served.
pub(crate) const OPENAPI_PATHS: &[&str] = &[
    "/openapi.json",
    "/swagger.json",
    "/v3/api-docs",
    "/v2/api-docs",
    "/openapi.yaml",
    "/swagger.yaml",
    "/api/openapi.json",
    "/swagger/v1/swagger.json",
    "/api-docs",
];

/// The most operations taken from one document.
const MAX_OPERATIONS: usize = 100;
/// The deepest schema nesting a sample is built for.
const MAX_DEPTH: usize = 6;
/// The most sample nodes built from one document (a `$ref` reused at every
/// level would otherwise multiply); a copied `example` counts its nodes and
/// one more per 64 bytes of string.
const MAX_SAMPLE_NODES: usize = 10_000;
/// The most `allOf` parts merged into one sample.
const MAX_ALL_OF_PARTS: usize = 32;
/// The most parameters filled per operation.
const MAX_PARAMETERS: usize = 32;
/// The most fuzz requests built per port.
pub(crate) const MAX_FUZZ_PER_PORT: usize = 64;

/// Whether a crawled path looks like an API document.
pub(crate) fn looks_like_document(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path).to_ascii_lowercase();
    OPENAPI_PATHS.contains(&path.as_str())
        || ((path.contains("openapi") || path.contains("swagger") || path.contains("api-docs"))
            && (path.ends_with(".json") || path.ends_with(".yaml") || path.ends_with(".yml")))
}

/// One request to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Req {
    pub(crate) method: http::Method,
    /// Path with query, starting with `/`.
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    /// Content type and body.
    pub(crate) body: Option<(String, Vec<u8>)>,
}

impl Req {
    fn get(path: String) -> Self {
        Self {
            method: http::Method::GET,
            path,
            headers: Vec::new(),
            body: None,
        }
    }
}

/// A parsed OpenAPI (3.x) or Swagger (2.0) document.
pub(crate) fn parse_document(bytes: &[u8]) -> Option<Value> {
    let doc: Value = serde_json::from_slice(bytes)
        .ok()
        .or_else(|| serde_yaml_ng::from_slice(bytes).ok())?;
    let versioned = doc.get("openapi").is_some_and(Value::is_string)
        || doc.get("swagger").is_some_and(Value::is_string);
    (versioned && doc.get("paths").is_some_and(Value::is_object)).then_some(doc)
}

/// Percent-encodes everything but unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Follows a local `$ref` (`#/components/…`, `#/definitions/…`).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    let mut v = v;
    for _ in 0..MAX_DEPTH {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => match r.strip_prefix('#').and_then(|p| doc.pointer(p)) {
                Some(target) => v = target,
                None => return &Value::Null,
            },
            None => return v,
        }
    }
    &Value::Null
}

/// Takes the size of `v` (one a node or key, one more per 64 bytes of
/// string) from `budget`; false when it does not fit.
fn charge(v: &Value, budget: &mut usize) -> bool {
    let cost = match v {
        Value::String(s) => 1 + s.len() / 64,
        Value::Object(o) => 1 + o.keys().map(|k| 1 + k.len() / 64).sum::<usize>(),
        _ => 1,
    };
    let Some(left) = budget.checked_sub(cost) else {
        *budget = 0;
        return false;
    };
    *budget = left;
    match v {
        Value::Array(items) => items.iter().all(|x| charge(x, budget)),
        Value::Object(o) => o.values().all(|x| charge(x, budget)),
        _ => true,
    }
}

/// A copy of `v` if it fits in `budget`, else null.
fn copy(v: &Value, budget: &mut usize) -> Value {
    if charge(v, budget) {
        v.clone()
    } else {
        Value::Null
    }
}

/// A type-appropriate sample value for `schema`, built from at most
/// `budget` nodes (taken from it; null once it is spent).
pub(crate) fn sample(doc: &Value, schema: &Value, depth: usize, budget: &mut usize) -> Value {
    let schema = resolve(doc, schema);
    if *budget == 0 {
        return Value::Null;
    }
    *budget -= 1;
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    for key in ["example", "default"] {
        if let Some(v) = schema.get(key) {
            return copy(v, budget);
        }
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return copy(first, budget);
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        if let Some(parts) = schema.get(key).and_then(Value::as_array) {
            if key == "allOf" {
                let mut merged = Map::new();
                for part in parts.iter().take(MAX_ALL_OF_PARTS) {
                    if let Value::Object(o) = sample(doc, part, depth + 1, budget) {
                        merged.extend(o);
                    }
                }
                return Value::Object(merged);
            }
            if let Some(first) = parts.first() {
                return sample(doc, first, depth + 1, budget);
            }
        }
    }
    let kind = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("string"),
        _ if schema.get("properties").is_some() => "object",
        _ => "string",
    };
    match kind {
        "integer" => json!(schema.get("minimum").and_then(Value::as_i64).unwrap_or(1)),
        "number" => json!(1.5),
        "boolean" => json!(true),
        "array" => {
            let items = schema.get("items").unwrap_or(&Value::Null);
            json!([sample(doc, items, depth + 1, budget)])
        }
        "object" => {
            let mut out = Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, prop) in props.iter().take(32) {
                    if *budget == 0 {
                        break;
                    }
                    out.insert(name.clone(), sample(doc, prop, depth + 1, budget));
                }
            }
            Value::Object(out)
        }
        _ => json!(match schema.get("format").and_then(Value::as_str) {
            Some("date") => "2024-01-01",
            Some("date-time") => "2024-01-01T00:00:00Z",
            Some("uuid") => "00000000-0000-4000-8000-000000000000",
            Some("email") => "probe@example.invalid",
            Some("ipv4") => "127.0.0.1",
            Some("byte") => "dmV4eHk=",
            _ => "vexxy",
        }),
    }
}

/// A value as it goes in a path, query or header.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => items.first().map(scalar).unwrap_or_default(),
        other => other.to_string(),
    }
}

/// The base path requests are made under: Swagger's `basePath`, or the
/// path of OpenAPI's first server (its scheme, host and port are ignored).
fn base_path(doc: &Value) -> String {
    let raw = doc
        .get("basePath")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            let url = doc.pointer("/servers/0/url")?.as_str()?;
            if url.starts_with('/') {
                Some(url.to_owned())
            } else {
                url::Url::parse(url).ok().map(|u| u.path().to_owned())
            }
        })
        .unwrap_or_default();
    let trimmed = raw.trim_end_matches('/');
    if trimmed.starts_with('/') && !trimmed.starts_with("//") {
        trimmed.to_owned()
    } else {
        String::new()
    }
}

/// The requests a document describes: one per operation, parameters
/// filled with samples.
pub(crate) fn requests_from_document(doc: &Value) -> Vec<Req> {
    let base = base_path(doc);
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut budget = MAX_SAMPLE_NODES;
    for (template, item) in paths {
        if !template.starts_with('/') || template.starts_with("//") {
            continue;
        }
        let item = resolve(doc, item);
        let common: Vec<&Value> = item
            .get("parameters")
            .and_then(Value::as_array)
            .map(|a| a.iter().take(MAX_PARAMETERS).collect())
            .unwrap_or_default();
        for (name, method) in [
            ("get", http::Method::GET),
            ("post", http::Method::POST),
            ("put", http::Method::PUT),
            ("patch", http::Method::PATCH),
            ("delete", http::Method::DELETE),
            ("head", http::Method::HEAD),
            ("options", http::Method::OPTIONS),
        ] {
            if out.len() >= MAX_OPERATIONS {
                return out;
            }
            let Some(op) = item.get(name).filter(|o| o.is_object()) else {
                continue;
            };
            let mut params: Vec<&Value> = common.clone();
            if let Some(own) = op.get("parameters").and_then(Value::as_array) {
                params.extend(own.iter().take(MAX_PARAMETERS));
            }
            params.truncate(MAX_PARAMETERS);
            out.push(operation(
                doc,
                &base,
                template,
                method,
                op,
                &params,
                &mut budget,
            ));
        }
    }
    out
}

fn operation(
    doc: &Value,
    base: &str,
    template: &str,
    method: http::Method,
    op: &Value,
    params: &[&Value],
    budget: &mut usize,
) -> Req {
    let mut path = template.to_owned();
    let mut query = Vec::new();
    let mut headers = Vec::new();
    let mut form = Vec::new();
    let mut body = None;
    for p in params {
        let p = resolve(doc, p);
        let Some(name) = p.get("name").and_then(Value::as_str) else {
            continue;
        };
        // Swagger 2 puts type/format on the parameter, OpenAPI 3 in `schema`
        let value = match p.get("schema") {
            Some(schema) if p.get("in").and_then(Value::as_str) != Some("body") => {
                sample(doc, schema, 0, budget)
            }
            Some(schema) => sample(doc, schema, 0, budget),
            None => sample(doc, p, 0, budget),
        };
        match p.get("in").and_then(Value::as_str) {
            Some("path") => path = path.replace(&format!("{{{name}}}"), &encode(&scalar(&value))),
            Some("query") => query.push(format!("{}={}", encode(name), encode(&scalar(&value)))),
            Some("header") if is_settable_header(name) => {
                headers.push((name.to_owned(), scalar(&value)));
            }
            Some("body") => {
                body = Some((
                    "application/json".to_owned(),
                    serde_json::to_vec(&value).unwrap_or_default(),
                ));
            }
            Some("formData") => form.push(format!("{}={}", encode(name), encode(&scalar(&value)))),
            _ => {}
        }
    }
    if !form.is_empty() {
        body = Some((
            "application/x-www-form-urlencoded".to_owned(),
            form.join("&").into_bytes(),
        ));
    }
    if let Some(content) = op
        .get("requestBody")
        .map(|b| resolve(doc, b))
        .and_then(|b| b.get("content"))
        .and_then(Value::as_object)
    {
        if let Some(media) = content
            .iter()
            .find(|(k, _)| k.contains("json"))
            .or_else(|| content.iter().next())
        {
            let value = sample(
                doc,
                media.1.get("schema").unwrap_or(&Value::Null),
                0,
                budget,
            );
            let bytes = if media.0.contains("x-www-form-urlencoded") {
                value
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| format!("{}={}", encode(k), encode(&scalar(v))))
                            .collect::<Vec<_>>()
                            .join("&")
                    })
                    .unwrap_or_default()
                    .into_bytes()
            } else if media.0.contains("json") {
                serde_json::to_vec(&value).unwrap_or_default()
            } else {
                scalar(&value).into_bytes()
            };
            body = Some((media.0.clone(), bytes));
        }
    }
    // any template variable left (undeclared) gets a plain sample
    while let (Some(open), Some(close)) = (path.find('{'), path.find('}')) {
        if close < open {
            break;
        }
        path.replace_range(open..=close, "1");
    }
    let mut full = format!("{base}{path}");
    if !query.is_empty() {
        full.push('?');
        full.push_str(&query.join("&"));
    }
    if method == http::Method::GET || method == http::Method::HEAD {
        body = None;
    }
    Req {
        method,
        path: full,
        headers,
        body,
    }
}

/// Headers a parameter may set (never routing or framing ones).
fn is_settable_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !matches!(
        lower.as_str(),
        "host" | "content-length" | "transfer-encoding" | "connection" | "upgrade" | "te"
    ) && http::HeaderName::from_bytes(name.as_bytes()).is_ok()
}

/// An HTML form: where it submits and its named fields with their values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Form {
    pub(crate) post: bool,
    /// Path with query, same-origin.
    pub(crate) action: String,
    pub(crate) fields: Vec<(String, String)>,
}

/// Values the fuzz phase puts into parameters and fields.
pub(crate) fn fuzz_values() -> Vec<String> {
    vec![
        String::new(),
        "A".repeat(1500),
        "'\"<>;|&`$(){}[]\\%00".to_owned(),
        "-1".to_owned(),
        "99999999999999999999".to_owned(),
        "1.5e308".to_owned(),
        "../../../../etc/passwd".to_owned(),
        "%s%x%n".to_owned(),
        "\u{202e}\u{fc}\u{20ac}\u{1d11e}".to_owned(),
        "null".to_owned(),
    ]
}

/// Unusual headers, one set per request to `/`.
fn header_sets() -> Vec<Vec<(String, String)>> {
    let h = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let cookie = format!("session={}", "A".repeat(4096));
    vec![
        h(&[("Range", "bytes=0-0,1-1,2-2,-1")]),
        h(&[("Range", "bytes=999999999-")]),
        h(&[("Accept-Encoding", "gzip, deflate, br, zstd")]),
        h(&[("If-Modified-Since", "not a date")]),
        h(&[("If-None-Match", "\"*\", W/\"x\"")]),
        h(&[("Cookie", &cookie)]),
        h(&[("X-Forwarded-For", "127.0.0.1, ::1, garbage")]),
        h(&[("Accept", "application/json;q=1, */*;q=0")]),
        h(&[("Accept-Language", "*;q=0, xx-YY")]),
        h(&[("Authorization", "Basic Og==")]),
        h(&[("Origin", "http://example.invalid")]),
    ]
}

/// Replaces the value of query parameter `index` in `query`.
fn with_param(query: &str, index: usize, value: &str) -> String {
    query
        .split('&')
        .enumerate()
        .map(|(i, pair)| {
            if i == index {
                let name = pair.split('=').next().unwrap_or(pair);
                format!("{name}={}", encode(value))
            } else {
                pair.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The fuzz requests for one port, at most [`MAX_FUZZ_PER_PORT`],
/// categories interleaved so a short budget still samples each: mutated
/// query parameters of crawled paths, submitted and mutated forms,
/// unusual headers on `/`, and other methods on discovered paths.
pub(crate) fn fuzz_requests(crawled: &BTreeSet<String>, forms: &[Form]) -> Vec<Req> {
    let values = fuzz_values();
    let mut params = Vec::new();
    for path in crawled.iter().filter(|p| p.contains('?')).take(4) {
        let (route, query) = path.split_once('?').unwrap_or((path, ""));
        for index in 0..query.split('&').count().min(4) {
            for v in &values {
                params.push(Req::get(format!("{route}?{}", with_param(query, index, v))));
            }
        }
    }
    let mut form_reqs = Vec::new();
    for form in forms.iter().take(3) {
        let submit = |fields: &[(String, String)]| {
            let encoded = fields
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect::<Vec<_>>()
                .join("&");
            if form.post {
                Req {
                    method: http::Method::POST,
                    path: form.action.clone(),
                    headers: Vec::new(),
                    body: Some((
                        "application/x-www-form-urlencoded".to_owned(),
                        encoded.into_bytes(),
                    )),
                }
            } else {
                let sep = if form.action.contains('?') { '&' } else { '?' };
                Req::get(format!("{}{sep}{encoded}", form.action))
            }
        };
        form_reqs.push(submit(&form.fields));
        for i in 0..form.fields.len().min(4) {
            for v in values.iter().take(6) {
                let mut fields = form.fields.clone();
                fields[i].1.clone_from(v);
                form_reqs.push(submit(&fields));
            }
        }
    }
    let headers: Vec<Req> = header_sets()
        .into_iter()
        .map(|headers| Req {
            headers,
            ..Req::get("/".to_owned())
        })
        .collect();
    let mut paths: Vec<String> = vec!["/".to_owned()];
    paths.extend(
        crawled
            .iter()
            .filter(|p| !p.contains('?') && p.as_str() != "/")
            .take(3)
            .cloned(),
    );
    let mut methods = Vec::new();
    for path in paths {
        for (method, body) in [
            (http::Method::PUT, Some("{\"vexxy\":1}")),
            (http::Method::DELETE, None),
            (http::Method::PATCH, Some("{\"vexxy\":1}")),
            (http::Method::POST, Some("{")),
            (http::Method::TRACE, None),
        ] {
            methods.push(Req {
                method,
                path: path.clone(),
                headers: Vec::new(),
                body: body.map(|b| ("application/json".to_owned(), b.as_bytes().to_vec())),
            });
        }
    }
    let mut lists = [params, form_reqs, headers, methods].map(std::collections::VecDeque::from);
    let mut out = Vec::new();
    while out.len() < MAX_FUZZ_PER_PORT && lists.iter().any(|l| !l.is_empty()) {
        for list in &mut lists {
            if out.len() >= MAX_FUZZ_PER_PORT {
                break;
            }
            if let Some(r) = list.pop_front() {
                out.push(r);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swagger_2_yaml_with_base_path_body_and_form_data() {
        let yaml = br##"
swagger: "2.0"
host: elsewhere.invalid
basePath: /api/
paths:
  /users/{name}:
    put:
      parameters:
        - {name: name, in: path, type: string}
        - {name: verbose, in: query, type: boolean}
        - name: user
          in: body
          schema: {$ref: "#/definitions/User"}
  /upload:
    post:
      parameters:
        - {name: size, in: formData, type: integer}
        - {name: note, in: formData, type: string, enum: [a b]}
definitions:
  User:
    properties:
      age: {type: integer}
      email: {type: string, format: email}
"##;
        let doc = parse_document(yaml).unwrap_or_else(|| panic!("not a document"));
        let reqs = requests_from_document(&doc);
        assert_eq!(reqs.len(), 2, "{reqs:?}");
        let put = reqs
            .iter()
            .find(|r| r.method == http::Method::PUT)
            .unwrap_or_else(|| panic!("{reqs:?}"));
        assert_eq!(put.path, "/api/users/vexxy?verbose=true");
        let (ctype, body) = put.body.clone().unwrap_or_default();
        assert_eq!(ctype, "application/json");
        let body: Value = serde_json::from_slice(&body).unwrap_or_default();
        assert_eq!(body, json!({"age": 1, "email": "probe@example.invalid"}));
        let post = reqs
            .iter()
            .find(|r| r.method == http::Method::POST)
            .unwrap_or_else(|| panic!("{reqs:?}"));
        assert_eq!(post.path, "/api/upload");
        assert_eq!(
            post.body,
            Some((
                "application/x-www-form-urlencoded".to_owned(),
                b"size=1&note=a%20b".to_vec()
            ))
        );
    }

    #[test]
    fn not_documents_and_hostile_documents() {
        assert!(parse_document(b"{\"paths\": {}}").is_none());
        assert!(parse_document(b"<html>").is_none());
        assert!(parse_document(b"openapi: 3.0.0\npaths: []\n").is_none());
        // a self-referencing schema ends at the depth limit
        let doc = json!({"openapi": "3.1.0", "paths": {"/a": {"post": {"requestBody": {
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}}}}}},
            "components": {"schemas": {"A": {"type": "object", "properties": {
                "next": {"$ref": "#/components/schemas/A"}}}}}});
        let reqs = requests_from_document(&doc);
        assert_eq!(reqs.len(), 1);
        // a $ref loop resolves to nothing
        let looped = json!({"openapi": "3.0.0", "paths": {"/b": {"$ref": "#/paths/~1b"}}});
        assert!(requests_from_document(&looped).is_empty());
        assert!(looks_like_document("/static/openapi.yaml"));
        assert!(looks_like_document("/v3/api-docs"));
        assert!(!looks_like_document("/index.json"));
    }

    fn nodes(v: &Value) -> usize {
        1 + match v {
            Value::Array(a) => a.iter().map(nodes).sum(),
            Value::Object(o) => o.values().map(nodes).sum(),
            _ => 0,
        }
    }

    #[test]
    fn samples_are_bounded_per_document() {
        // 8 properties, each the schema again: 8^7 nodes unbounded
        let props: Map<String, Value> = (0..8)
            .map(|i| (format!("p{i}"), json!({"$ref": "#/components/schemas/A"})))
            .collect();
        let parts: Vec<Value> = (0..100)
            .map(|i| json!({"properties": {format!("q{i}"): {"type": "integer"}}}))
            .collect();
        let params: Vec<Value> = (0..100)
            .map(|i| json!({"name": format!("x{i}"), "in": "query", "example": "v"}))
            .collect();
        let doc = json!({"openapi": "3.0.0", "paths": {
            "/a": {"post": {"requestBody": {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/A"}}}}}},
            "/b": {"post": {"parameters": params, "requestBody": {"content": {
                "application/json": {"schema": {"allOf": parts}}}}}}},
            "components": {"schemas": {"A": {"type": "object", "properties": props}}}});
        let reqs = requests_from_document(&doc);
        assert_eq!(reqs.len(), 2);
        let mut total = 0;
        for r in &reqs {
            let body: Value =
                serde_json::from_slice(&r.body.clone().unwrap_or_default().1).unwrap_or_default();
            total += nodes(&body);
        }
        // (a request sampled after the budget is spent gets one null)
        assert!(total <= MAX_SAMPLE_NODES + reqs.len(), "{total}");
        let b = reqs.iter().find(|r| r.path.starts_with("/b")).unwrap();
        assert_eq!(b.path.matches('=').count(), MAX_PARAMETERS, "{}", b.path);
        // a fresh budget: allOf merges at most MAX_ALL_OF_PARTS parts
        let merged = sample(
            &doc,
            &json!({"allOf": doc["paths"]["/b"]["post"]["requestBody"]
            ["content"]["application/json"]["schema"]["allOf"]}),
            0,
            &mut 1000,
        );
        assert_eq!(merged.as_object().map(Map::len), Some(MAX_ALL_OF_PARTS));
        // a large example costs its size
        let big = json!({"example": vec!["x".repeat(64); 1000]});
        let mut budget = 100;
        assert_eq!(sample(&doc, &big, 0, &mut budget), Value::Null);
        let mut budget = MAX_SAMPLE_NODES;
        assert_eq!(
            sample(&doc, &big, 0, &mut budget).as_array().map(Vec::len),
            Some(1000)
        );
    }

    #[test]
    fn fuzz_is_bounded_and_mutates_each_parameter() {
        let crawled: BTreeSet<String> = ["/", "/s?a=1&b=2", "/x"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let reqs = fuzz_requests(&crawled, &[]);
        assert!(reqs.len() <= MAX_FUZZ_PER_PORT);
        let values = fuzz_values();
        for v in &values {
            let a = format!("/s?a={}&b=2", encode(v));
            let b = format!("/s?a=1&b={}", encode(v));
            assert!(reqs.iter().any(|r| r.path == a), "{a}");
            assert!(reqs.iter().any(|r| r.path == b), "{b}");
        }
        assert!(reqs.iter().all(|r| r.path.starts_with('/')));
    }
}
