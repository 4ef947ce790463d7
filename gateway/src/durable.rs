//! Small state files replaced atomically: a temporary file beside the target, written and
//! fsync'd, renamed over it, and the directory fsync'd, so a crash leaves the old file or
//! the new one, never a torn one.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Replaces the file at `path` with `bytes`, atomically. On error: what could not be done
/// (for a message naming the file), and why.
pub fn replace(path: &Path, bytes: &[u8]) -> Result<(), (&'static str, std::io::Error)> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp).map_err(|e| ("create its temporary file", e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| ("write its temporary file", e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| ("rename its temporary file over it", e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| ("sync its directory", e))?;
    }
    Ok(())
}
