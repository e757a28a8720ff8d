//! `omnisaga token mint`: a bearer token signed with the local key, the one
//! `make run` creates and its services verify against; `omnisaga token
//! keygen`: such a key for a deployment without an identity provider.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use omnisaga_auth::Signer;

use crate::cli::{KeygenArgs, MintArgs};

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

pub fn keygen(args: &KeygenArgs) -> Result<()> {
    let signer = Signer::load_or_create(&args.dir)
        .with_context(|| format!("Failed to create a key in {}", args.dir.display()))?;
    println!("{}", args.dir.join("jwks.json").display());
    eprintln!(
        "key {} in {}; point AUTH_JWKS_FILE at the path above",
        signer.kid(),
        args.dir.display()
    );
    Ok(())
}
