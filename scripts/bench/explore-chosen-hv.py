#!/usr/bin/env python3
"""The share of a grid's hypervolume that the (job, load) points an exploration chose to measure
hold, read from the grid's own measurements: whether `sweep explore` chose the right
deployments and loads, apart from the noise between its measurements and the grid's (issue 38,
scripts/bench/explore.sh).
Usage: explore-chosen-hv.py GRID_RESULTS_CSV EXPLORE_JSON"""
import csv
import json
import sys


def hypervolume(points):
    # 2-D maximisation against (0, 0): by x descending, each point raising the best y adds x * dy.
    area, best = 0.0, 0.0
    for x, y in sorted(points, key=lambda p: -p[0]):
        if y > best:
            area += x * (y - best)
            best = y
    return area


rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["state"] == "done" and not r.get("invalid_reason")]
log = json.load(open(sys.argv[2]))
chosen = {
    (d["job"], float(load))
    for w in log["waves"]
    for d in w["decisions"]
    if d["choice"] == "chosen"
    for load in d["measure"]
}
point = lambda r: (float(r["tps_per_user"]), float(r["tps_per_gpu_working"]))
grid = hypervolume([point(r) for r in rows])
mine = hypervolume([point(r) for r in rows if (r["job"], float(r["effective_concurrency"])) in chosen])
print(f"{mine / grid:.4f}")
