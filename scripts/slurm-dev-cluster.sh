#!/usr/bin/env bash
# A real multi-node SLURM cluster on this one host, for development and the end-to-end tests:
# one slurmctld and one slurmd per simulated node (n1..n4, 4 fake GPUs each), all on loopback.
# Installs slurm-wlm and munge from Debian's packages when missing. Needs root. Idempotent.
#
#   scripts/slurm-dev-cluster.sh start    # install, configure, start; wait until nodes are idle
#   scripts/slurm-dev-cluster.sh status   # exit 0 and list the nodes when the cluster answers
#   scripts/slurm-dev-cluster.sh stop     # stop slurmctld and the slurmd daemons
#
# The recipe: shared/reference/slurm-sim.md (SLURM 22.05 on Debian 12).
set -euo pipefail

nodes=4
gpus=4
marker="# written by sweep's scripts/slurm-dev-cluster.sh"
conf_dir=/etc/slurm
other_user=sweep-other

log() { printf 'slurm-dev-cluster: %s\n' "$*" >&2; }

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
    return
  fi
  log "installing slurm-wlm and munge from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq slurm-wlm munge >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && apt-get install -y -qq slurm-wlm munge >/dev/null; }
}

configure() {
  local host
  host=$(hostname -s)
  mkdir -p "$conf_dir" /var/spool/slurmctld /var/log/slurm /var/lib/fakegpu
  if [ -f "$conf_dir/slurm.conf" ] && ! grep -qF "$marker" "$conf_dir/slurm.conf"; then
    log "error: $conf_dir/slurm.conf exists and was not written by this script; not touching it"
    exit 1
  fi
  local gres=""
  for n in $(seq 1 "$nodes"); do
    mkdir -p "/var/spool/slurmd/n$n"
    for g in $(seq 0 $((gpus - 1))); do touch "/var/lib/fakegpu/n${n}gpu$g"; done
    gres+="NodeName=n$n Name=gpu File=/var/lib/fakegpu/n${n}gpu[0-$((gpus - 1))]"$'\n'
  done
  local before=""
  [ -f "$conf_dir/slurm.conf" ] && before=$(cat "$conf_dir/slurm.conf")
  cat > "$conf_dir/slurm.conf" <<CONF
$marker
ClusterName=local
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd/%n
SlurmdPidFile=/run/slurmd-%n.pid
SlurmdLogFile=/var/log/slurm/slurmd-%n.log
SlurmctldPidFile=/run/slurmctld.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
JobAcctGatherType=jobacct_gather/none
# Reject impossible jobs at submission, as production clusters do, instead of queueing them forever.
EnforcePartLimits=ALL
AccountingStorageType=accounting_storage/none
# Users other than root see only their own jobs, as on many sites: the tests check what
# \`sweep wait\` does on another user's sweep (as $other_user).
PrivateData=jobs
GresTypes=gpu
NodeName=n[1-$nodes] NodeHostname=$host NodeAddr=127.0.0.1 Port=17001-$((17000 + nodes)) CPUs=2 RealMemory=4000 Gres=gpu:$gpus State=UNKNOWN
PartitionName=debug Nodes=n[1-$nodes] Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
CONF
  printf '%s\nAutoDetect=off\n%s' "$marker" "$gres" > "$conf_dir/gres.conf"
  # A controller already running keeps the old settings until told to read them again.
  if [ -n "$before" ] && [ "$before" != "$(cat "$conf_dir/slurm.conf")" ] && cluster_answers; then
    log "slurm.conf changed; reconfiguring the running controller"
    scontrol reconfigure
  fi
  # A second, unprivileged user, to test a sweep as seen by someone who did not submit it.
  id -u "$other_user" >/dev/null 2>&1 \
    || useradd --system --no-create-home --shell /usr/sbin/nologin "$other_user"
  # Simulated nodes share one network namespace; their names must resolve.
  if ! grep -qE '^127\.0\.0\.1[[:space:]].*\bn1\b' /etc/hosts; then
    echo "127.0.0.1 $(seq -f 'n%g' -s ' ' 1 "$nodes")" >> /etc/hosts
  fi
}

start_munge() {
  mkdir -p /run/munge
  chown munge:munge /run/munge
  [ -f /etc/munge/munge.key ] || mungekey --create >/dev/null
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
  # Judge munged by whether a credential round-trips, not by its process: one that is still
  # shutting down has a process but no socket.
  munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
  munge_works && return 0
  for _ in $(seq 20); do pgrep -x munged >/dev/null || break; sleep 0.25; done
  pkill -x munged 2>/dev/null || true
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 40); do munge_works && return 0; sleep 0.25; done
  log "error: munged does not answer"
  exit 1
}

cluster_answers() { timeout 5 sinfo -h >/dev/null 2>&1; }

idle_nodes() { sinfo -h -N -o '%N %t' 2>/dev/null | awk '$2 == "idle" || $2 == "mix" || $2 == "alloc"' | sort -u | wc -l; }

start() {
  install_packages
  configure
  start_munge
  pgrep -x slurmctld >/dev/null || slurmctld
  for n in $(seq 1 "$nodes"); do
    pgrep -f "slurmd -N n$n\$" >/dev/null || slurmd -N "n$n"
  done
  for _ in $(seq 120); do
    if cluster_answers && [ "$(idle_nodes)" -ge "$nodes" ]; then
      log "up: $nodes nodes × $gpus GPUs"
      return 0
    fi
    sleep 0.5
  done
  log "error: the nodes did not become idle within 60 s"
  sinfo -N >&2 || true
  tail -n 20 /var/log/slurm/slurmctld.log >&2 || true
  exit 1
}

stop() {
  if cluster_answers; then
    scontrol shutdown >/dev/null 2>&1 || true
  fi
  for _ in $(seq 40); do
    pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || { log "stopped"; return 0; }
    sleep 0.25
  done
  pkill -x slurmd || true
  pkill -x slurmctld || true
  log "stopped (forced)"
}

status() {
  if command -v sinfo >/dev/null && cluster_answers; then
    sinfo -N
    return 0
  fi
  log "not running"
  return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
