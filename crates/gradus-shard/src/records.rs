//! Typed rows for each dataset kind, and their conversion to and from record batches.
//! Stages that work row by row (tokenizers, loaders) use these instead of touching Arrow
//! arrays; bulk transforms (cleaning on DataFusion) work on the batches directly. Rows
//! convert through serde (`serde_arrow`), against each kind's own schema.

use std::sync::Arc;

use arrow::array::{ListArray, StringBuilder, UInt32Array};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::schema::{DatasetKind, check_schema};

/// A row type of one dataset kind, its fields named as the kind's columns.
pub trait Record: Sized + Serialize + DeserializeOwned {
    /// The kind whose schema this row follows.
    const KIND: DatasetKind;

    /// Builds one batch from rows, with exactly the kind's schema.
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        serde_arrow::to_record_batch(Self::KIND.schema().fields(), &rows).map_err(external)
    }

    /// Reads rows back from a batch carrying (at least) the kind's columns.
    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>, ArrowError> {
        let schema = Self::KIND.schema();
        check_schema(Self::KIND, batch.schema_ref()).map_err(ArrowError::SchemaError)?;
        // Only the kind's columns: a batch may carry others, of any type.
        let columns = schema
            .fields()
            .iter()
            .map(|f| batch.schema_ref().index_of(f.name()))
            .collect::<Result<Vec<_>, _>>()?;
        serde_arrow::from_record_batch(&batch.project(&columns)?).map_err(external)
    }
}

fn external(e: serde_arrow::Error) -> ArrowError {
    ArrowError::ExternalError(Box::new(e))
}

/// A row of a `documents` dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub id: String,
    pub text: String,
    pub source: String,
    /// A JSON object as text.
    pub metadata: Option<String>,
}

/// A row of a `tokens` dataset (its `n_tokens` column is the length of `input_ids`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSeq {
    pub doc_id: String,
    pub input_ids: Vec<u32>,
    /// `train` or `validation`.
    pub split: String,
}

/// A row of a `predictions` dataset (see [`crate::schema::predictions_schema`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub id: String,
    pub task: String,
    pub split: String,
    pub text: String,
    pub text_pair: Option<String>,
    pub predicted: Option<i64>,
    pub predicted_name: Option<String>,
    pub score: f32,
    pub probs: Vec<f32>,
    pub label: Option<i64>,
    pub target: Option<f32>,
}

/// A row of an `examples` dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub id: String,
    pub task: String,
    pub text: String,
    pub text_pair: Option<String>,
    pub label: Option<i64>,
    pub target: Option<f32>,
    pub input_ids: Vec<u32>,
    pub token_type_ids: Vec<u8>,
    pub split: String,
}

impl Record for Document {
    const KIND: DatasetKind = DatasetKind::Documents;
}

impl Record for Example {
    const KIND: DatasetKind = DatasetKind::Examples;
}

impl Record for Prediction {
    const KIND: DatasetKind = DatasetKind::Predictions;
}

/// Builds a `tokens` batch row by row from borrowed ids, with one copy of each id: the
/// hot path of encoding, where building `TokenSeq`s first would copy every id twice.
#[derive(Debug, Default)]
pub struct TokensBuilder {
    doc_ids: StringBuilder,
    lengths: Vec<usize>,
    values: Vec<u32>,
    splits: StringBuilder,
}

impl TokensBuilder {
    /// A builder with room for `rows` rows and `tokens` ids.
    pub fn with_capacity(rows: usize, tokens: usize) -> Self {
        Self {
            doc_ids: StringBuilder::with_capacity(rows, rows * 16),
            lengths: Vec::with_capacity(rows),
            values: Vec::with_capacity(tokens),
            splits: StringBuilder::with_capacity(rows, rows * 8),
        }
    }

    /// Appends one document: `ids`, then `extra` if given (an end-of-text id, say).
    pub fn push(&mut self, doc_id: &str, ids: &[u32], extra: Option<u32>, split: &str) {
        self.doc_ids.append_value(doc_id);
        self.values.extend_from_slice(ids);
        self.values.extend(extra);
        self.lengths.push(ids.len() + usize::from(extra.is_some()));
        self.splits.append_value(split);
    }

    /// Rows so far.
    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    /// The batch, with exactly the `tokens` schema.
    pub fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let schema = DatasetKind::Tokens.schema();
        let n_tokens = self
            .lengths
            .iter()
            .map(|&n| u32::try_from(n))
            .collect::<Result<UInt32Array, _>>()
            .map_err(|e| ArrowError::InvalidArgumentError(e.to_string()))?;
        let DataType::List(item) = schema.field(1).data_type() else {
            unreachable!("input_ids is a list column")
        };
        let ids = ListArray::new(
            item.clone(),
            OffsetBuffer::from_lengths(self.lengths),
            Arc::new(UInt32Array::from(self.values)),
            None,
        );
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(self.doc_ids.finish()),
                Arc::new(ids),
                Arc::new(n_tokens),
                Arc::new(self.splits.finish()),
            ],
        )
    }
}

impl Record for TokenSeq {
    const KIND: DatasetKind = DatasetKind::Tokens;

    /// Through [`TokensBuilder`], which also fills `n_tokens`.
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        let tokens = rows.iter().map(|r| r.input_ids.len()).sum();
        let mut builder = TokensBuilder::with_capacity(rows.len(), tokens);
        for r in rows {
            builder.push(&r.doc_id, &r.input_ids, None, &r.split);
        }
        builder.finish()
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Float64Array};
    use arrow::datatypes::{Field, Schema, UInt32Type};

    use super::*;

    /// A stage's own columns beside the kind's (any type) are left out of the rows, and
    /// a batch without one of the kind's columns is refused naming it.
    #[test]
    fn rows_read_the_kind_s_columns_only() {
        let docs = vec![Document {
            id: "a:1".into(),
            text: "some words".into(),
            source: "a".into(),
            metadata: None,
        }];
        let batch = Document::to_batch(&docs).unwrap();
        let mut fields = batch.schema().fields().to_vec();
        fields.push(Arc::new(Field::new("score", DataType::Float64, false)));
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(Float64Array::from(vec![0.5])));
        let wider = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        assert_eq!(Document::from_batch(&wider).unwrap(), docs);
        let narrower = batch.project(&[0, 1, 3]).unwrap();
        let err = Document::from_batch(&narrower).unwrap_err().to_string();
        assert!(err.contains("source"), "{err}");
    }

    #[test]
    fn examples_round_trip_through_a_batch() {
        let rows = vec![
            Example {
                id: "sst2:0".into(),
                task: "sst2".into(),
                text: "a fine film".into(),
                text_pair: None,
                label: Some(1),
                target: None,
                input_ids: vec![101, 7, 8, 102],
                token_type_ids: vec![0, 0, 0, 0],
                split: "train".into(),
            },
            Example {
                id: "stsb:0".into(),
                task: "stsb".into(),
                text: "a".into(),
                text_pair: Some("b".into()),
                label: None,
                target: Some(3.5),
                input_ids: vec![101, 1, 102, 2, 102],
                token_type_ids: vec![0, 0, 0, 1, 1],
                split: "validation".into(),
            },
        ];
        let batch = Example::to_batch(&rows).unwrap();
        assert_eq!(Example::from_batch(&batch).unwrap(), rows);
    }

    #[test]
    fn tokens_count_their_ids() {
        let rows = vec![TokenSeq {
            doc_id: "d".into(),
            input_ids: vec![1, 2, 3],
            split: "train".into(),
        }];
        let batch = TokenSeq::to_batch(&rows).unwrap();
        let n = batch.column(2).as_primitive::<UInt32Type>().value(0);
        assert_eq!(n, 3);
        assert_eq!(TokenSeq::from_batch(&batch).unwrap(), rows);
    }

    #[test]
    fn predictions_round_trip_with_and_without_classes() {
        let rows = vec![
            Prediction {
                id: "sst2:validation:2".into(),
                task: "sst2".into(),
                split: "validation".into(),
                text: "a charming journey".into(),
                text_pair: None,
                predicted: Some(1),
                predicted_name: Some("positive".into()),
                score: 0.75,
                probs: vec![0.25, 0.75],
                label: Some(1),
                target: None,
            },
            Prediction {
                id: "stsb:validation:3".into(),
                task: "stsb".into(),
                split: "validation".into(),
                text: "a man".into(),
                text_pair: Some("a person".into()),
                predicted: None,
                predicted_name: None,
                score: 3.5,
                probs: Vec::new(),
                label: None,
                target: Some(4.0),
            },
        ];
        let batch = Prediction::to_batch(&rows).unwrap();
        assert_eq!(batch.schema(), DatasetKind::Predictions.schema());
        assert_eq!(Prediction::from_batch(&batch).unwrap(), rows);
    }
}
