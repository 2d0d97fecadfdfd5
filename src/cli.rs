//! Conventions every stage binary shares: the common flags, config files with flag
//! overrides, the resolved config written beside the output, and the exit path that turns
//! an error chain into one line.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use gradus_shard::OpenMode;
use gradus_train::{RunSpec, StageRun, TrainConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Flags common to every stage.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StageArgs {
    /// Stage configuration file (TOML). Flags override its keys.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Input path(s): datasets, files or globs, per stage.
    #[arg(long, short = 'i', value_name = "PATH")]
    pub input: Vec<String>,
    /// Output folder.
    #[arg(long, short = 'o', value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Continue a partly written output (the default).
    #[arg(long, conflicts_with = "overwrite")]
    pub resume: bool,
    /// Delete an existing output and start again.
    #[arg(long)]
    pub overwrite: bool,
    /// Seed for every random choice of the stage (sets the config's `seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Serve Prometheus metrics at this address; a bare port binds 127.0.0.1.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<String>,
    /// Override a config key, e.g. `--set filters.min_words=20` (repeatable; values are
    /// TOML, bare words are strings).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// More log output.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// Read upstream shards without checking them against their manifest's checksums
    /// (checked by default).
    #[arg(long, overrides_with = "verify_inputs")]
    pub no_verify_inputs: bool,
    /// Check upstream shards against their manifest's checksums as they are read (the
    /// default).
    #[arg(long, overrides_with = "no_verify_inputs")]
    pub verify_inputs: bool,
    /// Check the config file and flags against the stage's settings, then exit: nothing
    /// is read or written (`gradus run` checks every stage so before it starts one).
    #[arg(long)]
    pub check_config: bool,
}

impl StageArgs {
    /// The open mode the flags ask for.
    pub fn mode(&self) -> OpenMode {
        if self.overwrite {
            OpenMode::Overwrite
        } else {
            OpenMode::Resume
        }
    }

    /// The output folder, or an error naming the flag.
    pub fn output(&self) -> anyhow::Result<&Path> {
        self.output
            .as_deref()
            .context("no output: pass --output DIR")
    }

    /// The one `--input` of a stage that reads one upstream (`what` names it in the
    /// error), or `None` without one; the upstream is passed this way by pipelines.
    pub fn single_input(&self, what: &str) -> anyhow::Result<Option<PathBuf>> {
        match self.input.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(PathBuf::from(one))),
            many => bail!("--input: this stage reads one {what}, not {}", many.len()),
        }
    }

    /// `--input NAME=DIR` pairs, for a stage that reads one upstream per named part.
    pub fn named_inputs(&self) -> anyhow::Result<Vec<(String, PathBuf)>> {
        self.input
            .iter()
            .map(|item| match item.split_once('=') {
                Some((name, dir)) if !name.is_empty() => Ok((name.to_string(), dir.into())),
                _ => bail!("--input {item:?}: expected NAME=DIR"),
            })
            .collect()
    }

    /// The Prometheus address, if one was asked for.
    pub fn metrics_addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        self.metrics_addr.as_deref().map(parse_addr).transpose()
    }

    /// Opens the output folder of a training stage's run for `spec` (see
    /// [`StageRun::open`]). Call after every check of the inputs.
    pub fn open_run<T: Serialize>(&self, spec: RunSpec, config: &T) -> anyhow::Result<StageRun> {
        let (output, prometheus) = (self.output()?, self.metrics_addr()?);
        Ok(StageRun::open(
            output,
            &self.input,
            prometheus,
            spec,
            config,
        )?)
    }

    /// Claims `output` for `stage` before anything is written there, its config written
    /// at once into a new folder ([`gradus_record::claim_output_with_config`]).
    pub fn claim_output<T: Serialize>(
        &self,
        output: &Path,
        stage: &str,
        config: &T,
    ) -> anyhow::Result<()> {
        let (overwrite, inputs) = (self.overwrite, &self.input);
        gradus_record::claim_output_with_config(output, stage, overwrite, inputs, config)?;
        Ok(())
    }

    /// Writes the resolved `config` of `stage` as `config.toml` in `output`, its header
    /// naming this run's inputs.
    pub fn write_config<T: Serialize>(
        &self,
        output: &Path,
        stage: &str,
        config: &T,
    ) -> anyhow::Result<()> {
        Ok(gradus_record::write_resolved_config(
            output,
            stage,
            &self.input,
            config,
        )?)
    }

    /// Reads the stage config: the file (if any), then `--seed`, then `--set` overrides,
    /// checked against the config type (unknown keys are errors when the type says so).
    pub fn resolve_config<T: DeserializeOwned>(&self) -> anyhow::Result<T> {
        self.resolve_config_checked(|_| Ok(()))
    }

    /// [`Self::resolve_config`], then `check` on the config: for refusals deserializing
    /// cannot make, so that `--check-config` makes them too.
    pub fn resolve_config_checked<T: DeserializeOwned>(
        &self,
        check: impl FnOnce(&T) -> anyhow::Result<()>,
    ) -> anyhow::Result<T> {
        let mut table = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("config {}", path.display()))?;
                toml::from_str::<toml::Table>(&text)
                    .with_context(|| format!("config {}", path.display()))?
            }
            None => toml::Table::new(),
        };
        if let Some(seed) = self.seed {
            table.insert("seed".into(), toml::Value::Integer(seed as i64));
        }
        for item in &self.overrides {
            apply_override(&mut table, item)?;
        }
        let what = self
            .config
            .as_ref()
            .map_or_else(|| "flags".to_string(), |p| p.display().to_string());
        refuse_renamed(&table, "").with_context(|| format!("config from {what}"))?;
        let config = toml::Value::Table(table)
            .try_into()
            .with_context(|| format!("config from {what}"))?;
        check(&config).with_context(|| format!("config from {what}"))?;
        if self.check_config {
            // Every stage reads its config here before anything else, so the check ends
            // here, through `exit_with`, whichever stage it is.
            return Err(ConfigChecked.into());
        }
        Ok(config)
    }

    /// Worker threads: `--threads`, or every available core.
    pub fn threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }

    /// Applies the flags that hold for the whole process: whether shards are verified as
    /// they are read, and the thread plan ([`thread_plan`]) for `threads()` with the
    /// rayon pool sized to it. Call once, first thing, before any parallel work.
    pub fn apply(&self) -> anyhow::Result<()> {
        gradus_shard::verify_checksums_by_default(!self.no_verify_inputs);
        thread_plan(self.threads());
        rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads())
            .build_global()
            .context("setting up the worker threads")
    }
}

/// Runs a training or evaluation stage as every such binary does: logging at the level
/// `args` asks for, the process-wide flags applied ([`StageArgs::apply`]), then `stage`
/// on a worker of the thread pool ([`on_worker`]).
pub fn run_stage<C: Send>(
    args: &StageArgs,
    cli: C,
    stage: impl FnOnce(C) -> anyhow::Result<()> + Send,
) -> anyhow::Result<()> {
    gradus_telemetry::init_tracing(args.verbose);
    args.apply()?;
    on_worker(move || stage(cli))
}

/// Runs `work` on one of the thread pool's workers and waits for it; the training stages
/// run their whole loop there. A parallel op called from a worker shares its work with
/// the other workers and carries on; one called from outside the pool puts the caller
/// to sleep until the pool is done, two context switches per op. Meanwhile the other
/// workers stay awake between ops ([`crate::workers`]), so no op waits for a sleeping
/// thread to be woken. Call after [`StageArgs::apply`].
pub fn on_worker<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| {
        let _awake = crate::workers::keep_awake();
        work()
    })
}

/// One pool for all parallel work: gradus's loops, its fused kernels and candle's matrix
/// multiplies run on rayon's global pool of `threads` workers (candle sizes its gemm
/// split from `RAYON_NUM_THREADS`, which is set to match), while candle's own spinning
/// pool for element-wise ops gets no extra workers (`CANDLE_NUM_THREADS=1`, unless
/// already set): two pools that each take every core fight over them, and on the CPU
/// the heavy element-wise work runs in the fused kernels on rayon anyway. The allocator
/// is told to keep freed memory at the same time ([`crate::keep_freed_memory`]).
#[allow(unsafe_code)]
pub fn thread_plan(threads: usize) {
    crate::keep_freed_memory();
    let plan = [
        ("RAYON_NUM_THREADS", Some(threads.to_string())),
        (
            "CANDLE_NUM_THREADS",
            std::env::var_os("CANDLE_NUM_THREADS")
                .is_none()
                .then(|| "1".to_string()),
        ),
    ];
    for (key, value) in plan {
        if let Some(value) = value {
            // SAFETY: called at start-up, before the process starts any thread (the rayon
            // pool is built just after), so nothing reads the environment concurrently.
            unsafe { std::env::set_var(key, value) };
        }
    }
}

fn parse_addr(text: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    text.parse()
        .with_context(|| format!("--metrics-addr {text:?}: expected HOST:PORT or PORT"))
}

/// Settings that an earlier version named otherwise, with the name each has now: every
/// stage uses one name for one concept (a length is `seq_len`, warmup is counted in
/// `warmup_steps` or `warmup_ratio`, held-out data is `validation_*`).
const RENAMED: &[(&str, &str)] = &[
    ("max_len", "seq_len"),
    ("warmup", "warmup_steps"),
    ("holdout_tail", "validation_fraction"),
    ("holdout", "validation_fraction"),
    ("dev_split", "validation_split"),
    ("dev_examples", "validation_examples"),
];

/// Refuses a renamed setting anywhere in `table` (under `path`), naming its new name.
fn refuse_renamed(table: &toml::Table, path: &str) -> anyhow::Result<()> {
    for (key, value) in table {
        let here = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        if let Some((_, new)) = RENAMED.iter().find(|(old, _)| old == key) {
            let renamed = here.strip_suffix(key.as_str()).unwrap_or("").to_string() + new;
            bail!("setting `{here}` is now called `{renamed}`");
        }
        match value {
            toml::Value::Table(inner) => refuse_renamed(inner, &here)?,
            toml::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let toml::Value::Table(inner) = item {
                        refuse_renamed(inner, &format!("{here}.{i}"))?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Applies one `key=value` override; dotted keys reach into nested tables, and a number
/// picks an element of an array of tables (`tasks.0.examples`).
fn apply_override(table: &mut toml::Table, item: &str) -> anyhow::Result<()> {
    let Some((key, raw)) = item.split_once('=') else {
        bail!("--set {item:?}: expected KEY=VALUE");
    };
    let value = parse_value(raw.trim());
    let mut parts: Vec<&str> = key.trim().split('.').collect();
    let last = parts.pop().filter(|k| !k.is_empty());
    let Some(last) = last else {
        bail!("--set {item:?}: empty key");
    };
    let mut here = table;
    let mut parts = parts.into_iter();
    while let Some(part) = parts.next() {
        let next = here
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        here = match next {
            toml::Value::Table(t) => t,
            toml::Value::Array(items) => {
                let len = items.len();
                let i = parts
                    .next()
                    .and_then(|p| p.parse::<usize>().ok())
                    .filter(|&i| i < len)
                    .with_context(|| {
                        format!("--set {item:?}: `{part}` is an array of {len}; follow it with an index below {len}")
                    })?;
                items[i]
                    .as_table_mut()
                    .with_context(|| format!("--set {item:?}: `{part}.{i}` is not a table"))?
            }
            _ => bail!("--set {item:?}: `{part}` is not a table"),
        };
    }
    here.insert(last.to_string(), value);
    Ok(())
}

/// A TOML literal (`20`, `0.5`, `true`, `["a", "b"]`, `"x"`), or else the bare text.
fn parse_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// The progress bar of a training run of `train.steps` steps.
pub fn step_progress(name: &str, train: &TrainConfig) -> gradus_telemetry::Progress {
    gradus_telemetry::Progress::new(name, Some(train.steps), "steps")
}

/// Writes what a stage printed at the end as `summary.txt` in `output`, so that a
/// pipeline can show it again without rerunning the stage.
pub fn write_summary(output: &Path, text: &str) -> anyhow::Result<()> {
    let path = output.join("summary.txt");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// What `--check-config` ends a stage with once its config has been read: not a failure.
#[derive(Debug)]
pub struct ConfigChecked;

impl std::fmt::Display for ConfigChecked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the config is valid")
    }
}

impl std::error::Error for ConfigChecked {}

/// Refuses `dir` unless it is a model folder (`config.json`), in one line that says
/// where the models of a run folder are.
pub fn require_model_folder(dir: &Path) -> anyhow::Result<()> {
    if dir.join("config.json").is_file() {
        return Ok(());
    }
    match gradus_record::RunRecord::read(dir)? {
        Some(record) => {
            let kept = match record.kind {
                gradus_record::RunKind::Multitask => "one of its task models under `tasks/`",
                _ => "its `model` folder",
            };
            bail!(
                "{} is a {} run, not a model folder: name {kept}",
                dir.display(),
                record.kind
            )
        }
        None => bail!("{}: not a model folder (no config.json)", dir.display()),
    }
}

/// Runs `work` to its end on a multi-threaded tokio runtime: the binaries that drive
/// DataFusion or Ballista are synchronous around one async call.
pub fn block_on<T, E>(work: impl std::future::Future<Output = Result<T, E>>) -> anyhow::Result<T>
where
    E: Into<anyhow::Error>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(work).map_err(Into::into)
}

/// Runs a binary's body and turns an error into one line on stderr and exit code 1;
/// the end of a `--check-config` run exits 0.
pub fn exit_with(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is::<ConfigChecked>() => ExitCode::SUCCESS,
        Err(err) => {
            let line = format!("error: {}", one_line(&err));
            #[allow(clippy::print_stderr)]
            {
                eprintln!("{line}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once: an error that prints its
/// source and also returns it as its cause would otherwise show it twice.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ").trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_line_names_each_cause_once() {
        let io = std::io::Error::other("No space left on device");
        let err = anyhow::Error::new(gradus_shard::ShardError::Io {
            path: "out/part-00000.parquet".into(),
            source: io,
        })
        .context("writing the shard");
        let line = one_line(&err);
        assert_eq!(line.matches("No space left").count(), 1, "{line}");
        assert!(
            line.starts_with("writing the shard: out/part-00000.parquet"),
            "{line}"
        );
    }

    #[test]
    fn on_worker_runs_the_work_on_a_pool_thread() {
        assert_eq!(
            rayon::current_thread_index(),
            None,
            "tests run outside the pool"
        );
        assert!(on_worker(rayon::current_thread_index).is_some());
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        seed: u64,
        name: String,
        filters: Filters,
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Filters {
        min_words: u32,
        langs: Vec<String>,
    }

    #[test]
    fn flags_override_the_file() {
        let (_dir, path) = gradus_testkit::temp_file(
            "c.toml",
            "seed = 1\nname = \"a\"\n[filters]\nmin_words = 5\nlangs = [\"en\"]\n",
        );
        let args = StageArgs {
            config: Some(path),
            seed: Some(7),
            overrides: vec!["filters.min_words=20".into(), "name=bare words".into()],
            ..StageArgs::default()
        };
        let cfg: Cfg = args.resolve_config().unwrap();
        assert_eq!(cfg.seed, 7);
        assert_eq!(cfg.name, "bare words");
        assert_eq!(cfg.filters.min_words, 20);
        assert_eq!(cfg.filters.langs, vec!["en".to_string()]);
    }

    #[test]
    fn unknown_keys_are_named() {
        let args = StageArgs {
            overrides: vec![
                "seed=1".into(),
                "name=x".into(),
                "filters.min_wrds=2".into(),
            ],
            ..StageArgs::default()
        };
        let err = format!("{:#}", args.resolve_config::<Cfg>().unwrap_err());
        assert!(err.contains("min_wrds"), "{err}");
    }

    #[test]
    fn a_renamed_setting_is_refused_naming_its_new_name() {
        let args = StageArgs {
            overrides: vec!["seed=1".into(), "name=x".into(), "max_len=64".into()],
            ..StageArgs::default()
        };
        let err = format!("{:#}", args.resolve_config::<Cfg>().unwrap_err());
        assert!(
            err.contains("setting `max_len` is now called `seq_len`"),
            "{err}"
        );
        let nested: toml::Table =
            toml::from_str("[[tasks]]\nname = \"a\"\n[[tasks]]\nmax_len = 8\n").unwrap();
        let err = refuse_renamed(&nested, "").unwrap_err().to_string();
        assert!(
            err.contains("`tasks.1.max_len` is now called `tasks.1.seq_len`"),
            "{err}"
        );
        for (old, new) in [
            ("train.schedule.warmup=10", "`train.schedule.warmup_steps`"),
            ("data.holdout_tail=0.1", "`data.validation_fraction`"),
            ("holdout.fraction=0.2", "`validation_fraction`"),
            ("dev_split=dev", "`validation_split`"),
        ] {
            let args = StageArgs {
                overrides: vec![old.into()],
                ..StageArgs::default()
            };
            let err = format!("{:#}", args.resolve_config::<Cfg>().unwrap_err());
            assert!(
                err.contains(&format!("is now called {new}")),
                "{old}: {err}"
            );
        }
    }

    #[test]
    fn an_index_reaches_into_an_array_of_tables() {
        let mut t: toml::Table =
            toml::from_str("[[tasks]]\nname = \"a\"\n[[tasks]]\nname = \"b\"\n").unwrap();
        apply_override(&mut t, "tasks.1.examples=runs/x").unwrap();
        assert_eq!(t["tasks"][1]["examples"].as_str(), Some("runs/x"));
        assert!(t["tasks"][0].get("examples").is_none());
        let err = apply_override(&mut t, "tasks.2.examples=y")
            .unwrap_err()
            .to_string();
        assert!(err.contains("an array of 2"), "{err}");
        assert!(apply_override(&mut t, "tasks.examples=y").is_err());
    }

    #[test]
    fn bare_port_binds_loopback() {
        assert_eq!(parse_addr("9184").unwrap().to_string(), "127.0.0.1:9184");
        assert!(parse_addr("nonsense").is_err());
    }
}
