//! Writing files atomically: a reader (or a run resumed after a kill) sees
//! the old file or the new one, never half of one.

use std::fs::File;
use std::io;
use std::path::Path;

/// Writes `bytes` to `path` atomically: into a temporary file beside it,
/// fsynced, renamed over `path`, and the directory fsynced so the rename
/// survives a power cut.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let extension = path.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
    write_atomically_with(path, &extension, |tmp| std::fs::write(tmp, bytes), |e| e)
}

/// [`write_atomically`] for writers that take a path (image encoders, which
/// pick the format by extension): `write` writes a temporary file ending in
/// `.{extension}`; `io_error` turns the failures of the rest into `E`.
pub fn write_atomically_with<E>(
    path: &Path,
    extension: &str,
    write: impl FnOnce(&Path) -> Result<(), E>,
    io_error: impl Fn(io::Error) -> E,
) -> Result<(), E> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let suffix = if extension.is_empty() { String::new() } else { format!(".{extension}") };
    let tmp = tempfile::Builder::new().prefix(".tmp-").suffix(&suffix).tempfile_in(dir).map_err(&io_error)?;
    write(tmp.path())?;
    File::open(tmp.path()).and_then(|file| file.sync_all()).map_err(&io_error)?;
    tmp.persist(path).map_err(|e| io_error(e.error))?;
    // A directory cannot be opened for syncing on every platform; the rename is done either way.
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("data.csv");
        write_atomically(&path, b"old").unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("data.csv")]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("plot.png");
        write_atomically(&path, b"old").unwrap();
        let result = write_atomically_with(
            &path,
            "png",
            |tmp| {
                assert_eq!(tmp.extension().unwrap(), "png", "encoders pick the format by extension");
                std::fs::write(tmp, b"half")?;
                Err(io::Error::other("encoder failed"))
            },
            |e| e,
        );
        assert!(result.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
