//! The profiler's analyses of a sweep's results (pure: rows in, figures out), as Dynamo's
//! profiler draws them: TTFT against ISL at concurrency 1 with a quadratic fit, ITL against
//! context length and concurrency, the cheapest configuration meeting SLOs, and for
//! disaggregated sweeps the CTX:GEN ratio that balances prefill capacity against decode demand.

use std::collections::BTreeMap;

use crate::metrics::METRICS;
use crate::table::Row;
use crate::GpuBasis;

/// What the cost and balance analyses are asked (`sweep report --gpu-hour-cost --slo
/// --target-tokens-per-s`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// USD per GPU-hour.
    pub gpu_hour_cost: Option<f64>,
    pub slo: Vec<Slo>,
    /// Output tokens/s the deployment must serve: how many replicas, and GPUs, each
    /// configuration needs.
    pub target_tokens_per_s: Option<f64>,
}

/// A ceiling on one of the results table's latency columns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slo {
    /// A column of [`METRICS`] in ms: `ttft_p99_ms`, `itl_p50_ms`, `latency_avg_ms`, …
    pub column: &'static str,
    pub ceiling_ms: f64,
}

/// The SLO names: every latency column of the results table.
pub fn slo_names() -> impl Iterator<Item = &'static str> {
    METRICS.iter().map(|m| m.column).filter(|c| c.ends_with("_ms"))
}

/// Parses `ttft_p99_ms=500,itl_p50_ms=20`; an unknown name is an error naming the valid ones.
pub fn parse_slos(text: &str) -> Result<Vec<Slo>, String> {
    text.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not NAME=MS (e.g. ttft_p99_ms=500)"))?;
            let name = name.trim();
            let column = slo_names().find(|c| *c == name).ok_or_else(|| {
                format!("`{name}` is not an SLO; valid names: {}", slo_names().collect::<Vec<_>>().join(", "))
            })?;
            let ceiling_ms = value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| format!("`{name}={value}`: give a ceiling in ms above 0"))?;
            Ok(Slo { column, ceiling_ms })
        })
        .collect()
}

/// Whether a row meets every SLO: each figure present and at most its ceiling, no request
/// failed.
pub fn meets(row: &Row, slos: &[Slo]) -> bool {
    row.figures.get("error_request_count").unwrap_or(0.0) == 0.0
        && slos.iter().all(|s| row.figures.get(s.column).is_some_and(|v| v <= s.ceiling_ms))
}

/// `ttft_ms = a × isl² + b × isl + c`, by least squares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quadratic {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    /// The share of the TTFT's variance the fit explains.
    pub r2: f64,
}

impl Quadratic {
    pub fn at(&self, x: f64) -> f64 {
        (self.a * x + self.b) * x + self.c
    }

    /// The least-squares parabola through `points`; `None` with fewer than 3 distinct x.
    pub fn fit(points: &[(f64, f64)]) -> Option<Quadratic> {
        let mut xs: Vec<f64> = points.iter().map(|p| p.0).collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        if xs.len() < 3 {
            return None;
        }
        // Scaled to thousands of tokens: x⁴ of 128k-token prompts would swamp the normal
        // equations' other terms.
        let scale = 1000.0;
        let mut s = [0.0f64; 5];
        let mut t = [0.0f64; 3];
        for &(x, y) in points {
            let x = x / scale;
            let mut power = 1.0;
            for (k, sum) in s.iter_mut().enumerate() {
                *sum += power;
                if k < 3 {
                    t[k] += power * y;
                }
                power *= x;
            }
        }
        // Normal equations [s0 s1 s2; s1 s2 s3; s2 s3 s4] · [c b a] = t, by Cramer's rule.
        let m = [[s[0], s[1], s[2]], [s[1], s[2], s[3]], [s[2], s[3], s[4]]];
        let det = |m: &[[f64; 3]; 3]| {
            m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
                - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
                + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
        };
        let d = det(&m);
        if d.abs() < f64::EPSILON {
            return None;
        }
        let solve = |col: usize| {
            let mut mc = m;
            for (row, value) in mc.iter_mut().zip(t) {
                row[col] = value;
            }
            det(&mc) / d
        };
        let (c, b, a) = (solve(0), solve(1) / scale, solve(2) / (scale * scale));
        let fit = Quadratic { a, b, c, r2: 0.0 };
        let mean = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
        let total: f64 = points.iter().map(|p| (p.1 - mean).powi(2)).sum();
        let residual: f64 = points.iter().map(|p| (p.1 - fit.at(p.0)).powi(2)).sum();
        let r2 = if total > 0.0 { 1.0 - residual / total } else { 1.0 };
        Some(Quadratic { r2, ..fit })
    }
}

/// TTFT against ISL at concurrency 1, for one configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct TtftFit {
    pub config: String,
    /// (ISL, mean TTFT ms), one per point.
    pub points: Vec<(f64, f64)>,
    pub fit: Option<Quadratic>,
}

/// One point's ITL with the context it decoded at.
#[derive(Debug, Clone, PartialEq)]
pub struct ItlPoint {
    pub config: String,
    pub row: usize,
    pub concurrency: f64,
    pub isl: f64,
    pub osl: f64,
    /// ISL + OSL/2: the mean context a decode step attends to.
    pub context: f64,
    pub itl_p50_ms: f64,
}

/// One measured point priced at the SLOs.
#[derive(Debug, Clone, PartialEq)]
pub struct CostRow {
    pub row: usize,
    pub tps_per_gpu: f64,
    /// USD per million output tokens: `gpu_hour_cost × 10⁶ / (tokens/s/GPU × 3600)`.
    pub usd_per_million: Option<f64>,
    /// Deployments of this configuration serving `target_tokens_per_s`, and their GPUs.
    pub replicas: Option<u64>,
    pub gpus_needed: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cost {
    /// The points meeting every SLO, cheapest (most tokens/s per GPU) first.
    pub meeting: Vec<CostRow>,
    /// Measured points that missed an SLO (or had failed requests).
    pub missed: usize,
}

/// A disaggregated point's prefill demand against the CTX capacity its sweep measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Balance {
    pub row: usize,
    pub ctx_servers: f64,
    pub gen_servers: f64,
    /// Prefill tokens/s the point's request rate needs: requests/s × ISL.
    pub prefill_needed: f64,
    /// The most prefill tokens/s per CTX GPU seen for this CTX configuration and ISL at a point
    /// meeting the TTFT SLOs (every TTFT ceiling given; all points when none is).
    pub ctx_capacity_per_gpu: f64,
    /// CTX servers that would serve `prefill_needed` at that capacity.
    pub balanced_ctx_servers: f64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Profile {
    /// What the analyses were asked.
    pub settings: Settings,
    pub ttft: Vec<TtftFit>,
    pub itl: Vec<ItlPoint>,
    /// `None` without SLOs or a GPU-hour cost.
    pub cost: Option<Cost>,
    pub balance: Vec<Balance>,
}

/// The configuration a row belongs to, as the report names it.
pub fn config_label(row: &Row) -> String {
    let roles = row.roles_label();
    if roles.is_empty() {
        row.config.job.clone()
    } else {
        format!("{} ({roles})", row.config.job)
    }
}

/// A point's input and output lengths: the mean measured ones where the summary has them, else
/// the planned ones.
fn lengths(r: &Row) -> (Option<f64>, Option<f64>) {
    (
        r.figures.get("isl_avg").or(r.isl.map(|v| v as f64)),
        r.figures.get("osl_avg").or(r.osl.map(|v| v as f64)),
    )
}

/// ISL + OSL/2: the mean context a decode step attends to.
pub fn context(r: &Row) -> Option<f64> {
    let (isl, osl) = lengths(r);
    Some(isl? + osl? / 2.0)
}

fn world(role: &crate::discover::RoleConfig) -> f64 {
    (role.tp.unwrap_or(1) * role.pp.unwrap_or(1)).max(1) as f64
}

/// Runs every analysis over the measured rows.
pub fn analyse(rows: &[Row], settings: &Settings, basis: GpuBasis) -> Profile {
    let measured: Vec<(usize, &Row)> = rows.iter().enumerate().filter(|(_, r)| r.measured()).collect();
    let isl = |r: &Row| lengths(r).0;

    let mut by_config: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (_, r) in &measured {
        if r.effective_concurrency == Some(1) && r.request_rate.is_none() {
            if let (Some(x), Some(y)) = (isl(r), r.figures.get("ttft_avg_ms")) {
                by_config.entry(config_label(r)).or_default().push((x, y));
            }
        }
    }
    let ttft = by_config
        .into_iter()
        .map(|(config, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let fit = Quadratic::fit(&points);
            TtftFit { config, points, fit }
        })
        .collect();

    let itl = measured
        .iter()
        .filter_map(|&(i, r)| {
            let (isl, osl) = lengths(r);
            Some(ItlPoint {
                config: config_label(r),
                row: i,
                concurrency: r.effective_concurrency? as f64,
                isl: isl?,
                osl: osl?,
                context: context(r)?,
                itl_p50_ms: r.figures.get("itl_p50_ms")?,
            })
        })
        .collect();

    let cost = (settings.gpu_hour_cost.is_some() || !settings.slo.is_empty()).then(|| {
        let mut cost = Cost::default();
        for &(i, r) in &measured {
            let Some(tps_per_gpu) = r.tps_per_gpu(basis).filter(|v| *v > 0.0) else { continue };
            if !meets(r, &settings.slo) {
                cost.missed += 1;
                continue;
            }
            let gpus = match basis {
                GpuBasis::Working => r.config.gpus_working,
                GpuBasis::Allocated => r.config.gpus_allocated,
            };
            let replicas = settings
                .target_tokens_per_s
                .zip(r.figures.get("output_token_throughput").filter(|v| *v > 0.0))
                .map(|(target, tps)| (target / tps).ceil() as u64);
            cost.meeting.push(CostRow {
                row: i,
                tps_per_gpu,
                usd_per_million: settings.gpu_hour_cost.map(|usd| usd * 1e6 / (tps_per_gpu * 3600.0)),
                replicas,
                gpus_needed: replicas.zip(gpus).map(|(n, g)| n * g.max(0) as u64),
            });
        }
        cost.meeting.sort_by(|a, b| b.tps_per_gpu.total_cmp(&a.tps_per_gpu));
        cost
    });

    // Prefill capacity per CTX GPU, by CTX configuration and ISL.
    let ttft_slos: Vec<Slo> =
        settings.slo.iter().copied().filter(|s| s.column.starts_with("ttft_")).collect();
    let ctx_key = |r: &Row| {
        let ctx = r.config.role("ctx")?;
        Some((format!("{:?}/{:?}/{:?}/{:?}", ctx.tp, ctx.pp, ctx.parallel, ctx.batch), r.isl?))
    };
    let prefill_per_ctx_gpu = |r: &Row| -> Option<f64> {
        let ctx = r.config.role("ctx")?;
        let gpus = ctx.servers.unwrap_or(1) as f64 * world(ctx);
        Some(r.figures.get("request_throughput")? * isl(r)? / gpus)
    };
    let mut capacity: BTreeMap<(String, i64), f64> = BTreeMap::new();
    for (_, r) in &measured {
        if let (Some(key), Some(per_gpu)) = (ctx_key(r), prefill_per_ctx_gpu(r)) {
            if meets(r, &ttft_slos) {
                let best = capacity.entry(key).or_insert(0.0);
                *best = best.max(per_gpu);
            }
        }
    }
    let balance = measured
        .iter()
        .filter_map(|&(i, r)| {
            let (ctx, gen) = (r.config.role("ctx")?, r.config.role("gen")?);
            let ctx_capacity_per_gpu = *capacity.get(&ctx_key(r)?)?;
            let prefill_needed = r.figures.get("request_throughput")? * isl(r)?;
            Some(Balance {
                row: i,
                ctx_servers: ctx.servers.unwrap_or(1) as f64,
                gen_servers: gen.servers.unwrap_or(1) as f64,
                prefill_needed,
                ctx_capacity_per_gpu,
                balanced_ctx_servers: prefill_needed / ctx_capacity_per_gpu / world(ctx),
            })
        })
        .collect();
    Profile { settings: settings.clone(), ttft, itl, cost, balance }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::{Config, RoleConfig, Source};
    use crate::metrics::Figures;

    fn role(name: &str, servers: i64, tp: i64) -> RoleConfig {
        RoleConfig { role: name.into(), servers: Some(servers), tp: Some(tp), ..RoleConfig::default() }
    }

    /// A done row of `job` at `concurrency`, `isl`/`osl`, with the figures given.
    pub(crate) fn row(
        job: &str,
        roles: Vec<RoleConfig>,
        concurrency: i64,
        isl: i64,
        figures: &[(&str, f64)],
    ) -> Row {
        let mut f = Figures::empty();
        f.set("request_count", Some(100.0));
        f.set("error_request_count", Some(0.0));
        for (column, value) in figures {
            f.set(column, Some(*value));
        }
        let gpus = roles.iter().map(|r| r.servers.unwrap_or(1) * r.tp.unwrap_or(1)).sum();
        Row {
            source: Source::Sweep,
            config: Config {
                job: job.into(),
                roles,
                gpus_working: Some(gpus),
                gpus_allocated: Some(gpus),
                ..Config::default()
            },
            point: format!("{job}-{concurrency}-{isl}"),
            dir: std::path::PathBuf::new(),
            state: "done".into(),
            reason: None,
            attempts: 1,
            isl: Some(isl),
            osl: Some(100),
            concurrency: Some(concurrency),
            effective_concurrency: Some(concurrency),
            request_rate: None,
            prefix_ratio: None,
            search: None,
            max_load_meeting_slo: None,
            search_stopped_because: None,
            tps_per_gpu_working: f.get("output_token_throughput").map(|t| t / gpus as f64),
            tps_per_gpu_allocated: f.get("output_token_throughput").map(|t| t / gpus as f64),
            figures: f,
            ttft_by_turn: Vec::new(),
            metrics_from: Some("summary"),
            token_source: None,
            generator: None,
            tps_per_user: None,
            tps_per_user_srt: None,
            on_frontier: false,
            invalid: None,
            repeat: 0,
            repeats: None,
            repeat_of: None,
            server: None,
            gpu: None,
            accuracy: None,
        }
    }

    #[test]
    fn the_quadratic_fit_recovers_an_exact_parabola_and_refuses_two_points() {
        // ttft = 2e-6 isl² + 0.01 isl + 15.
        let points: Vec<(f64, f64)> =
            [1000.0, 2000.0, 4000.0, 8000.0].iter().map(|&x| (x, 2e-6 * x * x + 0.01 * x + 15.0)).collect();
        let q = Quadratic::fit(&points).expect("fits");
        assert!((q.a - 2e-6).abs() < 1e-12, "{q:?}");
        assert!((q.b - 0.01).abs() < 1e-8, "{q:?}");
        assert!((q.c - 15.0).abs() < 1e-6, "{q:?}");
        assert!((q.r2 - 1.0).abs() < 1e-9);
        assert_eq!(Quadratic::fit(&points[..2]), None);
        // Noisy points by hand: (0, 1), (1, 0), (2, 1), (3, 4) + 1 on the last. The normal
        // equations [4 6 14; 6 14 36; 14 36 98]·[c b a] = [7 17 49] give
        // c = 1.05, b = -2.45, a = 1.25 (x in thousands of tokens, so a and b scale by 10⁻⁶ and 10⁻³).
        let noisy = [(0.0, 1.0), (1000.0, 0.0), (2000.0, 1.0), (3000.0, 5.0)];
        let q = Quadratic::fit(&noisy).expect("fits");
        assert!((q.a - 1.25e-6).abs() < 1e-12, "{q:?}");
        assert!((q.b + 2.45e-3).abs() < 1e-9, "{q:?}");
        assert!((q.c - 1.05).abs() < 1e-9, "{q:?}");
    }

    #[test]
    fn slo_names_are_checked_and_listed() {
        let slos = parse_slos("ttft_p99_ms=500, itl_p50_ms=20").expect("parses");
        assert_eq!(
            slos,
            vec![
                Slo { column: "ttft_p99_ms", ceiling_ms: 500.0 },
                Slo { column: "itl_p50_ms", ceiling_ms: 20.0 }
            ]
        );
        let error = parse_slos("ttft_p99=500").expect_err("unknown");
        assert!(error.contains("`ttft_p99` is not an SLO; valid names: ttft_avg_ms, ttft_p50_ms"), "{error}");
        assert!(error.contains("latency_p99_ms"), "{error}");
        assert!(parse_slos("ttft_p99_ms=-1").is_err());
        assert!(parse_slos("ttft_p99_ms").is_err());
    }

    #[test]
    fn cost_at_an_sla_prices_the_points_meeting_it_cheapest_first() {
        let agg = |tp, c, tps, ttft, itl| {
            row(
                "agg",
                vec![role("agg", 1, tp)],
                c,
                1000,
                &[("output_token_throughput", tps), ("ttft_p99_ms", ttft), ("itl_p50_ms", itl)],
            )
        };
        let rows = vec![
            agg(1, 8, 800.0, 100.0, 10.0),   // 800 tokens/s/GPU, meets
            agg(1, 64, 3000.0, 900.0, 30.0), // misses both
            agg(2, 64, 2400.0, 300.0, 15.0), // 1200 tokens/s/GPU, meets
        ];
        let settings = Settings {
            gpu_hour_cost: Some(2.0),
            slo: parse_slos("ttft_p99_ms=500,itl_p50_ms=20").expect("slo"),
            target_tokens_per_s: Some(10_000.0),
        };
        let cost = analyse(&rows, &settings, GpuBasis::Working).cost.expect("cost");
        assert_eq!(cost.missed, 1);
        assert_eq!(cost.meeting.iter().map(|c| c.row).collect::<Vec<_>>(), vec![2, 0]);
        // 2 USD × 10⁶ / (1200 × 3600) = 0.46296; ceil(10000 / 2400) = 5 replicas of 2 GPUs.
        let best = &cost.meeting[0];
        assert!((best.usd_per_million.expect("usd") - 0.462_963).abs() < 1e-6);
        assert_eq!((best.replicas, best.gpus_needed), (Some(5), Some(10)));
        // 2 × 10⁶ / (800 × 3600) = 0.69444; ceil(10000 / 800) = 13 replicas of 1 GPU.
        let other = &cost.meeting[1];
        assert!((other.usd_per_million.expect("usd") - 0.694_444).abs() < 1e-6);
        assert_eq!((other.replicas, other.gpus_needed), (Some(13), Some(13)));
        // A failed request disqualifies a point whatever its latencies.
        let mut failing = rows.clone();
        failing[2].figures.set("error_request_count", Some(1.0));
        let cost = analyse(&failing, &settings, GpuBasis::Working).cost.expect("cost");
        assert_eq!(cost.missed, 2);
    }

    #[test]
    fn ttft_fits_use_concurrency_one_and_itl_gets_its_context() {
        let ttft = |isl: i64| 1e-6 * (isl * isl) as f64 + 0.02 * isl as f64 + 5.0;
        let mut rows: Vec<Row> = [512, 1024, 2048, 4096]
            .iter()
            .map(|&isl| {
                row("a", vec![role("agg", 1, 1)], 1, isl, &[("ttft_avg_ms", ttft(isl)), ("itl_p50_ms", 8.0)])
            })
            .collect();
        // At concurrency 4: not part of the fit.
        rows.push(row("a", vec![role("agg", 1, 1)], 4, 512, &[("ttft_avg_ms", 999.0), ("itl_p50_ms", 9.0)]));
        let profile = analyse(&rows, &Settings::default(), GpuBasis::Working);
        assert_eq!(profile.cost, None);
        assert_eq!(profile.ttft.len(), 1);
        assert_eq!(profile.ttft[0].points.len(), 4);
        let fit = profile.ttft[0].fit.expect("fit");
        assert!((fit.at(3000.0) - ttft(3000)).abs() < 1e-6, "{fit:?}");
        assert_eq!(profile.itl.len(), 5);
        // ISL 512 + OSL 100 / 2.
        assert_eq!(profile.itl[0].context, 562.0);
        assert_eq!(profile.itl[4].concurrency, 4.0);
    }

    #[test]
    fn the_prefill_decode_balance_uses_the_best_ctx_throughput_meeting_the_ttft_slo() {
        let disagg = |ctx_servers, rate, ttft| {
            row(
                "d",
                vec![role("ctx", ctx_servers, 2), role("gen", 2, 4)],
                16,
                4000,
                &[
                    ("request_throughput", rate),
                    ("ttft_p99_ms", ttft),
                    ("output_token_throughput", rate * 100.0),
                ],
            )
        };
        // One CTX server of 2 GPUs: 10 req/s × 4000 = 40_000 prefill tokens/s = 20_000 per GPU
        // within the SLO; 15 req/s (30_000 per GPU) misses it and is no capacity.
        let rows = vec![disagg(1, 10.0, 200.0), disagg(1, 15.0, 900.0), disagg(2, 12.0, 150.0)];
        let settings = Settings { slo: parse_slos("ttft_p99_ms=500").expect("slo"), ..Settings::default() };
        let balance = analyse(&rows, &settings, GpuBasis::Working).balance;
        assert_eq!(balance.len(), 3);
        // 2 CTX servers at 12 req/s: 48_000 tokens/s over 4 GPUs = 12_000 per GPU; capacity is
        // the best, 20_000.
        assert!(balance.iter().all(|b| b.ctx_capacity_per_gpu == 20_000.0), "{balance:?}");
        // 60_000 tokens/s needed at 15 req/s / 20_000 per GPU / 2 GPUs a server = 1.5 servers.
        assert_eq!(balance[1].balanced_ctx_servers, 1.5);
        assert_eq!(balance[2].balanced_ctx_servers, 1.2);
        assert_eq!((balance[2].ctx_servers, balance[2].gen_servers), (2.0, 2.0));
    }
}
