//! `POST /api/v1/usage`: the uses protected services counted (a
//! [`UsageReporter`](crate::usage)'s reports), added to each token's usage.
//!
//! Authenticated as introspection is ([`resource_server_layer`]: a token with the `introspect`
//! scope), so only services report. The body is a [`UsageReport`] of at most
//! [`MAX_REPORT_BYTES`] (larger: 413), checked whole before anything is recorded
//! ([`UsageReport::check`]: a bad entry is a 400 naming its position, and nothing of the
//! report is kept). Entries naming no token of the authority's are ignored and counted in the
//! answer, `{"recorded": n, "unknown": m}`. The uses go to the store through
//! [`TokenStore::record_uses`](crate::store::TokenStore::record_uses), the path the
//! authority's own counts take. While the tokens in memory are loading or may be stale, the
//! answer is 503 and nothing is recorded: the reporter keeps its counts and tries again.
//!
//! A report with an `id` is recorded once: the same id again (a reporter whose answer was
//! lost sends the report again, unchanged) gets the first answer and records nothing; while
//! the first is still being recorded, a 503. The last [`REMEMBERED_REPORTS`] ids are
//! remembered, by this process (a repeat that reaches another replica is counted again).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;

use super::api::ApiError;
use super::introspect::resource_server_layer;
use super::{Authority, AuthorityError};
use crate::token::redact_token_like;
use crate::usage::{ReportAnswer, UsageReport, MAX_REPORT_BYTES, USAGE_PATH};

/// How many report ids the endpoint remembers, with their answers: a reporter whose answer
/// was lost sends the same report again at its next interval, long before this many other
/// reports arrive.
const REMEMBERED_REPORTS: usize = 4096;

pub(super) fn router(authority: Authority) -> Router {
    Router::new()
        .route(USAGE_PATH, post(report_usage))
        .route_layer(resource_server_layer(&authority))
        // Outside the handler, so an oversized body is a 413 before any of it is buffered
        // past the limit.
        .layer(DefaultBodyLimit::max(MAX_REPORT_BYTES))
        .with_state((authority, Arc::new(Recent::default())))
}

/// The ids of the reports recorded lately (or being recorded: `None`), with their answers.
#[derive(Default)]
struct Recent {
    reports: Mutex<Remembered>,
}

/// Each remembered id's answer, and the ids oldest first (the next to forget).
#[derive(Default)]
struct Remembered {
    answers: HashMap<String, Option<ReportAnswer>>,
    order: VecDeque<String>,
}

/// What to do with a report that has an id.
enum Seen {
    New,
    Recorded(ReportAnswer),
    InFlight,
}

impl Recent {
    fn lock(&self) -> MutexGuard<'_, Remembered> {
        // Nothing panics while holding it with the map half-changed.
        self.reports.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `id` was seen; a new one is noted as being recorded.
    fn begin(&self, id: &str) -> Seen {
        let mut guard = self.lock();
        let Remembered { answers, order } = &mut *guard;
        match answers.get(id) {
            Some(Some(answer)) => return Seen::Recorded(*answer),
            Some(None) => return Seen::InFlight,
            None => {}
        }
        answers.insert(id.to_owned(), None);
        order.push_back(id.to_owned());
        while order.len() > REMEMBERED_REPORTS {
            if let Some(oldest) = order.pop_front() {
                answers.remove(&oldest);
            }
        }
        Seen::New
    }

    /// The report `id` was recorded (`Some`) or not (`None`: it may be sent again).
    fn end(&self, id: &str, answer: Option<ReportAnswer>) {
        let answers = &mut self.lock().answers;
        match answer {
            Some(answer) => {
                if let Some(slot) = answers.get_mut(id) {
                    *slot = Some(answer);
                }
            }
            None => {
                answers.remove(id);
            }
        }
    }
}

async fn report_usage(
    State((authority, recent)): State<(Authority, Arc<Recent>)>,
    body: Bytes,
) -> Response {
    let report: UsageReport = match serde_json::from_slice(&body) {
        Ok(report) => report,
        // serde's message may quote a value of the body, and a value may be a secret.
        Err(err) => {
            return ApiError::from(AuthorityError::InvalidArgument(format!(
                "the body is not a usage report: {}",
                redact_token_like(&err.to_string())
            )))
            .into_response()
        }
    };
    let answered = |answer: ReportAnswer| {
        ([(header::CACHE_CONTROL, "no-store")], Json(answer)).into_response()
    };
    // A report sent again (its answer was lost) is answered as before and not recorded
    // twice; one still being recorded is a 503, which the reporter tries again later.
    let Some(id) = report.id.clone() else {
        return match authority.record_usage(&report).await {
            Ok(answer) => answered(answer),
            Err(err) => ApiError::from(err).into_response(),
        };
    };
    if report.check(Utc::now()).is_ok() {
        match recent.begin(&id) {
            Seen::New => {}
            Seen::Recorded(answer) => return answered(answer),
            Seen::InFlight => {
                return ApiError::from(AuthorityError::NotCurrent(
                    "this report is being recorded".into(),
                ))
                .into_response()
            }
        }
    }
    match authority.record_usage(&report).await {
        Ok(answer) => {
            recent.end(&id, Some(answer));
            answered(answer)
        }
        Err(err) => {
            recent.end(&id, None);
            ApiError::from(err).into_response()
        }
    }
}

impl Authority {
    /// Adds a service's usage report to its tokens' usage (what `POST /api/v1/usage` does):
    /// checked whole first ([`UsageReport::check`]; a bad entry refuses all of it), entries
    /// naming no token of this authority's ignored and counted in the answer, the rest
    /// written through the store's [`record_uses`](crate::store::TokenStore::record_uses).
    /// Fails, recording nothing, while the tokens in memory are loading or may be stale, and
    /// when the store cannot be read or written.
    ///
    /// ```
    /// use protected_endpoint::authority::Authority;
    /// use protected_endpoint::usage::{ReportedUse, UsageReport};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let authority = Authority::in_memory();
    /// let admin = authority.bootstrap_admin().await.unwrap().unwrap();
    /// let report = UsageReport { id: None, tokens: vec![
    ///     ReportedUse { uid: admin.token.uid.clone(), valid: 5, ..Default::default() },
    ///     ReportedUse { uid: "deleted-meanwhile".into(), valid: 1, ..Default::default() },
    /// ] };
    /// let answer = authority.record_usage(&report).await.unwrap();
    /// assert_eq!((answer.recorded, answer.unknown), (1, 1));
    /// let token = authority.get(&admin.token.uid).await.unwrap().unwrap();
    /// assert_eq!(token.usage.valid, 5);
    /// # });
    /// ```
    pub async fn record_usage(&self, report: &UsageReport) -> Result<ReportAnswer, AuthorityError> {
        self.check_current()?;
        let uses = report
            .check(Utc::now())
            .map_err(|err| AuthorityError::InvalidArgument(err.to_string()))?;
        let mut known = Vec::with_capacity(uses.len());
        for used in uses {
            // A token a service verified was introspected lately: its record is most often
            // in the read model's cache (the store itself for an in-memory authority).
            let cached = self.inner.tokens.created_at(&used.uid).is_some();
            if cached || self.inner.store.get(&used.uid).await?.is_some() {
                known.push(used);
            }
        }
        let answer = ReportAnswer {
            recorded: known.len(),
            unknown: report.tokens.len() - known.len(),
        };
        if !known.is_empty() {
            self.inner.store.record_uses(&known).await?;
        }
        Ok(answer)
    }
}
