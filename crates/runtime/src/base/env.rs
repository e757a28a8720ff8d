//! Reading the environment: a variable, or the file its `_FILE` twin
//! names (for secrets such as a database URL with a password); a file that
//! cannot be read is an error, never an unset variable. The command line
//! (`crate::boot::cli`) reads a setting's `NAME_FILE` with it.

use anyhow::{Context, Result};

/// Reads `name`, or the contents of the file named by `name_FILE` (trimmed).
/// A file named but unreadable is an error naming both: a secret that did
/// not mount never passes for an unset variable.
pub fn var(name: &str) -> Result<Option<String>> {
    if let Ok(v) = std::env::var(name) {
        return Ok(Some(v));
    }
    read_file_var(name, std::env::var(format!("{name}_FILE")).ok())
}

fn read_file_var(name: &str, path: Option<String>) -> Result<Option<String>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("{name}_FILE={path:?} cannot be read"))?;
    Ok(Some(text.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_that_cannot_be_read_is_an_error_not_an_unset_variable() {
        assert_eq!(read_file_var("DATABASE_MIGRATION_URL", None).unwrap(), None);
        let err = read_file_var("DATABASE_MIGRATION_URL", Some("/nonexistent/uri".into())).unwrap_err();
        assert!(
            format!("{err:#}").contains("DATABASE_MIGRATION_URL_FILE=\"/nonexistent/uri\" cannot be read"),
            "{err:#}"
        );
        let dir = std::env::temp_dir().join(format!("omnisaga-var-{}", std::process::id()));
        std::fs::write(&dir, "postgres://o:p@db/x\n").unwrap();
        let value = read_file_var("X", Some(dir.display().to_string())).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(value.as_deref(), Some("postgres://o:p@db/x"));
    }
}
