//! The engine's own clock: its Prometheus histograms of TTFT and ITL, scraped before and after
//! a point, give the server's mean over that point — a check on the client's figures, which
//! include the network and HTTP on top. vLLM serves `vllm:time_to_first_token_seconds`,
//! `vllm:inter_token_latency_seconds` and `vllm:e2e_request_latency_seconds`; SGLang the same
//! under `sglang:`; Dynamo's frontend `dynamo_frontend_time_to_first_token_seconds`,
//! `…_inter_token_latency_seconds` and `…_request_duration_seconds`. The first family found of
//! each measure is used. An ITL histogram counts token gaps, not requests.

use serde::Serialize;

/// Histogram families, per measure: the first one an engine serves is used.
const FAMILIES: &[(&str, &[&str])] = &[
    (
        "time_to_first_token",
        &[
            "vllm:time_to_first_token_seconds",
            "sglang:time_to_first_token_seconds",
            "dynamo_frontend_time_to_first_token_seconds",
        ],
    ),
    (
        "inter_token_latency",
        &[
            "vllm:inter_token_latency_seconds",
            "sglang:inter_token_latency_seconds",
            "dynamo_frontend_inter_token_latency_seconds",
        ],
    ),
    (
        "request_latency",
        &[
            "vllm:e2e_request_latency_seconds",
            "sglang:e2e_request_latency_seconds",
            "dynamo_frontend_request_duration_seconds",
        ],
    ),
];

/// Each family's `_sum` and `_count`, summed over its label sets, from one scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape(Vec<(&'static str, &'static str, f64, f64)>);

/// One measure over a point, by the engine's histograms.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerMeasure {
    /// The Prometheus family it came from.
    pub family: &'static str,
    pub unit: &'static str,
    /// Mean over the requests the engine finished between the scrapes.
    pub avg: f64,
    pub count: f64,
}

/// Parses Prometheus text exposition; families not found are left out.
pub fn parse(text: &str) -> Scrape {
    let mut out = Vec::new();
    for (measure, names) in FAMILIES {
        for name in *names {
            let (mut sum, mut count, mut seen) = (0.0, 0.0, false);
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                let Some(rest) = line.strip_prefix(name) else { continue };
                // `name_sum{labels} value [timestamp]`; label values may hold spaces.
                let (suffix, value) = match (rest.find('{'), rest.rfind('}')) {
                    (Some(open), Some(close)) if open < close => (&rest[..open], &rest[close + 1..]),
                    _ => match rest.split_once(' ') {
                        Some(split) => split,
                        None => continue,
                    },
                };
                let Ok(value) = value.trim().split(' ').next().unwrap_or_default().parse::<f64>() else {
                    continue;
                };
                match suffix {
                    "_sum" => sum += value,
                    "_count" => count += value,
                    _ => continue,
                }
                seen = true;
            }
            if seen {
                out.push((*measure, *name, sum, count));
                break;
            }
        }
    }
    Scrape(out)
}

/// The point's measures: what changed between `before` and `after`, in milliseconds.
pub fn over_point(before: &Scrape, after: &Scrape) -> Vec<(&'static str, ServerMeasure)> {
    after
        .0
        .iter()
        .filter_map(|&(measure, family, sum, count)| {
            let (_, _, sum0, count0) =
                before.0.iter().find(|(m, f, ..)| *m == measure && *f == family).copied().unwrap_or_default();
            let n = count - count0;
            (n > 0.0).then(|| {
                (measure, ServerMeasure { family, unit: "ms", avg: (sum - sum0) / n * 1000.0, count: n })
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_give_the_mean_over_a_point() {
        let before = parse(
            "# HELP vllm:time_to_first_token_seconds x\n\
             vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"0.1\",model_name=\"tiny\"} 1.0\n\
             vllm:time_to_first_token_seconds_sum{engine=\"0\",model_name=\"tiny\"} 0.5\n\
             vllm:time_to_first_token_seconds_count{engine=\"0\",model_name=\"tiny\"} 2.0\n",
        );
        let after = parse(
            "vllm:time_to_first_token_seconds_sum{engine=\"0\",model_name=\"tiny\"} 1.5\n\
             vllm:time_to_first_token_seconds_count{engine=\"0\",model_name=\"tiny\"} 6.0\n\
             vllm:inter_token_latency_seconds_sum{engine=\"0\"} 0.2\n\
             vllm:inter_token_latency_seconds_count{engine=\"0\"} 20\n",
        );
        let measures = over_point(&before, &after);
        assert_eq!(measures.len(), 2, "{measures:?}");
        let (name, ttft) = &measures[0];
        assert_eq!(*name, "time_to_first_token");
        assert!((ttft.avg - 250.0).abs() < 1e-9, "{ttft:?}");
        assert_eq!(ttft.count, 4.0);
        let (_, itl) = &measures[1];
        assert!((itl.avg - 10.0).abs() < 1e-9);
        assert!(over_point(&after, &after).is_empty(), "nothing finished: no mean");
        assert!(parse("not prometheus").0.is_empty());
    }
}
