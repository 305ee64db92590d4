#!/usr/bin/env bash
# A SLURM cluster on this machine, for trying and testing the SLURM path (submitit launcher and
# slurm/sweep.sbatch) without a real cluster: one node by default, or N nodes, each its own slurmd
# (own node name, port, spool and log) on this one host, so a multi-node job runs as on N machines.
#
#   slurm/local-cluster.sh start [--nodes N]   install packages if missing, start munged, slurmctld and
#                                              one slurmd per node (N=1, the default: the node is
#                                              `hostname -s`; N>1: node1..nodeN)
#   slurm/local-cluster.sh stop     cancel jobs, stop the daemons this script started
#   slurm/local-cluster.sh status   exit 0 when every node answers, 3 when not
#   slurm/local-cluster.sh env      print the exports for client commands (SLURM_CONF, PATH with the
#                                   sacct stand-in, MASTER_ADDR); use: eval "$(slurm/local-cluster.sh env)"
#
# Environment:
#   OPTREPRO_SLURM_DIR  state folder (config, logs, spool, pid files); default <repo>/.slurm-local
#   OPTREPRO_NO_APT=1   never run apt-get; fail with the install command instead
#
# Needs root: slurmd must be able to start jobs as any user.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="${OPTREPRO_SLURM_DIR:-$REPO_ROOT/.slurm-local}"
CONF="$STATE_DIR/slurm.conf"
PACKAGES=(slurmctld slurmd slurm-client munge)
START_TIMEOUT_S=30
SLURMCTLD_PORT=6817
FIRST_SLURMD_PORT=6818  # node i (from 1) listens on FIRST_SLURMD_PORT + i - 1

die() { echo "local-cluster: $*" >&2; exit 1; }

# slurmctld and slurmd live in /usr/sbin, which a non-login root shell may lack.
export PATH="$PATH:/usr/sbin:/sbin"
export SLURM_CONF="$CONF"

install_packages() {
  local missing=0
  for bin in slurmctld slurmd sbatch munged; do
    command -v "$bin" >/dev/null || missing=1
  done
  [[ $missing == 0 ]] && return
  if [[ "${OPTREPRO_NO_APT:-0}" == 1 ]]; then
    die "SLURM binaries are missing and OPTREPRO_NO_APT=1 forbids installing them.
Install them with: apt-get update && apt-get install -y ${PACKAGES[*]}"
  fi
  echo "local-cluster: installing ${PACKAGES[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
}

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
  munge_works && return
  if [[ ! -s /etc/munge/munge.key ]]; then
    mkdir -p /etc/munge
    mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key 2>/dev/null || true
    chmod 0400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge
  # --force: munged refuses to start as root or with a log file it does not own otherwise.
  munged --force 2>/dev/null
  touch "$STATE_DIR/munged.ours"  # so `stop` ends only a munged that this script started
  for _ in $(seq 20); do munge_works && return; sleep 0.5; done
  die "munged started but 'munge -n | unmunge' still fails; see /var/log/munge/munged.log"
}

node_names() {  # $1 = node count; a one-node cluster keeps the host's name, as on a single machine
  if [[ $1 == 1 ]]; then hostname -s; else seq -f "node%g" 1 "$1"; fi
}

write_conf() {  # $1 = node count
  local host cpus mem_mb names name port=$FIRST_SLURMD_PORT
  host="$(hostname -s)"
  cpus="$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)"  # nproc obeys these: OMP_NUM_THREADS=1 would give 1
  # Leave 10% of the memory to the OS: slurmd marks a node invalid that reports less than RealMemory.
  mem_mb=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
  names="$(node_names "$1")"
  mkdir -p "$STATE_DIR/state"
  for name in $names; do mkdir -p "$STATE_DIR/spool/$name"; done
  # No accounting database; slurm/local-bin/sacct answers submitit from squeue instead, and
  # MinJobAge keeps finished jobs in squeue for a day so it can (see slurm/README.md).
  # NodeAddr/SlurmctldHost 127.0.0.1: works on machines whose hostname does not resolve.
  # %n in the slurmd paths is the node name: each `slurmd -N <node>` keeps its own pid, spool and log.
  # Every node is this machine: each advertises all its CPUs and 90% of its memory (they share them).
  {
    cat <<EOF
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$SLURMCTLD_PORT
AuthType=auth/munge
SlurmUser=root
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# Reject impossible requests at submission instead of leaving them pending forever.
EnforcePartLimits=ALL
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=86400
# submitit jobs ignore SIGTERM; a short wait keeps scancel (and the tests) from idling 30 s.
KillWait=5
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd-%n.pid
SlurmdSpoolDir=$STATE_DIR/spool/%n
StateSaveLocation=$STATE_DIR/state
SlurmctldLogFile=$STATE_DIR/slurmctld.log
SlurmdLogFile=$STATE_DIR/slurmd-%n.log
EOF
    for name in $names; do
      echo "NodeName=$name NodeHostname=$host NodeAddr=127.0.0.1 Port=$port CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN"
      port=$((port + 1))
    done
    echo "PartitionName=debug Nodes=$(echo $names | tr ' ' ',') Default=YES MaxTime=INFINITE State=UP"
  } >"$CONF"
}

configured_nodes() { [[ -s $CONF ]] && awk -F'[= ]' '/^NodeName=/ {print $2}' "$CONF"; }

pid_alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

slurmctld_running() { pid_alive "$STATE_DIR/slurmctld.pid"; }

slurmd_running() { pid_alive "$STATE_DIR/slurmd-$1.pid"; }  # $1 = node name

daemons_running() {  # slurmctld and the slurmd of every configured node
  local nodes name
  nodes="$(configured_nodes)" || return 1
  slurmctld_running || return 1
  for name in $nodes; do slurmd_running "$name" || return 1; done
}

node_states() { sinfo --noheader --Node --format="%N=%T" 2>/dev/null | sort -u || true; }

# How many nodes accept work (idle, mixed or allocated).
ready_nodes() { node_states | grep -cE '=(idle|mixed|allocated)$' || true; }

show_logs() {
  local log
  for log in "$STATE_DIR"/slurmctld.log "$STATE_DIR"/slurmd-*.log; do
    echo "--- last lines of $log" >&2
    tail -n 15 "$log" >&2 2>/dev/null || echo "(missing)" >&2
  done
}

wait_for_idle() {
  local count problem
  count="$(configured_nodes | wc -l)"
  for _ in $(seq $((START_TIMEOUT_S * 2))); do
    # Check our own daemons too: another cluster on the same ports would answer sinfo.
    if ! daemons_running; then problem="a daemon of this cluster is not running"
    elif [[ $(ready_nodes) == "$count" ]]; then return
    else problem="not all $count nodes idle: $(node_states | tr '\n' ' ')"
    fi
    sleep 0.5
  done
  show_logs
  die "cluster not ready after ${START_TIMEOUT_S}s: $problem.
Fix the cause shown in the logs above (e.g. another SLURM using ports $SLURMCTLD_PORT-$((FIRST_SLURMD_PORT + count - 1))), then run: $0 stop && $0 start --nodes $count"
}

# Several slurmd on one host need a SLURM built with --enable-multiple-slurmd (Debian's is).
multiple_slurmd_built() {
  local answer=""
  for _ in $(seq $((START_TIMEOUT_S * 2))); do
    answer="$(scontrol show config 2>/dev/null | awk '$1 == "MULTIPLE_SLURMD" {print $3}')" || true
    [[ -n $answer ]] && break
    sleep 0.5
  done
  [[ $answer == Yes ]]
}

cmd_start() {  # $@ = [--nodes N]
  local count="" running
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --nodes) [[ $# -ge 2 ]] || die "--nodes needs a number, e.g. $0 start --nodes 2"; count="$2"; shift 2 ;;
      *) die "unknown start option '$1'; usage: $0 start [--nodes N]" ;;
    esac
  done
  [[ -z $count || $count =~ ^[1-9][0-9]*$ ]] || die "--nodes takes a whole number >= 1, not '$count'"
  [[ $(id -u) == 0 ]] || die "start needs root (slurmd runs jobs as their user); run: sudo $0 start"
  install_packages
  mkdir -p "$STATE_DIR"
  if daemons_running; then
    running="$(configured_nodes | wc -l)"
    [[ -z $count || $count == "$running" ]] ||
      die "already running with $running node(s), not $count; run: $0 stop && $0 start --nodes $count"
    wait_for_idle
    echo "local-cluster: already running, $running node(s) ($CONF)" >&2
    return
  fi
  cmd_stop 2>/dev/null  # what a partial start left would hold the ports
  start_munge
  write_conf "${count:-1}"
  slurmctld -f "$CONF"
  if [[ ${count:-1} -gt 1 ]] && ! multiple_slurmd_built; then
    cmd_stop 2>/dev/null
    die "this SLURM runs one slurmd per host ('scontrol show config' lacks MULTIPLE_SLURMD = Yes), so --nodes $count cannot work here; use a SLURM built with --enable-multiple-slurmd (Debian's packages are), or start with one node"
  fi
  for name in $(configured_nodes); do slurmd -f "$CONF" -N "$name"; done
  wait_for_idle
  echo "local-cluster: up, idle node(s) $(configured_nodes | tr '\n' ' ')in partition debug ($CONF)" >&2
}

stop_daemon() {  # $1 = its pid file
  pid_alive "$1" || return 0
  local pid
  pid="$(cat "$1")"
  kill "$pid"
  for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
}

cmd_stop() {
  local pid_file jobs
  if slurmctld_running; then
    # Cancel first so no job step outlives the daemons that would have reaped it.
    jobs="$(squeue --noheader --format=%A 2>/dev/null || true)"
    [[ -n $jobs ]] && scancel $jobs 2>/dev/null || true
  fi
  for pid_file in "$STATE_DIR"/slurmd-*.pid; do stop_daemon "$pid_file"; done
  stop_daemon "$STATE_DIR/slurmctld.pid"
  if [[ -e $STATE_DIR/munged.ours ]]; then
    [[ -s /run/munge/munged.pid ]] && kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
    rm -f "$STATE_DIR/munged.ours"
  fi
  echo "local-cluster: stopped" >&2
}

cmd_status() {
  if daemons_running && [[ $(ready_nodes) == "$(configured_nodes | wc -l)" ]]; then
    sinfo
    return 0
  fi
  echo "local-cluster: not running (state folder $STATE_DIR)" >&2
  return 3
}

case "${1:-}" in
  start) shift; cmd_start "$@" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env)
    echo "export SLURM_CONF=$CONF"
    echo "export PATH=$REPO_ROOT/slurm/local-bin:\$PATH"
    # Node names are not host names here: a multi-node job (Lightning under SLURM, torchrun) meets at
    # rank 0's address, which for every node of this cluster is this machine.
    echo "export MASTER_ADDR=127.0.0.1"
    ;;
  *) die "usage: $0 {start [--nodes N]|stop|status|env}" ;;
esac
