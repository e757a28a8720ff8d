//! `omnisaga token mint`: a bearer token signed with the local key, the one
//! `make run` creates and its services verify against.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use omnisaga_auth::Signer;

use crate::cli::MintArgs;

pub fn mint(args: &MintArgs) -> Result<()> {
    if !args.key_dir.join("signing-key.pem").exists() {
        bail!(
            "no local signing key in {} (make run creates it; or pass --key-dir)",
            args.key_dir.display()
        );
    }
    let signer = Signer::load_or_create(&args.key_dir)
        .with_context(|| format!("Failed to read the local key in {}", args.key_dir.display()))?;
    println!(
        "{}",
        signer.mint(&args.sub, &args.scopes, Duration::from_secs(args.ttl))
    );
    Ok(())
}
