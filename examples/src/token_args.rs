//! The token flags the summarize examples share: which verifier the layer asks.
//!
//! Without flags, a demo token is created in an in-memory store and printed once. With
//! `--tokens FILE` (feature `file`), tokens come from a token file of hashes, reloaded when it
//! changes. With `--introspect URL --introspect-token T` (feature `remote`), a token authority
//! answers (RFC 7662), for example `protected-endpoint serve` (`docs/guide/authority.md`).

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;

use protected_endpoint::token::TokenSecret;
use protected_endpoint::TokenVerifier;
use protected_endpoint::{InMemoryTokenStore, NewToken};

/// Where tokens are verified.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// Verify tokens against this token file (JSON or TOML of hashes, reloaded when it changes;
    /// needs the `file` feature). Without it, a demo token is created and printed.
    #[arg(long, value_name = "FILE", conflicts_with = "introspect")]
    pub tokens: Option<PathBuf>,
    /// Verify tokens by RFC 7662 introspection at this URL, e.g.
    /// http://127.0.0.1:3001/oauth2/introspect (needs the `remote` feature).
    #[arg(long, value_name = "URL", requires = "introspect_token")]
    pub introspect: Option<String>,
    /// This service's own token for the introspection endpoint (it needs the `introspect`
    /// scope). Also read from INTROSPECT_TOKEN, which keeps it out of shell history.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "INTROSPECT_TOKEN",
        hide_env_values = true
    )]
    pub introspect_token: Option<String>,
    /// With --introspect: how long an introspection answer is cached, in seconds (0: no
    /// cache). Deletions reach the cache at once through the authority's revocation stream;
    /// the TTL bounds how long a deleted token passes while that stream is down.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 10,
        requires = "introspect"
    )]
    pub cache_ttl: u64,
}

/// The verifier the layer asks, and the secret of the demo token if one was created here.
pub struct ChosenVerifier {
    pub verifier: Arc<dyn TokenVerifier>,
    pub new_token: Option<TokenSecret>,
    /// Where tokens come from, for the start-up banner.
    pub source: String,
}

impl TokenArgs {
    /// Builds the verifier the flags ask for, for a service protecting `deployment`; without
    /// flags, an in-memory store holding `demo`, whose secret is returned to be shown once.
    pub fn verifier(
        &self,
        deployment: &str,
        demo: NewToken,
    ) -> Result<ChosenVerifier, Box<dyn Error>> {
        if let Some(path) = &self.tokens {
            return from_file(path);
        }
        if let (Some(url), Some(token)) = (&self.introspect, &self.introspect_token) {
            return from_authority(url, token, deployment, self.cache_ttl);
        }
        let store = InMemoryTokenStore::new();
        let created = store.create(demo)?;
        Ok(ChosenVerifier {
            verifier: Arc::new(store),
            new_token: Some(created.secret),
            source: "a demo token in memory".to_owned(),
        })
    }
}

#[cfg(feature = "file")]
fn from_file(path: &std::path::Path) -> Result<ChosenVerifier, Box<dyn Error>> {
    let verifier = protected_endpoint::verifier::file::TokenFileVerifier::open(path)?;
    Ok(ChosenVerifier {
        source: format!(
            "{} token(s) in {} (reloaded when it changes)",
            verifier.len(),
            path.display()
        ),
        verifier: Arc::new(verifier),
        new_token: None,
    })
}

#[cfg(not(feature = "file"))]
fn from_file(_path: &std::path::Path) -> Result<ChosenVerifier, Box<dyn Error>> {
    Err("--tokens needs the `file` feature: add `--features file` to `cargo run`".into())
}

/// The authority also learns from this verifier which deployment it protects, and offers it
/// in the console's Protected Endpoint Access choices.
#[cfg(feature = "remote")]
fn from_authority(
    url: &str,
    token: &str,
    deployment: &str,
    cache_ttl: u64,
) -> Result<ChosenVerifier, Box<dyn Error>> {
    let verifier = protected_endpoint::verifier::remote::RemoteVerifier::builder(url)
        .bearer_token(token.to_owned())
        .deployment(deployment)
        .cache_ttl(std::time::Duration::from_secs(cache_ttl))
        .build()?;
    let stream = match verifier.revocation_stream_url() {
        Some(stream) => format!(", deletions followed at {stream}"),
        None => String::new(),
    };
    Ok(ChosenVerifier {
        source: format!("tokens by introspection at {url} (cached {cache_ttl} s{stream})"),
        verifier: Arc::new(verifier),
        new_token: None,
    })
}

#[cfg(not(feature = "remote"))]
fn from_authority(
    _url: &str,
    _token: &str,
    _deployment: &str,
    _cache_ttl: u64,
) -> Result<ChosenVerifier, Box<dyn Error>> {
    Err("--introspect needs the `remote` feature: add `--features remote` to `cargo run`".into())
}
