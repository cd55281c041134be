//! Pictures of environments: RGB frames, PNG files and animated GIFs.
//!
//! A [`Scene`] draws one frame onto any plotters drawing area; the functions
//! here put scenes into memory or files. Files are written atomically: to a
//! temporary file beside the target, then renamed over it, so a crash never
//! leaves a half-written picture under the requested name.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

/// Default frame size, Gymnasium's for classic control.
pub const DEFAULT_SIZE: (u32, u32) = (600, 400);

/// Something that can draw itself as one frame.
pub trait Scene {
    /// Draws onto `area`, scaling to its pixel size.
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>;
}

/// Why a picture could not be made or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot render to {path}: {message}")]
pub struct RenderError {
    /// The file (or `"<memory>"`).
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

impl RenderError {
    fn at(path: &Path, message: impl ToString) -> Self {
        Self { path: path.to_owned(), message: message.to_string() }
    }
}

/// The scene as RGB bytes, row-major, `3 * width * height` long.
pub fn rgb_frame<S: Scene>(scene: &S, (width, height): (u32, u32)) -> Result<Vec<u8>, RenderError> {
    let memory = Path::new("<memory>");
    let mut buffer = vec![0u8; 3 * width as usize * height as usize];
    {
        let area = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        scene.draw(&area).map_err(|e| RenderError::at(memory, e))?;
        area.present().map_err(|e| RenderError::at(memory, e))?;
    }
    Ok(buffer)
}

/// Writes the scene as a PNG file.
pub fn save_png<S: Scene>(scene: &S, path: &Path, size: (u32, u32)) -> Result<(), RenderError> {
    crate::atomic::write_atomically_with(
        path,
        "png",
        |tmp| {
            let area = BitMapBackend::new(tmp, size).into_drawing_area();
            scene.draw(&area).map_err(|e| RenderError::at(path, e))?;
            area.present().map_err(|e| RenderError::at(path, e))
        },
        |e| RenderError::at(path, e),
    )
}

/// Writes the scenes as an animated GIF, `frame_delay_ms` per frame.
pub fn save_gif<S: Scene>(scenes: &[S], path: &Path, size: (u32, u32), frame_delay_ms: u32) -> Result<(), RenderError> {
    if scenes.is_empty() {
        return Err(RenderError::at(path, "no frames to write"));
    }
    crate::atomic::write_atomically_with(
        path,
        "gif",
        |tmp| {
            let backend = BitMapBackend::gif(tmp, size, frame_delay_ms).map_err(|e| RenderError::at(path, e))?;
            let area = backend.into_drawing_area();
            for scene in scenes {
                scene.draw(&area).map_err(|e| RenderError::at(path, e))?;
                area.present().map_err(|e| RenderError::at(path, e))?;
            }
            Ok(())
        },
        |e| RenderError::at(path, e),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envs::cartpole::CartPoleScene;
    use tempfile::TempDir;

    fn scratch_dir(name: &str) -> TempDir {
        TempDir::with_prefix(format!("rlhf-render-{name}-")).unwrap()
    }

    #[test]
    fn png_and_gif_files_are_written_whole_and_nothing_else_is_left() {
        let tmp = scratch_dir("files");
        let dir = tmp.path();
        let scenes: Vec<CartPoleScene> =
            (0..5).map(|i| CartPoleScene::v1([0.1 * f64::from(i), 0.0, 0.05 * f64::from(i), 0.0])).collect();
        save_png(&scenes[0], &dir.join("frame.png"), (120, 80)).unwrap();
        save_gif(&scenes, &dir.join("episode.gif"), (120, 80), 20).unwrap();
        let png = std::fs::read(dir.join("frame.png")).unwrap();
        let gif = std::fs::read(dir.join("episode.gif")).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&gif[..6], b"GIF89a");
        // One image descriptor (0x2C after a graphic control block) per frame.
        let frames = gif.windows(2).filter(|w| w == &[0x00, 0x2C]).count();
        assert!(frames >= 5, "{frames} frames");
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(names, ["episode.gif", "frame.png"]);
    }

    #[test]
    fn unwritable_paths_and_empty_episodes_are_errors_naming_the_file() {
        let missing = Path::new("/nonexistent-dir/x.png");
        let err = save_png(&CartPoleScene::v1([0.0; 4]), missing, (60, 40)).unwrap_err();
        assert!(err.to_string().starts_with("cannot render to /nonexistent-dir/x.png"), "{err}");
        let err = save_gif::<CartPoleScene>(&[], Path::new("e.gif"), (60, 40), 20).unwrap_err();
        assert_eq!(err.to_string(), "cannot render to e.gif: no frames to write");
    }
}
