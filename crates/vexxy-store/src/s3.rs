//! Evidence blobs in S3-compatible object storage (AWS S3, MinIO, Ceph,
//! moto…), through `object_store`: the bucket, its key prefix and the
//! client. Keys, checks and semantics are the evidence store's own
//! ([`crate::evidence`]), the same as for a local directory:
//! `<prefix>sha256/<2 hex>/<64 hex>`.

use std::{fmt, sync::Arc};

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;

use crate::evidence::Blobs;
use crate::StoreError;

/// The region used when a URL names none (also what MinIO and moto expect).
const DEFAULT_REGION: &str = "us-east-1";

/// Where and how to reach the bucket.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    /// `http(s)://host:port` of an S3-compatible server; `None` is AWS.
    pub endpoint: Option<String>,
    pub region: String,
    /// Prepended to every key, e.g. `evidence/`; empty for none.
    pub prefix: String,
    /// Static credentials; with neither set, the AWS default chain
    /// (web identity, ECS, instance metadata) is used.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow a plain-HTTP endpoint.
    pub allow_http: bool,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

impl S3Config {
    /// Parses `s3://BUCKET/PREFIX?endpoint=http://127.0.0.1:9000&region=us-east-1`.
    /// `endpoint` and `region` (default `us-east-1`) are optional; a plain
    /// `http://` endpoint allows HTTP. Credentials never come from the URL:
    /// they are read from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        Self::from_url_with_env(url, |name| std::env::var(name).ok())
    }

    fn from_url_with_env(
        url: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, StoreError> {
        // The URL itself is not echoed in errors: it could carry a secret.
        let bad = |what: String| StoreError::Object(format!("s3 url: {what}"));
        let parsed = url::Url::parse(url).map_err(|e| bad(format!("not a url: {e}")))?;
        if parsed.scheme() != "s3" {
            return Err(bad(format!("scheme {:?} is not s3", parsed.scheme())));
        }
        let bucket = parsed.host_str().unwrap_or_default().to_owned();
        if bucket.is_empty() {
            return Err(bad("no bucket (expected s3://BUCKET/PREFIX)".to_owned()));
        }
        let bad = |what: String| StoreError::Object(format!("s3 url for bucket {bucket}: {what}"));
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad(
                "credentials in the url are refused; set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY instead"
                    .to_owned(),
            ));
        }
        if parsed.port().is_some() {
            return Err(bad("a port belongs in the endpoint parameter".to_owned()));
        }
        if parsed.fragment().is_some() {
            return Err(bad("unexpected fragment".to_owned()));
        }
        let prefix = parsed.path().trim_start_matches('/').to_owned();
        if prefix.contains('%') {
            return Err(bad(format!(
                "prefix {prefix:?} must not be percent-encoded"
            )));
        }

        let (mut endpoint, mut region) = (None, None);
        for (key, value) in parsed.query_pairs() {
            let slot = match &*key {
                "endpoint" => &mut endpoint,
                "region" => &mut region,
                other => return Err(bad(format!("unknown parameter {other:?}"))),
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err(bad(format!("parameter {key:?} given twice")));
            }
        }
        let allow_http = endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));
        let nonempty = |name: &str| env(name).filter(|v| !v.is_empty());
        Ok(Self {
            bucket,
            endpoint,
            region: region.unwrap_or_else(|| DEFAULT_REGION.to_owned()),
            prefix,
            access_key_id: nonempty("AWS_ACCESS_KEY_ID"),
            secret_access_key: nonempty("AWS_SECRET_ACCESS_KEY"),
            allow_http,
        })
    }
}

/// The S3 backend of [`crate::EvidenceStore`].
pub struct S3Store {
    blobs: Blobs,
    bucket: String,
    /// Where requests go, for messages: the endpoint or the AWS region.
    location: String,
    /// The key prefix without a trailing slash (`Path` has none).
    prefix: ObjectPath,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket)
            .field("location", &self.location)
            .field("prefix", &self.prefix.as_ref())
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// Checks the configuration and builds the client; nothing is sent
    /// until the first request (object storage cannot create the bucket).
    pub fn new(config: &S3Config) -> Result<Self, StoreError> {
        let bucket = &config.bucket;
        let bad = |what: String| StoreError::Object(format!("s3 bucket {bucket}: {what}"));
        if bucket.is_empty() {
            return Err(StoreError::Object("s3: empty bucket name".to_owned()));
        }
        if let Some(endpoint) = &config.endpoint {
            if endpoint.starts_with("http://") && !config.allow_http {
                return Err(bad(format!(
                    "endpoint {endpoint} is plain http, which is not allowed"
                )));
            }
        }
        let trimmed = config.prefix.trim_matches('/');
        let prefix = ObjectPath::parse(trimmed)
            .map_err(|e| bad(format!("bad key prefix {:?}: {e}", config.prefix)))?;

        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(&config.region)
            .with_allow_http(config.allow_http);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        match (&config.access_key_id, &config.secret_access_key) {
            (Some(id), Some(secret)) => {
                builder = builder
                    .with_access_key_id(id)
                    .with_secret_access_key(secret);
            }
            (None, None) => {}
            (Some(_), None) => return Err(bad("access key id without a secret access key".into())),
            (None, Some(_)) => {
                return Err(bad("secret access key without an access key id".into()))
            }
        }
        let store = builder.build().map_err(|e| bad(e.to_string()))?;
        let location = match &config.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => format!("aws region {}", config.region),
        };
        Ok(Self {
            blobs: Blobs::new(Arc::new(store), prefix.clone(), format!("s3://{bucket}")),
            bucket: bucket.clone(),
            location,
            prefix,
        })
    }

    pub(crate) fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// e.g. `s3 bucket vexxy at http://127.0.0.1:9000 prefix evidence/`.
    pub fn describe(&self) -> String {
        let mut text = format!("s3 bucket {} at {}", self.bucket, self.location);
        if self.prefix.parts_count() > 0 {
            text.push_str(&format!(" prefix {}/", self.prefix));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("wJalrXUtnFEMI/K7MDENG".to_owned()),
            _ => None,
        }
    }

    #[test]
    fn urls_parse_with_credentials_from_the_environment() {
        let c = S3Config::from_url_with_env(
            "s3://vexxy/evidence/?endpoint=http://127.0.0.1:9000&region=eu-west-1",
            env,
        )
        .expect("parse");
        assert_eq!(c.bucket, "vexxy");
        assert_eq!(c.prefix, "evidence/");
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(c.region, "eu-west-1");
        assert!(c.allow_http);
        assert_eq!(c.access_key_id.as_deref(), Some("AKIDEXAMPLE"));
        assert_eq!(
            c.secret_access_key.as_deref(),
            Some("wJalrXUtnFEMI/K7MDENG")
        );

        let c = S3Config::from_url_with_env("s3://vexxy", |_| None).expect("parse");
        assert_eq!((c.prefix.as_str(), c.region.as_str()), ("", "us-east-1"));
        assert_eq!(
            (c.endpoint, c.access_key_id, c.allow_http),
            (None, None, false)
        );
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_secrets() {
        for (url, needle) in [
            ("http://vexxy/x", "scheme"),
            ("s3:///x", "no bucket"),
            (
                "s3://vexxy/x?endpint=http://h",
                "unknown parameter \"endpint\"",
            ),
            ("s3://vexxy/x?region=a&region=b", "given twice"),
            ("s3://vexxy:9000/x", "port"),
        ] {
            let e = S3Config::from_url_with_env(url, env)
                .expect_err(url)
                .to_string();
            assert!(e.contains(needle), "{url}: {e}");
        }
        let e = S3Config::from_url_with_env("s3://key:hunter2@vexxy/x", env)
            .expect_err("userinfo")
            .to_string();
        assert!(e.contains("bucket vexxy") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn debug_redacts_the_secret_and_describe_names_the_bucket() {
        let c =
            S3Config::from_url_with_env("s3://vexxy/evidence?endpoint=http://127.0.0.1:9000", env)
                .expect("parse");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("wJalrXUtnFEMI") && shown.contains("<redacted>"),
            "{shown}"
        );
        let store = S3Store::new(&c).expect("new");
        assert!(!format!("{store:?}").contains("wJalrXUtnFEMI"));
        assert_eq!(
            store.describe(),
            "s3 bucket vexxy at http://127.0.0.1:9000 prefix evidence/"
        );
        let hex = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        assert_eq!(
            store.blobs().key(hex).as_ref(),
            format!("evidence/sha256/2c/{hex}")
        );
    }

    #[test]
    fn inconsistent_configs_are_refused_naming_the_bucket() {
        let base =
            S3Config::from_url_with_env("s3://vexxy?endpoint=http://h:1", |_| None).expect("parse");
        let plain = S3Config {
            allow_http: false,
            ..base.clone()
        };
        let half = S3Config {
            access_key_id: Some("id".into()),
            ..base.clone()
        };
        let slashes = S3Config {
            prefix: "a//b".into(),
            ..base
        };
        for c in [plain, half, slashes] {
            let e = S3Store::new(&c).expect_err("refused").to_string();
            assert!(e.contains("s3 bucket vexxy"), "{e}");
        }
    }
}
