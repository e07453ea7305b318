//! The admin token of `serve`: minted on the first start (or with `--mint-admin`), printed
//! once on stdout or written to a new file only its owner can read (`--admin-token-file`).

use std::io::Write;
use std::path::{Path, PathBuf};

use protected_endpoint::authority::Authority;

/// With `--mint-admin`, before anything is opened: a `--admin-token-file` that exists already
/// would stop the start after the store was made; say so now, while nothing is on disk.
pub(super) fn refuse_existing(path: Option<&Path>) -> Result<(), String> {
    match path {
        Some(path) if path.symlink_metadata().is_ok() => Err(format!(
            "cannot write the admin token to {}: the file exists already (choose a file that \
             does not exist yet)",
            path.display()
        )),
        _ => Ok(()),
    }
}

/// Mints the admin token of a first start, or with `mint` (`--mint-admin`) one more, and hands
/// its secret over: to a new file at `file`, or printed as `token: <secret>`.
///
/// A store that holds tokens has had its first start: with no `mint`, nothing is minted and
/// `file` is not touched, even if it exists (the first start wrote it: a config file may keep
/// naming it). Otherwise an existing `file` stops the start before anything is minted.
pub(super) async fn hand_over(
    authority: &Authority,
    mint: bool,
    file: Option<&Path>,
) -> Result<(), String> {
    if !mint && !authority.tokens().is_empty() {
        return Ok(());
    }
    // The file is made before any token is minted: a file that cannot be made must not leave
    // a minted admin token whose secret nobody has.
    let mut secret_file = file
        .map(|path| SecretFile::create(path).map_err(|err| cannot_write(path, err)))
        .transpose()?;
    let minted = match authority
        .bootstrap_admin()
        .await
        .map_err(|e| e.to_string())?
    {
        Some(admin) => {
            eprintln!("first start: created the admin token (shown once, keep it)");
            Some(admin)
        }
        None if mint => {
            let admin = authority
                .mint_admin("operator (command line)")
                .await
                .map_err(|e| e.to_string())?;
            eprintln!(
                "--mint-admin: created admin token {:?} (shown once, keep it)",
                admin.token.name
            );
            Some(admin)
        }
        None => None,
    };
    match (minted, secret_file.take()) {
        (Some(admin), None) => println!("token: {}", admin.secret.expose()),
        (Some(admin), Some(file)) => {
            let path = file.path.clone();
            file.write(admin.secret.expose())
                .map_err(|err| cannot_write(&path, err))?;
            eprintln!("admin token written to {} (mode 0600)", path.display());
        }
        // Nothing minted (a later start): the empty file made above goes again.
        (None, Some(file)) => file.discard(),
        (None, None) => {}
    }
    Ok(())
}

fn cannot_write(path: &Path, err: std::io::Error) -> String {
    format!(
        "cannot write the admin token to {}: {err} (choose a file that does not exist yet)",
        path.display()
    )
}

/// A new file only its owner can read, for the admin secret.
struct SecretFile {
    path: PathBuf,
    file: std::fs::File,
}

impl SecretFile {
    fn create(path: &Path) -> std::io::Result<Self> {
        let mut options = std::fs::OpenOptions::new();
        // A new file only: never truncate someone else's file, never follow a planted link.
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        Ok(Self {
            path: path.to_owned(),
            file: options.open(path)?,
        })
    }

    fn write(mut self, secret: &str) -> std::io::Result<()> {
        writeln!(self.file, "{secret}")?;
        self.file.sync_all()
    }

    fn discard(self) {
        drop(self.file);
        let _ = std::fs::remove_file(&self.path);
    }
}
