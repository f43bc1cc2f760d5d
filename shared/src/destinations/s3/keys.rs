//! Object keys: the `prefix` template, data file names and the manifest key.
//!
//! A prefix is rendered with `{year} {month} {day} {hour} {minute} {second}` (from the interval end, zero-padded),
//! `{table}`, `{data_interval_start}` and `{data_interval_end}` (ISO 8601, `2023-07-28T00:00:00+00:00`);
//! `{{` and `}}` are literal braces. Files are named `{start}-{end}` (then `-{n}` from 0 when files are split),
//! `.jsonl`/`.parquet`, then the compression's extension; the manifest is `{start}-{end}_manifest.json`.
//! Names are joined to the prefix as paths are (a `/` is added unless the prefix ends with one) and a leading
//! `/` is dropped, so every re-run of an interval writes the same keys.

use crate::error::{ExportError, Result};
use crate::format::{Compression, FileFormat};
use crate::model::Model;
use crate::time::{calendar_fields, iso, Interval};

/// The variables a prefix may use.
pub const TEMPLATE_VARIABLES: [&str; 9] =
    ["year", "month", "day", "hour", "minute", "second", "table", "data_interval_start", "data_interval_end"];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Variable(&'static str),
}

/// A parsed, validated key prefix template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    pieces: Vec<Piece>,
}

impl KeyTemplate {
    /// Parses a template; an unknown variable or an unbalanced brace is a config error on `prefix`.
    pub fn parse(template: &str) -> Result<Self> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => {
                                return Err(ExportError::config(
                                    "prefix",
                                    format!("unclosed `{{` in template `{template}`"),
                                ))
                            }
                        }
                    }
                    let Some(var) = TEMPLATE_VARIABLES.iter().find(|v| **v == name) else {
                        return Err(ExportError::config(
                            "prefix",
                            format!(
                                "unknown template variable `{{{name}}}`; known: {}",
                                TEMPLATE_VARIABLES.map(|v| format!("{{{v}}}")).join(" ")
                            ),
                        ));
                    };
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Variable(var));
                }
                '}' => return Err(ExportError::config("prefix", format!("unmatched `}}` in template `{template}`"))),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(KeyTemplate { pieces })
    }

    /// Renders the template for one run.
    pub fn render(&self, interval: &Interval, model: Model) -> String {
        let calendar = calendar_fields(interval.end);
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(s) => out.push_str(s),
                Piece::Variable("table") => out.push_str(model.table()),
                Piece::Variable("data_interval_start") => out.push_str(&iso(interval.start)),
                Piece::Variable("data_interval_end") => out.push_str(&iso(interval.end)),
                Piece::Variable(name) => {
                    let value = calendar.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
                    out.push_str(value.expect("every template variable is rendered"));
                }
            }
        }
        out
    }
}

/// Joins a rendered prefix and a file name like a path, and drops a leading `/`.
fn join(prefix: &str, name: &str) -> String {
    let key =
        if prefix.is_empty() || prefix.ends_with('/') { format!("{prefix}{name}") } else { format!("{prefix}/{name}") };
    key.trim_start_matches('/').to_string()
}

/// The key of data file `file_n` (`Some` only when files are split) of a run, written by chunk `chunk` (`Some`
/// only when files are split and the run has several chunks: `{start}-{end}-{chunk}-{n}`).
pub fn data_file_key(
    prefix: &str,
    interval: &Interval,
    chunk: Option<usize>,
    file_n: Option<usize>,
    format: FileFormat,
    compression: Option<Compression>,
) -> String {
    let mut name = format!("{}-{}", iso(interval.start), iso(interval.end));
    if let Some(c) = chunk.filter(|_| file_n.is_some()) {
        name.push_str(&format!("-{c}"));
    }
    if let Some(n) = file_n {
        name.push_str(&format!("-{n}"));
    }
    name.push('.');
    name.push_str(format.extension());
    if let Some(c) = compression {
        name.push('.');
        name.push_str(c.extension());
    }
    join(prefix, &name)
}

/// What every file key of a run of `interval` begins with (its data files and its manifest): the keys a run may
/// clean up after a crashed writer, and nothing else.
pub fn interval_keys_prefix(prefix: &str, interval: &Interval) -> String {
    join(prefix, &format!("{}-{}", iso(interval.start), iso(interval.end)))
}

/// The key of a run's manifest.
pub fn manifest_key(prefix: &str, interval: &Interval) -> String {
    join(prefix, &format!("{}-{}_manifest.json", iso(interval.start), iso(interval.end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval() -> Interval {
        Interval::parse("2023-07-28T00:00:00Z", "2023-07-28T01:02:03Z").unwrap()
    }

    fn render(t: &str) -> String {
        KeyTemplate::parse(t).unwrap().render(&interval(), Model::Events)
    }

    #[test]
    fn docs_example() {
        let i = Interval::parse("2023-07-27T00:00:00Z", "2023-07-28T00:00:00Z").unwrap();
        let p = KeyTemplate::parse("{year}-{month}-{day}_{table}/").unwrap().render(&i, Model::Events);
        assert_eq!(p, "2023-07-28_events/");
    }

    #[test]
    fn every_variable() {
        assert_eq!(render("{year}"), "2023");
        assert_eq!(render("{month}"), "07");
        assert_eq!(render("{day}"), "28");
        assert_eq!(render("{hour}"), "01");
        assert_eq!(render("{minute}"), "02");
        assert_eq!(render("{second}"), "03");
        assert_eq!(render("{table}"), "events");
        assert_eq!(render("{data_interval_start}"), "2023-07-28T00:00:00+00:00");
        assert_eq!(render("{data_interval_end}"), "2023-07-28T01:02:03+00:00");
        assert_eq!(render("a/{{literal}}/{table}"), "a/{literal}/events");
        assert_eq!(render(""), "");
    }

    #[test]
    fn template_errors_name_the_variable() {
        let e = KeyTemplate::parse("x/{week}/").unwrap_err().to_string();
        assert!(e.contains("`prefix`") && e.contains("{week}"), "{e}");
        assert!(KeyTemplate::parse("{year").unwrap_err().to_string().contains("unclosed"));
        assert!(KeyTemplate::parse("year}").unwrap_err().to_string().contains("unmatched"));
    }

    #[test]
    fn file_names_with_and_without_splitting() {
        let i = interval();
        let base = "2023-07-28T00:00:00+00:00-2023-07-28T01:02:03+00:00";
        assert_eq!(data_file_key("p/", &i, None, None, FileFormat::JSONLines, None), format!("p/{base}.jsonl"));
        assert_eq!(data_file_key("p", &i, None, None, FileFormat::JSONLines, None), format!("p/{base}.jsonl"));
        assert_eq!(data_file_key("", &i, None, Some(0), FileFormat::Parquet, None), format!("{base}-0.parquet"));
        assert_eq!(data_file_key("", &i, Some(3), Some(1), FileFormat::Parquet, None), format!("{base}-3-1.parquet"));
        assert_eq!(data_file_key("", &i, Some(3), None, FileFormat::Parquet, None), format!("{base}.parquet"));
        assert_eq!(data_file_key("/x/", &i, None, Some(12), FileFormat::Parquet, None), format!("x/{base}-12.parquet"));
        assert_eq!(manifest_key("p/", &i), format!("p/{base}_manifest.json"));
        assert_eq!(manifest_key("/", &i), format!("{base}_manifest.json"));
    }

    #[test]
    fn every_extension() {
        let i = interval();
        let cases = [
            (FileFormat::JSONLines, None, ".jsonl"),
            (FileFormat::JSONLines, Some(Compression::Gzip), ".jsonl.gz"),
            (FileFormat::JSONLines, Some(Compression::Brotli), ".jsonl.br"),
            (FileFormat::JSONLines, Some(Compression::Zstd), ".jsonl.zst"),
            (FileFormat::Parquet, None, ".parquet"),
            (FileFormat::Parquet, Some(Compression::Zstd), ".parquet.zst"),
            (FileFormat::Parquet, Some(Compression::Lz4), ".parquet.lz4"),
            (FileFormat::Parquet, Some(Compression::Snappy), ".parquet.sz"),
            (FileFormat::Parquet, Some(Compression::Gzip), ".parquet.gz"),
            (FileFormat::Parquet, Some(Compression::Brotli), ".parquet.br"),
        ];
        for (format, compression, ext) in cases {
            let key = data_file_key("", &i, None, None, format, compression);
            assert!(key.ends_with(&format!("+00:00{ext}")), "{key} should end with {ext}");
        }
    }
}
