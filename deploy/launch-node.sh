#!/usr/bin/env bash
# Starts rami on one node: one rami-worker per GPU (pinned with CUDA_VISIBLE_DEVICES) or per
# CPU worker, K/T tensor-parallel groups of T ranks, and a rami-coordinator over all groups;
# waits until the API is healthy, prints where it listens, and stops everything on
# Ctrl-C / SIGTERM (coordinator first so that it drains its jobs, then the workers; each
# process runs in its own process group, so nothing is left behind). Logs, port files and
# pid files go to --logs. docs/deploy.md has the details.
#
#   deploy/launch-node.sh --model DIR [--gpus K | --cpu-workers K] [--tp T] [--port 50051]
#       [--http-port 8000] [--host 127.0.0.1] [--worker-port-base 0] [--gpu-memory-utilization U] [--dtype bf16|fp32]
#       [--policy P] [--kv-bytes N] [--page-size N] [--logs DIR|-] [--build DIR]
#       [--role all|workers] [--coordinator-args "..."] [--worker-args "..."] [--drain-timeout S]
#       [--api-keys-file FILE] [--tls-dir DIR] [--auth-token-file F] [--model-roots DIR[,DIR...]]
#       [--dry-run] [-- command ...]                        (--flag=value works too)
#
# --role all (default): workers + coordinator. --role workers: only the K workers, on
# --host ports base..base+K-1 (a Kubernetes worker pod: its pod IP; 0.0.0.0 only if said);
# no --model needed, but --host, --auth-token-file and --model-roots are.
# --auth-token-file: the secret the workers obey (their --auth_token_file, the coordinator's
# --worker_auth_token_file); --role all without one writes a random one (mode 0600) to
# the logs folder. --model-roots: where the workers may load models (default: --model).
# --http-port: the OpenAI-compatible HTTP API and /metrics (0 = off; with --port 0, any free
# port). With a command after `--`: runs it once the API serves (RAMI_SERVER=host:port and
# RAMI_HTTP=http://host:port in its environment), then stops everything and exits with the
# command's status.
# --api-keys-file: the coordinator's API keys (docs/api.md); the launcher adds a key of its own
# (random, its hash only, no jobs) for its health checks. Clients need a key of the file.
# --tls-dir: TLS with the files deploy/make-dev-certs.sh makes: the public ports serve
# DIR/coordinator.pem; the worker plane is mutual TLS (workers DIR/worker.pem, the coordinator
# DIR/coordinator.pem, both trusting DIR/ca.pem); RAMI_TLS_CA=DIR/ca.pem and an https://
# RAMI_HTTP for the command. --role workers: only the worker plane.
# --logs -: every process's output on stdout, each line prefixed with its name (containers);
# port and pid files then go to a temporary folder.
# Exit status: 0 after a clean stop by SIGTERM/SIGINT; 2 for bad flags; 1 when a process
# failed to start or died, or had to be SIGKILLed. A second signal during a stop SIGKILLs.
set -euo pipefail

die() { echo "launch-node: $*" >&2; exit 2; }

MODEL="" GPUS="" CPU_WORKERS="" TP="" PORT=50051 HTTP_PORT=8000 HOST="" WORKER_PORT_BASE=0 MEM_UTILIZATION="" DTYPE=""
POLICY="" KV_BYTES=$((64 << 20)) PAGE=16 LOGS="" BUILD="${RAMI_BUILD_DIR:-build}" ROLE=all
COORD_ARGS="" WORKER_ARGS="" DRAIN_TIMEOUT=30 START_TIMEOUT=300 DRY_RUN=0 API_KEYS_FILE="" TLS_DIR="" TOKEN_FILE="" MODEL_ROOTS=""
while (($#)); do
  # --flag=value is --flag value.
  if [[ "$1" == --*=* ]]; then set -- "${1%%=*}" "${1#*=}" "${@:2}"; fi
  case "$1" in
    -h | --help) sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --dry-run) DRY_RUN=1; shift; continue ;;
    --) shift; break ;;
  esac
  (($# >= 2)) || die "$1 needs a value"
  case "$1" in
    --model) MODEL="$2" ;;
    --gpus) GPUS="$2" ;;
    --cpu-workers) CPU_WORKERS="$2" ;;
    --tp) TP="$2" ;;
    --port) PORT="$2" ;;
    --http-port) HTTP_PORT="$2" ;;
    --host) HOST="$2" ;;
    --worker-port-base) WORKER_PORT_BASE="$2" ;;
    --gpu-memory-utilization) MEM_UTILIZATION="$2" ;;
    --dtype) DTYPE="$2" ;;
    --policy) POLICY="$2" ;;
    --kv-bytes) KV_BYTES="$2" ;;
    --page-size) PAGE="$2" ;;
    --logs) LOGS="$2" ;;
    --build) BUILD="$2" ;;
    --role) ROLE="$2" ;;
    --coordinator-args) COORD_ARGS="$2" ;;
    --worker-args) WORKER_ARGS="$2" ;;
    --drain-timeout) DRAIN_TIMEOUT="$2" ;;
    --start-timeout) START_TIMEOUT="$2" ;;
    --api-keys-file) API_KEYS_FILE="$2" ;;
    --tls-dir) TLS_DIR="$2" ;;
    --auth-token-file) TOKEN_FILE="$2" ;;
    --model-roots) MODEL_ROOTS="$2" ;;
    *) die "unknown flag $1 (--help lists them)" ;;
  esac
  shift 2
done

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
case "$ROLE" in all | workers) ;; *) die "--role: all or workers, not '$ROLE'" ;; esac
case "$DTYPE" in "" | bf16 | fp32) ;; *) die "--dtype: bf16 or fp32, not '$DTYPE'" ;; esac
[ -z "$GPUS" ] || [ -z "$CPU_WORKERS" ] || die "--gpus and --cpu-workers exclude each other"
for flag_var in port:PORT http-port:HTTP_PORT worker-port-base:WORKER_PORT_BASE kv-bytes:KV_BYTES page-size:PAGE \
  drain-timeout:DRAIN_TIMEOUT start-timeout:START_TIMEOUT; do
  v="${flag_var#*:}"
  is_uint "${!v}" || die "--${flag_var%%:*}: not a number: '${!v}'"
done

# Devices: --gpus K, --cpu-workers K, or (neither) every GPU nvidia-smi lists, else T CPU workers.
if [ -n "$CPU_WORKERS" ]; then
  DEVICE=cpu K="$CPU_WORKERS"
elif [ -n "$GPUS" ]; then
  DEVICE=gpu K="$GPUS"
elif command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 \
  && [ "$(nvidia-smi -L | grep -c '^GPU ')" -gt 0 ]; then
  DEVICE=gpu K="$(nvidia-smi -L | grep -c '^GPU ')"
else
  DEVICE=cpu K="${TP:-2}"
fi
TP="${TP:-$K}"
[ "$DTYPE" != bf16 ] || [ "$DEVICE" = gpu ] || die "--dtype bf16 needs GPU workers (CPU: fp32)"
if ! is_uint "$K" || ((K == 0)); then die "worker count must be a positive number, not '$K'"; fi
if ! is_uint "$TP" || ((TP == 0)); then die "--tp must be a positive number, not '$TP'"; fi
((K % TP == 0)) || die "$K workers do not split into groups of --tp $TP ($K % $TP != 0)"
GROUPS_N=$((K / TP))
if [ "$ROLE" = workers ]; then
  [ -n "$HOST" ] || die "--role workers: --host is required: the address the coordinator and the group's peers reach this node on (on Kubernetes the pod IP; --host 0.0.0.0 listens on every interface)"
  WORKER_HOST="$HOST"
  ((WORKER_PORT_BASE > 0)) || die "--role workers needs fixed ports: --worker-port-base"
  (($# == 0)) || die "-- command needs --role all (a coordinator to send jobs to)"
  # The coordinator is elsewhere: it must hold the same secret, so none can be made up here.
  [ -n "$TOKEN_FILE" ] || die "--role workers needs --auth-token-file (the coordinator's" \
    "--worker_auth_token_file)"
  MODEL_ROOTS="${MODEL_ROOTS:-$MODEL}"
  [ -n "$MODEL_ROOTS" ] || die "--role workers needs --model-roots DIR[,DIR...]"
else
  # Workers of a whole node only talk to its coordinator: loopback, whatever --host says.
  HOST="${HOST:-127.0.0.1}" WORKER_HOST=127.0.0.1
  [ -n "$MODEL" ] || die "--model DIR is required"
  ((DRY_RUN)) || [ -d "$MODEL" ] || die "--model: no directory $MODEL"
  [ -z "$API_KEYS_FILE" ] || [ -r "$API_KEYS_FILE" ] || die "--api-keys-file: cannot read $API_KEYS_FILE"
  MODEL_ROOTS="${MODEL_ROOTS:-$MODEL}"
fi
TLS_FILES=(ca.pem worker.pem worker.key)
[ "$ROLE" = workers ] || TLS_FILES+=(coordinator.pem coordinator.key)
for f in "${TLS_FILES[@]}"; do
  ((DRY_RUN)) || [ -z "$TLS_DIR" ] || [ -r "$TLS_DIR/$f" ] || die "--tls-dir: cannot read $TLS_DIR/$f (deploy/make-dev-certs.sh makes it)"
done
WORKER_TLS=()
[ -z "$TLS_DIR" ] || WORKER_TLS=(--tls_cert_file="$TLS_DIR/worker.pem"
  --tls_key_file="$TLS_DIR/worker.key" --tls_ca_file="$TLS_DIR/ca.pem")
((DRY_RUN)) || [ -z "$TOKEN_FILE" ] || [ -r "$TOKEN_FILE" ] || die "--auth-token-file: cannot read $TOKEN_FILE"
if ((DRY_RUN)); then  # the plan, checked, without starting anything
  echo "launch-node (dry run): $K $DEVICE worker(s) on $WORKER_HOST, ports" \
    "$( ((WORKER_PORT_BASE)) && echo "$WORKER_PORT_BASE..$((WORKER_PORT_BASE + K - 1))" || echo any)"
  [ "$ROLE" = workers ] || echo "launch-node (dry run): $GROUPS_N group(s) of T=$TP;" \
    "coordinator on $HOST:$PORT, model $MODEL${DTYPE:+, dtype $DTYPE}"
  exit 0
fi

# Binaries: a build tree (build/worker/service/rami-worker, ...) or one folder (the image's).
binary() {  # name, path in a build tree
  if [ -x "$BUILD/$2" ]; then echo "$BUILD/$2"; else echo "$BUILD/$1"; fi
}
WORKER="$(binary rami-worker worker/service/rami-worker)"
COORD="$(binary rami-coordinator coordinator/rami-coordinator)"
CLI="$(binary rami tools/rami)"
[ -x "$WORKER" ] || die "$WORKER not built (run deploy/setup.sh, or pass --build DIR)"
[ "$ROLE" = workers ] || [ -x "$COORD" ] || die "$COORD not built (run deploy/setup.sh)"
LOG_STDOUT=0
if [ "$LOGS" = - ]; then LOG_STDOUT=1 LOGS=""; fi
LOGS="${LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/rami-node.XXXXXX")}"
mkdir -p "$LOGS"
WHERE_LOGS="logs in $LOGS"
((LOG_STDOUT == 0)) || WHERE_LOGS="logs on stdout"
# The workers obey only holders of this secret: a fresh one per run unless one was given.
MADE_TOKEN=0
if [ -z "$TOKEN_FILE" ]; then
  TOKEN_FILE="$LOGS/worker-auth.token"
  (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$TOKEN_FILE")
  MADE_TOKEN=1
fi

# --- processes -----------------------------------------------------------------------------
# Each server runs under setsid: its own process group, so a terminal's Ctrl-C reaches only
# this script, which then stops the coordinator before the workers (jobs drain instead of
# failing), and so a stop can signal a whole group.
PIDS=()
declare -A NAME_OF=()
alive() {  # pid: running (not gone, not a zombie)
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [ "${stat%% *}" != Z ]
}
STOPPING=0 FORCE=0 KILLED=0
# shellcheck disable=SC2317  # called from the traps
stop_pids() {  # seconds, pid...: SIGTERM each group, wait, SIGKILL what is left, reap
  local deadline=$((SECONDS + $1)) pid status
  shift
  for pid in "$@"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    while alive "$pid" && ((SECONDS < deadline && !FORCE)); do sleep 0.1; done
    if alive "$pid"; then
      echo "launch-node: ${NAME_OF[$pid]:-pid $pid} did not stop in time: SIGKILL" >&2
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
      KILLED=1
    fi
    status=0
    wait "$pid" 2>/dev/null || status=$?
    ((status == 0)) || echo "launch-node: ${NAME_OF[$pid]:-pid $pid} exited with status $status" >&2
  done
}
# Coordinator first (it drains its jobs), then the workers.
# shellcheck disable=SC2317
stop_all() {
  ((STOPPING)) && return
  STOPPING=1
  if [ -n "${CMD_PID:-}" ] && alive "$CMD_PID"; then stop_pids 10 "$CMD_PID"; fi
  if [ -n "${COORD_PID:-}" ]; then stop_pids $((DRAIN_TIMEOUT + 15)) "$COORD_PID"; fi
  local workers=()
  for pid in "${PIDS[@]}"; do [ "$pid" = "${COORD_PID:-}" ] || workers+=("$pid"); done
  ((${#workers[@]} == 0)) || stop_pids 15 "${workers[@]}"
  rm -f "$LOGS"/*.pid
  ((!MADE_TOKEN)) || rm -f "$TOKEN_FILE"
}
# A signal during a stop (a second Ctrl-C) does not cut the stop short: it turns it into SIGKILLs.
# shellcheck disable=SC2317
on_signal() {
  if ((STOPPING)); then
    echo "launch-node: signal during the stop: SIGKILL to what is left" >&2
    FORCE=1
    return
  fi
  echo "launch-node: stopping (signal)" >&2
  stop_all
  exit "$KILLED"
}
trap stop_all EXIT
trap on_signal INT TERM

start() {  # name, command...: starts it in its own process group, logs to $LOGS/name.log
  local name="$1"
  shift
  if ((LOG_STDOUT)); then
    # sed ends by itself when the server's output closes.
    setsid "$@" > >(sed -u "s/^/[$name] /") 2>&1 </dev/null &
  else
    setsid "$@" >"$LOGS/$name.log" 2>&1 </dev/null &
  fi
  PIDS+=("$!")
  NAME_OF[$!]="$name"
  echo "$!" >"$LOGS/$name.pid"
}
wait_port_file() {  # name, pid, seconds: the server wrote its port file (or it died)
  local deadline=$((SECONDS + $3))
  until [ -s "$LOGS/$1.port" ]; do
    if ! alive "$2"; then
      echo "launch-node: $1 exited before serving" >&2
      ((LOG_STDOUT)) || tail -n 20 "$LOGS/$1.log" >&2
      exit 1
    fi
    ((SECONDS < deadline)) || { echo "launch-node: $1: no port after $3 s" >&2; exit 1; }
    sleep 0.1
  done
}

# Workers: worker i gets GPU i (it sees it as device 0), or no GPU at all for CPU workers.
# One OpenBLAS thread each unless told otherwise: K CPU workers share the cores.
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
WORKER_ADDRS=()
for ((i = 0; i < K; i++)); do
  port=0
  ((WORKER_PORT_BASE == 0)) || port=$((WORKER_PORT_BASE + i))
  gpu=""
  [ "$DEVICE" = cpu ] || gpu="$i"
  rm -f "$LOGS/worker$i.port"
  # shellcheck disable=SC2086  # --worker-args is a list of flags
  start "worker$i" env CUDA_VISIBLE_DEVICES="$gpu" "$WORKER" --listen="$WORKER_HOST:$port" \
    --port_file="$LOGS/worker$i.port" --auth_token_file="$TOKEN_FILE" \
    --model_roots="$MODEL_ROOTS" "${WORKER_TLS[@]}" $WORKER_ARGS
done
for ((i = 0; i < K; i++)); do
  wait_port_file "worker$i" "${PIDS[$i]}" 60
  WORKER_ADDRS+=("127.0.0.1:$(cat "$LOGS/worker$i.port")")
done

if [ "$ROLE" = workers ]; then
  echo "rami: $K $DEVICE worker(s) serving rami.worker.v1.Worker on $HOST ports" \
    "$WORKER_PORT_BASE..$((WORKER_PORT_BASE + K - 1)) ($WHERE_LOGS)"
  # A worker pod lives as long as all its workers: one exiting restarts the pod.
  status=0
  wait -n "${PIDS[@]}" || status=$?
  echo "launch-node: a worker exited (status $status); stopping the others" >&2
  exit 1
fi

# Groups: ranks g*T .. g*T+T-1, `,` between ranks, `;` between groups.
SPEC=""
for ((g = 0; g < GROUPS_N; g++)); do
  group=""
  for ((r = 0; r < TP; r++)); do group+="${group:+,}${WORKER_ADDRS[$((g * TP + r))]}"; done
  SPEC+="${SPEC:+;}$group"
done
EXTRA=()
[ -z "$MEM_UTILIZATION" ] || EXTRA+=(--gpu_memory_utilization="$MEM_UTILIZATION")
[ "$DEVICE" = cpu ] || EXTRA+=(--device=cuda)  # cuda:0 of each worker's CUDA_VISIBLE_DEVICES
[ -z "$DTYPE" ] || EXTRA+=(--dtype="$DTYPE")    # default: fp32 on CPU, bf16 on GPU
rm -f "$LOGS/coordinator.port" "$LOGS/http.port"
# The HTTP port (OpenAI API, /metrics) follows --port: with --port 0 any free one.
HTTP_FLAG=$HTTP_PORT
[ "$PORT" != 0 ] || [ "$HTTP_PORT" = 0 ] || HTTP_FLAG=-1
EXTRA+=(--http_port="$HTTP_FLAG" --http_host="$HOST" --http_port_file="$LOGS/http.port")
# API keys: the file's, plus the launcher's own for `rami info` below (only its SHA-256 is
# written; the key itself stays in this shell and reaches the CLI through its environment).
LAUNCH_KEY=""
if [ -n "$API_KEYS_FILE" ]; then
  LAUNCH_KEY="launch-node-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
  (umask 077 && { cat "$API_KEYS_FILE"; echo
    printf '{"name": "launch-node-%s", "sha256": "%s", "max_jobs": 1, "max_branches": 1, "rps": 0}\n' \
      "$$" "$(printf '%s' "$LAUNCH_KEY" | sha256sum | cut -d' ' -f1)"; } >"$LOGS/api_keys.jsonl")
  EXTRA+=(--api_keys_file="$LOGS/api_keys.jsonl")
fi
# TLS: the public ports serve the coordinator's certificate; clients here trust the CA.
SCHEME=http
if [ -n "$TLS_DIR" ]; then
  EXTRA+=(--tls_cert_file="$TLS_DIR/coordinator.pem" --tls_key_file="$TLS_DIR/coordinator.key"
    --worker_tls_cert_file="$TLS_DIR/coordinator.pem"
    --worker_tls_key_file="$TLS_DIR/coordinator.key" --worker_tls_ca_file="$TLS_DIR/ca.pem")
  export RAMI_TLS_CA="$TLS_DIR/ca.pem"
  SCHEME=https
fi
# shellcheck disable=SC2086  # --coordinator-args is a list of flags
start coordinator "$COORD" --listen="$HOST:$PORT" --port_file="$LOGS/coordinator.port" \
  --workers="$SPEC" --model_dir="$MODEL" --cache_policy="$POLICY" --kv_cache_bytes="$KV_BYTES" \
  --page_size="$PAGE" --startup_timeout="$START_TIMEOUT" --drain_timeout="$DRAIN_TIMEOUT" \
  --worker_auth_token_file="$TOKEN_FILE" "${EXTRA[@]}" $COORD_ARGS
COORD_PID="${PIDS[-1]}"
wait_port_file coordinator "$COORD_PID" "$START_TIMEOUT"
API_PORT="$(cat "$LOGS/coordinator.port")"
CONNECT_HOST="$HOST"
[ "$HOST" != 0.0.0.0 ] || CONNECT_HOST=127.0.0.1
export RAMI_SERVER="$CONNECT_HOST:$API_PORT"
RAMI_HTTP=""
if [ "$HTTP_PORT" != 0 ]; then
  wait_port_file http "$COORD_PID" 10
  RAMI_HTTP="$SCHEME://$CONNECT_HOST:$(cat "$LOGS/http.port")"
fi
export RAMI_HTTP

# Health: grpc.health.v1 SERVING (at least one group loaded; checked with Python's grpcio
# where it is installed, else the API answering), then every group healthy per `rami info`.
serving() {
  if /usr/bin/python3 -c 'import grpc' 2>/dev/null; then
    /usr/bin/python3 "$(dirname "$0")/grpc_health.py" "$RAMI_SERVER"
  else
    RAMI_API_KEY="$LAUNCH_KEY" "$CLI" info --server="$RAMI_SERVER" >/dev/null
  fi
}
healthy_groups() {  # protobuf's JSON leaves a 0 out
  local n
  n="$(RAMI_API_KEY="$LAUNCH_KEY" "$CLI" info --server="$RAMI_SERVER" 2>/dev/null \
    | grep -o '"healthyWorkerGroups": [0-9]*')"
  echo "${n##* }"
}
deadline=$((SECONDS + START_TIMEOUT))
until serving 2>"$LOGS/health.err" && [ "$(healthy_groups)" = "$GROUPS_N" ]; do
  alive "$COORD_PID" || { echo "launch-node: the coordinator exited; see $LOGS/coordinator.log" >&2; exit 1; }
  if ((SECONDS >= deadline)); then
    serving 2>/dev/null || { echo "launch-node: not healthy after $START_TIMEOUT s: $(cat "$LOGS/health.err")" >&2; exit 1; }
    echo "launch-node: only $(healthy_groups) of $GROUPS_N groups healthy after $START_TIMEOUT s; serving with them" >&2
    break
  fi
  sleep 0.5
done
echo "rami: serving rami.v1.Inference on $HOST:$API_PORT ($GROUPS_N group(s) x $TP" \
  "$DEVICE rank(s), $WHERE_LOGS)${RAMI_HTTP:+; OpenAI-compatible API at $RAMI_HTTP/v1}"

if (($#)); then
  # In the background, so that a signal is handled at once rather than after the command.
  "$@" <&0 &
  CMD_PID=$!
  status=0
  wait "$CMD_PID" || status=$?
  exit "$status"
fi
status=0
wait "$COORD_PID" || status=$?
echo "launch-node: the coordinator exited (status $status); stopping the workers" >&2
exit 1
