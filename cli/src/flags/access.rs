//! `--deployment NAME` and `--require-scope SCOPE[,SCOPE…]`: what a token must allow to pass
//! a protecting server of the program (the layer's access policy).

use protected_endpoint::scope::DeploymentAccess;
use protected_endpoint::{ProtectedEndpointLayer, Scope, TokenVerifier};

/// The access policy.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Access")]
pub(crate) struct AccessFlags {
    /// The deployment this server protects: only tokens with access to it (Protected
    /// Endpoint Access: every deployment, or a list naming it) pass; others get 403
    /// `insufficient_scope`. Without it, any valid token passes whatever its deployments.
    /// Also the realm of the challenges.
    #[arg(long, value_name = "NAME", value_parser = parse_deployment)]
    pub(crate) deployment: Option<String>,
    /// Scopes a token must hold, comma-separated (`api`, or `api,read_cluster`); a token
    /// without one of them gets 403 `insufficient_scope` naming them.
    #[arg(long, value_name = "SCOPE[,SCOPE…]", value_parser = parse_scopes)]
    pub(crate) require_scope: Option<Scopes>,
}

/// Scopes from one comma-separated value (a setting holds one value).
#[derive(Debug, Clone)]
pub(crate) struct Scopes(Vec<Scope>);

impl AccessFlags {
    /// `layer` with this policy (and the deployment as its realm).
    pub(crate) fn apply<V: TokenVerifier + ?Sized>(
        &self,
        mut layer: ProtectedEndpointLayer<V>,
    ) -> ProtectedEndpointLayer<V> {
        if let Some(name) = &self.deployment {
            layer = layer.deployment(name.clone()).realm(name.clone());
        }
        if let Some(Scopes(scopes)) = &self.require_scope {
            layer = layer.require_scopes(scopes.iter().cloned());
        }
        layer
    }
}

/// A deployment name as tokens name them (checked by the library's own rule).
fn parse_deployment(text: &str) -> Result<String, String> {
    let name = text.trim();
    DeploymentAccess::only([name]).map_err(|err| err.to_string())?;
    Ok(name.to_owned())
}

/// `api` or `api,read_cluster`: at least one scope.
fn parse_scopes(text: &str) -> Result<Scopes, String> {
    let scopes = text
        .split(',')
        .map(str::trim)
        .filter(|scope| !scope.is_empty())
        .map(|scope| Scope::new(scope).map_err(|err| err.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    if scopes.is_empty() {
        return Err("no scope: expected e.g. api, or api,read_cluster".to_owned());
    }
    Ok(Scopes(scopes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_comma_separated_and_checked() {
        let Scopes(scopes) = parse_scopes("api, read_cluster").unwrap();
        assert_eq!(scopes, [Scope::API, Scope::READ_CLUSTER]);
        assert!(parse_scopes(" , ").is_err());
        assert!(parse_scopes("api,has space").is_err());
    }

    #[test]
    fn deployment_names_are_checked() {
        assert_eq!(parse_deployment(" summarize ").unwrap(), "summarize");
        assert!(parse_deployment("no spaces").is_err());
    }
}
