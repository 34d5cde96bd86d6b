#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for mixlab's datatrove pipelines and tests.
#
#   pipelines/engines/slurm.sh start|stop|status|env [DIR]
#
# Contract:
# - DIR (argument, else $MIXLAB_SLURM_DIR, else /tmp/mixlab-slurm) holds everything this script writes:
#   slurm.conf, state/, spool/, pid and log files, and `started-munged` when it started munged itself.
# - start is idempotent: it installs `slurm-wlm munge` with apt-get when slurmctld is missing, starts munged
#   (unless a working one answers), slurmctld and slurmd (unless their pid files name live processes), then
#   waits (at most $MIXLAB_SLURM_TIMEOUT seconds, default 60) until `sinfo` reports the node idle. The
#   partition is `debug`. Clients find the cluster through SLURM_CONF=DIR/slurm.conf (`eval "$(slurm.sh env)"`);
#   /etc/slurm/slurm.conf is linked to it when that file does not exist, so plain `sinfo`/`sbatch` work too.
# - stop cancels every job, ends the daemons this script started (by their pid files) and removes the
#   /etc/slurm/slurm.conf link when it points here. status prints the daemons and `sinfo`; exit 0 iff idle/up.
# - On failure it prints ONE line saying what went wrong and what to do, and exits non-zero.
# Needs root (daemons, apt-get). Debian/Ubuntu (slurm-wlm 22.05 checked); no systemd needed.
set -u

CMD="${1:-status}"
DIR="${2:-${MIXLAB_SLURM_DIR:-/tmp/mixlab-slurm}}"
TIMEOUT="${MIXLAB_SLURM_TIMEOUT:-60}"
CONF="$DIR/slurm.conf"
ETC_CONF=/etc/slurm/slurm.conf
export SLURM_CONF="$CONF"

fail() { echo "slurm.sh: $*" >&2; exit 1; }

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

munge_ok() { command -v munge >/dev/null && munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

node_state() { timeout 10 sinfo -h -o %T 2>/dev/null | head -1; }

install_slurm() {
  command -v slurmctld >/dev/null && command -v munged >/dev/null && return 0
  command -v apt-get >/dev/null || fail "slurmctld is not installed and apt-get is missing: install Slurm (slurm-wlm) and munge with your package manager, then rerun"
  echo "slurm.sh: installing slurm-wlm and munge with apt-get" >&2
  { timeout 600 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq slurm-wlm munge; } \
    >"$DIR/apt.log" 2>&1 || fail "apt-get install slurm-wlm munge failed (see $DIR/apt.log): check network access to the Debian mirror, or install them by hand"
}

write_conf() {
  local host cpus mem
  host="$(hostname -s)"
  cpus="$(nproc)"
  # ~80% of the memory available now: asking more than RealMemory fails at sbatch, so stay below it
  mem="$(awk '/MemAvailable/ {printf "%d", $2 / 1024 * 0.8}' /proc/meminfo)"
  mkdir -p "$DIR/state" "$DIR/spool"
  cat >"$CONF" <<EOF
# written by mixlab pipelines/engines/slurm.sh: a one-node cluster, no accounting, no cgroups
ClusterName=mixlab
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
DependencyParameters=kill_invalid_depend
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

link_etc_conf() {
  if [ ! -e "$ETC_CONF" ] && [ ! -L "$ETC_CONF" ]; then
    mkdir -p /etc/slurm && ln -s "$CONF" "$ETC_CONF"
  fi
}

start() {
  [ "$(id -u)" = 0 ] || fail "start needs root (it starts munged, slurmctld and slurmd): rerun with sudo"
  mkdir -p "$DIR"
  install_slurm
  if alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid" && [ "$(node_state)" = idle ]; then
    echo "slurm.sh: already running (partition debug, SLURM_CONF=$CONF)"
    return 0
  fi
  [ -s "$CONF" ] || write_conf
  link_etc_conf

  if ! munge_ok; then
    [ -s /etc/munge/munge.key ] || { mungekey --create >/dev/null 2>&1 && chown munge:munge /etc/munge/munge.key; } \
      || fail "no /etc/munge/munge.key and mungekey failed: reinstall munge (apt-get install --reinstall munge)"
    mkdir -p /run/munge && chown munge:munge /run/munge
    su -s /bin/sh munge -c /usr/sbin/munged >"$DIR/munged.out" 2>&1 \
      || fail "munged did not start ($(tail -1 "$DIR/munged.out")): check /etc/munge/munge.key ownership (munge:munge, mode 400)"
    touch "$DIR/started-munged"
    for _ in $(seq 1 20); do munge_ok && break; sleep 0.25; done
    munge_ok || fail "munged started but munge -n | unmunge fails: see /var/log/munge/munged.log"
  fi

  # -c: cold start, forget jobs of an earlier cluster in this DIR; both daemons fork and write their pid files
  alive "$DIR/slurmctld.pid" || slurmctld -c -f "$CONF" >>"$DIR/slurmctld.out" 2>&1 \
    || fail "slurmctld did not start: see $DIR/slurmctld.log and $DIR/slurmctld.out"
  alive "$DIR/slurmd.pid" || slurmd -f "$CONF" >>"$DIR/slurmd.out" 2>&1 \
    || fail "slurmd did not start: see $DIR/slurmd.log and $DIR/slurmd.out"

  local waited=0 state=""
  while [ "$waited" -lt "$((TIMEOUT * 4))" ]; do
    state="$(node_state)"
    case "$state" in idle|mixed|allocated) break ;; esac
    sleep 0.25
    waited=$((waited + 1))
  done
  case "$state" in
    idle|mixed|allocated) echo "slurm.sh: up (node $(hostname -s) $state, partition debug); clients: export SLURM_CONF=$CONF" ;;
    *) fail "node not idle after ${TIMEOUT}s (state '${state:-none}'): see $DIR/slurmctld.log and $DIR/slurmd.log, then '$0 stop $DIR' and retry" ;;
  esac
}

stop_pid() {
  local f="$1" pid
  alive "$f" || { rm -f "$f"; return 0; }
  pid="$(cat "$f")"
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  rm -f "$f"
}

stop() {
  if alive "$DIR/slurmctld.pid"; then
    timeout 10 scancel --full -u "$(id -un)" 2>/dev/null
    timeout 10 scancel --full --state=PENDING 2>/dev/null
  fi
  stop_pid "$DIR/slurmd.pid"
  stop_pid "$DIR/slurmctld.pid"
  if [ -e "$DIR/started-munged" ]; then
    stop_pid /run/munge/munged.pid
    rm -f "$DIR/started-munged"
  fi
  if [ -L "$ETC_CONF" ] && [ "$(readlink "$ETC_CONF")" = "$CONF" ]; then rm -f "$ETC_CONF"; fi
  echo "slurm.sh: stopped"
}

status() {
  local ok=0
  for d in slurmctld slurmd; do
    if alive "$DIR/$d.pid"; then echo "$d: running (pid $(cat "$DIR/$d.pid"))"; else echo "$d: stopped"; ok=1; fi
  done
  if munge_ok; then echo "munged: running"; else echo "munged: not answering"; ok=1; fi
  [ "$ok" = 0 ] && timeout 10 sinfo
  return "$ok"
}

case "$CMD" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) fail "unknown command '$CMD': use start|stop|status|env [DIR]" ;;
esac
