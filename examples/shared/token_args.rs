//! The token flags the summarize examples share: which verifier the layer asks.
//!
//! Without flags, a demo token is created in an in-memory store and printed once. With
//! `--tokens FILE` (feature `file`), tokens come from a token file of hashes, reloaded when it
//! changes.

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;

use protected_endpoint::token::TokenSecret;
use protected_endpoint::verifier::memory::{InMemoryTokenStore, NewToken};
use protected_endpoint::TokenVerifier;

/// Where tokens are verified.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// Verify tokens against this token file (JSON or TOML of hashes, reloaded when it changes;
    /// needs the `file` feature). Without it, a demo token is created and printed.
    #[arg(long, value_name = "FILE")]
    pub tokens: Option<PathBuf>,
}

/// The verifier the layer asks, and the secret of the demo token if one was created here.
pub struct ChosenVerifier {
    pub verifier: Arc<dyn TokenVerifier>,
    pub new_token: Option<TokenSecret>,
    /// Where tokens come from, for the start-up banner.
    pub source: String,
}

impl TokenArgs {
    /// Builds the verifier the flags ask for; without flags, an in-memory store holding
    /// `demo`, whose secret is returned to be shown once.
    pub fn verifier(&self, demo: NewToken) -> Result<ChosenVerifier, Box<dyn Error>> {
        if let Some(path) = &self.tokens {
            return from_file(path);
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
    let verifier = protected_endpoint::verifier::file::StaticFileVerifier::open(path)?;
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
