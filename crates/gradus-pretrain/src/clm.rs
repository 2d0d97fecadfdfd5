//! Causal-LM data: documents of a `tokens` dataset streamed shard by shard, joined with
//! an end-of-text token where they lack one, cut into `seq_len + 1` windows (consecutive
//! windows share one token, so every token is a target once). Each epoch reads the
//! windows in a new seeded order ([`crate::order`]): the shards shuffled, then the
//! documents and the windows of each block of shards. The position (epoch, block, window,
//! the tokens carried between blocks) is a small serialisable [`ClmCursor`], so a
//! resumed run continues with the very next window.

use std::path::Path;
use std::time::Duration;

use arrow::array::AsArray;
use candle_core::{Device, Tensor};
use gradus_shard::{Dataset, DatasetKind, ReadOptions};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use gradus_train::dist::RankShards;
use gradus_train::{Result, TrainError};

use crate::mix::{Mixture, Source};
use crate::order::EpochOrder;

/// Which part of the dataset a stream reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamSpec {
    /// Rows of this `split` only (`train` / `validation`); all rows when absent.
    pub split: Option<String>,
    /// Tokens `[start, end)` of the joined stream (for a tail hold-out of one long text).
    pub start: u64,
    pub end: Option<u64>,
    /// Follow a dataset still being written: at the end of its committed shards, wait (up
    /// to this long) for the next shard or the seal instead of ending the epoch. Shards
    /// are only ever appended, so the stream reads what it would read once sealed.
    #[serde(skip)]
    pub follow: Option<Duration>,
    /// In data-parallel training, read only this rank's shards.
    #[serde(default)]
    pub ranks: Option<RankShards>,
}

impl StreamSpec {
    /// All the rows of `split` (all rows when `None`), neither followed nor ranked.
    pub fn whole(split: Option<&str>) -> Self {
        Self {
            split: split.map(str::to_string),
            start: 0,
            end: None,
            follow: None,
            ranks: None,
        }
    }
}

/// How often a following stream looks for a new shard.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// Opens a tokens dataset; when following, waits for it to exist first.
pub(crate) fn open_tokens(dir: &Path, follow: Option<Duration>) -> Result<Dataset> {
    let ds = match follow {
        Some(timeout) => gradus_shard::wait_for_shards(dir, 0, FOLLOW_POLL, timeout)?,
        None => Dataset::open(dir)?,
    };
    if ds.kind() != DatasetKind::Tokens {
        return Err(TrainError::Data(format!(
            "{}: a {} dataset, not tokens",
            dir.display(),
            ds.kind()
        )));
    }
    Ok(ds)
}

/// For a following reader at the end of `dataset`'s committed shards: waits for another
/// shard or the seal and reopens; true if there are more shards to read.
pub(crate) fn await_more(dataset: &mut Dataset, follow: Option<Duration>) -> Result<bool> {
    let Some(timeout) = follow else {
        return Ok(false);
    };
    if dataset.manifest().sealed {
        return Ok(false);
    }
    let have = dataset.manifest().shards.len();
    *dataset = gradus_shard::wait_for_shards(dataset.dir(), have, FOLLOW_POLL, timeout)?;
    Ok(dataset.manifest().shards.len() > have)
}

/// Where a stream stands: a position in its epoch's order of blocks ([`crate::order`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClmCursor {
    pub epoch: u64,
    /// The block being read (a shard when reading in order), and the next of its windows.
    pub block: usize,
    pub row: u64,
    /// Tokens carried into this block from the end of the one before: fewer than a
    /// window, since consecutive windows share one token.
    pub carry: Vec<u32>,
    /// Draws the windows of [`Sampling::Random`].
    pub rng: ChaCha8Rng,
}

/// A batch of windows as `(inputs, targets)`, both u32 `[batch, seq_len]`.
#[derive(Debug, Clone)]
pub struct ClmBatch {
    pub inputs: Tensor,
    pub targets: Tensor,
}

impl ClmBatch {
    pub fn from_windows(windows: &[Vec<u32>], device: &Device) -> Result<Self> {
        let t = windows.first().map_or(0, |w| w.len().saturating_sub(1));
        let mut x = Vec::with_capacity(windows.len() * t);
        let mut y = Vec::with_capacity(windows.len() * t);
        for w in windows {
            x.extend_from_slice(&w[..t]);
            y.extend_from_slice(&w[1..=t]);
        }
        let shape = (windows.len(), t);
        Ok(Self {
            inputs: Tensor::from_vec(x, shape, device)?,
            targets: Tensor::from_vec(y, shape, device)?,
        })
    }

    pub fn tokens(&self) -> usize {
        self.targets.elem_count()
    }
}

/// Reads the documents of a tokens dataset's shards.
#[derive(Debug)]
struct DocReader {
    dataset: Dataset,
    spec: StreamSpec,
    eos: Option<u32>,
    /// With a token range: where each shard read so far starts in the joined stream
    /// (dataset order), so that shuffled documents are cut as the range says.
    offsets: Vec<u64>,
}

impl DocReader {
    /// The documents of shard `i` with their end-of-text token; rows of another split
    /// stay as empty documents.
    fn documents(&self, i: usize) -> Result<Vec<Vec<u32>>> {
        let rows = read_token_rows(
            &self.dataset,
            i,
            self.spec.split.as_deref(),
            self.spec.ranks,
        )?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let Some(mut doc) = row else {
                    return Vec::new();
                };
                if let Some(eos) = self.eos
                    && doc.last() != Some(&eos)
                {
                    doc.push(eos);
                }
                doc
            })
            .collect())
    }

    fn bounded(&self) -> bool {
        self.spec.start > 0 || self.spec.end.is_some()
    }

    /// Where shard `i` starts in the joined stream: the tokens of the shards before it.
    fn offset(&mut self, i: usize) -> Result<u64> {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        while self.offsets.len() <= i {
            let k = self.offsets.len() - 1;
            let tokens: u64 = self.documents(k)?.iter().map(|d| d.len() as u64).sum();
            self.offsets.push(self.offsets[k] + tokens);
        }
        Ok(self.offsets[i])
    }

    /// The non-empty documents of shard `i`, cut to the stream's token range.
    fn selected(&mut self, i: usize) -> Result<Vec<Vec<u32>>> {
        let docs = self.documents(i)?;
        if !self.bounded() {
            return Ok(docs.into_iter().filter(|d| !d.is_empty()).collect());
        }
        let (start, end) = (self.spec.start, self.spec.end.unwrap_or(u64::MAX));
        let mut at = self.offset(i)?;
        Ok(docs
            .into_iter()
            .filter_map(|doc| {
                let piece = in_range(&doc, at, start, end).to_vec();
                at += doc.len() as u64;
                (!piece.is_empty()).then_some(piece)
            })
            .collect())
    }
}

/// The token ids of every row of shard `i`, in order; `None` for rows of another split
/// than `split` (when given), so that row numbers stay those of the shard.
pub(crate) fn read_token_rows(
    dataset: &Dataset,
    i: usize,
    split: Option<&str>,
    ranks: Option<RankShards>,
) -> Result<Vec<Option<Vec<u32>>>> {
    // Another rank's shard reads as empty: the cursor walks past it.
    if ranks.is_some_and(|r| !r.owns(i)) {
        return Ok(Vec::new());
    }
    let entry = &dataset.manifest().shards[i];
    let opts = ReadOptions::default().columns(&["input_ids", "split"]);
    let mut rows = Vec::with_capacity(entry.rows as usize);
    for batch in dataset.read_shard(entry, &opts)? {
        let batch = batch?;
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .cloned()
                .ok_or_else(|| TrainError::Data(format!("{}: no `{name}` column", entry.file)))
        };
        let ids = column("input_ids")?;
        let ids = ids.as_list::<i32>();
        let splits = column("split")?;
        let splits = splits.as_string::<i32>();
        for r in 0..batch.num_rows() {
            let keep = split.is_none_or(|s| s == splits.value(r));
            rows.push(keep.then(|| {
                ids.value(r)
                    .as_primitive::<arrow::datatypes::UInt32Type>()
                    .values()
                    .to_vec()
            }));
        }
    }
    Ok(rows)
}

/// The part of `doc`, which starts at token `at` of the joined stream, that lies inside
/// the stream's tokens `[start, end)`.
fn in_range(doc: &[u32], at: u64, start: u64, end: u64) -> &[u32] {
    let stop = at + doc.len() as u64;
    let lo = (start.clamp(at, stop) - at) as usize;
    let hi = (end.clamp(at, stop) - at) as usize;
    &doc[lo..hi.max(lo)]
}

/// How a training stream draws its windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    /// Epochs of windows cut back to back (every token a target once an epoch, the cut
    /// moved by a random offset each shuffled epoch), in a new seeded order each epoch.
    #[default]
    Epochs,
    /// Each window starts at a uniformly random token of the stream, drawn with
    /// replacement: nanoGPT's `get_batch`. The selected tokens are held in memory.
    Random,
}

/// A block's windows: its tokens joined, where each window starts in reading order, and
/// what is left after the last window.
#[derive(Debug)]
struct Block {
    /// (epoch, block)
    key: (u64, usize),
    tokens: Vec<u32>,
    starts: Vec<usize>,
    rest: Vec<u32>,
}

/// An endless stream of `seq_len + 1` token windows, each epoch in a new seeded order:
/// the windows of each block of shards are a permutation of the block's windows.
#[derive(Debug)]
pub struct ClmStream {
    reader: DocReader,
    seq_len: usize,
    order: EpochOrder,
    /// With [`Sampling::Random`]: the whole selected stream, documents joined.
    joined: Option<Vec<u32>>,
    loaded: Option<Block>,
    pub cursor: ClmCursor,
}

impl ClmStream {
    /// With `shuffle = false`, each epoch reads the windows in dataset order.
    pub fn open(
        dir: &Path,
        spec: StreamSpec,
        eos: Option<u32>,
        seq_len: usize,
        seed: u64,
        shuffle: bool,
    ) -> Result<Self> {
        if seq_len == 0 {
            return Err(TrainError::Config("seq_len must be positive".into()));
        }
        let dataset = open_tokens(dir, spec.follow)?;
        let order = EpochOrder {
            seed,
            shuffle,
            follow: spec.follow.is_some(),
        };
        Ok(Self {
            reader: DocReader {
                dataset,
                spec,
                eos,
                offsets: Vec::new(),
            },
            seq_len,
            order,
            joined: None,
            loaded: None,
            cursor: ClmCursor {
                epoch: 0,
                block: 0,
                row: 0,
                carry: Vec::new(),
                rng: ChaCha8Rng::seed_from_u64(seed),
            },
        })
    }

    /// The dataset this stream reads.
    pub fn dir(&self) -> &Path {
        self.reader.dataset.dir()
    }

    /// Switches the stream to `sampling`. [`Sampling::Random`] reads the selected tokens
    /// into memory (a following stream waits for the seal first); the cursor is then the
    /// generator alone, so a resumed run draws the same windows.
    pub fn with_sampling(mut self, sampling: Sampling) -> Result<Self> {
        if sampling == Sampling::Epochs {
            self.joined = None;
            return Ok(self);
        }
        let mut joined = Vec::new();
        let mut shard = 0;
        loop {
            if shard >= self.reader.dataset.manifest().shards.len() {
                if await_more(&mut self.reader.dataset, self.reader.spec.follow)? {
                    continue;
                }
                break;
            }
            for doc in self.reader.selected(shard)? {
                joined.extend_from_slice(&doc);
            }
            shard += 1;
        }
        if joined.len() <= self.seq_len {
            return Err(TrainError::Data(format!(
                "{}: {} tokens selected, fewer than one window of {}",
                self.dir().display(),
                joined.len(),
                self.seq_len + 1
            )));
        }
        self.joined = Some(joined);
        Ok(self)
    }

    /// The next window, starting a new epoch at the end of the data.
    pub fn next_window(&mut self) -> Result<Vec<u32>> {
        if let Some(joined) = &self.joined {
            let n = self.seq_len + 1;
            let i = self.cursor.rng.random_range(0..=joined.len() - n);
            return Ok(joined[i..i + n].to_vec());
        }
        let mut epoch_ends = 0;
        loop {
            let shards = self.reader.dataset.manifest().shards.len();
            let c = &self.cursor;
            if c.block >= self.order.blocks(c.epoch, shards) {
                if await_more(&mut self.reader.dataset, self.reader.spec.follow)? {
                    continue;
                }
                epoch_ends += 1;
                if epoch_ends > 1 {
                    return Err(TrainError::Data(format!(
                        "{}: no window of {} tokens in the selected data",
                        self.dir().display(),
                        self.seq_len + 1
                    )));
                }
                let c = &mut self.cursor;
                c.epoch += 1;
                (c.block, c.row) = (0, 0);
                c.carry.clear();
                continue;
            }
            let key = (c.epoch, c.block);
            if self.loaded.as_ref().is_none_or(|b| b.key != key) {
                self.loaded = Some(self.read_block(key)?);
            }
            let Some(block) = &self.loaded else {
                continue;
            };
            if let Some(&at) = block.starts.get(self.cursor.row as usize) {
                self.cursor.row += 1;
                return Ok(block.tokens[at..=at + self.seq_len].to_vec());
            }
            self.cursor.carry = block.rest.clone();
            (self.cursor.block, self.cursor.row) = (key.1 + 1, 0);
        }
    }

    /// The windows of block `(epoch, at)`, cut from the cursor's carry and the block's
    /// documents (shuffled together when the epoch is), in reading order.
    fn read_block(&mut self, (epoch, at): (u64, usize)) -> Result<Block> {
        let shards = self.reader.dataset.manifest().shards.len();
        let mut docs = Vec::new();
        for i in self.order.block_shards(epoch, at, shards) {
            docs.extend(self.reader.selected(i)?);
        }
        let shuffles = self.order.shuffles(epoch);
        let mut rng = self.order.rng(epoch, Some(at));
        if shuffles {
            docs.shuffle(&mut rng);
        }
        let mut tokens = self.cursor.carry.clone();
        let mut skip = if at == 0 {
            self.order.offset(epoch, self.seq_len as u64) as usize
        } else {
            0
        };
        for doc in &docs {
            let cut = skip.min(doc.len());
            skip -= cut;
            tokens.extend_from_slice(&doc[cut..]);
        }
        let n = self.seq_len;
        let windows = if tokens.len() > n {
            (tokens.len() - 1) / n
        } else {
            0
        };
        let mut starts: Vec<usize> = (0..windows).map(|k| k * n).collect();
        if shuffles {
            starts.shuffle(&mut rng);
        }
        let rest = tokens[windows * n..].to_vec();
        Ok(Block {
            key: (epoch, at),
            tokens,
            starts,
            rest,
        })
    }

    /// `batch` windows as one batch.
    pub fn next_batch(&mut self, batch: usize, device: &Device) -> Result<ClmBatch> {
        let windows = (0..batch)
            .map(|_| self.next_window())
            .collect::<Result<Vec<_>>>()?;
        ClmBatch::from_windows(&windows, device)
    }

    /// The first `max` windows of one pass in order (validation), without moving this
    /// stream's cursor.
    pub fn first_windows(
        dir: &Path,
        spec: StreamSpec,
        eos: Option<u32>,
        seq_len: usize,
        max: usize,
    ) -> Result<Vec<Vec<u32>>> {
        let mut s = Self::open(dir, spec, eos, seq_len, 0, false)?;
        let mut out = Vec::new();
        let mut at = 0;
        while out.len() < max {
            if at >= s.reader.dataset.manifest().shards.len() {
                if await_more(&mut s.reader.dataset, s.reader.spec.follow)? {
                    continue;
                }
                break;
            }
            let block = s.read_block((0, at))?;
            out.extend(
                block
                    .starts
                    .iter()
                    .map(|&i| block.tokens[i..=i + seq_len].to_vec()),
            );
            s.cursor.carry = block.rest;
            at += 1;
        }
        out.truncate(max);
        Ok(out)
    }

    /// Where a tail hold-out of `share` of the selected rows' tokens begins, found in one
    /// pass: at the start of the document nearest to the share, so that validation never
    /// shares a document with training; inside the text when it is a single document
    /// (one long text, as Tiny Shakespeare).
    pub fn tail_cut(dir: &Path, split: Option<&str>, eos: Option<u32>, share: f64) -> Result<u64> {
        let s = Self::open(dir, StreamSpec::whole(split), eos, 1, 0, false)?;
        let mut starts = Vec::new();
        let mut total = 0u64;
        for i in 0..s.reader.dataset.manifest().shards.len() {
            for doc in s.reader.documents(i)? {
                if total > 0 && !doc.is_empty() {
                    starts.push(total);
                }
                total += doc.len() as u64;
            }
        }
        let cut = (total as f64 * (1.0 - share)).round() as u64;
        Ok(starts
            .into_iter()
            .min_by_key(|at| at.abs_diff(cut))
            .unwrap_or(cut))
    }

    /// Tokens of the selected rows (before any range), for a tail hold-out.
    pub fn count_tokens(dir: &Path, split: Option<&str>, eos: Option<u32>) -> Result<u64> {
        let spec = StreamSpec::whole(split);
        let mut s = Self::open(dir, spec, eos, 1, 0, false)?;
        let shards = s.reader.dataset.manifest().shards.len();
        s.reader.offset(shards)
    }
}

impl Source for ClmStream {
    type Item = Vec<u32>;
    type Cursor = ClmCursor;

    fn next_item(&mut self) -> Result<Vec<u32>> {
        self.next_window()
    }

    /// A window's targets.
    fn tokens(window: &Vec<u32>) -> u64 {
        window.len().saturating_sub(1) as u64
    }

    fn cursor(&self) -> &ClmCursor {
        &self.cursor
    }

    fn set_cursor(&mut self, cursor: ClmCursor) {
        self.cursor = cursor;
    }
}

/// Causal-LM pretraining of a decoder: the objective the trainer runs.
#[derive(Debug)]
pub struct ClmObjective {
    pub model: gradus_model::Decoder,
    pub params: gradus_model::Params,
    pub train: Mixture<ClmStream>,
    /// Validation windows, fixed for the run.
    pub validation: Vec<Vec<u32>>,
    pub batch_size: usize,
    pub device: Device,
}

impl gradus_train::Objective for ClmObjective {
    type Batch = ClmBatch;

    fn params(&self) -> &gradus_model::Params {
        &self.params
    }

    fn next_batch(&mut self) -> Result<ClmBatch> {
        let windows = (0..self.batch_size)
            .map(|_| self.train.next_item())
            .collect::<Result<Vec<_>>>()?;
        ClmBatch::from_windows(&windows, &self.device)
    }

    fn weight(&self, batch: &ClmBatch) -> usize {
        batch.tokens()
    }

    fn loss_sum(&self, batch: &ClmBatch, ctx: &mut gradus_model::Ctx<'_>) -> Result<Tensor> {
        clm_loss_sum(&self.model, batch, ctx)
    }

    fn evaluate(&mut self) -> Result<std::collections::BTreeMap<String, f64>> {
        let (sum, tokens) = clm_nll(&self.model, &self.validation, self.batch_size, &self.device)?;
        let loss = if tokens == 0 {
            f64::NAN
        } else {
            sum / tokens as f64
        };
        Ok([
            ("loss".to_string(), loss),
            ("perplexity".to_string(), loss.exp()),
        ]
        .into())
    }

    fn data_state(&self) -> Result<serde_json::Value> {
        self.train.state()
    }

    fn restore_data(&mut self, state: serde_json::Value) -> Result<()> {
        self.train.restore(state)
    }

    fn data_seen(&self) -> std::collections::BTreeMap<String, gradus_record::SourceSeen> {
        self.train.seen_if_mixed()
    }

    fn save_model(&self, dir: &Path) -> Result<()> {
        self.params.save(&dir.join("model.safetensors"))?;
        gradus_train::write_json(&dir.join("config.json"), &self.model.config().to_json())
    }

    fn flops_per_unit(&self) -> f64 {
        // 6 per parameter per token (forward + backward), plus attention's scores and
        // weighted sum: 12 · layers · seq · width (Kaplan et al. / PaLM appendix B).
        let c = self.model.config();
        let (layers, width) = c.layers_and_width();
        let seq = self.validation.first().map_or(c.context(), |w| w.len() - 1);
        6.0 * self.params.count() as f64 + 12.0 * (layers * seq * width) as f64
    }
}

/// Summed next-token NLL (nats) of `model` over `windows` of `seq_len + 1` ids, in eval
/// mode, `batch_size` windows at a time; and the number of predicted tokens.
pub fn clm_nll(
    model: &gradus_model::Decoder,
    windows: &[Vec<u32>],
    batch_size: usize,
    device: &Device,
) -> Result<(f64, u64)> {
    let (mut sum, mut tokens) = (0.0, 0u64);
    for chunk in windows.chunks(batch_size.max(1)) {
        let batch = ClmBatch::from_windows(chunk, device)?;
        let l = clm_loss_sum(model, &batch, &mut gradus_model::Ctx::eval())?;
        sum += f64::from(l.to_scalar::<f32>()?);
        tokens += batch.tokens() as u64;
    }
    Ok((sum, tokens))
}

/// Summed next-token cross-entropy of a batch.
pub fn clm_loss_sum(
    model: &gradus_model::Decoder,
    batch: &ClmBatch,
    ctx: &mut gradus_model::Ctx<'_>,
) -> Result<Tensor> {
    let logits = model.logits_rows(&batch.inputs, ctx)?;
    Ok(gradus_model::loss::nll_sum(
        &logits,
        &batch.targets.flatten_all()?,
        None,
        model.kernels(),
    )?)
}
