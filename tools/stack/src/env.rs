//! Where the stack's parts are: this build's binaries, the clone it runs
//! from, and the PostgreSQL server, each from an environment variable or a
//! default found on this machine.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The directory holding this build's binaries: `OMNISAGA_BIN_DIR` (make
/// sets it: test binaries live in cargo's shared build directory, apart from
/// the clone's binaries), else the launcher's own directory, or the parent
/// of `deps/` for a test binary of a plain `cargo test`.
pub fn bin_dir() -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("OMNISAGA_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("executable has no directory")?;
    Ok(if dir.ends_with("deps") {
        dir.parent().context("deps has no parent")?.to_path_buf()
    } else {
        dir.to_path_buf()
    })
}

/// The clone the stack runs from: `OMNISAGA_ROOT`, else the nearest folder
/// at or above the working directory that holds `infra/kafka/broker.sh`. Never
/// the folder the binary was compiled in, so clones sharing a build cache
/// each use their own files.
pub fn repo_root() -> Result<PathBuf> {
    if let Ok(root) = std::env::var("OMNISAGA_ROOT") {
        return Ok(PathBuf::from(root));
    }
    let cwd = std::env::current_dir().context("Failed to read the working directory")?;
    find_root(&cwd).with_context(|| {
        format!(
            "{} is not inside an omnisaga clone (no infra/kafka/broker.sh above it): \
             run from the clone, or set OMNISAGA_ROOT",
            cwd.display()
        )
    })
}

fn find_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join("infra/kafka/broker.sh").is_file())
        .map(Path::to_path_buf)
}

/// The PostgreSQL server (admin connection, no database), `OMNISAGA_PG` or the local one
/// (its password from the password file: [`pg_password`]).
pub fn pg_server() -> String {
    std::env::var("OMNISAGA_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// The password of `role` on the local server (127.0.0.1:5432) from the
/// PostgreSQL password file (`PGPASSFILE`, else `~/.pgpass`), where
/// `infra/scripts/ensure-postgres.sh` keeps the passwords it made.
pub fn pg_password(role: &str) -> Result<String> {
    let file = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".pgpass")))
        .context("neither PGPASSFILE nor HOME is set")?;
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("Failed to read {}", file.display()))?;
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| line.splitn(5, ':').collect::<Vec<_>>())
        .find(|f| {
            f.len() == 5
                && ["127.0.0.1", "*"].contains(&f[0])
                && ["5432", "*"].contains(&f[1])
                && f[2] == "*"
                && f[3] == role
        })
        .map(|f| f[4].to_owned())
        .with_context(|| {
            format!(
                "{} has no password for {role} (infra/scripts/ensure-postgres.sh adds it)",
                file.display()
            )
        })
}
