//! Checkpoints: a directory holding a Q-network's weights and what is needed
//! to trust them.
//!
//! ```text
//! DIR/
//!   meta.json     format version, crate version, environment id and sizes,
//!                 network config, step, backend, the weights' size and hash,
//!                 and the run's full config (free-form JSON)
//!   weights.mpk   the network, burn's named MessagePack recorder (f32)
//!   ...           any extra files the caller adds (e.g. optimizer and replay
//!                 state for resuming), each with its size and hash in meta.json
//! ```
//!
//! Saving is atomic: everything is written to `DIR.tmp-<pid>` and fsynced,
//! then the old `DIR` (if any) is moved aside, the new one renamed into
//! place, and the old one deleted; a crash leaves either the previous
//! checkpoint or the new one under `DIR` (or, between the two renames, the
//! previous one under `DIR.old`).
//!
//! Loading checks everything before any tensor is used: the files exist,
//! the weights file has the recorded size and FNV-1a hash (so truncation or
//! corruption is caught even where the decoder would accept it), the format
//! version is known, the environment and sizes match what the caller
//! expects, and every tensor's shape matches the recorded network config.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::hash::fnv1a_hex;
use crate::qnetwork::{QNetwork, QNetworkConfig, QNetworkRecord};

/// Version of the checkpoint layout written by this crate.
pub const FORMAT_VERSION: u32 = 1;
const META_FILE: &str = "meta.json";
const WEIGHTS_STEM: &str = "weights";
const WEIGHTS_FILE: &str = "weights.mpk";

/// What a checkpoint says about itself (`meta.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointMeta {
    /// Layout version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Version of `rlhf-model` that wrote it.
    pub crate_version: String,
    /// The environment the network was trained on, e.g. `"CartPole-v1"`.
    pub env_id: String,
    /// Observation size.
    pub obs_dim: usize,
    /// Number of actions.
    pub n_actions: usize,
    /// The network's shape.
    pub network: QNetworkConfig,
    /// Environment steps of training behind these weights.
    pub step: u64,
    /// Backend that trained it (`"flex"`, `"ndarray"`, `"wgpu"`).
    pub backend: String,
    /// Size of `weights.mpk` in bytes.
    pub weights_bytes: u64,
    /// FNV-1a (64-bit) hash of `weights.mpk`, hex.
    pub weights_fnv1a64: String,
    /// The full configuration of the run, as the trainer wrote it.
    pub run_config: serde_json::Value,
    /// Extra files of the checkpoint, by name.
    #[serde(default)]
    pub extra_files: std::collections::BTreeMap<String, FileDigest>,
}

/// Size and hash of a file, to notice truncation and corruption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDigest {
    /// Size in bytes.
    pub bytes: u64,
    /// FNV-1a (64-bit), hex.
    pub fnv1a64: String,
}

impl FileDigest {
    fn of(bytes: &[u8]) -> Self {
        Self { bytes: bytes.len() as u64, fnv1a64: fnv1a_hex(bytes) }
    }

    /// `Ok` when `bytes` match this digest; otherwise why not.
    fn check(&self, bytes: &[u8], path: &Path) -> Result<(), CheckpointError> {
        if bytes.len() as u64 != self.bytes {
            return Err(CheckpointError::Corrupt {
                path: path.to_owned(),
                reason: format!("{} bytes, meta.json records {} (truncated?)", bytes.len(), self.bytes),
            });
        }
        if fnv1a_hex(bytes) != self.fnv1a64 {
            return Err(CheckpointError::Corrupt {
                path: path.to_owned(),
                reason: "content hash differs from meta.json".into(),
            });
        }
        Ok(())
    }
}

/// What the caller expects a checkpoint to fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation<'a> {
    /// Environment id.
    pub env_id: &'a str,
    /// Observation size.
    pub obs_dim: usize,
    /// Number of actions.
    pub n_actions: usize,
}

/// Why a checkpoint could not be written or trusted. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A file the checkpoint needs is absent.
    #[error("{path}: missing; is this a checkpoint directory?")]
    Missing {
        /// The missing file.
        path: PathBuf,
    },
    /// A file is truncated, corrupted or not what it claims to be.
    #[error("{path}: corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Written by an unknown layout version.
    #[error("{path}: format version {found}, this build reads {FORMAT_VERSION}")]
    Version {
        /// `meta.json`.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// Trained on another environment.
    #[error("{path}: trained on {found}, not {expected}")]
    EnvMismatch {
        /// `meta.json`.
        path: PathBuf,
        /// The expected environment.
        expected: String,
        /// The recorded one.
        found: String,
    },
    /// A size that does not match.
    #[error("{path}: {what} is {found}, expected {expected}")]
    ShapeMismatch {
        /// The file.
        path: PathBuf,
        /// Which size.
        what: String,
        /// The expected value.
        expected: String,
        /// The value found.
        found: String,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io { path: path.to_owned(), source }
}

/// Fields of [`CheckpointMeta`] that the caller provides.
#[derive(Debug, Clone)]
pub struct CheckpointInfo {
    /// Environment id.
    pub env_id: String,
    /// Training steps behind the weights.
    pub step: u64,
    /// Backend name.
    pub backend: String,
    /// The run's full configuration.
    pub run_config: serde_json::Value,
}

/// Writes `network` and its metadata to the checkpoint directory `dir`, atomically.
///
/// ```
/// use rlhf_model::QNetworkConfig;
/// use rlhf_model::backend::{CpuBackend, cpu_device};
/// use rlhf_model::checkpoint::{self, CheckpointInfo, Expectation};
///
/// let config = QNetworkConfig::new(4, 2).with_hidden(vec![16]);
/// let network = config.init::<CpuBackend>(&cpu_device(), 0);
/// let dir = tempfile::TempDir::new().unwrap();
/// let info = CheckpointInfo {
///     env_id: "CartPole-v1".into(),
///     step: 1_000,
///     backend: "flex".into(),
///     run_config: serde_json::json!({}),
/// };
/// checkpoint::save(dir.path(), &network, &config, info)?;
///
/// // Loading checks the checkpoint is for this environment and these sizes.
/// let expected = Expectation { env_id: "CartPole-v1", obs_dim: 4, n_actions: 2 };
/// let (loaded, meta) = checkpoint::load::<CpuBackend>(dir.path(), &expected, &cpu_device())?;
/// assert_eq!(meta.step, 1_000);
/// assert_eq!(loaded.to_host()?.q_values(&[0.1, 0.0, -0.1, 0.0])?, network.to_host()?.q_values(&[0.1, 0.0, -0.1, 0.0])?);
/// let other = Expectation { env_id: "bitflip:4", obs_dim: 8, n_actions: 4 };
/// assert!(checkpoint::load::<CpuBackend>(dir.path(), &other, &cpu_device()).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn save<B: Backend>(
    dir: &Path,
    network: &QNetwork<B>,
    config: &QNetworkConfig,
    info: CheckpointInfo,
) -> Result<CheckpointMeta, CheckpointError> {
    save_with_extras(dir, network, config, info, &[])
}

/// Like [`save`], with extra files (`(name, contents)`) written into the
/// same directory, in the same atomic step; read them with [`read_extra`].
pub fn save_with_extras<B: Backend>(
    dir: &Path,
    network: &QNetwork<B>,
    config: &QNetworkConfig,
    info: CheckpointInfo,
    extras: &[(&str, &[u8])],
) -> Result<CheckpointMeta, CheckpointError> {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "checkpoint".into());
    let staging = dir.with_file_name(format!("{name}.tmp-{}", std::process::id()));
    let old = dir.with_file_name(format!("{name}.old"));
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io_error(&staging))?;
    }
    fs::create_dir_all(&staging).map_err(io_error(&staging))?;

    let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    let weights_path = staging.join(WEIGHTS_FILE);
    recorder.record(network.clone().into_record(), staging.join(WEIGHTS_STEM)).map_err(|e| CheckpointError::Io {
        path: weights_path.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let weights = fs::read(&weights_path).map_err(io_error(&weights_path))?;
    let mut extra_files = std::collections::BTreeMap::new();
    for &(name, contents) in extras {
        let reserved = [META_FILE, WEIGHTS_FILE].contains(&name);
        if reserved || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(CheckpointError::Corrupt {
                path: staging.join(name),
                reason: "not a valid extra file name".into(),
            });
        }
        let path = staging.join(name);
        let mut file = fs::File::create(&path).map_err(io_error(&path))?;
        file.write_all(contents).and_then(|()| file.sync_all()).map_err(io_error(&path))?;
        extra_files.insert(name.to_owned(), FileDigest::of(contents));
    }
    let meta = CheckpointMeta {
        format_version: FORMAT_VERSION,
        crate_version: env!("CARGO_PKG_VERSION").to_owned(),
        env_id: info.env_id,
        obs_dim: config.obs_dim,
        n_actions: config.n_actions,
        network: config.clone(),
        step: info.step,
        backend: info.backend,
        weights_bytes: weights.len() as u64,
        weights_fnv1a64: fnv1a_hex(&weights),
        run_config: info.run_config,
        extra_files,
    };
    let meta_path = staging.join(META_FILE);
    let json = serde_json::to_vec_pretty(&meta)
        .map_err(|e| CheckpointError::Io { path: meta_path.clone(), source: e.into() })?;
    let mut file = fs::File::create(&meta_path).map_err(io_error(&meta_path))?;
    file.write_all(&json).and_then(|()| file.sync_all()).map_err(io_error(&meta_path))?;
    fs::File::open(&weights_path).and_then(|f| f.sync_all()).map_err(io_error(&weights_path))?;

    if dir.exists() {
        if old.exists() {
            fs::remove_dir_all(&old).map_err(io_error(&old))?;
        }
        fs::rename(dir, &old).map_err(io_error(dir))?;
    }
    fs::rename(&staging, dir).map_err(io_error(dir))?;
    if old.exists() {
        fs::remove_dir_all(&old).map_err(io_error(&old))?;
    }
    Ok(meta)
}

/// Reads and checks `meta.json` of the checkpoint in `dir`.
pub fn read_meta(dir: &Path) -> Result<CheckpointMeta, CheckpointError> {
    let path = dir.join(META_FILE);
    if !path.exists() {
        return Err(CheckpointError::Missing { path });
    }
    let text = fs::read_to_string(&path).map_err(io_error(&path))?;
    let meta: CheckpointMeta = serde_json::from_str(&text)
        .map_err(|e| CheckpointError::Corrupt { path: path.clone(), reason: e.to_string() })?;
    if meta.format_version != FORMAT_VERSION {
        return Err(CheckpointError::Version { path, found: meta.format_version });
    }
    if meta.network.obs_dim != meta.obs_dim || meta.network.n_actions != meta.n_actions {
        return Err(CheckpointError::Corrupt {
            path,
            reason: "network config disagrees with obs_dim/n_actions".into(),
        });
    }
    Ok(meta)
}

/// Loads the network of the checkpoint in `dir`, checking it fits `expected`.
pub fn load<B: Backend>(
    dir: &Path,
    expected: &Expectation<'_>,
    device: &B::Device,
) -> Result<(QNetwork<B>, CheckpointMeta), CheckpointError> {
    let meta = read_meta(dir)?;
    let meta_path = dir.join(META_FILE);
    if meta.env_id != expected.env_id {
        return Err(CheckpointError::EnvMismatch {
            path: meta_path,
            expected: expected.env_id.to_owned(),
            found: meta.env_id,
        });
    }
    for (what, want, found) in
        [("obs_dim", expected.obs_dim, meta.obs_dim), ("n_actions", expected.n_actions, meta.n_actions)]
    {
        if want != found {
            return Err(CheckpointError::ShapeMismatch {
                path: meta_path,
                what: what.into(),
                expected: want.to_string(),
                found: found.to_string(),
            });
        }
    }

    let weights_path = dir.join(WEIGHTS_FILE);
    if !weights_path.exists() {
        return Err(CheckpointError::Missing { path: weights_path });
    }
    let weights = fs::read(&weights_path).map_err(io_error(&weights_path))?;
    if weights.len() as u64 != meta.weights_bytes {
        return Err(CheckpointError::Corrupt {
            path: weights_path,
            reason: format!("{} bytes, meta.json records {} (truncated?)", weights.len(), meta.weights_bytes),
        });
    }
    if fnv1a_hex(&weights) != meta.weights_fnv1a64 {
        return Err(CheckpointError::Corrupt {
            path: weights_path,
            reason: "content hash differs from meta.json".into(),
        });
    }

    let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    let record: QNetworkRecord<B> = recorder
        .load(dir.join(WEIGHTS_STEM), device)
        .map_err(|e| CheckpointError::Corrupt { path: weights_path.clone(), reason: e.to_string() })?;
    let network = meta.network.init::<B>(device, 0);
    check_shapes(&network, &record, &weights_path)?;
    Ok((network.load_record(record), meta))
}

/// Reads the extra file `name` of the checkpoint in `dir`, checking its size
/// and hash against `meta`.
pub fn read_extra(dir: &Path, meta: &CheckpointMeta, name: &str) -> Result<Vec<u8>, CheckpointError> {
    let path = dir.join(name);
    let digest = meta.extra_files.get(name).ok_or_else(|| CheckpointError::Missing { path: path.clone() })?;
    if !path.exists() {
        return Err(CheckpointError::Missing { path });
    }
    let bytes = fs::read(&path).map_err(io_error(&path))?;
    digest.check(&bytes, &path)?;
    Ok(bytes)
}

/// A network as named-MessagePack bytes (for storing beside a checkpoint,
/// e.g. a target network).
pub fn network_to_bytes<B: Backend>(network: &QNetwork<B>, path: &Path) -> Result<Vec<u8>, CheckpointError> {
    NamedMpkBytesRecorder::<FullPrecisionSettings>::new()
        .record(network.clone().into_record(), ())
        .map_err(|e| CheckpointError::Io { path: path.to_owned(), source: std::io::Error::other(e.to_string()) })
}

/// The network of shape `config` stored in `bytes` by [`network_to_bytes`];
/// `path` names the file in errors.
pub fn network_from_bytes<B: Backend>(
    bytes: Vec<u8>,
    config: &QNetworkConfig,
    device: &B::Device,
    path: &Path,
) -> Result<QNetwork<B>, CheckpointError> {
    let record: QNetworkRecord<B> = NamedMpkBytesRecorder::<FullPrecisionSettings>::new()
        .load(bytes, device)
        .map_err(|e| CheckpointError::Corrupt { path: path.to_owned(), reason: e.to_string() })?;
    let network = config.init::<B>(device, 0);
    check_shapes(&network, &record, path)?;
    Ok(network.load_record(record))
}

/// Every tensor of `record` must have the shape the config gives it.
fn check_shapes<B: Backend>(
    network: &QNetwork<B>,
    record: &QNetworkRecord<B>,
    path: &Path,
) -> Result<(), CheckpointError> {
    let expected = network.param_shapes();
    let found = QNetwork::<B>::record_shapes(record);
    if expected == found {
        return Ok(());
    }
    Err(CheckpointError::ShapeMismatch {
        path: path.to_owned(),
        what: "tensor shapes".into(),
        expected: format!("{expected:?}"),
        found: format!("{found:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{CpuBackend, cpu_device};
    use burn::tensor::{Tensor, TensorData};
    use tempfile::TempDir;

    type B = CpuBackend;

    const CARTPOLE: Expectation<'static> = Expectation { env_id: "CartPole-v1", obs_dim: 4, n_actions: 2 };

    fn scratch(name: &str) -> TempDir {
        TempDir::with_prefix(format!("rlhf-ckpt-{name}-")).unwrap()
    }

    fn config() -> QNetworkConfig {
        QNetworkConfig::new(4, 2).with_hidden(vec![16, 8]).with_dueling(true)
    }

    fn saved(tmp: &TempDir, seed: u64) -> (PathBuf, QNetwork<B>) {
        let dir = tmp.path().join("ckpt");
        let net = config().init::<B>(&cpu_device(), seed);
        let info = CheckpointInfo {
            env_id: "CartPole-v1".into(),
            step: 1234,
            backend: "flex".into(),
            run_config: serde_json::json!({"learning_rate": 0.001}),
        };
        save_with_extras(&dir, &net, &config(), info, &[("notes.bin", b"abc")]).unwrap();
        (dir, net)
    }

    fn q(net: &QNetwork<B>) -> Vec<f32> {
        let obs = Tensor::from_data(
            TensorData::new(vec![0.1f32, -0.2, 0.3, 0.05, 1.0, 0.0, -1.0, 2.0], [2, 4]),
            &cpu_device(),
        );
        net.forward(obs).into_data().to_vec::<f32>().unwrap()
    }

    #[test]
    fn round_trip_restores_the_same_network_and_metadata() {
        let tmp = scratch("round-trip");
        let (dir, net) = saved(&tmp, 7);
        let (loaded, meta) = load::<B>(&dir, &CARTPOLE, &cpu_device()).unwrap();
        assert_eq!(q(&loaded), q(&net));
        assert_eq!(read_extra(&dir, &meta, "notes.bin").unwrap(), b"abc");
        assert_eq!((meta.step, meta.network, meta.run_config["learning_rate"].as_f64()), (1234, config(), Some(0.001)));
    }

    #[test]
    fn saving_over_a_checkpoint_replaces_it_and_leaves_no_staging_files() {
        let tmp = scratch("replace");
        saved(&tmp, 1);
        let (dir, net) = saved(&tmp, 2);
        assert_eq!(q(&load::<B>(&dir, &CARTPOLE, &cpu_device()).unwrap().0), q(&net));
        let names: Vec<String> =
            fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["ckpt"]);
    }

    fn load_err(dir: &Path, expected: &Expectation<'_>) -> CheckpointError {
        match load::<B>(dir, expected, &cpu_device()) {
            Ok(_) => panic!("loading {} should fail", dir.display()),
            Err(e) => e,
        }
    }

    #[test]
    fn each_kind_of_damage_or_mismatch_is_a_typed_error_naming_the_file() {
        let tmp = scratch("damage");
        let (dir, _) = saved(&tmp, 3);
        let weights = dir.join(WEIGHTS_FILE);
        let meta = dir.join(META_FILE);
        let original_weights = fs::read(&weights).unwrap();
        let original_meta = fs::read_to_string(&meta).unwrap();

        // Another environment, other sizes.
        let err = load_err(&dir, &Expectation { env_id: "BitFlipping-v0", ..CARTPOLE });
        assert!(
            matches!(err, CheckpointError::EnvMismatch { .. })
                && err.to_string().contains("meta.json: trained on CartPole-v1"),
            "{err}"
        );
        let err = load_err(&dir, &Expectation { n_actions: 3, ..CARTPOLE });
        assert_eq!(err.to_string(), format!("{}: n_actions is 2, expected 3", meta.display()));

        // Truncated and corrupted weights.
        fs::write(&weights, &original_weights[..original_weights.len() / 2]).unwrap();
        let err = load_err(&dir, &CARTPOLE);
        assert!(
            matches!(err, CheckpointError::Corrupt { ref path, .. } if *path == weights)
                && err.to_string().contains("truncated"),
            "{err}"
        );
        let mut flipped = original_weights.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        fs::write(&weights, &flipped).unwrap();
        assert!(matches!(load_err(&dir, &CARTPOLE), CheckpointError::Corrupt { .. }));

        // Missing files.
        fs::remove_file(&weights).unwrap();
        assert!(matches!(load_err(&dir, &CARTPOLE), CheckpointError::Missing { ref path } if *path == weights));
        fs::write(&weights, &original_weights).unwrap();
        fs::remove_file(&meta).unwrap();
        assert!(matches!(load_err(&dir, &CARTPOLE), CheckpointError::Missing { ref path } if *path == meta));

        // Malformed or inconsistent meta.json.
        fs::write(&meta, "{ not json").unwrap();
        assert!(matches!(load_err(&dir, &CARTPOLE), CheckpointError::Corrupt { ref path, .. } if *path == meta));
        fs::write(&meta, original_meta.replace("\"format_version\": 1", "\"format_version\": 99")).unwrap();
        assert!(matches!(load_err(&dir, &CARTPOLE), CheckpointError::Version { found: 99, .. }));
        // A network config that disagrees with the stored tensors.
        let narrower = original_meta.replacen("16", "12", 1);
        assert_ne!(narrower, original_meta);
        fs::write(&meta, narrower).unwrap();
        let err = load_err(&dir, &CARTPOLE);
        assert!(matches!(err, CheckpointError::ShapeMismatch { ref path, .. } if *path == weights), "{err}");

        // A damaged or unknown extra file.
        fs::write(&meta, &original_meta).unwrap();
        let parsed = read_meta(&dir).unwrap();
        fs::write(dir.join("notes.bin"), b"abd").unwrap();
        assert!(matches!(read_extra(&dir, &parsed, "notes.bin"), Err(CheckpointError::Corrupt { .. })));
        assert!(matches!(read_extra(&dir, &parsed, "other.bin"), Err(CheckpointError::Missing { .. })));

        // Restored, it loads again.
        fs::write(&meta, original_meta).unwrap();
        assert!(load::<B>(&dir, &CARTPOLE, &cpu_device()).is_ok());
    }
}
