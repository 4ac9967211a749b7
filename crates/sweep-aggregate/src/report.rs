//! The report: one self-contained HTML file (charts inlined as SVG, sortable tables, no network
//! access needed to view it), rendered from `templates/report.html.j2` with minijinja, and a
//! Markdown summary for pasting into an issue or a chat.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::plot::Chart;
use crate::table::Row;
use crate::{Aggregate, GpuBasis};

fn num(v: Option<f64>) -> String {
    match v {
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
        None => "–".to_owned(),
    }
}

/// A threshold as the user wrote it: `50`, `62.5`.
fn floor(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        v.to_string()
    }
}

fn int(v: Option<i64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| v.to_string())
}

/// Points by state, in a fixed order: `30 done, 2 failed, 1 not_run`.
fn state_counts(rows: &[Row]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rows {
        *counts.entry(r.state.as_str()).or_default() += 1;
    }
    let mut parts: Vec<String> = Vec::new();
    if let Some(n) = counts.remove("done") {
        parts.push(format!("{n} done"));
    }
    parts.extend(counts.into_iter().map(|(s, n)| format!("{n} {s}")));
    parts.join(", ")
}

/// A table of rows: the header, then one line per row; each cell's sort key is its number.
#[derive(Serialize)]
struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Adds the column `header` after `after`, one cell per row, unless every cell is empty:
    /// the target request rate appears only in sweeps that have one.
    fn optional_column(mut self, after: &str, header: &'static str, cells: Vec<Option<f64>>) -> Self {
        if cells.iter().all(Option::is_none) {
            return self;
        }
        let at = self.header.iter().position(|h| *h == after).map_or(self.header.len(), |i| i + 1);
        self.header.insert(at, header);
        for (row, cell) in self.rows.iter_mut().zip(cells) {
            row.insert(at, cell.map(|v| v.to_string()).unwrap_or_default());
        }
        self
    }

    fn markdown(&self) -> String {
        let mut s = format!("| {} |\n|{}\n", self.header.join(" | "), " --- |".repeat(self.header.len()));
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|").replace('\n', " ")).collect();
            let _ = writeln!(s, "| {} |", cells.join(" | "));
        }
        s
    }
}

/// Each configuration's TTFT-against-ISL fit at concurrency 1.
fn ttft_fit_table(agg: &Aggregate) -> Table {
    Table {
        header: vec!["configuration", "ISLs", "a (ms/token²)", "b (ms/token)", "c (ms)", "R²"],
        rows: agg
            .profile
            .ttft
            .iter()
            .map(|t| {
                let isls = t.points.iter().map(|p| format!("{:.0}", p.0)).collect::<Vec<_>>().join(", ");
                match t.fit {
                    Some(q) => vec![
                        t.config.clone(),
                        isls,
                        format!("{:.4e}", q.a),
                        format!("{:.4e}", q.b),
                        format!("{:.3}", q.c),
                        format!("{:.4}", q.r2),
                    ],
                    None => vec![
                        t.config.clone(),
                        isls,
                        "needs 3 ISLs".into(),
                        "–".into(),
                        "–".into(),
                        "–".into(),
                    ],
                }
            })
            .collect(),
    }
}

fn itl_table(agg: &Aggregate) -> Table {
    Table {
        header: vec!["configuration", "ISL", "OSL", "concurrency", "context (ISL + OSL/2)", "ITL p50 (ms)"],
        rows: agg
            .profile
            .itl
            .iter()
            .map(|i| {
                vec![
                    i.config.clone(),
                    format!("{:.0}", i.isl),
                    format!("{:.0}", i.osl),
                    format!("{}", i.concurrency),
                    format!("{:.0}", i.context),
                    num(Some(i.itl_p50_ms)),
                ]
            })
            .collect(),
    }
}

/// The points meeting the SLOs, cheapest first, with the figures the SLOs name.
fn cost_table(agg: &Aggregate, cost: &crate::profile::Cost) -> Table {
    let slos = &agg.profile.settings.slo;
    let mut header = vec!["rank", "configuration", "ISL/OSL", "load", "tokens/s/GPU", "tokens/s/user"];
    header.extend(slos.iter().map(|s| s.column));
    header.extend(["USD per M output tokens", "replicas", "GPUs needed"]);
    let rows = cost
        .meeting
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let r = &agg.rows[c.row];
            let mut cells = vec![
                (k + 1).to_string(),
                crate::profile::config_label(r),
                format!("{}/{}", int(r.isl), int(r.osl)),
                crate::plot::load_label(r),
                num(Some(c.tps_per_gpu)),
                num(r.tps_per_user),
            ];
            cells.extend(slos.iter().map(|s| num(r.figures.get(s.column))));
            cells.push(c.usd_per_million.map_or_else(|| "–".to_owned(), |v| format!("{v:.4}")));
            cells.push(c.replicas.map_or_else(|| "–".to_owned(), |v| v.to_string()));
            cells.push(c.gpus_needed.map_or_else(|| "–".to_owned(), |v| v.to_string()));
            cells
        })
        .collect();
    Table { header, rows }
}

fn balance_table(agg: &Aggregate) -> Table {
    Table {
        header: vec![
            "#",
            "configuration",
            "ISL/OSL",
            "load",
            "requests/s",
            "prefill tokens/s needed",
            "CTX capacity (tokens/s per GPU)",
            "CTX:GEN run",
            "CTX:GEN balanced",
        ],
        rows: agg
            .profile
            .balance
            .iter()
            .enumerate()
            .map(|(k, b)| {
                let r = &agg.rows[b.row];
                vec![
                    (k + 1).to_string(),
                    crate::profile::config_label(r),
                    format!("{}/{}", int(r.isl), int(r.osl)),
                    crate::plot::load_label(r),
                    num(r.figures.get("request_throughput")),
                    num(Some(b.prefill_needed)),
                    num(Some(b.ctx_capacity_per_gpu)),
                    format!("{}:{}", b.ctx_servers, b.gen_servers),
                    format!("{:.2}:{}", b.balanced_ctx_servers, b.gen_servers),
                ]
            })
            .collect(),
    }
}

/// The settings line above the cost table.
fn cost_settings(agg: &Aggregate) -> String {
    let p = &agg.profile.settings;
    let slos = if p.slo.is_empty() {
        "no SLO".to_owned()
    } else {
        p.slo
            .iter()
            .map(|s| format!("{} ≤ {} ms", s.column, floor(s.ceiling_ms)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut text = format!("At {slos}");
    if let Some(usd) = p.gpu_hour_cost {
        let _ = write!(text, ", {} USD per GPU-hour", floor(usd));
    }
    if let Some(target) = p.target_tokens_per_s {
        let _ = write!(text, ", serving {} output tokens/s", floor(target));
    }
    text.push_str(" (failed requests disqualify a point)");
    text
}

fn profile_has_any(agg: &Aggregate) -> bool {
    let p = &agg.profile;
    !p.ttft.is_empty() || !p.itl.is_empty() || p.cost.is_some() || !p.balance.is_empty()
}

fn profile_markdown(agg: &Aggregate) -> String {
    let mut s = String::new();
    let p = &agg.profile;
    if let Some(cost) = &p.cost {
        let _ = writeln!(
            s,
            "\n## Cost at the SLOs\n\n{}: {} point(s) meet them, {} do not.\n",
            cost_settings(agg),
            cost.meeting.len(),
            cost.missed
        );
        s.push_str(&cost_table(agg, cost).markdown());
    }
    if !p.ttft.is_empty() {
        s.push_str("\n## TTFT against ISL at concurrency 1 (TTFT = a·ISL² + b·ISL + c)\n\n");
        s.push_str(&ttft_fit_table(agg).markdown());
    }
    if !p.balance.is_empty() {
        s.push_str("\n## Prefill:decode balance\n\n");
        s.push_str(&balance_table(agg).markdown());
    }
    s
}

fn frontier_table(agg: &Aggregate) -> Table {
    let basis = agg.analysis.basis;
    let on_frontiers =
        || agg.analysis.frontiers.iter().flat_map(|f| f.rows.iter().map(move |&i| (&f.group, &agg.rows[i])));
    let rates = on_frontiers().map(|(_, r)| r.request_rate).collect();
    // A point measured several times stands at its means, with the interval of its tokens/s/GPU.
    let intervals = on_frontiers()
        .map(|(_, r)| {
            let spread = r.repeats.as_ref().and_then(|s| s.spread.get(basis.column()));
            spread.map(|s| (s.ci95 * 100.0).round() / 100.0)
        })
        .collect();
    let repeats = on_frontiers().map(|(_, r)| r.repeats.as_ref().map(|s| s.n as f64)).collect();
    let rows = on_frontiers()
        .map(|(group, r)| {
            let xy = crate::pareto::coordinates(r, basis);
            vec![
                group.to_string(),
                r.config.job.clone(),
                r.roles_label(),
                int(r.effective_concurrency.or(r.concurrency)),
                num(xy.map(|p| p.0)),
                num(xy.map(|p| p.1)),
                num(r.figures.get("output_token_throughput")),
                num(r.figures.get("ttft_p50_ms")),
                num(r.figures.get("itl_p50_ms")),
                format!("{}/{}", int(r.config.gpus_working), int(r.config.gpus_allocated)),
            ]
        })
        .collect();
    Table {
        header: vec![
            "group",
            "configuration",
            "roles",
            "concurrency",
            "tok/s/user",
            "tok/s/GPU",
            "tok/s",
            "TTFT p50 ms",
            "ITL p50 ms",
            "GPUs working/allocated",
        ],
        rows,
    }
    .optional_column("concurrency", "req/s", rates)
    .optional_column("tok/s/GPU", "± 95 % CI", intervals)
    .optional_column("concurrency", "repeats", repeats)
}

/// A row per search: what it found, why it stopped and how many steps it took.
fn search_table(agg: &Aggregate) -> Table {
    let rows = crate::plot::searches(&agg.rows)
        .into_iter()
        .enumerate()
        .map(|(k, r)| {
            let steps = agg
                .rows
                .iter()
                .filter(|s| s.search == r.search && s.search_stopped_because.is_none())
                .count();
            vec![
                format!("{}", k + 1),
                r.config.job.clone(),
                format!("{}/{}", int(r.isl), int(r.osl)),
                num(r.max_load_meeting_slo),
                r.state.clone(),
                r.search_stopped_because.clone().unwrap_or_default(),
                steps.to_string(),
                r.dir.display().to_string(),
            ]
        })
        .collect();
    Table {
        header: vec![
            "#",
            "configuration",
            "ISL/OSL",
            "max load meeting the SLO",
            "state",
            "stopped because",
            "steps",
            "folder",
        ],
        rows,
    }
}

/// TTFT per turn of every session point, a line per (point, turn).
fn turn_table(agg: &Aggregate) -> Table {
    let rows = agg
        .rows
        .iter()
        .filter(|r| r.measured())
        .flat_map(|r| {
            r.ttft_by_turn.iter().map(move |t| {
                vec![
                    r.config.job.clone(),
                    format!("{}/{}", int(r.isl), int(r.osl)),
                    crate::plot::load_label(r),
                    t.turn_index.to_string(),
                    t.count.to_string(),
                    num(t.avg_ms),
                    num(t.p50_ms),
                    num(t.p99_ms),
                ]
            })
        })
        .collect();
    Table {
        header: vec![
            "configuration",
            "ISL/OSL",
            "load",
            "turn",
            "requests",
            "TTFT avg ms",
            "TTFT p50 ms",
            "TTFT p99 ms",
        ],
        rows,
    }
}

fn best_table(agg: &Aggregate) -> Table {
    let basis = agg.analysis.basis;
    let rates = agg.analysis.best.iter().map(|b| b.row.and_then(|i| agg.rows[i].request_rate)).collect();
    let rows = agg
        .analysis
        .best
        .iter()
        .map(|b| match b.row.map(|i| &agg.rows[i]) {
            Some(r) => vec![
                floor(b.min_tps_user),
                b.group.to_string(),
                r.config.job.clone(),
                int(r.effective_concurrency.or(r.concurrency)),
                num(r.tps_per_user),
                num(r.tps_per_gpu(basis)),
            ],
            None => vec![
                floor(b.min_tps_user),
                b.group.to_string(),
                "no point reaches it".to_owned(),
                String::new(),
                String::new(),
                String::new(),
            ],
        })
        .collect();
    Table {
        header: vec![
            "tok/s/user at least",
            "group",
            "best configuration",
            "concurrency",
            "tok/s/user",
            "tok/s/GPU",
        ],
        rows,
    }
    .optional_column("concurrency", "req/s", rates)
}

fn ratio_table(agg: &Aggregate) -> Table {
    let rows = agg
        .analysis
        .ratios
        .iter()
        .flat_map(|r| {
            let label = format!("{}{}", r.group.workload(), if r.group.mtp { ", MTP" } else { "" });
            if r.samples.is_empty() {
                return vec![vec![
                    label,
                    "ranges do not overlap".to_owned(),
                    String::new(),
                    String::new(),
                    String::new(),
                ]];
            }
            r.samples
                .iter()
                .map(|&(x, d, a)| {
                    vec![label.clone(), num(Some(x)), num(Some(d)), num(Some(a)), format!("{:.2}×", d / a)]
                })
                .collect()
        })
        .collect();
    Table {
        header: vec!["workload", "tok/s/user", "disagg tok/s/GPU", "agg tok/s/GPU", "disagg / agg"],
        rows,
    }
}

/// A row per point with scrapes: what the servers saw, beside the client.
fn server_table(agg: &Aggregate) -> Table {
    let pct = |v: Option<f64>| num(v.map(|v| v * 100.0));
    let rows = agg
        .rows
        .iter()
        .filter_map(|r| Some((r, r.server.as_ref()?)))
        .map(|(r, s)| {
            let m = &s.measures;
            vec![
                r.config.job.clone(),
                crate::plot::load_label(r),
                r.point.clone(),
                num(m.requests_running.map(|l| l.mean)),
                num(m.requests_running.map(|l| l.max)),
                num(m.requests_waiting.map(|l| l.mean)),
                num(m.requests_waiting.map(|l| l.max)),
                pct(m.kv_cache_usage.map(|l| l.mean)),
                pct(m.kv_cache_usage.map(|l| l.max)),
                num(m.preemptions),
                pct(m.prefix_cache_hit_rate),
                num(m.time_to_first_token.and_then(|t| t.p50_ms)),
                num(s.ttft_client_minus_server_p50_ms),
                num(m.inter_token_latency.and_then(|t| t.p50_ms)),
                num(s.itl_client_minus_server_p50_ms),
                num(m.output_tokens),
                num(s.client_output_tokens),
                pct(m.spec_acceptance_rate),
                num(m.spec_tokens_per_step),
                s.flag_names(),
            ]
        })
        .collect();
    Table {
        header: vec![
            "configuration",
            "load",
            "point",
            "running mean",
            "running max",
            "waiting mean",
            "waiting max",
            "KV % mean",
            "KV % max",
            "preemptions",
            "prefix hit %",
            "server TTFT p50",
            "client − server TTFT p50",
            "server ITL p50",
            "client − server ITL p50",
            "server output tokens",
            "client output tokens",
            "draft accepted %",
            "tokens per step",
            "flags",
        ],
        rows,
    }
}

/// Every flag of every point, with what it means.
fn flagged_list(agg: &Aggregate) -> Vec<(&Row, String)> {
    agg.rows
        .iter()
        .filter_map(|r| Some((r, r.server.as_ref()?)))
        .flat_map(|(r, s)| s.flags.iter().map(move |f| (r, f.describe())))
        .collect()
}

/// Measured points that are not valid to compare, with why (`table::validate`).
fn invalid_table(agg: &Aggregate) -> Table {
    let rows = agg
        .rows
        .iter()
        .filter_map(|r| {
            let why = r.invalid.as_ref()?;
            Some(vec![r.config.job.clone(), crate::plot::load_label(r), r.point.clone(), why.clone()])
        })
        .collect();
    Table { header: vec!["configuration", "load", "point", "why it is left out"], rows }
}

/// Each job folder's accuracy step: its scores, against `accuracy.min_score`.
fn accuracy_table(agg: &Aggregate) -> Table {
    let mut rows = Vec::new();
    for sweep in &agg.sweeps {
        for (job, result) in &sweep.accuracy {
            let verdict = match (result.state, result.inaccurate()) {
                (_, Some(_)) => "inaccurate".to_owned(),
                (sweep_folder::accuracy::AccuracyState::Done, None) => "ok".to_owned(),
                (state, None) => state.as_str().to_owned(),
            };
            let scores: Vec<String> = result.scores.iter().map(|s| s.describe()).collect();
            rows.push(vec![
                job.clone(),
                verdict,
                scores.join(", "),
                result.min_score.map(|m| m.to_string()).unwrap_or_default(),
                // A finished step's reason repeats its scores; a failed one's says why.
                if result.state == sweep_folder::accuracy::AccuracyState::Done {
                    String::new()
                } else {
                    result.reason.clone()
                },
            ]);
        }
    }
    Table { header: vec!["job", "verdict", "scores", "min_score", "why the step did not finish"], rows }
}

fn problem_table(agg: &Aggregate) -> Table {
    let rows = agg
        .rows
        .iter()
        .filter(|r| r.state != "done")
        .map(|r| {
            vec![
                r.state.clone(),
                r.config.job.clone(),
                r.point.clone(),
                int(r.concurrency),
                r.reason.clone().unwrap_or_default(),
                r.dir.display().to_string(),
            ]
        })
        .collect();
    let rates = agg.rows.iter().filter(|r| r.state != "done").map(|r| r.request_rate).collect();
    Table { header: vec!["state", "configuration", "point", "concurrency", "reason", "folder"], rows }
        .optional_column("concurrency", "req/s", rates)
}

fn all_table(agg: &Aggregate) -> Table {
    let basis = agg.analysis.basis;
    let rows = agg
        .rows
        .iter()
        .map(|r| {
            vec![
                r.config.job.clone(),
                r.config.mode.clone().unwrap_or_default(),
                int(r.isl),
                int(r.osl),
                int(r.concurrency),
                int(r.effective_concurrency),
                r.state.clone(),
                num(r.tps_per_user),
                num(r.tps_per_user_srt),
                num(r.tps_per_gpu(basis)),
                num(r.figures.get("ttft_p50_ms")),
                num(r.figures.get("ttft_p99_ms")),
                num(r.figures.get("itl_p50_ms")),
                num(r.figures.get("itl_p99_ms")),
                num(r.figures.get("request_count")),
                num(r.figures.get("error_request_count")),
                if r.on_frontier { "yes".to_owned() } else { String::new() },
            ]
        })
        .collect();
    Table {
        header: vec![
            "configuration",
            "mode",
            "ISL",
            "OSL",
            "concurrency",
            "effective",
            "state",
            "tok/s/user",
            "tok/s/user (1000/median ITL)",
            "tok/s/GPU",
            "TTFT p50",
            "TTFT p99",
            "ITL p50",
            "ITL p99",
            "requests",
            "errors",
            "frontier",
        ],
        rows,
    }
    .optional_column("effective", "req/s", agg.rows.iter().map(|r| r.request_rate).collect())
    .optional_column("OSL", "prefix ratio", agg.rows.iter().map(|r| r.prefix_ratio).collect())
}

fn basis_text(basis: GpuBasis) -> &'static str {
    match basis {
        GpuBasis::Working => "GPUs the servers use (working GPUs)",
        GpuBasis::Allocated => "GPUs the jobs hold (allocated GPUs)",
    }
}

fn title(agg: &Aggregate) -> String {
    let names: Vec<&str> = agg.sweeps.iter().map(|s| s.name.as_str()).collect();
    if names.is_empty() {
        "Sweep report".to_owned()
    } else {
        format!("Sweep report — {}", names.join(", "))
    }
}

/// The Markdown summary.
/// What a sweep's provenance files say, as (fact, value) rows: the build that rendered it, the
/// spec's and plan's digests, where and by whom, SLURM and the image; per job, the engine's
/// version and where it was read, its Python packages and the GPUs.
fn provenance_facts(sweep: &crate::discover::SweepInfo) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match &sweep.provenance {
        None => out.push(("provenance".to_owned(), "not recorded (a folder of sweep 0.1)".to_owned())),
        Some(p) => {
            let build = |b: &sweep_folder::provenance::Build| {
                format!(
                    "sweep {}{}{}",
                    b.version,
                    b.commit
                        .as_ref()
                        .map(|c| format!(", commit {}", &c[..c.len().min(12)]))
                        .unwrap_or_default(),
                    b.rustc.as_ref().map(|r| format!(", {r}")).unwrap_or_default()
                )
            };
            out.push(("rendered by".to_owned(), build(&p.sweep)));
            out.push((
                "rendered".to_owned(),
                format!("by {} on {} at {}", p.user, p.host, unix_time(p.created_at)),
            ));
            out.push(("spec sha256".to_owned(), p.spec_sha256.clone()));
            out.push(("plan sha256".to_owned(), p.plan_sha256.clone()));
            if let Some(sbatch) = &p.sbatch {
                out.push(("sbatch".to_owned(), sbatch.clone()));
            }
            if let Some(image) = &p.container_image {
                let digest = p.container_digest.as_deref().unwrap_or("no digest recorded");
                out.push(("container image".to_owned(), format!("{image} ({digest})")));
            }
        }
    }
    for (job, p) in &sweep.job_provenance {
        let version = match (&p.engine_version, &p.engine_version_source) {
            (Some(v), Some(source)) => format!("{} {v} (from {source})", p.engine),
            (Some(v), None) => format!("{} {v}", p.engine),
            _ => format!("{} (version not reported)", p.engine),
        };
        out.push((format!("job {job}: engine"), version));
        for env in &p.python {
            out.push((
                format!("job {job}: Python of {}", env.program),
                format!("{} ({} packages)", env.python, env.packages.len()),
            ));
        }
        if !p.gpus.is_empty() {
            let gpus: Vec<String> = p
                .gpus
                .iter()
                .map(|g| format!("{} {} (driver {})", g.name, g.memory_total, g.driver_version))
                .collect();
            out.push((format!("job {job}: GPUs on {}", p.node), gpus.join("; ")));
        }
    }
    out
}

/// A Unix time as `2026-12-02 14:05:03 UTC`.
fn unix_time(seconds: f64) -> String {
    let (year, month, day, hour, minute, second) = sweep_folder::file::civil_utc(seconds.max(0.0) as i64);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} UTC")
}

pub fn markdown(agg: &Aggregate) -> String {
    let mut s = format!("# {}\n\n", title(agg));
    let _ = writeln!(s, "{} points: {}.", agg.rows.len(), state_counts(&agg.rows));
    let _ = writeln!(
        s,
        "Tokens/s per GPU over {}; tokens/s per user = mean over requests of 1000/ITL (aiperf).\n",
        basis_text(agg.analysis.basis)
    );
    if !agg.analysis.best.is_empty() {
        s.push_str("## Best configuration at each tokens/s/user floor\n\n");
        s.push_str(&best_table(agg).markdown());
        s.push('\n');
    }
    if !agg.analysis.ratios.is_empty() {
        s.push_str("## Disaggregated against aggregated frontier\n\n");
        s.push_str(&ratio_table(agg).markdown());
        s.push('\n');
    }
    s.push_str("## Pareto frontier\n\n");
    s.push_str(&frontier_table(agg).markdown());
    if !agg.analysis.knobs.is_empty() {
        s.push_str("\n## By knob: the best configuration of each value at each tokens/s/user floor\n\n");
        s.push_str(&knob_table(agg).markdown());
    }
    let flagged = flagged_list(agg);
    if !flagged.is_empty() {
        let _ = writeln!(s, "\n## What the servers saw: points to look at ({})\n", flagged.len());
        for (row, what) in &flagged {
            let _ = writeln!(
                s,
                "- {}, {} (point {}): {what}",
                row.config.job,
                crate::plot::load_label(row),
                row.point
            );
        }
    }
    s.push_str(&profile_markdown(agg));
    let accuracy = accuracy_table(agg);
    if !accuracy.rows.is_empty() {
        let _ = writeln!(s, "\n## Accuracy of each deployment ({})\n", accuracy.rows.len());
        s.push_str(&accuracy.markdown());
    }
    let invalid = invalid_table(agg);
    if !invalid.rows.is_empty() {
        let _ = writeln!(s, "\n## Points left out of the frontiers ({})\n", invalid.rows.len());
        s.push_str(&invalid.markdown());
    }
    let problems = problem_table(agg);
    if !problems.rows.is_empty() {
        let _ = writeln!(s, "\n## Points without a result ({})\n", problems.rows.len());
        s.push_str(&problems.markdown());
    }
    if !agg.warnings.is_empty() {
        let _ = writeln!(s, "\n## Warnings ({})\n", agg.warnings.len());
        for w in &agg.warnings {
            let _ = writeln!(s, "- `{}`: {}", w.path.display(), w.message);
        }
    }
    for sweep in &agg.sweeps {
        let facts = provenance_facts(sweep);
        let _ = writeln!(s, "\n## Provenance of sweep {}\n", sweep.name);
        let table = Table {
            header: vec!["fact", "value"],
            rows: facts.into_iter().map(|(k, v)| vec![k, v]).collect(),
        };
        s.push_str(&table.markdown());
    }
    s
}

/// The report's page: a template of this crate's, rendered with HTML escaping.
const TEMPLATE: &str = include_str!("../templates/report.html.j2");

/// A chart inlined in the page.
#[derive(Serialize)]
struct Figure<'a> {
    id: &'a str,
    svg: &'a str,
}

/// Charts and the table that goes with them.
#[derive(Serialize)]
struct Section<'a> {
    figures: Vec<Figure<'a>>,
    table: Table,
}

/// The history's runs of this sweep's configurations: a chart per configuration, and which run
/// each number on their x axes is.
#[derive(Serialize)]
struct TrendView<'a> {
    figures: Vec<Figure<'a>>,
    table: Table,
    /// Configurations measured more than once that were not charted ([`crate::trend::MAX_CHARTS`]).
    more: usize,
}

fn trend_view<'a>(trend: &crate::trend::Trend, charts: &'a [(Chart, String)]) -> TrendView<'a> {
    TrendView {
        figures: figures(charts, |c| c.name.starts_with("trend_")),
        table: Table {
            header: vec!["run", "history id", "sweep"],
            rows: trend
                .runs
                .iter()
                .enumerate()
                .map(|(k, run)| {
                    let id = run
                        .id
                        .map_or_else(|| "this sweep (not in the history)".to_owned(), |id| id.to_string());
                    vec![format!("#{}", k + 1), id, run.label.clone()]
                })
                .collect(),
        },
        more: trend.uncharted(),
    }
}

/// `sweep explore`'s growth chart, how it ended, and every job it did not measure.
#[derive(Serialize)]
struct ExplorationView<'a> {
    figures: Vec<Figure<'a>>,
    summary: String,
    table: Table,
}

fn exploration_view<'a>(
    e: &crate::exploration::Exploration,
    charts: &'a [(Chart, String)],
) -> ExplorationView<'a> {
    let spent = e.growth.last().map_or(0.0, |g| g.0);
    let summary = format!(
        "{} waves; {spent:.4} of {:.4} GPU-hours spent. {}",
        e.growth.len(),
        e.budget,
        e.stop.as_deref().map_or_else(|| "It has not ended.".to_owned(), |s| format!("It ended: {s}."))
    );
    ExplorationView {
        figures: figures(charts, |c| c.name == "explore_growth"),
        summary,
        table: Table {
            header: vec!["job", "loads not measured", "decision", "predicted GPU-hours", "why"],
            rows: e
                .skipped
                .iter()
                .map(|s| {
                    let cost = s.cost.map_or_else(String::new, |c| format!("{c:.4}"));
                    let loads: Vec<String> = s.loads.iter().map(|l| l.to_string()).collect();
                    vec![s.job.clone(), loads.join(", "), s.decision.clone(), cost, s.why.clone()]
                })
                .collect(),
        },
    }
}

#[derive(Serialize)]
struct ServersView<'a> {
    table: Table,
    /// Speculative decoding's chart, when the servers report acceptance.
    speculative: Vec<Figure<'a>>,
    /// `job, load (point id): what to look at`.
    flagged: Vec<String>,
    panels: Vec<Panel<'a>>,
    /// What could not be scraped, each once.
    notes: Vec<&'a String>,
}

#[derive(Serialize)]
struct GpusView<'a> {
    /// Whether any GPU was sampled (else only the notes say why not).
    sampled: bool,
    /// The energy frontier.
    energy: Vec<Figure<'a>>,
    panels: Vec<Panel<'a>>,
    /// What could not be sampled, each once.
    notes: Vec<&'a String>,
}

/// A point's server chart, folded away unless something was flagged.
#[derive(Serialize)]
struct Panel<'a> {
    summary: String,
    open: bool,
    figure: Figure<'a>,
}

#[derive(Serialize)]
struct Cheapest {
    config: String,
    load: String,
    tps_per_gpu: String,
    price: String,
}

#[derive(Serialize)]
struct CostView<'a> {
    settings: String,
    meeting: usize,
    missed: usize,
    cheapest: Option<Cheapest>,
    figures: Vec<Figure<'a>>,
    table: Table,
}

#[derive(Serialize)]
struct ProfileView<'a> {
    cost: Option<CostView<'a>>,
    ttft: Option<Section<'a>>,
    itl: Option<Section<'a>>,
    balance: Option<Section<'a>>,
}

#[derive(Serialize)]
struct WarningView {
    path: String,
    message: String,
}

#[derive(Serialize)]
struct SweepView<'a> {
    name: &'a str,
    facts: Vec<(String, String)>,
    spec: Option<&'a str>,
}

/// One filter of the explorer: a dimension and the values it takes (only dimensions that vary).
#[derive(Serialize)]
struct Dimension {
    name: String,
    values: Vec<String>,
}

/// A point of the explorer's chart (or, without coordinates, a row its filters hide or show).
#[derive(Serialize)]
struct ExplorePoint {
    /// The row's index: `data-row` of its lines in the tables.
    row: usize,
    x: Option<f64>,
    y: Option<f64>,
    /// What hovering it shows: the configuration, the load and the figures.
    label: String,
    /// Its value of each dimension, in `dimensions` order.
    values: Vec<String>,
}

#[derive(Serialize)]
struct Explore {
    dimensions: Vec<Dimension>,
    points: Vec<ExplorePoint>,
    x_label: String,
    y_label: String,
}

/// The explorer's data: every row with its configuration's dimensions (mode, GPUs,
/// parallelism, ISL/OSL and every knob), and the dimensions that vary.
fn explore(agg: &Aggregate) -> Explore {
    let basis = agg.analysis.basis;
    let knobs: std::collections::BTreeSet<&String> =
        agg.rows.iter().flat_map(|r| r.config.knobs.keys()).collect();
    let mut names: Vec<String> = ["mode", "GPUs", "parallelism", "ISL/OSL"].map(str::to_owned).to_vec();
    names.extend(knobs.iter().map(|k| (*k).clone()));
    let values_of = |r: &Row| -> Vec<String> {
        let mut v = vec![
            r.config.mode.clone().unwrap_or_default(),
            int(r.config.gpus_working),
            r.roles_label(),
            format!("{}/{}", int(r.isl), int(r.osl)),
        ];
        v.extend(knobs.iter().map(|k| r.config.knobs.get(*k).cloned().unwrap_or_default()));
        v
    };
    let points: Vec<ExplorePoint> = agg
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let xy = crate::pareto::coordinates(r, basis);
            let mut label = format!("{} ({}), {}", r.config.job, r.roles_label(), crate::plot::load_label(r));
            for (k, v) in &r.config.knobs {
                label.push_str(&format!("\n{k} = {v}"));
            }
            label.push_str(&format!(
                "\n{} tok/s/user, {} tok/s/GPU, state {}",
                num(r.tps_per_user),
                num(r.tps_per_gpu(basis)),
                r.state
            ));
            ExplorePoint { row: i, x: xy.map(|p| p.0), y: xy.map(|p| p.1), label, values: values_of(r) }
        })
        .collect();
    let mut dimensions = Vec::new();
    for (d, name) in names.into_iter().enumerate() {
        let values: std::collections::BTreeSet<&str> =
            points.iter().map(|p| p.values[d].as_str()).filter(|v| !v.is_empty()).collect();
        dimensions.push(Dimension { name, values: values.into_iter().map(str::to_owned).collect() });
    }
    Explore {
        dimensions,
        points,
        x_label: "output tokens/s per user".to_owned(),
        y_label: format!("output tokens/s per GPU ({})", basis_text(basis)),
    }
}

/// Per varied knob: for each group and value, the best configuration at each tokens/s/user
/// floor, the values of one knob side by side.
fn knob_table(agg: &Aggregate) -> Table {
    let basis = agg.analysis.basis;
    let mut rows = Vec::new();
    for k in &agg.analysis.knobs {
        for (floor_value, best) in &k.best {
            let r = best.map(|i| &agg.rows[i]);
            rows.push(vec![
                k.knob.clone(),
                k.group.to_string(),
                floor(*floor_value),
                k.value.clone(),
                r.map_or_else(|| "no point reaches it".to_owned(), |r| r.config.job.clone()),
                r.map_or_else(String::new, |r| int(r.effective_concurrency.or(r.concurrency))),
                r.map_or_else(String::new, |r| num(r.tps_per_user)),
                r.map_or_else(String::new, |r| num(r.tps_per_gpu(basis))),
            ]);
        }
    }
    rows.sort_by(|a, b| {
        (&a[0], &a[1])
            .cmp(&(&b[0], &b[1]))
            .then(a[2].parse::<f64>().unwrap_or(0.0).total_cmp(&b[2].parse::<f64>().unwrap_or(0.0)))
    });
    Table {
        header: vec![
            "knob",
            "group",
            "tok/s/user at least",
            "value",
            "best configuration",
            "concurrency",
            "tok/s/user",
            "tok/s/GPU",
        ],
        rows,
    }
}

/// JSON for a `<script type="application/json">`: `</` cannot end the element early.
fn script_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned()).replace("</", "<\\/")
}

/// Everything the page shows, each part present only when the sweep has it.
#[derive(Serialize)]
struct Page<'a> {
    title: String,
    points: usize,
    states: String,
    basis: &'static str,
    best: Option<Table>,
    ratio: Option<Table>,
    pareto: Vec<Figure<'a>>,
    frontier: Table,
    /// The agg.rows index of each line of the frontier table.
    frontier_keys: Vec<usize>,
    /// The explorer's data, as JSON text.
    explore: String,
    knobs: Option<Section<'a>>,
    trend: Option<TrendView<'a>>,
    exploration: Option<ExplorationView<'a>>,
    search: Option<Section<'a>>,
    concurrency: Vec<Figure<'a>>,
    rate: Vec<Figure<'a>>,
    prefix: Vec<Figure<'a>>,
    turns: Option<Section<'a>>,
    servers: Option<ServersView<'a>>,
    gpus: Option<GpusView<'a>>,
    profile: Option<ProfileView<'a>>,
    problems: Table,
    accuracy: Option<Table>,
    invalid: Option<Table>,
    warnings: Vec<WarningView>,
    all: Table,
    all_keys: Vec<usize>,
    sweeps: Vec<SweepView<'a>>,
    version: &'static str,
    generators: String,
}

fn figure<'a>(chart: &'a Chart, svg: &'a str) -> Figure<'a> {
    Figure { id: &chart.name, svg: crate::page::strip_xml_header(svg) }
}

fn figures<'a>(charts: &'a [(Chart, String)], keep: impl Fn(&Chart) -> bool) -> Vec<Figure<'a>> {
    charts.iter().filter(|(c, _)| keep(c)).map(|(c, svg)| figure(c, svg)).collect()
}

fn profile_view<'a>(agg: &Aggregate, charts: &'a [(Chart, String)]) -> Option<ProfileView<'a>> {
    if !profile_has_any(agg) {
        return None;
    }
    let named = |names: &[&str]| figures(charts, |c| names.contains(&c.name.as_str()));
    let p = &agg.profile;
    let cost = p.cost.as_ref().map(|cost| CostView {
        settings: cost_settings(agg),
        meeting: cost.meeting.len(),
        missed: cost.missed,
        cheapest: cost.meeting.first().map(|best| {
            let r = &agg.rows[best.row];
            Cheapest {
                config: crate::profile::config_label(r),
                load: crate::plot::load_label(r),
                tps_per_gpu: num(Some(best.tps_per_gpu)),
                price: best
                    .usd_per_million
                    .map(|v| format!(", {v:.4} USD per million output tokens"))
                    .unwrap_or_default(),
            }
        }),
        figures: named(&["profile_cost"]),
        table: cost_table(agg, cost),
    });
    Some(ProfileView {
        cost,
        ttft: (!p.ttft.is_empty())
            .then(|| Section { figures: named(&["profile_ttft_vs_isl"]), table: ttft_fit_table(agg) }),
        itl: (!p.itl.is_empty()).then(|| Section {
            figures: named(&["profile_itl_vs_context", "profile_itl_vs_concurrency"]),
            table: itl_table(agg),
        }),
        balance: (!p.balance.is_empty())
            .then(|| Section { figures: named(&["profile_balance"]), table: balance_table(agg) }),
    })
}

/// A panel per point whose chart (named by `name`) was drawn, open when `open` says so.
fn panels<'a>(
    agg: &Aggregate,
    charts: &'a [(Chart, String)],
    name: fn(&Row) -> String,
    open: impl Fn(&Row) -> bool,
) -> Vec<Panel<'a>> {
    agg.rows
        .iter()
        .filter_map(|row| {
            let name = name(row);
            let (chart, svg) = charts.iter().find(|(c, _)| c.name == name)?;
            Some(Panel {
                summary: format!(
                    "{}, {} (point {})",
                    row.config.job,
                    crate::plot::load_label(row),
                    row.point
                ),
                open: open(row),
                figure: figure(chart, svg),
            })
        })
        .collect()
}

/// The GPUs' section: the energy frontier, a power panel per point, and what could not be
/// sampled; `None` when no point has telemetry.
fn gpus_view<'a>(agg: &'a Aggregate, charts: &'a [(Chart, String)]) -> Option<GpusView<'a>> {
    if !agg.rows.iter().any(|r| r.gpu.is_some()) {
        return None;
    }
    let panels = panels(agg, charts, crate::plot::gpu_chart_name, |_| false);
    let mut notes: Vec<&String> =
        agg.rows.iter().filter_map(|r| r.gpu.as_ref()).flat_map(|g| &g.notes).collect();
    notes.sort();
    notes.dedup();
    let sampled = agg.rows.iter().filter_map(|r| r.gpu.as_ref()).any(|g| !g.gpus.is_empty());
    Some(GpusView {
        sampled,
        energy: figures(charts, |c| c.name == crate::plot::ENERGY_CHART),
        panels,
        notes,
    })
}

fn servers_view<'a>(agg: &'a Aggregate, charts: &'a [(Chart, String)]) -> Option<ServersView<'a>> {
    if !agg.rows.iter().any(|r| r.server.is_some()) {
        return None;
    }
    let flagged = flagged_list(agg)
        .iter()
        .map(|(row, what)| {
            format!("{}, {} (point {}): {what}", row.config.job, crate::plot::load_label(row), row.point)
        })
        .collect();
    let flagged_open = |row: &Row| row.server.as_ref().is_some_and(|s| !s.flags.is_empty());
    let panels = panels(agg, charts, crate::plot::server_chart_name, flagged_open);
    let mut notes: Vec<&String> =
        agg.rows.iter().filter_map(|r| r.server.as_ref()).flat_map(|s| &s.notes).collect();
    notes.sort();
    notes.dedup();
    let speculative = figures(charts, |c| c.name == crate::plot::SPEC_CHART);
    Some(ServersView { table: server_table(agg), speculative, flagged, panels, notes })
}

fn sweep_view(sweep: &crate::discover::SweepInfo) -> SweepView<'_> {
    let mut facts = vec![
        ("folder".to_owned(), sweep.dir.display().to_string()),
        ("executor".to_owned(), sweep.executor.clone().unwrap_or_default()),
        ("engine".to_owned(), sweep.engine.clone().unwrap_or_default()),
        ("model".to_owned(), sweep.model.clone().unwrap_or_default()),
        ("jobs".to_owned(), sweep.jobs.to_string()),
        ("nodes".to_owned(), sweep.nodes.iter().cloned().collect::<Vec<_>>().join(", ")),
        ("SLURM job ids".to_owned(), sweep.slurm_job_ids.join(", ")),
    ];
    facts.extend(sweep.versions.iter().map(|(k, v)| (format!("version of {k}"), v.clone())));
    facts.extend(provenance_facts(sweep));
    facts.retain(|(_, v)| !v.is_empty());
    SweepView { name: &sweep.name, facts, spec: sweep.spec.as_deref() }
}

/// The HTML report; `charts` are the charts with their SVG text.
pub fn html(agg: &Aggregate, charts: &[(Chart, String)]) -> String {
    let against_rate = |c: &Chart| c.name.contains("_rate_isl");
    let against_prefix = |c: &Chart| c.name.contains("_prefix_isl");
    let by_turn = |c: &Chart| c.name.starts_with("ttft_by_turn_");
    let elsewhere = |c: &Chart| {
        c.name.starts_with("pareto_")
            || against_rate(c)
            || against_prefix(c)
            || by_turn(c)
            || c.name == "search_max_load"
            || c.name.starts_with("server_")
            || c.name.starts_with("gpu_")
            || c.name == crate::plot::ENERGY_CHART
            || c.name.starts_with("profile_")
            || c.name.starts_with("knob_")
            || c.name.starts_with("trend_")
            || c.name == "explore_growth"
    };
    let turns = turn_table(agg);
    let generators: std::collections::BTreeSet<&str> =
        agg.rows.iter().filter_map(|r| r.generator.as_deref()).collect();
    let page = Page {
        title: title(agg),
        points: agg.rows.len(),
        states: state_counts(&agg.rows),
        basis: basis_text(agg.analysis.basis),
        best: (!agg.analysis.best.is_empty()).then(|| best_table(agg)),
        ratio: (!agg.analysis.ratios.is_empty()).then(|| ratio_table(agg)),
        pareto: figures(charts, |c| c.name.starts_with("pareto_")),
        frontier: frontier_table(agg),
        frontier_keys: agg.analysis.frontier_rows().collect(),
        explore: script_json(&explore(agg)),
        knobs: (!agg.analysis.knobs.is_empty()).then(|| Section {
            figures: figures(charts, |c| c.name.starts_with("knob_")),
            table: knob_table(agg),
        }),
        trend: agg.trend.as_ref().map(|t| trend_view(t, charts)),
        exploration: agg.exploration.as_ref().map(|e| exploration_view(e, charts)),
        search: (!crate::plot::searches(&agg.rows).is_empty()).then(|| Section {
            figures: figures(charts, |c| c.name == "search_max_load"),
            table: search_table(agg),
        }),
        concurrency: figures(charts, |c| !elsewhere(c)),
        rate: figures(charts, against_rate),
        prefix: figures(charts, against_prefix),
        turns: (!turns.rows.is_empty()).then(|| Section { figures: figures(charts, by_turn), table: turns }),
        servers: servers_view(agg, charts),
        gpus: gpus_view(agg, charts),
        profile: profile_view(agg, charts),
        problems: problem_table(agg),
        accuracy: Some(accuracy_table(agg)).filter(|t| !t.rows.is_empty()),
        invalid: Some(invalid_table(agg)).filter(|t| !t.rows.is_empty()),
        warnings: agg
            .warnings
            .iter()
            .map(|w| WarningView { path: w.path.display().to_string(), message: w.message.clone() })
            .collect(),
        all: all_table(agg),
        all_keys: (0..agg.rows.len()).collect(),
        sweeps: agg.sweeps.iter().map(sweep_view).collect(),
        version: env!("CARGO_PKG_VERSION"),
        generators: generators.into_iter().collect::<Vec<_>>().join(", "),
    };
    crate::page::render("report.html", TEMPLATE, &page)
}
