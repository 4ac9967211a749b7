#!/usr/bin/env python3
"""A stand-in for NVIDIA's dcgm-exporter, for tests and benchmarks on machines without GPUs.

Serves `GET /metrics` on 127.0.0.1:PORT (0 picks a free one, printed on stdout as `port N`) in
dcgm-exporter's default exposition: DCGM_FI_DEV_POWER_USAGE, DCGM_FI_DEV_GPU_UTIL,
DCGM_FI_DEV_FB_USED and DCGM_FI_DEV_SM_CLOCK for STANDIN_GPUS GPUs (default 8), each drawing
STANDIN_WATTS (default 700) at 100 % utilisation.

    python3 scripts/bench/dcgm-exporter-standin.py 0
"""

import http.server
import os
import sys

GPUS = int(os.environ.get("STANDIN_GPUS", "8"))
WATTS = float(os.environ.get("STANDIN_WATTS", "700"))


def exposition():
    fields = [
        ("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz).", 1980),
        ("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", WATTS),
        ("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", 100),
        ("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", 70000),
    ]
    lines = []
    for name, help_text, value in fields:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        for gpu in range(GPUS):
            labels = f'gpu="{gpu}",UUID="GPU-standin-{gpu}",device="nvidia{gpu}",modelName="stand-in",Hostname="standin"'
            lines.append(f"{name}{{{labels}}} {value}")
    return ("\n".join(lines) + "\n").encode()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/metrics":
            self.send_error(404)
            return
        body = exposition()
        self.send_response(200)
        self.send_header("content-type", "text/plain; version=0.0.4")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
