//! Sorting more records than memory holds: each record's value is serialized (JSON) into one buffer as it
//! is pushed, beside its key; when the buffer passes a byte budget the keys are sorted and the records written
//! to a temporary file as a sorted run (one JSON `[key, value]` per line); at the end the runs are merged in
//! key order, reading one record per run at a time. The sort is stable: records with equal keys come out in the
//! order they were pushed. Memory is the budget (measured in serialized bytes, so it holds whatever the
//! values are) plus one record and one small read buffer per run.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ExportError, Result};

/// The read and write buffer of one run: small, as a merge holds one per run.
const RUN_BUFFER_BYTES: usize = 8 << 10;

/// Records in key order, as the sort hands them out.
pub type Sorted<K, T> = Box<dyn Iterator<Item = Result<(K, T)>> + Send>;

/// A sort of `(key, value)` records in bounded memory.
pub struct ExternalSort<K, T> {
    /// Each buffered record's key and where its serialized value lies in `values`.
    keys: Vec<(K, usize, usize)>,
    values: Vec<u8>,
    budget_bytes: usize,
    runs: Vec<File>,
    spill_dir: Option<PathBuf>,
    value: PhantomData<fn() -> T>,
}

impl<K, T> ExternalSort<K, T>
where
    K: Ord + Serialize + DeserializeOwned + Send + 'static,
    T: Serialize + DeserializeOwned + Send + 'static,
{
    /// Spills a sorted run whenever the buffered records pass `budget_bytes` (to `spill_dir`, or the system's
    /// temporary directory).
    pub fn new(budget_bytes: usize, spill_dir: Option<PathBuf>) -> Self {
        ExternalSort {
            keys: Vec::new(),
            values: Vec::new(),
            budget_bytes,
            runs: Vec::new(),
            spill_dir,
            value: PhantomData,
        }
    }

    /// Adds a record.
    pub fn push(&mut self, key: K, value: &T) -> Result<()> {
        let start = self.values.len();
        serde_json::to_writer(&mut self.values, value).map_err(|e| spill_error(e.into()))?;
        self.keys.push((key, start, self.values.len()));
        if self.values.len() + self.keys.len() * std::mem::size_of::<(K, usize, usize)>() >= self.budget_bytes {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<()> {
        self.keys.sort_by(|a, b| a.0.cmp(&b.0));
        let file = match &self.spill_dir {
            Some(dir) => tempfile::tempfile_in(dir)?,
            None => tempfile::tempfile()?,
        };
        let mut out = BufWriter::with_capacity(RUN_BUFFER_BYTES, file);
        for (key, start, end) in self.keys.drain(..) {
            out.write_all(b"[")?;
            serde_json::to_writer(&mut out, &key).map_err(|e| spill_error(e.into()))?;
            out.write_all(b",")?;
            out.write_all(&self.values[start..end])?;
            out.write_all(b"]\n")?;
        }
        self.values.clear();
        let mut file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.seek(SeekFrom::Start(0))?;
        self.runs.push(file);
        Ok(())
    }

    /// The records in key order.
    pub fn finish(mut self) -> Result<Sorted<K, T>> {
        if self.runs.is_empty() {
            self.keys.sort_by(|a, b| a.0.cmp(&b.0));
            let values = self.values;
            return Ok(Box::new(self.keys.into_iter().map(move |(key, start, end)| {
                let value = serde_json::from_slice(&values[start..end]).map_err(|e| spill_error(e.into()))?;
                Ok((key, value))
            })));
        }
        if !self.keys.is_empty() {
            self.spill()?;
        }
        let mut merge = Merge { runs: Vec::new(), heap: BinaryHeap::new(), failed: false };
        for (index, file) in self.runs.into_iter().enumerate() {
            merge.runs.push(BufReader::with_capacity(RUN_BUFFER_BYTES, file));
            merge.refill(index)?;
        }
        Ok(Box::new(merge))
    }
}

fn spill_error(e: io::Error) -> ExportError {
    ExportError::internal(format!("a sorted run in the temporary directory: {e}"))
}

/// The head record of one run; the heap pops the smallest key first, then the earliest run (stability).
struct Head<K, T> {
    key: K,
    run: usize,
    value: T,
}

impl<K: Ord, T> Ord for Head<K, T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (&other.key, other.run).cmp(&(&self.key, self.run))
    }
}

impl<K: Ord, T> PartialOrd for Head<K, T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K: Ord, T> PartialEq for Head<K, T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<K: Ord, T> Eq for Head<K, T> {}

struct Merge<K, T> {
    runs: Vec<BufReader<File>>,
    heap: BinaryHeap<Head<K, T>>,
    failed: bool,
}

impl<K: Ord + DeserializeOwned, T: DeserializeOwned> Merge<K, T> {
    /// Reads the next record of run `run` into the heap (none at the run's end).
    fn refill(&mut self, run: usize) -> Result<()> {
        let mut line = String::new();
        if self.runs[run].read_line(&mut line).map_err(spill_error)? == 0 {
            return Ok(());
        }
        let (key, value): (K, T) = serde_json::from_str(&line).map_err(|e| spill_error(e.into()))?;
        self.heap.push(Head { key, run, value });
        Ok(())
    }
}

impl<K: Ord + DeserializeOwned, T: DeserializeOwned> Iterator for Merge<K, T> {
    type Item = Result<(K, T)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let head = self.heap.pop()?;
        if let Err(e) = self.refill(head.run) {
            self.failed = true;
            return Some(Err(e));
        }
        Some(Ok((head.key, head.value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_stably_in_memory_and_across_spilled_runs() {
        let records: Vec<(u32, String)> = (0..1000u32).map(|i| ((i * 7919) % 97, format!("v{i}"))).collect();
        let mut expected = records.clone();
        expected.sort_by_key(|r| r.0); // stable
        for budget in [1 << 30, 2000, 1] {
            let mut sort = ExternalSort::new(budget, None);
            for (k, v) in &records {
                sort.push(*k, v).unwrap();
            }
            let got: Vec<(u32, String)> = sort.finish().unwrap().map(Result::unwrap).collect();
            assert_eq!(got, expected, "budget {budget}");
        }
        let empty = ExternalSort::<u32, String>::new(10, None);
        assert_eq!(empty.finish().unwrap().count(), 0);
    }
}
