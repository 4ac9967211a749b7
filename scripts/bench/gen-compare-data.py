#!/usr/bin/env python3
"""Writes a sweep folder as if the local executor had measured every point of its plan.

`sweep render SPEC -o DIR` lays out the folder (plan, manifest, job folders); this fills each
planned point's folder with what the runner writes for a finished point: `point.json`,
`status.json` (done) and an aiperf-style `profile_export_aiperf.json`. The figures come from
TEMPLATE (a real point's summary) scaled per configuration, with seeded noise per repetition,
so two folders written with different seeds are an A/A pair. Used by scripts/bench/compare.sh.

Usage: gen-compare-data.py DIR TEMPLATE SEED [SLOWDOWN]
"""
import json
import os
import random
import sys

LATENCY = ("time_to_first_token", "inter_token_latency", "request_latency", "time_to_second_token")
THROUGHPUT = ("output_token_throughput", "request_throughput", "output_token_throughput_per_user")


def main():
    out, template_path, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    slowdown = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
    rng = random.Random(seed)
    template = json.load(open(template_path))
    plan = json.load(open(os.path.join(out, "plan.json")))
    written = 0
    for job in plan["jobs"]:
        batch = job["roles"][0].get("batch", 1)
        tp = job["roles"][0].get("tp", 1)
        for p in job["points"]:
            conc = p["effective_concurrency"]
            # A configuration's shape: throughput rises with load to its batch, latency with it.
            load = min(conc, batch)
            speed = load * (1.0 + 0.1 * tp) / slowdown * rng.gauss(1.0, 0.01)
            delay = slowdown * (1.0 + conc / max(batch, 1)) * rng.gauss(1.0, 0.01)
            summary = json.loads(json.dumps(template))
            summary["job"], summary["point"] = job["name"], p["id"]
            for key, metric in summary.items():
                if not isinstance(metric, dict):
                    continue
                factor = speed if key in THROUGHPUT else delay if key in LATENCY else None
                if factor is None:
                    continue
                for stat, value in list(metric.items()):
                    if isinstance(value, (int, float)) and stat not in ("count",):
                        metric[stat] = value * factor
            phases = summary.get("input_config", {}).get("phases") or []
            for phase in phases:
                if phase.get("kind") == "profiling" or phase.get("name") == "profiling":
                    phase["concurrency"] = conc
            folder = os.path.join(out, "jobs", job["name"], "points", p["id"])
            os.makedirs(folder, exist_ok=True)
            point = {"format": 3, "written_by": "sweep 0.3.0"}
            point.update(p)
            with open(os.path.join(folder, "point.json"), "w") as f:
                json.dump(point, f)
            status = {"format": 3, "written_by": "sweep 0.3.0", "point": p["id"], "job": job["name"],
                      "state": "done", "reason": "generated", "started_at": 0.0, "ended_at": 1.0}
            with open(os.path.join(folder, "status.json"), "w") as f:
                json.dump(status, f)
            with open(os.path.join(folder, "profile_export_aiperf.json"), "w") as f:
                json.dump(summary, f)
            written += 1
    print(f"{out}: {written} points", file=sys.stderr)


if __name__ == "__main__":
    main()
