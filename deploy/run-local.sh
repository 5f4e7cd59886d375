#!/usr/bin/env bash
# Starts a local rami deployment: T rami-worker processes (one tensor-parallel group, CPU or
# one GPU each) and a rami-coordinator over them; waits until the API serves; prints where it
# listens; stops everything on Ctrl-C / SIGTERM (no orphans). Logs go to --logs.
#   deploy/run-local.sh --model DIR [--tp 2] [--port 50051] [--policy dms] [--kv-bytes N]
#                       [--page-size 16] [--logs DIR] [--build DIR]
#                       [--coordinator-args "--lookahead=false ..."] [-- command to run]
# With a command after `--`, runs it once the API serves, then stops the deployment and exits
# with the command's status.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL="" TP=2 PORT=50051 POLICY="" KV_BYTES=$((64 << 20)) PAGE=16 LOGS="" BUILD="${RAMI_BUILD_DIR:-build}"
COORD_ARGS=""
while (($#)); do
  case "$1" in
    --model) MODEL="$2"; shift 2 ;;
    --tp) TP="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    --policy) POLICY="$2"; shift 2 ;;
    --kv-bytes) KV_BYTES="$2"; shift 2 ;;
    --page-size) PAGE="$2"; shift 2 ;;
    --logs) LOGS="$2"; shift 2 ;;
    --build) BUILD="$2"; shift 2 ;;
    --coordinator-args) COORD_ARGS="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "run-local: unknown flag $1" >&2; exit 2 ;;
  esac
done
[ -n "$MODEL" ] || { echo "run-local: --model DIR is required" >&2; exit 2; }
[ -d "$MODEL" ] || { echo "run-local: --model: no directory $MODEL" >&2; exit 2; }
LOGS="${LOGS:-$(mktemp -d /tmp/rami-local.XXXXXX)}"
mkdir -p "$LOGS"
WORKER="$BUILD/worker/service/rami-worker"
COORD="$BUILD/coordinator/rami-coordinator"
for b in "$WORKER" "$COORD"; do
  [ -x "$b" ] || { echo "run-local: $b not built (run deploy/setup.sh)" >&2; exit 2; }
done

PIDS=()
stop() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop EXIT
trap 'exit 130' INT TERM

wait_port_file() {  # file, seconds
  for _ in $(seq 1 $(($2 * 10))); do [ -s "$1" ] && return 0; sleep 0.1; done
  echo "run-local: timed out waiting for $1" >&2; return 1
}

ADDRS=()
for ((r = 0; r < TP; r++)); do
  rm -f "$LOGS/worker$r.port"
  # One GPU per worker when there are GPUs (the CPU backend ignores it).
  CUDA_VISIBLE_DEVICES="$r" "$WORKER" --listen=127.0.0.1:0 --port_file="$LOGS/worker$r.port" \
    >"$LOGS/worker$r.log" 2>&1 &
  PIDS+=($!)
done
for ((r = 0; r < TP; r++)); do
  wait_port_file "$LOGS/worker$r.port" 30
  ADDRS+=("127.0.0.1:$(cat "$LOGS/worker$r.port")")
done
rm -f "$LOGS/coordinator.port"
"$COORD" --listen="127.0.0.1:$PORT" --port_file="$LOGS/coordinator.port" \
  --workers="$(IFS=,; echo "${ADDRS[*]}")" --model_dir="$MODEL" --cache_policy="$POLICY" \
  --kv_cache_bytes="$KV_BYTES" --page_size="$PAGE" $COORD_ARGS >"$LOGS/coordinator.log" 2>&1 &
PIDS+=($!)
wait_port_file "$LOGS/coordinator.port" 120 || { cat "$LOGS/coordinator.log" >&2; exit 1; }
echo "rami: serving rami.v1.Inference on 127.0.0.1:$(cat "$LOGS/coordinator.port")" \
  "($TP worker(s), logs in $LOGS)"
if (($#)); then
  status=0
  "$@" || status=$?
  exit "$status"
fi
wait "${PIDS[-1]}"
