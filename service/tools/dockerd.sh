#!/usr/bin/env bash
# Docker for `make image` and the container tests, without systemd or an image registry:
#   dockerd.sh client  print a docker client that builds with BuildKit (DOCKER_BUILDKIT=1): one
#                      with buildx, or a client older than 23.0 (BuildKit built in)
#   dockerd.sh start   start dockerd as a background process unless a daemon already answers;
#                      prints "started" (this call started it) or "running"
#   dockerd.sh stop    stop the dockerd that `start` started (by its pid file), nothing else
# dockerd runs with host networking only (no bridge, no iptables) and keeps its data in
# SLIMRAY_DOCKER_ROOT (default ${XDG_CACHE_HOME:-$HOME/.cache}/slimray/docker), outside the
# checkout, so image layers are reused from run to run. Needs root.
set -euo pipefail
ROOT=${SLIMRAY_DOCKER_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/slimray/docker}
PIDFILE=${SLIMRAY_DOCKERD_PIDFILE:-/run/slimray-dockerd.pid}
LOG=${SLIMRAY_DOCKERD_LOG:-$(dirname "$ROOT")/dockerd.log}

client() {
  local candidate path major
  for candidate in ${DOCKER:-} docker /usr/bin/docker; do
    path=$(command -v "$candidate" 2>/dev/null) || continue
    if "$path" buildx version >/dev/null 2>&1; then echo "$path"; return 0; fi
    major=$("$path" --version 2>/dev/null | sed -n 's/^Docker version \([0-9]*\)\..*/\1/p')
    if [ -n "$major" ] && [ "$major" -lt 23 ]; then echo "$path"; return 0; fi
  done
  echo "dockerd.sh: no docker client that builds with BuildKit (Debian's docker.io has one)" >&2
  return 1
}

answers() { "$1" info >/dev/null 2>&1; }

start() {
  local docker
  docker=$(client)
  if answers "$docker"; then echo running; return 0; fi
  command -v dockerd >/dev/null || { echo "dockerd.sh: dockerd is not installed" >&2; return 1; }
  # a daemon that runs but does not answer (busy, starting) is not ours to replace; a socket
  # left by one that was killed is stale, and dockerd replaces it
  if pgrep -x dockerd >/dev/null; then
    echo "dockerd.sh: a dockerd runs but does not answer; not starting another over it" >&2
    return 1
  fi
  mkdir -p "$ROOT"
  # setsid: the daemon outlives this script and its process group, until `dockerd.sh stop`
  setsid dockerd --data-root "$ROOT" --pidfile "$PIDFILE" --bridge none --iptables=false \
    --ip-forward=false --ip-masq=false >>"$LOG" 2>&1 < /dev/null &
  local pid=$!
  for _ in $(seq 120); do
    if answers "$docker"; then echo started; return 0; fi
    sleep 0.5
  done
  echo "dockerd.sh: dockerd did not answer within 60 s; its log: $LOG" >&2
  tail -n 20 "$LOG" >&2 || true
  kill "$pid" 2>/dev/null || true
  return 1
}

stop() {
  local pid
  [ -s "$PIDFILE" ] || { echo "dockerd.sh: no $PIDFILE: nothing to stop" >&2; return 0; }
  pid=$(cat "$PIDFILE")
  # only a dockerd: after a crash the pid may have been reused by another process
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 60); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.5
  done
  echo "dockerd.sh: dockerd ($pid) still runs 30 s after SIGTERM" >&2
  return 1
}

case "${1:-}" in
  client) client ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 client|start|stop" >&2; exit 2 ;;
esac
