//! The accuracy probe's questions (`accuracy.questions`) and how an answer is judged.
//!
//! Pure, like [`crate::dataset`]: `sweep submit` reads a questions file on the login node to
//! refuse a bad line before anything is submitted, and the benchmark step reads it again where
//! the job runs; both judge it by [`parse`]. The shipped set ([`builtin`]) is made by
//! `scripts/accuracy/make-arithmetic.py`.

use serde::Deserialize;

/// The shipped set: 200 integer-arithmetic questions.
const BUILTIN: &str = include_str!("../data/arithmetic.jsonl");

/// One question and the answer that counts as right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub question: String,
    pub answer: String,
    /// Its line in the file, from 1.
    pub line: usize,
}

/// A line that is not a question.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct QuestionsError {
    /// From 1; 0 when the file as a whole is wrong (it has no questions).
    pub line: usize,
    pub message: String,
}

/// What each line holds, for errors.
pub const LINE_HELP: &str =
    "each line is a JSON object with a string `question` and its `answer` (a string or a number)";

#[derive(Deserialize)]
struct Line {
    question: Option<serde_json::Value>,
    answer: Option<serde_json::Value>,
}

/// Parses a JSONL file of `{"question": …, "answer": …}` lines; blank lines are skipped, other
/// fields are ignored.
pub fn parse(text: &str) -> Result<Vec<Question>, QuestionsError> {
    let mut out = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let bad = |message: String| QuestionsError { line, message };
        let parsed: Line = serde_json::from_str(raw).map_err(|e| bad(format!("not a JSON object: {e}")))?;
        let question = match parsed.question {
            Some(serde_json::Value::String(q)) if !q.trim().is_empty() => q,
            Some(serde_json::Value::String(_)) => return Err(bad("`question` is empty".into())),
            Some(other) => return Err(bad(format!("`question` must be a string, not {other}"))),
            None => return Err(bad("no `question`".into())),
        };
        let answer = match parsed.answer {
            Some(serde_json::Value::String(a)) if !a.trim().is_empty() => a.trim().to_owned(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(serde_json::Value::String(_)) => return Err(bad("`answer` is empty".into())),
            Some(other) => return Err(bad(format!("`answer` must be a string or a number, not {other}"))),
            None => return Err(bad("no `answer`".into())),
        };
        out.push(Question { question, answer, line });
    }
    if out.is_empty() {
        return Err(QuestionsError { line: 0, message: "the file has no questions".into() });
    }
    Ok(out)
}

/// The shipped arithmetic set.
pub fn builtin() -> Vec<Question> {
    match parse(BUILTIN) {
        Ok(questions) => questions,
        // A unit test parses it; a broken shipped file cannot get past CI.
        Err(e) => unreachable!("the shipped questions parse: {e}"),
    }
}

/// How one answer was judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    /// What was taken from the response as its answer; `None` when nothing could be.
    pub extracted: Option<String>,
    pub correct: bool,
}

/// Judges `response` against the expected `answer` (`docs/accuracy.md`, "Answer extraction"):
/// - a numeric answer is matched by the response's first number (a run of digits, with an
///   optional sign, thousands commas and decimals, not glued to a letter), compared as a number;
/// - any other answer is matched by the response's first non-empty line, both lowercased, with
///   surrounding quotes, `*` and punctuation stripped and runs of spaces made one.
pub fn judge(response: &str, answer: &str) -> Judged {
    match number(answer) {
        Some(expected) => {
            let found = first_number(response);
            let correct = found
                .as_deref()
                .and_then(number)
                .is_some_and(|v| (v - expected).abs() <= 1e-9 * expected.abs().max(1.0));
            Judged { extracted: found, correct }
        }
        None => {
            let line = response.lines().find(|l| !l.trim().is_empty()).map(normalise);
            let correct = line.as_deref() == Some(normalise(answer).as_str());
            Judged { extracted: line, correct }
        }
    }
}

fn number(text: &str) -> Option<f64> {
    let plain: String = text.trim().chars().filter(|c| *c != ',').collect();
    if plain.is_empty() || !plain.chars().all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.')) {
        return None;
    }
    plain.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// The first number standing on its own in `text`, as written (commas kept).
fn first_number(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let glued = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        let signed = matches!(chars[i], '-' | '+') && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if !glued && (chars[i].is_ascii_digit() || signed) {
            let start = i;
            i += 1;
            while i < chars.len() {
                let c = chars[i];
                let next_digit = chars.get(i + 1).is_some_and(char::is_ascii_digit);
                if c.is_ascii_digit() || (matches!(c, ',' | '.') && next_digit) {
                    i += 1;
                } else {
                    break;
                }
            }
            // `12abc` is a word, not a number.
            if chars.get(i).is_some_and(|c| c.is_alphabetic()) {
                continue;
            }
            return Some(chars[start..i].iter().collect());
        }
        i += 1;
    }
    None
}

fn normalise(text: &str) -> String {
    let trimmed =
        text.trim().trim_matches(|c: char| c.is_ascii_punctuation() && c != '-' || c.is_whitespace());
    trimmed.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// Reads and parses `accuracy.questions` through `read`, when it names a file, so that a bad
/// line is refused before submit; the error points at the key and names the line.
pub fn check(
    spec: &crate::Spec,
    read: impl Fn(&str) -> std::io::Result<Vec<u8>>,
) -> Result<(), crate::SpecError> {
    let Some(path) = spec.accuracy.as_ref().and_then(|a| a.questions.as_deref()) else { return Ok(()) };
    if path == crate::Accuracy::BUILTIN {
        return Ok(());
    }
    let at = crate::KeyPath::keys("accuracy.questions");
    let bytes = read(path).map_err(|e| {
        crate::SpecError::invalid(at.clone(), format!("cannot read the questions {path}: {e}")).with_help(
            "a relative path is read from where `sweep` runs; the benchmark step reads the same path",
        )
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        crate::SpecError::invalid(at.clone(), format!("the questions {path} are not UTF-8: {e}"))
    })?;
    parse(text).map(drop).map_err(|e| {
        let message = if e.line == 0 {
            format!("the questions {path}: {}", e.message)
        } else {
            format!("the questions {path}, line {}: {}", e.line, e.message)
        };
        crate::SpecError::invalid(at, message).with_help(LINE_HELP)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_set_parses_and_its_answers_are_right() {
        let questions = builtin();
        assert_eq!(questions.len(), 200);
        for q in &questions {
            // "What is A op B? …": recompute each answer from its question.
            let words: Vec<&str> = q.question.split_whitespace().collect();
            let a: i64 = words[2].parse().expect("a");
            let b: i64 = words[4].trim_end_matches('?').parse().expect("b");
            let value = match words[3] {
                "+" => a + b,
                "-" => a - b,
                "*" => a * b,
                other => panic!("operator {other}"),
            };
            assert_eq!(q.answer, value.to_string(), "line {}", q.line);
            assert!(judge(&q.answer, &q.answer).correct);
        }
    }

    /// The shipped file is what its generator makes (no hand edits, no drift).
    #[test]
    fn the_shipped_set_is_what_its_generator_makes() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let status = std::process::Command::new("python3")
            .arg(root.join("../../scripts/accuracy/make-arithmetic.py"))
            .arg("--check")
            .arg(root.join("data/arithmetic.jsonl"))
            .status()
            .expect("python3 runs");
        assert!(status.success(), "regenerate crates/sweep-spec/data/arithmetic.jsonl with its script");
    }

    #[test]
    fn bad_lines_are_named() {
        let err = |text: &str| parse(text).expect_err("refused");
        assert_eq!(err("{\"question\": \"a\", \"answer\": \"b\"}\n\nnot json\n").line, 3);
        assert!(err("{\"question\": \"a\"}").message.contains("no `answer`"));
        assert!(err("{\"answer\": 1}").message.contains("no `question`"));
        assert!(err("{\"question\": 3, \"answer\": 1}").message.contains("must be a string"));
        assert!(err("{\"question\": \"q\", \"answer\": [1]}").message.contains("string or a number"));
        assert_eq!(err("\n \n").line, 0);
        let ok = parse("{\"question\": \"q\", \"answer\": 42, \"id\": 7}\n").expect("parses");
        assert_eq!(ok[0].answer, "42");
    }

    #[test]
    fn numbers_are_extracted_and_compared_as_numbers() {
        let cases = [
            (" 95 tok1 tok2", "95", true),
            ("The answer is -135.", "-135", true),
            ("1,234", "1234", true),
            ("12.50 dollars", "12.5", true),
            ("tok95 96", "95", false),
            ("tok1 tok2", "3", false),
            ("", "3", false),
            ("3abc 4", "4", true),
        ];
        for (response, answer, correct) in cases {
            assert_eq!(judge(response, answer).correct, correct, "{response:?} against {answer}");
        }
        assert_eq!(judge("x 7 y", "7").extracted.as_deref(), Some("7"));
        assert_eq!(judge("tok1", "7").extracted, None);
    }

    #[test]
    fn text_answers_match_their_first_line_normalised() {
        assert!(judge("\n  \"Paris.\"\nbecause", "paris").correct);
        assert!(judge("**New   York**", "new york").correct);
        assert!(!judge("Lyon\nParis", "Paris").correct);
    }
}
