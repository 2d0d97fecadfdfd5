//! Masked-LM data with optional next-sentence pairs, built from the documents of a
//! `tokens` dataset as BERT does: each document is cut into segments; a pair is a segment
//! and the one after it (is-next) or, half of the time, a segment of another document
//! (not-next); 15% of the non-special tokens are chosen for prediction, of which 80%
//! become `[MASK]`, 10% a random token and 10% stay. Masks are drawn anew every time an
//! example is built (dynamic masking). Each epoch reads the documents in a new seeded
//! order ([`crate::order`]): the shards shuffled, then the documents of each block of
//! shards shuffled together. The whole position is a serialisable cursor.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use candle_core::{Device, Tensor};
use gradus_model::{Bert, BertHeads, Ctx, Params, loss};
use gradus_shard::Dataset;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use gradus_train::{Result, TrainError};

use crate::mix::{Mixture, Source};
use crate::order::EpochOrder;

/// The special tokens MLM needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecialTokens {
    pub cls: u32,
    pub sep: u32,
    pub mask: u32,
    pub pad: u32,
}

/// How examples are built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlmSpec {
    pub split: Option<String>,
    pub seq_len: usize,
    pub nsp: bool,
    pub mask_prob: f64,
    pub vocab_size: usize,
    pub special: SpecialTokens,
    /// Join consecutive short documents until a sequence is full, as BERT's pretraining
    /// data joins sentences; otherwise each document starts a new example and short
    /// ones leave most of it padding (and few tokens to predict).
    pub pack: bool,
    /// Follow a dataset still being written (see [`crate::clm::StreamSpec::follow`]).
    #[serde(skip)]
    pub follow: Option<std::time::Duration>,
    /// In data-parallel training, read only this rank's shards.
    #[serde(default)]
    pub ranks: Option<gradus_train::dist::RankShards>,
    /// Read each epoch in a new seeded order (the shards, then the documents of each
    /// block of shards); `false` keeps the dataset's order, as does the first epoch of
    /// a followed dataset.
    #[serde(default)]
    pub shuffle: bool,
}

/// One example before batching.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlmExample {
    pub ids: Vec<u32>,
    pub types: Vec<u32>,
    /// (position, original token) of the tokens to predict.
    pub targets: Vec<(u32, u32)>,
    /// 0: B follows A; 1: B is random (HF's labels).
    pub nsp: Option<u32>,
}

/// Where the stream stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlmCursor {
    pub epoch: u64,
    /// Position in the epoch's blocks of shards (shards when reading in order), and in
    /// that block's document order.
    pub shard: usize,
    pub row: u64,
    pub ready: VecDeque<MlmExample>,
    /// Recent segments, where not-next partners come from.
    pub pool: VecDeque<Vec<u32>>,
    pub rng: ChaCha8Rng,
}

const POOL: usize = 512;

/// A block's documents, by (epoch, position in the epoch).
type LoadedBlock = ((u64, usize), Vec<Vec<u32>>);

/// An endless stream of MLM (+NSP) examples.
#[derive(Debug)]
pub struct MlmStream {
    dataset: Dataset,
    spec: MlmSpec,
    /// Seeds the epochs' orders (the cursor's generator draws masks and partners).
    seed: u64,
    /// The block in memory, in its order.
    loaded: Option<LoadedBlock>,
    pub cursor: MlmCursor,
}

impl MlmStream {
    pub fn open(dir: &Path, spec: MlmSpec, seed: u64) -> Result<Self> {
        if spec.seq_len < 8 {
            return Err(TrainError::Config("MLM seq_len must be at least 8".into()));
        }
        Ok(Self {
            dataset: crate::clm::open_tokens(dir, spec.follow)?,
            spec,
            seed,
            loaded: None,
            cursor: MlmCursor {
                epoch: 0,
                shard: 0,
                row: 0,
                ready: VecDeque::new(),
                pool: VecDeque::new(),
                rng: ChaCha8Rng::seed_from_u64(seed),
            },
        })
    }

    /// The next document's tokens (without `[CLS]`/`[SEP]`), starting over at the end.
    fn next_doc(&mut self) -> Result<Vec<u32>> {
        // At most one pass over every block, twice (the end of an epoch, then the next).
        let mut steps = 0;
        loop {
            let blocks = self.blocks(self.cursor.epoch);
            if steps > 2 * blocks + 2 {
                break;
            }
            steps += 1;
            let c = &self.cursor;
            if c.shard >= blocks {
                if crate::clm::await_more(&mut self.dataset, self.spec.follow)? {
                    continue;
                }
                self.cursor.epoch += 1;
                (self.cursor.shard, self.cursor.row) = (0, 0);
                continue;
            }
            let (key, row) = ((c.epoch, c.shard), c.row as usize);
            if self.loaded.as_ref().is_none_or(|(k, _)| *k != key) {
                self.loaded = Some((key, self.read_block(key.0, key.1)?));
            }
            let docs = self.loaded.as_ref().map_or(&[][..], |(_, d)| d.as_slice());
            if row >= docs.len() {
                (self.cursor.shard, self.cursor.row) = (key.1 + 1, 0);
                continue;
            }
            self.cursor.row += 1;
            return Ok(docs[row].clone());
        }
        Err(TrainError::Data(format!(
            "{}: no documents in the selected split",
            self.dataset.dir().display()
        )))
    }

    fn order(&self) -> EpochOrder {
        EpochOrder {
            seed: self.seed,
            shuffle: self.spec.shuffle,
            follow: self.spec.follow.is_some(),
        }
    }

    /// Blocks in `epoch` (see [`EpochOrder::blocks`]).
    fn blocks(&self, epoch: u64) -> usize {
        self.order()
            .blocks(epoch, self.dataset.manifest().shards.len())
    }

    /// The selected documents of block `at` of `epoch`, without their `[CLS]` and
    /// `[SEP]`, in that epoch's order: shuffling, the documents of the block's shards are
    /// shuffled together.
    fn read_block(&self, epoch: u64, at: usize) -> Result<Vec<Vec<u32>>> {
        let order = self.order();
        let shards = order.block_shards(epoch, at, self.dataset.manifest().shards.len());
        let mut docs = Vec::new();
        for i in shards {
            docs.extend(self.shard_documents(i)?);
        }
        if order.shuffles(epoch) {
            docs.shuffle(&mut order.rng(epoch, Some(at)));
        }
        Ok(docs)
    }

    /// The selected documents of shard `i`, without their `[CLS]` and `[SEP]`.
    fn shard_documents(&self, i: usize) -> Result<Vec<Vec<u32>>> {
        let s = self.spec.special;
        let rows = crate::clm::read_token_rows(
            &self.dataset,
            i,
            self.spec.split.as_deref(),
            self.spec.ranks,
        )?;
        Ok(rows
            .into_iter()
            .flatten()
            .filter_map(|ids| {
                let mut doc: &[u32] = &ids;
                doc = doc.strip_prefix(&[s.cls]).unwrap_or(doc);
                doc = doc.strip_suffix(&[s.sep]).unwrap_or(doc);
                (!doc.is_empty()).then(|| doc.to_vec())
            })
            .collect())
    }

    pub fn next_example(&mut self) -> Result<MlmExample> {
        let full = if self.spec.nsp {
            2 * ((self.spec.seq_len - 3) / 2)
        } else {
            self.spec.seq_len - 2
        };
        while self.cursor.ready.is_empty() {
            let mut doc = self.next_doc()?;
            while self.spec.pack && doc.len() < full {
                doc.extend(self.next_doc()?);
            }
            self.examples_of(&doc);
        }
        self.cursor
            .ready
            .pop_front()
            .ok_or_else(|| TrainError::Data("no MLM example could be built".into()))
    }

    /// Queues the examples of one document.
    fn examples_of(&mut self, doc: &[u32]) {
        let spec = self.spec.clone();
        if !spec.nsp {
            for seg in doc.chunks(spec.seq_len - 2) {
                let ex = self.build(seg, None, None);
                self.cursor.ready.push_back(ex);
            }
            return;
        }
        let seg_len = (spec.seq_len - 3) / 2;
        let segments: Vec<&[u32]> = doc.chunks(seg_len).collect();
        for (i, a) in segments.iter().enumerate() {
            let next = segments.get(i + 1);
            let random = !self.cursor.pool.is_empty()
                && (next.is_none() || self.cursor.rng.random_bool(0.5));
            let (b, label) = if random {
                let j = self.cursor.rng.random_range(0..self.cursor.pool.len());
                (self.cursor.pool[j].clone(), 1)
            } else if let Some(n) = next {
                (n.to_vec(), 0)
            } else {
                continue;
            };
            let ex = self.build(a, Some(&b), Some(label));
            self.cursor.ready.push_back(ex);
        }
        // This document's segments become partners for later documents.
        for seg in segments {
            if self.cursor.pool.len() == POOL {
                self.cursor.pool.pop_front();
            }
            self.cursor.pool.push_back(seg.to_vec());
        }
    }

    /// `[CLS] a [SEP] (b [SEP])` with masks drawn now.
    fn build(&mut self, a: &[u32], b: Option<&[u32]>, nsp: Option<u32>) -> MlmExample {
        let s = self.spec.special;
        let mut ids = vec![s.cls];
        ids.extend_from_slice(a);
        ids.push(s.sep);
        let mut types = vec![0; ids.len()];
        if let Some(b) = b {
            ids.extend_from_slice(b);
            ids.push(s.sep);
            types.resize(ids.len(), 1);
        }
        let mut targets = Vec::new();
        let rng = &mut self.cursor.rng;
        for (pos, id) in ids.iter_mut().enumerate() {
            if *id == s.cls || *id == s.sep || !rng.random_bool(self.spec.mask_prob) {
                continue;
            }
            targets.push((pos as u32, *id));
            let roll = rng.random::<f64>();
            if roll < 0.8 {
                *id = s.mask;
            } else if roll < 0.9 {
                *id = rng.random_range(0..self.spec.vocab_size as u32);
            }
        }
        MlmExample {
            ids,
            types,
            targets,
            nsp,
        }
    }
}

/// Examples padded into tensors.
#[derive(Debug, Clone)]
pub struct MlmBatch {
    pub ids: Tensor,
    pub types: Tensor,
    pub mask: Tensor,
    /// Flat positions (`row * seq + col`) of the tokens to predict, and their targets.
    pub positions: Tensor,
    pub targets: Tensor,
    pub nsp: Option<Tensor>,
    pub n_targets: usize,
    pub n_examples: usize,
}

impl MlmBatch {
    pub fn new(examples: &[MlmExample], pad: u32, device: &Device) -> Result<Self> {
        let t = examples.iter().map(|e| e.ids.len()).max().unwrap_or(1);
        let b = examples.len();
        let (mut ids, mut types, mut mask) =
            (vec![pad; b * t], vec![0u32; b * t], vec![0f32; b * t]);
        let (mut positions, mut targets, mut nsp) = (Vec::new(), Vec::new(), Vec::new());
        for (r, e) in examples.iter().enumerate() {
            ids[r * t..r * t + e.ids.len()].copy_from_slice(&e.ids);
            types[r * t..r * t + e.types.len()].copy_from_slice(&e.types);
            mask[r * t..r * t + e.ids.len()]
                .iter_mut()
                .for_each(|m| *m = 1.0);
            for &(p, id) in &e.targets {
                positions.push((r * t) as u32 + p);
                targets.push(id);
            }
            nsp.extend(e.nsp);
        }
        let n_targets = targets.len();
        let nsp = if nsp.len() == b {
            Some(Tensor::from_vec(nsp, b, device)?)
        } else {
            None
        };
        Ok(Self {
            ids: Tensor::from_vec(ids, (b, t), device)?,
            types: Tensor::from_vec(types, (b, t), device)?,
            mask: Tensor::from_vec(mask, (b, t), device)?,
            positions: Tensor::from_vec(positions, n_targets, device)?,
            targets: Tensor::from_vec(targets, n_targets, device)?,
            nsp,
            n_targets,
            n_examples: b,
        })
    }
}

/// MLM (+NSP) pretraining of a [`Bert`] with its pretraining heads.
#[derive(Debug)]
pub struct MlmObjective {
    pub model: Bert,
    pub heads: BertHeads,
    pub params: Params,
    pub train: Mixture<MlmStream>,
    pub validation: Vec<MlmExample>,
    pub batch_size: usize,
    pub device: Device,
}

impl MlmObjective {
    fn pad(&self) -> u32 {
        self.train.first().spec.special.pad
    }
}

impl Source for MlmStream {
    type Item = MlmExample;
    type Cursor = MlmCursor;

    fn next_item(&mut self) -> Result<MlmExample> {
        self.next_example()
    }

    /// The example's tokens, special ones included.
    fn tokens(example: &MlmExample) -> u64 {
        example.ids.len() as u64
    }

    fn cursor(&self) -> &MlmCursor {
        &self.cursor
    }

    fn set_cursor(&mut self, cursor: MlmCursor) {
        self.cursor = cursor;
    }
}

/// Summed MLM loss (+ NSP loss scaled to the same per-token footing), and the logits.
fn losses(
    obj: &MlmObjective,
    batch: &MlmBatch,
    ctx: &mut Ctx<'_>,
) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    let h = obj
        .model
        .forward(&batch.ids, &batch.types, &batch.mask, ctx)?;
    let (b, t, d) = h.dims3()?;
    let picked = h.reshape((b * t, d))?.index_select(&batch.positions, 0)?;
    let logits = obj.heads.mlm.forward(&picked)?;
    let kernels = obj.model.kernels();
    let mut total = loss::nll_sum(&logits, &batch.targets, None, kernels)?;
    let mut nsp_logits = None;
    if let Some(labels) = &batch.nsp {
        let nl = obj.heads.nsp(&obj.model.pool(&h)?)?;
        // Mean NSP loss per example, weighted so that dividing by the step's targets
        // gives mean MLM loss + mean NSP loss, as BertForPreTraining.
        let scale = batch.n_targets as f64 / batch.n_examples as f64;
        total = (total + (loss::nll_sum(&nl, labels, None, kernels)? * scale)?)?;
        nsp_logits = Some(nl);
    }
    Ok((total, logits, nsp_logits))
}

impl gradus_train::Objective for MlmObjective {
    type Batch = MlmBatch;

    fn params(&self) -> &Params {
        &self.params
    }

    fn next_batch(&mut self) -> Result<MlmBatch> {
        let ex = (0..self.batch_size)
            .map(|_| self.train.next_item())
            .collect::<Result<Vec<_>>>()?;
        MlmBatch::new(&ex, self.pad(), &self.device)
    }

    fn weight(&self, batch: &MlmBatch) -> usize {
        batch.n_targets
    }

    fn loss_sum(&self, batch: &MlmBatch, ctx: &mut Ctx<'_>) -> Result<Tensor> {
        Ok(losses(self, batch, ctx)?.0)
    }

    fn evaluate(&mut self) -> Result<BTreeMap<String, f64>> {
        let (mut mlm_loss, mut mlm_hits, mut targets, mut nsp_hits, mut nsp_loss, mut examples) =
            (0.0, 0.0, 0usize, 0.0, 0.0, 0usize);
        for chunk in self.validation.chunks(self.batch_size.max(1)) {
            let batch = MlmBatch::new(chunk, self.pad(), &self.device)?;
            let (_, logits, nsp) = losses(self, &batch, &mut Ctx::eval())?;
            let kernels = self.model.kernels();
            mlm_loss += f64::from(
                loss::nll_sum(&logits, &batch.targets, None, kernels)?.to_scalar::<f32>()?,
            );
            mlm_hits += loss::correct(&logits, &batch.targets, None)?;
            targets += batch.n_targets;
            if let (Some(nl), Some(labels)) = (nsp, &batch.nsp) {
                nsp_loss +=
                    f64::from(loss::nll_sum(&nl, labels, None, kernels)?.to_scalar::<f32>()?);
                nsp_hits += loss::correct(&nl, labels, None)?;
                examples += batch.n_examples;
            }
        }
        let mlm = mlm_loss / targets.max(1) as f64;
        let mut out: BTreeMap<String, f64> = [
            ("mlm_loss".into(), mlm),
            ("mlm_accuracy".into(), mlm_hits / targets.max(1) as f64),
        ]
        .into();
        let mut total = mlm;
        if examples > 0 {
            let nsp = nsp_loss / examples as f64;
            total += nsp;
            out.insert("nsp_loss".into(), nsp);
            out.insert("nsp_accuracy".into(), nsp_hits / examples as f64);
        }
        out.insert("loss".into(), total);
        out.insert("perplexity".into(), mlm.exp());
        Ok(out)
    }

    fn data_state(&self) -> Result<serde_json::Value> {
        self.train.state()
    }

    fn restore_data(&mut self, state: serde_json::Value) -> Result<()> {
        self.train.restore(state)
    }

    fn data_seen(&self) -> BTreeMap<String, gradus_record::SourceSeen> {
        self.train.seen_if_mixed()
    }

    fn save_model(&self, dir: &Path) -> Result<()> {
        self.params.save(&dir.join("model.safetensors"))?;
        gradus_train::write_json(&dir.join("config.json"), self.model.config())
    }

    fn flops_per_unit(&self) -> f64 {
        // Per predicted token the whole sequence is processed: 6·N·seq / (15% of seq).
        6.0 * self.params.count() as f64 / self.train.first().spec.mask_prob
    }
}

/// The first `n` examples of a split, built with a fixed seed (validation).
pub fn fixed_examples(dir: &Path, spec: MlmSpec, n: usize) -> Result<Vec<MlmExample>> {
    let spec = MlmSpec {
        shuffle: false,
        ..spec
    };
    let mut s = MlmStream::open(dir, spec, 0)?;
    let mut out = Vec::with_capacity(n);
    while out.len() < n && s.cursor.epoch == 0 {
        out.push(s.next_example()?);
    }
    Ok(out)
}
