#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for trying and testing the SLURM path
# (submitit launcher and slurm/sweep.sbatch) without a real cluster.
#
#   slurm/local-cluster.sh start    install packages if missing, start munged, slurmctld, slurmd
#   slurm/local-cluster.sh stop     cancel jobs, stop the daemons this script started
#   slurm/local-cluster.sh status   exit 0 when the node answers, 3 when it does not
#   slurm/local-cluster.sh env      print the exports for client commands (SLURM_CONF, PATH with the
#                                   sacct stand-in); use: eval "$(slurm/local-cluster.sh env)"
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

write_conf() {
  local host cpus mem_mb
  host="$(hostname -s)"
  cpus="$(nproc)"
  # Leave 10% of the memory to the OS: slurmd marks a node invalid that reports less than RealMemory.
  mem_mb=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
  mkdir -p "$STATE_DIR/spool" "$STATE_DIR/state"
  # No accounting database; slurm/local-bin/sacct answers submitit from squeue instead, and
  # MinJobAge keeps finished jobs in squeue for a day so it can (see slurm/README.md).
  # NodeAddr/SlurmctldHost 127.0.0.1: works on machines whose hostname does not resolve.
  cat >"$CONF" <<EOF
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
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
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmdSpoolDir=$STATE_DIR/spool
StateSaveLocation=$STATE_DIR/state
SlurmctldLogFile=$STATE_DIR/slurmctld.log
SlurmdLogFile=$STATE_DIR/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

daemon_running() {  # $1 = slurmctld | slurmd
  local pid_file="$STATE_DIR/$1.pid"
  [[ -s $pid_file ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

node_state() { sinfo --noheader --Node --format=%T 2>/dev/null | head -n1; }

show_logs() {
  for log in slurmctld.log slurmd.log; do
    echo "--- last lines of $STATE_DIR/$log" >&2
    tail -n 15 "$STATE_DIR/$log" >&2 2>/dev/null || echo "(missing)" >&2
  done
}

wait_for_idle() {
  local state problem=""
  for _ in $(seq $((START_TIMEOUT_S * 2))); do
    state="$(node_state)"
    # Check our own daemons too: another cluster on the same ports would answer sinfo.
    if ! daemon_running slurmctld; then problem="slurmctld is not running"
    elif ! daemon_running slurmd; then problem="slurmd is not running"
    elif [[ $state == idle || $state == mixed || $state == allocated ]]; then return
    else problem="node state is '${state:-no answer}', not idle"
    fi
    sleep 0.5
  done
  show_logs
  die "cluster not ready after ${START_TIMEOUT_S}s: $problem.
Fix the cause shown in the logs above (e.g. another SLURM using ports 6817/6818), then run: $0 stop && $0 start"
}

cmd_start() {
  [[ $(id -u) == 0 ]] || die "start needs root (slurmd runs jobs as their user); run: sudo $0 start"
  install_packages
  mkdir -p "$STATE_DIR"
  if daemon_running slurmctld && daemon_running slurmd; then
    wait_for_idle
    echo "local-cluster: already running ($CONF)" >&2
    return
  fi
  start_munge
  write_conf
  daemon_running slurmctld || slurmctld -f "$CONF"
  daemon_running slurmd || slurmd -f "$CONF"
  wait_for_idle
  echo "local-cluster: up, node $(hostname -s) idle, partition debug ($CONF)" >&2
}

stop_daemon() {  # $1 = slurmctld | slurmd
  daemon_running "$1" || return 0
  local pid
  pid="$(cat "$STATE_DIR/$1.pid")"
  kill "$pid"
  for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
}

cmd_stop() {
  if daemon_running slurmctld; then
    # Cancel first so no job step outlives the daemons that would have reaped it.
    local jobs
    jobs="$(squeue --noheader --format=%A 2>/dev/null || true)"
    [[ -n $jobs ]] && scancel $jobs 2>/dev/null || true
  fi
  stop_daemon slurmd
  stop_daemon slurmctld
  if [[ -e $STATE_DIR/munged.ours ]]; then
    [[ -s /run/munge/munged.pid ]] && kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
    rm -f "$STATE_DIR/munged.ours"
  fi
  echo "local-cluster: stopped" >&2
}

cmd_status() {
  if daemon_running slurmctld && daemon_running slurmd && [[ -n $(node_state) ]]; then
    sinfo
    return 0
  fi
  echo "local-cluster: not running (state folder $STATE_DIR)" >&2
  return 3
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env)
    echo "export SLURM_CONF=$CONF"
    echo "export PATH=$REPO_ROOT/slurm/local-bin:\$PATH"
    ;;
  *) die "usage: $0 {start|stop|status|env}" ;;
esac
