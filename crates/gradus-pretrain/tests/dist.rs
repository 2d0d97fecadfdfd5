//! Data-parallel training with ranks as threads ([`ThreadCollective`]): the ranks stay in
//! step, the sums are those of one process with the whole batch, and a resumed run
//! continues every rank where it stopped.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

use std::path::Path;
use std::sync::Arc;

use candle_core::Device;
use gradus_model::{Gpt, GptConfig, Params};
use gradus_pretrain::clm::{ClmObjective, ClmStream, StreamSpec};
use gradus_pretrain::mix::Mixture;
use gradus_shard::{DatasetKind, DatasetWriter, Producer, Record, TokenSeq, WriterOptions};
use gradus_train::dist::{RankShards, ThreadCollective};
use gradus_train::schedule::Schedule;
use gradus_train::{TrainConfig, TrainReport, Trainer};

/// 48 counting documents in 6 shards.
fn tokens(dir: &Path) {
    let producer = Producer::new("test", &()).unwrap();
    let opts = WriterOptions {
        max_rows_per_shard: 8,
        ..WriterOptions::default()
    };
    let mut w = DatasetWriter::create(dir, DatasetKind::Tokens, producer, vec![], opts).unwrap();
    let rows: Vec<TokenSeq> = (0..48)
        .map(|i| TokenSeq {
            doc_id: format!("d{i}"),
            input_ids: (0..20 + i % 7).map(|j| ((i + j) % 15) as u32).collect(),
            split: if i % 8 == 7 { "validation" } else { "train" }.into(),
        })
        .collect();
    for (i, chunk) in rows.chunks(8).enumerate() {
        w.write(&format!("s{i}"), &TokenSeq::to_batch(chunk).unwrap())
            .unwrap();
        w.finish_source(&format!("s{i}")).unwrap();
    }
    w.seal().unwrap();
}

fn objective(data: &Path, ranks: Option<RankShards>) -> ClmObjective {
    let config = GptConfig {
        vocab_size: 16,
        n_positions: 16,
        n_embd: 16,
        n_layer: 1,
        n_head: 2,
        bias: true,
        ..GptConfig::default()
    }
    .with_dropout(0.0);
    let mut params = Params::new(Device::Cpu, 7);
    let model = Gpt::new(&config, &mut params).unwrap();
    let spec = |s: &str, ranks| StreamSpec {
        split: Some(s.into()),
        start: 0,
        end: None,
        follow: None,
        ranks,
    };
    ClmObjective {
        model: model.into(),
        params,
        train: Mixture::single(
            "tokens",
            data,
            ClmStream::open(data, spec("train", ranks), Some(15), 12, 3, true).unwrap(),
        ),
        validation: ClmStream::first_windows(data, spec("validation", None), Some(15), 12, 8)
            .unwrap(),
        batch_size: 4,
        device: Device::Cpu,
    }
}

fn config() -> TrainConfig {
    TrainConfig {
        steps: 12,
        lr: 3e-3,
        schedule: Schedule::Constant,
        eval_interval: 6,
        checkpoint_interval: 6,
        ..TrainConfig::default()
    }
}

/// Trains `world` ranks as threads on one output folder; `own_shards` gives each rank
/// its share of the shards (else every rank reads them all). Returns each rank's
/// report and final parameters.
fn train_ranks(
    data: &Path,
    out: &Path,
    world: usize,
    own_shards: bool,
    stop_after: Option<u64>,
) -> Vec<(TrainReport, Vec<Vec<f32>>)> {
    let group = ThreadCollective::group(world);
    std::thread::scope(|scope| {
        let handles: Vec<_> = group
            .into_iter()
            .map(|collective| {
                scope.spawn(move || {
                    let ranks = gradus_train::dist::Collective::ranks(&collective);
                    let mut obj = objective(data, own_shards.then_some(ranks));
                    let mut trainer =
                        Trainer::new(config(), out).with_collective(Arc::new(collective));
                    trainer.stop_after = stop_after;
                    let report = trainer.run(&mut obj, &mut |_| {}).unwrap();
                    let weights = obj
                        .params
                        .iter()
                        .map(|(_, v, _)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
                        .collect();
                    (report, weights)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn ranks_on_their_own_shards_stay_in_step_and_rank_0_writes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tokens");
    tokens(&data);
    let out = dir.path().join("run");
    let ranks = train_ranks(&data, &out, 2, true, None);
    let (r0, r1) = (&ranks[0], &ranks[1]);
    assert_eq!(
        bits(&r0.0.losses),
        bits(&r1.0.losses),
        "ranks report one loss"
    );
    assert!(r0.1 == r1.1, "the ranks' weights drifted apart");
    assert!(r0.0.losses[11] < r0.0.losses[0], "{:?}", r0.0.losses);
    let lines = std::fs::read_to_string(out.join("train.jsonl")).unwrap();
    assert_eq!(
        lines.lines().count(),
        12,
        "one log line per step, from rank 0 only"
    );
    assert!(out.join("model/model.safetensors").is_file());
    // Each rank's cursor is in rank 0's checkpoint.
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("checkpoints/step-00000012/trainer.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["ranks"].as_array().unwrap().len(), 1);
    // A cursor is a position in the rank's own shards, so both may stand at the same one.
    let cursor = &state["ranks"][0]["data"]["sources"][0];
    assert!(
        cursor["epoch"].is_u64() && cursor["row"].is_u64(),
        "{state}"
    );
}

#[test]
fn two_ranks_on_the_same_data_sum_to_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tokens");
    tokens(&data);
    let alone = Trainer::new(config(), &dir.path().join("alone"))
        .run(&mut objective(&data, None), &mut |_| {})
        .unwrap();
    // Both ranks see the same batches: the global mean loss and gradient are one
    // process's (halves summed back are exact in floating point).
    let ranks = train_ranks(&data, &dir.path().join("pair"), 2, false, None);
    assert_eq!(bits(&ranks[0].0.losses), bits(&alone.losses));
}

#[test]
fn a_resumed_data_parallel_run_continues_every_rank() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tokens");
    tokens(&data);
    let whole = train_ranks(&data, &dir.path().join("whole"), 2, true, None);
    let out = dir.path().join("resumed");
    let first = train_ranks(&data, &out, 2, true, Some(6));
    assert_eq!(first[0].0.steps, 6);
    let rest = train_ranks(&data, &out, 2, true, None);
    assert_eq!(rest[1].0.resumed_from, Some(6));
    assert_eq!(bits(&rest[0].0.losses), bits(&whole[0].0.losses[6..]));
    assert!(rest[1].1 == whole[1].1);
}
