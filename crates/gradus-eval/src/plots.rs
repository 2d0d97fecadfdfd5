//! Report charts as SVG: curves, a confusion matrix, predicted against true values.

use std::ops::Range;
use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::curves::Series;
use crate::error::{EvalError, Result};

const SIZE: (u32, u32) = (720, 420);

fn failed(path: &Path) -> impl Fn(String) -> EvalError + '_ {
    move |e| EvalError::file(path, format!("drawing a chart: {e}"))
}

/// The finite range of `values` with a margin, never empty.
fn range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(v), h.max(v))
        });
    if lo > hi {
        return None;
    }
    let pad = ((hi - lo) * 0.05).max(1e-9 + lo.abs() * 1e-3);
    Some((lo - pad, hi + pad))
}

fn canvas(path: &Path) -> Result<DrawingArea<SVGBackend<'_>, Shift>> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(path)(e.to_string()))?;
    Ok(root)
}

/// Axes with `title`, ranges and labels, on a white canvas.
fn axes<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    path: &Path,
    title: &str,
    (xs, ys): (Range<f64>, Range<f64>),
    (x_label, y_label): (&str, &str),
) -> Result<ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>> {
    let err = failed(path);
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(xs, ys)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    Ok(chart)
}

/// Lines of `series` against a shared x axis; series of few points also get markers.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<()> {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let (Some(xs), Some(ys)) = (range(all().map(|p| p.0)), range(all().map(|p| p.1))) else {
        return Err(EvalError::file(
            path,
            format!("`{title}`: no points to draw"),
        ));
    };
    let err = failed(path);
    let root = canvas(path)?;
    let ranges = (xs.0..xs.1, ys.0..ys.1);
    let mut chart = axes(&root, path, title, ranges, (x_label, y_label))?;
    for (i, s) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| err(e.to_string()))?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        if s.points.len() <= 60 {
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(|e| err(e.to_string()))?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))
}

/// A confusion matrix: rows are true labels (top to bottom), columns predictions.
pub fn confusion_chart(
    path: &Path,
    title: &str,
    labels: &[String],
    counts: &[Vec<u64>],
) -> Result<()> {
    let n = counts.len();
    if n == 0 || counts.iter().any(|r| r.len() != n) {
        return Err(EvalError::file(path, "confusion matrix is not square"));
    }
    let err = failed(path);
    let max = counts.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
    let root = canvas(path)?;
    let name = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => labels
            .get(*i as usize)
            .cloned()
            .unwrap_or_else(|| i.to_string()),
        SegmentValue::Last => String::new(),
    };
    let n = n as i32;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(100)
        // A discrete i32 range includes its end: 0..n-1 is n cells.
        .build_cartesian_2d((0..n - 1).into_segmented(), (0..n - 1).into_segmented())
        .map_err(|e| err(e.to_string()))?;
    let row_name = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => name(&SegmentValue::Exact(n - 1 - i)),
        SegmentValue::Last => String::new(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("predicted")
        .y_desc("true")
        .x_labels(n as usize)
        .y_labels(n as usize)
        .x_label_formatter(&name)
        .y_label_formatter(&row_name)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let cells = (0..n).flat_map(|t| (0..n).map(move |p| (t, p)));
    chart
        .draw_series(cells.clone().map(|(t, p)| {
            let share = counts[t as usize][p as usize] as f64 / max;
            let shade = (255.0 * (1.0 - 0.8 * share)) as u8;
            let y = n - 1 - t;
            Rectangle::new(
                [
                    (SegmentValue::Exact(p), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(p + 1), SegmentValue::Exact(y + 1)),
                ],
                RGBColor(shade, shade, 255).filled(),
            )
        }))
        .map_err(|e| err(e.to_string()))?;
    let style =
        TextStyle::from(("sans-serif", 18).into_font()).pos(Pos::new(HPos::Center, VPos::Center));
    chart
        .draw_series(cells.map(|(t, p)| {
            Text::new(
                counts[t as usize][p as usize].to_string(),
                (SegmentValue::CenterOf(p), SegmentValue::CenterOf(n - 1 - t)),
                style.clone(),
            )
        }))
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))
}

/// Predicted against true values, with the line where they agree.
pub fn scatter_chart(path: &Path, title: &str, points: &[(f64, f64)]) -> Result<()> {
    let vals = || points.iter().flat_map(|&(a, b)| [a, b]);
    let Some((lo, hi)) = range(vals()) else {
        return Err(EvalError::file(
            path,
            format!("`{title}`: no points to draw"),
        ));
    };
    let err = failed(path);
    let root = canvas(path)?;
    let mut chart = axes(&root, path, title, (lo..hi, lo..hi), ("true", "predicted"))?;
    chart
        .draw_series(LineSeries::new([(lo, lo), (hi, hi)], BLACK.mix(0.4)))
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(
            points
                .iter()
                .filter(|(a, b)| a.is_finite() && b.is_finite())
                .map(|&p| Circle::new(p, 2, BLUE.mix(0.5).filled())),
        )
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_written_as_svg() {
        let dir = tempfile::tempdir().unwrap();
        let s = Series {
            name: "train".into(),
            points: vec![(1.0, 3.0), (2.0, 2.0), (3.0, 1.5)],
        };
        let line = dir.path().join("loss.svg");
        line_chart(&line, "loss", "step", "loss", &[s]).unwrap();
        let svg = std::fs::read_to_string(&line).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("train"), "{svg}");

        let conf = dir.path().join("confusion.svg");
        let labels = vec!["neg".to_string(), "pos".to_string()];
        confusion_chart(&conf, "confusion", &labels, &[vec![5, 1], vec![2, 7]]).unwrap();
        let svg = std::fs::read_to_string(&conf).unwrap();
        assert!(svg.contains("\n7\n") && svg.contains("\nneg\n"), "{svg}");

        let scatter = dir.path().join("scatter.svg");
        scatter_chart(&scatter, "stsb", &[(0.0, 0.5), (5.0, 4.0)]).unwrap();
        assert!(
            std::fs::read_to_string(&scatter)
                .unwrap()
                .contains("<circle")
        );

        let empty = line_chart(&dir.path().join("e.svg"), "empty", "x", "y", &[]);
        assert!(empty.unwrap_err().to_string().contains("no points"));
        assert!(confusion_chart(&conf, "bad", &labels, &[vec![1]]).is_ok());
        assert!(confusion_chart(&conf, "bad", &labels, &[vec![1, 2]]).is_err());
    }
}
