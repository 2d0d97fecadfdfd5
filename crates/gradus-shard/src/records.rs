//! Typed rows for each dataset kind, and their conversion to and from record batches.
//! Stages that work row by row (tokenizers, loaders) use these instead of touching Arrow
//! arrays; bulk transforms (cleaning on DataFusion) work on the batches directly.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float32Array, Int64Array, ListArray, StringArray, StringBuilder,
    UInt32Array,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, Float32Type, Int64Type, UInt8Type, UInt32Type};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use crate::schema::{DatasetKind, check_schema};

/// A row type of one dataset kind.
pub trait Record: Sized {
    /// The kind whose schema this row follows.
    const KIND: DatasetKind;
    /// Builds one batch from rows, with exactly the kind's schema.
    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError>;
    /// Reads rows back from a batch carrying (at least) the kind's columns.
    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>, ArrowError>;
}

/// A row of a `documents` dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub id: String,
    pub text: String,
    pub source: String,
    /// A JSON object as text.
    pub metadata: Option<String>,
}

/// A row of a `tokens` dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSeq {
    pub doc_id: String,
    pub input_ids: Vec<u32>,
    /// `train` or `validation`.
    pub split: String,
}

/// A row of a `predictions` dataset (see [`crate::schema::predictions_schema`]).
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
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

fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

fn opt_strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.collect::<StringArray>())
}

/// A non-null `list<T>` from one vector per row, built from one flat buffer.
fn list<T, A>(field: &Field, rows: impl Iterator<Item = Vec<T>>, flat: fn(Vec<T>) -> A) -> ArrayRef
where
    A: Array + 'static,
{
    let mut lengths = Vec::new();
    let mut values = Vec::new();
    for row in rows {
        lengths.push(row.len());
        values.extend(row);
    }
    let DataType::List(item) = field.data_type() else {
        unreachable!("list() is only called with list fields")
    };
    Arc::new(ListArray::new(
        item.clone(),
        OffsetBuffer::from_lengths(lengths),
        Arc::new(flat(values)),
        None,
    ))
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, ArrowError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| ArrowError::SchemaError(format!("column `{name}` is missing")))
}

fn str_col<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray, ArrowError> {
    column(batch, name)?
        .as_string_opt::<i32>()
        .ok_or_else(|| ArrowError::SchemaError(format!("column `{name}` is not utf8")))
}

fn opt_str(array: &StringArray, i: usize) -> Option<String> {
    array.is_valid(i).then(|| array.value(i).to_string())
}

fn list_values<T: arrow::datatypes::ArrowPrimitiveType>(
    batch: &RecordBatch,
    name: &str,
) -> Result<Vec<Vec<T::Native>>, ArrowError> {
    let list = column(batch, name)?
        .as_list_opt::<i32>()
        .ok_or_else(|| ArrowError::SchemaError(format!("column `{name}` is not a list")))?;
    let values = list.values().as_primitive_opt::<T>().ok_or_else(|| {
        ArrowError::SchemaError(format!("column `{name}` has the wrong item type"))
    })?;
    Ok(list
        .offsets()
        .windows(2)
        .map(|w| values.values()[w[0] as usize..w[1] as usize].to_vec())
        .collect())
}

fn checked(kind: DatasetKind, batch: &RecordBatch) -> Result<(), ArrowError> {
    check_schema(kind, batch.schema_ref()).map_err(ArrowError::SchemaError)
}

impl Record for Document {
    const KIND: DatasetKind = DatasetKind::Documents;

    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        RecordBatch::try_new(
            Self::KIND.schema(),
            vec![
                strings(rows.iter().map(|r| r.id.as_str())),
                strings(rows.iter().map(|r| r.text.as_str())),
                strings(rows.iter().map(|r| r.source.as_str())),
                opt_strings(rows.iter().map(|r| r.metadata.as_deref())),
            ],
        )
    }

    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>, ArrowError> {
        checked(Self::KIND, batch)?;
        let (id, text) = (str_col(batch, "id")?, str_col(batch, "text")?);
        let (source, meta) = (str_col(batch, "source")?, str_col(batch, "metadata")?);
        Ok((0..batch.num_rows())
            .map(|i| Document {
                id: id.value(i).to_string(),
                text: text.value(i).to_string(),
                source: source.value(i).to_string(),
                metadata: opt_str(meta, i),
            })
            .collect())
    }
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

    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        let tokens = rows.iter().map(|r| r.input_ids.len()).sum();
        let mut builder = TokensBuilder::with_capacity(rows.len(), tokens);
        for r in rows {
            builder.push(&r.doc_id, &r.input_ids, None, &r.split);
        }
        builder.finish()
    }

    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>, ArrowError> {
        checked(Self::KIND, batch)?;
        let (doc_id, split) = (str_col(batch, "doc_id")?, str_col(batch, "split")?);
        let ids = list_values::<UInt32Type>(batch, "input_ids")?;
        Ok(ids
            .into_iter()
            .enumerate()
            .map(|(i, input_ids)| TokenSeq {
                doc_id: doc_id.value(i).to_string(),
                input_ids,
                split: split.value(i).to_string(),
            })
            .collect())
    }
}

impl Record for Example {
    const KIND: DatasetKind = DatasetKind::Examples;

    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        let schema = Self::KIND.schema();
        RecordBatch::try_new(
            schema.clone(),
            vec![
                strings(rows.iter().map(|r| r.id.as_str())),
                strings(rows.iter().map(|r| r.task.as_str())),
                strings(rows.iter().map(|r| r.text.as_str())),
                opt_strings(rows.iter().map(|r| r.text_pair.as_deref())),
                Arc::new(rows.iter().map(|r| r.label).collect::<Int64Array>()),
                Arc::new(rows.iter().map(|r| r.target).collect::<Float32Array>()),
                list(
                    schema.field(6),
                    rows.iter().map(|r| r.input_ids.clone()),
                    UInt32Array::from,
                ),
                list(
                    schema.field(7),
                    rows.iter().map(|r| r.token_type_ids.clone()),
                    arrow::array::UInt8Array::from,
                ),
                strings(rows.iter().map(|r| r.split.as_str())),
            ],
        )
    }

    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>, ArrowError> {
        checked(Self::KIND, batch)?;
        let (id, task) = (str_col(batch, "id")?, str_col(batch, "task")?);
        let (text, pair) = (str_col(batch, "text")?, str_col(batch, "text_pair")?);
        let split = str_col(batch, "split")?;
        let label = column(batch, "label")?.as_primitive::<Int64Type>();
        let target = column(batch, "target")?.as_primitive::<Float32Type>();
        let ids = list_values::<UInt32Type>(batch, "input_ids")?;
        let types = list_values::<UInt8Type>(batch, "token_type_ids")?;
        Ok(ids
            .into_iter()
            .zip(types)
            .enumerate()
            .map(|(i, (input_ids, token_type_ids))| Example {
                id: id.value(i).to_string(),
                task: task.value(i).to_string(),
                text: text.value(i).to_string(),
                text_pair: opt_str(pair, i),
                label: label.is_valid(i).then(|| label.value(i)),
                target: target.is_valid(i).then(|| target.value(i)),
                input_ids,
                token_type_ids,
                split: split.value(i).to_string(),
            })
            .collect())
    }
}

impl Record for Prediction {
    const KIND: DatasetKind = DatasetKind::Predictions;

    fn to_batch(rows: &[Self]) -> Result<RecordBatch, ArrowError> {
        let schema = Self::KIND.schema();
        RecordBatch::try_new(
            schema.clone(),
            vec![
                strings(rows.iter().map(|r| r.id.as_str())),
                strings(rows.iter().map(|r| r.task.as_str())),
                strings(rows.iter().map(|r| r.split.as_str())),
                strings(rows.iter().map(|r| r.text.as_str())),
                opt_strings(rows.iter().map(|r| r.text_pair.as_deref())),
                Arc::new(rows.iter().map(|r| r.predicted).collect::<Int64Array>()),
                opt_strings(rows.iter().map(|r| r.predicted_name.as_deref())),
                Arc::new(rows.iter().map(|r| Some(r.score)).collect::<Float32Array>()),
                list(
                    schema.field(8),
                    rows.iter().map(|r| r.probs.clone()),
                    Float32Array::from,
                ),
                Arc::new(rows.iter().map(|r| r.label).collect::<Int64Array>()),
                Arc::new(rows.iter().map(|r| r.target).collect::<Float32Array>()),
            ],
        )
    }

    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>, ArrowError> {
        checked(Self::KIND, batch)?;
        let (id, task) = (str_col(batch, "id")?, str_col(batch, "task")?);
        let (split, text) = (str_col(batch, "split")?, str_col(batch, "text")?);
        let (pair, name) = (
            str_col(batch, "text_pair")?,
            str_col(batch, "predicted_name")?,
        );
        let predicted = column(batch, "predicted")?.as_primitive::<Int64Type>();
        let score = column(batch, "score")?.as_primitive::<Float32Type>();
        let label = column(batch, "label")?.as_primitive::<Int64Type>();
        let target = column(batch, "target")?.as_primitive::<Float32Type>();
        let probs = list_values::<Float32Type>(batch, "probs")?;
        Ok(probs
            .into_iter()
            .enumerate()
            .map(|(i, probs)| Prediction {
                id: id.value(i).to_string(),
                task: task.value(i).to_string(),
                split: split.value(i).to_string(),
                text: text.value(i).to_string(),
                text_pair: opt_str(pair, i),
                predicted: predicted.is_valid(i).then(|| predicted.value(i)),
                predicted_name: opt_str(name, i),
                score: score.value(i),
                probs,
                label: label.is_valid(i).then(|| label.value(i)),
                target: target.is_valid(i).then(|| target.value(i)),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
