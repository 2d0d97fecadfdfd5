//! `gradus outputs`: what a model folder computes on a few texts, as JSON lines, so that
//! the same folder can be checked in another framework (`scripts/hf-roundtrip.py`): a
//! causal LM's logits and greedy continuation, a pretraining model's MLM and
//! next-sentence logits, an encoder's hidden states, a task model's head outputs.

use std::path::Path;

use anyhow::Context;
use candle_core::{Device, Tensor};
use gradus_export::{ModelFolder, ModelKind};
use gradus_model::generate::{Sampling, generate};
use gradus_model::{Bert, BertHeads, Ctx, Decoder, Params};
use serde_json::{Value, json};

/// Tokens a causal LM's greedy continuation runs to.
const CONTINUATION: usize = 20;

/// One JSON object per text: its token ids and what `dir`'s model computes on them.
pub fn model_outputs(dir: &Path, texts: &[String]) -> anyhow::Result<Vec<Value>> {
    let kind = ModelFolder::read(dir)?.kind;
    let tk_path = dir.join("tokenizer.json");
    let tk = gradus_tokenize::load(&tk_path).with_context(|| tk_path.display().to_string())?;
    let encode = |text: &str, specials: bool| -> anyhow::Result<Vec<u32>> {
        let enc = tk
            .encode(text, specials)
            .map_err(|e| anyhow::anyhow!("encoding {text:?}: {e}"))?;
        Ok(enc.get_ids().to_vec())
    };
    match kind {
        ModelKind::CausalLm(_) => {
            let (model, _params) = Decoder::load(dir, Device::Cpu)?;
            let stop = gradus_tokenize::SpecialTokens::of(&tk).eos;
            texts
                .iter()
                .map(|t| causal_lm(&model, t, &encode(t, false)?, stop))
                .collect()
        }
        ModelKind::Task(_) | ModelKind::DecoderTask => task_outputs(dir, texts),
        _ => {
            let (bert, heads) = encoder(dir, kind)?;
            texts
                .iter()
                .map(|t| encoder_outputs(&bert, heads.as_ref(), t, &encode(t, true)?))
                .collect()
        }
    }
}

fn causal_lm(model: &Decoder, text: &str, ids: &[u32], stop: Option<u32>) -> anyhow::Result<Value> {
    let input = Tensor::new(ids, &Device::Cpu)?.unsqueeze(0)?;
    let logits = model.logits(&input, &mut Ctx::eval())?.squeeze(0)?;
    let greedy = Sampling {
        temperature: 0.0,
        ..Sampling::default()
    };
    let continuation = generate(model, ids, CONTINUATION, &greedy, stop)?;
    Ok(json!({
        "text": text,
        "input_ids": ids,
        "logits": logits.to_vec2::<f32>()?,
        "greedy": continuation,
    }))
}

fn encoder(dir: &Path, kind: ModelKind) -> anyhow::Result<(Bert, Option<BertHeads>)> {
    let config = gradus_finetune::read_bert_config(dir)?;
    let mut params = Params::from_checkpoint(dir, Device::Cpu, 0, &[])?;
    let bert = Bert::new(&config, &mut params)?;
    let heads = (kind == ModelKind::Pretraining)
        .then(|| BertHeads::new(&bert, &mut params))
        .transpose()?;
    Ok((bert, heads))
}

fn encoder_outputs(
    bert: &Bert,
    heads: Option<&BertHeads>,
    text: &str,
    ids: &[u32],
) -> anyhow::Result<Value> {
    let input = Tensor::new(ids, &Device::Cpu)?.unsqueeze(0)?;
    let types = input.zeros_like()?;
    let mask = input.ones_like()?;
    let hidden = bert.forward(&input, &types, &mask, &mut Ctx::eval())?;
    let mut out = json!({"text": text, "input_ids": ids});
    match heads {
        Some(h) => {
            let mlm = h.mlm.forward(&hidden)?.squeeze(0)?;
            let nsp = h.nsp(&bert.pool(&hidden)?)?.squeeze(0)?;
            out["prediction_logits"] = json!(mlm.to_vec2::<f32>()?);
            out["seq_relationship_logits"] = json!(nsp.to_vec1::<f32>()?);
        }
        None => out["last_hidden_state"] = json!(hidden.squeeze(0)?.to_vec2::<f32>()?),
    }
    Ok(out)
}

fn task_outputs(dir: &Path, texts: &[String]) -> anyhow::Result<Vec<Value>> {
    let predictor = gradus_finetune::Predictor::load(dir, &Device::Cpu)?;
    let pairs: Vec<(String, Option<String>)> = texts.iter().map(|t| (t.clone(), None)).collect();
    let examples = predictor.encode(&pairs)?;
    let outputs = predictor.outputs(&examples)?;
    Ok(examples
        .iter()
        .zip(outputs)
        .map(|(e, out)| json!({"text": e.text, "input_ids": e.input_ids, "outputs": out}))
        .collect())
}
