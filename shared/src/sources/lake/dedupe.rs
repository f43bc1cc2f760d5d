//! Finding repeated uuids among the rows of a run with bounded memory.
//!
//! Each kept row contributes `(uuid, ordinal)`. Up to `buffer_rows` pairs are held in memory; a full buffer is
//! sorted and spilled to a temporary file as a sorted run. At the end the runs (or the buffer alone, when
//! nothing spilled) are merged in `(uuid, ordinal)` order; within a uuid every entry after the first is a repeat.
//! Memory is `buffer_rows × 24 B` plus one read buffer per run, whatever the interval holds; the result holds
//! only the repeats.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use crate::error::Result;

/// Where and how much the de-duplication may buffer.
#[derive(Debug, Clone)]
pub struct DedupeSettings {
    /// Pairs held in memory before a sorted run is spilled (24 bytes each).
    pub buffer_rows: usize,
    /// Directory for spilled runs (the system's temporary directory when `None`; `/tmp` on Lambda).
    pub spill_dir: Option<PathBuf>,
}

impl Default for DedupeSettings {
    fn default() -> Self {
        DedupeSettings { buffer_rows: 1 << 20, spill_dir: None }
    }
}

const RECORD: usize = 24;

pub struct DuplicateFinder {
    buffer: Vec<(u128, u64)>,
    capacity: usize,
    runs: Vec<File>,
    spill_dir: Option<PathBuf>,
}

impl DuplicateFinder {
    pub fn new(settings: &DedupeSettings) -> Result<Self> {
        let capacity = settings.buffer_rows.max(2);
        Ok(DuplicateFinder {
            buffer: Vec::with_capacity(capacity.min(1 << 16)),
            capacity,
            runs: Vec::new(),
            spill_dir: settings.spill_dir.clone(),
        })
    }

    pub fn push(&mut self, uuid: u128, ordinal: u64) -> Result<()> {
        self.buffer.push((uuid, ordinal));
        if self.buffer.len() >= self.capacity {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<()> {
        self.buffer.sort_unstable();
        let file = match &self.spill_dir {
            Some(dir) => tempfile::tempfile_in(dir)?,
            None => tempfile::tempfile()?,
        };
        let mut out = BufWriter::with_capacity(1 << 16, file);
        for (uuid, ordinal) in self.buffer.drain(..) {
            out.write_all(&uuid.to_le_bytes())?;
            out.write_all(&ordinal.to_le_bytes())?;
        }
        let mut file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.seek(SeekFrom::Start(0))?;
        self.runs.push(file);
        Ok(())
    }

    /// The ordinals of repeated uuids (every occurrence but the first), ascending.
    pub fn finish(mut self) -> Result<Vec<u64>> {
        let mut duplicates = Vec::new();
        if self.runs.is_empty() {
            self.buffer.sort_unstable();
            for pair in self.buffer.windows(2) {
                if pair[0].0 == pair[1].0 {
                    duplicates.push(pair[1].1);
                }
            }
        } else {
            if !self.buffer.is_empty() {
                self.spill()?;
            }
            let mut readers: Vec<_> = self.runs.into_iter().map(|f| BufReader::with_capacity(1 << 16, f)).collect();
            let mut heap = BinaryHeap::new();
            for (i, r) in readers.iter_mut().enumerate() {
                if let Some(rec) = next_record(r)? {
                    heap.push(Reverse((rec, i)));
                }
            }
            let mut previous: Option<u128> = None;
            while let Some(Reverse(((uuid, ordinal), i))) = heap.pop() {
                if previous == Some(uuid) {
                    duplicates.push(ordinal);
                }
                previous = Some(uuid);
                if let Some(rec) = next_record(&mut readers[i])? {
                    heap.push(Reverse((rec, i)));
                }
            }
        }
        duplicates.sort_unstable();
        Ok(duplicates)
    }
}

fn next_record(r: &mut impl Read) -> io::Result<Option<(u128, u64)>> {
    let mut buf = [0u8; RECORD];
    match r.read_exact(&mut buf) {
        Ok(()) => Ok(Some((
            u128::from_le_bytes(buf[..16].try_into().expect("16 bytes")),
            u64::from_le_bytes(buf[16..].try_into().expect("8 bytes")),
        ))),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repeats(uuids: &[u128], buffer_rows: usize) -> Vec<u64> {
        let mut f = DuplicateFinder::new(&DedupeSettings { buffer_rows, spill_dir: None }).unwrap();
        for (i, u) in uuids.iter().enumerate() {
            f.push(*u, i as u64).unwrap();
        }
        f.finish().unwrap()
    }

    #[test]
    fn first_occurrence_is_kept_in_memory_and_spilled() {
        let uuids = [5, 1, 5, 2, 1, 5, 9, 2];
        for buffer in [2, 3, 1000] {
            assert_eq!(repeats(&uuids, buffer), vec![2, 4, 5, 7], "buffer {buffer}");
        }
        assert!(repeats(&[], 2).is_empty());
        assert!(repeats(&[1, 2, 3], 2).is_empty());
    }

    #[test]
    fn many_rows_across_many_runs() {
        let uuids: Vec<u128> = (0..10_000u128).map(|i| (i * 7919) % 3000).collect();
        let got = repeats(&uuids, 333);
        assert_eq!(got.len(), 7000);
        let mut seen = std::collections::HashSet::new();
        let expected: Vec<u64> =
            uuids.iter().enumerate().filter(|(_, u)| !seen.insert(**u)).map(|(i, _)| i as u64).collect();
        assert_eq!(got, expected);
    }
}
