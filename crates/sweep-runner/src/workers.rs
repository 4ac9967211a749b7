//! What an engine's command learns only inside the job: where its peers are.
//!
//! - [`substitute`]: `serve` replaces `@SWEEP_PORT@` (the port the server listens on: the
//!   planned one, or the next free one when another job holds it), `@SWEEP_NODE_RANK@`, `@SWEEP_NNODES@`, `@SWEEP_HEAD@` (this
//!   step's node rank, node count and first node: multi-node servers), `@SWEEP_NODE_RANK*K@`
//!   (the rank times K: a node's first data-parallel rank) and `@SWEEP_FRONTEND_HOST@` (the node
//!   of the job's frontend: Dynamo's etcd and NATS) in the engine's arguments; an argument that
//!   is exactly `@SWEEP_HEADLESS@` becomes `--headless` on every node but the first, and is
//!   dropped there (vLLM's secondary nodes).
//! - [`with_workers`]: a frontend's command waits for every worker's registration, then is given
//!   their addresses — as TensorRT-LLM's disaggregated-server config file, or as router
//!   arguments (SGLang's and vLLM's routers take the same) — and replaces the runner's process.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

use sweep_folder::JobDir;

use crate::files;
use crate::RunnerError;

fn expand(list: &str) -> Vec<String> {
    sweep_slurm::hostlist::expand(list).unwrap_or_else(|_| vec![list.to_owned()])
}

/// The values of the `@SWEEP_…@` tokens for this task.
fn tokens(job_dir: &Path, port: u16) -> Vec<(&'static str, String)> {
    let node = files::node();
    let step: Vec<String> = std::env::var("SLURM_STEP_NODELIST").map(|l| expand(&l)).unwrap_or_default();
    let rank = step.iter().position(|n| *n == node).unwrap_or(0);
    let head = step.first().cloned().unwrap_or_else(|| node.clone());
    let frontend = JobDir::new(job_dir)
        .read_job()
        .ok()
        .and_then(|job| job.frontend)
        .and_then(|frontend| {
            let index = frontend.node;
            let hosts = expand(&std::env::var("SLURM_JOB_NODELIST").ok()?);
            hosts.get(index as usize).cloned()
        })
        .unwrap_or_else(|| node.clone());
    vec![
        ("@SWEEP_PORT@", port.to_string()),
        ("@SWEEP_NODE_RANK@", rank.to_string()),
        ("@SWEEP_NNODES@", step.len().max(1).to_string()),
        ("@SWEEP_HEAD@", head),
        ("@SWEEP_FRONTEND_HOST@", frontend),
    ]
}

/// The command with every token replaced (only arguments that hold one are touched).
pub fn substitute(job_dir: &Path, command: &[String], port: u16) -> Vec<String> {
    if !command.iter().any(|a| a.contains("@SWEEP_")) {
        return command.to_vec();
    }
    let values = tokens(job_dir, port);
    let rank: u64 =
        values.iter().find(|(t, _)| *t == "@SWEEP_NODE_RANK@").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    command
        .iter()
        .filter_map(|arg| {
            if arg == "@SWEEP_HEADLESS@" {
                return (rank > 0).then(|| "--headless".to_owned());
            }
            let arg = values.iter().fold(arg.clone(), |a, (token, value)| a.replace(token, value));
            Some(multiplied_ranks(&arg, rank))
        })
        .collect()
}

/// Replaces each `@SWEEP_NODE_RANK*K@` in `arg` with `rank × K`; a malformed one is left as is,
/// for the engine to refuse by name.
fn multiplied_ranks(arg: &str, rank: u64) -> String {
    const OPEN: &str = "@SWEEP_NODE_RANK*";
    let mut out = String::new();
    let mut rest = arg;
    while let Some(start) = rest.find(OPEN) {
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find('@') else { break };
        let Ok(factor) = after[..end].parse::<u64>() else { break };
        out.push_str(&rest[..start]);
        out.push_str(&(rank * factor).to_string());
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Write TensorRT-LLM's `trtllm-serve disaggregated` config to `--config`.
    TrtllmDisagg,
    /// Append `--prefill URL … --decode URL …` (or `--worker-urls URL …` for aggregated servers),
    /// as SGLang's and vLLM's routers take them.
    #[value(alias = "sglang-router")]
    Router,
}

#[derive(Debug)]
pub struct WithWorkers<'a> {
    pub job_dir: &'a Path,
    pub format: Format,
    pub config: Option<&'a Path>,
    pub port: u16,
    pub timeout: Duration,
    pub command: &'a [String],
}

/// Every worker's address by role (`ctx`, `gen`, `agg`), in index order, once all registered.
fn wait_for_workers(job_dir: &Path, timeout: Duration) -> Result<Vec<(String, String)>, RunnerError> {
    let dir = JobDir::new(job_dir);
    let job = dir.read_job()?;
    let servers: Vec<(String, String)> =
        job.servers.iter().map(|s| (s.name.clone(), s.role.as_str().to_owned())).collect();
    let deadline = Instant::now() + timeout;
    loop {
        let found: Vec<Option<(String, String)>> = servers
            .iter()
            .map(|(name, role)| {
                // A registration being written is not there yet: the next poll reads it.
                let r = dir.read_registration(name).ok().flatten()?;
                Some((role.clone(), r.address))
            })
            .collect();
        if found.iter().all(Option::is_some) {
            return Ok(found.into_iter().flatten().collect());
        }
        if let Some((name, _)) = servers.iter().find(|(n, _)| dir.server_status_path(n).exists()) {
            return Err(RunnerError::server(name, format!("worker {name} ended before it registered")));
        }
        if Instant::now() > deadline {
            return Err(RunnerError::server(
                "disagg_server_0",
                format!("the workers did not all register within {timeout:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// TensorRT-LLM's disaggregated-server configuration for these workers.
pub fn trtllm_config(port: u16, workers: &[(String, String)]) -> String {
    let list = |role: &str| -> Vec<&str> {
        workers.iter().filter(|(r, _)| r == role).map(|(_, a)| a.as_str()).collect()
    };
    let block = |key: &str, urls: &[&str]| {
        let mut out = format!("{key}:\n  num_instances: {}\n  urls:\n", urls.len());
        for url in urls {
            out.push_str(&format!("    - \"{url}\"\n"));
        }
        out
    };
    format!(
        "# written by sweep-runner once every worker registered\nhostname: 0.0.0.0\nport: {port}\nbackend: pytorch\n{}{}",
        block("context_servers", &list("ctx")),
        block("generation_servers", &list("gen")),
    )
}

/// Router arguments for these workers (SGLang's and vLLM's routers).
pub fn router_args(workers: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    let agg: Vec<String> =
        workers.iter().filter(|(r, _)| r == "agg").map(|(_, a)| format!("http://{a}")).collect();
    if !agg.is_empty() {
        out.push("--worker-urls".to_owned());
        out.extend(agg);
    }
    for (role, address) in workers {
        match role.as_str() {
            "ctx" => out.extend(["--prefill".to_owned(), format!("http://{address}")]),
            "gen" => out.extend(["--decode".to_owned(), format!("http://{address}")]),
            _ => {}
        }
    }
    out
}

pub fn with_workers(w: &WithWorkers) -> Result<std::process::ExitCode, RunnerError> {
    let workers = wait_for_workers(w.job_dir, w.timeout)?;
    let mut command = w.command.to_vec();
    match w.format {
        Format::TrtllmDisagg => {
            let path = w
                .config
                .ok_or_else(|| RunnerError::flag("--config", "--format trtllm-disagg needs --config FILE"))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|source| RunnerError::File {
                    action: "create",
                    path: dir.to_owned(),
                    source,
                })?;
            }
            sweep_folder::file::write_atomically(path, trtllm_config(w.port, &workers).as_bytes())?;
        }
        Format::Router => command.extend(router_args(&workers)),
    }
    let join = |role: &str| {
        workers.iter().filter(|(r, _)| r == role).map(|(_, a)| a.as_str()).collect::<Vec<_>>().join(",")
    };
    // Only returns when the command could not be started.
    let error = std::process::Command::new(&command[0])
        .args(&command[1..])
        .env("SWEEP_CTX_URLS", join("ctx"))
        .env("SWEEP_GEN_URLS", join("gen"))
        .env("SWEEP_AGG_URLS", join("agg"))
        .exec();
    Err(RunnerError::server("disagg_server_0", format!("cannot start `{}`: {error}", command[0])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workers() -> Vec<(String, String)> {
        [("ctx", "n1:8001"), ("ctx", "n2:8002"), ("gen", "n3:8000")]
            .map(|(r, a)| (r.to_owned(), a.to_owned()))
            .to_vec()
    }

    #[test]
    fn trtllm_gets_every_worker_in_its_config() {
        let config: serde_yaml::Value = serde_yaml::from_str(&trtllm_config(8333, &workers())).expect("YAML");
        assert_eq!(config["port"], 8333);
        assert_eq!(config["backend"], "pytorch");
        assert_eq!(config["context_servers"]["num_instances"], 2);
        assert_eq!(config["context_servers"]["urls"][1], "n2:8002");
        assert_eq!(config["generation_servers"]["num_instances"], 1);
        assert_eq!(config["generation_servers"]["urls"][0], "n3:8000");
    }

    #[test]
    fn routers_get_prefill_and_decode_urls() {
        assert_eq!(
            router_args(&workers()),
            ["--prefill", "http://n1:8001", "--prefill", "http://n2:8002", "--decode", "http://n3:8000"]
        );
        let agg = [("agg".to_owned(), "n1:8000".to_owned()), ("agg".to_owned(), "n2:8000".to_owned())];
        assert_eq!(router_args(&agg), ["--worker-urls", "http://n1:8000", "http://n2:8000"]);
    }

    #[test]
    fn tokens_are_replaced_only_where_they_are() {
        let dir = std::env::temp_dir();
        let command = vec![
            "engine".to_owned(),
            "--rank".to_owned(),
            "@SWEEP_NODE_RANK@".to_owned(),
            "{a:1}".to_owned(),
            "--port=@SWEEP_PORT@".to_owned(),
        ];
        let out = substitute(&dir, &command, 8123);
        assert_eq!(out[..2], command[..2]);
        assert!(out[2].parse::<u32>().is_ok(), "{out:?}");
        assert_eq!(out[3], "{a:1}");
        assert_eq!(out[4], "--port=8123", "the port the server took");
    }

    #[test]
    fn multiplied_ranks_and_headless_follow_the_node_rank() {
        assert_eq!(multiplied_ranks("@SWEEP_NODE_RANK*4@", 0), "0");
        assert_eq!(multiplied_ranks("@SWEEP_NODE_RANK*4@", 3), "12");
        assert_eq!(multiplied_ranks("r=@SWEEP_NODE_RANK*2@,@SWEEP_NODE_RANK*8@", 1), "r=2,8");
        assert_eq!(multiplied_ranks("@SWEEP_NODE_RANK*x@", 1), "@SWEEP_NODE_RANK*x@");
        // Outside a SLURM step this task is the first node: the headless flag is dropped.
        let dir = std::env::temp_dir();
        let command = ["vllm", "@SWEEP_HEADLESS@", "--port", "1"].map(str::to_owned);
        assert_eq!(substitute(&dir, &command, 1), ["vllm", "--port", "1"]);
    }
}
