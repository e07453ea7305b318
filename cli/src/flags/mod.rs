//! The flag groups the program's servers share (`serve` now; `gateway` and `authz` next):
//! each a `clap::Args` struct to flatten into a command, with the library call it stands for.
//! Like every flag of a server command, each is also an environment variable and a config
//! file key ([`crate::settings`]).

pub(crate) mod metrics;
pub(crate) mod server;
pub(crate) mod throttle;
