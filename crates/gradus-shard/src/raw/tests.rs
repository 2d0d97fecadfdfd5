use std::io::Write;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};

use super::*;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A record as its line (or row) number and its fields.
type Numbered = (u64, Map<String, Value>);

/// Every item of `bytes` written to a file `name` and read as that file's format.
fn read_bytes(name: &str, bytes: &[u8]) -> Vec<Result<Numbered, BadRecord>> {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), name, bytes);
    read(&path, &ReadSpec::new(format_of(&path).unwrap()))
}

/// Every item of `path` read as `spec`: records or bad records.
fn read(path: &Path, spec: &ReadSpec) -> Vec<Result<Numbered, BadRecord>> {
    open(path, spec)
        .unwrap()
        .map(|item| item.unwrap().map(|r| (r.position.number(), r.fields)))
        .collect()
}

fn text_of(fields: &Map<String, Value>, name: &str) -> String {
    fields[name].as_str().unwrap().to_string()
}

#[test]
fn formats_are_told_through_compression() {
    let f = |name: &str| format_of(Path::new(name));
    assert_eq!(f("a.jsonl.gz"), Some(Format::Jsonl));
    assert_eq!(f("dir/b.TSV"), Some(Format::Tsv));
    assert_eq!(f("c.txt.zst"), Some(Format::Text));
    assert_eq!(f("d.parquet"), Some(Format::Parquet));
    assert_eq!(f("e.bin"), None);
}

#[test]
fn tsv_keeps_quotes_and_line_numbers() {
    let items = read_bytes(
        "t.tsv",
        b"sentence \tlabel\r\n\"quoted\" text \t1\r\nbroken line\n\nok\t0\n",
    );
    assert_eq!(items.len(), 3);
    let (line, fields) = items[0].clone().unwrap();
    assert_eq!(
        (line, text_of(&fields, "sentence")),
        (2, "\"quoted\" text ".into())
    );
    assert_eq!(text_of(&fields, "label"), "1");
    let bad = items[1].clone().unwrap_err();
    assert_eq!((bad.line, bad.kind), (3, InputErrorKind::MalformedRow));
    assert_eq!(bad.detail, "expected 2 fields, found 1");
    assert_eq!(items[2].clone().unwrap().0, 5);
}

#[test]
fn tables_without_a_header_name_columns_by_position() {
    let dir = tempfile::tempdir().unwrap();
    let tsv = write(dir.path(), "t.tsv", b"a\t1\nb\t0\n");
    let csv = write(dir.path(), "t.csv", b"a,1\nb,0\n");
    for path in [tsv, csv] {
        let spec = ReadSpec {
            header: false,
            ..ReadSpec::new(format_of(&path).unwrap())
        };
        let reader = open(&path, &spec).unwrap();
        assert_eq!(reader.columns(), ["0", "1"]);
        let items = read(&path, &spec);
        let (line, fields) = items[0].clone().unwrap();
        assert_eq!((line, text_of(&fields, "0")), (1, "a".into()));
        assert_eq!(items.len(), 2);
    }
}

#[test]
fn csv_honours_quotes_and_counts_lines() {
    let items = read_bytes(
        "t.csv",
        b"text,label\n\"a, quoted \"\"cell\"\"\",1\n\"two\nlines\",0\nshort\nplain,0\n",
    );
    let (line, fields) = items[0].clone().unwrap();
    assert_eq!(
        (line, text_of(&fields, "text")),
        (2, "a, quoted \"cell\"".into())
    );
    assert_eq!(items[1].clone().unwrap().0, 3);
    let bad = items[2].clone().unwrap_err();
    assert_eq!((bad.line, bad.kind), (5, InputErrorKind::MalformedRow));
    assert_eq!(items[3].clone().unwrap().0, 6);
}

#[test]
fn jsonl_keeps_values_and_names_bad_lines() {
    let items = read_bytes(
        "t.jsonl",
        b"{\"text\": \"a\", \"label\": 1}\n\n[1, 2]\n\xff\n{\"text\": \"b\"}\n",
    );
    let (line, fields) = items[0].clone().unwrap();
    assert_eq!((line, fields["label"].clone()), (1, Value::from(1)));
    let kinds: Vec<(u64, InputErrorKind)> = items[1..3]
        .iter()
        .map(|i| i.clone().map(|_| ()).unwrap_err())
        .map(|b| (b.line, b.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            (3, InputErrorKind::MalformedJson),
            (4, InputErrorKind::InvalidUtf8)
        ]
    );
    assert_eq!(items[3].clone().unwrap().0, 5);
}

#[test]
fn empty_files_and_unreadable_headers_are_one_bad_record() {
    for name in ["e.jsonl", "e.txt", "e.tsv", "e.csv"] {
        let items = read_bytes(name, b"");
        assert_eq!(items.len(), 1, "{name}");
        assert_eq!(
            items[0].clone().unwrap_err().kind,
            InputErrorKind::EmptyFile
        );
    }
    // A header that is not UTF-8 is the one bad record: its rows have nothing to match.
    let items = read_bytes("h.tsv", b"te\xffxt\tlabel\na\t1\nb\t0\n");
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0].clone().unwrap_err().kind,
        InputErrorKind::InvalidUtf8
    );
}

#[test]
fn text_units_start_at_their_first_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "t.txt",
        b"first para\r\nstill first\n\n  \nsecond\n",
    );
    let units = |unit| -> Vec<(u64, String)> {
        let spec = ReadSpec {
            text_unit: unit,
            text_field: "body".into(),
            ..ReadSpec::new(Format::Text)
        };
        read(&path, &spec)
            .into_iter()
            .map(|i| i.map(|(n, f)| (n, text_of(&f, "body"))).unwrap())
            .collect()
    };
    assert_eq!(
        units(TextUnit::Paragraph),
        [(1, "first para\nstill first".into()), (5, "second".into())]
    );
    assert_eq!(
        units(TextUnit::File),
        [(1, "first para\nstill first\n\n  \nsecond".into())]
    );
    let lines: Vec<u64> = units(TextUnit::Line).iter().map(|u| u.0).collect();
    assert_eq!(lines, [1, 2, 5]);
}

#[test]
fn compressed_files_read_as_plain_ones() {
    let dir = tempfile::tempdir().unwrap();
    let text = b"{\"text\": \"zipped\"}\n";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text).unwrap();
    let gz = write(dir.path(), "a.jsonl.gz", &gz.finish().unwrap());
    let zst = write(
        dir.path(),
        "a.jsonl.zst",
        &zstd::encode_all(&text[..], 1).unwrap(),
    );
    for path in [gz, zst] {
        let items = read(&path, &ReadSpec::new(Format::Jsonl));
        assert_eq!(text_of(&items[0].clone().unwrap().1, "text"), "zipped");
    }
}

#[test]
fn parquet_columns_are_cast_to_text_and_projected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet");
    let batch = RecordBatch::try_from_iter([
        (
            "text",
            Arc::new(StringArray::from(vec![Some("a"), None])) as _,
        ),
        ("label", Arc::new(Int64Array::from(vec![3, 4])) as _),
    ])
    .unwrap();
    let file = std::fs::File::create(&path).unwrap();
    let mut w = ::parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let items = read(&path, &ReadSpec::new(Format::Parquet));
    let (row, fields) = items[0].clone().unwrap();
    assert_eq!((row, text_of(&fields, "label")), (1, "3".into()));
    assert_eq!(items[1].clone().unwrap().1["text"], Value::Null);
    let only_label = ReadSpec {
        columns: Some(vec!["label".into()]),
        ..ReadSpec::new(Format::Parquet)
    };
    let fields = read(&path, &only_label)[1].clone().unwrap().1;
    assert_eq!(fields.keys().collect::<Vec<_>>(), ["label"]);
    let missing = ReadSpec {
        columns: Some(vec!["body".into()]),
        ..ReadSpec::new(Format::Parquet)
    };
    let err = open(&path, &missing).err().unwrap().to_string();
    assert!(
        err.ends_with("no column `body` (columns: text, label)"),
        "{err}"
    );
}

#[test]
fn a_table_without_the_column_asked_for_is_refused_naming_file_and_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "t.tsv", b"text\tlabel\nhi\t1\n");
    let body = |format| ReadSpec {
        text_field: "body".into(),
        ..ReadSpec::new(format)
    };
    assert!(open_documents(&path, &ReadSpec::new(Format::Tsv)).is_ok());
    let Err(err) = open_documents(&path, &body(Format::Tsv)) else {
        panic!("a table without `body` is opened");
    };
    assert!(matches!(&err, RawError::Format { path: p, .. } if p == &path));
    assert!(
        err.to_string()
            .ends_with("t.tsv: no column `body` (columns: text, label)"),
        "{err}"
    );
    // JSON lines name no columns up front: each record is checked instead.
    let jsonl = write(dir.path(), "d.jsonl", b"{\"text\": \"x\"}\n");
    assert!(open_documents(&jsonl, &body(Format::Jsonl)).is_ok());
}
