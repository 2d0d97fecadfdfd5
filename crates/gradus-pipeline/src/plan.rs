//! From the pipeline file to a plan: stages in dependency order, each with its command
//! line, the stages it waits for, and the hashes that decide whether it must run again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::Xxh3;

use crate::error::{PipelineError, Result};
use crate::spec::{PipelineFile, StageKind, StageSpec};

/// The folder of the stages' logs in the run folder.
pub const LOGS: &str = "logs";
/// The event log of the runner in the run folder.
pub const EVENTS: &str = "pipeline.jsonl";
/// The summary of the last run, as JSON and as the table printed.
pub const SUMMARY_JSON: &str = "pipeline.json";
pub const SUMMARY_TEXT: &str = "summary.txt";

/// What the runner writes beside the stages' folders: no stage may be named so.
const RUNNER_ENTRIES: &[&str] = &[LOGS, EVENTS, SUMMARY_JSON, SUMMARY_TEXT];

/// One stage, resolved.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    pub kind: StageKind,
    /// `RUN_DIR/<name>`.
    pub output: PathBuf,
    /// The command's arguments after the program (and subcommand), without the output
    /// and mode flags.
    pub args: Vec<String>,
    /// Indexes (in [`Plan::stages`]) of the stages this one reads or waits for.
    pub deps: Vec<usize>,
    /// The upstream whose shards this stage consumes while they are written.
    pub follows: Option<usize>,
    /// With `follows`: committed upstream shards needed before this stage starts.
    pub start_after_shards: usize,
    /// Hash of the kind, the arguments and the contents of every file the stage reads
    /// that is not another stage's output (config, watched files, external inputs).
    pub config_hash: String,
    /// Hash of `config_hash` and every upstream's lineage: equal lineages mean the same
    /// settings all the way up.
    pub lineage: String,
}

/// The pipeline, ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub file: PathBuf,
    pub run_dir: PathBuf,
    pub jobs: Option<usize>,
    /// In an order where every stage comes after its upstreams.
    pub stages: Vec<Stage>,
}

impl Plan {
    /// Reads and checks `file`; `run_dir` overrides the file's, and each `overrides`
    /// item (`STAGE.KEY=VALUE`) adds to that stage's `set`.
    pub fn load(file: &Path, run_dir: Option<&Path>, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(file).map_err(|e| PipelineError::file(file, e))?;
        let text = expand_env(&text, &|name| std::env::var(name).ok()).map_err(|message| {
            PipelineError::Pipeline {
                file: file.to_path_buf(),
                message,
            }
        })?;
        let mut parsed: PipelineFile =
            toml::from_str(&text).map_err(|e| PipelineError::Pipeline {
                file: file.to_path_buf(),
                message: e.to_string(),
            })?;
        for item in overrides {
            add_override(&mut parsed, item).map_err(|message| PipelineError::Pipeline {
                file: file.to_path_buf(),
                message,
            })?;
        }
        Self::from_file(parsed, file, run_dir)
    }

    /// Builds the plan of a parsed file.
    pub fn from_file(parsed: PipelineFile, file: &Path, run_dir: Option<&Path>) -> Result<Self> {
        let bad = |message: String| PipelineError::Pipeline {
            file: file.to_path_buf(),
            message,
        };
        let name = parsed.name.clone().unwrap_or_else(|| {
            file.file_stem()
                .map_or_else(|| "pipeline".into(), |s| s.to_string_lossy().into_owned())
        });
        let run_dir = run_dir
            .map(Path::to_path_buf)
            .or(parsed.run_dir.clone())
            .unwrap_or_else(|| Path::new("runs").join(&name));
        if parsed.stages.is_empty() {
            return Err(bad("no [[stage]] tables".into()));
        }
        let mut index = HashMap::new();
        for (i, s) in parsed.stages.iter().enumerate() {
            if s.name.is_empty()
                || s.name.contains(['/', '\\', '@', '='])
                || s.name.starts_with('.')
            {
                return Err(bad(format!(
                    "stage name {:?}: use letters, digits, `-` and `_`",
                    s.name
                )));
            }
            if RUNNER_ENTRIES.contains(&s.name.as_str()) {
                return Err(bad(format!(
                    "stage name `{}` is where the runner keeps its own files ({}); choose \
                     another",
                    s.name,
                    RUNNER_ENTRIES.join(", ")
                )));
            }
            if index.insert(s.name.clone(), i).is_some() {
                return Err(bad(format!("two stages are named `{}`", s.name)));
            }
        }
        let resolver = Resolver {
            index: &index,
            run_dir: &run_dir,
        };
        let stages: Vec<Stage> = parsed
            .stages
            .iter()
            .map(|s| resolver.stage(s, &parsed.stages))
            .collect::<Result<_>>()?;
        let order = topological(&stages).map_err(|cycle| {
            bad(format!(
                "stages depend on each other in a cycle: {}",
                cycle.join(" → ")
            ))
        })?;
        // Renumber the stages into dependency order.
        let position: HashMap<usize, usize> = order
            .iter()
            .enumerate()
            .map(|(new, &old)| (old, new))
            .collect();
        let mut ordered: Vec<Stage> = order.iter().map(|&i| stages[i].clone()).collect();
        for s in &mut ordered {
            s.deps = s.deps.iter().map(|d| position[d]).collect();
            s.follows = s.follows.map(|d| position[&d]);
        }
        for i in 0..ordered.len() {
            let mut h = Xxh3::new();
            h.update(ordered[i].config_hash.as_bytes());
            for &d in &ordered[i].deps {
                h.update(ordered[d].lineage.as_bytes());
            }
            ordered[i].lineage = format!("{:016x}", h.digest());
        }
        Ok(Self {
            name,
            file: file.to_path_buf(),
            run_dir,
            jobs: parsed.jobs,
            stages: ordered,
        })
    }

    /// The index of the stage called `name`.
    pub fn find(&self, name: &str) -> Result<usize> {
        self.stages
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| PipelineError::Pipeline {
                file: self.file.clone(),
                message: format!(
                    "no stage `{name}` (stages: {})",
                    self.stages
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }

    /// `from` and every stage downstream of it.
    pub fn downstream(&self, from: usize) -> Vec<usize> {
        let mut hit = vec![false; self.stages.len()];
        hit[from] = true;
        for i in from + 1..self.stages.len() {
            hit[i] = self.stages[i].deps.iter().any(|&d| hit[d]);
        }
        (0..self.stages.len()).filter(|&i| hit[i]).collect()
    }

    /// Where a stage's log goes.
    pub fn log_path(&self, stage: &Stage) -> PathBuf {
        self.run_dir.join(LOGS).join(format!("{}.log", stage.name))
    }

    /// Where a stage's earlier output waits while the stage runs again, until it
    /// finishes well (`RUN_DIR/.gradus/previous/<stage>`).
    pub fn previous_path(&self, stage: &Stage) -> PathBuf {
        self.run_dir
            .join(".gradus")
            .join("previous")
            .join(&stage.name)
    }
}

/// `STAGE.KEY=VALUE` into that stage's `set` (the value a TOML literal, or else text).
fn add_override(parsed: &mut PipelineFile, item: &str) -> std::result::Result<(), String> {
    let parts = item
        .split_once('=')
        .and_then(|(k, v)| Some((k.split_once('.')?, v)));
    let Some(((stage, key), raw)) = parts else {
        return Err(format!("--set {item:?}: expected STAGE.KEY=VALUE"));
    };
    let spec = parsed
        .stages
        .iter_mut()
        .find(|s| s.name == stage)
        .ok_or_else(|| format!("--set {item:?}: no stage `{stage}`"))?;
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    spec.set.insert(key.to_string(), value);
    Ok(())
}

/// Replaces `${NAME}` with the variable's value and `${NAME:-default}` with the value or,
/// when unset or empty, the (itself expanded) default — as a shell does.
pub fn expand_env(
    text: &str,
    var: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let body_start = start + 2;
        // The matching brace, allowing `${...}` inside a default.
        let mut depth = 1;
        let mut end = None;
        let bytes = rest.as_bytes();
        let mut i = body_start;
        while i < bytes.len() {
            // Bytes, not `str` slices: `i` may fall inside a multi-byte character.
            if bytes[i..].starts_with(b"${") {
                depth += 1;
                i += 2;
                continue;
            }
            if bytes[i] == b'}' {
                depth -= 1;
                if depth == 0 {
                    end = Some(i);
                    break;
                }
            }
            i += 1;
        }
        let end = end.ok_or_else(|| format!("`{}`: no closing brace", &rest[start..]))?;
        let body = &rest[body_start..end];
        let (name, default) = match body.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (body, None),
        };
        match (var(name).filter(|v| !v.is_empty()), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(&expand_env(d, var)?),
            (None, None) => return Err(format!("environment variable `{name}` is not set")),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Kahn's algorithm, keeping the file's order among stages that are ready together.
/// On a cycle, returns the names of the stages left.
fn topological(stages: &[Stage]) -> std::result::Result<Vec<usize>, Vec<String>> {
    let mut placed = vec![false; stages.len()];
    let mut order = Vec::with_capacity(stages.len());
    while order.len() < stages.len() {
        let next =
            (0..stages.len()).find(|&i| !placed[i] && stages[i].deps.iter().all(|&d| placed[d]));
        match next {
            Some(i) => {
                placed[i] = true;
                order.push(i);
            }
            None => {
                return Err((0..stages.len())
                    .filter(|&i| !placed[i])
                    .map(|i| stages[i].name.clone())
                    .collect());
            }
        }
    }
    Ok(order)
}

/// Turns `@stage` references into paths and records the dependencies they create.
struct Resolver<'a> {
    index: &'a HashMap<String, usize>,
    run_dir: &'a Path,
}

impl Resolver<'_> {
    /// `@name[/rest]` → `RUN_DIR/name[/rest]`; `KEY=@name` keeps its `KEY=`.
    fn text(&self, s: &str, stage: &str, deps: &mut Vec<usize>) -> Result<String> {
        if let Some((key, value)) = s.split_once('=')
            && value.starts_with('@')
        {
            return Ok(format!("{key}={}", self.text(value, stage, deps)?));
        }
        let Some(reference) = s.strip_prefix('@') else {
            return Ok(s.to_string());
        };
        let (name, rest) = reference.split_once('/').unwrap_or((reference, ""));
        let &i = self.index.get(name).ok_or_else(|| {
            PipelineError::stage(stage, format!("`{s}` refers to no stage called `{name}`"))
        })?;
        if !deps.contains(&i) {
            deps.push(i);
        }
        let mut path = self.run_dir.join(name);
        if !rest.is_empty() {
            path = path.join(rest);
        }
        Ok(path.display().to_string())
    }

    fn value(&self, v: &toml::Value, stage: &str, deps: &mut Vec<usize>) -> Result<toml::Value> {
        Ok(match v {
            toml::Value::String(s) => toml::Value::String(self.text(s, stage, deps)?),
            toml::Value::Array(a) => toml::Value::Array(
                a.iter()
                    .map(|x| self.value(x, stage, deps))
                    .collect::<Result<_>>()?,
            ),
            other => other.clone(),
        })
    }

    fn stage(&self, s: &StageSpec, all: &[StageSpec]) -> Result<Stage> {
        let mut deps = Vec::new();
        let mut args = Vec::new();
        let mut hashed: Vec<PathBuf> = Vec::new();
        if let Some(config) = &s.config {
            check_config_file(&s.name, config)?;
            args.extend(["--config".to_string(), config.display().to_string()]);
            hashed.push(config.clone());
        }
        let mut follows = None;
        for input in &s.input {
            let before = deps.len();
            let resolved = self.text(input, &s.name, &mut deps)?;
            if deps.len() == before {
                // An outside file: its contents count, not just its name.
                let path = input.split_once('=').map_or(input.as_str(), |(_, p)| p);
                hashed.push(PathBuf::from(path));
            } else if s.kind.can_follow() && all[deps[before]].kind.writes_shards() {
                follows = Some(deps[before]);
            }
            args.extend(["--input".to_string(), resolved]);
        }
        for (value, flag, what) in [
            (&s.tokenizer, s.kind.tokenizer_flag(), "tokenizer"),
            (&s.model, s.kind.model_flag(), "model"),
        ] {
            let Some(value) = value else { continue };
            let flag = flag.ok_or_else(|| {
                PipelineError::stage(&s.name, format!("a `{:?}` stage takes no `{what}`", s.kind))
            })?;
            let before = deps.len();
            let resolved = self.text(value, &s.name, &mut deps)?;
            if deps.len() == before {
                hashed.push(PathBuf::from(value));
            }
            args.extend([flag.to_string(), resolved]);
        }
        let mut sets = Vec::new();
        flatten(&s.set, "", &mut sets);
        if let Some((key, new)) = sets
            .iter()
            .find_map(|(key, _)| Some((key, s.kind.replaced_key(key)?)))
        {
            return Err(PipelineError::stage(
                &s.name,
                format!("`set` no longer passes `{key}`: write `{new}` in the stage"),
            ));
        }
        for (key, value) in sets {
            let value = self.value(&value, &s.name, &mut deps)?;
            args.extend(["--set".to_string(), format!("{key}={value}")]);
        }
        if s.follow == Some(true) && follows.is_none() {
            return Err(PipelineError::stage(
                &s.name,
                "`follow` needs an encode or pretrain stage whose input is another \
                 stage's dataset",
            ));
        }
        if s.follow == Some(false) {
            follows = None;
        }
        if follows.is_some() {
            match s.kind {
                StageKind::Pretrain => args.extend(["--set".into(), "data.follow=true".into()]),
                _ => args.push("--follow".into()),
            }
        }
        if let Some(t) = s.threads {
            args.extend(["--threads".to_string(), t.to_string()]);
        }
        if let Some(seed) = s.seed {
            args.extend(["--seed".to_string(), seed.to_string()]);
        }
        for after in &s.after {
            self.text(&format!("@{after}"), &s.name, &mut deps)?;
        }
        hashed.extend(s.watch.iter().cloned());
        let own = *self.index.get(&s.name).unwrap_or(&usize::MAX);
        if deps.contains(&own) {
            return Err(PipelineError::stage(&s.name, "refers to its own output"));
        }
        Ok(Stage {
            name: s.name.clone(),
            kind: s.kind,
            output: self.run_dir.join(&s.name),
            config_hash: config_hash(s.kind, &args, &hashed),
            args,
            deps,
            follows,
            start_after_shards: s.start_after_shards.unwrap_or(1).max(1),
            lineage: String::new(),
        })
    }
}

/// `a = { b = 1 }` → `("a.b", 1)`.
fn flatten(table: &toml::Table, prefix: &str, out: &mut Vec<(String, toml::Value)>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(t, &key, out),
            other => out.push((key, other.clone())),
        }
    }
}

/// Refuses a stage config that is not a file, saying where a relative path was looked
/// for: the folder `gradus run` runs in, not the pipeline file's.
fn check_config_file(stage: &str, config: &Path) -> Result<()> {
    if config.is_file() {
        return Ok(());
    }
    let from = match std::env::current_dir() {
        Ok(dir) if config.is_relative() => {
            format!(
                " (a relative path is read from the folder gradus runs in, {})",
                dir.display()
            )
        }
        _ => String::new(),
    };
    Err(PipelineError::stage(
        stage,
        format!("config {}: no such file{from}", config.display()),
    ))
}

fn config_hash(kind: StageKind, args: &[String], files: &[PathBuf]) -> String {
    let mut h = Xxh3::new();
    h.update(format!("{kind:?}").as_bytes());
    for a in args {
        h.update(a.as_bytes());
        h.update(&[0]);
    }
    for f in files {
        h.update(f.display().to_string().as_bytes());
        hash_path(&mut h, f);
    }
    format!("{:016x}", h.digest())
}

/// Feeds a file's bytes, or a folder's file names and bytes in name order, to `h`. A
/// missing path hashes as missing (the stage itself reports it), a pipe by its name only.
pub(crate) fn hash_path(h: &mut Xxh3, path: &Path) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        entries.sort();
        for e in entries {
            h.update(
                e.file_name()
                    .map(|n| n.as_encoded_bytes())
                    .unwrap_or_default(),
            );
            hash_path(h, &e);
        }
    } else if path.is_file() {
        match std::fs::read(path) {
            Ok(bytes) => h.update(&bytes),
            Err(_) => h.update(b"\0unreadable"),
        }
    } else if path.exists() {
        // A pipe or device: reading it here would consume it.
        h.update(b"\0stream");
    } else {
        h.update(b"\0missing");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Result<Plan> {
        let parsed: PipelineFile = toml::from_str(text).unwrap();
        Plan::from_file(parsed, Path::new("p.toml"), Some(Path::new("run")))
    }

    const CHAIN: &str = r#"
        [[stage]]
        name = "pretrain"
        kind = "pretrain"
        input = ["@tokens"]
        tokenizer = "@tok/tokenizer.json"
        set = { seed = 3 }

        [[stage]]
        name = "tokens"
        kind = "encode"
        input = ["@docs"]
        tokenizer = "@tok"

        [[stage]]
        name = "tok"
        kind = "tokenizer"
        input = ["@docs"]

        [[stage]]
        name = "docs"
        kind = "import"
        input = ["no-such-file.txt"]
    "#;

    #[test]
    fn references_become_paths_and_order_follows_them() {
        let p = plan(CHAIN).unwrap();
        let names: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["docs", "tok", "tokens", "pretrain"]);
        let tokens = &p.stages[2];
        assert_eq!(tokens.deps, vec![0, 1]);
        assert_eq!(tokens.follows, Some(0));
        assert_eq!(
            tokens.args,
            ["--input", "run/docs", "--tokenizer", "run/tok", "--follow"]
        );
        let pre = &p.stages[3];
        assert_eq!(pre.follows, Some(2));
        assert!(pre.args.contains(&"data.follow=true".to_string()));
        assert!(
            pre.args.windows(4).any(|w| w
                == [
                    "--input",
                    "run/tokens",
                    "--tokenizer",
                    "run/tok/tokenizer.json"
                ]),
            "{:?}",
            pre.args
        );
        assert!(pre.args.contains(&"seed=3".to_string()));
        assert_eq!(p.downstream(1), vec![1, 2, 3]);
    }

    #[test]
    fn lineage_changes_with_any_upstream_setting() {
        let a = plan(CHAIN).unwrap();
        let b =
            plan(&CHAIN.replace("kind = \"tokenizer\"", "kind = \"tokenizer\"\nseed = 1")).unwrap();
        let same = |i: usize| a.stages[i].lineage == b.stages[i].lineage;
        assert!(same(0), "docs did not change");
        assert!(
            !same(1) && !same(2) && !same(3),
            "tok and everything after it changed"
        );
        assert_eq!(a.stages[2].config_hash, b.stages[2].config_hash);
    }

    #[test]
    fn command_line_overrides_join_the_stage_set() {
        let mut parsed: PipelineFile = toml::from_str(CHAIN).unwrap();
        add_override(&mut parsed, "pretrain.train.steps=10").unwrap();
        add_override(&mut parsed, "tok.kind=bpe").unwrap();
        let p =
            Plan::from_file(parsed.clone(), Path::new("p.toml"), Some(Path::new("run"))).unwrap();
        assert!(p.stages[3].args.contains(&"train.steps=10".to_string()));
        assert!(p.stages[1].args.contains(&"kind=\"bpe\"".to_string()));
        assert!(
            add_override(&mut parsed, "nope.x=1")
                .unwrap_err()
                .contains("no stage `nope`")
        );
        assert!(add_override(&mut parsed, "pretrain=1").is_err());
    }

    #[test]
    fn environment_variables_expand_with_defaults() {
        let var = |n: &str| (n == "HOME").then(|| "/home/u".to_string());
        assert_eq!(
            expand_env("a ${HOME}/x ${CACHE:-${HOME}/.cache}/m", &var).unwrap(),
            "a /home/u/x /home/u/.cache/m"
        );
        assert!(expand_env("${NOPE}", &var).unwrap_err().contains("`NOPE`"));
        assert!(
            expand_env("${HOME", &var)
                .unwrap_err()
                .contains("closing brace")
        );
    }

    #[test]
    fn multi_byte_characters_inside_a_variable_are_text_not_a_panic() {
        // Found by the `pipeline` fuzz target: a `→` inside `${...}` panicked.
        let none = |_: &str| None;
        assert_eq!(expand_env("${A:-x → y}", &none).unwrap(), "x → y");
        assert_eq!(expand_env("a → ${B:-é}", &none).unwrap(), "a → é");
        assert!(
            expand_env("${→ no brace", &none)
                .unwrap_err()
                .contains("no closing brace")
        );
    }

    #[test]
    fn bad_pipelines_are_refused_with_the_reason() {
        let err = |t: &str| plan(t).unwrap_err().to_string();
        assert!(err("").contains("no [[stage]]"));
        let dup = "[[stage]]\nname='a'\nkind='eval'\n[[stage]]\nname='a'\nkind='eval'\n";
        assert!(err(dup).contains("two stages are named `a`"));
        let unknown = "[[stage]]\nname='a'\nkind='eval'\ninput=['@b']\n";
        assert!(
            err(unknown).contains("no stage called `b`"),
            "{}",
            err(unknown)
        );
        let cycle = "[[stage]]\nname='a'\nkind='eval'\nafter=['b']\n[[stage]]\nname='b'\nkind='eval'\nafter=['a']\n";
        assert!(err(cycle).contains("cycle"));
        let model = "[[stage]]\nname='a'\nkind='eval'\nmodel='m'\n";
        assert!(err(model).contains("takes no `model`"));
        let follow = "[[stage]]\nname='a'\nkind='encode'\ninput=['x']\nfollow=true\n";
        assert!(err(follow).contains("`follow`"));
        // A stage named as the runner's own files would share a folder with them.
        for name in RUNNER_ENTRIES {
            let taken = format!("[[stage]]\nname='{name}'\nkind='eval'\n");
            assert!(
                err(&taken).contains("where the runner keeps its own files"),
                "{name}"
            );
        }
    }

    #[test]
    fn an_upstream_passed_through_set_is_refused_naming_input() {
        let err = |kind: &str, set: &str| {
            plan(&format!(
                "[[stage]]\nname='a'\nkind='{kind}'\nset={{ {set} }}\n"
            ))
            .unwrap_err()
            .to_string()
        };
        let tokens = err("pretrain", "\"data.tokens\" = 'x'");
        assert!(
            tokens.contains("`data.tokens`") && tokens.contains("input = [\"@tokens\"]"),
            "{tokens}"
        );
        let nested = err("pretrain", "data = { tokenizer = 'x' }");
        assert!(nested.contains("tokenizer = "), "{nested}");
        assert!(err("finetune", "examples = 'x'").contains("input = [\"@examples\"]"));
        let task = err("multitask", "\"tasks.1.examples\" = 'x'");
        assert!(task.contains("TASK=@examples"), "{task}");
        // Other keys still pass as overrides.
        plan("[[stage]]\nname='a'\nkind='finetune'\nset={ lr = 1e-4, examples_seed = 1 }\n")
            .unwrap();
    }
}
