//! A gRPC summarizer behind API tokens: the tonic twin of `examples/summarize.rs`, with the
//! same summarizer (`examples/src/summarizer.rs`) and the same token handling.
//!
//! ```text
//! cargo run --example grpc_summarize --features grpc                          # 127.0.0.1:50051
//! cargo run --example grpc_summarize --features grpc -- --addr 127.0.0.1:0    # any free port
//! ```
//!
//! It prints a fresh token once (`token: pe_…`), the address it listens on, and a `grpcurl`
//! command to call it. `summarize.v1.Summarizer` needs `authorization: Bearer <token>`
//! metadata with a token that has Protected Endpoint Access to the deployment `summarize` (no
//! scope is needed; a token with only Developer Operations Access gets `PERMISSION_DENIED`);
//! the standard health service (`grpc.health.v1.Health`) answers without a token, for load
//! balancers and orchestrators.
//!
//! Failed guesses are throttled per client (after 10 bad tokens in a row,
//! `RESOURCE_EXHAUSTED` before any verifier call; `--client-ip-header` behind a proxy). It
//! serves HTTP/2 (and HTTP/1.1) on `protected_endpoint::server`, with
//! `--header-read-timeout SECS`, `--idle-timeout SECS` and `--max-connections N`; Ctrl-C or
//! SIGTERM stops it gracefully.
//!
//! The service is defined in `proto/summarize/v1/summarize.proto`; its Rust code is committed
//! in `examples/src/pb/` (regenerate it with `tools/protogen`), so no `protoc` is needed.

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use protected_endpoint::server::shutdown_signal;
use protected_endpoint::{DeploymentAccess, NewToken};
use protected_endpoint::{ProtectedEndpointLayer, TokenInfo};
use tonic::service::Routes;
use tonic::{Request, Response, Status};
use tracing_subscriber::EnvFilter;

use protected_endpoint_examples::server_args;
use protected_endpoint_examples::summarizer;
use protected_endpoint_examples::throttle_args;
use protected_endpoint_examples::token_args;

/// The code generated from `proto/summarize/v1/summarize.proto` (by `tools/protogen`).
mod pb {
    include!("src/pb/summarize.v1.rs");
}

use pb::summarizer_server::{Summarizer, SummarizerServer};
use pb::{SummarizeRequest, SummarizeResponse};

/// How many sentences a summary keeps at most.
const SUMMARY_SENTENCES: usize = 3;

/// The deployment this service is: a token restricted to other deployments is refused.
const DEPLOYMENT: &str = "summarize";

/// Serves `summarize.v1.Summarizer` over gRPC, protected by API tokens.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on; port 0 picks a free port (the real one is printed).
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: SocketAddr,
    #[command(flatten)]
    tokens: token_args::TokenArgs,
    #[command(flatten)]
    throttle: throttle_args::ThrottleArgs,
    #[command(flatten)]
    server: server_args::ServerArgs,
}

/// The gRPC service. It never sees a request the layer refused.
struct SummarizerService;

#[tonic::async_trait]
impl Summarizer for SummarizerService {
    async fn summarize(
        &self,
        request: Request<SummarizeRequest>,
    ) -> Result<Response<SummarizeResponse>, Status> {
        // The layer put the verified token in the request's extensions (tonic copies the HTTP
        // extensions into `tonic::Request`). Its absence means the service was mounted without
        // the layer: refuse rather than serve anonymously.
        let token = request
            .extensions()
            .get::<TokenInfo>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("no verified access token"))?;
        let text = request.into_inner().text;
        // The token's name and uid identify the caller; its secret never reaches this code.
        tracing::info!(
            token = token.name(),
            uid = token.uid(),
            chars = text.chars().count(),
            "summarize"
        );
        // The shared summarizer ends its line with a newline for plain-text answers; a
        // protobuf string field carries the summary alone.
        let summary = summarizer::summarize(&text, SUMMARY_SENTENCES)
            .trim_end()
            .to_owned();
        Ok(Response::new(SummarizeResponse { summary }))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("grpc_summarize: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn Error>> {
    // Logs go to stderr, so stdout carries only the lines below (scripts read them).
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let token_args::ChosenVerifier {
        verifier,
        new_token,
        source,
    } = args.tokens.verifier(
        DEPLOYMENT,
        // Protected Endpoint Access to this deployment, and nothing else.
        NewToken::new("grpc-summarize demo")
            .description("created by the grpc_summarize example at start-up")
            .deployments(DeploymentAccess::only([DEPLOYMENT])?),
    )?;
    // A token is admitted by its access to this deployment, as on the platform; a client
    // that keeps failing waits before any verifier call (keyed by the peer address the
    // server puts in each request, or --client-ip-header).
    let layer = ProtectedEndpointLayer::from_arc(verifier)
        .realm("summarize")
        .deployment(DEPLOYMENT)
        .throttle_failures(args.throttle.throttle());

    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<SummarizerServer<SummarizerService>>()
        .await;

    // `Server::builder().layer(..)` would protect every service, the health checks too. To
    // leave those open, the layer wraps the summarizer's routes only, and the health service
    // is routed after it. Unknown services stay behind the layer (tonic answers them
    // UNIMPLEMENTED, but only to a caller with a valid token).
    let routes = Routes::new(SummarizerServer::new(SummarizerService))
        .into_axum_router()
        .layer(layer)
        .route_service(
            &format!(
                "/{}/{{*rest}}",
                tonic_health::pb::health_server::SERVICE_NAME
            ),
            health,
        );

    let server = args.server.bind(args.addr).await?;
    let addr = server.local_addr()?;

    println!("listening on {addr}");
    println!("verifying {source}");
    // A demo token's secret is printed once, here, on a line of its own; it is never logged.
    if let Some(secret) = &new_token {
        println!("token: {}", secret.expose());
    }
    println!(
        "try (needs grpcurl; set TOKEN to the token above):\n  \
         grpcurl -plaintext -import-path proto -proto summarize/v1/summarize.proto \
         -H \"authorization: Bearer $TOKEN\" -d '{{\"text\": \"Tokens protect the endpoint. \
         The summary keeps the central sentences. Lunch was pasta.\"}}' \
         {addr} summarize.v1.Summarizer/Summarize"
    );

    // tonic's routes are an axum router: the crate's front serves them like any other
    // (gRPC clients speak HTTP/2 by prior knowledge, which it accepts).
    server
        .serve(routes)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}
