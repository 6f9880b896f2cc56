//! Files that appear whole or not at all: written to a temporary file beside the target,
//! synced, then renamed over it. A crash or an error midway leaves the previous report (or no
//! report) in place, never half of one.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Calls `write` with a buffered writer to a temporary file in `path`'s directory; on success
/// syncs it and renames it to `path`. On failure the temporary file is removed.
pub fn write_atomically<T>(
    path: &Path,
    write: impl FnOnce(&mut (dyn Write + Send)) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let temp = temp_path(path);
    let result = (|| {
        let file = File::create(&temp).with_context(|| cannot_create(path))?;
        let mut out = BufWriter::with_capacity(1 << 16, file);
        let value = write(&mut out)?;
        let file = out
            .into_inner()
            .map_err(|err| err.into_error())
            .with_context(|| format!("cannot write {}", crate::names::shown(&temp)))?;
        file.sync_all()
            .with_context(|| format!("cannot sync {}", crate::names::shown(&temp)))?;
        std::fs::rename(&temp, path).with_context(|| {
            format!(
                "cannot rename {} to {}",
                crate::names::shown(&temp),
                crate::names::shown(path)
            )
        })?;
        Ok(value)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    } else if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        // Make the rename itself durable; a failure here loses nothing already written.
        let _ = File::open(dir).and_then(|dir| dir.sync_all());
    }
    result
}

/// Names the file the person asked for, not the temporary one, and the likeliest cause.
fn cannot_create(path: &Path) -> String {
    let shown = crate::names::shown(path);
    match path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => format!(
            "cannot write {shown}: the folder {} does not exist",
            crate::names::shown(dir)
        ),
        _ => format!("cannot write {shown}"),
    }
}

/// `dir/.name.<pid>.tmp`: hidden, unique per process, and on the same file system as `path`
/// so that the rename is atomic.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".to_string());
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        std::fs::write(&path, "old").unwrap();
        let result: anyhow::Result<()> = write_atomically(&path, |out| {
            out.write_all(b"half")?;
            anyhow::bail!("disk full")
        });
        assert!(result.is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        write_atomically(&path, |out| Ok(out.write_all(b"new")?)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
