//! Training curves read back from a run's JSONL metrics (`train.jsonl`, `eval.jsonl`).

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{EvalError, Result};

/// One line of a chart: `(x, y)` points in x order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Every record of a JSONL file; a line that is not a JSON object is an error naming
/// the file and line. A missing file is an empty log.
pub fn read_jsonl(path: &Path) -> Result<Vec<Map<String, Value>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(EvalError::file(path, e)),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(EvalError::file(
                path,
                format!("line {}: not an object", i + 1),
            )),
            Err(e) => Err(EvalError::file(path, format!("line {}: {e}", i + 1))),
        })
        .collect()
}

/// The `(x, y)` points of records that hold both keys as finite numbers.
pub fn series(records: &[Map<String, Value>], x: &str, y: &str, name: &str) -> Series {
    let points = records
        .iter()
        .filter_map(|r| Some((r.get(x)?.as_f64()?, r.get(y)?.as_f64()?)))
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .collect();
    Series {
        name: name.to_string(),
        points,
    }
}

/// A trailing moving average over `window` points (noisy per-step losses).
pub fn smooth(s: &Series, window: usize) -> Series {
    let w = window.max(1);
    let mut sum = 0.0;
    let points = s
        .points
        .iter()
        .enumerate()
        .map(|(i, &(x, y))| {
            sum += y;
            if i >= w {
                sum -= s.points[i - w].1;
            }
            (x, sum / (i + 1).min(w) as f64)
        })
        .collect();
    Series {
        name: s.name.clone(),
        points,
    }
}

/// The keys of `records` that hold numbers, in first-seen order.
pub fn numeric_keys(records: &[Map<String, Value>]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for r in records {
        for (k, v) in r {
            if v.is_number() && !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_series_and_names_bad_lines() {
        let (dir, path) = gradus_testkit::temp_file(
            "train.jsonl",
            "{\"step\":1,\"loss\":4.0}\n{\"step\":2,\"loss\":2.0,\"lr\":0.1}\n\n",
        );
        let rows = read_jsonl(&path).unwrap();
        let s = series(&rows, "step", "loss", "train");
        assert_eq!(s.points, vec![(1.0, 4.0), (2.0, 2.0)]);
        assert_eq!(series(&rows, "step", "lr", "lr").points, vec![(2.0, 0.1)]);
        assert_eq!(smooth(&s, 2).points, vec![(1.0, 4.0), (2.0, 3.0)]);
        assert_eq!(numeric_keys(&rows), vec!["loss", "step", "lr"]);
        std::fs::write(&path, "{\"step\":1}\nnot json\n").unwrap();
        let err = read_jsonl(&path).unwrap_err().to_string();
        assert!(
            err.contains("train.jsonl") && err.contains("line 2"),
            "{err}"
        );
        assert!(
            read_jsonl(&dir.path().join("none.jsonl"))
                .unwrap()
                .is_empty()
        );
    }
}
