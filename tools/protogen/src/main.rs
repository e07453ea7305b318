//! Regenerates the committed Rust code for the repository's `.proto` files with a pure-Rust
//! protobuf compiler (`protox`), so no one needs `protoc`: not to build, not to test, not
//! even to regenerate.
//!
//! ```text
//! cargo run --manifest-path tools/protogen/Cargo.toml            # rewrite the generated files
//! cargo run --manifest-path tools/protogen/Cargo.toml -- --check # fail if they are stale
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::{fs, io};

/// One `.proto` file and where its generated Rust code is committed (paths from the repo root).
struct Target {
    proto: &'static str,
    /// The file prost names after the proto package.
    generated: &'static str,
    out_dir: &'static str,
}

const TARGETS: &[Target] = &[
    Target {
        proto: "summarize/v1/summarize.proto",
        generated: "summarize.v1.rs",
        out_dir: "examples/src/pb",
    },
    Target {
        proto: "testing/v1/streaming.proto",
        generated: "testing.v1.rs",
        out_dir: "tests/it/pb",
    },
];

fn main() -> ExitCode {
    let check = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--check") => true,
        Some(other) => {
            eprintln!("unknown argument {other:?}; usage: protogen [--check]");
            return ExitCode::from(2);
        }
    };
    match run(check) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("protogen: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Generates every target into a scratch directory, then writes (or, with `check`, compares)
/// the committed files. Returns whether everything is up to date.
fn run(check: bool) -> Result<bool, Box<dyn std::error::Error>> {
    let root: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize()?;
    let proto_root = root.join("proto");
    let mut up_to_date = true;
    for target in TARGETS {
        let fds = protox::compile([target.proto], [&proto_root])?;
        let scratch = tempfile::tempdir()?;
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            .out_dir(scratch.path())
            .compile_fds(fds)?;
        let fresh = fs::read_to_string(scratch.path().join(target.generated))?;
        let committed_path = root.join(target.out_dir).join(target.generated);
        let committed = match fs::read_to_string(&committed_path) {
            Ok(text) => Some(text),
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(err) => return Err(err.into()),
        };
        let display = committed_path.strip_prefix(&root).unwrap_or(&committed_path);
        if committed.as_deref() == Some(fresh.as_str()) {
            println!("up to date: {}", display.display());
        } else if check {
            println!("stale: {} (run tools/protogen)", display.display());
            up_to_date = false;
        } else {
            fs::create_dir_all(root.join(target.out_dir))?;
            fs::write(&committed_path, fresh)?;
            println!("wrote: {}", display.display());
        }
    }
    Ok(up_to_date)
}
