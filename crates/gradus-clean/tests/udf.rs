//! The signal functions inside DataFusion SQL.

#![allow(clippy::unwrap_used)] // test helpers fail loudly by design

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{Float64Type, UInt32Type};
use datafusion::prelude::SessionContext;
use gradus_clean::signals::compute;

fn context(texts: Vec<Option<&str>>) -> SessionContext {
    let mut ctx = SessionContext::new();
    gradus_clean::udf::register_all(&mut ctx).unwrap();
    let batch =
        RecordBatch::try_from_iter([("text", Arc::new(StringArray::from(texts)) as _)]).unwrap();
    ctx.register_batch("docs", batch).unwrap();
    ctx
}

#[tokio::test]
async fn signals_are_columns_that_sql_filters_on() {
    let english = "The harbour wakes before the town does. The boats slip out past the wall.";
    let ctx = context(vec![Some(english), Some("- a\n- a\n- a"), None]);
    let df = ctx
        .sql(
            "SELECT get_field(quality_signals(text), 'words') AS words, \
                    get_field(quality_signals(text), 'dup_line_frac') AS dup, \
                    get_field(language(text), 'lang') AS lang \
             FROM docs",
        )
        .await
        .unwrap();
    let batches = df.collect().await.unwrap();
    let b = &batches[0];
    let words = b.column(0).as_primitive::<UInt32Type>();
    let dup = b.column(1).as_primitive::<Float64Type>();
    let lang = b.column(2).as_string::<i32>();
    assert_eq!(words.value(0), compute(english).words);
    assert_eq!(lang.value(0), "en");
    assert_eq!(dup.value(1), 2.0 / 3.0);
    assert!(words.is_null(2), "a null text has null signals");

    let kept = ctx
        .sql("SELECT text FROM docs WHERE get_field(quality_signals(text), 'words') >= 10 AND get_field(language(text), 'lang') = 'en'")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(kept.iter().map(RecordBatch::num_rows).sum::<usize>(), 1);
}
