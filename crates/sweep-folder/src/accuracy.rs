//! A job's accuracy step (`accuracy` in the spec), written by the benchmark step after the
//! job's performance points and read by `sweep aggregate`:
//!
//! - `jobs/<job>/accuracy/accuracy.json`: its [`AccuracyResult`]: each score with its sample
//!   count, and whether the step finished;
//! - `jobs/<job>/accuracy/answers.jsonl`: one [`Answer`] per question of the exact-match probe,
//!   to audit the score;
//! - `jobs/<job>/accuracy/lm_eval/`: lm-eval's own output and log, untouched.

use serde::{Deserialize, Serialize};

/// Names in a job's folder.
pub const DIR: &str = "accuracy";
pub const SUMMARY: &str = "accuracy.json";
pub const ANSWERS: &str = "answers.jsonl";
pub const LM_EVAL_DIR: &str = "lm_eval";

/// How the step ended. A step that failed may still hold the scores it got before failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccuracyState {
    Done,
    Failed,
    Cancelled,
}

impl AccuracyState {
    pub fn as_str(self) -> &'static str {
        match self {
            AccuracyState::Done => "done",
            AccuracyState::Failed => "failed",
            AccuracyState::Cancelled => "cancelled",
        }
    }
}

/// One score of the deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// `exact_match` for the probe; the task's name for lm-eval.
    pub name: String,
    /// `builtin`, the questions file, or `lm_eval`.
    pub source: String,
    /// The field scored: `exact_match`, or lm-eval's (`exact_match,strict-match`).
    pub metric: String,
    /// From 0 to 1.
    pub score: f64,
    /// Questions asked (lm-eval: its effective sample count, when it says).
    pub samples: Option<u64>,
    /// Answers judged right (the probe only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct: Option<u64>,
    /// Questions whose request failed (the probe only); each counts as a wrong answer.
    #[serde(default)]
    pub errors: u64,
}

impl Score {
    /// `exact_match 0.40 (20 of 50)`.
    pub fn describe(&self) -> String {
        let count = match (self.correct, self.samples) {
            (Some(c), Some(n)) => format!(" ({c} of {n})"),
            (None, Some(n)) => format!(" ({n} samples)"),
            _ => String::new(),
        };
        format!("{} {:.3}{count}", self.name, self.score)
    }
}

/// `accuracy.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracyResult {
    pub state: AccuracyState,
    pub reason: String,
    pub node: String,
    pub started_at: f64,
    pub ended_at: f64,
    /// `accuracy.min_score`, as the job ran with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_score: Option<f64>,
    pub scores: Vec<Score>,
}

impl AccuracyResult {
    /// Why the deployment is `inaccurate`: each score below `min_score`, described; `None`
    /// when every score meets it, there is no bound, or the step was cancelled (a failed step
    /// judges by the scores it got: the runner keeps no score of a probe cut short).
    pub fn inaccurate(&self) -> Option<String> {
        if self.state == AccuracyState::Cancelled {
            return None;
        }
        let min = self.min_score?;
        let below: Vec<String> = self
            .scores
            .iter()
            .filter(|s| s.score < min)
            .map(|s| format!("{} below accuracy.min_score {min}", s.describe()))
            .collect();
        (!below.is_empty()).then(|| format!("inaccurate: {}", below.join("; ")))
    }

    /// The lowest score: the one a bound judges first.
    pub fn lowest(&self) -> Option<&Score> {
        self.scores.iter().min_by(|a, b| a.score.total_cmp(&b.score))
    }
}

/// One question of the exact-match probe, and what came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// Its line in the questions file.
    pub line: usize,
    pub question: String,
    /// The answer that counts as right.
    pub expected: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extracted: Option<String>,
    pub correct: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(name: &str, value: f64) -> Score {
        Score {
            name: name.into(),
            source: "builtin".into(),
            metric: "exact_match".into(),
            score: value,
            samples: Some(50),
            correct: Some((value * 50.0) as u64),
            errors: 0,
        }
    }

    #[test]
    fn inaccurate_names_every_score_below_the_bound() {
        let mut result = AccuracyResult {
            state: AccuracyState::Done,
            reason: String::new(),
            node: "n1".into(),
            started_at: 0.0,
            ended_at: 1.0,
            min_score: Some(0.9),
            scores: vec![score("exact_match", 0.4), score("gsm8k", 0.95)],
        };
        assert_eq!(
            result.inaccurate().as_deref(),
            Some("inaccurate: exact_match 0.400 (20 of 50) below accuracy.min_score 0.9")
        );
        assert_eq!(result.lowest().map(|s| s.score), Some(0.4));
        result.state = AccuracyState::Cancelled;
        assert_eq!(result.inaccurate(), None, "a cancelled step judges nothing");
        result.state = AccuracyState::Failed;
        assert!(result.inaccurate().is_some(), "a failed step judges the scores it got");
        result.min_score = None;
        assert_eq!(result.inaccurate(), None, "no bound, no flag");
        result.min_score = Some(0.3);
        assert_eq!(result.inaccurate(), None);
    }
}
