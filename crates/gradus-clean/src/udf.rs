//! The signals as DataFusion scalar functions, so that the whole clean stage is one plan
//! and users can query and filter on them in SQL:
//!
//! - `quality_signals(text)` returns a struct with every field of [`Signals`]
//!   (`get_field(quality_signals(text), 'words')`), computed in one pass over each string;
//! - `language(text)` returns a struct `{lang, score}` (ISO 639-3 code and confidence).
//!
//! Both take `Utf8`, `LargeUtf8` or `Utf8View` and return null for a null text.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Builder, StringBuilder, StructArray, UInt32Builder,
};
use arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{Result, exec_err};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use crate::signals::{Signals, compute, language};

/// The struct fields of `quality_signals`, in order.
pub static SIGNAL_FIELDS: LazyLock<Fields> = LazyLock::new(|| {
    let mut fields = vec![Field::new("words", DataType::UInt32, true)];
    let f64s = [
        "mean_word_length",
        "symbol_word_ratio",
        "bullet_line_frac",
        "ellipsis_line_frac",
        "alpha_word_frac",
    ];
    fields.extend(f64s.iter().map(|n| Field::new(*n, DataType::Float64, true)));
    fields.push(Field::new("stop_words", DataType::UInt32, true));
    let more = [
        "dup_paragraph_frac",
        "dup_paragraph_char_frac",
        "dup_line_frac",
        "dup_line_char_frac",
        "top_2gram_char_frac",
        "top_3gram_char_frac",
        "top_4gram_char_frac",
        "dup_5gram_char_frac",
        "dup_6gram_char_frac",
        "dup_7gram_char_frac",
        "dup_8gram_char_frac",
        "dup_9gram_char_frac",
        "dup_10gram_char_frac",
        "terminal_punct_line_frac",
        "short_line_frac",
        "newline_ratio",
        "dup_line_char_frac_no_newlines",
    ];
    fields.extend(more.iter().map(|n| Field::new(*n, DataType::Float64, true)));
    Fields::from(fields)
});

/// The f64 fields of a [`Signals`], in [`SIGNAL_FIELDS`] order (without the counts).
fn float_values(s: &Signals) -> Vec<f64> {
    let mut v = vec![
        s.mean_word_length,
        s.symbol_word_ratio,
        s.bullet_line_frac,
        s.ellipsis_line_frac,
        s.alpha_word_frac,
        s.dup_paragraph_frac,
        s.dup_paragraph_char_frac,
        s.dup_line_frac,
        s.dup_line_char_frac,
    ];
    v.extend(s.top_ngram_char_frac);
    v.extend(s.dup_ngram_char_frac);
    v.extend([
        s.terminal_punct_line_frac,
        s.short_line_frac,
        s.newline_ratio,
        s.dup_line_char_frac_no_newlines,
    ]);
    v
}

fn text_signature() -> Signature {
    Signature::one_of(
        vec![
            TypeSignature::Exact(vec![DataType::Utf8]),
            TypeSignature::Exact(vec![DataType::LargeUtf8]),
            TypeSignature::Exact(vec![DataType::Utf8View]),
        ],
        Volatility::Immutable,
    )
}

/// Applies `f` to every string of a text column (null for null).
fn map_texts(arg: &ColumnarValue, rows: usize, mut f: impl FnMut(Option<&str>)) -> Result<()> {
    let array = arg.to_array(rows)?;
    match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().iter().for_each(&mut f),
        DataType::LargeUtf8 => array.as_string::<i64>().iter().for_each(&mut f),
        DataType::Utf8View => array.as_string_view().iter().for_each(&mut f),
        other => return exec_err!("expected a text column, got {other}"),
    }
    Ok(())
}

/// `quality_signals(text)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct QualitySignals {
    signature: Signature,
}

impl Default for QualitySignals {
    fn default() -> Self {
        Self {
            signature: text_signature(),
        }
    }
}

impl ScalarUDFImpl for QualitySignals {
    fn name(&self) -> &str {
        "quality_signals"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(SIGNAL_FIELDS.clone()))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let (mut words, mut stops) = (
            UInt32Builder::with_capacity(rows),
            UInt32Builder::with_capacity(rows),
        );
        let n_floats = SIGNAL_FIELDS.len() - 2;
        let mut floats: Vec<Float64Builder> = (0..n_floats)
            .map(|_| Float64Builder::with_capacity(rows))
            .collect();
        let mut nulls = Vec::with_capacity(rows);
        map_texts(&args.args[0], rows, |text| {
            nulls.push(text.is_some());
            let Some(s) = text.map(compute) else {
                // Null fields too, so a field of a null text's signals is null.
                words.append_null();
                stops.append_null();
                floats.iter_mut().for_each(Float64Builder::append_null);
                return;
            };
            words.append_value(s.words);
            stops.append_value(s.stop_words);
            for (b, v) in floats.iter_mut().zip(float_values(&s)) {
                b.append_value(v);
            }
        })?;
        let mut floats: Vec<ArrayRef> = floats
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        // Field order: words, five floats, stop_words, the remaining floats.
        let rest = floats.split_off(5);
        let mut columns: Vec<ArrayRef> = vec![Arc::new(words.finish())];
        columns.extend(floats);
        columns.push(Arc::new(stops.finish()));
        columns.extend(rest);
        let array = StructArray::try_new(SIGNAL_FIELDS.clone(), columns, Some(nulls.into()))?;
        Ok(ColumnarValue::Array(Arc::new(array)))
    }
}

/// The struct fields of `language`.
pub static LANGUAGE_FIELDS: LazyLock<Fields> = LazyLock::new(|| {
    Fields::from(vec![
        Field::new("lang", DataType::Utf8, true),
        Field::new("score", DataType::Float64, true),
    ])
});

/// `language(text)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Language {
    signature: Signature,
}

impl Default for Language {
    fn default() -> Self {
        Self {
            signature: text_signature(),
        }
    }
}

impl ScalarUDFImpl for Language {
    fn name(&self) -> &str {
        "language"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(LANGUAGE_FIELDS.clone()))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let mut langs = StringBuilder::with_capacity(rows, rows * 3);
        let mut scores = Float64Builder::with_capacity(rows);
        let mut nulls = Vec::with_capacity(rows);
        map_texts(&args.args[0], rows, |text| {
            nulls.push(text.is_some());
            match text.map(language) {
                Some((lang, score)) => {
                    langs.append_value(lang);
                    scores.append_value(score);
                }
                None => {
                    langs.append_null();
                    scores.append_null();
                }
            }
        })?;
        let columns: Vec<ArrayRef> = vec![Arc::new(langs.finish()), Arc::new(scores.finish())];
        let array = StructArray::try_new(LANGUAGE_FIELDS.clone(), columns, Some(nulls.into()))?;
        Ok(ColumnarValue::Array(Arc::new(array)))
    }
}

/// Every gradus cleaning function.
pub fn all() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(QualitySignals::default()),
        ScalarUDF::from(Language::default()),
    ]
}

/// Registers every gradus cleaning function with `registry` (a `SessionContext`, or a
/// Ballista executor's registry).
pub fn register_all(registry: &mut dyn FunctionRegistry) -> Result<()> {
    for udf in all() {
        registry.register_udf(Arc::new(udf))?;
    }
    Ok(())
}
