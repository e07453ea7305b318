//! `--tokens FILE` or `--authority URL`: where a protecting server of the program (`gateway`,
//! `authz`) verifies tokens — a token file ([`TokenFileVerifier`], reloaded when it changes)
//! or a token authority ([`RemoteVerifier`]: RFC 7662 introspection with a cache, following
//! the authority's revocation stream). Exactly one.
//!
//! The service token the verifier shows the authority (scope `introspect`) is a secret: it
//! comes from the environment (`PROTECTED_ENDPOINT_SERVICE_TOKEN`), from a file
//! (`--service-token-file`) or from the config file, never from the command line, where shell
//! history and `ps` would keep it ([`refuse_secret_on_command_line`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::ArgMatches;
use http::Uri;
use protected_endpoint::authority::INTROSPECTION_PATH;
use protected_endpoint::token::TokenSecret;
use protected_endpoint::usage::{UsageReporter, DEFAULT_USAGE_INTERVAL};
use protected_endpoint::verifier::file::TokenFileVerifier;
use protected_endpoint::verifier::remote::{RemoteVerifier, DEFAULT_CACHE_TTL};
use protected_endpoint::{ProtectedEndpointLayer, TokenVerifier};

use crate::duration::{format_timeout, parse_timeout};
use crate::settings::env_var;

/// The id (and long name) of the setting holding the service token itself: an environment
/// variable or a config-file key, refused as a flag.
pub(crate) const SERVICE_TOKEN: &str = "service-token";

/// Where tokens are verified.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Tokens")]
pub(crate) struct VerifierFlags {
    /// Verify tokens against this token file (JSON or TOML of hashes, what `protected-endpoint
    /// token create --file` writes), reloaded when it changes: an edit or a deletion counts
    /// within moments, with no restart.
    #[arg(long, value_name = "FILE", conflicts_with = "authority")]
    pub(crate) tokens: Option<PathBuf>,
    /// Verify tokens on this token authority (`protected-endpoint serve`): its address
    /// (`http://127.0.0.1:3001`, introspection at /oauth2/introspect) or the full URL of an
    /// RFC 7662 introspection endpoint. Answers are cached (--cache-ttl) and the authority's
    /// revocation stream is followed, so a deleted token is refused at once.
    #[arg(long, value_name = "URL", value_parser = parse_authority)]
    pub(crate) authority: Option<String>,
    /// A file holding the service token this server shows the authority (a token with the
    /// `introspect` scope), e.g. a mounted secret. Or set PROTECTED_ENDPOINT_SERVICE_TOKEN;
    /// never give the token itself as a flag (shell history, `ps`).
    #[arg(long, value_name = "FILE", conflicts_with = SERVICE_TOKEN)]
    pub(crate) service_token_file: Option<PathBuf>,
    /// The service token itself: only from PROTECTED_ENDPOINT_SERVICE_TOKEN or the config
    /// file (a flag is refused).
    #[arg(id = SERVICE_TOKEN, long = SERVICE_TOKEN, value_name = "TOKEN", hide = true, hide_env_values = true)]
    pub(crate) service_token: Option<String>,
    /// With --authority: how long an introspection answer is cached (`0`: no cache, every
    /// request asks the authority). Deletions reach the cache at once through the revocation
    /// stream; the TTL bounds how long a deleted token passes while that stream is down.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = format_timeout(DEFAULT_CACHE_TTL),
        value_parser = parse_cache_ttl
    )]
    pub(crate) cache_ttl: Duration,
    /// With --authority: how often this server reports to the authority how often each token
    /// was used here (its cache hits included), so the authority's listing and console count
    /// the whole fleet; `off` reports nothing. Failed reports are kept for the next one and
    /// never hold a request.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = format_timeout(DEFAULT_USAGE_INTERVAL),
        value_parser = parse_usage_interval
    )]
    pub(crate) usage_interval: UsageInterval,
}

/// How often usage is reported; `None`: never (`--usage-interval off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UsageInterval(pub(crate) Option<Duration>);

/// The verifier the flags chose, and a line saying what it is for the start-up log.
pub(crate) struct Verifier {
    pub(crate) verifier: Arc<dyn TokenVerifier>,
    pub(crate) source: String,
    /// What reports the verifier's decisions to the authority, when it does: the command
    /// flushes it on shutdown ([`Verifier::flush_usage`]), so the last counts are not lost.
    pub(crate) usage: Option<UsageReporter>,
}

impl Verifier {
    /// `layer` (built on this verifier) taking back the uses its rate limits and quotas
    /// refuse, when this verifier counts uses for a report.
    pub(crate) fn give_back_refused_uses(
        &self,
        layer: ProtectedEndpointLayer<dyn TokenVerifier>,
    ) -> ProtectedEndpointLayer<dyn TokenVerifier> {
        match &self.usage {
            Some(reporter) => layer.give_back_refused_uses(reporter),
            None => layer,
        }
    }

    /// Sends the usage counted since the last report, if this server reports any (on
    /// shutdown). A failure is logged by the reporter.
    pub(crate) async fn flush_usage(&self) {
        if let Some(reporter) = &self.usage {
            let _ = reporter.flush().await;
        }
    }
}

impl VerifierFlags {
    /// What the settings lack or combine wrongly, said for the user (the program then exits
    /// with status 2). clap cannot say it: a value from the environment or the config file
    /// reaches it as a default, which its `required` rules do not count.
    pub(crate) fn check(&self) -> Result<(), String> {
        let given = |long: &str| format!("--{long} (or {})", env_var(long));
        match (&self.tokens, &self.authority) {
            (None, None) => Err(format!(
                "no verifier: give {} or {}",
                given("tokens"),
                given("authority")
            )),
            (Some(_), _) if self.service_token_file.is_some() || self.service_token.is_some() => {
                Err("a service token is for --authority; --tokens needs none".to_owned())
            }
            (None, Some(_))
                if self.service_token_file.is_none() && self.service_token.is_none() =>
            {
                Err(format!(
                    "--authority needs this server's service token (scope `introspect`): set {} \
                     or give --service-token-file FILE",
                    env_var(SERVICE_TOKEN)
                ))
            }
            _ => Ok(()),
        }
    }

    /// Opens the token file or builds the authority's verifier, which protects `deployment`
    /// (the authority learns the name from it and offers it in its console).
    pub(crate) fn verifier(&self, deployment: Option<&str>) -> Result<Verifier, String> {
        self.check()?;
        if let Some(path) = &self.tokens {
            let verifier = TokenFileVerifier::open(path)
                .map_err(|err| format!("cannot read the token file {}: {err}", path.display()))?;
            return Ok(Verifier {
                source: format!(
                    "{} token(s) in {} (reloaded when it changes)",
                    verifier.len(),
                    path.display()
                ),
                verifier: Arc::new(verifier),
                usage: None,
            });
        }
        let url = self.authority.as_deref().expect("checked: one of the two");
        let endpoint = introspection_endpoint(url);
        let mut builder = RemoteVerifier::builder(&endpoint)
            .bearer_token(self.service_token()?)
            .cache_ttl(self.cache_ttl);
        if let Some(name) = deployment {
            builder = builder.deployment(name);
        }
        let verifier = builder
            .build()
            .map_err(|err| format!("--authority: {err}"))?;
        let cached = match self.cache_ttl.is_zero() {
            true => "no cache".to_owned(),
            false => format!("cached {}", format_timeout(self.cache_ttl)),
        };
        let stream = match verifier.revocation_stream_url() {
            Some(stream) => format!(", deletions followed at {stream}"),
            None => String::new(),
        };
        let source = format!("tokens by introspection at {endpoint} ({cached}{stream})");
        let Some(interval) = self.usage_interval.0 else {
            return Ok(Verifier {
                source: format!("{source}; usage not reported"),
                verifier: Arc::new(verifier),
                usage: None,
            });
        };
        let reporter = UsageReporter::for_verifier(&verifier)
            .interval(interval)
            .spawn()
            .map_err(|err| format!("--usage-interval: {err}"))?;
        Ok(Verifier {
            source: format!(
                "{source}; usage reported to {} every {}",
                reporter.endpoint(),
                format_timeout(interval)
            ),
            verifier: Arc::new(reporter.counting(verifier)),
            usage: Some(reporter),
        })
    }

    /// The service token, from its file or the setting.
    fn service_token(&self) -> Result<TokenSecret, String> {
        if let Some(token) = &self.service_token {
            return Ok(TokenSecret::new(token.trim().to_owned()));
        }
        let path = self
            .service_token_file
            .as_deref()
            .expect("checked: a service token with --authority");
        read_secret(path)
    }
}

/// The secret in `path`, without surrounding white space (a file ends with a newline).
fn read_secret(path: &Path) -> Result<TokenSecret, String> {
    let cannot = |why: &dyn std::fmt::Display| {
        format!(
            "cannot read the service token file {}: {why}",
            path.display()
        )
    };
    let text = std::fs::read_to_string(path).map_err(|err| cannot(&err))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(cannot(&"it is empty"));
    }
    Ok(TokenSecret::new(token.to_owned()))
}

/// Refuses the service token given as a flag: only the environment or the config file may
/// hold it. (As a setting it still has a flag, which every setting has: this is the guard.)
pub(crate) fn refuse_secret_on_command_line(matches: &ArgMatches) -> Result<(), String> {
    let Some((_, command)) = matches.subcommand() else {
        return Ok(());
    };
    let on_command_line = command
        .try_get_raw(SERVICE_TOKEN)
        .is_ok_and(|value| value.is_some())
        && command.value_source(SERVICE_TOKEN) == Some(ValueSource::CommandLine);
    match on_command_line {
        true => Err(format!(
            "--{SERVICE_TOKEN} is not a flag: a secret on the command line stays in shell \
             history and shows in `ps`. Set {} or give --service-token-file FILE",
            env_var(SERVICE_TOKEN)
        )),
        false => Ok(()),
    }
}

/// The introspection endpoint of `--authority URL`: the URL itself when it has a path, else
/// the authority's own introspection path under it.
fn introspection_endpoint(url: &str) -> String {
    let url = url.trim_end_matches('/');
    match url.parse::<Uri>() {
        Ok(uri) if uri.path() != "/" && !uri.path().is_empty() => url.to_owned(),
        _ => format!("{url}{INTROSPECTION_PATH}"),
    }
}

/// An `http://` or `https://` URL with a host, checked while the settings are read.
fn parse_authority(text: &str) -> Result<String, String> {
    let text = text.trim();
    let uri: Uri = text
        .parse()
        .map_err(|_| format!("{text:?} is not a URL such as http://127.0.0.1:3001"))?;
    let http = matches!(uri.scheme_str(), Some("http" | "https"));
    if !http || uri.host().is_none_or(str::is_empty) {
        return Err(format!(
            "{text:?} is not an http:// or https:// URL such as http://127.0.0.1:3001"
        ));
    }
    if uri.scheme_str() == Some("https") && !cfg!(feature = "rustls") {
        return Err(
            "an https authority needs the program built with `--features rustls`".to_owned(),
        );
    }
    Ok(text.to_owned())
}

/// A usage interval: `off` (no reports) or a timeout (1 s to a day).
fn parse_usage_interval(text: &str) -> Result<UsageInterval, String> {
    match text.trim() {
        "off" => Ok(UsageInterval(None)),
        text => parse_timeout(text)
            .map(|interval| UsageInterval(Some(interval)))
            .map_err(|err| format!("{err} (or `off`)")),
    }
}

/// A cache TTL: `0` (no cache) or a timeout.
fn parse_cache_ttl(text: &str) -> Result<Duration, String> {
    match text.trim() {
        "0" | "0s" => Ok(Duration::ZERO),
        text => parse_timeout(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_authority_address_gets_the_introspection_path() {
        assert_eq!(
            introspection_endpoint("http://127.0.0.1:3001"),
            "http://127.0.0.1:3001/oauth2/introspect"
        );
        assert_eq!(
            introspection_endpoint("http://auth.internal/"),
            "http://auth.internal/oauth2/introspect"
        );
        assert_eq!(
            introspection_endpoint("http://auth.internal/token/introspection"),
            "http://auth.internal/token/introspection"
        );
    }

    #[test]
    fn authority_urls_are_checked() {
        assert!(parse_authority("http://127.0.0.1:3001").is_ok());
        for bad in ["127.0.0.1:3001", "ftp://x", "http://", "not a url"] {
            assert!(parse_authority(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_usage_interval_is_a_duration_or_off() {
        assert_eq!(parse_usage_interval("off"), Ok(UsageInterval(None)));
        assert_eq!(
            parse_usage_interval("30s"),
            Ok(UsageInterval(Some(Duration::from_secs(30))))
        );
        for bad in ["0", "-1", "never", ""] {
            assert!(parse_usage_interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_cache_ttl_of_zero_is_no_cache() {
        assert_eq!(parse_cache_ttl("0"), Ok(Duration::ZERO));
        assert_eq!(parse_cache_ttl("30s"), Ok(Duration::from_secs(30)));
        assert!(parse_cache_ttl("-1").is_err());
    }
}
