//! The authority's data file: every token record with the SHA-256 hash of its secret, in the
//! static token-file format (`{"tokens": [{...record, "hash": "sha256:…"}]}`), replaced
//! atomically on every change.
//!
//! Reading and writing are the token-file module's (`verifier::file`): the same checks as a
//! `StaticFileVerifier` applies, and the same atomic write (temporary file, `fsync`, rename,
//! directory `fsync`), so after a crash (`kill -9`, power loss) the file is the old or the new
//! version, never half of one. Only then is a change acknowledged. A `StaticFileVerifier` can
//! serve the authority's data file as it is.

use std::io;
use std::path::Path;

use crate::record::ApiToken;
use crate::token::TokenHash;
use crate::verifier::file::{
    write_atomically, TokenEntry, TokenFile, TokenFileError, TokenFileStore,
};

/// Reads and checks the data file with the token-file rules (every entry, duplicates, no
/// plaintext secrets): `Ok(None)` when it does not exist yet.
pub(crate) fn load(path: &Path) -> Result<Option<Vec<(ApiToken, TokenHash)>>, String> {
    let store = TokenFileStore::open(path).map_err(|err| err.to_string())?;
    match store.read() {
        Ok(file) => Ok(Some(
            file.tokens
                .into_iter()
                .map(|entry| (entry.token, entry.hash))
                .collect(),
        )),
        Err(TokenFileError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            Ok(None)
        }
        Err(err) => Err(err.to_string()),
    }
}

/// The authority's claim on its data file: the token-file lock, held for as long as the
/// authority lives, so neither the CLI nor a second authority changes the file under it (their
/// change would be overwritten by the next save, and a revoked token brought back).
pub(crate) struct DataFileLock {
    _file: std::fs::File,
}

/// Claims the data file at `path`, failing at once when another process holds it.
pub(crate) fn lock(path: &Path) -> Result<DataFileLock, String> {
    let store = TokenFileStore::open(path).map_err(|err| err.to_string())?;
    let file = store.lock_now().map_err(|err| err.to_string())?;
    Ok(DataFileLock { _file: file })
}

/// Replaces the data file with `tokens`, atomically and durably, in its format (by extension).
pub(crate) fn save(path: &Path, tokens: Vec<(ApiToken, TokenHash)>) -> io::Result<()> {
    let format = TokenFileStore::open(path)
        .map_err(io::Error::other)?
        .format();
    let mut file = TokenFile::new();
    file.tokens = tokens
        .into_iter()
        .map(|(record, hash)| TokenEntry::new(record, hash))
        .collect();
    let mut text = file.to_checked_text(format).map_err(io::Error::other)?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    write_atomically(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verifier::memory::{InMemoryTokenStore, NewToken};

    #[test]
    fn round_trips_and_missing_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        assert!(load(&path).unwrap().is_none());

        let store = InMemoryTokenStore::new();
        let created = store.create(NewToken::new("ci").description("d")).unwrap();
        let hash = TokenHash::of(&created.secret);
        save(&path, vec![(created.token.clone(), hash)]).unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["tokens"][0]["hash"], hash.to_string());
        assert_eq!(json["tokens"][0]["uid"], created.token.uid.as_str());
        assert!(!text.contains(created.secret.expose()));

        let loaded = load(&path).unwrap().unwrap();
        assert_eq!(loaded, vec![(created.token, hash)]);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        for bad in ["", "{", r#"{"tokens": [{"uid": "x"}]}"#, r#"{"tokens": 3}"#] {
            std::fs::write(&path, bad).unwrap();
            let err = load(&path).unwrap_err();
            assert!(err.contains("tokens.json"), "{err}");
        }
    }
}
