//! The program's end-to-end tests, in one binary: the real `protected-endpoint` binary, as
//! cargo built it for these tests (`CARGO_BIN_EXE_protected-endpoint`), run the way people run
//! it — token commands on real files and against a real authority, `serve` on real stores —
//! and called over real HTTP on 127.0.0.1.

mod support;

/// The workspace's shared test helpers, and this binary's own (running the program).
use support as common;

mod authority_operations;
mod authz_cmd;
mod cli;
mod cli_findings;
mod cli_own_token;
mod cli_remote;
mod database_url_redaction;
mod examples_throttle;
mod fleet_cmd;
mod gateway_cmd;
mod lifecycle_cli;
mod metrics;
mod quota_cli;
mod replica_faults;
mod serve_durability;
mod serve_import;
mod serve_import_crash;
mod serve_settings;
mod serve_throttle;
mod server_limits;
mod usage_cmd;
