//! The Arrow schemas of the dataset kinds. This is the only place they are defined:
//! every stage builds and checks its batches against these.
//!
//! A kind's schema lists the columns every dataset of that kind has. A stage may add
//! further columns (the clean stage stores its quality signals beside the text); readers
//! check the required ones and pass the rest through.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

/// The kind of rows a dataset holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetKind {
    /// Text documents: the output of ingest and cleaning.
    Documents,
    /// Token id sequences of documents: the input of language-model pretraining.
    Tokens,
    /// Labeled, encoded task examples: the input of fine-tuning and evaluation.
    Examples,
    /// A fine-tuned model's outputs for examples: predicted class or value with scores.
    Predictions,
}

impl DatasetKind {
    /// All kinds, in pipeline order.
    pub const ALL: [DatasetKind; 4] = [
        Self::Documents,
        Self::Tokens,
        Self::Examples,
        Self::Predictions,
    ];

    /// The name used in manifests and messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Documents => "documents",
            Self::Tokens => "tokens",
            Self::Examples => "examples",
            Self::Predictions => "predictions",
        }
    }

    /// The version of this kind's schema that this build writes. Bumped whenever a
    /// required column changes; readers refuse versions newer than they know.
    pub fn schema_version(self) -> u32 {
        1
    }

    /// The required columns of this kind.
    pub fn schema(self) -> SchemaRef {
        match self {
            Self::Documents => documents_schema(),
            Self::Tokens => tokens_schema(),
            Self::Examples => examples_schema(),
            Self::Predictions => predictions_schema(),
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `list<u32>` as used for token ids.
pub fn u32_list() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::UInt32, false)))
}

/// `list<f32>` as used for class probabilities.
pub fn f32_list() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float32, false)))
}

/// `list<u8>` as used for token type ids.
pub fn u8_list() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::UInt8, false)))
}

/// `documents`: `id` is stable across runs (source + file + line or row), `source` tags
/// where the text came from, `metadata` is a JSON object as text (null when absent).
pub fn documents_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("metadata", DataType::Utf8, true),
    ]))
}

/// `tokens`: one row per encoded document (or chunk of one). `split` is `train` or
/// `validation`, chosen by a hash of `doc_id` so it never changes between runs.
pub fn tokens_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("doc_id", DataType::Utf8, false),
        Field::new("input_ids", u32_list(), false),
        Field::new("n_tokens", DataType::UInt32, false),
        Field::new("split", DataType::Utf8, false),
    ]))
}

/// `examples`: a labeled example of one task. `label` is the class id of classification
/// tasks, `target` the value of regression tasks; the other is null.
pub fn examples_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("task", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
        Field::new("text_pair", DataType::Utf8, true),
        Field::new("label", DataType::Int64, true),
        Field::new("target", DataType::Float32, true),
        Field::new("input_ids", u32_list(), false),
        Field::new("token_type_ids", u8_list(), false),
        Field::new("split", DataType::Utf8, false),
    ]))
}

/// `predictions`: one row per predicted example. Classification fills `predicted` (class
/// id), `predicted_name` and `probs` (every class's probability), with `score` the
/// probability of the predicted class; regression fills `score` (the value) and leaves
/// `probs` empty. `label` / `target` carry the reference when the input had one.
pub fn predictions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("task", DataType::Utf8, false),
        Field::new("split", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, false),
        Field::new("text_pair", DataType::Utf8, true),
        Field::new("predicted", DataType::Int64, true),
        Field::new("predicted_name", DataType::Utf8, true),
        Field::new("score", DataType::Float32, false),
        Field::new("probs", f32_list(), false),
        Field::new("label", DataType::Int64, true),
        Field::new("target", DataType::Float32, true),
    ]))
}

/// Checks that `actual` carries every required column of `kind` with the same type, and
/// that no required non-null column is declared nullable. Returns a message naming the
/// first offending column.
pub fn check_schema(kind: DatasetKind, actual: &Schema) -> Result<(), String> {
    for want in kind.schema().fields() {
        let Ok(got) = actual.field_with_name(want.name()) else {
            return Err(format!(
                "column `{}` ({}) is missing from this {kind} shard",
                want.name(),
                want.data_type()
            ));
        };
        if !same_type(got.data_type(), want.data_type()) {
            return Err(format!(
                "column `{}` has type {}, {kind} requires {}",
                want.name(),
                got.data_type(),
                want.data_type()
            ));
        }
        if got.is_nullable() && !want.is_nullable() {
            return Err(format!(
                "column `{}` is nullable, {kind} requires it non-null",
                want.name()
            ));
        }
    }
    Ok(())
}

/// Type equality that ignores the name and nullability of list items, which differ
/// between Arrow writers ("item" vs "element") without changing the data.
fn same_type(a: &DataType, b: &DataType) -> bool {
    match (a, b) {
        (DataType::List(x), DataType::List(y))
        | (DataType::LargeList(x), DataType::LargeList(y)) => {
            same_type(x.data_type(), y.data_type())
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_accepts_its_own_schema() {
        for kind in DatasetKind::ALL {
            check_schema(kind, &kind.schema()).unwrap();
        }
    }

    #[test]
    fn wrong_type_names_the_column() {
        let schema = Schema::new(vec![
            Field::new("doc_id", DataType::Utf8, false),
            Field::new("input_ids", u32_list(), false),
            Field::new("n_tokens", DataType::Int64, false),
            Field::new("split", DataType::Utf8, false),
        ]);
        let err = check_schema(DatasetKind::Tokens, &schema).unwrap_err();
        assert!(err.contains("`n_tokens`"), "{err}");
    }

    #[test]
    fn missing_column_names_the_column() {
        let schema = Schema::new(vec![Field::new("id", DataType::Utf8, false)]);
        let err = check_schema(DatasetKind::Documents, &schema).unwrap_err();
        assert!(err.contains("`text`"), "{err}");
    }

    #[test]
    fn extra_columns_are_allowed() {
        let mut fields: Vec<Field> = documents_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("word_count", DataType::UInt32, false));
        check_schema(DatasetKind::Documents, &Schema::new(fields)).unwrap();
    }
}
