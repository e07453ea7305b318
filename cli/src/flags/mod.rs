//! The flag groups the program's servers share (`serve`, `gateway`, `authz`):
//! each a `clap::Args` struct to flatten into a command, with the library call it stands for.
//! Like every flag of a server command, each is also an environment variable and a config
//! file key ([`crate::settings`]).

pub(crate) mod access;
pub(crate) mod forwarded;
pub(crate) mod metrics;
pub(crate) mod redis;
pub(crate) mod server;
pub(crate) mod throttle;
pub(crate) mod verifier;
