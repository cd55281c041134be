//! Learning curves as PNG files.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;
use rlhf_algo::stats::Estimate;

/// Why a plot could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot plot to {path}: {message}")]
pub struct PlotError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// Registers the embedded DejaVu Sans as plotters' `sans-serif` once per
/// process, so plots render the same on every machine, fonts installed or not.
fn register_font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
                .map_err(|_| "the embedded font did not load".to_owned())
        })
        .clone()
}

/// Width and height of line charts.
const CHART_SIZE: (u32, u32) = (900, 540);

/// Colour-blind-safe (Okabe–Ito), distinct up to eight lines.
const COLORS: [RGBColor; 8] = [
    RGBColor(213, 94, 0),
    RGBColor(0, 114, 178),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(240, 228, 66),
];

/// A drawing area on a bitmap, as the plotting closures receive it.
type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// Draws a PNG of `size` pixels with `draw` into a temporary file beside `path`, then
/// renames it over `path`, so a reader never sees half a picture.
fn write_png<F>(path: &Path, size: (u32, u32), draw: F) -> Result<(), PlotError>
where
    F: for<'a> FnOnce(&Area<'a>) -> Result<(), Box<dyn std::error::Error + 'a>>,
{
    let fail = |message: String| PlotError { path: path.to_owned(), message };
    register_font().map_err(fail)?;
    rlhf_env::atomic::write_atomically_with(
        path,
        "png",
        |tmp| {
            let root = BitMapBackend::new(tmp, size).into_drawing_area();
            root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
            draw(&root).map_err(|e| fail(e.to_string()))?;
            root.present().map_err(|e| fail(e.to_string()))
        },
        |e| fail(e.to_string()),
    )
}

/// Writes a learning curve: the return of every training episode (light
/// points) and the mean return of every greedy evaluation (a line), against
/// environment steps. The file is written to a temporary name and renamed.
pub fn plot_learning_curve(
    path: &Path,
    title: &str,
    episodes: &[(u64, f64)],
    evaluations: &[(u64, f64)],
) -> Result<(), PlotError> {
    let max_step = episodes.iter().chain(evaluations).map(|p| p.0).max().unwrap_or(1).max(1);
    let (low, high) =
        episodes.iter().chain(evaluations).map(|p| p.1).fold((0.0f64, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    write_png(path, CHART_SIZE, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 24))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(0u64..max_step, low..high * 1.05)?;
        chart.configure_mesh().x_desc("environment steps").y_desc("return").label_style(("sans-serif", 15)).draw()?;
        chart
            .draw_series(episodes.iter().map(|&(x, y)| Circle::new((x, y), 2, RGBColor(150, 170, 210).filled())))?
            .label("training episode")
            .legend(|(x, y)| Circle::new((x, y), 3, RGBColor(150, 170, 210).filled()));
        chart
            .draw_series(LineSeries::new(evaluations.iter().copied(), RGBColor(200, 60, 30).stroke_width(2)))?
            .label("greedy evaluation (mean)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(200, 60, 30).stroke_width(2)));
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight, 14)?;
        Ok(())
    })
}

/// One line of [`plot_lines`]: a label and its `(x, y)` points.
pub type Line<'a> = (&'a str, &'a [(f64, f64)]);

/// Writes a chart of labelled lines (e.g. success rate against problem size,
/// one line per method), each point marked, to `path` atomically.
pub fn plot_lines(
    path: &Path,
    title: &str,
    (x_label, y_label): (&str, &str),
    y_range: std::ops::Range<f64>,
    lines: &[Line<'_>],
) -> Result<(), PlotError> {
    let points = || lines.iter().flat_map(|(_, points)| points.iter());
    let x_min = points().map(|p| p.0).fold(f64::INFINITY, f64::min).min(0.0);
    let x_max = points().map(|p| p.0).fold(1.0, f64::max);
    write_png(path, CHART_SIZE, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 24))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(x_min..x_max * 1.02, y_range.clone())?;
        chart.configure_mesh().x_desc(x_label).y_desc(y_label).label_style(("sans-serif", 15)).draw()?;
        for (i, (label, line)) in lines.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            chart.draw_series(line.iter().map(|&(x, y)| Circle::new((x, y), 4, color.filled())))?;
            chart
                .draw_series(LineSeries::new(line.iter().copied(), color.stroke_width(2)))?
                .label(*label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        draw_legend(&mut chart, SeriesLabelPosition::MiddleRight, 14)?;
        Ok(())
    })
}

/// One curve of [`plot_bands`]: a label and its points, each an x with an
/// estimate and its interval.
pub type Band<'a> = (&'a str, &'a [(f64, Estimate)]);

/// Writes a chart of estimates with shaded intervals (learning curves with
/// 95% bands, performance profiles), one colour per curve, to `path` atomically.
pub fn plot_bands(
    path: &Path,
    title: &str,
    axes: (&str, &str),
    y_range: std::ops::Range<f64>,
    bands: &[Band<'_>],
) -> Result<(), PlotError> {
    write_png(path, CHART_SIZE, |root| draw_bands(root, title, axes, y_range, bands))
}

/// One chart of [`plot_band_panels`]: its title and its curves.
pub type Panel<'a> = (&'a str, &'a [Band<'a>]);

/// Writes several [`plot_bands`] charts side by side (`columns` per row),
/// sharing their axes' labels and y range, under one title, to `path` atomically.
pub fn plot_band_panels(
    path: &Path,
    title: &str,
    axes: (&str, &str),
    y_range: std::ops::Range<f64>,
    columns: usize,
    panels: &[Panel<'_>],
) -> Result<(), PlotError> {
    let columns = columns.clamp(1, panels.len().max(1));
    let rows = panels.len().div_ceil(columns).max(1);
    let size = (CHART_SIZE.0 * 2 / 3 * columns as u32, CHART_SIZE.1 * 2 / 3 * rows as u32 + 40);
    write_png(path, size, |root| {
        let (title_area, body) = root.split_vertically(40);
        title_area.titled(title, ("sans-serif", 24))?;
        for (area, (panel_title, bands)) in body.split_evenly((rows, columns)).iter().zip(panels) {
            draw_bands(area, panel_title, axes, y_range.clone(), bands)?;
        }
        Ok(())
    })
}

fn draw_bands<'a>(
    area: &Area<'a>,
    title: &str,
    (x_label, y_label): (&str, &str),
    y_range: std::ops::Range<f64>,
    bands: &[Band<'_>],
) -> Result<(), Box<dyn std::error::Error + 'a>> {
    let xs = || bands.iter().flat_map(|(_, points)| points.iter().map(|p| p.0));
    let x_min = xs().fold(f64::INFINITY, f64::min).min(0.0);
    let x_max = xs().fold(f64::NEG_INFINITY, f64::max).max(x_min + 1.0);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(x_min..x_max, y_range)?;
    // Whole numbers on long axes (steps), two decimals on short ones (τ in [0, 1]).
    let decimals = if x_max - x_min > 20.0 { 0 } else { 2 };
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&|x| format!("{x:.decimals$}"))
        .label_style(("sans-serif", 14))
        .draw()?;
    for (i, (label, points)) in bands.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        // The band: along the upper ends, back along the lower ones.
        let outline: Vec<(f64, f64)> =
            points.iter().map(|(x, e)| (*x, e.high)).chain(points.iter().rev().map(|(x, e)| (*x, e.low))).collect();
        chart.draw_series(std::iter::once(Polygon::new(outline, color.mix(0.2).filled())))?;
        chart
            .draw_series(LineSeries::new(points.iter().map(|(x, e)| (*x, e.value)), color.stroke_width(2)))?
            .label(*label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerRight, 13)?;
    Ok(())
}

/// The legend of a chart's labelled series, in a framed white box at `position`.
fn draw_legend<'b, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'b, BitMapBackend<'b>, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
    font_size: u32,
) -> Result<(), DrawingAreaErrorKind<<BitMapBackend<'b> as DrawingBackend>::ErrorType>> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", font_size))
        .position(position)
        .draw()
}

/// Writes a confusion matrix as a heatmap: row `i` is the true label
/// `labels[i]`, column `j` the predicted one; each cell is shaded by the
/// share of row `i` it holds (so rare and frequent intents read alike) and
/// shows its count when non-zero.
pub fn plot_confusion(path: &Path, title: &str, labels: &[String], confusion: &[Vec<u64>]) -> Result<(), PlotError> {
    let n = labels.len();
    if confusion.len() != n || confusion.iter().any(|row| row.len() != n) {
        return Err(PlotError { path: path.to_owned(), message: format!("the matrix is not {n}×{n}") });
    }
    let cell = (760 / n.max(1)).clamp(12, 60) as u32;
    let side = cell * n as u32;
    let margin = 170u32;
    write_png(path, (side + margin + 30, side + margin + 40), |root| {
        let (title_area, body) = root.split_vertically(40);
        title_area.titled(title, ("sans-serif", 22))?;
        let font = ("sans-serif", (cell as f64 * 0.5).clamp(9.0, 15.0));
        for (i, row) in confusion.iter().enumerate() {
            let total = row.iter().sum::<u64>().max(1) as f64;
            for (j, &count) in row.iter().enumerate() {
                let share = count as f64 / total;
                let (x, y) = ((margin + j as u32 * cell) as i32, (i as u32 * cell) as i32);
                let shade = (255.0 * (1.0 - share)) as u8;
                let color =
                    if i == j { RGBColor(shade, 255 - (255 - shade) / 3, shade) } else { RGBColor(255, shade, shade) };
                body.draw(&Rectangle::new([(x, y), (x + cell as i32, y + cell as i32)], color.filled()))?;
                body.draw(&Rectangle::new([(x, y), (x + cell as i32, y + cell as i32)], RGBColor(220, 220, 220)))?;
                if count > 0 {
                    let text_color = if share > 0.6 { WHITE } else { BLACK };
                    let style = TextStyle::from(font.into_font()).color(&text_color).pos(
                        plotters::style::text_anchor::Pos::new(
                            plotters::style::text_anchor::HPos::Center,
                            plotters::style::text_anchor::VPos::Center,
                        ),
                    );
                    body.draw_text(&count.to_string(), &style, (x + cell as i32 / 2, y + cell as i32 / 2))?;
                }
            }
            let style = TextStyle::from(font.into_font()).pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Right,
                plotters::style::text_anchor::VPos::Center,
            ));
            body.draw_text(&labels[i], &style, (margin as i32 - 6, (i as u32 * cell + cell / 2) as i32))?;
        }
        // Column labels, rotated, under the matrix.
        let style = TextStyle::from(font.into_font()).transform(FontTransform::Rotate90);
        for (j, label) in labels.iter().enumerate() {
            body.draw_text(label, &style, ((margin + j as u32 * cell + cell / 2 + 6) as i32, side as i32 + 6))?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use tempfile::TempDir;

    use super::*;

    #[test]
    fn writes_a_png_and_no_temporary_file() {
        let tmp = TempDir::new().unwrap();
        let path = tmp.path().join("curve.png");
        let episodes: Vec<(u64, f64)> = (1..50).map(|i| (i * 100, (i * 7 % 40) as f64)).collect();
        plot_learning_curve(&path, "test", &episodes, &[(2500, 20.0), (5000, 35.5)]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn lines_chart_is_a_png() {
        let tmp = TempDir::new().unwrap();
        let path = tmp.path().join("lines.png");
        let a = [(5.0, 1.0), (10.0, 1.0), (50.0, 0.98)];
        let b = [(5.0, 1.0), (10.0, 0.4), (50.0, 0.0)];
        plot_lines(&path, "t", ("bits", "success"), 0.0..1.05, &[("with", &a), ("without", &b)]).unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[..4], b"\x89PNG");
    }

    #[test]
    fn banded_charts_are_pngs() {
        let tmp = TempDir::new().unwrap();
        let path = tmp.path().join("bands.png");
        let e = |value: f64| Estimate { value, low: value - 0.1, high: value + 0.1 };
        let ours = [(0.0, e(0.2)), (2_500.0, e(0.5)), (5_000.0, e(0.9))];
        let theirs = [(0.0, e(0.1)), (5_000.0, e(0.6))];
        plot_bands(&path, "t", ("steps", "return"), 0.0..1.0, &[("ours", &ours), ("SB3", &theirs)]).unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[..4], b"\x89PNG");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
        let panels = [("5 bits", &[("HER", &ours[..])][..]), ("10 bits", &[("HER", &theirs[..])][..])];
        let path = tmp.path().join("panels.png");
        plot_band_panels(&path, "t", ("steps", "success"), 0.0..1.0, 2, &panels).unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[..4], b"\x89PNG");
    }

    #[test]
    fn confusion_heatmaps_are_written_and_bad_shapes_refused() {
        let tmp = TempDir::new().unwrap();
        let path = tmp.path().join("c.png");
        let labels = vec!["light_on".to_owned(), "light_off".to_owned()];
        plot_confusion(&path, "test", &labels, &[vec![5, 1], vec![0, 6]]).unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[1..4], b"PNG");
        assert!(plot_confusion(&path, "test", &labels, &[vec![5, 1]]).is_err());
    }
}
