//! What the servers saw of each point (its `server_metrics.json`), set against what the client
//! measured: the difference between the two clocks, and the flags a performance engineer looks
//! for first when a point is slow (the server queued, the KV cache filled) or when a figure
//! cannot be trusted (the two token counts disagree, the client was faster than the server).

use sweep_folder::server_metrics::{Measures, Summary};

use crate::metrics::Figures;

/// A point's server-side figures and flags.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerFigures {
    pub measures: Measures,
    /// What could not be scraped, from the summary.
    pub notes: Vec<String>,
    /// Client TTFT p50 − the servers' TTFT p50 (ms).
    pub ttft_client_minus_server_p50_ms: Option<f64>,
    /// The same with means, which the servers' histograms give exactly (their p50 is read
    /// between bucket bounds).
    pub ttft_client_minus_server_avg_ms: Option<f64>,
    pub itl_client_minus_server_p50_ms: Option<f64>,
    /// Output tokens the client counted over the measured requests.
    pub client_output_tokens: Option<f64>,
    pub flags: Vec<Flag>,
}

/// Something about a point worth a look.
#[derive(Debug, Clone, PartialEq)]
pub enum Flag {
    /// Requests waited in a queue in more than [`QUEUED_SHARE`] of the scrapes.
    Queued { share: f64 },
    /// The KV cache reached [`KV_FULL`].
    KvCacheFull { max: f64 },
    /// The client's and the servers' output token counts differ by more than
    /// [`TOKEN_TOLERANCE`].
    TokenCountMismatch { client: f64, server: f64 },
    /// The client's mean TTFT is below the servers': the client cannot see a token before the
    /// server sends it, so one of the two clocks is wrong.
    ClientTtftBelowServer { client_ms: f64, server_ms: f64 },
}

pub const QUEUED_SHARE: f64 = 0.10;
pub const KV_FULL: f64 = 0.95;
pub const TOKEN_TOLERANCE: f64 = 0.02;
/// Below this, a client mean under the server's is the histograms' rounding, not an error.
const TTFT_TOLERANCE_MS: f64 = 1.0;

impl Flag {
    /// The flag's name in `server_flags`.
    pub fn name(&self) -> &'static str {
        match self {
            Flag::Queued { .. } => "queued",
            Flag::KvCacheFull { .. } => "kv_cache_full",
            Flag::TokenCountMismatch { .. } => "token_count_mismatch",
            Flag::ClientTtftBelowServer { .. } => "client_ttft_below_server",
        }
    }

    /// What it means, for the report.
    pub fn describe(&self) -> String {
        match self {
            Flag::Queued { share } => {
                format!("requests waited in the server's queue in {:.0} % of the scrapes", share * 100.0)
            }
            Flag::KvCacheFull { max } => format!("the KV cache reached {:.1} % of its capacity", max * 100.0),
            Flag::TokenCountMismatch { client, server } => format!(
                "the client counted {client:.0} output tokens, the servers {server:.0} ({:+.1} %)",
                (server - client) / client * 100.0
            ),
            Flag::ClientTtftBelowServer { client_ms, server_ms } => format!(
                "measurement error: the client's mean TTFT ({client_ms:.1} ms) is below the servers' ({server_ms:.1} ms)"
            ),
        }
    }
}

/// Sets a point's summary against its client figures.
pub fn figures(summary: Summary, client: &Figures) -> ServerFigures {
    let m = summary.measures;
    let minus = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
    let client_output_tokens = client.output_tokens();
    let mut flags = Vec::new();
    if let Some(share) = m.waiting_share.filter(|s| *s > QUEUED_SHARE) {
        flags.push(Flag::Queued { share });
    }
    if let Some(kv) = m.kv_cache_usage.filter(|kv| kv.max >= KV_FULL) {
        flags.push(Flag::KvCacheFull { max: kv.max });
    }
    if let (Some(client), Some(server)) = (client_output_tokens.filter(|c| *c > 0.0), m.output_tokens) {
        if ((server - client) / client).abs() > TOKEN_TOLERANCE {
            flags.push(Flag::TokenCountMismatch { client, server });
        }
    }
    let server_ttft = m.time_to_first_token.as_ref();
    if let (Some(client_ms), Some(server_ms)) =
        (client.get("ttft_avg_ms"), server_ttft.and_then(|t| t.mean_ms))
    {
        if client_ms < server_ms - TTFT_TOLERANCE_MS {
            flags.push(Flag::ClientTtftBelowServer { client_ms, server_ms });
        }
    }
    ServerFigures {
        ttft_client_minus_server_p50_ms: minus(client.get("ttft_p50_ms"), server_ttft.and_then(|t| t.p50_ms)),
        ttft_client_minus_server_avg_ms: minus(
            client.get("ttft_avg_ms"),
            server_ttft.and_then(|t| t.mean_ms),
        ),
        itl_client_minus_server_p50_ms: minus(
            client.get("itl_p50_ms"),
            m.inter_token_latency.as_ref().and_then(|t| t.p50_ms),
        ),
        client_output_tokens,
        flags,
        notes: summary.notes,
        measures: m,
    }
}

impl ServerFigures {
    /// `queued,kv_cache_full`: the flags' names, for the table.
    pub fn flag_names(&self) -> String {
        self.flags.iter().map(Flag::name).collect::<Vec<_>>().join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sweep_folder::server_metrics::{Latency, Level};

    fn client(pairs: &[(&str, f64)]) -> Figures {
        let mut f = Figures::empty();
        for (column, value) in pairs {
            f.set(column, Some(*value));
        }
        f
    }

    #[test]
    fn flags_and_differences_by_hand() {
        let measures = Measures {
            waiting_share: Some(0.25),
            kv_cache_usage: Some(Level { mean: 0.5, max: 0.97 }),
            output_tokens: Some(1100.0),
            time_to_first_token: Some(Latency {
                count: 10.0,
                mean_ms: Some(30.0),
                p50_ms: Some(28.0),
                p99_ms: None,
            }),
            inter_token_latency: Some(Latency {
                count: 90.0,
                mean_ms: Some(5.0),
                p50_ms: Some(4.5),
                p99_ms: None,
            }),
            ..Default::default()
        };
        let summary = Summary { measures, ..Default::default() };
        let c = client(&[
            ("osl_avg", 100.0),
            ("request_count", 10.0),
            ("ttft_avg_ms", 25.0),
            ("ttft_p50_ms", 26.0),
            ("itl_p50_ms", 5.0),
        ]);
        let s = figures(summary.clone(), &c);
        assert_eq!(s.client_output_tokens, Some(1000.0));
        assert_eq!(s.ttft_client_minus_server_p50_ms, Some(-2.0));
        assert_eq!(s.ttft_client_minus_server_avg_ms, Some(-5.0));
        assert_eq!(s.itl_client_minus_server_p50_ms, Some(0.5));
        assert_eq!(s.flag_names(), "queued,kv_cache_full,token_count_mismatch,client_ttft_below_server");
        assert!(s.flags[2].describe().contains("+10.0 %"), "{}", s.flags[2].describe());

        // Within the tolerances: no flag.
        let mut quiet = summary;
        quiet.measures.waiting_share = Some(0.1);
        quiet.measures.kv_cache_usage = Some(Level { mean: 0.5, max: 0.94 });
        quiet.measures.output_tokens = Some(1015.0);
        let c = client(&[("osl_avg", 100.0), ("request_count", 10.0), ("ttft_avg_ms", 29.5)]);
        assert_eq!(figures(quiet, &c).flags, Vec::new());
    }
}
