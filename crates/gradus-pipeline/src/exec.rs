//! Running a plan: each stage a child process with its own log, started as soon as its
//! upstreams are finished — or, for a stage that follows its input, as soon as the
//! upstream has committed a shard. Ctrl-C stops the children; a rerun resumes them.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gradus_shard::{FolderLock, LockError};
use gradus_telemetry::StatusLine;

use crate::error::{PipelineError, Result};
use crate::plan::{Plan, Stage};
use crate::stamp::{
    Action, Stamp, StampStatus, committed_shards, decide, input_digests, output_digest,
};
use crate::summary::{Outcome, RunReport, StageReport};

/// How to run a plan.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Stages to run even if up to date.
    pub force: Vec<String>,
    /// Run this stage and everything downstream of it even if up to date.
    pub from: Option<String>,
    /// Stages at once at most (default: the pipeline's `jobs`, else all that are ready).
    pub jobs: Option<usize>,
    /// Where the stage binaries are (default: beside the running executable, else PATH).
    pub bin_dir: Option<PathBuf>,
}

const TICK: Duration = Duration::from_millis(200);
/// How long stopped children get to exit by themselves (a terminal's Ctrl-C reaches them
/// too) before they are killed; every stage resumes after a kill, so this is short.
const GRACE: Duration = Duration::from_secs(2);

fn forced(plan: &Plan, opts: &RunOptions) -> Result<Vec<bool>> {
    let mut forced = vec![false; plan.stages.len()];
    for name in &opts.force {
        forced[plan.find(name)?] = true;
    }
    if let Some(from) = &opts.from {
        for i in plan.downstream(plan.find(from)?) {
            forced[i] = true;
        }
    }
    Ok(forced)
}

/// Where the stage binaries are: `opts.bin_dir`, else beside the running executable.
fn bin_dir(opts: &RunOptions) -> Option<PathBuf> {
    opts.bin_dir.clone().or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
    })
}

/// The stage binary `name` in `bin_dir` when it is there, else `name` on the PATH.
fn program(bin_dir: Option<&Path>, name: &str) -> PathBuf {
    bin_dir
        .map(|d| d.join(name))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Checks every stage's config and flags with its own binary (`--check-config`, which
/// reads and writes nothing), all at once, so that a mistyped key or value stops the run
/// before any stage starts and before any earlier output is replaced. The first stage
/// in the plan's order that refuses is named.
pub fn check_configs(plan: &Plan, opts: &RunOptions) -> Result<()> {
    let bin_dir = bin_dir(opts);
    let mut children = Vec::new();
    for stage in &plan.stages {
        let mut command = command_line(stage, true);
        command.push("--check-config".into());
        let child = Command::new(program(bin_dir.as_deref(), &command[0]))
            .args(&command[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                PipelineError::stage(&stage.name, format!("starting {}: {e}", command[0]))
            })?;
        children.push(child);
    }
    let mut refused = None;
    for (stage, child) in plan.stages.iter().zip(children) {
        let out = child
            .wait_with_output()
            .map_err(|e| PipelineError::stage(&stage.name, e))?;
        if !out.status.success() && refused.is_none() {
            let err = String::from_utf8_lossy(&out.stderr);
            let line = err
                .lines()
                .last()
                .unwrap_or("")
                .trim_start_matches("error: ")
                .trim_end();
            refused = Some(PipelineError::stage(
                &stage.name,
                format!("{line}; no stage was started"),
            ));
        }
    }
    refused.map_or(Ok(()), Err)
}

/// What would run and why, without running anything, once every stage's config is
/// checked ([`check_configs`]). A stage below one that would run is assumed to run too.
pub fn dry_run(plan: &Plan, opts: &RunOptions) -> Result<RunReport> {
    check_configs(plan, opts)?;
    let forced = forced(plan, opts)?;
    let mut runs = vec![false; plan.stages.len()];
    let mut stages = Vec::new();
    for (i, stage) in plan.stages.iter().enumerate() {
        let changing = stage
            .deps
            .iter()
            .find(|&&d| runs[d])
            .map(|&d| plan.stages[d].name.as_str());
        let (outcome, reason) = match decide(plan, stage, forced[i], changing) {
            Action::Skip => (Outcome::WouldSkip, "up to date".to_string()),
            Action::Run { resume, reason } => {
                runs[i] = true;
                let how = if resume { "resume" } else { "run" };
                (Outcome::WouldRun, format!("{how}: {reason}"))
            }
        };
        stages.push(StageReport::new(plan, stage, outcome, reason));
    }
    Ok(RunReport::new(plan, stages, 0.0))
}

/// The program and arguments that run `stage` (`resume`: continue its output).
pub fn command_line(stage: &Stage, resume: bool) -> Vec<String> {
    let (program, sub) = stage.kind.program();
    let mut command = vec![program.to_string()];
    command.extend(sub.map(str::to_string));
    command.extend(stage.args.iter().cloned());
    command.extend(["--output".to_string(), stage.output.display().to_string()]);
    if !resume {
        command.push("--overwrite".into());
    }
    command
}

enum State {
    Pending,
    Running(Box<Running>),
    Finished(StageReport),
}

struct Running {
    child: Child,
    started: Instant,
    line: StatusLine,
    reason: String,
}

/// Runs the plan; the report is also written to `RUN_DIR/pipeline.json` and
/// `RUN_DIR/summary.txt`. A failed stage stops new starts, lets independent running
/// stages finish, and returns its error after the report is written.
pub async fn run(plan: &Plan, opts: &RunOptions) -> Result<RunReport> {
    let forced = forced(plan, opts)?;
    check_configs(plan, opts)?;
    let _lock = lock_run_dir(plan)?;
    // An earlier output left aside by a run killed after its stage was done.
    for stage in &plan.stages {
        if Stamp::read(plan, stage).is_some_and(|s| s.status == StampStatus::Done) {
            drop_previous(plan, stage)?;
        }
    }
    let started = Instant::now();
    let logs = plan.run_dir.join(crate::plan::LOGS);
    std::fs::create_dir_all(&logs).map_err(|e| PipelineError::file(&logs, e))?;
    let bin_dir = bin_dir(opts);
    let jobs = opts.jobs.or(plan.jobs).unwrap_or(usize::MAX).max(1);
    let mut events = Events::open(&plan.run_dir.join(crate::plan::EVENTS))?;
    let mut states: Vec<State> = plan.stages.iter().map(|_| State::Pending).collect();
    let mut failure: Option<PipelineError> = None;
    let mut interrupted = false;
    let signal = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&signal);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, Ordering::SeqCst);
        }
    });
    loop {
        reap(plan, &mut states, &mut failure, &mut events)?;
        if failure.is_none() && !interrupted {
            start_ready(
                plan,
                &mut states,
                &forced,
                jobs,
                bin_dir.as_deref(),
                &mut events,
            )?;
        } else {
            give_up_pending(plan, &mut states, interrupted);
        }
        if states.iter().all(|s| matches!(s, State::Finished(_))) {
            break;
        }
        show_progress(plan, &states);
        tokio::time::sleep(TICK).await;
        if !interrupted && signal.load(Ordering::SeqCst) {
            interrupted = true;
            tracing::warn!("interrupted: stopping the running stages");
            stop_all(plan, &mut states, &mut events)?;
        }
    }
    let report = RunReport::new(
        plan,
        states
            .into_iter()
            .filter_map(|s| match s {
                State::Finished(r) => Some(r),
                _ => None,
            })
            .collect(),
        started.elapsed().as_secs_f64(),
    );
    report.write(&plan.run_dir)?;
    if interrupted {
        return Err(PipelineError::Interrupted);
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// Collects finished children: records success, or the first failure (stopping the
/// stages that follow the failed one, whose input will never be sealed).
fn reap(
    plan: &Plan,
    states: &mut [State],
    failure: &mut Option<PipelineError>,
    events: &mut Events,
) -> Result<()> {
    for i in 0..states.len() {
        let State::Running(run) = &mut states[i] else {
            continue;
        };
        let Some(status) = run.child.try_wait().map_err(|e| {
            PipelineError::stage(
                &plan.stages[i].name,
                format!("waiting for the process: {e}"),
            )
        })?
        else {
            continue;
        };
        let stage = &plan.stages[i];
        let seconds = run.started.elapsed().as_secs_f64();
        let log = plan.log_path(stage);
        let digest = output_digest(stage.kind, &stage.output);
        let report = if status.success() && digest.is_some() {
            finish_stamp(plan, stage, digest, seconds)?;
            drop_previous(plan, stage)?;
            let mut r = StageReport::new(plan, stage, Outcome::Done, run.reason.clone());
            r.seconds = seconds;
            run.line.finish(format!(
                "done in {seconds:.1}s  {}",
                r.figure.as_deref().unwrap_or("")
            ));
            tracing::info!("{}: done in {seconds:.1}s", stage.name);
            events.write(&stage.name, "done", seconds, None)?;
            r
        } else {
            let last = last_line(&log);
            let status_text = if status.success() {
                "exited without a complete output".to_string()
            } else {
                status.to_string()
            };
            run.line.finish(format!("failed: {last}"));
            events.write(&stage.name, "failed", seconds, Some(&last))?;
            if failure.is_none() {
                let previous = plan.previous_path(stage);
                *failure = Some(PipelineError::Failed {
                    stage: stage.name.clone(),
                    status: status_text,
                    last_line: last,
                    log: log.clone(),
                    previous: previous.exists().then_some(previous),
                });
            }
            let mut r = StageReport::new(plan, stage, Outcome::Failed, run.reason.clone());
            r.seconds = seconds;
            r
        };
        states[i] = State::Finished(report);
        if failure.is_some() {
            stop_followers(plan, states, i, events)?;
        }
    }
    Ok(())
}

fn finish_stamp(plan: &Plan, stage: &Stage, output: Option<String>, seconds: f64) -> Result<()> {
    let mut stamp = Stamp::read(plan, stage).unwrap_or_else(|| new_stamp(stage, Vec::new()));
    stamp.status = StampStatus::Done;
    stamp.inputs = input_digests(plan, stage)
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
    stamp.output = output;
    stamp.seconds = Some(seconds);
    stamp.write(plan, stage)
}

fn new_stamp(stage: &Stage, command: Vec<String>) -> Stamp {
    Stamp {
        stage: stage.name.clone(),
        kind: stage.kind,
        status: StampStatus::Running,
        lineage: stage.lineage.clone(),
        config_hash: stage.config_hash.clone(),
        inputs: Default::default(),
        output: None,
        seconds: None,
        command,
    }
}

/// Whether stage `i` may start now: every upstream finished well, or — for the upstream
/// it follows — running with a committed shard. `Err` when an upstream failed.
fn readiness(plan: &Plan, states: &[State], i: usize) -> std::result::Result<bool, String> {
    let stage = &plan.stages[i];
    let mut ready = true;
    for &d in &stage.deps {
        match &states[d] {
            State::Finished(r) if matches!(r.status, Outcome::Done | Outcome::Skipped) => {}
            State::Finished(_) => return Err(plan.stages[d].name.clone()),
            State::Running(_) if stage.follows == Some(d) => {
                ready &= committed_shards(&plan.stages[d].output) >= stage.start_after_shards;
            }
            _ => ready = false,
        }
    }
    Ok(ready)
}

fn start_ready(
    plan: &Plan,
    states: &mut [State],
    forced: &[bool],
    jobs: usize,
    bin_dir: Option<&Path>,
    events: &mut Events,
) -> Result<()> {
    for i in 0..states.len() {
        if !matches!(states[i], State::Pending) {
            continue;
        }
        let stage = &plan.stages[i];
        match readiness(plan, states, i) {
            Err(up) => {
                let reason = format!("upstream `{up}` did not finish");
                states[i] = State::Finished(StageReport::new(plan, stage, Outcome::NotRun, reason));
                continue;
            }
            Ok(false) => continue,
            Ok(true) => {}
        }
        let changing = stage
            .follows
            .filter(|&d| matches!(states[d], State::Running(_)));
        let changing = changing.map(|d| plan.stages[d].name.as_str());
        match decide(plan, stage, forced[i], changing) {
            Action::Skip => {
                let line = StatusLine::new(&stage.name, "");
                let r = StageReport::new(plan, stage, Outcome::Skipped, "up to date".into());
                line.finish(format!("up to date  {}", r.figure.as_deref().unwrap_or("")));
                tracing::info!("{}: up to date, skipped", stage.name);
                events.write(&stage.name, "skipped", 0.0, None)?;
                states[i] = State::Finished(r);
            }
            Action::Run { resume, reason } => {
                let running = states
                    .iter()
                    .filter(|s| matches!(s, State::Running(_)))
                    .count();
                if running >= jobs {
                    continue;
                }
                let run = spawn(plan, stage, resume, &reason, bin_dir)?;
                tracing::info!("{}: started ({reason})", stage.name);
                events.write(&stage.name, "started", 0.0, Some(&reason))?;
                states[i] = State::Running(Box::new(run));
            }
        }
    }
    Ok(())
}

/// One runner per run folder: a second would move or resume the stages the first is
/// running. The lock is on `RUN_DIR/.gradus`, the runner's own folder, and goes with the
/// process however it ends.
fn lock_run_dir(plan: &Plan) -> Result<FolderLock> {
    let dir = plan.run_dir.join(".gradus");
    std::fs::create_dir_all(&dir).map_err(|e| PipelineError::file(&dir, e))?;
    FolderLock::take(&dir).map_err(|e| match e {
        LockError::Held { holder, .. } => PipelineError::file(
            &plan.run_dir,
            format!(
                "another `gradus run`{} is running in this folder; wait for it or choose \
                 another run folder",
                holder.map_or(String::new(), |p| format!(" (PID {p})"))
            ),
        ),
        e => PipelineError::file(&dir, e),
    })
}

/// Moves a stage's earlier output out of the way before the stage runs again, so that a
/// stage following this one can never read the earlier manifest, yet a run that fails
/// (a setting its inputs refuse, say) loses nothing: the earlier output waits in
/// [`Plan::previous_path`] until the new one is done.
fn set_aside(plan: &Plan, stage: &Stage) -> Result<()> {
    let previous = plan.previous_path(stage);
    if previous.exists() {
        std::fs::remove_dir_all(&previous).map_err(|e| PipelineError::file(&previous, e))?;
    }
    if let Some(parent) = previous.parent() {
        std::fs::create_dir_all(parent).map_err(|e| PipelineError::file(parent, e))?;
    }
    std::fs::rename(&stage.output, &previous).map_err(|e| PipelineError::file(&stage.output, e))
}

/// Deletes what [`set_aside`] kept, once the stage's new output is done.
fn drop_previous(plan: &Plan, stage: &Stage) -> Result<()> {
    let previous = plan.previous_path(stage);
    match std::fs::remove_dir_all(&previous) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(PipelineError::file(&previous, e))
        }
        _ => Ok(()),
    }
}

fn spawn(
    plan: &Plan,
    stage: &Stage,
    resume: bool,
    reason: &str,
    bin_dir: Option<&Path>,
) -> Result<Running> {
    let command = command_line(stage, resume);
    let program_path = program(bin_dir, &command[0]);
    let args = &command[1..];
    if !resume && stage.output.exists() {
        set_aside(plan, stage)?;
    }
    new_stamp(stage, command.clone()).write(plan, stage)?;
    let log_path = plan.log_path(stage);
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(resume)
        .write(true)
        .truncate(!resume)
        .open(&log_path)
        .map_err(|e| PipelineError::file(&log_path, e))?;
    writeln!(log, "$ {}", command.join(" ")).map_err(|e| PipelineError::file(&log_path, e))?;
    let err_log = log
        .try_clone()
        .map_err(|e| PipelineError::file(&log_path, e))?;
    let mut cmd = Command::new(&program_path);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err_log));
    if std::env::var_os("GRADUS_PROGRESS_SECS").is_none() {
        // Progress lines in the log often enough for the pipeline view to show them.
        cmd.env("GRADUS_PROGRESS_SECS", "2");
    }
    let child = cmd.spawn().map_err(|e| {
        PipelineError::stage(
            &stage.name,
            format!("starting {}: {e}", program_path.display()),
        )
    })?;
    Ok(Running {
        child,
        started: Instant::now(),
        line: StatusLine::new(&stage.name, "starting"),
        reason: reason.to_string(),
    })
}

/// After a failure or an interruption, stages not started will not start.
fn give_up_pending(plan: &Plan, states: &mut [State], interrupted: bool) {
    for (i, s) in states.iter_mut().enumerate() {
        if matches!(s, State::Pending) {
            let reason = if interrupted {
                "interrupted"
            } else {
                "an earlier stage failed"
            };
            *s = State::Finished(StageReport::new(
                plan,
                &plan.stages[i],
                Outcome::NotRun,
                reason.into(),
            ));
        }
    }
}

/// Stops the running stages that follow stage `failed`.
fn stop_followers(
    plan: &Plan,
    states: &mut [State],
    failed: usize,
    events: &mut Events,
) -> Result<()> {
    for i in 0..states.len() {
        if plan.stages[i].follows == Some(failed) && matches!(states[i], State::Running(_)) {
            stop(plan, states, i, events)?;
        }
    }
    Ok(())
}

fn stop_all(plan: &Plan, states: &mut [State], events: &mut Events) -> Result<()> {
    for i in 0..states.len() {
        if matches!(states[i], State::Running(_)) {
            stop(plan, states, i, events)?;
        }
    }
    Ok(())
}

/// Lets a child exit (a terminal's Ctrl-C reaches it too), then kills it. Its record
/// stays `running`, so the next run resumes it.
fn stop(plan: &Plan, states: &mut [State], i: usize, events: &mut Events) -> Result<()> {
    let State::Running(run) = &mut states[i] else {
        return Ok(());
    };
    let stage = &plan.stages[i];
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        if matches!(run.child.try_wait(), Ok(Some(_))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = run.child.kill();
    let _ = run.child.wait();
    let seconds = run.started.elapsed().as_secs_f64();
    run.line.finish("stopped");
    events.write(&stage.name, "stopped", seconds, None)?;
    let mut r = StageReport::new(plan, stage, Outcome::Interrupted, run.reason.clone());
    r.seconds = seconds;
    states[i] = State::Finished(r);
    Ok(())
}

fn show_progress(plan: &Plan, states: &[State]) {
    for (i, s) in states.iter().enumerate() {
        if let State::Running(run) = s {
            let last = last_line(&plan.log_path(&plan.stages[i]));
            run.line.set(format!(
                "{:>6.1}s  {}",
                run.started.elapsed().as_secs_f64(),
                last.chars().take(110).collect::<String>()
            ));
        }
    }
}

/// The last line a stage wrote to its log (read from its last 8 KiB); the command line
/// the runner wrote at the top does not count.
pub fn last_line(path: &Path) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(8192)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf)
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("$ "))
        .unwrap_or("")
        .to_string()
}

/// `RUN_DIR/pipeline.jsonl`: one record per stage event.
struct Events {
    file: std::fs::File,
    path: PathBuf,
}

impl Events {
    fn open(path: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| PipelineError::file(path, e))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    fn write(
        &mut self,
        stage: &str,
        event: &str,
        seconds: f64,
        detail: Option<&str>,
    ) -> Result<()> {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let record = serde_json::json!({
            "time": time, "stage": stage, "event": event, "seconds": seconds, "detail": detail,
        });
        writeln!(self.file, "{record}").map_err(|e| PipelineError::file(&self.path, e))
    }
}
