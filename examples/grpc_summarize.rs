//! A gRPC summarizer behind API tokens: the tonic twin of `examples/summarize.rs`, with the
//! same summarizer (`examples/shared/summarizer.rs`) and the same token handling.
//!
//! ```text
//! cargo run --example grpc_summarize                          # 127.0.0.1:50051
//! cargo run --example grpc_summarize -- --addr 127.0.0.1:0    # any free port
//! ```
//!
//! It prints a fresh token once (`token: pe_…`), the address it listens on, and a `grpcurl`
//! command to call it. `summarize.v1.Summarizer` needs `authorization: Bearer <token>`
//! metadata with the `api` scope; the standard health service (`grpc.health.v1.Health`)
//! answers without a token, for load balancers and orchestrators.
//!
//! The service is defined in `proto/summarize/v1/summarize.proto`; its Rust code is committed
//! in `examples/shared/pb/` (regenerate it with `tools/protogen`), so no `protoc` is needed.

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use protected_endpoint::NewToken;
use protected_endpoint::Scope;
use protected_endpoint::{ProtectedEndpointLayer, TokenInfo};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::{Request, Response, Status};
use tracing_subscriber::EnvFilter;

#[path = "shared/summarizer.rs"]
mod summarizer;
#[path = "shared/token_args.rs"]
mod token_args;

/// The code generated from `proto/summarize/v1/summarize.proto` (by `tools/protogen`).
mod pb {
    include!("shared/pb/summarize.v1.rs");
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
        NewToken::new("grpc-summarize demo")
            .description("created by the grpc_summarize example at start-up")
            .scopes([Scope::API]),
    )?;
    let layer = ProtectedEndpointLayer::from_arc(verifier)
        .realm("summarize")
        .require_scope(Scope::API)
        .deployment(DEPLOYMENT);

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

    let listener = TcpListener::bind(args.addr)
        .await
        .map_err(|err| format!("cannot listen on {}: {err}", args.addr))?;
    let addr = listener.local_addr()?;

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

    Server::builder()
        .add_routes(routes.into())
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
            // Without a signal handler the server just runs until killed.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await?;
    Ok(())
}
