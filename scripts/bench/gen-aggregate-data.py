#!/usr/bin/env python3
"""Writes a synthetic sweep of aiperf-format exports for the aggregation benchmark.

Layout (Dynamo's, which both `sweep aggregate` and `aiperf plot` read):
  OUT/agg-bm-<isl>-<osl>/agg1_tep<tp>_batch<b>_eplb0_mtp0/aiperf_artifacts/
      deployment_config.json
      concurrency_<C>/profile_export.jsonl          one line per request, as sweep-runner writes
      concurrency_<C>/profile_export_aiperf.json    the summary computed from those lines

Records have the runner's shape (aiperf's keys; `inter_chunk_latency` holds OSL-1 gaps), with
warm-up lines the aggregator must leave out. Values come from a seeded generator, so two runs
with the same arguments write the same bytes. Only the standard library is used.
"""

import argparse
import json
import os
import random


def percentile(sorted_values, p):
    """numpy's default (linear interpolation between ranks)."""
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def distribution(values, unit):
    v = sorted(values)
    n = len(v)
    mean = sum(v) / n
    std = (sum((x - mean) ** 2 for x in v) / n) ** 0.5
    out = {"unit": unit, "avg": mean, "min": v[0], "max": v[-1], "std": std, "count": n, "sum": sum(v)}
    for p in (1, 5, 10, 25, 50, 75, 90, 95, 99):
        out[f"p{p}"] = percentile(v, p)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--points", type=int, default=2000)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--isl", type=int, default=1024)
    ap.add_argument("--osl", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    concurrencies = [1, 2, 4, 8, 16, 32, 64, 128]
    configs = -(-args.points // len(concurrencies))
    # A pool of gap lists: formatting 63 floats per line would dominate the generator's time,
    # while the aggregator parses every line's list in full either way.
    pool = [
        "[" + ",".join(f"{rng.uniform(4.0, 9.0):.6f}" for _ in range(args.osl - 1)) + "]" for _ in range(64)
    ]
    bench = os.path.join(args.out, f"agg-bm-{args.isl}-{args.osl}")
    written = 0
    for k in range(configs):
        tp = [1, 2, 4, 8][k % 4]
        batch = 8 * (1 + k // 4)
        config = os.path.join(bench, f"agg1_tep{tp}_batch{batch}_eplb0_mtp0", "aiperf_artifacts")
        os.makedirs(config, exist_ok=True)
        with open(os.path.join(config, "deployment_config.json"), "w") as f:
            json.dump({"kind": "agg", "model": "synthetic", "total_gpus": tp}, f)
        for c in concurrencies:
            if written == args.points:
                break
            written += 1
            point = os.path.join(config, f"concurrency_{c}")
            os.makedirs(point, exist_ok=True)
            t0 = 1_795_000_000_000_000_000 + written * 1_000_000_000_000
            itl_base = 5.0 + 0.05 * c / tp
            lines = []
            ttfts, itls, lats, tpus = [], [], [], []
            first_start, last_end = None, None
            for i in range(args.warmup + args.requests):
                phase = "warmup" if i < args.warmup else "profiling"
                start = t0 + i * 2_000_000 // max(1, c)
                ttft = rng.uniform(20.0, 40.0) * (1 + c / 64)
                itl = itl_base * rng.uniform(0.95, 1.05)
                latency = ttft + itl * (args.osl - 1)
                end = start + int(latency * 1e6)
                lines.append(
                    '{"metadata":{"session_num":%d,"x_request_id":"bench-%d-%d","turn_index":0,'
                    '"credit_issued_ns":%d,"request_start_ns":%d,"request_end_ns":%d,'
                    '"worker_id":"bench","benchmark_phase":"%s","was_cancelled":false,'
                    '"token_source":"server_usage"},"metrics":{"request_latency":{"value":%.6f,"unit":"ms"},'
                    '"time_to_first_token":{"value":%.6f,"unit":"ms"},'
                    '"inter_token_latency":{"value":%.9f,"unit":"ms"},'
                    '"output_token_throughput_per_user":{"value":%.9f,"unit":"tokens/sec/user"},'
                    '"inter_chunk_latency":{"value":%s,"unit":"ms"},'
                    '"output_sequence_length":{"value":%d.0,"unit":"tokens"},'
                    '"input_sequence_length":{"value":%d.0,"unit":"tokens"},'
                    '"credit_to_start_latency":{"value":0.010000,"unit":"ms"}},"error":null}\n'
                    % (i, written, i, start, start, end, phase, latency, ttft, itl, 1000.0 / itl,
                       pool[i % len(pool)], args.osl, args.isl)
                )
                if phase == "profiling":
                    ttfts.append(ttft)
                    itls.append(itl)
                    lats.append(latency)
                    tpus.append(1000.0 / itl)
                    first_start = start if first_start is None else min(first_start, start)
                    last_end = end if last_end is None else max(last_end, end)
            with open(os.path.join(point, "profile_export.jsonl"), "w") as f:
                f.writelines(lines)
            duration = (last_end - first_start) / 1e9
            n = args.requests
            summary = {
                "schema_version": "1.4",
                "generator": {"name": "gen-aggregate-data", "version": "1"},
                "request_count": {"unit": "requests", "avg": float(n)},
                "error_request_count": {"unit": "requests", "avg": 0.0},
                "benchmark_duration": {"unit": "sec", "avg": duration},
                "request_throughput": {"unit": "requests/sec", "avg": n / duration},
                "output_token_throughput": {"unit": "tokens/sec", "avg": n * args.osl / duration},
                "total_token_throughput": {"unit": "tokens/sec", "avg": n * (args.isl + args.osl) / duration},
                "time_to_first_token": distribution(ttfts, "ms"),
                "inter_token_latency": distribution(itls, "ms"),
                "request_latency": distribution(lats, "ms"),
                "output_token_throughput_per_user": distribution(tpus, "tokens/sec/user"),
                "output_sequence_length": distribution([float(args.osl)] * n, "tokens"),
                "input_sequence_length": distribution([float(args.isl)] * n, "tokens"),
                "error_summary": [],
                "was_cancelled": False,
                "is_complete": True,
                "input_config": {
                    "models": {"items": [{"name": "synthetic"}]},
                    "endpoint": {"type": "chat", "streaming": True, "path": "/v1/chat/completions"},
                    "datasets": [{"name": "main", "type": "synthetic",
                                  "prompts": {"isl": {"mean": args.isl, "stddev": 0.0},
                                              "osl": {"mean": args.osl, "stddev": 0.0}}}],
                    "phases": [{"name": "warmup", "kind": "warmup", "type": "concurrency",
                                "requests": args.warmup, "concurrency": c},
                               {"name": "profiling", "kind": "profiling", "type": "concurrency",
                                "requests": n, "concurrency": c}],
                },
            }
            with open(os.path.join(point, "profile_export_aiperf.json"), "w") as f:
                json.dump(summary, f)
    print(f"{written} points × {args.requests} requests (+{args.warmup} warm-up) in {args.out}")


if __name__ == "__main__":
    main()
