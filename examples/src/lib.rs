//! What the examples share: their flags (`token_args`, `server_args`, `throttle_args`,
//! `metrics`) and the summarizer the HTTP and gRPC summarize services both run. The examples
//! themselves are `[[example]]` targets beside this folder (`cargo run --example summarize`).

pub mod metrics;
pub mod server_args;
pub mod summarizer;
pub mod throttle_args;
pub mod token_args;
