//! The trainer end to end on a tiny GPT: loss falls, resume is exact, NaN stops.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

use std::path::{Path, PathBuf};

use candle_core::Device;
use gradus_model::{Gpt, GptConfig, Kernels, Params};
use gradus_pretrain::clm::{ClmObjective, ClmStream, Sampling, StreamSpec};
use gradus_pretrain::mix::Mixture;
use gradus_shard::{DatasetKind, DatasetWriter, Producer, Record, TokenSeq, WriterOptions};
use gradus_testkit::{assert_numbers, jsonl_rows};
use gradus_train::schedule::Schedule;
use gradus_train::{Objective, TrainConfig, TrainError, TrainReport, Trainer};

/// A tokens dataset of `docs` documents over a 16-token vocabulary, in two shards: each
/// document counts up from a start, so the next token is learnable.
fn tokens(dir: &Path, docs: usize) {
    write_tokens(dir, docs, docs.div_ceil(2), std::time::Duration::ZERO);
}

/// A temporary folder holding `docs` documents of [`tokens`] at `tokens/`.
fn toy_data(docs: usize) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tokens");
    tokens(&data, docs);
    (dir, data)
}

/// The documents of [`tokens`], `per_shard` to a shard, pausing before each shard as an
/// encode stage still running would.
fn write_tokens(dir: &Path, docs: usize, per_shard: usize, pause: std::time::Duration) {
    let rows: Vec<TokenSeq> = (0..docs)
        .map(|i| TokenSeq {
            doc_id: format!("d{i}"),
            input_ids: (0..20 + i % 7).map(|j| ((i + j) % 15) as u32).collect(),
            split: if i % 10 == 9 { "validation" } else { "train" }.into(),
        })
        .collect();
    write_rows(dir, &rows, per_shard, pause);
}

/// A sealed tokens dataset of `rows`, `per_shard` to a shard, `pause` before each.
fn write_rows(dir: &Path, rows: &[TokenSeq], per_shard: usize, pause: std::time::Duration) {
    let producer = Producer::new("test", &()).unwrap();
    let opts = WriterOptions {
        max_rows_per_shard: per_shard,
        ..WriterOptions::default()
    };
    let mut w = DatasetWriter::create(dir, DatasetKind::Tokens, producer, vec![], opts).unwrap();
    for (i, chunk) in rows.chunks(per_shard).enumerate() {
        std::thread::sleep(pause);
        w.write(&format!("s{i}"), &TokenSeq::to_batch(chunk).unwrap())
            .unwrap();
        w.finish_source(&format!("s{i}")).unwrap();
    }
    w.seal().unwrap();
}

fn objective(data: &Path, dropout: f32) -> ClmObjective {
    objective_on(data, dropout, Kernels::default())
}

fn objective_on(data: &Path, dropout: f32, kernels: Kernels) -> ClmObjective {
    let config = GptConfig {
        vocab_size: 16,
        n_positions: 16,
        n_embd: 16,
        n_layer: 2,
        n_head: 2,
        bias: true,
        ..GptConfig::default()
    }
    .with_dropout(dropout);
    let mut params = Params::new(Device::Cpu, 7).with_kernels(kernels);
    let model = Gpt::new(&config, &mut params).unwrap();
    let spec = |s: &str| StreamSpec {
        split: Some(s.into()),
        start: 0,
        end: None,
        follow: None,
        ranks: None,
    };
    ClmObjective {
        model: model.into(),
        params,
        train: Mixture::single("tokens", data, clm_stream(data, 3, true)),
        validation: ClmStream::first_windows(data, spec("validation"), Some(15), 12, 32).unwrap(),
        batch_size: 4,
        device: Device::Cpu,
    }
}

fn train_spec() -> StreamSpec {
    StreamSpec::whole(Some("train"))
}

/// The training windows of 12 (+1) tokens of `data`, whose end-of-text token is 15.
fn clm_stream(data: &Path, seed: u64, shuffle: bool) -> ClmStream {
    ClmStream::open(data, train_spec(), Some(15), 12, seed, shuffle).unwrap()
}

fn config(steps: u64) -> TrainConfig {
    TrainConfig {
        steps,
        lr: 3e-3,
        schedule: Schedule::Cosine {
            warmup_steps: 3,
            min_lr: 3e-4,
            decay_steps: None,
        },
        accumulation: 2,
        eval_interval: 5,
        checkpoint_interval: 5,
        ..TrainConfig::default()
    }
}

#[test]
fn clm_loss_falls_on_a_tiny_corpus() {
    let dir = tempfile::tempdir().unwrap();
    tokens(&dir.path().join("tokens"), 60);
    let mut obj = objective(&dir.path().join("tokens"), 0.0);
    let before = gradus_train::Objective::evaluate(&mut obj).unwrap()["loss"];
    let report = Trainer::new(config(60), &dir.path().join("run"))
        .run(&mut obj, &mut |_| {})
        .unwrap();
    let after = report.last_eval.unwrap()["loss"];
    assert!(before > 2.5, "starts near ln 16: {before}");
    assert!(after < 0.6 * before, "validation loss {before} -> {after}");
    // Outputs: HF-style model folder, per-step log, best checkpoint.
    let run = dir.path().join("run");
    assert!(run.join("model/model.safetensors").is_file());
    assert!(run.join("model/config.json").is_file());
    assert!(run.join("checkpoints/best/model.safetensors").is_file());
    let log = jsonl_rows(&run.join("train.jsonl"));
    assert_eq!(log.len(), 60);
    assert_numbers(
        log.last().unwrap(),
        &[
            "loss",
            "lr",
            "grad_norm",
            "tokens_per_second",
            "flops_per_second",
            "peak_rss_mib",
        ],
    );
}

/// A run of `cfg` done whole and the same run stopped after `stop` steps (as if killed
/// there), each on the 40-document dataset in `root/tokens`, with dropout on.
struct WholeAndStopped {
    data: PathBuf,
    whole: TrainReport,
    whole_dir: PathBuf,
    first: TrainReport,
    run: PathBuf,
}

/// Trains `objective` (freshly built: each call is a new process's run, resuming what
/// `dir` holds) in `dir`, stopping after `stop` steps if given.
fn train_in(
    cfg: &TrainConfig,
    dir: &Path,
    stop: Option<u64>,
    mut objective: impl Objective,
) -> TrainReport {
    let mut trainer = Trainer::new(cfg.clone(), dir);
    trainer.stop_after = stop;
    trainer.run(&mut objective, &mut |_| {}).unwrap()
}

impl WholeAndStopped {
    /// The stopped run resumed by a fresh process.
    fn resume(&self, cfg: &TrainConfig) -> TrainReport {
        train_in(cfg, &self.run, None, objective(&self.data, 0.1))
    }
}

fn whole_and_stopped(root: &Path, cfg: &TrainConfig, stop: u64) -> WholeAndStopped {
    let data = root.join("tokens");
    tokens(&data, 40);
    let whole_dir = root.join("whole");
    let whole = train_in(cfg, &whole_dir, None, objective(&data, 0.1));
    let run = root.join("resumed");
    let first = train_in(cfg, &run, Some(stop), objective(&data, 0.1));
    WholeAndStopped {
        data,
        whole,
        whole_dir,
        first,
        run,
    }
}

#[test]
fn resumed_run_has_bit_identical_losses() {
    let dir = tempfile::tempdir().unwrap();
    // With dropout on, so the dropout generator's state must be restored too.
    let stopped = whole_and_stopped(dir.path(), &config(20), 10);
    let (whole, first, run) = (&stopped.whole, &stopped.first, &stopped.run);
    assert_eq!(first.steps, 10);
    assert!(
        !run.join("model").exists(),
        "an interrupted run writes no final model"
    );
    // A fresh process: new objective from scratch, state from the checkpoint.
    let rest = stopped.resume(&config(20));
    assert_eq!(rest.resumed_from, Some(10));
    assert_eq!(first.losses[..], whole.losses[..10]);
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&rest.losses),
        bits(&whole.losses[10..]),
        "steps 11-20 differ after resume"
    );
}

/// The losses of `train.jsonl`, in order, with the step each line says it is.
fn logged_steps(run: &Path) -> Vec<(u64, u64)> {
    jsonl_rows(&run.join("train.jsonl"))
        .iter()
        .map(|v| {
            (
                v["step"].as_u64().unwrap(),
                v["loss"].as_f64().unwrap().to_bits(),
            )
        })
        .collect()
}

#[test]
fn a_resume_cuts_the_logs_back_to_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let stopped = whole_and_stopped(dir.path(), &config(20), 12);
    let (whole_dir, run) = (&stopped.whole_dir, &stopped.run);
    // As if killed later, between checkpoints: two more steps logged, one line torn.
    let log = run.join("train.jsonl");
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("{\"step\":13,\"loss\":1.0}\n{\"step\":14,\"lo");
    std::fs::write(&log, text).unwrap();
    let evals = std::fs::read_to_string(run.join("eval.jsonl")).unwrap();
    std::fs::write(run.join("eval.jsonl"), format!("{evals}{{\"step\":15}}\n")).unwrap();
    let rest = stopped.resume(&config(20));
    assert_eq!(rest.resumed_from, Some(12));
    assert_eq!(logged_steps(run), logged_steps(whole_dir));
    let steps = |d: &Path| -> Vec<u64> {
        jsonl_rows(&d.join("eval.jsonl"))
            .iter()
            .map(|v| v["step"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(steps(run), vec![5, 10, 15, 20]);
    assert_eq!(steps(run), steps(whole_dir));
}

#[test]
fn a_run_killed_before_its_first_checkpoint_starts_its_logs_again() {
    let (dir, data) = toy_data(40);
    let mut cfg = config(8);
    cfg.checkpoint_interval = 0;
    cfg.eval_interval = 0;
    let whole_dir = dir.path().join("whole");
    train_in(&cfg, &whole_dir, None, objective(&data, 0.1));
    let run = dir.path().join("resumed");
    // The first attempt died after logging three steps and checkpointing none.
    std::fs::create_dir_all(run.join("checkpoints")).unwrap();
    train_in(&cfg, &run, Some(3), objective(&data, 0.1));
    std::fs::remove_dir_all(run.join("checkpoints/step-00000003")).unwrap();
    assert_eq!(logged_steps(&run).len(), 3);
    let rest = train_in(&cfg, &run, None, objective(&data, 0.1));
    assert_eq!(rest.resumed_from, None);
    assert_eq!(logged_steps(&run), logged_steps(&whole_dir));
}

#[test]
fn an_unreadable_latest_checkpoint_falls_back_to_the_one_before() {
    let dir = tempfile::tempdir().unwrap();
    let stopped = whole_and_stopped(dir.path(), &config(20), 15);
    let (whole_dir, run) = (&stopped.whole_dir, &stopped.run);
    let latest = run.join("checkpoints/step-00000015");
    let opt = latest.join("optimizer.safetensors");
    let len = std::fs::metadata(&opt).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&opt)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let rest = stopped.resume(&config(20));
    assert_eq!(
        rest.resumed_from,
        Some(10),
        "fell back past the damaged one"
    );
    assert!(run.join("checkpoints/unreadable-step-00000015").is_dir());
    let model = |d: &Path| std::fs::read(d.join("model/model.safetensors")).unwrap();
    assert!(model(run) == model(whole_dir), "the final model differs");
    assert_eq!(logged_steps(run), logged_steps(whole_dir));
}

#[test]
fn an_early_stopped_run_stays_stopped_when_rerun() {
    let (dir, data) = toy_data(40);
    let mut cfg = config(40);
    cfg.eval_interval = 1;
    cfg.checkpoint_interval = 1;
    cfg.early_stopping_patience = Some(1);
    // An always-worse selection: the second evaluation stops the run.
    cfg.greater_is_better = Some(true);
    let run = dir.path().join("run");
    let first = train_in(&cfg, &run, None, objective(&data, 0.0));
    assert!(first.early_stopped, "{first:?}");
    let again = train_in(&cfg, &run, None, objective(&data, 0.0));
    assert_eq!(again.steps, first.steps);
    assert_eq!(logged_steps(&run).len() as u64, first.steps);
}

#[test]
fn random_sampling_draws_windows_anywhere_and_resumes_exactly() {
    let (dir, data) = toy_data(40);
    // The training documents as the stream joins them: each one counts up and ends
    // with the end-of-text token 15.
    let joined: Vec<u32> = (0..40usize)
        .filter(|i| i % 10 != 9)
        .flat_map(|i| {
            (0..20 + i % 7)
                .map(move |j| ((i + j) % 15) as u32)
                .chain([15])
        })
        .collect();
    let stream = || {
        clm_stream(&data, 3, true)
            .with_sampling(Sampling::Random)
            .unwrap()
    };
    let random = || {
        let mut obj = objective(&data, 0.0);
        obj.train = Mixture::single("tokens", &data, stream());
        obj
    };
    let mut s = stream();
    let mut starts = std::collections::BTreeSet::new();
    for _ in 0..4000 {
        let w = s.next_window().unwrap();
        assert_eq!(w.len(), 13);
        let at = (0..=joined.len() - 13)
            .filter(|&i| joined[i..i + 13] == w[..])
            .collect::<Vec<_>>();
        assert!(!at.is_empty(), "window {w:?} is not in the joined stream");
        starts.extend(at);
    }
    // ~4000 draws over ~900 offsets: almost every offset is drawn, including windows
    // across a document boundary.
    let offsets = joined.len() - 12;
    assert!(
        starts.len() > offsets * 9 / 10,
        "{} of {offsets}",
        starts.len()
    );

    let (whole_dir, resumed) = (dir.path().join("whole"), dir.path().join("resumed"));
    let whole = train_in(&config(16), &whole_dir, None, random());
    train_in(&config(16), &resumed, Some(8), random());
    let rest = train_in(&config(16), &resumed, None, random());
    assert_eq!(rest.resumed_from, Some(8));
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&rest.losses), bits(&whole.losses[8..]));
}

#[test]
fn fused_and_composed_kernels_give_the_same_loss_trajectory() {
    let (dir, data) = toy_data(60);
    let run = |kernels: Kernels| {
        let out = dir.path().join(format!("{kernels:?}"));
        Trainer::new(config(50), &out)
            .run(&mut objective_on(&data, 0.0, kernels), &mut |_| {})
            .unwrap()
    };
    let (fused, composed) = (run(Kernels::Fused), run(Kernels::Composed));
    assert_eq!(fused.losses.len(), 50);
    let (first, last) = (fused.losses[0], fused.losses[49]);
    assert!(last < 0.8 * first, "it learns: {first} -> {last}");
    for (step, (f, c)) in fused.losses.iter().zip(&composed.losses).enumerate() {
        assert!(
            (f - c).abs() <= 1e-3 * c.abs(),
            "step {}: fused loss {f}, composed {c}",
            step + 1
        );
    }
}

#[test]
fn a_non_finite_loss_stops_with_the_step() {
    let (dir, data) = toy_data(20);
    let mut c = config(10);
    c.lr = 1e30; // diverges at once
    c.grad_clip = 0.0;
    let err = Trainer::new(c, &dir.path().join("run"))
        .run(&mut objective(&data, 0.0), &mut |_| {})
        .unwrap_err();
    match err {
        TrainError::NonFinite { step, .. } => assert!((2..=10).contains(&step), "step {step}"),
        other => panic!("{other}"),
    }
    // The checkpoints written before are untouched; no final model pretends success.
    assert!(!dir.path().join("run/model").exists());
}

/// Documents that count upwards through ids 4..24 from varied starts: a masked token is
/// its left neighbour + 1, and segment B follows A when it continues the count.
fn counting_tokens(dir: &Path, docs: usize) {
    let producer = Producer::new("test", &()).unwrap();
    let mut w = DatasetWriter::create(
        dir,
        DatasetKind::Tokens,
        producer,
        vec![],
        WriterOptions::default(),
    )
    .unwrap();
    let rows: Vec<TokenSeq> = (0..docs)
        .map(|i| TokenSeq {
            doc_id: format!("d{i}"),
            input_ids: (0..24).map(|j| 4 + ((i * 7 + j) % 20) as u32).collect(),
            split: if i % 8 == 7 { "validation" } else { "train" }.into(),
        })
        .collect();
    w.write("s", &TokenSeq::to_batch(&rows).unwrap()).unwrap();
    w.finish_source("s").unwrap();
    w.seal().unwrap();
}

#[test]
fn mlm_and_nsp_losses_fall_on_a_tiny_corpus() {
    use gradus_model::{Bert, BertConfig, BertHeads};
    use gradus_pretrain::mlm::{MlmObjective, MlmSpec, MlmStream, SpecialTokens, fixed_examples};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tokens");
    counting_tokens(&data, 200);
    let special = SpecialTokens {
        cls: 1,
        sep: 2,
        mask: 3,
        pad: 0,
    };
    let spec = |split: &str| MlmSpec {
        split: Some(split.into()),
        seq_len: 19,
        nsp: true,
        mask_prob: 0.3,
        vocab_size: 24,
        special,
        pack: true,
        follow: None,
        ranks: None,
        shuffle: true,
    };
    let config = BertConfig {
        vocab_size: 24,
        hidden_size: 32,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        intermediate_size: 64,
        max_position_embeddings: 24,
        hidden_dropout_prob: 0.0,
        attention_probs_dropout_prob: 0.0,
        ..BertConfig::default()
    };
    let mut params = Params::new(Device::Cpu, 11);
    let model = Bert::new(&config, &mut params).unwrap();
    let heads = BertHeads::new(&model, &mut params).unwrap();
    let mut obj = MlmObjective {
        model,
        heads,
        params,
        train: Mixture::single(
            "tokens",
            &data,
            MlmStream::open(&data, spec("train"), 5).unwrap(),
        ),
        validation: fixed_examples(&data, spec("validation"), 64).unwrap(),
        batch_size: 16,
        device: Device::Cpu,
    };
    assert!(
        obj.validation
            .iter()
            .all(|e| e.ids[0] == 1 && e.nsp.is_some())
    );
    assert!(
        obj.validation.iter().any(|e| e.nsp == Some(0))
            && obj.validation.iter().any(|e| e.nsp == Some(1))
    );
    let before = gradus_train::Objective::evaluate(&mut obj).unwrap();
    let mut c = config_for_mlm();
    // MLM sits at the unigram plateau for a few hundred steps before attention learns
    // positions; by 800 steps a working encoder predicts most counts (~0.9).
    c.steps = 800;
    let report = Trainer::new(c, &dir.path().join("run"))
        .run(&mut obj, &mut |_| {})
        .unwrap();
    let after = report.last_eval.unwrap();
    assert!(
        after["mlm_loss"] < 0.8 * before["mlm_loss"],
        "{before:?} -> {after:?}"
    );
    assert!(
        after["mlm_accuracy"] > 0.7,
        "a position-blind encoder stays near 0.35: {after:?}"
    );
    assert!(
        after["nsp_loss"] < before["nsp_loss"],
        "{before:?} -> {after:?}"
    );
}

fn config_for_mlm() -> TrainConfig {
    TrainConfig {
        lr: 3e-3,
        schedule: Schedule::Cosine {
            warmup_steps: 10,
            min_lr: 2e-4,
            decay_steps: None,
        },
        ..TrainConfig::default()
    }
}

#[test]
fn a_following_stream_reads_a_growing_dataset_as_the_sealed_one() {
    use gradus_pretrain::mlm::{MlmSpec, MlmStream, SpecialTokens};
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let sealed = dir.path().join("sealed");
    write_tokens(&sealed, 120, 10, Duration::ZERO);
    let growing = dir.path().join("growing");
    let writer = {
        let growing = growing.clone();
        std::thread::spawn(move || write_tokens(&growing, 120, 10, Duration::from_millis(30)))
    };
    let clm = |data: &Path, follow| {
        let spec = |s: &str| StreamSpec {
            split: Some(s.into()),
            start: 0,
            end: None,
            follow,
            ranks: None,
        };
        let mut s = ClmStream::open(data, spec("train"), Some(15), 12, 3, true).unwrap();
        // More windows than one epoch holds: the second epoch starts over the whole data.
        let windows: Vec<Vec<u32>> = (0..500).map(|_| s.next_window().unwrap()).collect();
        let val = ClmStream::first_windows(data, spec("validation"), Some(15), 12, 20).unwrap();
        (windows, val)
    };
    let followed = clm(&growing, Some(Duration::from_secs(30)));
    writer.join().unwrap();
    // Following reads the first epoch in the dataset's order, the next ones shuffled:
    // as following the sealed dataset does.
    assert_eq!(followed, clm(&sealed, Some(Duration::from_secs(30))));
    assert_eq!(followed.1.len(), 20);
    let mut plain = ClmStream::open(&sealed, train_spec(), Some(15), 12, 3, false).unwrap();
    let first_epoch = epoch_windows(&mut plain, 0);
    assert_eq!(followed.0[..first_epoch.len()], first_epoch[..]);
    assert_ne!(
        followed.0[first_epoch.len()..2 * first_epoch.len()],
        first_epoch[..]
    );

    let growing = dir.path().join("growing-mlm");
    let writer = {
        let growing = growing.clone();
        std::thread::spawn(move || write_tokens(&growing, 120, 10, Duration::from_millis(30)))
    };
    let mlm = |data: &Path, follow| {
        let spec = MlmSpec {
            split: Some("train".into()),
            seq_len: 19,
            nsp: true,
            mask_prob: 0.15,
            vocab_size: 16,
            special: SpecialTokens {
                cls: 1,
                sep: 2,
                mask: 3,
                pad: 0,
            },
            pack: true,
            follow,
            ranks: None,
            // A followed dataset's first epoch is read in its order; the sealed one is
            // read the same way here.
            shuffle: false,
        };
        let mut s = MlmStream::open(data, spec, 5).unwrap();
        (0..300)
            .map(|_| s.next_example().unwrap())
            .collect::<Vec<_>>()
    };
    let followed = mlm(&growing, Some(Duration::from_secs(30)));
    writer.join().unwrap();
    assert_eq!(followed, mlm(&sealed, None));
}

/// `docs` documents of three copies of one id each (`10 + i`), `per_shard` to a shard.
fn tagged_tokens(dir: &Path, docs: usize, per_shard: usize) {
    let rows: Vec<TokenSeq> = (0..docs)
        .map(|i| TokenSeq {
            doc_id: format!("d{i}"),
            input_ids: vec![10 + i as u32; 3],
            split: "train".into(),
        })
        .collect();
    write_rows(dir, &rows, per_shard, std::time::Duration::ZERO);
}

#[test]
fn mlm_epochs_read_every_document_once_in_a_new_seeded_order() {
    use gradus_pretrain::mlm::{MlmSpec, MlmStream, SpecialTokens};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tokens");
    tagged_tokens(&data, 60, 10);
    let spec = |shuffle| MlmSpec {
        split: Some("train".into()),
        seq_len: 16,
        nsp: false,
        mask_prob: 0.0,
        vocab_size: 80,
        special: SpecialTokens {
            cls: 1,
            sep: 2,
            mask: 3,
            pad: 0,
        },
        pack: false,
        follow: None,
        ranks: None,
        shuffle,
    };
    // One example per document; its first token after [CLS] names the document.
    let docs = |shuffle, seed, n| {
        let mut s = MlmStream::open(&data, spec(shuffle), seed).unwrap();
        (0..n)
            .map(|_| s.next_example().unwrap().ids[1] - 10)
            .collect::<Vec<u32>>()
    };
    let in_order: Vec<u32> = (0..60).collect();
    assert_eq!(docs(false, 5, 60), in_order);
    let two_epochs = docs(true, 5, 120);
    let (first, second) = two_epochs.split_at(60);
    for epoch in [first, second] {
        let mut sorted = epoch.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, in_order, "every document once an epoch");
        assert_ne!(epoch, in_order.as_slice());
    }
    assert_ne!(first, second, "each epoch its own order");
    // Documents of different shards are mixed, not only within a shard: the first ten
    // come from more than one shard.
    let shards: std::collections::BTreeSet<u32> = first[..10].iter().map(|d| d / 10).collect();
    assert!(shards.len() > 1, "{first:?}");
    assert_eq!(
        docs(true, 5, 120),
        two_epochs,
        "the same seed, the same order"
    );
    assert_ne!(docs(true, 6, 60), first, "another seed, another order");
    // Following a dataset: the first epoch as its shards arrive, in order; then shuffled.
    let follow = MlmSpec {
        follow: Some(std::time::Duration::from_secs(5)),
        ..spec(true)
    };
    let mut followed = MlmStream::open(&data, follow, 5).unwrap();
    let ids: Vec<u32> = (0..120)
        .map(|_| followed.next_example().unwrap().ids[1] - 10)
        .collect();
    assert_eq!(&ids[..60], in_order.as_slice());
    assert_ne!(&ids[60..], in_order.as_slice());

    // Resumed mid-epoch from a serialised cursor: the very same examples follow.
    let mut whole = MlmStream::open(&data, spec(true), 5).unwrap();
    let mut resumed = MlmStream::open(&data, spec(true), 5).unwrap();
    for _ in 0..25 {
        whole.next_example().unwrap();
        resumed.next_example().unwrap();
    }
    let state = gradus_train::cursor_to_json(&resumed.cursor).unwrap();
    let mut resumed = MlmStream::open(&data, spec(true), 5).unwrap();
    resumed.cursor = gradus_train::cursor_from_json(state).unwrap();
    for _ in 0..70 {
        assert_eq!(
            whole.next_example().unwrap(),
            resumed.next_example().unwrap()
        );
    }
}

/// `docs` documents of 11 tokens each, all different (document `i` holds `100 i ..`),
/// `per_shard` to a shard: a window names the tokens it holds.
fn distinct_tokens(dir: &Path, docs: usize, per_shard: usize) {
    let rows: Vec<TokenSeq> = (0..docs)
        .map(|i| TokenSeq {
            doc_id: format!("d{i}"),
            input_ids: (0..11).map(|j| (100 * i + j) as u32).collect(),
            split: "train".into(),
        })
        .collect();
    write_rows(dir, &rows, per_shard, std::time::Duration::ZERO);
}

/// The windows of one epoch (`epoch`) of `stream`, which stands at its start.
fn epoch_windows(stream: &mut ClmStream, epoch: u64) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    loop {
        let w = stream.next_window().unwrap();
        if stream.cursor.epoch != epoch {
            return (out, w).0;
        }
        out.push(w);
    }
}

#[test]
fn clm_epochs_read_every_window_once_in_a_new_seeded_order() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tokens");
    // 30 shards of 2 documents: four blocks of shards an epoch.
    distinct_tokens(&data, 60, 2);
    let all: Vec<u32> = (0..60u32)
        .flat_map(|i| (0..11).map(move |j| 100 * i + j))
        .collect();
    let stream = |seed, shuffle| ClmStream::open(&data, train_spec(), None, 10, seed, shuffle);
    // In order: the joined documents cut back to back, consecutive windows sharing a token.
    let mut plain = stream(5, false).unwrap();
    let in_order = epoch_windows(&mut plain, 0);
    let cut: Vec<Vec<u32>> = (0..65)
        .map(|k| all[10 * k..=10 * k + 10].to_vec())
        .collect();
    assert_eq!(in_order, cut);

    let mut shuffled = stream(5, true).unwrap();
    let mut epochs = Vec::new();
    for epoch in 0..3 {
        let windows = epoch_windows(&mut shuffled, epoch);
        // Every token is a target at most once an epoch; only a window's worth at each
        // end of the epoch (its random offset, its last partial window) is left out.
        let mut targets: Vec<u32> = windows.iter().flat_map(|w| w[1..].to_vec()).collect();
        let n = targets.len();
        targets.sort_unstable();
        targets.dedup();
        assert_eq!(targets.len(), n, "epoch {epoch}: a token is a target twice");
        assert!(
            n + 2 * 10 >= all.len(),
            "epoch {epoch}: {n} of {} tokens",
            all.len()
        );
        assert_ne!(windows, in_order, "epoch {epoch} is shuffled");
        // The first ten windows come from documents of more than one shard.
        let shards: std::collections::BTreeSet<u32> =
            windows[..10].iter().map(|w| w[1] / 200).collect();
        assert!(shards.len() > 3, "epoch {epoch}: {shards:?}");
        epochs.push(windows);
    }
    assert_ne!(epochs[1], epochs[2], "each epoch its own order");
    let mut again = stream(5, true).unwrap();
    assert_eq!(
        epoch_windows(&mut again, 0),
        epochs[0],
        "the same seed, the same order"
    );
    let mut other = stream(6, true).unwrap();
    assert_ne!(
        epoch_windows(&mut other, 0),
        epochs[0],
        "another seed, another order"
    );

    // Resumed mid-epoch, mid-block, from a serialised cursor: the very same windows.
    let mut whole = stream(5, true).unwrap();
    let mut part = stream(5, true).unwrap();
    for _ in 0..83 {
        whole.next_window().unwrap();
        part.next_window().unwrap();
    }
    let state = gradus_train::cursor_to_json(&part.cursor).unwrap();
    assert!(
        state.to_string().len() < 400,
        "the cursor is a position, not a buffer: {state}"
    );
    let mut resumed = stream(5, true).unwrap();
    resumed.cursor = gradus_train::cursor_from_json(state).unwrap();
    for _ in 0..150 {
        assert_eq!(whole.next_window().unwrap(), resumed.next_window().unwrap());
    }
}

/// A tiny GPT's objective on two datasets mixed 3 : 1.
fn mixed_objective(a: &Path, b: &Path) -> ClmObjective {
    let mut obj = objective(a, 0.0);
    let source = |name: &str, path: &Path, weight, seed| gradus_pretrain::mix::Weighted {
        name: name.into(),
        path: path.to_path_buf(),
        weight,
        stream: clm_stream(path, seed, true),
    };
    obj.train = Mixture::new(vec![source("a", a, 3.0, 3), source("b", b, 1.0, 4)]).unwrap();
    obj
}

#[test]
fn a_mixed_run_draws_its_shares_and_resumes_bit_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    tokens(&a, 40);
    write_tokens(&b, 30, 5, std::time::Duration::ZERO);
    let whole = train_in(
        &config(16),
        &dir.path().join("whole"),
        None,
        mixed_objective(&a, &b),
    );
    // 16 steps of 8 windows of 12 targets: a source is never a window (0.6%) from its share.
    let seen = &whole.data_seen;
    assert_eq!(seen["a"].tokens + seen["b"].tokens, 16 * 8 * 12);
    assert!((seen["a"].share - 0.75).abs() < 0.01, "{seen:?}");
    assert!((seen["b"].weight - 0.25).abs() < 1e-12, "{seen:?}");
    // Killed between checkpoints: stopped at 7, its checkpoint of step 7 removed, so that
    // the run resumes from step 5's (checkpoints are every 5 steps).
    let resumed = dir.path().join("resumed");
    train_in(&config(16), &resumed, Some(7), mixed_objective(&a, &b));
    std::fs::remove_dir_all(resumed.join("checkpoints/step-00000007")).unwrap();
    let rest = train_in(&config(16), &resumed, None, mixed_objective(&a, &b));
    assert_eq!(rest.resumed_from, Some(5));
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&rest.losses), bits(&whole.losses[5..]));
    assert_eq!(rest.data_seen, whole.data_seen);
}

#[test]
fn a_tail_hold_out_of_several_documents_shares_none_with_training() {
    use gradus_pretrain::{PretrainConfig, clm_splits};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tokens");
    // 60 documents of 11 distinct tokens: a token names its document (token / 100).
    distinct_tokens(&data, 60, 7);
    let json = r#"{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null,
        "model": {"type": "WordLevel", "vocab": {"a": 0}, "unk_token": "a"}}"#;
    let tokenizer: gradus_tokenize::Tokenizer = json.parse().unwrap();
    let mut config = PretrainConfig::default();
    config.data.validation_fraction = 0.13;
    config.data.eos = "none".into();
    let splits = clm_splits(&config, &data, &tokenizer).unwrap();
    // 13% of 660 tokens is 85.8: the cut moves to the nearest document start, 88.
    assert_eq!(splits.train.end, Some(660 - 88));
    let docs = |spec: StreamSpec| -> std::collections::BTreeSet<u32> {
        ClmStream::first_windows(&data, spec, None, 4, usize::MAX)
            .unwrap()
            .iter()
            .flatten()
            .map(|t| t / 100)
            .collect()
    };
    let (train, validation) = (docs(splits.train), docs(splits.validation));
    assert_eq!(validation.len(), 8, "{validation:?}");
    assert!(train.is_disjoint(&validation), "{train:?} / {validation:?}");
}
