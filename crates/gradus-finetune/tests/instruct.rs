//! Instruction tuning end to end on tiny decoders: prompts and responses encoded through
//! a template, a GPT-2 and a Llama that learn to answer from the response tokens' loss,
//! exact match of greedy answers, a saved folder that stays a language model, and the
//! refusals of what an instruction task cannot be.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

mod common;

use std::path::{Path, PathBuf};

use gradus_finetune::instruct::split_example;
use gradus_finetune::{FinetuneConfig, HeadConfig, Pooling, Predictor, TaskKind, TaskObjective};
use gradus_shard::OpenMode;
use gradus_tokenize::{ExamplesConfig, SplitFile, Template};
use gradus_train::Trainer;

const TEMPLATE: &str = "Q: {prompt}\nA: ";

/// Every word of two of the letters `abcdef`, reversed: 36 training prompts and 9 of
/// them again as the dev split, in characters with an end-of-text token.
fn reversals(root: &Path) -> PathBuf {
    let letters = ['a', 'b', 'c', 'd', 'e', 'f'];
    let mut words: Vec<String> = Vec::new();
    for a in letters {
        words.extend(letters.iter().map(|b| format!("{a}{b}")));
    }
    let row = |w: &String| format!("reverse: {w}\t{}\n", w.chars().rev().collect::<String>());
    let (train, dev) = (root.join("train.tsv"), root.join("dev.tsv"));
    let header = "prompt\tresponse\n".to_string();
    std::fs::write(
        &train,
        header.clone() + &words.iter().map(row).collect::<String>(),
    )
    .unwrap();
    let dev_rows: String = words.iter().step_by(4).map(row).collect();
    std::fs::write(&dev, header + &dev_rows).unwrap();
    let tk = gradus_tokenize::char_tokenizer(
        ["Q: reverse abcdef\nA:"].iter(),
        &["<|endoftext|>".to_string()],
    )
    .unwrap();
    let files = [
        SplitFile::parse(&format!("train={}", train.display()), "train"),
        SplitFile::parse(&format!("validation={}", dev.display()), "train"),
    ];
    let config = ExamplesConfig {
        task: "reverse".into(),
        response: Some("response".into()),
        template: TEMPLATE.into(),
        seq_len: 32,
        ..ExamplesConfig::default()
    };
    let out = root.join("examples");
    gradus_tokenize::encode_examples(&tk, &config, &files, &out, OpenMode::Overwrite).unwrap();
    out
}

fn sft_config(examples: &Path, model: &Path) -> FinetuneConfig {
    FinetuneConfig {
        model: model.to_path_buf(),
        examples: examples.to_path_buf(),
        seq_len: 32,
        batch_size: 16,
        epochs: 160.0,
        lr: 3e-3,
        warmup_ratio: 0.05,
        eval_steps: Some(200),
        seed: 5,
        ..FinetuneConfig::default()
    }
}

fn train(config: &FinetuneConfig, out: &Path) -> (TaskObjective, gradus_train::TrainReport) {
    let tasks = config.as_tasks();
    let mut objective = tasks.build().unwrap();
    let tc = tasks.train_config(&objective.tasks);
    let report = Trainer::new(tc, out)
        .run(&mut objective, &mut |_| {})
        .unwrap();
    (objective, report)
}

/// The examples hold the prompt the template makes as segment 0 and the response with
/// its end token as segment 1, and generation reads the very same prompt tokens.
#[test]
fn examples_put_the_prompt_in_the_template_and_end_the_response() {
    let tmp = tempfile::tempdir().unwrap();
    let examples = reversals(tmp.path());
    let template = gradus_tokenize::instruction_template(&examples)
        .unwrap()
        .unwrap();
    assert_eq!(template.text, TEMPLATE);
    assert_eq!(template.eos, "<|endoftext|>");
    let tk = gradus_tokenize::load(&examples.join("tokenizer.json")).unwrap();
    let encoder = template.encoder(&tk).unwrap();
    let dev = gradus_finetune::data::load_examples(&examples, Some("validation"), 32).unwrap();
    assert_eq!(dev.len(), 9);
    for e in &dev {
        let (prompt, response) = split_example(e);
        assert_eq!(prompt, encoder.encode_prompt(&e.text).unwrap().as_slice());
        let reference = e.text_pair.as_deref().unwrap();
        assert_eq!(tk.decode(prompt, false).unwrap(), template.apply(&e.text));
        assert_eq!(response.last(), Some(&encoder.eos), "{}", e.id);
        let answer = &response[..response.len() - 1];
        assert_eq!(tk.decode(answer, false).unwrap(), reference);
    }
}

/// A GPT-2 and a Llama learn to reverse words from the loss on response tokens; the
/// score is the exact match of greedy answers; the saved folder is a language model
/// that carries its template, which transformers may open.
#[test]
fn decoders_learn_to_answer_and_stay_language_models() {
    let tmp = tempfile::tempdir().unwrap();
    let examples = reversals(tmp.path());
    for model in common::tiny_decoders(&examples, tmp.path()) {
        let config = sft_config(&examples, &model);
        let untrained = config.as_tasks().build().unwrap().dev_scores().unwrap();
        let before = untrained[0].as_ref().unwrap().scalars["exact_match"];
        let out = model.with_extension("run");
        let (objective, report) = train(&config, &out);
        assert_eq!(objective.model.spec().kind, TaskKind::Instruction);
        let evals = std::fs::read_to_string(out.join("eval.jsonl")).unwrap();
        let values = |key: &str| -> Vec<f64> {
            evals
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .filter_map(|v| v[key].as_f64())
                .collect()
        };
        let losses = values("loss");
        assert!(losses.len() >= 3, "{evals}");
        assert!(
            losses.last().unwrap() < &(losses[0] * 0.5),
            "{}: response loss {losses:?}",
            model.display()
        );
        let best = report.best_value.unwrap();
        assert!(
            best >= 0.75 && before < 0.1,
            "{}: exact match {before} before, {:?} after",
            model.display(),
            values("exact_match")
        );

        let saved = out.join("model");
        let config_json = std::fs::read_to_string(saved.join("config.json")).unwrap();
        assert!(
            !config_json.contains("not a transformers model"),
            "{config_json}"
        );
        let spec = gradus_finetune::read_task_spec(&saved).unwrap().unwrap();
        assert_eq!(spec.template.unwrap().text, TEMPLATE);
        // The saved folder scores as the run did, and gradus-predict's labels are refused.
        let predictor = Predictor::load(&saved, &candle_core::Device::Cpu).unwrap();
        let dev = gradus_finetune::data::load_examples(&examples, Some("validation"), 32).unwrap();
        let (score, _) = predictor.score(&dev).unwrap();
        assert_eq!(score.scalars["exact_match"], best, "{}", model.display());
        assert_eq!(score.report["samples"].as_array().unwrap().len(), 5);
        let e = predictor.predict(&dev).unwrap_err().to_string();
        assert!(e.contains("gradus-generate"), "{e}");
    }
}

/// An instruction task on an encoder, a classifier's head options on an instruction
/// task, and an instruction kind on labelled examples are refused by name.
#[test]
fn what_an_instruction_task_cannot_be_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let examples = reversals(tmp.path());
    let gpt = common::tiny_decoders(&examples, tmp.path()).remove(0);
    let tk = gradus_tokenize::load(&examples.join("tokenizer.json")).unwrap();
    let bert = common::tiny_bert(&tk, &tmp.path().join("bert"));
    let refused = |c: FinetuneConfig| c.build().unwrap_err().to_string();
    let with_head = |head: HeadConfig, base: FinetuneConfig| FinetuneConfig { head, ..base };
    let e = refused(sft_config(&examples, &bert));
    assert!(e.contains("a BERT encoder generates no text"), "{e}");
    let pooled = HeadConfig {
        pooling: Some(Pooling::Mean),
        ..HeadConfig::default()
    };
    let e = refused(with_head(pooled, sft_config(&examples, &gpt)));
    assert!(e.contains("head.pooling") && e.contains("LM head"), "{e}");

    let (train_tsv, dev_tsv) = (tmp.path().join("s-train.tsv"), tmp.path().join("s-dev.tsv"));
    let texts = gradus_testkit::toy_sentiment_tsv(&train_tsv, 40, 1);
    gradus_testkit::toy_sentiment_tsv(&dev_tsv, 10, 2);
    let wp = common::wordpiece(&texts);
    let labelled = tmp.path().join("labelled");
    common::encode(&wp, "toy", (&train_tsv, &dev_tsv), None, &labelled);
    let model = common::tiny_llama(&labelled, &tmp.path().join("llama-wp"));
    let as_instruction = HeadConfig {
        kind: Some(TaskKind::Instruction),
        ..HeadConfig::default()
    };
    let e = refused(with_head(as_instruction, sft_config(&labelled, &model)));
    assert!(e.contains("not instruction examples"), "{e}");
    let e = refused(FinetuneConfig {
        packing: true,
        ..sft_config(&labelled, &model)
    });
    assert!(e.contains("`packing`"), "{e}");

    let e = Template::new("A: ", None, &tk).unwrap_err().to_string();
    assert!(e.contains("{prompt}"), "{e}");
}

/// Packed into rows of 64 tokens (three examples of 21 tokens each), a GPT of 64
/// positions learns the answers from a third as many rows.
#[test]
fn packed_examples_teach_the_same_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let examples = reversals(tmp.path());
    let gpt = gradus_model::GptConfig {
        vocab_size: common::vocab_size(&examples),
        n_positions: 64,
        n_embd: 64,
        n_layer: 2,
        n_head: 4,
        ..gradus_model::GptConfig::default()
    }
    .with_dropout(0.0);
    let dir = tmp.path().join("gpt64");
    let gpt = common::tiny_decoder(&examples, gradus_model::DecoderConfig::Gpt(gpt), &dir);
    let config = FinetuneConfig {
        packing: true,
        seq_len: 64,
        ..sft_config(&examples, &gpt)
    };
    let mut objective = config.as_tasks().build().unwrap();
    assert_eq!(objective.tasks[0].pack, Some(64));
    let batch = gradus_train::Objective::next_batch(&mut objective).unwrap();
    let (_, part) = &batch.parts[0];
    // Three examples to a row (16 to a batch, or 4 in an epoch's last batch).
    assert_eq!(part.ids.dims2().unwrap().0, part.examples.div_ceil(3));
    assert!(part.examples > 3);
    let (_, report) = train(&config, &gpt.with_extension("packed"));
    let best = report.best_value.unwrap();
    assert!(best >= 0.75, "packed: exact match {best}");
}
