//! Which Prometheus family gives each measure of the results table, per engine. The first
//! family of a measure's list that any server of the point serves is used, so a point mixing
//! engines (vLLM servers behind `vllm-router`, say) reads each measure from one family.
//!
//! `docs/metrics.md` ("What the servers saw") has the table of every measure's families per
//! engine (vLLM, SGLang, TensorRT-LLM, the Dynamo frontend and the simulated engine).

/// A measure of the results table that comes from the servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    RequestsRunning,
    RequestsWaiting,
    KvCacheUsage,
    Preemptions,
    PrefixCacheHits,
    PrefixCacheQueries,
    /// Engines that serve the rate itself (SGLang) rather than hits and queries.
    PrefixCacheHitRate,
    TimeToFirstToken,
    InterTokenLatency,
    OutputTokens,
    /// Speculative decoding: draft steps (proposals), draft tokens proposed and accepted
    /// (counters), and the engines that serve the mean tokens per step and the acceptance rate
    /// themselves (gauges).
    SpecDrafts,
    SpecDraftTokens,
    SpecAcceptedTokens,
    SpecAcceptanceLength,
    SpecAcceptanceRate,
}

impl Measure {
    pub fn name(self) -> &'static str {
        match self {
            Measure::RequestsRunning => "requests_running",
            Measure::RequestsWaiting => "requests_waiting",
            Measure::KvCacheUsage => "kv_cache_usage",
            Measure::Preemptions => "preemptions",
            Measure::PrefixCacheHits => "prefix_cache_hits",
            Measure::PrefixCacheQueries => "prefix_cache_queries",
            Measure::PrefixCacheHitRate => "prefix_cache_hit_rate",
            Measure::TimeToFirstToken => "time_to_first_token",
            Measure::InterTokenLatency => "inter_token_latency",
            Measure::OutputTokens => "output_tokens",
            Measure::SpecDrafts => "spec_drafts",
            Measure::SpecDraftTokens => "spec_draft_tokens",
            Measure::SpecAcceptedTokens => "spec_accepted_tokens",
            Measure::SpecAcceptanceLength => "spec_acceptance_length",
            Measure::SpecAcceptanceRate => "spec_acceptance_rate",
        }
    }
}

/// The gauge families of every measure: what a scrape between a point's edges needs.
pub fn gauge_families() -> impl Iterator<Item = &'static str> {
    [
        Measure::RequestsRunning,
        Measure::RequestsWaiting,
        Measure::KvCacheUsage,
        Measure::PrefixCacheHitRate,
        Measure::SpecAcceptanceLength,
        Measure::SpecAcceptanceRate,
    ]
    .into_iter()
    .flat_map(families)
    .copied()
}

/// The families a measure is read from, in order of preference. Counters are named without
/// `_total` (their samples may carry it).
pub fn families(measure: Measure) -> &'static [&'static str] {
    match measure {
        Measure::RequestsRunning => &[
            "vllm:num_requests_running",
            "sglang:num_running_reqs",
            "trtllm_num_requests_running",
            "sweep_mock_num_requests_running",
            "dynamo_frontend_inflight_requests",
        ],
        Measure::RequestsWaiting => &[
            "vllm:num_requests_waiting",
            "sglang:num_queue_reqs",
            "trtllm_num_requests_waiting",
            "sweep_mock_num_requests_waiting",
            "dynamo_frontend_queued_requests",
        ],
        Measure::KvCacheUsage => &[
            "vllm:kv_cache_usage_perc",
            "sglang:token_usage",
            "trtllm_kv_cache_utilization",
            "sweep_mock_kv_cache_usage_ratio",
        ],
        Measure::Preemptions => &["vllm:num_preemptions", "sweep_mock_preemptions"],
        Measure::PrefixCacheHits => {
            &["vllm:prefix_cache_hits", "sweep_mock_prefix_cache_hits", "dynamo_frontend_cached_tokens"]
        }
        Measure::PrefixCacheQueries => &[
            "vllm:prefix_cache_queries",
            "sweep_mock_prefix_cache_queries",
            "dynamo_frontend_input_sequence_tokens",
        ],
        Measure::PrefixCacheHitRate => &["sglang:cache_hit_rate", "trtllm_kv_cache_hit_rate"],
        Measure::TimeToFirstToken => &[
            "vllm:time_to_first_token_seconds",
            "sglang:time_to_first_token_seconds",
            "trtllm_time_to_first_token_seconds",
            "dynamo_frontend_time_to_first_token_seconds",
            "sweep_mock_time_to_first_token_seconds",
        ],
        Measure::InterTokenLatency => &[
            "vllm:inter_token_latency_seconds",
            "sglang:inter_token_latency_seconds",
            "dynamo_frontend_inter_token_latency_seconds",
            "sweep_mock_inter_token_latency_seconds",
        ],
        Measure::OutputTokens => &[
            "vllm:generation_tokens",
            "sglang:generation_tokens",
            "trtllm_generation_tokens",
            "dynamo_frontend_output_tokens",
            "sweep_mock_generation_tokens",
        ],
        Measure::SpecDrafts => &["vllm:spec_decode_num_drafts", "sweep_mock_spec_decode_num_drafts"],
        Measure::SpecDraftTokens => &[
            "vllm:spec_decode_num_draft_tokens",
            "trtllm_spec_decode_num_draft_tokens",
            "sweep_mock_spec_decode_num_draft_tokens",
        ],
        Measure::SpecAcceptedTokens => &[
            "vllm:spec_decode_num_accepted_tokens",
            "trtllm_spec_decode_num_accepted_tokens",
            "sweep_mock_spec_decode_num_accepted_tokens",
        ],
        // SGLang's accept length counts the bonus token, as tokens per step does.
        Measure::SpecAcceptanceLength => {
            &["trtllm_spec_decode_acceptance_length", "sglang:spec_accept_length"]
        }
        Measure::SpecAcceptanceRate => &["sglang:spec_accept_rate"],
    }
}
