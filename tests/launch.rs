//! `gradus-launch`: one process per rank with the rank's environment; a failed rank
//! stops the launch; a build without NCCL refuses data-parallel training in one line.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

use gradus_testkit::run_bin;

const LAUNCH: &str = env!("CARGO_BIN_EXE_gradus-launch");

#[test]
fn every_rank_gets_its_rank_world_and_meeting_file() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("ranks.txt");
    let script = format!(
        "echo \"$GRADUS_RANK/$GRADUS_WORLD_SIZE $GRADUS_NCCL_ID_FILE\" >> {}",
        log.display()
    );
    let o = run_bin(LAUNCH, &["--gpus", "3", "--", "sh", "-c", &script]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&log).unwrap();
    let mut ranks: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    ranks.sort_unstable();
    assert_eq!(ranks, ["0/3", "1/3", "2/3"]);
    let files: std::collections::BTreeSet<&str> =
        text.lines().map(|l| l.split(' ').nth(1).unwrap()).collect();
    assert_eq!(files.len(), 1, "all ranks meet at one file: {text}");
}

#[test]
fn a_failed_rank_stops_the_launch_and_is_named() {
    let script = "if [ \"$GRADUS_RANK\" = 1 ]; then exit 3; fi; exec sleep 600";
    let start = std::time::Instant::now();
    let o = run_bin(LAUNCH, &["--gpus", "2", "--", "sh", "-c", script]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("rank 1 failed"), "{err}");
    // Rank 0 was killed rather than waited for.
    assert!(start.elapsed() < std::time::Duration::from_secs(300));
}

#[cfg(not(feature = "nccl"))]
#[test]
fn pretraining_as_ranks_without_nccl_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out").display().to_string();
    let o = run_bin(
        LAUNCH,
        &[
            "--gpus",
            "2",
            "--",
            env!("CARGO_BIN_EXE_gradus-pretrain"),
            "--output",
            &out,
        ],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("rebuild with `--features nccl`"), "{err}");
}
