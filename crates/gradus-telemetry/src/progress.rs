//! Progress for long work: an indicatif bar on a terminal, periodic log lines elsewhere
//! (CI logs, files), so a redirected run still shows that it is alive.

use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Log-line interval when stderr is not a terminal; `GRADUS_PROGRESS_SECS` overrides it.
const LOG_EVERY: Duration = Duration::from_secs(10);

fn log_every() -> Duration {
    std::env::var("GRADUS_PROGRESS_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(LOG_EVERY, Duration::from_secs_f64)
}

/// All bars of the process, so log output can be printed above them.
pub(crate) fn multi() -> &'static MultiProgress {
    static MULTI: OnceLock<MultiProgress> = OnceLock::new();
    MULTI.get_or_init(|| {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        MultiProgress::with_draw_target(target)
    })
}

/// One line of state for a unit of work without a count (a pipeline stage): a spinner
/// with a message on a terminal, nothing elsewhere (callers log the changes).
#[derive(Debug)]
pub struct StatusLine {
    bar: ProgressBar,
}

impl StatusLine {
    /// A line labelled `label`, showing `message`.
    pub fn new(label: &str, message: impl Into<String>) -> Self {
        let bar = ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{prefix:>20} {spinner} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        let bar = multi().add(bar.with_prefix(label.to_string()));
        bar.set_message(message.into());
        Self { bar }
    }

    /// Replaces the message and turns the spinner.
    pub fn set(&self, message: impl Into<String>) {
        self.bar.set_message(message.into());
        self.bar.tick();
    }

    /// Leaves the line standing with a final message.
    pub fn finish(&self, message: impl Into<String>) {
        self.bar.finish_with_message(message.into());
    }
}

/// A unit of long work with an optional known total.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    label: String,
    unit: &'static str,
    log_lines: bool,
    log_every: Duration,
    last_log: Mutex<Instant>,
}

impl Progress {
    /// Starts a progress display for `label`, counting `unit`s up to `total` if known.
    pub fn new(label: &str, total: Option<u64>, unit: &'static str) -> Self {
        let bar = match total {
            Some(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template(
                    "{prefix:>12} [{bar:30}] {human_pos}/{human_len} {msg} ({per_sec}, eta {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template(
                    "{prefix:>12} {spinner} {human_pos} {msg} ({per_sec})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        let bar = multi().add(bar.with_prefix(label.to_string()));
        Self {
            bar,
            label: label.to_string(),
            unit,
            log_lines: !std::io::stderr().is_terminal(),
            log_every: log_every(),
            last_log: Mutex::new(Instant::now()),
        }
    }

    /// Advances by `n`.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
        self.maybe_log();
    }

    /// Sets the short message shown after the counts (e.g. the current loss).
    pub fn set_message(&self, msg: impl Into<String>) {
        self.bar.set_message(msg.into());
    }

    /// Current position.
    pub fn position(&self) -> u64 {
        self.bar.position()
    }

    /// Ends the display, logging the final count.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
        tracing::info!(
            "{}: done, {} {} in {:.1}s",
            self.label,
            self.bar.position(),
            self.unit,
            self.bar.elapsed().as_secs_f64()
        );
    }

    fn maybe_log(&self) {
        if !self.log_lines {
            return;
        }
        let mut last = self.last_log.lock().unwrap_or_else(PoisonError::into_inner);
        if last.elapsed() < self.log_every {
            return;
        }
        *last = Instant::now();
        let pos = self.bar.position();
        let rate = pos as f64 / self.bar.elapsed().as_secs_f64().max(1e-9);
        match self.bar.length() {
            Some(total) => tracing::info!(
                "{}: {pos}/{total} {} ({rate:.0}/s) {}",
                self.label,
                self.unit,
                self.bar.message()
            ),
            None => tracing::info!(
                "{}: {pos} {} ({rate:.0}/s) {}",
                self.label,
                self.unit,
                self.bar.message()
            ),
        }
    }
}
