//! A token authority mounted in an axum app of your own: the management API, introspection,
//! the revocation stream and the console beside your own routes, on the library's server.
//!
//! ```text
//! cargo run --example token_server --features authority            # tokens in tokens.db
//! cargo run --example token_server --features authority -- tokens.json
//! ```
//!
//! To run an authority, run the program instead: `protected-endpoint serve` does this and
//! what an operator needs around it (flags, environment and a config file, an admin token
//! file, imports, the throttle behind a proxy, limits, metrics). `cargo install --path cli`,
//! then `protected-endpoint serve --help`.

use axum::{routing::get, Router};
use protected_endpoint::authority::Authority;
use protected_endpoint::server::{shutdown_signal, Server};
use protected_endpoint::store::StoreLocation;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The audit log (who created or deleted which token) goes to stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();

    // The store of record: a path (SQLite, or a JSON file for `.json`), `sqlite:PATH`, or
    // `postgres://…` for replicas.
    let location: StoreLocation = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tokens.db".to_owned())
        .parse()?;
    let authority = Authority::builder(location.open().await?).build().await?;
    // The first start on an empty store creates an admin token: its secret is shown once.
    if let Some(admin) = authority.bootstrap_admin().await? {
        println!("token: {}", admin.secret.expose());
    }

    // Your app: a route of your own, and the authority's routes beside it.
    let app = Router::new()
        .route("/", get(|| async { "my app, with a token authority\n" }))
        .merge(authority.router());

    let server = Server::bind("127.0.0.1:3001".parse()?).await?;
    let stop = shutdown_signal(); // Ctrl-C or SIGTERM, listened for from here on
    println!("listening on http://{}", server.local_addr()?);
    let streams = authority.clone();
    server
        .serve(app)
        .with_graceful_shutdown(async move {
            stop.await;
            // Open revocation streams would hold the shutdown until its drain timeout.
            streams.close_streams();
        })
        .await?;
    Ok(())
}
