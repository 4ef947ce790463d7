//! Files that must stay private: the signing key, broker passwords and client keys are
//! refused when other users can read them, and the outbox directory is kept to its owner.

use std::path::Path;

/// Refuses a secret file that its group or other users can read or write, with the fix
/// (`chmod 600`) in the problem. Not a secret file's contents: only its mode is read.
pub fn check_secret_file(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| format!("cannot read: {e}"))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "mode {mode:04o} lets other users read this secret; make it 0600 (chmod 600 {})",
                path.display()
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Creates `dir` (and its missing parents) with mode 0700, or brings an existing one to
/// 0700: what is in it is the gateway's alone. Returns whether it tightened an existing
/// directory's mode (the caller says so in its log).
pub fn private_dir(dir: &Path) -> Result<Option<u32>, String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("cannot create the directory: {e}"))?;
        }
        let meta = std::fs::metadata(dir).map_err(|e| format!("cannot read the directory: {e}"))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 == 0 {
            return Ok(None);
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
            format!(
                "mode {mode:04o} lets other users into the outbox, and it cannot be made 0700: {e} (chmod 700 {})",
                dir.display()
            )
        })?;
        Ok(Some(mode))
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create the directory: {e}"))?;
        Ok(None)
    }
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_readable_secret_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gw.password");
        std::fs::write(&file, "s3cret\n").unwrap();
        for loose in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(loose)).unwrap();
            let e = check_secret_file(&file).unwrap_err();
            assert!(
                e.starts_with(&format!(
                    "mode {loose:04o} lets other users read this secret"
                )) && e.ends_with(&format!("(chmod 600 {})", file.display())),
                "{e}"
            );
        }
        for tight in [0o600, 0o400] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(tight)).unwrap();
            assert_eq!(check_secret_file(&file), Ok(()));
        }
        assert!(check_secret_file(&dir.path().join("nope")).is_err());
    }

    #[test]
    fn the_outbox_is_its_owners_alone() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = dir.path().join("a/b/outbox");
        assert_eq!(private_dir(&outbox), Ok(None));
        assert_eq!(mode(&outbox), 0o700);
        std::fs::set_permissions(&outbox, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(private_dir(&outbox), Ok(Some(0o755)));
        assert_eq!(mode(&outbox), 0o700);
    }
}
