//! The file formats and compressions of exported files (and lake objects), their valid pairs, their file
//! extensions, and the streaming codecs that write and read them ([`CompressedWriter`], [`CompressedReader`]).

mod compress;

use serde::{Deserialize, Serialize};

pub use self::compress::{CompressedReader, CompressedWriter};

/// The file format of exported files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum FileFormat {
    #[default]
    JSONLines,
    Parquet,
}

impl FileFormat {
    pub fn extension(&self) -> &'static str {
        match self {
            FileFormat::JSONLines => "jsonl",
            FileFormat::Parquet => "parquet",
        }
    }
}

/// A compression method; `None` in the config (null or absent) means uncompressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Gzip,
    Brotli,
    Zstd,
    Lz4,
    Snappy,
}

impl Compression {
    pub const ALL: [Compression; 5] =
        [Compression::Gzip, Compression::Brotli, Compression::Zstd, Compression::Lz4, Compression::Snappy];

    pub fn name(&self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Brotli => "brotli",
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
            Compression::Snappy => "snappy",
        }
    }

    /// The extension appended after the format's, for Parquet too (`.parquet.zst`).
    pub fn extension(&self) -> &'static str {
        match self {
            Compression::Gzip => "gz",
            Compression::Brotli => "br",
            Compression::Zstd => "zst",
            Compression::Lz4 => "lz4",
            Compression::Snappy => "sz",
        }
    }

    /// Whether `format` can be written with this compression.
    pub fn supported_by(&self, format: FileFormat) -> bool {
        match format {
            FileFormat::Parquet => true,
            FileFormat::JSONLines => matches!(self, Compression::Gzip | Compression::Brotli | Compression::Zstd),
        }
    }
}

/// Every format and compression pair a destination accepts (`None` is uncompressed).
pub const FORMAT_COMPRESSIONS: [(FileFormat, Option<Compression>); 10] = [
    (FileFormat::JSONLines, None),
    (FileFormat::JSONLines, Some(Compression::Gzip)),
    (FileFormat::JSONLines, Some(Compression::Brotli)),
    (FileFormat::JSONLines, Some(Compression::Zstd)),
    (FileFormat::Parquet, None),
    (FileFormat::Parquet, Some(Compression::Zstd)),
    (FileFormat::Parquet, Some(Compression::Lz4)),
    (FileFormat::Parquet, Some(Compression::Snappy)),
    (FileFormat::Parquet, Some(Compression::Gzip)),
    (FileFormat::Parquet, Some(Compression::Brotli)),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_compression_pairs() {
        for c in Compression::ALL {
            assert!(c.supported_by(FileFormat::Parquet));
        }
        let jsonl: Vec<_> = Compression::ALL.iter().filter(|c| c.supported_by(FileFormat::JSONLines)).collect();
        assert_eq!(jsonl, [&Compression::Gzip, &Compression::Brotli, &Compression::Zstd]);
        let mut supported = 2; // the two uncompressed pairs
        for format in [FileFormat::JSONLines, FileFormat::Parquet] {
            supported += Compression::ALL.iter().filter(|c| c.supported_by(format)).count();
        }
        assert_eq!(FORMAT_COMPRESSIONS.len(), supported);
        assert!(FORMAT_COMPRESSIONS.iter().all(|(f, c)| c.is_none_or(|c| c.supported_by(*f))));
    }
}
