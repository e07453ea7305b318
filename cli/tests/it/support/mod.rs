//! The helpers of the program's tests: the workspace's shared ones (`testkit/`), plus running
//! the program itself.

pub use protected_endpoint_testkit::*;

pub mod cli;
pub mod program;
pub mod serve;
