#!/usr/bin/env bash
# Tests deploy/launch-node.sh with CPU workers on loopback (the tiny DMS model):
#   - a worker count that does not split into groups of T is refused with a clear error;
#   - G groups x T ranks start, `rami info` reports G healthy groups, and a best-of-8 job
#     through the `rami` CLI returns 8 branches and 8 votes;
#   - SIGTERM to the launcher: it exits 0, every process it started exited 0 and is gone (by
#     pid), and every port it used can be bound again;
#   - the container image's layout (binaries and scripts in one folder) through its
#     entrypoint: `entrypoint.sh node ...` serves and stops; an unknown command is refused.
# Every wait is bounded; the whole test takes well under 60 s.
#   tests/deploy/launch_node_test.sh --build DIR [--groups 2] [--tp 2]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${RAMI_BUILD_DIR:-$ROOT/build}" GROUPS_N=2 TP=2
while (($#)); do
  case "$1" in
    --build) BUILD="$2"; shift 2 ;;
    --groups) GROUPS_N="$2"; shift 2 ;;
    --tp) TP="$2"; shift 2 ;;
    *) echo "launch_node_test: unknown flag $1" >&2; exit 2 ;;
  esac
done
LAUNCH="$ROOT/deploy/launch-node.sh"
MODEL="$ROOT/tests/golden/models/qwen3_dms"
CLI="$BUILD/tools/rami"
PY=/usr/bin/python3
LOGS="$(mktemp -d /tmp/rami-launch-test.XXXXXX)"
K=$((GROUPS_N * TP))
PASSED=0 FAILED=0
START=$SECONDS

pass() { echo "PASS: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }
finish() {  # logs are kept only when something failed
  if ((FAILED == 0)) && [ "$1" = ok ]; then
    rm -rf "$LOGS"
    echo "launch_node_test: $((SECONDS - START)) s"
  else
    echo "launch_node_test: $((SECONDS - START)) s; logs in $LOGS"
  fi
  echo "$PASSED passed, $FAILED failed"
  ((FAILED == 0)) && [ "$1" = ok ]
}
alive() {  # pid: running (not gone, not a zombie)
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [ "${stat%% *}" != Z ]
}
LPID=""
# shellcheck disable=SC2317  # the EXIT trap: never leave the deployment behind
cleanup() {
  if [ -n "$LPID" ] && alive "$LPID"; then
    kill -TERM "$LPID" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while alive "$LPID" && ((SECONDS < deadline)); do sleep 0.2; done
    kill -KILL "$LPID" 2>/dev/null || true
  fi
  for f in "$LOGS"/node/*.pid; do  # what the launcher did not stop (each its own group)
    [ -e "$f" ] || continue
    kill -KILL -- "-$(cat "$f")" 2>/dev/null || true
  done
}
trap cleanup EXIT
for b in "$CLI" "$BUILD/worker/service/rami-worker" "$BUILD/coordinator/rami-coordinator"; do
  [ -x "$b" ] || { echo "launch_node_test: $b is not built" >&2; exit 1; }
done

# 1. K % T != 0 is refused before anything starts.
status=0
"$LAUNCH" --model "$MODEL" --cpu-workers 3 --tp 2 --build "$BUILD" --logs "$LOGS/bad" \
  >"$LOGS/bad.out" 2>&1 || status=$?
if [ "$status" = 2 ] && grep -q "do not split into groups" "$LOGS/bad.out"; then
  pass "3 workers with --tp 2 refused (exit 2: $(cat "$LOGS/bad.out"))"
else
  fail "3 workers with --tp 2: exit $status, $(cat "$LOGS/bad.out")"
fi

# 2. Start G x T CPU workers + coordinator.
: >"$LOGS/launcher.out"
"$LAUNCH" --model "$MODEL" --cpu-workers "$K" --tp "$TP" --port 0 --page-size 4 \
  --build "$BUILD" --logs "$LOGS/node" --start-timeout 30 --drain-timeout 5 \
  >"$LOGS/launcher.out" 2>&1 &
LPID=$!
deadline=$((SECONDS + 35))
until grep -q "^rami: serving" "$LOGS/launcher.out"; do
  if ! alive "$LPID" || ((SECONDS >= deadline)); then
    fail "launcher did not serve within 35 s:"
    cat "$LOGS/launcher.out"
    tail -n 5 "$LOGS"/node/*.log
    finish failed
    exit 1
  fi
  sleep 0.2
done
pass "serving after $((SECONDS - START)) s: $(grep '^rami: serving' "$LOGS/launcher.out")"
PIDS=() PORTS=()
for f in "$LOGS"/node/*.pid; do PIDS+=("$(cat "$f")"); done
for f in "$LOGS"/node/*.port; do PORTS+=("$(cat "$f")"); done
# Ports: each worker's, the coordinator's gRPC port and its HTTP port.
if ((${#PIDS[@]} == K + 1 && ${#PORTS[@]} == K + 2)); then
  pass "$K workers + 1 coordinator: pids ${PIDS[*]}, ports ${PORTS[*]}"
else
  fail "expected $((K + 1)) pid and $((K + 2)) port files, got ${#PIDS[@]} and ${#PORTS[@]}"
fi
SERVER="127.0.0.1:$(cat "$LOGS/node/coordinator.port")"

# 3. The coordinator sees every group healthy.
if timeout 10 "$CLI" info --server="$SERVER" >"$LOGS/info.json" 2>&1 \
  && "$PY" - "$LOGS/info.json" "$GROUPS_N" <<'EOF'
import json, sys
info = json.load(open(sys.argv[1]))
groups = int(sys.argv[2])
got = (info.get("workerGroups", info.get("worker_groups", 0)),
       info.get("healthyWorkerGroups", info.get("healthy_worker_groups", 0)))
sys.exit(0 if got == (groups, groups) else f"worker groups / healthy: {got}, want {groups}")
EOF
then
  pass "rami info: $GROUPS_N worker group(s), all healthy"
else
  fail "rami info: $(cat "$LOGS/info.json")"
fi

# 4. A best-of-8 job through the CLI.
if timeout 30 "$CLI" generate --server="$SERVER" --n 8 --max_tokens 32 --seed 1 --json \
  --regex '([a-z])[^a-z]*$' "What is the answer?" >"$LOGS/result.json" 2>&1 \
  && "$PY" - "$LOGS/result.json" <<'EOF'
import json, sys
result = json.load(open(sys.argv[1]))
branches = len(result.get("branches", []))
votes = sum(int(v.get("count", 0)) for v in result.get("votes", []))
sys.exit(0 if (branches, votes) == (8, 8) else f"branches {branches}, votes {votes}")
EOF
then
  pass "best-of-8 job: 8 branches, 8 votes, answer $(grep -o '"answer": "[^"]*"' "$LOGS/result.json" | head -1)," \
    "ran on $(grep -o '"workerGroups": [0-9]*' "$LOGS/result.json" | grep -o '[0-9]*$' || echo 1) group(s)"
else
  fail "best-of-8 job: $(cat "$LOGS/result.json")"
fi

# 5. SIGTERM: the launcher exits 0 within 25 s, nothing is left, every port is free.
kill -TERM "$LPID"
deadline=$((SECONDS + 25))
while alive "$LPID" && ((SECONDS < deadline)); do sleep 0.1; done
if alive "$LPID"; then
  fail "launcher still running 25 s after SIGTERM"
else
  status=0
  wait "$LPID" || status=$?
  if [ "$status" = 0 ]; then pass "launcher exited 0 after SIGTERM"; else fail "launcher exit $status"; fi
fi
left=()
for pid in "${PIDS[@]}"; do
  if alive "$pid"; then left+=("$pid"); fi
done
if ((${#left[@]} == 0)); then pass "all ${#PIDS[@]} processes gone"; else fail "still running: ${left[*]}"; fi
# A restarted server binds with SO_REUSEADDR (as gRPC does): the port must have no listener.
if "$PY" - "${PORTS[@]}" <<'EOF'
import socket, sys
busy = []
for port in map(int, sys.argv[1:]):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        s.listen()
    except OSError as e:
        busy.append(f"{port} ({e.strerror})")
    finally:
        s.close()
sys.exit(f"ports still in use: {busy}" if busy else 0)
EOF
then
  pass "ports ${PORTS[*]} free"
else
  fail "ports not free"
fi
if grep -q "exited with status" "$LOGS/launcher.out"; then
  fail "a process did not exit 0 on SIGTERM: $(grep 'exited with status' "$LOGS/launcher.out")"
else
  pass "every process exited 0 on SIGTERM"
fi

# 6. The image's layout (/opt/rami/bin: binaries + scripts in one folder) through its
#    entrypoint: `node ...` runs launch-node.sh there; unknown commands are refused.
mkdir -p "$LOGS/image/bin"
ln -s "$BUILD/worker/service/rami-worker" "$BUILD/coordinator/rami-coordinator" "$CLI" \
  "$LOGS/image/bin/"
cp "$ROOT"/deploy/{entrypoint.sh,launch-node.sh,grpc_health.py} "$LOGS/image/bin/"
# shellcheck disable=SC2016  # $RAMI_SERVER expands in the inner shell
if PATH="$LOGS/image/bin:$PATH" timeout 40 "$LOGS/image/bin/entrypoint.sh" node --model "$MODEL" \
  --cpu-workers 2 --tp 2 --port 0 --page-size 4 --logs - \
  -- sh -c 'rami info --server="$RAMI_SERVER"' >"$LOGS/image.out" 2>&1 \
  && grep -q '"healthyWorkerGroups": 1' "$LOGS/image.out" && grep -q '^\[worker1\] ' "$LOGS/image.out"; then
  pass "image layout: entrypoint.sh node ... serves 1 group, logs on stdout, exits 0"
else
  fail "image layout: $(tail -n 5 "$LOGS/image.out")"
fi
status=0
"$LOGS/image/bin/entrypoint.sh" bogus >/dev/null 2>&1 || status=$?
if [ "$status" = 2 ]; then pass "entrypoint refuses an unknown command"; else fail "entrypoint bogus: exit $status"; fi
if ((SECONDS - START < 60)); then pass "within 60 s"; else fail "took $((SECONDS - START)) s"; fi
LPID=""
finish ok
