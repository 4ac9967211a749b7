//! What the requests ask: seeded synthetic prompts of a target length, and mooncake-style
//! traces whose `hash_ids` become shared prompt prefixes.
//!
//! A prompt is a sequence of common English words, each a single token in the tokenizers of the
//! usual model families (and one token to the simulated engine, which counts words), so a
//! prompt of `n` words asks for about `n` input tokens. The server's `usage` gives the exact
//! count, which is what the results report.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::rng::Rng;

const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not",
    "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you",
    "were", "their", "one", "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will",
    "would", "who", "so", "no", "time", "out", "up", "people", "new", "first", "about", "may", "year",
    "like", "only", "over", "some", "work", "world", "day", "water", "city", "house", "line", "state",
    "small", "long", "light", "place", "point", "hand", "part", "home", "case", "word", "game", "road",
    "book", "music", "plan", "test", "data", "model", "power", "level", "value", "field", "form", "order",
    "group", "rate", "step", "area", "side", "page", "table", "number", "system",
];

/// `n` words drawn from `rng`, each followed by a space except the last.
pub(super) fn push_words(out: &mut String, rng: &mut Rng, n: usize) {
    for i in 0..n {
        if i > 0 || !out.is_empty() {
            out.push(' ');
        }
        out.push_str(WORDS[rng.below(WORDS.len())]);
    }
}

/// A length drawn around `mean` with `stddev`, at least 1.
pub fn length(rng: &mut Rng, mean: u32, stddev: f64) -> u32 {
    if stddev <= 0.0 {
        return mean.max(1);
    }
    (f64::from(mean) + stddev * rng.normal()).round().max(1.0) as u32
}

/// A synthetic prompt of `words` words; request `index` always gets the same one for a seed.
pub fn synthetic(seed: u64, index: u64, words: u32) -> String {
    let mut rng = Rng::for_stream(seed, index);
    let mut out = String::with_capacity(words as usize * 6);
    push_words(&mut out, &mut rng, words as usize);
    out
}

/// One line of a mooncake-style trace.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TraceEntry {
    /// When to send it, in ms from the start of the trace.
    #[serde(default)]
    pub timestamp: f64,
    pub input_length: u32,
    pub output_length: u32,
    /// One id per `block_size` tokens of the prompt: the same id in the same position means the
    /// same block, so prompts that start with the same ids share a prefix.
    #[serde(default)]
    pub hash_ids: Vec<u64>,
}

impl TraceEntry {
    pub fn at(&self, first: f64, speedup: f64) -> Duration {
        Duration::from_secs_f64(((self.timestamp - first) / 1000.0 / speedup).max(0.0))
    }

    /// The prompt: one seeded block of `block_size` words per hash id, cut to `input_length`;
    /// words past the last block are drawn from the request's own stream.
    pub fn prompt(&self, seed: u64, index: u64, block_size: u32) -> String {
        let total = self.input_length as usize;
        let mut out = String::with_capacity(total * 6);
        let mut written = 0usize;
        for &id in &self.hash_ids {
            if written >= total {
                break;
            }
            // Blocks are seeded by their id only: equal ids give equal text.
            let mut rng = Rng::for_stream(seed ^ 0x5eed_b10c, id);
            let n = (block_size as usize).min(total - written);
            push_words(&mut out, &mut rng, n);
            written += n;
        }
        let mut rng = Rng::for_stream(seed, index);
        push_words(&mut out, &mut rng, total - written);
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot read the trace {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}:{line}: not a trace entry ({source}); each line needs `input_length` and `output_length`, and may have `timestamp` (ms) and `hash_ids`")]
    Parse { path: String, line: usize, source: serde_json::Error },
    #[error("the trace {path} has no entries")]
    Empty { path: String },
}

/// Reads a JSONL trace; entries are sorted by timestamp (stable, so ties keep file order).
pub fn read_trace(path: &Path) -> Result<Vec<TraceEntry>, TraceError> {
    let name = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|source| TraceError::Read { path: name.clone(), source })?;
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let entry = serde_json::from_str(line).map_err(|source| TraceError::Parse {
            path: name.clone(),
            line: i + 1,
            source,
        })?;
        entries.push(entry);
    }
    if entries.is_empty() {
        return Err(TraceError::Empty { path: name });
    }
    entries.sort_by(|a: &TraceEntry, b| a.timestamp.total_cmp(&b.timestamp));
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_prompts_have_the_asked_length_and_depend_only_on_seed_and_index() {
        let a = synthetic(1, 5, 300);
        assert_eq!(a.split(' ').count(), 300);
        assert_eq!(a, synthetic(1, 5, 300));
        assert_ne!(a, synthetic(1, 6, 300));
        assert_ne!(a, synthetic(2, 5, 300));
    }

    #[test]
    fn lengths_follow_mean_and_stddev() {
        let mut rng = Rng::new(3);
        assert_eq!(length(&mut rng, 128, 0.0), 128);
        let samples: Vec<f64> = (0..50_000).map(|_| f64::from(length(&mut rng, 1000, 100.0))).collect();
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        let sd = (samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / samples.len() as f64).sqrt();
        assert!((mean - 1000.0).abs() < 2.0 && (sd - 100.0).abs() < 2.0, "{mean} {sd}");
        assert!((0..1000).all(|_| length(&mut rng, 1, 1000.0) >= 1), "never below 1");
    }

    #[test]
    fn equal_hash_ids_give_equal_prefixes() {
        let entry = |ids: Vec<u64>, len| TraceEntry {
            timestamp: 0.0,
            input_length: len,
            output_length: 4,
            hash_ids: ids,
        };
        let a = entry(vec![1, 2, 3], 10).prompt(9, 0, 4);
        let b = entry(vec![1, 2, 7], 10).prompt(9, 1, 4);
        let words = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        let (a, b) = (words(&a), words(&b));
        assert_eq!((a.len(), b.len()), (10, 10));
        assert_eq!(a[..8], b[..8], "blocks 1 and 2 are shared");
        assert_ne!(a[8..], b[8..], "block 3 differs from block 7");
        // More tokens than blocks: the rest comes from the request's own stream.
        assert_eq!(words(&entry(vec![1], 6).prompt(9, 0, 4)).len(), 6);
    }
}
