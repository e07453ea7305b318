//! Tokens as the token commands print them for people: one per row (`list`), or one field a
//! line (`get`).

use chrono::{DateTime, SecondsFormat, Utc};
use protected_endpoint::record::ApiToken;
use protected_endpoint::{DeploymentAccess, Scope};

use crate::output::{println_out, Failure};

fn when(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(
        || "never".to_owned(),
        |at| at.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

fn scopes(token: &ApiToken) -> String {
    if token.scopes.is_empty() {
        "-".to_owned()
    } else {
        token
            .scopes
            .iter()
            .map(Scope::as_str)
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn deployments(token: &ApiToken) -> String {
    match &token.deployments {
        DeploymentAccess::Only(names) => names.iter().cloned().collect::<Vec<_>>().join(","),
        _ => "*".to_owned(),
    }
}

pub(crate) fn print_table(tokens: &[ApiToken]) -> Result<(), Failure> {
    if tokens.is_empty() {
        return println_out("No tokens.");
    }
    let now = Utc::now();
    let rows: Vec<[String; 11]> = tokens
        .iter()
        .map(|t| {
            [
                t.uid.clone(),
                t.name.clone(),
                scopes(t),
                deployments(t),
                when(Some(t.created_at)),
                when(t.expires_at),
                state(t).to_owned(),
                rate_limit(t),
                quota(t, now),
                when(t.last_used_at),
                usage(t),
            ]
        })
        .collect();
    let header = [
        "UID",
        "NAME",
        "SCOPES",
        "DEPLOYMENTS",
        "CREATED",
        "EXPIRES",
        "STATE",
        "RATE LIMIT",
        "QUOTA (USED/LIMIT)",
        "LAST USED",
        "USES (OK/EXPIRED/DISABLED)",
    ];
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 11]| {
        cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut text = line(header);
    for row in &rows {
        text.push('\n');
        text.push_str(&line(row.each_ref().map(String::as_str)));
    }
    println_out(&text)
}

pub(crate) fn print_token(token: &ApiToken) -> Result<(), Failure> {
    let description = if token.description.is_empty() {
        "-"
    } else {
        &token.description
    };
    println_out(&format!(
        "uid:          {}\nname:         {}\ndescription:  {}\nscopes:       {}\ndeployments:  {}\ncreated_at:   {}\nexpired_at:   {}\nstate:        {}\nrate_limit:   {}\nquota:        {}\nquota_left:   {}\nparent_uid:   {}\nlast_used_at: {}\nusage:        {}",
        token.uid,
        token.name,
        description,
        scopes(token),
        deployments(token),
        when(Some(token.created_at)),
        when(token.expires_at),
        state(token),
        rate_limit(token),
        token.quota.map_or_else(|| "-".to_owned(), |quota| quota.to_string()),
        quota_left(token, Utc::now()),
        token.parent_uid.as_deref().unwrap_or("-"),
        when(token.last_used_at),
        usage(token),
    ))
}

fn state(token: &ApiToken) -> &'static str {
    match token.enabled {
        true => "enabled",
        false => "disabled",
    }
}

fn rate_limit(token: &ApiToken) -> String {
    token
        .rate_limit
        .map_or_else(|| "-".to_owned(), |limit| limit.to_string())
}

/// The quota and its use in the current period, as the authority counted it:
/// `12/1000/day`, or `-`.
fn quota(token: &ApiToken, now: DateTime<Utc>) -> String {
    match (token.quota, token.quota_usage(now)) {
        (Some(quota), Some(usage)) => format!("{}/{quota}", usage.used),
        _ => "-".to_owned(),
    }
}

/// What is left of the quota and when it resets: `988 left, resets 2026-12-07T00:00:00Z`.
fn quota_left(token: &ApiToken, now: DateTime<Utc>) -> String {
    match (token.quota, token.quota_usage(now)) {
        (Some(quota), Some(usage)) => format!(
            "{} of {} left, resets {}",
            usage.remaining,
            quota.limit(),
            when(Some(usage.resets_at))
        ),
        _ => "-".to_owned(),
    }
}

/// Verification counts: `valid/expired/disabled`.
fn usage(token: &ApiToken) -> String {
    let usage = token.usage;
    format!("{}/{}/{}", usage.valid, usage.expired, usage.disabled)
}
