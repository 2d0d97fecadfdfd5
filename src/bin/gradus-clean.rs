//! `gradus-clean`: raw text files to a cleaned, deduplicated `documents` dataset.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use gradus::cli::{StageArgs, block_on, exit_with};
use gradus_clean::cluster::Cluster;
use gradus_clean::{CleanConfig, CleanRun, InputSpec};
use gradus_cluster::BallistaCluster;
use gradus_telemetry::{Progress, Telemetry, init_tracing};

#[derive(Debug, Parser)]
#[command(
    name = "gradus-clean",
    version,
    about = "Clean a raw corpus: normalise, filter, scrub PII, deduplicate"
)]
struct Cli {
    #[command(flatten)]
    args: StageArgs,
    /// Also write dropped documents, with their reason, to OUTPUT/rejected.
    #[arg(long)]
    keep_rejected: bool,
    /// Run the per-document plan on a Ballista cluster (`gradus-scheduler` with
    /// `gradus-executor`s) instead of in this process; inputs and OUTPUT must be on a
    /// path the executors see. The output is the same as a local run's.
    #[arg(long, env = "GRADUS_CLUSTER", value_name = "df://HOST:PORT")]
    cluster: Option<String>,
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let args = cli.args;
    init_tracing(args.verbose);
    args.apply()?;
    let output = args.output()?.to_path_buf();
    let mut config: CleanConfig =
        args.resolve_config_checked(|c: &CleanConfig| c.check().map_err(anyhow::Error::msg))?;
    config.inputs.extend(args.input.iter().map(InputSpec::path));
    config.keep_rejected |= cli.keep_rejected;
    args.claim_output(&output, "clean", &config)?;
    let _telemetry =
        Telemetry::install("clean", &output.join("metrics.jsonl"), args.metrics_addr()?)?;
    let cluster = cli
        .cluster
        .as_deref()
        .map(BallistaCluster::new)
        .transpose()?;
    let progress = Progress::new("clean", None, "documents");
    let on_docs = |n: u64| {
        metrics::counter!("docs_staged").increment(n);
        progress.inc(n);
    };
    let run = CleanRun {
        config: &config,
        output: &output,
        mode: args.mode(),
        on_docs: &on_docs,
        stop_after_files: None,
        cluster: cluster.as_ref().map(|c| c as &dyn Cluster),
    };
    let report = block_on(run.run())?;
    progress.finish();
    args.write_config(&output, "clean", &config)?;
    for (name, value) in [
        ("docs_in", report.docs_in),
        ("docs_out", report.docs_out),
        ("bytes_in", report.bytes_in),
        ("bytes_out", report.bytes_out),
    ] {
        metrics::counter!(name).absolute(value);
    }
    metrics::gauge!("docs_per_second").set(report.docs_per_second);
    writeln!(
        std::io::stdout().lock(),
        "{}: {} of {} documents kept ({:.0} documents/s); report in {}",
        output.display(),
        report.docs_out,
        report.docs_in,
        report.docs_per_second,
        output.join("report.md").display()
    )?;
    Ok(())
}

fn main() -> ExitCode {
    exit_with(run(Cli::parse()))
}
