#!/usr/bin/env bash
# The Kubernetes topology on loopback: four "worker pods", each `launch-node.sh --role workers`
# with one CPU worker on its own address 127.0.<pod>.1 and the same fixed port (as pods have
# their own IPs), and a coordinator that finds them the way the manifests configure it:
# --worker_discovery=dns:127.0.{pod}.1 --tp=2 --workers_per_pod=1 --max_groups=2, so each
# tensor-parallel group spans two pods (the multi-node overlays' shape). Checks: both groups
# become healthy through discovery, a best-of-8 job completes, SIGTERM stops the coordinator
# (drain) and every pod cleanly (exit 0), nothing is left behind. Bounded: < 60 s.
#   tests/deploy/worker_pods_test.sh --build DIR
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${RAMI_BUILD_DIR:-$ROOT/build}"
if [ "${1:-}" = --build ]; then BUILD="$2"; fi
MODEL="$ROOT/tests/golden/models/qwen3_dms"
COORD="$BUILD/coordinator/rami-coordinator"
CLI="$BUILD/tools/rami"
PY=/usr/bin/python3
LOGS="$(mktemp -d /tmp/rami-pods-test.XXXXXX)"
PODS=4
PASSED=0 FAILED=0
START=$SECONDS
pass() { echo "PASS: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }
alive() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [ "${stat%% *}" != Z ]
}
wait_gone() {  # pid seconds
  local deadline=$((SECONDS + $2))
  while alive "$1" && ((SECONDS < deadline)); do sleep 0.1; done
  ! alive "$1"
}
POD_PIDS=() COORD_PID=""
# shellcheck disable=SC2317  # the EXIT trap
cleanup() {
  local pid
  for pid in $COORD_PID "${POD_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $COORD_PID "${POD_PIDS[@]}"; do wait_gone "$pid" 15 || kill -KILL "$pid" 2>/dev/null || true; done
  for f in "$LOGS"/pod*/*.pid; do
    if [ -e "$f" ]; then kill -KILL -- "-$(cat "$f")" 2>/dev/null || true; fi
  done
}
trap cleanup EXIT
finish() {  # logs are kept only when something failed
  if ((FAILED == 0)); then
    rm -rf "$LOGS"
    echo "worker_pods_test: $((SECONDS - START)) s"
  else
    echo "worker_pods_test: $((SECONDS - START)) s; logs in $LOGS"
  fi
  echo "$PASSED passed, $FAILED failed"
  ((FAILED == 0))
}
for b in "$COORD" "$CLI" "$BUILD/worker/service/rami-worker"; do
  [ -x "$b" ] || { echo "worker_pods_test: $b is not built" >&2; exit 1; }
done

# One port, free on every pod address.
PORT="$("$PY" - "$PODS" <<'EOF'
import random, socket, sys
for _ in range(50):
    port = random.randint(20000, 40000)
    try:
        for pod in range(int(sys.argv[1])):
            s = socket.socket()
            s.bind((f"127.0.{pod}.1", port))
            s.close()
        print(port)
        break
    except OSError:
        continue
EOF
)"
[ -n "$PORT" ] || { echo "worker_pods_test: no free port" >&2; exit 1; }

# The secret shared by the coordinator and the worker pods (the manifests' Secret).
TOKEN="$LOGS/worker-auth.token"
(umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$TOKEN")

# The pods, as the StatefulSet runs them (through launch-node.sh --role workers).
for ((p = 0; p < PODS; p++)); do
  "$ROOT/deploy/launch-node.sh" --role=workers --cpu-workers=1 --host="127.0.$p.1" \
    --worker-port-base="$PORT" --build="$BUILD" --logs="$LOGS/pod$p" --auth-token-file="$TOKEN" \
    --model-roots="$MODEL" >"$LOGS/pod$p.out" 2>&1 &
  POD_PIDS+=($!)
done
for ((p = 0; p < PODS; p++)); do
  deadline=$((SECONDS + 20))
  until grep -qs "^rami: 1 cpu worker(s) serving" "$LOGS/pod$p.out"; do
    if ((SECONDS >= deadline)); then fail "pod $p not serving: $(cat "$LOGS/pod$p.out")"; finish; exit 1; fi
    sleep 0.1
  done
done
WORKER_PIDS=()
for f in "$LOGS"/pod*/*.pid; do WORKER_PIDS+=("$(cat "$f")"); done
pass "$PODS worker pods serving on 127.0.{0..$((PODS - 1))}.1:$PORT (worker pids ${WORKER_PIDS[*]})"

# The coordinator, with the manifests' discovery flags.
setsid "$COORD" --listen=127.0.0.1:0 --port_file="$LOGS/coordinator.port" --model_dir="$MODEL" \
  --worker_discovery="dns:127.0.{pod}.1" --tp=2 --worker_port="$PORT" --workers_per_pod=1 \
  --max_groups=2 --discovery_interval=0.5 --coordinator_id=pods-test --lease_seconds=15 \
  --drain_timeout=10 --page_size=4 --kv_cache_bytes=$((64 << 20)) \
  --worker_auth_token_file="$TOKEN" >"$LOGS/coordinator.log" 2>&1 </dev/null &
COORD_PID=$!
deadline=$((SECONDS + 20))
until [ -s "$LOGS/coordinator.port" ]; do
  if ! alive "$COORD_PID" || ((SECONDS >= deadline)); then
    fail "coordinator did not serve: $(tail -n 5 "$LOGS/coordinator.log")"; finish; exit 1
  fi
  sleep 0.1
done
SERVER="127.0.0.1:$(cat "$LOGS/coordinator.port")"
healthy_groups() {
  timeout 5 "$CLI" info --server="$SERVER" 2>/dev/null | "$PY" -c '
import json, sys
info = json.load(sys.stdin)
print(info.get("healthyWorkerGroups", info.get("healthy_worker_groups", 0)))' 2>/dev/null || echo 0
}
deadline=$((SECONDS + 30))
until [ "$(healthy_groups)" = 2 ]; do
  if ((SECONDS >= deadline)); then
    fail "2 healthy groups not discovered in 30 s (have $(healthy_groups)): $(tail -n 5 "$LOGS/coordinator.log")"
    finish
    exit 1
  fi
  sleep 0.5
done
pass "dns:127.0.{pod}.1 discovery: 2 groups of 2 ranks across 4 pods, healthy after $((SECONDS - START)) s"
# The coordinator refreshes its health status twice a second.
deadline=$((SECONDS + 5))
until "$PY" "$ROOT/deploy/grpc_health.py" "$SERVER" 2>"$LOGS/health.err" || ((SECONDS >= deadline)); do
  sleep 0.2
done
if "$PY" "$ROOT/deploy/grpc_health.py" "$SERVER" && "$PY" "$ROOT/deploy/grpc_health.py" "$SERVER" rami.liveness; then
  pass "grpc.health.v1: \"\" and rami.liveness SERVING (the probes' services)"
else
  fail "grpc.health.v1 not SERVING"
fi

if timeout 30 "$CLI" generate --server="$SERVER" --n 8 --max_tokens 32 --seed 2 --json \
  --regex '([a-z])[^a-z]*$' "Where are the pods?" >"$LOGS/result.json" 2>&1 \
  && "$PY" - "$LOGS/result.json" <<'EOF'
import json, sys
result = json.load(open(sys.argv[1]))
n = len(result.get("branches", []))
sys.exit(0 if n == 8 else f"{n} branches")
EOF
then
  pass "best-of-8 job: 8 branches on $(grep -o '"workerGroups": [0-9]*' "$LOGS/result.json" | grep -o '[0-9]*$' || echo 1) group(s)"
else
  fail "best-of-8 job: $(head -c 300 "$LOGS/result.json")"
fi

# Pod deletion order in Kubernetes is not fixed; here: the coordinator, then the pods.
kill -TERM "$COORD_PID"
if wait_gone "$COORD_PID" 15; then
  status=0
  wait "$COORD_PID" || status=$?
  if [ "$status" = 0 ]; then pass "coordinator drained and exited 0"; else fail "coordinator exit $status"; fi
else
  fail "coordinator still running 15 s after SIGTERM"
fi
for ((p = 0; p < PODS; p++)); do kill -TERM "${POD_PIDS[$p]}"; done
bad=()
for ((p = 0; p < PODS; p++)); do
  status=0
  if wait_gone "${POD_PIDS[$p]}" 20; then wait "${POD_PIDS[$p]}" || status=$?; else status=timeout; fi
  if [ "$status" != 0 ] || grep -q "exited with status" "$LOGS/pod$p.out"; then bad+=("pod$p:$status"); fi
done
if ((${#bad[@]} == 0)); then pass "every pod stopped cleanly (launcher and worker exit 0)"; else fail "pods: ${bad[*]}"; fi
left=()
for pid in "${WORKER_PIDS[@]}" "$COORD_PID"; do
  if alive "$pid"; then left+=("$pid"); fi
done
if ((${#left[@]} == 0)); then pass "no process left"; else fail "still running: ${left[*]}"; fi
if ((SECONDS - START < 60)); then pass "within 60 s"; else fail "took $((SECONDS - START)) s"; fi
COORD_PID="" POD_PIDS=()
finish
