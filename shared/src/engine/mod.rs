//! The engine: destination-agnostic. It plans a run's lake rows into chunks ([`chunks`]), encodes rows into
//! files with one [`encode::Encoder`] per format ([`pipeline`]), and streams each file to the sink a destination
//! implements ([`sink::FileSink`]); [`run`] is the in-process entry (the CLI's and the benchmark's). What files a
//! run writes — format, compression, split size and names — comes from the destination ([`pipeline::FileSpec`]).

pub mod chunks;
pub mod encode;
pub mod pipeline;
pub mod run;
pub mod sink;

use crate::engine::encode::ParquetSettings;
use crate::engine::sink::{UploadSettings, MIN_PART_SIZE_BYTES};
use crate::error::{ExportError, Result};
use crate::sources::lake::dedupe::DedupeSettings;

/// Tuning of the engine, from the environment (see the README for the variables and defaults).
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Rows per batch read from the lake and handed to the encoder.
    pub batch_size: usize,
    pub upload: UploadSettings,
    pub parquet: ParquetSettings,
    pub dedupe: DedupeSettings,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            batch_size: 8192,
            upload: UploadSettings::default(),
            parquet: ParquetSettings::default(),
            dedupe: DedupeSettings::default(),
        }
    }
}

impl EngineSettings {
    pub fn validate(&self) -> Result<()> {
        if self.upload.part_size < MIN_PART_SIZE_BYTES {
            return Err(ExportError::config(
                "BATCH_EXPORT_PART_SIZE_MB",
                "must be at least 5 (S3's minimum part size)",
            ));
        }
        for (name, value) in [
            ("BATCH_EXPORT_BATCH_SIZE", self.batch_size),
            ("BATCH_EXPORT_MAX_PARTS_IN_FLIGHT", self.upload.max_parts_in_flight),
            ("BATCH_EXPORT_ROW_GROUP_MB", self.parquet.max_row_group_bytes),
            ("BATCH_EXPORT_DEDUPE_BUFFER_ROWS", self.dedupe.buffer_rows),
        ] {
            if value == 0 {
                return Err(ExportError::config(name, "must be greater than 0"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_the_environment_are_validated() {
        let mut s = EngineSettings::default();
        s.upload.part_size = 4 << 20;
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("BATCH_EXPORT_PART_SIZE_MB"), "{e}");
        let mut s = EngineSettings::default();
        s.batch_size = 0;
        assert!(s.validate().unwrap_err().to_string().contains("BATCH_EXPORT_BATCH_SIZE"));
    }
}
