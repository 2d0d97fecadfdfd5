//! The cleaning steps and signals as DataFusion scalar functions, so that the whole clean
//! stage is one plan and users can query and filter on them in SQL. Each takes a text
//! column (`Utf8`, `LargeUtf8` or `Utf8View`), returns a struct (read a field with
//! `get_field(f(text), 'name')`) and is null for a null text:
//!
//! | function | fields |
//! | --- | --- |
//! | `quality_signals(text)` | every field of [`Signals`] ([`SIGNAL_FIELDS`]) |
//! | `line_signals(text)` | FineWeb's four line signals ([`LineSignals`]) |
//! | `language(text)` | `lang` (ISO 639-1), `score` |
//! | `normalize_text(text)` | `text` (the [`NormalizeConfig`] steps) |
//! | `clean_lines(text)` | `text`, `lines_removed`, `sentences`, `lorem_ipsum`, `curly_bracket` |
//! | `scrub_pii(text)` | `text`, `emails`, `ipv4`, `ipv6` |
//! | `dedup_keys(text)` | `exact` (hash), `bands` (LSH keys), `signature` (MinHash) |
//! | `contamination(text)` | `set`: the evaluation set it shares an n-gram with, or empty (with `[decontaminate]`) |
//!
//! Rows of a batch are computed in parallel on the rayon pool; results keep row order,
//! so the output does not depend on the number of threads.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, ListArray, StringArray, StructArray,
    UInt32Array, UInt64Array,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, Fields, UInt64Type};
use datafusion::common::{Result, exec_err};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::decontaminate::NgramIndex;
use crate::lines::LineConfig;
use crate::minhash::{MinHashConfig, MinHasher};
use crate::normalize::NormalizeConfig;
use crate::pii::PiiConfig;
use crate::signals::{LineSignals, Signals, compute, language, line_signals};

/// One field value of a struct result.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U32(u32),
    U64(u64),
    F64(f64),
    Bool(bool),
    Str(String),
    U64List(Vec<u64>),
}

/// A per-document function returning a struct: its fields and how to compute a row.
pub trait TextFunction: Debug + Send + Sync + PartialEq + Eq + Hash + 'static {
    /// The SQL name.
    fn name(&self) -> &str;
    /// The struct's fields; `compute` returns values in this order and type.
    fn fields(&self) -> Fields;
    fn compute(&self, text: &str) -> Vec<Value>;
}

/// A [`TextFunction`] as a DataFusion scalar UDF.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct StructUdf<F> {
    function: F,
    signature: Signature,
}

impl<F: TextFunction> StructUdf<F> {
    pub fn new(function: F) -> Self {
        Self {
            function,
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Utf8]),
                    TypeSignature::Exact(vec![DataType::LargeUtf8]),
                    TypeSignature::Exact(vec![DataType::Utf8View]),
                ],
                Volatility::Immutable,
            ),
        }
    }

    pub fn into_udf(self) -> ScalarUDF {
        ScalarUDF::new_from_impl(self)
    }
}

impl<F: TextFunction> ScalarUDFImpl for StructUdf<F> {
    fn name(&self) -> &str {
        self.function.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(self.function.fields()))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        let texts: Vec<Option<&str>> = match array.data_type() {
            DataType::Utf8 => array.as_string::<i32>().iter().collect(),
            DataType::LargeUtf8 => array.as_string::<i64>().iter().collect(),
            DataType::Utf8View => array.as_string_view().iter().collect(),
            other => return exec_err!("{}: expected a text column, got {other}", self.name()),
        };
        let rows: Vec<Option<Vec<Value>>> = texts
            .par_iter()
            .map(|t| t.map(|t| self.function.compute(t)))
            .collect();
        let fields = self.function.fields();
        let columns = fields
            .iter()
            .enumerate()
            .map(|(i, f)| column(f.data_type(), &rows, i))
            .collect::<Result<Vec<_>>>()?;
        let nulls = NullBuffer::from(rows.iter().map(Option::is_some).collect::<Vec<_>>());
        let array = StructArray::try_new(fields, columns, Some(nulls))?;
        Ok(ColumnarValue::Array(Arc::new(array)))
    }
}

/// Column `i` of the rows as an array of type `ty`.
fn column(ty: &DataType, rows: &[Option<Vec<Value>>], i: usize) -> Result<ArrayRef> {
    let array = match ty {
        DataType::UInt32 => gather::<UInt32Array, _>(rows, i, |v| match v {
            Value::U32(x) => Some(*x),
            _ => None,
        }),
        DataType::UInt64 => gather::<UInt64Array, _>(rows, i, |v| match v {
            Value::U64(x) => Some(*x),
            _ => None,
        }),
        DataType::Float64 => gather::<Float64Array, _>(rows, i, |v| match v {
            Value::F64(x) => Some(*x),
            _ => None,
        }),
        DataType::Boolean => gather::<BooleanArray, _>(rows, i, |v| match v {
            Value::Bool(x) => Some(*x),
            _ => None,
        }),
        DataType::Utf8 => gather::<StringArray, _>(rows, i, |v| match v {
            Value::Str(x) => Some(x.as_str()),
            _ => None,
        }),
        DataType::List(_) => Arc::new(ListArray::from_iter_primitive::<UInt64Type, _, _>(
            rows.iter().map(|r| match r.as_ref().map(|v| &v[i]) {
                Some(Value::U64List(x)) => Some(x.iter().map(|v| Some(*v)).collect::<Vec<_>>()),
                _ => None,
            }),
        )),
        other => return exec_err!("unsupported struct field type {other}"),
    };
    Ok(array)
}

/// Value `i` of each row as taken by `pick`, null for a missing row or another variant.
fn gather<'a, A, T>(
    rows: &'a [Option<Vec<Value>>],
    i: usize,
    pick: impl Fn(&'a Value) -> Option<T>,
) -> ArrayRef
where
    A: FromIterator<Option<T>> + arrow::array::Array + 'static,
{
    let values = rows.iter().map(|r| r.as_ref().and_then(|v| pick(&v[i])));
    Arc::new(values.collect::<A>())
}

fn u64_list() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::UInt64, true)))
}

fn fields(spec: &[(&str, DataType)]) -> Fields {
    spec.iter()
        .map(|(n, t)| Field::new(*n, t.clone(), true))
        .collect()
}

/// The struct fields of `quality_signals`, in order.
pub static SIGNAL_FIELDS: LazyLock<Fields> = LazyLock::new(|| {
    let mut spec = vec![("words", DataType::UInt32)];
    let f64s = [
        "mean_word_length",
        "symbol_word_ratio",
        "bullet_line_frac",
        "ellipsis_line_frac",
        "alpha_word_frac",
    ];
    spec.extend(f64s.iter().map(|n| (*n, DataType::Float64)));
    spec.push(("stop_words", DataType::UInt32));
    spec.extend(FLOAT_SIGNALS_AFTER_STOP_WORDS.map(|n| (n, DataType::Float64)));
    fields(&spec)
});

const FLOAT_SIGNALS_AFTER_STOP_WORDS: [&str; 17] = [
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

/// The values of a [`Signals`] in [`SIGNAL_FIELDS`] order.
fn signal_values(s: &Signals) -> Vec<Value> {
    let mut v = vec![Value::U32(s.words)];
    v.extend(
        [
            s.mean_word_length,
            s.symbol_word_ratio,
            s.bullet_line_frac,
            s.ellipsis_line_frac,
            s.alpha_word_frac,
        ]
        .map(Value::F64),
    );
    v.push(Value::U32(s.stop_words));
    let mut rest = vec![
        s.dup_paragraph_frac,
        s.dup_paragraph_char_frac,
        s.dup_line_frac,
        s.dup_line_char_frac,
    ];
    rest.extend(s.top_ngram_char_frac);
    rest.extend(s.dup_ngram_char_frac);
    rest.extend([
        s.terminal_punct_line_frac,
        s.short_line_frac,
        s.newline_ratio,
        s.dup_line_char_frac_no_newlines,
    ]);
    v.extend(rest.into_iter().map(Value::F64));
    v
}

/// `quality_signals(text)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct QualitySignals;

impl TextFunction for QualitySignals {
    fn name(&self) -> &str {
        "quality_signals"
    }
    fn fields(&self) -> Fields {
        SIGNAL_FIELDS.clone()
    }
    fn compute(&self, text: &str) -> Vec<Value> {
        signal_values(&compute(text))
    }
}

/// `line_signals(text)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LineSignalsFn;

impl TextFunction for LineSignalsFn {
    fn name(&self) -> &str {
        "line_signals"
    }
    fn fields(&self) -> Fields {
        let f = DataType::Float64;
        fields(&[
            ("terminal_punct_line_frac", f.clone()),
            ("short_line_frac", f.clone()),
            ("newline_ratio", f.clone()),
            ("dup_line_char_frac_no_newlines", f),
        ])
    }
    fn compute(&self, text: &str) -> Vec<Value> {
        let LineSignals {
            terminal_punct_line_frac,
            short_line_frac,
            newline_ratio,
            dup_line_char_frac_no_newlines,
        } = line_signals(text);
        [
            terminal_punct_line_frac,
            short_line_frac,
            newline_ratio,
            dup_line_char_frac_no_newlines,
        ]
        .map(Value::F64)
        .to_vec()
    }
}

/// `language(text)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Language;

impl TextFunction for Language {
    fn name(&self) -> &str {
        "language"
    }
    fn fields(&self) -> Fields {
        fields(&[("lang", DataType::Utf8), ("score", DataType::Float64)])
    }
    fn compute(&self, text: &str) -> Vec<Value> {
        let (lang, score) = language(text);
        vec![Value::Str(lang.to_owned()), Value::F64(score)]
    }
}

/// `normalize_text(text)` under one [`NormalizeConfig`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Normalize(pub NormalizeConfig);

impl TextFunction for Normalize {
    fn name(&self) -> &str {
        "normalize_text"
    }
    fn fields(&self) -> Fields {
        fields(&[("text", DataType::Utf8)])
    }
    fn compute(&self, text: &str) -> Vec<Value> {
        vec![Value::Str(self.0.apply(text))]
    }
}

/// `clean_lines(text)` under one [`LineConfig`] (C4 line cleaning).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CleanLines(pub LineConfig);

impl TextFunction for CleanLines {
    fn name(&self) -> &str {
        "clean_lines"
    }
    fn fields(&self) -> Fields {
        fields(&[
            ("text", DataType::Utf8),
            ("lines_removed", DataType::UInt32),
            ("sentences", DataType::UInt32),
            ("lorem_ipsum", DataType::Boolean),
            ("curly_bracket", DataType::Boolean),
        ])
    }
    fn compute(&self, text: &str) -> Vec<Value> {
        let c = self.0.apply(text);
        vec![
            Value::Str(c.text),
            Value::U32(c.lines_removed),
            Value::U32(c.sentences),
            Value::Bool(c.lorem_ipsum),
            Value::Bool(c.curly_bracket),
        ]
    }
}

/// `scrub_pii(text)` under one [`PiiConfig`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ScrubPii(pub PiiConfig);

impl TextFunction for ScrubPii {
    fn name(&self) -> &str {
        "scrub_pii"
    }
    fn fields(&self) -> Fields {
        fields(&[
            ("text", DataType::Utf8),
            ("emails", DataType::UInt32),
            ("ipv4", DataType::UInt32),
            ("ipv6", DataType::UInt32),
        ])
    }
    fn compute(&self, text: &str) -> Vec<Value> {
        let s = self.0.apply(text);
        vec![
            Value::Str(s.text),
            Value::U32(s.emails),
            Value::U32(s.ipv4),
            Value::U32(s.ipv6),
        ]
    }
}

/// `dedup_keys(text)`: the exact-dedup hash of the text and, when near dedup is on, the
/// MinHash band keys and signature under one [`MinHashConfig`].
#[derive(Debug, Clone)]
pub struct DedupKeys {
    config: Option<MinHashConfig>,
    hasher: Option<MinHasher>,
}

impl DedupKeys {
    pub fn new(near: Option<MinHashConfig>) -> Self {
        Self {
            config: near,
            hasher: near.map(|c| c.hashers()),
        }
    }
}

impl PartialEq for DedupKeys {
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config
    }
}

impl Eq for DedupKeys {}

impl Hash for DedupKeys {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // The hashers derive from the config; hashing the config's identity is enough.
        if let Some(c) = &self.config {
            (c.shingle, c.n, c.bands, c.rows, c.seed).hash(state);
        }
    }
}

impl TextFunction for DedupKeys {
    fn name(&self) -> &str {
        "dedup_keys"
    }
    fn fields(&self) -> Fields {
        fields(&[
            ("exact", DataType::UInt64),
            ("bands", u64_list()),
            ("signature", u64_list()),
        ])
    }
    fn compute(&self, text: &str) -> Vec<Value> {
        let exact = Value::U64(xxh3_64(text.as_bytes()));
        let signature = self.hasher.as_ref().and_then(|h| h.signature(text));
        let (bands, signature) = match (&self.hasher, signature) {
            (Some(h), Some(sig)) => (h.band_keys(&sig), sig),
            _ => (Vec::new(), Vec::new()),
        };
        vec![exact, Value::U64List(bands), Value::U64List(signature)]
    }
}

/// One configured cleaning function, as data: what a process that did not build the
/// plan (a Ballista scheduler or executor) needs to rebuild the same function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "function", content = "config", rename_all = "snake_case")]
pub enum UdfSpec {
    NormalizeText(NormalizeConfig),
    ScrubPii(PiiConfig),
    CleanLines(LineConfig),
    QualitySignals,
    LineSignals,
    Language,
    DedupKeys(Option<MinHashConfig>),
    Contamination(NgramIndex),
}

impl UdfSpec {
    /// The spec of `udf` when it is one of gradus's functions.
    pub fn of(udf: &ScalarUDF) -> Option<Self> {
        let f = udf.inner();
        let spec = if let Some(n) = f.downcast_ref::<StructUdf<Normalize>>() {
            Self::NormalizeText(n.function.0)
        } else if let Some(p) = f.downcast_ref::<StructUdf<ScrubPii>>() {
            Self::ScrubPii(p.function.0)
        } else if let Some(c) = f.downcast_ref::<StructUdf<CleanLines>>() {
            Self::CleanLines(c.function.0)
        } else if f.downcast_ref::<StructUdf<QualitySignals>>().is_some() {
            Self::QualitySignals
        } else if f.downcast_ref::<StructUdf<LineSignalsFn>>().is_some() {
            Self::LineSignals
        } else if f.downcast_ref::<StructUdf<Language>>().is_some() {
            Self::Language
        } else if let Some(d) = f.downcast_ref::<StructUdf<DedupKeys>>() {
            Self::DedupKeys(d.function.config)
        } else if let Some(c) = f.downcast_ref::<StructUdf<Contamination>>() {
            Self::Contamination(c.function.0.clone())
        } else {
            return None;
        };
        Some(spec)
    }

    pub fn into_udf(self) -> ScalarUDF {
        match self {
            Self::NormalizeText(c) => StructUdf::new(Normalize(c)).into_udf(),
            Self::ScrubPii(c) => StructUdf::new(ScrubPii(c)).into_udf(),
            Self::CleanLines(c) => StructUdf::new(CleanLines(c)).into_udf(),
            Self::QualitySignals => StructUdf::new(QualitySignals).into_udf(),
            Self::LineSignals => StructUdf::new(LineSignalsFn).into_udf(),
            Self::Language => StructUdf::new(Language).into_udf(),
            Self::DedupKeys(near) => StructUdf::new(DedupKeys::new(near)).into_udf(),
            Self::Contamination(index) => StructUdf::new(Contamination(index)).into_udf(),
        }
    }
}

/// `contamination(text)`: `set`, the evaluation set the text shares an n-gram with, or
/// an empty string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Contamination(pub NgramIndex);

impl TextFunction for Contamination {
    fn name(&self) -> &str {
        "contamination"
    }

    fn fields(&self) -> Fields {
        Fields::from(vec![Field::new("set", DataType::Utf8, false)])
    }

    fn compute(&self, text: &str) -> Vec<Value> {
        let set = self.0.contaminated_by(text).unwrap_or_default();
        vec![Value::Str(set.to_string())]
    }
}

/// The configuration-free functions: `quality_signals`, `line_signals`, `language`, and
/// the steps under their default settings.
pub fn all() -> Vec<ScalarUDF> {
    vec![
        StructUdf::new(QualitySignals).into_udf(),
        StructUdf::new(LineSignalsFn).into_udf(),
        StructUdf::new(Language).into_udf(),
        StructUdf::new(Normalize::default()).into_udf(),
        StructUdf::new(CleanLines::default()).into_udf(),
        StructUdf::new(ScrubPii::default()).into_udf(),
        StructUdf::new(DedupKeys::new(Some(MinHashConfig::default()))).into_udf(),
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
