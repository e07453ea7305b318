//! The library's end-to-end tests, in one binary: real servers on 127.0.0.1, real clients
//! (reqwest, tonic, headless Chromium), real files and a real PostgreSQL. Tests that install a
//! process-global tracing subscriber or metrics recorder are binaries of their own beside this
//! folder; the program's tests are in `cli/tests/it`.

/// The helpers every member's tests share (`testkit/`).
use protected_endpoint_testkit as common;

mod authority_api;
mod authority_remote_e2e;
mod authority_throttle;
#[cfg(feature = "authz")]
mod authz;
#[cfg(feature = "authz-grpc")]
mod authz_grpc;
#[cfg(feature = "authz")]
mod authz_shapes;
mod browser_access;
mod browser_harness;
mod console;
mod console_browser;
mod deployments;
mod file_verifier;
#[cfg(all(feature = "redis", unix))]
mod fleet_limits;
mod gateway;
mod gateway_streams;
mod gateway_upgrade;
mod grpc;
mod http_layer;
mod lifecycle;
mod lifecycle_console;
mod limits;
mod properties;
mod quotas;
mod read_model;
mod readme_check;
mod redaction;
mod remote_verifier;
mod replicas;
mod revocation_stream;
mod security_findings;
mod service_contract;
mod sessions;
mod sessions_browser;
mod soak;
mod store_concurrency;
mod store_contract;
mod summarize_browser;
mod summarize_example;
mod usage_reports;
