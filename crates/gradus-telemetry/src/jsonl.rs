//! A `metrics` recorder that appends one JSON line per update to a file:
//! `{"ts":1764338123.512,"stage":"clean","name":"rows_out","labels":{"filter":"lang"},
//!   "kind":"counter","value":1200}`.
//! Counters record their running total, gauges their new value, histograms each sample,
//! so the file is a complete time series that tools can plot without the process.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use serde::Serialize;

/// How long records may sit in the buffer before they are written out.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// One line of a metrics file.
#[derive(Debug, Serialize)]
struct Line<'a> {
    ts: f64,
    stage: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    labels: HashMap<&'a str, &'a str>,
    kind: &'static str,
    value: f64,
}

struct Sink {
    out: BufWriter<File>,
    last_flush: Instant,
    /// The first write error; later records are dropped rather than failing the stage.
    failed: Option<std::io::Error>,
}

struct Shared {
    stage: String,
    sink: Mutex<Sink>,
}

impl Shared {
    fn emit(&self, key: &Key, kind: &'static str, value: f64) {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let line = Line {
            ts: (ts * 1000.0).round() / 1000.0,
            stage: &self.stage,
            name: key.name(),
            labels: key.labels().map(|l| (l.key(), l.value())).collect(),
            kind,
            value,
        };
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        if sink.failed.is_some() {
            return;
        }
        let written = serde_json::to_writer(&mut sink.out, &line)
            .map_err(std::io::Error::from)
            .and_then(|()| sink.out.write_all(b"\n"));
        let flushed = if sink.last_flush.elapsed() >= FLUSH_EVERY {
            sink.last_flush = Instant::now();
            sink.out.flush()
        } else {
            Ok(())
        };
        if let Err(e) = written.and(flushed) {
            sink.failed = Some(e);
        }
    }

    fn flush(&self) -> std::io::Result<()> {
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = sink.failed.take() {
            return Err(e);
        }
        sink.last_flush = Instant::now();
        sink.out.flush()
    }
}

/// The JSONL recorder. Clone it to keep a handle for [`JsonlRecorder::flush`] after
/// installing it.
#[derive(Clone)]
pub struct JsonlRecorder {
    shared: Arc<Shared>,
    handles: Arc<Mutex<HashMap<Key, Arc<Handle>>>>,
}

impl std::fmt::Debug for JsonlRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlRecorder")
            .field("stage", &self.shared.stage)
            .finish()
    }
}

impl JsonlRecorder {
    /// Appends to `path` (created if missing), tagging every record with `stage`.
    pub fn open(path: &Path, stage: &str) -> std::io::Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            shared: Arc::new(Shared {
                stage: stage.to_string(),
                sink: Mutex::new(Sink {
                    out: BufWriter::new(file),
                    last_flush: Instant::now(),
                    failed: None,
                }),
            }),
            handles: Arc::default(),
        })
    }

    /// Writes buffered records out; reports the first write error since the last flush.
    pub fn flush(&self) -> std::io::Result<()> {
        self.shared.flush()
    }

    fn handle(&self, key: &Key) -> Arc<Handle> {
        let mut handles = self.handles.lock().unwrap_or_else(PoisonError::into_inner);
        handles
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Handle {
                    key: key.clone(),
                    bits: AtomicU64::new(0),
                    shared: self.shared.clone(),
                })
            })
            .clone()
    }
}

/// The state of one metric: a counter's total or a gauge's value (as f64 bits).
struct Handle {
    key: Key,
    bits: AtomicU64,
    shared: Arc<Shared>,
}

impl Handle {
    fn update_f64(&self, f: impl Fn(f64) -> f64) -> f64 {
        let mut new = 0.0;
        let _ = self
            .bits
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |old| {
                new = f(f64::from_bits(old));
                Some(new.to_bits())
            });
        new
    }
}

impl CounterFn for Handle {
    fn increment(&self, value: u64) {
        let total = self.bits.fetch_add(value, Ordering::AcqRel) + value;
        self.shared.emit(&self.key, "counter", total as f64);
    }

    fn absolute(&self, value: u64) {
        let total = self.bits.fetch_max(value, Ordering::AcqRel).max(value);
        self.shared.emit(&self.key, "counter", total as f64);
    }
}

impl GaugeFn for Handle {
    fn increment(&self, value: f64) {
        let v = self.update_f64(|x| x + value);
        self.shared.emit(&self.key, "gauge", v);
    }

    fn decrement(&self, value: f64) {
        let v = self.update_f64(|x| x - value);
        self.shared.emit(&self.key, "gauge", v);
    }

    fn set(&self, value: f64) {
        self.bits.store(value.to_bits(), Ordering::Release);
        self.shared.emit(&self.key, "gauge", value);
    }
}

impl HistogramFn for Handle {
    fn record(&self, value: f64) {
        self.shared.emit(&self.key, "histogram", value);
    }
}

impl Recorder for JsonlRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.handle(key))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.handle(key))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        // Histograms keep no state here: each sample is its own record.
        Histogram::from_arc(Arc::new(Handle {
            key: key.clone(),
            bits: AtomicU64::new(0),
            shared: self.shared.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_json_lines_with_running_totals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let recorder = JsonlRecorder::open(&path, "clean").unwrap();
        metrics::with_local_recorder(&recorder, || {
            metrics::counter!("rows", "filter" => "lang").increment(2);
            metrics::counter!("rows", "filter" => "lang").increment(3);
            metrics::gauge!("loss").set(1.5);
            metrics::histogram!("batch_ms").record(7.0);
        });
        recorder.flush().unwrap();
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[1]["value"], 5.0);
        assert_eq!(lines[1]["labels"]["filter"], "lang");
        assert_eq!(lines[1]["stage"], "clean");
        assert_eq!(lines[2]["name"], "loss");
        assert_eq!(lines[3]["kind"], "histogram");
        assert!(lines[0]["ts"].as_f64().unwrap() > 1.0e9);
    }
}
