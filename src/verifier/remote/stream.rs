//! Following the authority's revocation stream (server-sent events at
//! `/oauth2/revocations`): each `revoked` hash is evicted from the cache at once, and the whole
//! cache is cleared whenever events may have been missed (on every (re)connect, and on
//! `resync`). While the stream is down, cached answers expire by their TTL as before.
//!
//! Metrics: every event received is counted ([`REVOCATION_EVENTS`], by `event`), and
//! [`REVOCATION_STREAM_CONNECTED`] is raised by one from `ready` until the connection ends
//! (a guard lowers it, whichever way the connection or the task ends), so it reads 1 while
//! the one verifier of a process follows the stream and 0 while it reconnects.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use http::header::ACCEPT;
use http::StatusCode;

use super::Inner;
use crate::telemetry::{REVOCATION_EVENTS, REVOCATION_STREAM_CONNECTED};
use crate::token::TokenHash;

/// The first wait before reconnecting; doubled after each failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long to wait before asking again an authority that offers no stream (404, 405).
const NO_STREAM_RETRY: Duration = Duration::from_secs(60);
/// Silence longer than this means a dead connection: the authority sends a keep-alive
/// comment every 5 s.
const IDLE_LIMIT: Duration = Duration::from_secs(15);
/// The longest line an event may have; a longer one means this is not our stream.
const MAX_LINE: usize = 4096;

/// Hashes revoked lately, so that an introspection answer already on its way when the
/// revocation arrived is not cached as active. Kept for as long as a cached answer may live.
///
/// Asked on every request of the cache's fast path, and empty nearly always: `is_empty`
/// reads a count kept beside the map (changed under its lock), so that path takes no lock.
#[derive(Default)]
pub(super) struct RecentRevocations {
    hashes: Mutex<HashMap<TokenHash, Instant>>,
    /// `hashes.len()`, written under the lock after each change.
    len: AtomicUsize,
}

impl RecentRevocations {
    pub(super) fn remember(&self, hash: TokenHash, keep_for: Duration) {
        let now = Instant::now();
        let mut hashes = self.hashes.lock().unwrap_or_else(PoisonError::into_inner);
        hashes.retain(|_, until| *until > now);
        hashes.insert(hash, now + keep_for);
        self.len.store(hashes.len(), Ordering::SeqCst);
    }

    pub(super) fn contains(&self, hash: &TokenHash) -> bool {
        let hashes = self.hashes.lock().unwrap_or_else(PoisonError::into_inner);
        hashes
            .get(hash)
            .is_some_and(|until| *until > Instant::now())
    }

    /// Forgets that `hash` was revoked (its token was enabled again).
    pub(super) fn forget(&self, hash: &TokenHash) {
        let mut hashes = self.hashes.lock().unwrap_or_else(PoisonError::into_inner);
        hashes.remove(hash);
        self.len.store(hashes.len(), Ordering::SeqCst);
    }

    /// Whether no hash is remembered: a count written after the map changed, so a request
    /// that begins after `remember` returned sees the hash (then `contains` takes the lock).
    pub(super) fn is_empty(&self) -> bool {
        self.len.load(Ordering::SeqCst) == 0
    }
}

/// Starts the follower task. It holds the verifier weakly and ends with its last clone.
pub(super) fn spawn(inner: &Arc<Inner>, url: reqwest::Url) {
    let weak = Arc::downgrade(inner);
    tokio::spawn(follow(weak, url));
}

async fn follow(weak: Weak<Inner>, url: reqwest::Url) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let outcome = listen(&inner, &weak, &url).await;
        let Some(inner) = weak.upgrade() else { return };
        inner.following.store(false, Ordering::SeqCst);
        let wait = match outcome {
            Outcome::Followed => {
                // It worked for a while: start over with a short wait.
                backoff = MIN_BACKOFF;
                backoff
            }
            Outcome::NoStream(status) => {
                tracing::debug!(%status, "the authority offers no revocation stream; cache TTL only");
                NO_STREAM_RETRY
            }
            Outcome::Failed(reason) => {
                tracing::debug!(%reason, "revocation stream down; reconnecting");
                backoff
            }
        };
        drop(inner);
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

enum Outcome {
    /// The stream was up (`ready` seen) and then ended.
    Followed,
    /// The authority has no such route.
    NoStream(StatusCode),
    /// It failed before or without `ready`.
    Failed(String),
}

/// One connection: read events until the stream ends, breaks or goes silent.
async fn listen(inner: &Arc<Inner>, weak: &Weak<Inner>, url: &reqwest::Url) -> Outcome {
    let client = &inner.client;
    let request = client
        .http
        .get(url.clone())
        .header(ACCEPT, "text/event-stream");
    let request = client.credentials.apply(request);
    let connect = tokio::time::timeout(client.limits.request_timeout, request.send()).await;
    let mut response = match connect {
        Ok(Ok(response)) => response,
        Ok(Err(err)) => return Outcome::Failed(err.without_url().to_string()),
        Err(_) => return Outcome::Failed("no answer within the request timeout".into()),
    };
    match response.status() {
        StatusCode::OK => {}
        status @ (StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED) => {
            return Outcome::NoStream(status)
        }
        status => return Outcome::Failed(format!("the stream answered {status}")),
    }
    // Only the connection is needed from here: hold the verifier weakly, so dropping it
    // ends this task even while the stream is quiet.
    let mut parser = EventParser::default();
    let mut ready = false;
    let mut connected: Option<Connected> = None;
    loop {
        let chunk = match tokio::time::timeout(IDLE_LIMIT, response.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            Ok(Ok(None)) => return ended(ready, "the authority closed the stream"),
            Ok(Err(err)) => return ended(ready, &err.without_url().to_string()),
            Err(_) => return ended(ready, "the stream went silent"),
        };
        let Some(inner) = weak.upgrade() else {
            return Outcome::Followed;
        };
        for event in parser.feed(&chunk) {
            if let Ok(event) = &event {
                if let Some(label) = event.label() {
                    metrics::counter!(REVOCATION_EVENTS, "event" => label).increment(1);
                }
            }
            match event {
                Ok(Event::Ready) => {
                    // Whatever was revoked while we were away is unknown: forget everything.
                    inner.following.store(true, Ordering::SeqCst);
                    inner.forget_all();
                    ready = true;
                    // After the clearing: a scrape that sees 1 sees the cache cleared too.
                    connected.get_or_insert_with(Connected::new);
                }
                Ok(Event::Revoked(hash)) => inner.forget_revoked(hash).await,
                Ok(Event::Restored(hash)) => inner.forget_restored(hash).await,
                Ok(Event::Resync) => inner.forget_all(),
                Ok(Event::Other) => {}
                Err(reason) => {
                    inner.forget_all();
                    return ended(ready, &reason);
                }
            }
        }
    }
}

/// One connection that is up (`ready` seen): [`REVOCATION_STREAM_CONNECTED`] is one higher
/// while it lives.
struct Connected;

impl Connected {
    fn new() -> Self {
        metrics::gauge!(REVOCATION_STREAM_CONNECTED).increment(1.0);
        Connected
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        metrics::gauge!(REVOCATION_STREAM_CONNECTED).decrement(1.0);
    }
}

fn ended(ready: bool, reason: &str) -> Outcome {
    if ready {
        tracing::debug!(%reason, "revocation stream ended");
        Outcome::Followed
    } else {
        Outcome::Failed(reason.to_owned())
    }
}

/// One event of the stream.
#[derive(Debug, PartialEq)]
enum Event {
    Ready,
    Revoked(TokenHash),
    /// The secret verifies again (its token was enabled).
    Restored(TokenHash),
    Resync,
    /// An event type this version does not know: ignored, for forward compatibility.
    Other,
}

impl Event {
    /// The `event` label of [`REVOCATION_EVENTS`]; unknown events are not counted.
    fn label(&self) -> Option<&'static str> {
        match self {
            Event::Ready => Some("ready"),
            Event::Revoked(_) => Some("revoked"),
            Event::Restored(_) => Some("restored"),
            Event::Resync => Some("resync"),
            Event::Other => None,
        }
    }
}

/// A minimal server-sent events parser (the subset the authority sends: `event:` and `data:`
/// lines, comments, blank-line dispatch).
#[derive(Default)]
struct EventParser {
    line: Vec<u8>,
    event: String,
    data: String,
}

impl EventParser {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Result<Event, String>> {
        let mut events = Vec::new();
        for &byte in bytes {
            if byte != b'\n' {
                if self.line.len() >= MAX_LINE {
                    events.push(Err("an event line is too long".to_owned()));
                    self.line.clear();
                    return events;
                }
                self.line.push(byte);
                continue;
            }
            let line = std::mem::take(&mut self.line);
            let line = String::from_utf8_lossy(&line);
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if line.is_empty() {
                if let Some(event) = self.dispatch() {
                    events.push(event);
                }
            } else if let Some(value) = field(line, "event") {
                self.event = value.to_owned();
            } else if let Some(value) = field(line, "data") {
                self.data.push_str(value);
            }
            // Comments (`:` keep-alives) and other fields are ignored.
        }
        events
    }

    fn dispatch(&mut self) -> Option<Result<Event, String>> {
        let event = std::mem::take(&mut self.event);
        let data = std::mem::take(&mut self.data);
        Some(Ok(match event.as_str() {
            "" if data.is_empty() => return None,
            "ready" => Event::Ready,
            "resync" => Event::Resync,
            "revoked" => match revoked_hash(&data) {
                Some(hash) => Event::Revoked(hash),
                None => return Some(Err("a revoked event without a valid hash".to_owned())),
            },
            "restored" => match revoked_hash(&data) {
                Some(hash) => Event::Restored(hash),
                None => return Some(Err("a restored event without a valid hash".to_owned())),
            },
            _ => Event::Other,
        }))
    }
}

fn field<'l>(line: &'l str, name: &str) -> Option<&'l str> {
    let value = line.strip_prefix(name)?.strip_prefix(':')?;
    Some(value.strip_prefix(' ').unwrap_or(value))
}

fn revoked_hash(data: &str) -> Option<TokenHash> {
    #[derive(serde::Deserialize)]
    struct Revoked {
        hash: String,
    }
    let revoked: Revoked = serde_json::from_str(data).ok()?;
    revoked.hash.parse().ok()
}

/// The stream's URL for an introspection endpoint that ends in `/introspect`: the sibling
/// `/revocations` (what this crate's authority serves). `None` for any other endpoint.
pub(super) fn default_url(endpoint: &reqwest::Url) -> Option<reqwest::Url> {
    let path = endpoint.path().strip_suffix("/introspect")?;
    let mut url = endpoint.clone();
    url.set_path(&format!("{path}/revocations"));
    url.set_query(None);
    Some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_revocations_say_whether_any_is_remembered_without_the_lock() {
        let recent = RecentRevocations::default();
        let (a, b) = (TokenHash::of_str("a"), TokenHash::of_str("b"));
        assert!(recent.is_empty());
        recent.remember(a, Duration::from_secs(60));
        recent.remember(b, Duration::from_secs(60));
        assert!(!recent.is_empty() && recent.contains(&a) && recent.contains(&b));
        recent.forget(&a);
        assert!(!recent.is_empty() && !recent.contains(&a));
        recent.forget(&b);
        assert!(recent.is_empty());
        // An expired hash is dropped by the next `remember`, and the count follows.
        recent.remember(a, Duration::ZERO);
        recent.remember(b, Duration::from_secs(60));
        recent.forget(&b);
        assert!(recent.is_empty());
    }

    #[test]
    fn events_split_anywhere_parse_the_same() {
        let hash = TokenHash::of_str("x");
        let text = format!(
            ": keep-alive\n\nevent: ready\ndata: {{}}\n\nevent: revoked\r\ndata: {{\"hash\":\"{hash}\"}}\r\n\r\nevent: resync\ndata: {{}}\n\nevent: later\ndata: 1\n\n"
        );
        for split in [1, 3, 7, text.len()] {
            let mut parser = EventParser::default();
            let mut events = Vec::new();
            for piece in text.as_bytes().chunks(split) {
                events.extend(parser.feed(piece));
            }
            assert_eq!(
                events,
                vec![
                    Ok(Event::Ready),
                    Ok(Event::Revoked(hash)),
                    Ok(Event::Resync),
                    Ok(Event::Other)
                ]
            );
        }
    }

    #[test]
    fn a_revoked_event_without_a_hash_is_an_error() {
        let mut parser = EventParser::default();
        let events = parser.feed(b"event: revoked\ndata: {\"hash\":\"nope\"}\n\n");
        assert!(matches!(events.as_slice(), [Err(_)]));
        let long = vec![b'a'; MAX_LINE + 1];
        assert!(matches!(parser.feed(&long).as_slice(), [Err(_)]));
    }

    #[test]
    fn a_restored_event_names_its_hash() {
        let hash = TokenHash::of(&crate::token::TokenSecret::generate());
        let mut parser = EventParser::default();
        let text = format!("event: restored\ndata: {{\"hash\":\"{hash}\"}}\n\n");
        assert_eq!(
            parser.feed(text.as_bytes()),
            vec![Ok(Event::Restored(hash))]
        );
        let events = parser.feed(b"event: restored\ndata: {}\n\n");
        assert!(matches!(events.as_slice(), [Err(_)]));
    }

    #[test]
    fn the_stream_sits_beside_the_introspection_endpoint() {
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        assert_eq!(
            default_url(&url("http://a:1/oauth2/introspect"))
                .unwrap()
                .as_str(),
            "http://a:1/oauth2/revocations"
        );
        assert!(default_url(&url("http://a:1/token/info")).is_none());
    }
}
