//! Where tokens are kept and how they are changed: the writers and their formats.
//!
//! - [`memory`]: [`InMemoryTokenStore`](memory::InMemoryTokenStore), create / list / get /
//!   delete / import in memory (and a verifier over it).
//! - `file` (feature `file`): token files, JSON or TOML of hashes, and
//!   `TokenFileStore`, the locked, atomic writer the CLI and the authority use.
//!
//! Every store mints tokens the same way ([`NewToken`](crate::NewToken)) and checks every
//! record with the same rules ([`ApiToken::check`](crate::record::ApiToken::check)); only
//! SHA-256 hashes of secrets are ever kept.

#[cfg(feature = "file")]
#[cfg_attr(docsrs, doc(cfg(feature = "file")))]
pub mod file;
pub mod memory;
