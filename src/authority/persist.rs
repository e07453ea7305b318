//! The authority's data file: every token record with the SHA-256 hash of its secret, in the
//! static token-file format (`{"tokens": [{...record, "hash": "sha256:…"}]}`), replaced
//! atomically on every change.
//!
//! Atomic means: the new content goes to a temporary file in the same directory, is flushed
//! to disk (`fsync`), renamed over the old file, and the directory is flushed too, so after a
//! crash (`kill -9`, power loss) the file is either the old or the new version, never half of
//! one. Only then is a change acknowledged.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::record::ApiToken;
use crate::token::TokenHash;

/// The largest data file read, so a wrong `--data` path (a disk image, a log) fails clearly
/// instead of filling memory.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Serialize, Deserialize)]
struct TokenFile {
    tokens: Vec<StoredToken>,
}

#[derive(Serialize, Deserialize)]
struct StoredToken {
    #[serde(flatten)]
    record: ApiToken,
    hash: TokenHash,
}

/// Reads the data file: `Ok(None)` when it does not exist yet.
pub(crate) fn load(path: &Path) -> Result<Option<Vec<(ApiToken, TokenHash)>>, String> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(format!("cannot open {}: {err}", path.display())),
    };
    let length = file
        .metadata()
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?
        .len();
    if length > MAX_FILE_BYTES {
        return Err(format!(
            "{} is larger than {MAX_FILE_BYTES} bytes: not a token file",
            path.display()
        ));
    }
    let parsed: TokenFile = serde_json::from_reader(io::BufReader::new(file))
        .map_err(|err| format!("{} is not a valid token file: {err}", path.display()))?;
    Ok(Some(
        parsed
            .tokens
            .into_iter()
            .map(|stored| (stored.record, stored.hash))
            .collect(),
    ))
}

/// Replaces the data file with `tokens`, atomically and durably.
pub(crate) fn save(path: &Path, tokens: Vec<(ApiToken, TokenHash)>) -> io::Result<()> {
    let file = TokenFile {
        tokens: tokens
            .into_iter()
            .map(|(record, hash)| StoredToken { record, hash })
            .collect(),
    };
    let mut json = serde_json::to_vec_pretty(&file).map_err(io::Error::other)?;
    json.push(b'\n');

    let dir = parent_dir(path);
    // `tempfile` creates the file with mode 0600 on Unix: hashes are not secrets, but the
    // file is nobody else's business either.
    let mut temp = tempfile::NamedTempFile::new_in(&dir)?;
    temp.write_all(&json)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|err| err.error)?;
    sync_dir(&dir)
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Flushes the directory entry of the rename, so the new file survives a power loss too.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    // Windows cannot open a directory as a file; `MoveFileEx` with write-through (what the
    // rename uses) is the durability it offers.
    Ok(())
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
            assert!(err.contains("not a valid token file"), "{err}");
        }
    }
}
