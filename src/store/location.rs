//! [`StoreLocation`]: which store of record to open, from a flag's text.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use super::database_url::redact_database_url;
use super::{StoreError, TokenStore};
use crate::store::memory::InMemoryTokenStore;

/// Where an authority keeps its tokens, as `protected-endpoint serve`'s flags name it.
///
/// | text | store |
/// |---|---|
/// | `memory` | [`InMemoryTokenStore`]: nothing survives a restart |
/// | `sqlite:PATH` | `SqliteStore` (feature `sqlite`), the file at `PATH` |
/// | `postgres://…`, `postgresql://…` | `PostgresStore` (feature `postgres`), shared by replicas |
/// | a path ending in `.json` | `JsonDataFile` (feature `file`): today's data files, for small sets |
/// | any other path | `SqliteStore` |
///
/// ```
/// use protected_endpoint::store::StoreLocation;
///
/// assert_eq!("sqlite:/var/lib/pe/tokens.db".parse(), Ok(StoreLocation::Sqlite("/var/lib/pe/tokens.db".into())));
/// assert_eq!("tokens.json".parse(), Ok(StoreLocation::JsonFile("tokens.json".into())));
/// assert_eq!("tokens.db".parse(), Ok(StoreLocation::Sqlite("tokens.db".into())));
/// assert!(matches!("postgres://pe@db/pe".parse(), Ok(StoreLocation::Postgres(_))));
/// assert!("".parse::<StoreLocation>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreLocation {
    /// In memory only.
    Memory,
    /// A JSON token data file.
    JsonFile(PathBuf),
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (it may hold a password: [`fmt::Display`] hides it).
    Postgres(String),
}

impl std::str::FromStr for StoreLocation {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() {
            return Err(
                "the store location is empty: give a path, sqlite:PATH or postgres://…".into(),
            );
        }
        if text == "memory" {
            return Ok(StoreLocation::Memory);
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(StoreLocation::Postgres(text.to_owned()));
        }
        if let Some(path) = text.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err("sqlite: needs a path, like sqlite:tokens.db".into());
            }
            return Ok(StoreLocation::Sqlite(path.into()));
        }
        if text.contains("://") {
            return Err(format!(
                "unknown database URL scheme in {:?}: use sqlite:PATH or postgres://…",
                redact_database_url(text)
            ));
        }
        Ok(StoreLocation::from_data_path(text))
    }
}

impl StoreLocation {
    /// The store for a `--data` path: a `.json` file keeps the JSON data file, any other path
    /// is a SQLite database.
    ///
    /// ```
    /// use protected_endpoint::store::StoreLocation;
    ///
    /// assert_eq!(StoreLocation::from_data_path("a.JSON"), StoreLocation::JsonFile("a.JSON".into()));
    /// assert_eq!(StoreLocation::from_data_path("a.sqlite"), StoreLocation::Sqlite("a.sqlite".into()));
    /// ```
    pub fn from_data_path(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let is_json = path
            .extension()
            .is_some_and(|ext| ext.eq_ignore_ascii_case("json"));
        if is_json {
            StoreLocation::JsonFile(path)
        } else {
            StoreLocation::Sqlite(path)
        }
    }

    /// Opens (and for a database, migrates) the store. A backend this build lacks the feature
    /// for is an error that names the feature.
    ///
    /// ```
    /// use protected_endpoint::store::StoreLocation;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let store = StoreLocation::Memory.open().await.unwrap();
    /// assert_eq!(store.describe(), "memory");
    /// # });
    /// ```
    pub async fn open(&self) -> Result<Arc<dyn TokenStore>, StoreError> {
        match self {
            StoreLocation::Memory => Ok(Arc::new(InMemoryTokenStore::new())),
            #[cfg(feature = "file")]
            StoreLocation::JsonFile(path) => {
                Ok(Arc::new(super::file::JsonDataFile::open(path.clone())?))
            }
            #[cfg(feature = "sqlite")]
            StoreLocation::Sqlite(path) => Ok(Arc::new(
                super::sqlite::SqliteStore::open(path.clone()).await?,
            )),
            #[cfg(feature = "postgres")]
            StoreLocation::Postgres(url) => Ok(Arc::new(
                super::postgres::PostgresStore::connect(url).await?,
            )),
            #[allow(unreachable_patterns)]
            other => Err(StoreError::unavailable(
                other.to_string(),
                format!(
                    "this build has no {} backend: enable the crate's `{}` feature",
                    other.backend(),
                    other.backend()
                ),
            )),
        }
    }

    fn backend(&self) -> &'static str {
        match self {
            StoreLocation::Memory => "memory",
            StoreLocation::JsonFile(_) => "file",
            StoreLocation::Sqlite(_) => "sqlite",
            StoreLocation::Postgres(_) => "postgres",
        }
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Memory => f.write_str("memory"),
            StoreLocation::JsonFile(path) => write!(f, "token data file {}", path.display()),
            StoreLocation::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            StoreLocation::Postgres(url) => f.write_str(&redact_database_url(url)),
        }
    }
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreLocation({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        let location: StoreLocation = "postgres://pe:s3cret@db:5432/pe?sslmode=disable"
            .parse()
            .unwrap();
        assert_eq!(
            location.to_string(),
            "postgres://pe:***@db:5432/pe?sslmode=disable"
        );
        assert!(!format!("{location:?}").contains("s3cret"));
        let location: StoreLocation = "postgresql://pe@db/pe?password=s3cret".parse().unwrap();
        assert_eq!(location.to_string(), "postgresql://pe@db/pe?password=***");
        assert!(!format!("{location:?}").contains("s3cret"));
        let unknown = "mysql://u:pw@h/d".parse::<StoreLocation>().unwrap_err();
        assert!(!unknown.contains("pw"), "{unknown}");
        let unknown = "mysql://h/d?password=pw"
            .parse::<StoreLocation>()
            .unwrap_err();
        assert!(!unknown.contains("pw"), "{unknown}");
    }
}
