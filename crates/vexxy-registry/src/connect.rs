//! One connection to one repository of a registry, shared by pulls,
//! attaching and listing: credentials, the egress check and proxy, the
//! oci-client (and, where its API does not reach far enough, a plain HTTP
//! client configured the same way).

use std::time::Duration;

use oci_client::{
    client::{ClientConfig, ClientProtocol},
    secrets::RegistryAuth,
    token_cache::{RegistryToken, RegistryTokenType},
    Client, RegistryOperation,
};
use vexxy_egress::{EgressPolicy, EgressProxy};

use crate::{auth, error::Ctx, reference::ImageRef, PullOptions, RegistryError};

/// Default connect timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default read timeout.
const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// The `User-Agent` of every request.
const USER_AGENT: &str = concat!("vexxy-registry/", env!("CARGO_PKG_VERSION"));

/// What plain HTTP requests carry to the registry (never to anything else).
#[derive(Clone, Default)]
pub(crate) enum RawAuth {
    /// Nothing.
    #[default]
    None,
    /// `Authorization: Bearer …` from the registry's token service.
    Bearer(String),
    /// HTTP basic auth.
    Basic(String, String),
}

impl std::fmt::Debug for RawAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "None",
            Self::Bearer(_) => "Bearer(<redacted>)",
            Self::Basic(..) => "Basic(<redacted>)",
        })
    }
}

/// A connection to the registry of `image`. Dropping it stops the egress
/// proxy after the clients are gone (fields drop in order).
pub(crate) struct Session {
    pub(crate) image: ImageRef,
    pub(crate) ctx: Ctx,
    pub(crate) auth: RegistryAuth,
    /// Non-fatal problems met while resolving the credentials.
    pub(crate) warnings: Vec<String>,
    pub(crate) client: Client,
    /// A plain HTTP client with the same proxy, timeouts and user agent,
    /// when asked for.
    pub(crate) http: Option<reqwest::Client>,
    /// What plain HTTP requests carry, once [`Session::authenticate`] ran.
    pub(crate) raw_auth: RawAuth,
    /// The registries spoken to over plain HTTP.
    insecure: Vec<String>,
    /// Last: stops after the clients are dropped.
    _proxy: Option<EgressProxy>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("image", &self.image)
            .field("raw_auth", &self.raw_auth)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Resolves the credentials, checks the registry's host under the
    /// egress policy (starting the proxy every connection then goes
    /// through) and builds the clients. Sends nothing to the registry.
    pub(crate) async fn open(
        image: ImageRef,
        opts: &PullOptions,
        plain_http_client: bool,
    ) -> Result<Self, RegistryError> {
        let (auth, warnings) = auth::resolve(&opts.credentials, image.registry())?;
        let insecure = insecure_list(&opts.insecure_registries);
        let mut ctx = Ctx {
            registry: image.registry().to_owned(),
            reference: image.given.clone(),
            egress: None,
        };
        // Under a policy, the registry's host is checked before anything is
        // sent, and the clients reach the network only through the proxy.
        let proxy = match &opts.egress {
            Some(policy) => Some(start_egress(&image, policy, opts, &insecure, &ctx).await?),
            None => None,
        };
        ctx.egress = proxy.as_ref().map(EgressProxy::log);
        let client = client_for(opts, insecure.clone(), proxy.as_ref(), &ctx)?;
        let http = if plain_http_client {
            Some(http_client_for(opts, proxy.as_ref(), &ctx)?)
        } else {
            None
        };
        Ok(Self {
            image,
            ctx,
            auth,
            warnings,
            client,
            http,
            raw_auth: RawAuth::None,
            insecure,
            _proxy: proxy,
        })
    }

    /// Authenticates up front for `op` (`push` asks the token service for
    /// `pull,push`): the client otherwise swallows a token service's
    /// refusal and retries anonymously, hiding the reason. Remembers what
    /// plain HTTP requests must carry.
    pub(crate) async fn authenticate(
        &mut self,
        op: RegistryOperation,
    ) -> Result<(), RegistryError> {
        let token = self
            .client
            .auth(self.image.oci(), &self.auth, op)
            .await
            .map_err(|e| self.ctx.map(e))?;
        self.raw_auth = match (token, &self.auth) {
            (Some(token), _) => {
                if op == RegistryOperation::Push {
                    // a push token also pulls: spare the client a second
                    // round trip to the token service
                    self.client
                        .tokens
                        .insert(
                            self.image.oci(),
                            RegistryOperation::Pull,
                            RegistryTokenType::Bearer(RegistryToken::Token {
                                token: token.clone(),
                            }),
                        )
                        .await;
                }
                RawAuth::Bearer(token)
            }
            (None, RegistryAuth::Basic(user, pass)) => RawAuth::Basic(user.clone(), pass.clone()),
            (None, _) => RawAuth::None,
        };
        Ok(())
    }

    /// `http` or `https`, as the client speaks to the registry.
    pub(crate) fn scheme(&self) -> &'static str {
        let registry = self.image.resolved_registry();
        if self.insecure.iter().any(|r| r == registry) {
            "http"
        } else {
            "https"
        }
    }
}

/// The registries reached over plain HTTP, as oci-client compares them.
pub(crate) fn insecure_list(given: &[String]) -> Vec<String> {
    given
        .iter()
        .map(|r| {
            let r = r.trim();
            r.strip_prefix("http://")
                .unwrap_or(r)
                .trim_end_matches('/')
                .to_owned()
        })
        .collect()
}

/// The host and port the client connects to for `image`: 80 for a
/// registry named insecure without a port, else 443.
pub(crate) fn endpoint(image: &ImageRef, insecure_registries: &[String]) -> (String, u16) {
    let registry = image.resolved_registry();
    let plain = insecure_list(insecure_registries)
        .iter()
        .any(|r| r == registry);
    let default = if plain { 80 } else { 443 };
    vexxy_egress::split_authority(registry, Some(default))
        .unwrap_or_else(|| (registry.to_owned(), default))
}

/// Checks the registry's host under the policy (resolved once, every
/// address checked: a refused registry is never sent a byte), then starts
/// the proxy every connection goes through.
async fn start_egress(
    image: &ImageRef,
    policy: &EgressPolicy,
    opts: &PullOptions,
    insecure: &[String],
    ctx: &Ctx,
) -> Result<EgressProxy, RegistryError> {
    let policy = policy
        .clone()
        .with_connect_timeout(opts.timeout.unwrap_or(CONNECT_TIMEOUT));
    let (host, port) = endpoint(image, insecure);
    let check = policy.clone();
    let checked = tokio::task::spawn_blocking(move || check.resolve(&host, port))
        .await
        .map_err(|e| ctx.network(format!("checking the registry's address failed: {e}")))?;
    checked.map_err(|source| RegistryError::Egress {
        registry: ctx.registry.clone(),
        reference: ctx.reference.clone(),
        source: Box::new(source),
    })?;
    EgressProxy::start(policy, insecure)
        .map_err(|e| ctx.network(format!("cannot start the egress proxy: {e}")))
}

fn client_for(
    opts: &PullOptions,
    insecure: Vec<String>,
    proxy: Option<&EgressProxy>,
    ctx: &Ctx,
) -> Result<Client, RegistryError> {
    let protocol = if insecure.is_empty() {
        ClientProtocol::Https
    } else {
        ClientProtocol::HttpsExcept(insecure)
    };
    let config = ClientConfig {
        protocol,
        platform_resolver: None,
        connect_timeout: Some(opts.timeout.unwrap_or(CONNECT_TIMEOUT)),
        read_timeout: Some(opts.timeout.unwrap_or(READ_TIMEOUT)),
        user_agent: USER_AGENT,
        // blobs pushed here are small: one POST and one PUT each
        use_monolithic_push: true,
        // the same proxy for both schemes; nothing bypasses it
        https_proxy: proxy.map(EgressProxy::url),
        http_proxy: proxy.map(EgressProxy::url),
        no_proxy: None,
        ..ClientConfig::default()
    };
    Client::try_from(config).map_err(|e| ctx.map(e))
}

/// A plain HTTP client configured as [`client_for`] configures oci-client's:
/// same timeouts, user agent and proxy (for every scheme). Redirects are
/// followed as reqwest does, which drops `Authorization` when one leaves
/// the registry's host; under a policy the proxy checks each destination.
fn http_client_for(
    opts: &PullOptions,
    proxy: Option<&EgressProxy>,
    ctx: &Ctx,
) -> Result<reqwest::Client, RegistryError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(opts.timeout.unwrap_or(CONNECT_TIMEOUT))
        .read_timeout(opts.timeout.unwrap_or(READ_TIMEOUT))
        .user_agent(USER_AGENT);
    if let Some(proxy) = proxy {
        let proxy = reqwest::Proxy::all(proxy.url()).map_err(|e| {
            ctx.network(format!(
                "cannot use the egress proxy: {}",
                crate::error::chain(&e)
            ))
        })?;
        builder = builder.proxy(proxy);
    }
    builder.build().map_err(|e| {
        ctx.network(format!(
            "cannot build an http client: {}",
            crate::error::chain(&e)
        ))
    })
}
