//! Scraping `/metrics` and reading the Prometheus text by value.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;

/// The content type `/metrics` answers with.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4";

/// Bound for a value to show up on `/metrics` (an event still on its way).
pub const SCRAPE_BOUND: Duration = Duration::from_secs(20);

/// One scrape of `/metrics`: every sample, by metric name and labels.
#[derive(Debug, Default)]
pub struct Scrape {
    /// `name` → (sorted labels → value).
    samples: BTreeMap<String, BTreeMap<Vec<(String, String)>, f64>>,
    /// `# TYPE` lines: name → type.
    pub types: BTreeMap<String, String>,
    /// `# HELP` lines: name → text.
    pub help: BTreeMap<String, String>,
    pub text: String,
}

impl Scrape {
    /// Parses the Prometheus text exposition format (the subset exporters write: `# HELP`,
    /// `# TYPE`, `name{label="value",…} value`). Panics on a line it cannot read.
    pub fn parse(text: &str) -> Self {
        let mut scrape = Scrape {
            text: text.to_owned(),
            ..Scrape::default()
        };
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("a TYPE line");
                scrape.types.insert(name.to_owned(), kind.to_owned());
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                scrape.help.insert(name.to_owned(), help.to_owned());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("a sample line: {line:?}"));
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                other => other
                    .parse()
                    .unwrap_or_else(|_| panic!("a sample value: {line:?}")),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series, Vec::new()),
                Some((name, rest)) => {
                    let body = rest
                        .strip_suffix('}')
                        .unwrap_or_else(|| panic!("labels end with }}: {line:?}"));
                    (name, parse_labels(body, line))
                }
            };
            scrape
                .samples
                .entry(name.to_owned())
                .or_default()
                .insert(labels, value);
        }
        scrape
    }

    /// The value of the sample `name` with exactly `labels`, if there is one.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut wanted: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        wanted.sort();
        self.samples.get(name)?.get(&wanted).copied()
    }

    /// The value of `name` with `labels`; 0 when the series is absent (a counter that was
    /// never incremented is not rendered).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// Every label set `name` has a sample for.
    pub fn series(&self, name: &str) -> Vec<Vec<(String, String)>> {
        self.samples
            .get(name)
            .map(|by_labels| by_labels.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// `a="x",b="y\"z"` → sorted pairs.
fn parse_labels(body: &str, line: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        while chars.peek() == Some(&',') || chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "a quoted label value: {line:?}");
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => panic!("a broken escape: {line:?}"),
                },
                Some('"') => break,
                Some(c) => value.push(c),
                None => panic!("an unterminated label value: {line:?}"),
            }
        }
        labels.push((key.trim().to_owned(), value));
    }
    labels.sort();
    labels
}

/// `GET {base}/metrics`: asserts a 200 in the Prometheus text format and parses it.
pub async fn scrape(http: &reqwest::Client, base: &str) -> Scrape {
    let response = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("/metrics answers");
    assert_eq!(response.status(), StatusCode::OK, "GET {base}/metrics");
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, PROMETHEUS_TEXT);
    Scrape::parse(&response.text().await.unwrap())
}

/// Scrapes until `ready` holds (bounded by [`SCRAPE_BOUND`]; for values that arrive
/// asynchronously, such as revocation events), and returns that scrape. `what` names the wait.
pub async fn scrape_until(
    http: &reqwest::Client,
    base: &str,
    what: &str,
    ready: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let deadline = Instant::now() + SCRAPE_BOUND;
    loop {
        let scraped = scrape(http, base).await;
        if ready(&scraped) {
            return scraped;
        }
        assert!(
            Instant::now() < deadline,
            "waited in vain for {what}; last scrape:\n{}",
            scraped.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn the_parser_reads_labels_escapes_and_histograms() {
    let scrape = Scrape::parse(
        "# HELP x_total Things.\n# TYPE x_total counter\nx_total{b=\"2\",a=\"q\\\"uote\"} 3\nx_total 1\n\
         # TYPE d_seconds histogram\nd_seconds_bucket{le=\"+Inf\"} 4\nd_seconds_sum 0.5\n",
    );
    assert_eq!(
        scrape.get("x_total", &[("a", "q\"uote"), ("b", "2")]),
        Some(3.0)
    );
    assert_eq!(scrape.get("x_total", &[]), Some(1.0));
    assert_eq!(scrape.get("x_total", &[("a", "q\"uote")]), None);
    assert_eq!(scrape.value("absent_total", &[]), 0.0);
    assert_eq!(scrape.types["d_seconds"], "histogram");
    assert_eq!(scrape.help["x_total"], "Things.");
    assert_eq!(scrape.get("d_seconds_bucket", &[("le", "+Inf")]), Some(4.0));
}
