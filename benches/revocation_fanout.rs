//! Revocation at scale (issue 24, item 6): one authority replica, `--followers` real
//! `RemoteVerifier`s following its revocation stream, and how long a delete takes to reach
//! every one of them. `scripts/revocation-fanout.sh` runs it as BENCHMARKS.md reports it.
//!
//! ```text
//! cargo bench --all-features --bench revocation_fanout --no-run   # build; then:
//! revocation_fanout authority [--addr 127.0.0.1:0] [--victims 5]
//! revocation_fanout follow --url http://127.0.0.1:PORT --caller SECRET --admin SECRET \
//!     --victims UID=SECRET,UID=SECRET… --authority-pid PID [--followers 2000]
//! ```
//!
//! **`authority`** serves `Authority::in_memory()` on `protected_endpoint::server` (its
//! default connection limit, 8 192: the former 1 024 refused followers beyond ~500) on a runtime
//! of one worker thread (the script pins it to one core), and prints the tokens the client
//! needs: `caller:` (the `introspect` scope, what every verifier authenticates with),
//! `admin:` (every scope: it deletes), one `victim: <uid>=<secret>` per round (the `api`
//! scope), then `listening on http://<addr>`.
//!
//! **`follow`** builds `--followers` `RemoteVerifier`s, each with its own HTTP client (its
//! own connections, as in `--followers` separate services), a one-hour cache and the default
//! revocation stream (`…/oauth2/revocations`), and lets each start following. It waits until
//! every stream said `ready` (the `protected_endpoint_revocation_stream_connected` gauge,
//! read through a Prometheus recorder installed in this process, reaches `--followers`),
//! notes the authority's resident memory before and after, and warms every verifier's cache
//! with every victim (one introspection each). Then, per round, it deletes one victim with
//! `DELETE /api/v1/api_tokens/{uid}` and watches every verifier's synchronous answer for that
//! token (`try_verify_sync`, what the layer asks first): a verifier has heard the revocation
//! when its cache no longer answers `active`. The time from just before the `DELETE` was sent
//! to that moment is the delay of that verifier; the checks sweep all verifiers not yet
//! reached, then pause 4 ms (`SWEEP_PAUSE`): a delay is taken when a check sees it, so it is
//! never under-counted, and over-counted by at most a sweep and a pause (about 5 ms). A
//! verifier not reached within 10 s fails the run. It prints `key value` lines: the
//! followers, the authority's RSS (KiB) before and after they connected and the difference
//! per follower (bytes), the p50/p90/p99/max delay in ms over every (round, verifier), and the
//! median CPU time a delete cost the authority and the followers' process (its sweeps taken
//! out), in ms: figures the machine's load does not inflate, unlike the delays (the kernel
//! counts CPU time in 10 ms ticks: run several rounds).

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use protected_endpoint::authority::{all_scopes, introspect_scope, Authority, INTROSPECTION_PATH};
use protected_endpoint::server::Server;
use protected_endpoint::telemetry::REVOCATION_STREAM_CONNECTED;
use protected_endpoint::token::TokenSecret;
use protected_endpoint::verifier::remote::RemoteVerifier;
use protected_endpoint::{NewToken, Scope, TokenVerifier};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[path = "common/flags.rs"]
mod flags;
use flags::Flags;

/// The pause between two sweeps over the verifiers not reached yet. A sweep of 2 000 costs
/// about a millisecond of the core the followers run on; pausing 4 ms keeps the measurement
/// from taking more than a fifth of it, and the delays stay exact to about 5 ms (a tenth of
/// the 50 ms target).
const SWEEP_PAUSE: Duration = Duration::from_millis(4);

fn main() {
    // `cargo bench` passes `--bench` to every bench binary; it means nothing here.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| arg != "--bench")
        .collect();
    let result = match args.first().map(String::as_str) {
        Some("authority") => authority(&Flags::parse(&args[1..])),
        Some("follow") => follow(&Flags::parse(&args[1..])),
        None => {
            eprintln!(
                "revocation_fanout: run through scripts/revocation-fanout.sh (see the file's docs)"
            );
            Ok(())
        }
        Some(other) => Err(format!("unknown command {other:?}: authority or follow").into()),
    };
    if let Err(err) = result {
        eprintln!("revocation_fanout: {err}");
        std::process::exit(1);
    }
}

fn authority(flags: &Flags) -> Result<(), BoxError> {
    let addr: SocketAddr = flags.get("addr").unwrap_or("127.0.0.1:0").parse()?;
    let victims: usize = flags.number("victims", 5)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let authority = Authority::in_memory();
        let caller = authority
            .create(NewToken::new("fanout verifier").scopes([introspect_scope()]))
            .await?;
        let admin = authority
            .create(NewToken::new("fanout admin").scopes(all_scopes()))
            .await?;
        println!("caller: {}", caller.secret.expose());
        println!("admin: {}", admin.secret.expose());
        for round in 0..victims {
            let victim = authority
                .create(NewToken::new(format!("fanout victim {round}")).scopes([Scope::API]))
                .await?;
            println!("victim: {}={}", victim.token.uid, victim.secret.expose());
        }
        // The front's default connection limit, as `protected-endpoint serve` runs it: two
        // a follower (its stream, its introspection connection) must fit 2 000 followers.
        let server = Server::bind(addr).await?;
        println!("listening on http://{}", server.local_addr()?);
        server.serve(authority.router()).await?;
        Ok(())
    })
}

fn follow(flags: &Flags) -> Result<(), BoxError> {
    let url = flags.required("url")?.trim_end_matches('/').to_owned();
    let caller = TokenSecret::new(flags.required("caller")?);
    let admin = flags.required("admin")?.to_owned();
    let authority_pid: u32 = flags.number("authority-pid", 0)?;
    let followers: usize = flags.number("followers", 2_000)?;
    let victims: Vec<(String, TokenSecret)> = flags
        .required("victims")?
        .split(',')
        .map(|pair| {
            let (uid, secret) = pair.split_once('=').ok_or("--victims: UID=SECRET,…")?;
            Ok((uid.to_owned(), TokenSecret::new(secret)))
        })
        .collect::<Result<_, BoxError>>()?;
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let rss_before = rss_kib(authority_pid)?;
        let endpoint = format!("{url}{INTROSPECTION_PATH}");
        let verifiers = (0..followers)
            .map(|_| {
                RemoteVerifier::builder(endpoint.clone())
                    .bearer_token(caller.clone())
                    .cache_ttl(Duration::from_secs(3600))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        // The first look starts each verifier's follower task (it needs a runtime).
        let now = SystemTime::now();
        for verifier in &verifiers {
            let _ = verifier.try_verify_sync(victims[0].1.expose(), now);
        }
        let connected_by = Instant::now() + Duration::from_secs(60);
        loop {
            let connected = gauge(&recorder.render(), REVOCATION_STREAM_CONNECTED);
            if connected >= followers as f64 {
                break;
            }
            if Instant::now() > connected_by {
                return Err(
                    format!("only {connected} of {followers} streams ready after 60 s").into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Let the authority settle (the last streams' first writes), then measure it.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_after = rss_kib(authority_pid)?;

        for (_, secret) in &victims {
            for verifier in &verifiers {
                verifier.verify(secret).await?;
            }
        }
        let http = reqwest::Client::new();
        let mut delays: Vec<f64> = Vec::with_capacity(followers * victims.len());
        // CPU time (user + system) per round: the authority's (all of it the delete and its
        // fan-out: nothing else asks it anything meanwhile), and this process's (the 2 000
        // followers hearing the event, plus the sweeps, whose own time is measured and taken
        // out). These do not depend on the machine's load the way the delays do.
        let mut authority_cpu_ms = Vec::with_capacity(victims.len());
        let mut followers_cpu_ms = Vec::with_capacity(victims.len());
        for (uid, secret) in &victims {
            // Into each verifier's hot table again (from its cache, no call): two victims may
            // share one of its 256 slots, the later one taking it.
            for verifier in &verifiers {
                verifier.verify(secret).await?;
            }
            let now = SystemTime::now();
            let mut pending: Vec<&RemoteVerifier> = verifiers.iter().collect();
            if pending.iter().any(|verifier| {
                !matches!(verifier.try_verify_sync(secret.expose(), now), Some(Ok(_)))
            }) {
                return Err("a verifier's cache did not hold the victim before the delete".into());
            }
            let authority_cpu_before = cpu_ms(authority_pid)?;
            let own_cpu_before = cpu_ms(std::process::id())?;
            let mut sweeping = Duration::ZERO;
            let sent = Instant::now();
            let response = http
                .delete(format!("{url}/api/v1/api_tokens/{uid}"))
                .bearer_auth(&admin)
                .send()
                .await?;
            if !response.status().is_success() {
                return Err(format!("DELETE {uid}: {}", response.status()).into());
            }
            while !pending.is_empty() {
                let sweep = Instant::now();
                let now = SystemTime::now();
                pending.retain(|verifier| {
                    let reached =
                        !matches!(verifier.try_verify_sync(secret.expose(), now), Some(Ok(_)));
                    if reached {
                        // When the check saw it: never earlier than the verifier heard it.
                        delays.push(sent.elapsed().as_secs_f64() * 1e3);
                    }
                    !reached
                });
                sweeping += sweep.elapsed();
                if sent.elapsed() > Duration::from_secs(10) {
                    return Err(
                        format!("{} verifiers not reached after 10 s", pending.len()).into(),
                    );
                }
                tokio::time::sleep(SWEEP_PAUSE).await;
            }
            authority_cpu_ms.push(cpu_ms(authority_pid)? - authority_cpu_before);
            followers_cpu_ms
                .push(cpu_ms(std::process::id())? - own_cpu_before - sweeping.as_secs_f64() * 1e3);
        }
        let median = |values: &mut Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        delays.sort_by(f64::total_cmp);
        let percentile = |p: f64| {
            let rank = ((p / 100.0) * delays.len() as f64).ceil() as usize;
            delays[rank.clamp(1, delays.len()) - 1]
        };
        println!("followers {followers}");
        println!("rounds {}", victims.len());
        println!("rss_before_kib {rss_before}");
        println!("rss_after_kib {rss_after}");
        println!(
            "bytes_per_follower {:.0}",
            (rss_after.saturating_sub(rss_before) * 1024) as f64 / followers as f64
        );
        println!("p50_ms {:.2}", percentile(50.0));
        println!("p90_ms {:.2}", percentile(90.0));
        println!("p99_ms {:.2}", percentile(99.0));
        println!("max_ms {:.2}", percentile(100.0));
        println!(
            "authority_cpu_ms_per_delete {:.1}",
            median(&mut authority_cpu_ms)
        );
        println!(
            "followers_cpu_ms_per_delete {:.1}",
            median(&mut followers_cpu_ms)
        );
        drop(verifiers);
        Ok(())
    })
}

/// A gauge's value in Prometheus text (0 when absent).
fn gauge(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.strip_prefix(name))
        .filter_map(|rest| rest.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

/// A process's resident memory (`VmRSS`), in KiB; 0 for pid 0.
fn rss_kib(pid: u32) -> Result<u64, BoxError> {
    if pid == 0 {
        return Ok(0);
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| "no VmRSS in /proc/<pid>/status".into())
}

/// A process's CPU time so far (user + system, `/proc/<pid>/stat`), in ms; 0 for pid 0.
fn cpu_ms(pid: u32) -> Result<f64, BoxError> {
    if pid == 0 {
        return Ok(0.0);
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .ok_or("no command name in /proc/<pid>/stat")?
        .1
        .split_whitespace()
        .collect();
    let ticks = |at: usize| -> Result<f64, BoxError> {
        Ok(fields
            .get(at)
            .ok_or("a short /proc/<pid>/stat")?
            .parse::<f64>()?)
    };
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name. The kernel
    // counts them in USER_HZ ticks, 100 a second on Linux.
    Ok((ticks(11)? + ticks(12)?) * 10.0)
}
