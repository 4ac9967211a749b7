//! The results table: a row per (job, point) with its configuration, its figures and the derived
//! throughputs, as a polars frame written to `results.parquet` and `results.csv`.

use std::path::PathBuf;

use polars::prelude::*;

use crate::discover::{Config, PointSource, Source};
use crate::metrics::{Figures, TurnTtft, METRICS};
use crate::server::ServerFigures;
use crate::{records, summary, Error, GpuBasis, Warning};

/// One point of one job, whatever became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub source: Source,
    pub config: Config,
    pub point: String,
    pub dir: PathBuf,
    /// `done`, `failed`, `timeout`, `cancelled`, `running`, `not_run` or `unreadable`.
    pub state: String,
    pub reason: Option<String>,
    pub attempts: u32,
    pub isl: Option<i64>,
    pub osl: Option<i64>,
    pub concurrency: Option<i64>,
    pub effective_concurrency: Option<i64>,
    /// The open loop's target rate, requests/s (the measured one is `request_throughput`).
    pub request_rate: Option<f64>,
    /// The share of each prompt that is a shared prefix (`workload.prefix_ratio`).
    pub prefix_ratio: Option<f64>,
    /// The search this row belongs to (its planned point's id), for a search's planned point
    /// and its steps.
    pub search: Option<String>,
    /// What that search found, on the planned point's row and on every step's.
    pub max_load_meeting_slo: Option<f64>,
    /// Why the search stopped, on the planned point's row.
    pub search_stopped_because: Option<String>,
    pub figures: Figures,
    /// TTFT per turn index, for points of multi-turn sessions (`ttft_by_turn.csv`).
    pub ttft_by_turn: Vec<TurnTtft>,
    /// `summary` or `records`: where the figures were read from.
    pub metrics_from: Option<&'static str>,
    pub token_source: Option<String>,
    pub generator: Option<String>,
    /// Output tokens/s divided by the GPUs the servers use.
    pub tps_per_gpu_working: Option<f64>,
    /// Output tokens/s divided by the GPUs the job holds.
    pub tps_per_gpu_allocated: Option<f64>,
    /// aiperf's tokens/s/user: the mean over requests of 1000 / ITL(ms).
    pub tps_per_user: Option<f64>,
    /// srt-slurm's tokens/s/user: 1000 / median ITL (what vLLM calls TPOT), in ms.
    pub tps_per_user_srt: Option<f64>,
    pub on_frontier: bool,
    /// Why a measured point is not valid, and so stands on no frontier ([`validate`]).
    pub invalid: Option<String>,
    /// Which repetition of its point this is (`workload.repeats`), from 0.
    pub repeat: u32,
    /// On the row that speaks for a point's repetitions: their spread.
    pub repeats: Option<crate::repeats::RepeatStats>,
    /// On the other repetitions: the row that speaks for them.
    pub repeat_of: Option<usize>,
    /// What the servers' `/metrics` said of the point, with the flags; `None` without scrapes.
    pub server: Option<ServerFigures>,
    /// Its GPUs' telemetry (`gpu_metrics.json`); `None` without one.
    pub gpu: Option<sweep_folder::gpu_metrics::GpuSummary>,
    /// Its deployment's accuracy step (`accuracy/accuracy.json`); `None` without one.
    pub accuracy: Option<sweep_folder::accuracy::AccuracyResult>,
}

impl Row {
    /// Whether the point may stand on a frontier: it finished and measured something.
    pub fn measured(&self) -> bool {
        self.state == "done" && self.figures.get("request_count").is_some_and(|n| n > 0.0)
    }

    /// A results-table figure by its column name: a derived one or a measured one.
    pub fn figure(&self, name: &str) -> Option<f64> {
        match name {
            "tps_per_gpu_working" => self.tps_per_gpu_working,
            "tps_per_gpu_allocated" => self.tps_per_gpu_allocated,
            "tps_per_user" => self.tps_per_user,
            other => self.figures.get(other),
        }
    }

    /// Output tokens of the measured requests per joule their GPUs drew over the measured
    /// window (`osl_avg × request_count / gpu_energy_j`).
    pub fn tokens_per_joule(&self) -> Option<f64> {
        let tokens = self.figures.output_tokens()?;
        let joules = self.gpu.as_ref()?.energy_j.filter(|j| *j > 0.0)?;
        Some(tokens / joules)
    }

    /// Output tokens/s per GPU on the chosen basis.
    pub fn tps_per_gpu(&self, basis: GpuBasis) -> Option<f64> {
        match basis {
            GpuBasis::Working => self.tps_per_gpu_working,
            GpuBasis::Allocated => self.tps_per_gpu_allocated,
        }
    }

    /// A short description of the configuration: `ctx 1×TEP1 + gen 2×DEP8`.
    pub fn roles_label(&self) -> String {
        self.config
            .roles
            .iter()
            .map(|r| {
                let servers = r.servers.map_or(String::new(), |n| format!("{n}×"));
                let parallel = r.parallel.as_deref().unwrap_or("tp").to_ascii_uppercase();
                let tp = r.tp.map_or_else(String::new, |t| format!("{parallel}{t}"));
                format!("{} {servers}{tp}", r.role).trim_end().to_owned()
            })
            .collect::<Vec<_>>()
            .join(" + ")
    }
}

/// Reads every point's figures: its summary, or its records when the summary is missing or
/// broken or `from_records` is set. Nothing is dropped; unreadable points say why.
pub fn read_points(points: Vec<PointSource>, from_records: bool, warnings: &mut Vec<Warning>) -> Vec<Row> {
    let mut rows = Vec::with_capacity(points.len());
    let mut need_records: Vec<(usize, records::Input)> = Vec::new();
    let mut server_summaries = Vec::new();
    for p in points {
        let mut row = Row {
            source: p.source,
            config: p.config,
            point: p.point,
            dir: p.dir,
            state: p.state,
            reason: p.reason,
            attempts: p.attempts,
            isl: p.isl,
            osl: p.osl,
            concurrency: p.concurrency,
            effective_concurrency: p.effective_concurrency,
            request_rate: p.request_rate,
            prefix_ratio: p.prefix_ratio,
            search: p.search,
            max_load_meeting_slo: p.search_record.as_ref().and_then(|r| r.max_load_meeting_slo),
            search_stopped_because: p.search_record.as_ref().map(|r| r.stopped_because.clone()),
            figures: Figures::empty(),
            ttft_by_turn: Vec::new(),
            metrics_from: None,
            token_source: None,
            generator: None,
            tps_per_gpu_working: None,
            tps_per_gpu_allocated: None,
            tps_per_user: None,
            tps_per_user_srt: None,
            on_frontier: false,
            invalid: None,
            repeat: p.repeat,
            repeats: None,
            repeat_of: None,
            server: None,
            gpu: None,
            accuracy: p.accuracy,
        };
        let mut summary_failed = None;
        if let Some(path) = p.summary.as_ref().filter(|_| !from_records) {
            match summary::read(path) {
                Ok(s) => {
                    row.figures = s.figures;
                    row.ttft_by_turn = s.ttft_by_turn;
                    row.metrics_from = Some("summary");
                    row.isl = row.isl.or(s.isl);
                    row.osl = row.osl.or(s.osl);
                    row.concurrency = row.concurrency.or(s.concurrency);
                    row.effective_concurrency = row.effective_concurrency.or(s.concurrency);
                    row.request_rate = row.request_rate.or(s.request_rate);
                    row.prefix_ratio = row.prefix_ratio.or(s.prefix_ratio);
                    row.token_source = s.token_source;
                    row.generator = s.generator;
                    if row.config.model.is_none() {
                        row.config.model = s.model;
                    }
                    if s.is_complete == Some(false) && row.state == "unknown" {
                        row.state = "incomplete".to_owned();
                        row.reason = Some("the summary says the run did not complete".to_owned());
                    }
                }
                Err(message) => {
                    warnings.push(Warning { path: path.clone(), message: message.clone() });
                    summary_failed = Some(format!("{}: {message}", path.display()));
                }
            }
        }
        if row.metrics_from.is_none() {
            if let Some(path) = &p.records {
                need_records.push((
                    rows.len(),
                    records::Input { path: path.clone(), phase_manifest: p.phase_manifest },
                ));
            } else if let Some(why) = summary_failed {
                mark_unreadable(&mut row, why);
            }
        }
        // Read beside the figures (the flags need both, in `derive`); unreadable, the point keeps
        // its client figures and the file is listed among the warnings.
        if let Some(path) = &p.server_metrics {
            match sweep_folder::file::read::<sweep_folder::server_metrics::Summary>(path) {
                Ok(summary) => server_summaries.push((rows.len(), summary)),
                Err(e) => warnings.push(Warning { path: path.clone(), message: e.detail() }),
            }
        }
        let gpu_dir = sweep_folder::PointDir::new(&row.dir);
        match gpu_dir.read_gpu_metrics() {
            Ok(summary) => row.gpu = summary,
            Err(e) => warnings.push(Warning { path: gpu_dir.gpu_metrics_path(), message: e.detail() }),
        }
        rows.push(row);
    }
    let inputs: Vec<records::Input> = need_records.iter().map(|(_, i)| i.clone()).collect();
    for ((index, input), output) in need_records.iter().zip(records::compute(&inputs)) {
        let row = &mut rows[*index];
        if let Some(message) = &output.warning {
            warnings.push(Warning { path: input.path.clone(), message: message.clone() });
        }
        match output.figures {
            Some(figures) => {
                row.figures = figures;
                row.ttft_by_turn = output.ttft_by_turn;
                row.metrics_from = Some("records");
            }
            None => mark_unreadable(
                row,
                format!("{}: {}", input.path.display(), output.warning.as_deref().unwrap_or("unreadable")),
            ),
        }
    }
    for row in &mut rows {
        if row.state == "unknown" && row.metrics_from.is_some() {
            // aiperf leaves no marker: a run with results and no failure is done.
            let completed = row.figures.get("request_count").unwrap_or(0.0);
            if completed > 0.0 {
                row.state = "done".to_owned();
                row.reason = None;
            } else {
                row.state = "failed".to_owned();
                row.reason = Some("no request completed".to_owned());
            }
        }
    }
    for (index, summary) in server_summaries {
        let row = &mut rows[index];
        row.server = Some(crate::server::figures(summary, &row.figures));
    }
    // Every step of a search carries what the search found.
    let found: std::collections::HashMap<String, f64> = rows
        .iter()
        .filter(|r| r.search_stopped_because.is_some())
        .filter_map(|r| Some((r.search.clone()?, r.max_load_meeting_slo?)))
        .collect();
    for row in &mut rows {
        if let Some(max) = row.search.as_ref().and_then(|s| found.get(s)) {
            row.max_load_meeting_slo = Some(*max);
        }
    }
    rows
}

/// A point whose files exist but say nothing usable. A failure marker keeps its own state (its
/// reason matters more); a point that claimed success becomes `unreadable`.
fn mark_unreadable(row: &mut Row, why: String) {
    if matches!(row.state.as_str(), "done" | "unknown") {
        row.state = "unreadable".to_owned();
        row.reason = Some(why);
    } else {
        let reason = row.reason.take().map_or(why.clone(), |r| format!("{r}; {why}"));
        row.reason = Some(reason);
    }
}

/// Fills the derived columns.
pub fn derive(rows: &mut [Row]) {
    for row in rows {
        let output = row.figures.get("output_token_throughput");
        let per = |gpus: Option<i64>| output.zip(gpus.filter(|g| *g > 0)).map(|(o, g)| o / g as f64);
        row.tps_per_gpu_working = per(row.config.gpus_working);
        row.tps_per_gpu_allocated = per(row.config.gpus_allocated);
        let itl_avg = row.figures.get("itl_avg_ms").filter(|v| *v > 0.0);
        row.tps_per_user =
            row.figures.get("output_token_throughput_per_user_avg").or(itl_avg.map(|v| 1000.0 / v));
        row.tps_per_user_srt = row.figures.get("itl_p50_ms").filter(|v| *v > 0.0).map(|v| 1000.0 / v);
    }
}

/// Holds every measured point to what a comparison needs (`docs/aggregate.md`, "Valid
/// points"): failed requests at most `max_error_rate` of all, output tokens produced, the
/// servers' output token count agreeing with the client's, and its deployment's accuracy
/// scores at least `accuracy.min_score`. A point that fails is kept, with the reason, and left
/// out of the frontiers.
pub fn validate(rows: &mut [Row], max_error_rate: f64) {
    for row in rows.iter_mut().filter(|r| r.measured()) {
        let done = row.figures.get("request_count").unwrap_or(0.0);
        let failed = row.figures.get("error_request_count").unwrap_or(0.0);
        let share = failed / (done + failed);
        let mut why = Vec::new();
        if share > max_error_rate {
            why.push(format!(
                "{failed:.0} of {:.0} requests failed ({:.1} %, more than --max-error-rate {})",
                done + failed,
                share * 100.0,
                max_error_rate
            ));
        }
        if row.figures.get("output_token_throughput").is_none_or(|t| t <= 0.0) {
            why.push("no output tokens".to_owned());
        }
        let mismatch = row.server.as_ref().and_then(|s| {
            s.flags.iter().find(|f| matches!(f, crate::server::Flag::TokenCountMismatch { .. }))
        });
        if let Some(flag) = mismatch {
            why.push(flag.describe());
        }
        if let Some(inaccurate) = row.accuracy.as_ref().and_then(|a| a.inaccurate()) {
            why.push(inaccurate);
        }
        row.invalid = (!why.is_empty()).then(|| why.join("; "));
    }
}

/// Groups the valid measured repetitions of each point (the same sweep folder, job and load,
/// another `repeat`); the first gets the group's [`crate::repeats::RepeatStats`], the others point to it. Rows
/// of other sweep folders, or of aiperf's runs, are never taken for repetitions of each other.
pub fn summarise_repeats(rows: &mut [Row], max_cv: f64) {
    type Key = (
        std::path::PathBuf,
        String,
        Option<i64>,
        Option<i64>,
        Option<i64>,
        Option<u64>,
        Option<u64>,
        Option<String>,
    );
    let mut groups: std::collections::BTreeMap<Key, Vec<usize>> = std::collections::BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        if !row.measured() || row.invalid.is_some() || row.source != crate::discover::Source::Sweep {
            continue;
        }
        // `<sweep>/jobs/<job>/points/<id>`: a resumed repetition may sit in another job folder.
        let Some(sweep) = row.dir.ancestors().nth(4) else { continue };
        // A configuration's deployments (`deployment_repeats`) are one point's repetitions too.
        let configuration = row.config.configuration.clone().or_else(|| row.config.job_id.clone());
        let key = (
            sweep.to_owned(),
            configuration.unwrap_or_else(|| row.config.job.clone()),
            row.isl,
            row.osl,
            row.effective_concurrency.or(row.concurrency),
            row.request_rate.map(f64::to_bits),
            row.prefix_ratio.map(f64::to_bits),
            row.search.clone(),
        );
        groups.entry(key).or_default().push(i);
    }
    let repeated = |members: &Vec<usize>| {
        members.len() > 1 && members.iter().any(|&i| rows[i].repeat > 0 || rows[i].config.deployment > 0)
    };
    let groups: Vec<Vec<usize>> = groups.into_values().filter(repeated).collect();
    for mut members in groups {
        members.sort_by_key(|&i| (rows[i].config.deployment, rows[i].repeat));
        let first = members[0];
        let mut spread = std::collections::BTreeMap::new();
        for name in crate::repeats::MEASURED {
            let values: Vec<f64> = members.iter().filter_map(|&i| rows[i].figure(name)).collect();
            if values.len() == members.len() {
                if let Some(s) = crate::repeats::Spread::of(&values) {
                    spread.insert(name, s);
                }
            }
        }
        let unstable = ["output_token_throughput", "tps_per_user"]
            .iter()
            .any(|name| spread.get(name).is_some_and(|s| s.cv > max_cv));
        let deployments: std::collections::BTreeSet<u32> =
            members.iter().map(|&i| rows[i].config.deployment).collect();
        rows[first].repeats = Some(crate::repeats::RepeatStats {
            n: members.len(),
            deployments: deployments.len(),
            spread,
            unstable,
        });
        for &i in &members[1..] {
            rows[i].repeat_of = Some(first);
        }
    }
}

/// The table as a polars frame, in the documented column order.
pub fn frame(rows: &[Row]) -> Result<DataFrame, Error> {
    let text = |f: &dyn Fn(&Row) -> Option<String>| rows.iter().map(f).collect::<Vec<Option<String>>>();
    let int = |f: &dyn Fn(&Row) -> Option<i64>| rows.iter().map(f).collect::<Vec<Option<i64>>>();
    let float = |f: &dyn Fn(&Row) -> Option<f64>| rows.iter().map(f).collect::<Vec<Option<f64>>>();
    let decode = |r: &Row| r.config.decode_role().cloned().unwrap_or_default();
    let ctx = |r: &Row| r.config.role("ctx").cloned().unwrap_or_default();
    let mut columns = vec![
        Column::new("source".into(), text(&|r| Some(r.source.as_str().to_owned()))),
        Column::new("sweep".into(), text(&|r| r.config.sweep.clone())),
        Column::new("job".into(), text(&|r| Some(r.config.job.clone()))),
        Column::new("job_id".into(), text(&|r| r.config.job_id.clone())),
        Column::new("point".into(), text(&|r| Some(r.point.clone()))),
        Column::new("state".into(), text(&|r| Some(r.state.clone()))),
        Column::new("reason".into(), text(&|r| r.reason.clone())),
        Column::new("attempts".into(), int(&|r| Some(i64::from(r.attempts)))),
        Column::new("mode".into(), text(&|r| r.config.mode.clone())),
        Column::new("roles".into(), text(&|r| Some(r.roles_label()).filter(|s| !s.is_empty()))),
        Column::new("ctx_servers".into(), int(&|r| ctx(r).servers)),
        Column::new("ctx_tp".into(), int(&|r| ctx(r).tp)),
        Column::new("ctx_batch".into(), int(&|r| ctx(r).batch)),
        Column::new("servers".into(), int(&|r| decode(r).servers)),
        Column::new("tp".into(), int(&|r| decode(r).tp)),
        Column::new("parallel".into(), text(&|r| decode(r).parallel)),
        Column::new("batch".into(), int(&|r| decode(r).batch)),
        Column::new("mtp".into(), int(&|r| decode(r).mtp)),
        Column::new("eplb".into(), int(&|r| decode(r).eplb)),
        Column::new("isl".into(), int(&|r| r.isl)),
        Column::new("osl".into(), int(&|r| r.osl)),
        Column::new("concurrency".into(), int(&|r| r.concurrency)),
        Column::new("effective_concurrency".into(), int(&|r| r.effective_concurrency)),
        Column::new("request_rate".into(), float(&|r| r.request_rate)),
        Column::new("prefix_ratio".into(), float(&|r| r.prefix_ratio)),
        Column::new("search".into(), text(&|r| r.search.clone())),
        Column::new("max_load_meeting_slo".into(), float(&|r| r.max_load_meeting_slo)),
        Column::new("search_stopped_because".into(), text(&|r| r.search_stopped_because.clone())),
        Column::new("gpus_allocated".into(), int(&|r| r.config.gpus_allocated)),
        Column::new("gpus_working".into(), int(&|r| r.config.gpus_working)),
        Column::new("model".into(), text(&|r| r.config.model.clone())),
        Column::new("engine".into(), text(&|r| r.config.engine.clone())),
        Column::new("engine_version".into(), text(&|r| r.config.engine_version.clone())),
    ];
    columns.extend(knob_columns(rows));
    columns.extend(repeat_columns(rows));
    for (i, metric) in METRICS.iter().enumerate() {
        columns.push(Column::new(metric.column.into(), float(&|r| r.figures.0[i])));
    }
    columns.extend([
        Column::new("tps_per_gpu_working".into(), float(&|r| r.tps_per_gpu_working)),
        Column::new("tps_per_gpu_allocated".into(), float(&|r| r.tps_per_gpu_allocated)),
        Column::new("tps_per_user".into(), float(&|r| r.tps_per_user)),
        Column::new("tps_per_user_srt".into(), float(&|r| r.tps_per_user_srt)),
        Column::new("on_frontier".into(), rows.iter().map(|r| r.on_frontier).collect::<Vec<bool>>()),
        Column::new("invalid_reason".into(), text(&|r| r.invalid.clone())),
        Column::new("repeat".into(), rows.iter().map(|r| r.repeat).collect::<Vec<u32>>()),
        Column::new("gpu_energy_j".into(), float(&|r| r.gpu.as_ref()?.energy_j)),
        Column::new("gpu_power_w".into(), float(&|r| r.gpu.as_ref()?.power_w)),
        Column::new(
            "gpu_util_mean_pct".into(),
            float(&|r| {
                let v: Vec<f64> = r.gpu.as_ref()?.gpus.iter().filter_map(|g| g.util_mean_pct).collect();
                (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
            }),
        ),
        Column::new(
            "gpu_memory_max_mib".into(),
            float(&|r| r.gpu.as_ref()?.gpus.iter().filter_map(|g| g.memory_max_mib).reduce(f64::max)),
        ),
        Column::new("output_tokens_per_joule".into(), float(&Row::tokens_per_joule)),
        Column::new("accuracy_state".into(), text(&|r| Some(r.accuracy.as_ref()?.state.as_str().to_owned()))),
        Column::new("accuracy_score".into(), float(&|r| Some(r.accuracy.as_ref()?.lowest()?.score))),
        Column::new(
            "accuracy_samples".into(),
            int(&|r| r.accuracy.as_ref()?.lowest()?.samples.and_then(|n| i64::try_from(n).ok())),
        ),
    ]);
    let server = |f: &dyn Fn(&ServerFigures) -> Option<f64>| {
        rows.iter().map(|r| r.server.as_ref().and_then(f)).collect::<Vec<Option<f64>>>()
    };
    columns.extend([
        Column::new(
            "server_requests_running_mean".into(),
            server(&|s| Some(s.measures.requests_running?.mean)),
        ),
        Column::new(
            "server_requests_running_max".into(),
            server(&|s| Some(s.measures.requests_running?.max)),
        ),
        Column::new(
            "server_requests_waiting_mean".into(),
            server(&|s| Some(s.measures.requests_waiting?.mean)),
        ),
        Column::new(
            "server_requests_waiting_max".into(),
            server(&|s| Some(s.measures.requests_waiting?.max)),
        ),
        Column::new("server_waiting_share".into(), server(&|s| s.measures.waiting_share)),
        Column::new("server_kv_cache_usage_mean".into(), server(&|s| Some(s.measures.kv_cache_usage?.mean))),
        Column::new("server_kv_cache_usage_max".into(), server(&|s| Some(s.measures.kv_cache_usage?.max))),
        Column::new("server_preemptions".into(), server(&|s| s.measures.preemptions)),
        Column::new("server_prefix_cache_hit_rate".into(), server(&|s| s.measures.prefix_cache_hit_rate)),
        Column::new("server_ttft_p50_ms".into(), server(&|s| s.measures.time_to_first_token?.p50_ms)),
        Column::new("server_ttft_p99_ms".into(), server(&|s| s.measures.time_to_first_token?.p99_ms)),
        Column::new("server_itl_p50_ms".into(), server(&|s| s.measures.inter_token_latency?.p50_ms)),
        Column::new("server_itl_p99_ms".into(), server(&|s| s.measures.inter_token_latency?.p99_ms)),
        Column::new("server_output_tokens".into(), server(&|s| s.measures.output_tokens)),
        Column::new("server_spec_acceptance_rate".into(), server(&|s| s.measures.spec_acceptance_rate)),
        Column::new("server_spec_tokens_per_step".into(), server(&|s| s.measures.spec_tokens_per_step)),
        Column::new("client_output_tokens".into(), server(&|s| s.client_output_tokens)),
        Column::new("ttft_client_minus_server_p50_ms".into(), server(&|s| s.ttft_client_minus_server_p50_ms)),
        Column::new("ttft_client_minus_server_avg_ms".into(), server(&|s| s.ttft_client_minus_server_avg_ms)),
        Column::new("itl_client_minus_server_p50_ms".into(), server(&|s| s.itl_client_minus_server_p50_ms)),
        Column::new("server_flags".into(), text(&|r| r.server.as_ref().map(ServerFigures::flag_names))),
        Column::new("metrics_from".into(), text(&|r| r.metrics_from.map(str::to_owned))),
        Column::new("token_source".into(), text(&|r| r.token_source.clone())),
        Column::new("generator".into(), text(&|r| r.generator.clone())),
        Column::new("path".into(), text(&|r| Some(r.dir.display().to_string()))),
    ]);
    Ok(DataFrame::new_infer_height(columns)?)
}

/// With repetitions (`workload.repeats`): on the row that speaks for a point's repetitions,
/// their count, whether they are `unstable`, and each measured figure's mean, standard
/// deviation, coefficient of variation and 95 % confidence half-width.
fn repeat_columns(rows: &[Row]) -> Vec<Column> {
    if rows.iter().all(|r| r.repeats.is_none()) {
        return Vec::new();
    }
    let stats = |f: &dyn Fn(&crate::repeats::RepeatStats) -> Option<f64>| {
        rows.iter().map(|r| r.repeats.as_ref().and_then(f)).collect::<Vec<Option<f64>>>()
    };
    let mut columns = vec![
        Column::new(
            "repeats".into(),
            rows.iter().map(|r| r.repeats.as_ref().map(|s| s.n as u32)).collect::<Vec<_>>(),
        ),
        Column::new(
            "deployments".into(),
            rows.iter().map(|r| r.repeats.as_ref().map(|s| s.deployments as u32)).collect::<Vec<_>>(),
        ),
        Column::new(
            "unstable".into(),
            rows.iter().map(|r| r.repeats.as_ref().map(|s| s.unstable)).collect::<Vec<_>>(),
        ),
    ];
    for name in crate::repeats::MEASURED {
        let part = |pick: fn(&crate::repeats::Spread) -> f64| stats(&|s| s.spread.get(name).map(pick));
        columns.push(Column::new(format!("{name}_mean").into(), part(|s| s.mean)));
        columns.push(Column::new(format!("{name}_std").into(), part(|s| s.std)));
        columns.push(Column::new(format!("{name}_cv").into(), part(|s| s.cv)));
        columns.push(Column::new(format!("{name}_ci95").into(), part(|s| s.ci95)));
    }
    columns
}

/// A column per knob any row has, named as the axis (`gen.engine_args.max_num_seqs`).
fn knob_columns(rows: &[Row]) -> Vec<Column> {
    let names: std::collections::BTreeSet<&String> =
        rows.iter().flat_map(|r| r.config.knobs.keys()).collect();
    names
        .into_iter()
        .map(|name| {
            let values: Vec<Option<String>> =
                rows.iter().map(|r| r.config.knobs.get(name).cloned()).collect();
            Column::new(name.as_str().into(), values)
        })
        .collect()
}

/// `ttft_by_turn.csv`: a line per turn index of every point of multi-turn sessions; `None` when
/// no point has sessions.
pub fn turn_frame(rows: &[Row]) -> Result<Option<DataFrame>, Error> {
    let turns: Vec<(&Row, &TurnTtft)> =
        rows.iter().flat_map(|r| r.ttft_by_turn.iter().map(move |t| (r, t))).collect();
    if turns.is_empty() {
        return Ok(None);
    }
    let text = |f: &dyn Fn(&Row) -> Option<String>| turns.iter().map(|(r, _)| f(r)).collect::<Vec<_>>();
    let int = |f: &dyn Fn(&Row) -> Option<i64>| turns.iter().map(|(r, _)| f(r)).collect::<Vec<_>>();
    let float = |f: &dyn Fn(&TurnTtft) -> Option<f64>| turns.iter().map(|(_, t)| f(t)).collect::<Vec<_>>();
    let columns = vec![
        Column::new("sweep".into(), text(&|r| r.config.sweep.clone())),
        Column::new("job".into(), text(&|r| Some(r.config.job.clone()))),
        Column::new("point".into(), text(&|r| Some(r.point.clone()))),
        Column::new("isl".into(), int(&|r| r.isl)),
        Column::new("osl".into(), int(&|r| r.osl)),
        Column::new("concurrency".into(), int(&|r| r.concurrency)),
        Column::new("request_rate".into(), turns.iter().map(|(r, _)| r.request_rate).collect::<Vec<_>>()),
        Column::new("turn_index".into(), turns.iter().map(|(_, t)| t.turn_index).collect::<Vec<u32>>()),
        Column::new("count".into(), turns.iter().map(|(_, t)| t.count).collect::<Vec<u64>>()),
        Column::new("ttft_avg_ms".into(), float(&|t| t.avg_ms)),
        Column::new("ttft_p50_ms".into(), float(&|t| t.p50_ms)),
        Column::new("ttft_p99_ms".into(), float(&|t| t.p99_ms)),
        Column::new("path".into(), text(&|r| Some(r.dir.display().to_string()))),
    ];
    Ok(Some(DataFrame::new_infer_height(columns)?))
}

pub fn to_parquet(frame: &mut DataFrame) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    ParquetWriter::new(&mut out).finish(frame)?;
    Ok(out)
}

pub fn to_csv(frame: &mut DataFrame) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    CsvWriter::new(&mut out).include_header(true).finish(frame)?;
    Ok(out)
}
