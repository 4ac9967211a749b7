//! Token counts from a local `tokenizer.json` (Hugging Face's format), the way aiperf counts when
//! it is not told to trust the server: the prompt and the streamed text, each encoded without
//! special tokens. Nothing is downloaded: the file must be on the node that sends the load.

use std::path::{Path, PathBuf};

use tokenizers::Tokenizer;

use super::prompts;
use super::rng::Rng;

/// A loaded tokenizer and where it came from.
pub struct TokenCounter {
    tokenizer: Tokenizer,
    path: PathBuf,
}

impl std::fmt::Debug for TokenCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCounter").field("path", &self.path).finish_non_exhaustive()
    }
}

impl TokenCounter {
    /// Loads `path`: a `tokenizer.json`, or a model folder holding one.
    pub fn load(path: &Path) -> Result<Self, crate::LoadError> {
        let file = if path.is_dir() { path.join("tokenizer.json") } else { path.to_owned() };
        if !file.is_file() {
            let problem = if path.is_dir() {
                format!(
                    "{} holds no tokenizer.json; give the file itself or a model folder with one",
                    path.display()
                )
            } else {
                format!(
                    "tokenizer {} does not exist (it is read on the node that sends the load)",
                    path.display()
                )
            };
            return Err(crate::LoadError::Tokenizer { path: path.to_owned(), problem });
        }
        let tokenizer = Tokenizer::from_file(&file).map_err(|e| crate::LoadError::Tokenizer {
            path: file.clone(),
            problem: format!("{} is not a tokenizer.json this tool can read: {e}", file.display()),
        })?;
        Ok(TokenCounter { tokenizer, path: file })
    }

    /// The file the counts come from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tokens in `text`, without special tokens (no BOS/EOS added).
    pub fn count(&self, text: &str) -> u64 {
        self.tokenizer.encode_fast(text, false).map_or(0, |e| e.len() as u64)
    }

    /// `text` lengthened with seeded words or cut at a token boundary so that it encodes to
    /// `target` tokens, or as near as the tokenizer allows (a cut can merge across the boundary);
    /// returns the text and its count.
    pub fn fit(&self, mut text: String, target: u32, seed: u64, stream: u64) -> (String, u64) {
        let target = u64::from(target.max(1));
        let mut rng = Rng::for_stream(seed ^ 0x70c3, stream);
        let mut count = self.count(&text);
        // Too short: append words in rounds sized by the shortfall.
        while count < target {
            let missing = (target - count) as usize;
            prompts::push_words(&mut text, &mut rng, missing);
            count = self.count(&text);
        }
        // Too long: cut after the `target`-th token, then step back while the cut re-encodes
        // longer than asked.
        let mut keep = target as usize;
        while count > target && keep > 0 {
            let Ok(encoding) = self.tokenizer.encode(text.as_str(), false) else { break };
            let Some(&(_, end)) = encoding.get_offsets().get(keep - 1) else { break };
            let cut = text[..end].to_owned();
            let cut_count = self.count(&cut);
            if cut_count <= target {
                return (cut, cut_count);
            }
            keep -= 1;
        }
        (text, count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A word-level tokenizer that splits on whitespace and knows `known` (anything else is one
    /// `[UNK]` token), written to a temporary folder.
    pub(crate) fn word_level(dir: &Path, known: &[&str]) -> PathBuf {
        let vocab: serde_json::Map<String, serde_json::Value> = std::iter::once("[UNK]")
            .chain(known.iter().copied())
            .enumerate()
            .map(|(i, w)| (w.to_owned(), i.into()))
            .collect();
        let json = serde_json::json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": [],
            "normalizer": null,
            "pre_tokenizer": {"type": "WhitespaceSplit"},
            "post_processor": null,
            "decoder": null,
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"},
        });
        let path = dir.join("tokenizer.json");
        std::fs::write(&path, json.to_string()).expect("writes");
        path
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sweep-tokens-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creates");
        dir
    }

    #[test]
    fn counts_and_fits_with_a_word_level_tokenizer() {
        let dir = temp("fit");
        word_level(&dir, &["the", "of"]);
        // A folder holding tokenizer.json is accepted as well as the file.
        let counter = TokenCounter::load(&dir).expect("loads");
        assert_eq!(counter.path(), dir.join("tokenizer.json"));
        assert_eq!(counter.count("the of  unknown\nthe"), 4);
        assert_eq!(counter.count(""), 0);
        for target in [1, 7, 100] {
            let (text, count) = counter.fit("the of the".into(), target, 3, 9);
            assert_eq!((count, counter.count(&text)), (u64::from(target), u64::from(target)), "{text}");
        }
        // Seeded: the same request gets the same prompt.
        assert_eq!(counter.fit(String::new(), 50, 1, 2), counter.fit(String::new(), 50, 1, 2));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn missing_or_broken_files_say_what_is_wrong() {
        let dir = temp("bad");
        let err = TokenCounter::load(&dir).expect_err("no tokenizer.json").to_string();
        assert!(err.contains("holds no tokenizer.json"), "{err}");
        let err = TokenCounter::load(&dir.join("nope.json")).expect_err("missing").to_string();
        assert!(err.contains("does not exist"), "{err}");
        std::fs::write(dir.join("tokenizer.json"), "{\"model\": 3}").expect("writes");
        let err = TokenCounter::load(&dir).expect_err("broken").to_string();
        assert!(err.contains("not a tokenizer.json"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
