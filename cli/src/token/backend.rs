//! Where a token command's tokens are ([`Target`]: a file, or an authority) and the calls on
//! them ([`Backend`]): the library's `TokenFileStore` for a file, its `AuthorityClient` for an
//! authority.

use std::path::PathBuf;

use chrono::Duration;
use clap::error::ErrorKind;
use clap::{Args, CommandFactory};
use protected_endpoint::authority_client::{
    AuthorityClient, ClientError, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT,
};
use protected_endpoint::quota::Quota;
use protected_endpoint::record::ApiToken;
use protected_endpoint::store::file::TokenFileStore;
use protected_endpoint::token::TokenSecret;
use protected_endpoint::{CreatedToken, NewToken};

use crate::duration::parse_duration;
use crate::output::{hide_api_token, scrub, Failure};

/// Where the tokens are: a file, or an authority. Exactly one.
#[derive(Debug, Args)]
pub(crate) struct Target {
    /// The token file (`.json` or `.toml`).
    #[arg(
        long,
        short = 'f',
        value_name = "FILE",
        required_unless_present = "endpoint",
        conflicts_with = "endpoint"
    )]
    file: Option<PathBuf>,
    /// The base URL of a running token authority, e.g. `http://127.0.0.1:3001`, instead of a
    /// file (needs `--api-token`).
    #[arg(long, value_name = "URL", requires = "api_token")]
    endpoint: Option<String>,
    /// The API token to call the authority with (`read_organization` to read,
    /// `write_organization` to create and delete). Prefer the environment variable: a
    /// command line ends up in shell history and process lists.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "PROTECTED_ENDPOINT_API_TOKEN",
        hide_env_values = true
    )]
    api_token: Option<String>,
    /// How long one call to the authority may take, e.g. `10s` (connecting alone: at most
    /// 5s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s", requires = "endpoint")]
    timeout: Duration,
}

/// The tokens a command works on.
pub(crate) enum Backend {
    File(TokenFileStore),
    Remote {
        client: AuthorityClient,
        /// Boxed: a runtime is large beside a file path.
        runtime: Box<tokio::runtime::Runtime>,
    },
}

impl Backend {
    pub(crate) fn open(target: Target) -> Result<Self, Failure> {
        match (target.file, target.endpoint, target.api_token) {
            (Some(file), None, _) => Ok(Backend::File(TokenFileStore::open(file)?)),
            (None, Some(endpoint), Some(api_token)) => {
                hide_api_token(&api_token);
                let timeout = target.timeout.to_std().unwrap_or(DEFAULT_REQUEST_TIMEOUT);
                let client = AuthorityClient::builder(&endpoint, TokenSecret::new(api_token))
                    .request_timeout(timeout)
                    .connect_timeout(timeout.min(DEFAULT_CONNECT_TIMEOUT))
                    .build()
                    .unwrap_or_else(|err| {
                        // A bad URL or an empty token is a bad command line: exit 2.
                        let message = scrub(&err.to_string());
                        crate::Cli::command()
                            .error(ErrorKind::InvalidValue, message)
                            .exit()
                    });
                // One call at a time: a current-thread runtime is all it takes.
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| Failure(format!("cannot start the async runtime: {e}")))?;
                Ok(Backend::Remote {
                    client,
                    runtime: Box::new(runtime),
                })
            }
            // clap enforces exactly one target, and an API token with an endpoint.
            _ => Err(Failure(
                "give either --file FILE or --endpoint URL with --api-token".to_owned(),
            )),
        }
    }

    /// Where the tokens are, for messages.
    pub(crate) fn place(&self) -> String {
        match self {
            Backend::File(store) => store.path().display().to_string(),
            Backend::Remote { client, .. } => client.endpoint().to_string(),
        }
    }

    fn remote<T>(
        runtime: &tokio::runtime::Runtime,
        client: &AuthorityClient,
        call: impl std::future::Future<Output = Result<T, ClientError>>,
    ) -> Result<T, Failure> {
        runtime.block_on(call).map_err(|err| match err {
            // Say which authority could not be reached.
            ClientError::Transport(_) | ClientError::Timeout(_) => {
                let hint = if client.endpoint().scheme() == "https" && !cfg!(feature = "rustls") {
                    " (this build has no TLS: install it with the `rustls` feature)"
                } else {
                    ""
                };
                Failure(format!("{}: {err}{hint}", client.endpoint()))
            }
            other => Failure::from(other),
        })
    }

    pub(crate) fn list(&self, search: Option<&str>) -> Result<Vec<ApiToken>, Failure> {
        match self {
            Backend::File(store) => Ok(store.list(search)?),
            Backend::Remote { client, runtime } => {
                Self::remote(runtime, client, client.list(search))
            }
        }
    }

    pub(crate) fn get(&self, uid: &str) -> Result<Option<ApiToken>, Failure> {
        match self {
            Backend::File(store) => Ok(store.get(uid)?),
            Backend::Remote { client, runtime } => Self::remote(runtime, client, client.get(uid)),
        }
    }

    /// Deletes the token; with how many tokens were revoked (itself and, on an authority,
    /// its descendants).
    pub(crate) fn delete(&self, uid: &str) -> Result<Option<(ApiToken, usize)>, Failure> {
        match self {
            Backend::File(store) => {
                self.existing_file()?;
                Ok(store.delete(uid)?.map(|token| (token, 1)))
            }
            Backend::Remote { client, runtime } => {
                Self::remote(runtime, client, client.delete_counted(uid))
            }
        }
    }

    /// A file command on a file that is not there is an error, not an empty success.
    fn existing_file(&self) -> Result<(), Failure> {
        match self {
            Backend::File(store) if !store.path().exists() => {
                Err(Failure(format!("{}: no such file", store.path().display())))
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn set_enabled(
        &self,
        uid: &str,
        enabled: bool,
    ) -> Result<Option<ApiToken>, Failure> {
        match self {
            Backend::File(store) => {
                self.existing_file()?;
                Ok(store.set_enabled(uid, enabled)?)
            }
            Backend::Remote { client, runtime } => match enabled {
                true => Self::remote(runtime, client, client.enable(uid)),
                false => Self::remote(runtime, client, client.disable(uid)),
            },
        }
    }

    pub(crate) fn set_quota(
        &self,
        uid: &str,
        quota: Option<Quota>,
    ) -> Result<Option<ApiToken>, Failure> {
        match self {
            Backend::File(store) => {
                self.existing_file()?;
                Ok(store.set_quota(uid, quota)?)
            }
            Backend::Remote { client, runtime } => {
                Self::remote(runtime, client, client.set_quota(uid, quota))
            }
        }
    }

    pub(crate) fn reroll(
        &self,
        uid: &str,
        grace: std::time::Duration,
    ) -> Result<Option<CreatedToken>, Failure> {
        match self {
            Backend::File(store) => {
                self.existing_file()?;
                Ok(store.reroll(uid, grace)?)
            }
            Backend::Remote { client, runtime } => {
                Self::remote(runtime, client, client.reroll(uid, grace))
            }
        }
    }

    pub(crate) fn create(&self, new: NewToken) -> Result<CreatedToken, Failure> {
        match self {
            // Unnamed deployments: every deployment in a file; on an authority, none (a
            // Developer Operations token, as the platform makes one its SDK creates).
            Backend::File(store) => Ok(store.create(new)?),
            Backend::Remote { client, runtime } => {
                Self::remote(runtime, client, client.create(&new))
            }
        }
    }
}
