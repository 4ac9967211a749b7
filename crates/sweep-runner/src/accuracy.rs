//! The accuracy step (`accuracy` in the spec): after the job's performance points, the benchmark
//! step asks the deployed servers, through the same frontend the load went to,
//!
//! 1. the exact-match probe: each question once, greedy (`temperature: 0`), `concurrency` at a
//!    time, judged by [`sweep_spec::accuracy::judge`];
//! 2. lm-eval, when `accuracy.lm_eval` names tasks: the harness's OpenAI client pointed at the
//!    frontend, run where the job runs.
//!
//! Whatever happens here, the performance points keep their results: a fault (lm-eval missing,
//! the servers gone, the time up) is the step's `failed` state with its reason, beside the
//! scores it did get.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sweep_folder::accuracy::{AccuracyResult, AccuracyState, Answer, Score, LM_EVAL_DIR};
use sweep_folder::job::JobContext;
use sweep_folder::settings::{Accuracy, Endpoint, LmEval};
use sweep_folder::JobDir;
use sweep_load::Cancel;
use sweep_spec::accuracy::Question;

use crate::files;

/// Runs the step into a new `accuracy/` folder of the job and writes its outcome.
pub fn run(
    dir: &JobDir,
    job: &JobContext,
    accuracy: &Accuracy,
    url: &str,
    node: &str,
    cancel: &Cancel,
) -> AccuracyResult {
    let started = files::now();
    let deadline = Instant::now() + Duration::from_secs_f64(accuracy.timeout);
    let mut scores = Vec::new();
    let mut answers = Vec::new();
    let mut failures = Vec::new();
    let folder = match dir.new_accuracy_dir() {
        Ok(folder) => Some(folder),
        Err(e) => {
            failures.push(e.to_string());
            None
        }
    };
    if let (Some(questions), Some(_)) = (&accuracy.questions, &folder) {
        match read_questions(questions) {
            Ok(mut list) => {
                if let Some(limit) = accuracy.limit {
                    list.truncate(limit as usize);
                }
                let source = questions.clone();
                let Probed { score, answers: asked, unasked } =
                    probe(&list, &source, job, accuracy, url, deadline, cancel);
                // A score stands only for a probe that asked every question and heard answers:
                // one cut short, or whose every request failed, says nothing of the model.
                if unasked > 0 {
                    failures.push(format!(
                        "the probe was cut short: {unasked} of {} questions not asked",
                        asked.len()
                    ));
                } else if score.errors == score.samples.unwrap_or(0) && score.errors > 0 {
                    let first = asked.iter().find_map(|a| a.error.clone()).unwrap_or_default();
                    failures.push(format!("every question of the probe failed: {first}"));
                } else {
                    scores.push(score);
                }
                answers = asked;
            }
            Err(reason) => failures.push(reason),
        }
    }
    if let (Some(lm_eval), Some(folder)) = (&accuracy.lm_eval, &folder) {
        if cancel.reason().is_none() {
            match run_lm_eval(lm_eval, job, accuracy, url, &folder.join(LM_EVAL_DIR), deadline, cancel) {
                Ok(found) => scores.extend(found),
                Err(reason) => failures.push(format!("lm-eval: {reason}")),
            }
        }
    }
    let (state, reason) = match cancel.reason() {
        Some(why) => (AccuracyState::Cancelled, format!("stopped: {why}")),
        None if !failures.is_empty() => (AccuracyState::Failed, failures.join("; ")),
        None => {
            let said: Vec<String> = scores.iter().map(Score::describe).collect();
            (AccuracyState::Done, said.join(", "))
        }
    };
    let result = AccuracyResult {
        state,
        reason,
        node: node.to_owned(),
        started_at: started,
        ended_at: files::now(),
        min_score: accuracy.min_score,
        scores,
    };
    if let Some(folder) = folder {
        if let Err(e) = dir.write_accuracy(&folder, &result, &answers) {
            eprintln!("sweep-runner: {e}");
        }
    }
    result
}

/// The shipped set, or the file (checked at submit; read again here, where the job runs).
fn read_questions(questions: &str) -> Result<Vec<Question>, String> {
    if questions == sweep_spec::Accuracy::BUILTIN {
        return Ok(sweep_spec::accuracy::builtin());
    }
    let text = std::fs::read_to_string(questions)
        .map_err(|e| format!("cannot read the questions {questions}: {e}"))?;
    sweep_spec::accuracy::parse(&text).map_err(|e| format!("the questions {questions}, {e}"))
}

/// What one question got.
enum Reply {
    Text(String),
    /// The request failed: a wrong answer.
    Failed(String),
    /// Never sent: the job stopped, or the step's time was up.
    NotAsked(&'static str),
}

/// The probe's score, each question's answer, and how many questions were never sent.
struct Probed {
    score: Score,
    answers: Vec<Answer>,
    unasked: usize,
}

/// Asks every question and judges the answers.
fn probe(
    questions: &[Question],
    source: &str,
    job: &JobContext,
    accuracy: &Accuracy,
    url: &str,
    deadline: Instant,
    cancel: &Cancel,
) -> Probed {
    let endpoint = job.load.endpoint;
    let path = match endpoint {
        Endpoint::Chat => "/v1/chat/completions",
        Endpoint::Completions => "/v1/completions",
    };
    let request_timeout = Duration::from_secs_f64(job.load.request_timeout);
    let responses: Vec<Reply> = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Err(e) => questions.iter().map(|_| Reply::Failed(format!("no runtime: {e}"))).collect(),
        Ok(runtime) => runtime.block_on(async {
            let client = match reqwest::Client::builder().no_proxy().timeout(request_timeout).build() {
                Ok(client) => client,
                Err(e) => {
                    return questions.iter().map(|_| Reply::Failed(format!("no HTTP client: {e}"))).collect()
                }
            };
            let asks = questions.iter().map(|q| {
                let body = request_body(endpoint, &job.model.served_name, &q.question, accuracy.max_tokens);
                let client = client.clone();
                let target = format!("{url}{path}");
                async move {
                    if cancel.reason().is_some() {
                        return Reply::NotAsked("the job was stopped");
                    }
                    if Instant::now() >= deadline {
                        return Reply::NotAsked("accuracy.timeout passed");
                    }
                    match ask(&client, &target, body, endpoint).await {
                        Ok(text) => Reply::Text(text),
                        Err(why) => Reply::Failed(why),
                    }
                }
            });
            let mut all: Vec<(usize, Reply)> = futures_util::stream::iter(asks.enumerate())
                .map(|(i, ask)| async move { (i, ask.await) })
                .buffer_unordered(accuracy.concurrency.max(1) as usize)
                .collect()
                .await;
            all.sort_by_key(|(i, _)| *i);
            all.into_iter().map(|(_, r)| r).collect()
        }),
    };
    let mut answers = Vec::with_capacity(questions.len());
    let mut unasked = 0;
    for (q, reply) in questions.iter().zip(responses) {
        let (response, error) = match reply {
            Reply::Text(text) => (Some(text), None),
            Reply::Failed(why) => (None, Some(why)),
            Reply::NotAsked(why) => {
                unasked += 1;
                (None, Some(format!("not asked: {why}")))
            }
        };
        let judged = response.as_deref().map(|r| sweep_spec::accuracy::judge(r, &q.answer));
        answers.push(Answer {
            line: q.line,
            question: q.question.clone(),
            expected: q.answer.clone(),
            response,
            extracted: judged.as_ref().and_then(|j| j.extracted.clone()),
            correct: judged.is_some_and(|j| j.correct),
            error,
        });
    }
    let correct = answers.iter().filter(|a| a.correct).count() as u64;
    let errors = answers.iter().filter(|a| a.error.is_some()).count() as u64;
    let samples = answers.len() as u64;
    let score = Score {
        name: "exact_match".to_owned(),
        source: source.to_owned(),
        metric: "exact_match".to_owned(),
        score: if samples == 0 { 0.0 } else { correct as f64 / samples as f64 },
        samples: Some(samples),
        correct: Some(correct),
        errors,
    };
    Probed { score, answers, unasked }
}

/// A greedy, non-streamed request for one question.
fn request_body(endpoint: Endpoint, model: &str, question: &str, max_tokens: u32) -> String {
    let mut body = serde_json::json!({
        "model": model,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": false,
    });
    match endpoint {
        Endpoint::Chat => body["messages"] = serde_json::json!([{"role": "user", "content": question}]),
        Endpoint::Completions => body["prompt"] = serde_json::Value::from(question),
    }
    body.to_string()
}

/// The answer's text, or why there is none.
async fn ask(
    client: &reqwest::Client,
    url: &str,
    body: String,
    endpoint: Endpoint,
) -> Result<String, String> {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| format!("answer cut short: {e}"))?;
    if !status.is_success() {
        return Err(format!("HTTP {status}: {}", text.chars().take(200).collect::<String>()));
    }
    answer_text(&text, endpoint)
}

/// `choices[0].text` (completions) or `choices[0].message.content` (chat).
fn answer_text(body: &str, endpoint: Endpoint) -> Result<String, String> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let choice = &value["choices"][0];
    let text = match endpoint {
        Endpoint::Chat => choice["message"]["content"].as_str(),
        Endpoint::Completions => choice["text"].as_str(),
    };
    text.map(str::to_owned).ok_or_else(|| "the answer has no text in `choices[0]`".to_owned())
}

/// Where `command` is: a path as given, else the first match on `PATH`, else in `engine.venv`'s
/// `bin` (executables only, as the serve step finds its engine).
fn find_program(command: &str, venv: Option<&str>) -> Option<PathBuf> {
    crate::provenance::executable(command, None)
        .or_else(|| venv.and_then(|v| crate::provenance::executable(command, Some(&format!("{v}/bin")))))
}

/// Runs lm-eval against the frontend into `out`, and reads its scores.
fn run_lm_eval(
    lm_eval: &LmEval,
    job: &JobContext,
    accuracy: &Accuracy,
    url: &str,
    out: &Path,
    deadline: Instant,
    cancel: &Cancel,
) -> Result<Vec<Score>, String> {
    let program = find_program(&lm_eval.command, job.venv.as_deref()).ok_or_else(|| {
        format!(
            "`{}` was not found on {} (PATH{}): install lm-eval where the job runs (`pip install \"lm-eval[api]\"`), \
             or remove `accuracy.lm_eval`",
            lm_eval.command,
            files::node(),
            job.venv.as_deref().map(|v| format!(" and {v}/bin")).unwrap_or_default()
        )
    })?;
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let args = lm_eval_args(lm_eval, &job.model, url, accuracy.concurrency, out);
    let log_path = out.join("lm_eval.log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let log_err = log.try_clone().map_err(|e| format!("cannot share {}: {e}", log_path.display()))?;
    let mut child = Command::new(&program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(format!("cannot wait for {}: {e}", program.display())),
        }
        let stop = cancel
            .reason()
            .or_else(|| (Instant::now() >= deadline).then(|| "accuracy.timeout passed".to_owned()));
        if let Some(why) = stop {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("stopped ({why}); its log: {}", log_path.display()));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if !status.success() {
        let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
        let last: Vec<&str> = tail.lines().rev().take(3).collect();
        return Err(format!(
            "{} exited with {status}: {} (log: {})",
            program.display(),
            last.into_iter().rev().collect::<Vec<_>>().join(" | "),
            log_path.display()
        ));
    }
    let results =
        newest_results(out).ok_or_else(|| format!("it wrote no results_*.json under {}", out.display()))?;
    let text =
        std::fs::read_to_string(&results).map_err(|e| format!("cannot read {}: {e}", results.display()))?;
    lm_eval_scores(&text, lm_eval).map_err(|e| format!("{}: {e}", results.display()))
}

/// lm-eval's command line: its OpenAI-compatible client pointed at the frontend, with the
/// served model's own tokenizer (`model.path`, as the engine loaded it) rather than one looked
/// up on the hub by the served name; `lm_eval.model_args` comes last and may override it.
fn lm_eval_args(
    lm_eval: &LmEval,
    model: &sweep_folder::settings::Model,
    url: &str,
    concurrency: u32,
    out: &Path,
) -> Vec<String> {
    use sweep_folder::settings::LmEvalModel;
    let path = match lm_eval.model {
        LmEvalModel::LocalCompletions => "/v1/completions",
        LmEvalModel::LocalChatCompletions => "/v1/chat/completions",
    };
    let mut model_args = format!(
        "model={},base_url={url}{path},num_concurrent={concurrency},max_retries=3,tokenized_requests=False,tokenizer={}",
        model.served_name, model.path
    );
    if let Some(more) = &lm_eval.model_args {
        model_args.push(',');
        model_args.push_str(more);
    }
    let mut args = vec![
        "--model".to_owned(),
        lm_eval.model.as_str().to_owned(),
        "--model_args".to_owned(),
        model_args,
        "--tasks".to_owned(),
        lm_eval.tasks.join(","),
        "--output_path".to_owned(),
        out.display().to_string(),
    ];
    if lm_eval.model == LmEvalModel::LocalChatCompletions {
        args.push("--apply_chat_template".to_owned());
    }
    if let Some(limit) = lm_eval.limit {
        args.extend(["--limit".to_owned(), limit.to_string()]);
    }
    if let Some(shots) = lm_eval.num_fewshot {
        args.extend(["--num_fewshot".to_owned(), shots.to_string()]);
    }
    args.extend(lm_eval.args.iter().cloned());
    args
}

/// The newest `results_*.json` lm-eval wrote under `dir` (it nests them in a folder named
/// after the model).
fn newest_results(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                stack.push(path);
            } else if name.starts_with("results") && name.ends_with(".json") {
                let modified = entry.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
                found.push((modified, path));
            }
        }
    }
    found.into_iter().max_by_key(|(t, _)| *t).map(|(_, p)| p)
}

/// Each task's score from lm-eval's results file: `results.<task>.<metric>` (the configured
/// metric, else the task's first in name order: a numeric field named `metric,filter`, standard
/// errors left out, as other fields such as `sample_len` are), with
/// `n-samples.<task>.effective` as its sample count.
fn lm_eval_scores(text: &str, lm_eval: &LmEval) -> Result<Vec<Score>, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let mut scores = Vec::new();
    for task in &lm_eval.tasks {
        let fields =
            value["results"][task].as_object().ok_or_else(|| format!("no result for task `{task}`"))?;
        let metric = match &lm_eval.metric {
            Some(metric) => metric.clone(),
            None => {
                let mut names: Vec<&String> = fields
                    .iter()
                    .filter(|(name, v)| v.is_number() && name.contains(',') && !name.contains("_stderr"))
                    .map(|(name, _)| name)
                    .collect();
                names.sort();
                names
                    .first()
                    .map(|n| (*n).clone())
                    .ok_or_else(|| format!("task `{task}` has no numeric result"))?
            }
        };
        let score = fields.get(&metric).and_then(serde_json::Value::as_f64).ok_or_else(|| {
            format!(
                "task `{task}` has no `{metric}`; it has {}",
                fields.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        scores.push(Score {
            name: task.clone(),
            source: "lm_eval".to_owned(),
            metric,
            score,
            samples: value["n-samples"][task]["effective"].as_u64(),
            correct: None,
            errors: 0,
        });
    }
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sweep_folder::settings::LmEvalModel;

    fn lm_eval(metric: Option<&str>) -> LmEval {
        LmEval {
            tasks: vec!["gsm8k".into(), "arc_easy".into()],
            limit: Some(50),
            model: LmEvalModel::LocalChatCompletions,
            num_fewshot: Some(5),
            metric: metric.map(str::to_owned),
            model_args: Some("tokenizer_backend=None".into()),
            command: "lm_eval".into(),
            args: vec!["--seed".into(), "0".into()],
        }
    }

    /// The shape of lm-eval 0.4's `results_<time>.json`.
    const RESULTS: &str = r#"{
      "results": {
        "gsm8k": {"alias": "gsm8k", "sample_len": 50, "exact_match,strict-match": 0.25, "exact_match_stderr,strict-match": 0.06,
                  "exact_match,flexible-extract": 0.5, "exact_match_stderr,flexible-extract": 0.07},
        "arc_easy": {"alias": "arc_easy", "acc,none": 0.75, "acc_stderr,none": 0.02, "acc_norm,none": 0.7}
      },
      "n-samples": {"gsm8k": {"original": 1319, "effective": 50}, "arc_easy": {"original": 2376, "effective": 50}}
    }"#;

    #[test]
    fn lm_eval_scores_take_the_named_or_first_metric() {
        let scores = lm_eval_scores(RESULTS, &lm_eval(None)).expect("parses");
        assert_eq!(scores[0].metric, "exact_match,flexible-extract");
        assert_eq!(scores[0].score, 0.5);
        assert_eq!(scores[0].samples, Some(50));
        assert_eq!((scores[1].metric.as_str(), scores[1].score), ("acc,none", 0.75));
        let named = lm_eval_scores(RESULTS, &lm_eval(Some("exact_match,strict-match")));
        let err = named.expect_err("arc_easy has no exact_match");
        assert!(err.contains("task `arc_easy` has no `exact_match,strict-match`"), "{err}");
        let missing = lm_eval_scores(r#"{"results": {"gsm8k": {"acc,none": 1.0}}}"#, &lm_eval(None));
        assert_eq!(missing.expect_err("no arc_easy"), "no result for task `arc_easy`");
    }

    #[test]
    fn lm_eval_is_pointed_at_the_frontend() {
        let model = sweep_folder::settings::Model {
            path: "/models/tiny".into(),
            served_name: "tiny".into(),
            config: None,
            dtype: None,
        };
        let args = lm_eval_args(&lm_eval(None), &model, "http://n1:8000", 4, Path::new("/s/acc/lm_eval"));
        assert_eq!(
            args.join(" "),
            "--model local-chat-completions --model_args \
             model=tiny,base_url=http://n1:8000/v1/chat/completions,num_concurrent=4,max_retries=3,tokenized_requests=False,tokenizer=/models/tiny,tokenizer_backend=None \
             --tasks gsm8k,arc_easy --output_path /s/acc/lm_eval --apply_chat_template --limit 50 --num_fewshot 5 --seed 0"
        );
    }

    #[test]
    fn answers_are_read_from_either_api() {
        let completion = r#"{"choices": [{"index": 0, "text": " 42 tok1"}]}"#;
        assert_eq!(answer_text(completion, Endpoint::Completions).as_deref(), Ok(" 42 tok1"));
        let chat = r#"{"choices": [{"message": {"role": "assistant", "content": "42"}}]}"#;
        assert_eq!(answer_text(chat, Endpoint::Chat).as_deref(), Ok("42"));
        assert!(answer_text("{}", Endpoint::Chat).is_err());
        let body: serde_json::Value =
            serde_json::from_str(&request_body(Endpoint::Completions, "m", "What is 1 + 1?", 8))
                .expect("json");
        assert_eq!(body["temperature"], 0);
        assert_eq!(body["prompt"], "What is 1 + 1?");
    }

    #[test]
    fn a_missing_program_is_not_found_and_a_path_is_taken_as_given() {
        assert_eq!(find_program("surely-no-such-program-here", None), None);
        assert_eq!(find_program("/bin/sh", None), Some(PathBuf::from("/bin/sh")));
        let venv = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(venv.path().join("bin")).expect("bin");
        std::fs::write(venv.path().join("bin/lm_eval_standin"), "").expect("file");
        assert_eq!(find_program("lm_eval_standin", venv.path().to_str()), None, "not executable");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(venv.path().join("bin/lm_eval_standin"), mode).expect("chmod");
        assert_eq!(
            find_program("lm_eval_standin", venv.path().to_str()),
            Some(venv.path().join("bin/lm_eval_standin"))
        );
    }
}
