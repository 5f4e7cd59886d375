#!/usr/bin/env bash
# The soak: a local deployment (deploy/launch-node.sh: 2 groups x TP 2 CPU workers and a
# coordinator, the bundled tiny DMS model) under `rami-bench load` (Poisson arrivals, mixed n
# and lengths, aborts) for --minutes, with two faults along the way:
#   at 1/3: rank 1 of group 0 is killed (SIGKILL) and restarted 20 s later with the same
#           command line (its group fails, its branches move, then it is loaded again);
#   at 2/3: rank 0 of group 1 is stopped (SIGSTOP) for 40 s, then continued (its group misses
#           its step deadline, is declared failed, its branches move, then it is loaded again).
# The coordinator's and the workers' RSS are sampled every 10 s into LOGS/rss.csv.
# Passes (exit 0) when no job hung or was lost and, with --check-rss, the coordinator's RSS at
# the end is within 10% of its RSS after warm-up (the sample at 1/4 of the run, before the
# first fault).
#
#   tests/soak/soak.sh [--minutes 30] [--rate 1] [--build build] [--logs /tmp/rami-soak]
#                      [--check-rss] [--step-timeout-floor 5]
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "${1:-}" = __driver ]; then
  # Inside launch-node.sh: RAMI_SERVER is set; SOAK_* come from the outer call.
  : "${RAMI_SERVER:?}" "${SOAK_LOGS:?}" "${SOAK_SECONDS:?}" "${SOAK_BUILD:?}" "${SOAK_RATE:?}"
  LOGS="$SOAK_LOGS" SECS="$SOAK_SECONDS"
  RESTARTED=""
  # shellcheck disable=SC2317  # invoked by the trap
  cleanup() { [ -z "$RESTARTED" ] || kill -TERM "$RESTARTED" 2>/dev/null || true; }
  trap cleanup EXIT
  rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
  pid_of() { cat "$LOGS/$1.pid"; }
  COORD="$(pid_of coordinator)"
  echo "t_s,coordinator_kb,worker0_kb,worker1_kb,worker2_kb,worker3_kb" >"$LOGS/rss.csv"
  sample() {
    local line w pid
    line="$1,$(rss_kb "$COORD")"
    for w in 0 1 2 3; do
      pid="$(pid_of "worker$w" 2>/dev/null || true)"
      [ "$w" != 1 ] || [ -z "$RESTARTED" ] || pid="$RESTARTED"
      line+=",$(rss_kb "${pid:-0}")"
    done
    echo "$line" >>"$LOGS/rss.csv"
  }
  # The load runs in the background; this loop injects the faults and samples memory.
  # Arrivals stop at SECS; jobs still open then have --job_timeout_s to end.
  "$SOAK_BUILD/tools/rami-bench" load --server="$RAMI_SERVER" --rate="$SOAK_RATE" \
    --jobs=1000000 --duration_s="$SECS" --n_mix=1,2,4,8,16 --max_tokens_mix=8,32,64,128 \
    --abort_fraction=0.1 --job_timeout_s=180 --progress_s=30 --json >"$LOGS/load.json" \
    2>"$LOGS/load.err" &
  LOAD=$!
  KILL_AT=$((SECS / 3)) STOP_AT=$((2 * SECS / 3)) start=$SECONDS
  killed=0 restarted=0 stopped=0 continued=0
  while kill -0 "$LOAD" 2>/dev/null; do
    t=$((SECONDS - start))
    if ((!killed && t >= KILL_AT)); then
      W1="$(pid_of worker1)"
      # The same command line, environment and folder for the restarted rank.
      mapfile -d '' ARGV <"/proc/$W1/cmdline"
      echo "soak: t=${t}s: SIGKILL worker1 (pid $W1, rank 1 of group 0)"
      kill -KILL "$W1"
      killed=1
    fi
    if ((killed && !restarted && t >= KILL_AT + 20)); then
      setsid "${ARGV[@]}" >>"$LOGS/worker1.restarted.log" 2>&1 </dev/null &
      RESTARTED=$!
      echo "soak: t=${t}s: worker1 restarted (pid $RESTARTED)"
      restarted=1
    fi
    if ((!stopped && t >= STOP_AT)); then
      echo "soak: t=${t}s: SIGSTOP worker2 (pid $(pid_of worker2), rank 0 of group 1)"
      kill -STOP "$(pid_of worker2)"
      stopped=1
    fi
    if ((stopped && !continued && t >= STOP_AT + 40)); then
      echo "soak: t=${t}s: SIGCONT worker2"
      kill -CONT "$(pid_of worker2)"
      continued=1
    fi
    if ((t % 10 == 0)); then sample "$t"; fi
    sleep 1
  done
  ((continued)) || kill -CONT "$(pid_of worker2)" 2>/dev/null || true
  sample "$((SECONDS - start))"
  status=0
  wait "$LOAD" || status=$?
  tail -n 3 "$LOGS/load.err"
  exit "$status"
fi

MINUTES=30 RATE=1 BUILD="${RAMI_BUILD_DIR:-build}" LOGS=/tmp/rami-soak CHECK_RSS=0 FLOOR=5
while (($#)); do
  case "$1" in
    --minutes) MINUTES="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --build) BUILD="$2"; shift 2 ;;
    --logs) LOGS="$2"; shift 2 ;;
    --check-rss) CHECK_RSS=1; shift ;;
    --step-timeout-floor) FLOOR="$2"; shift 2 ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak: unknown flag $1" >&2; exit 2 ;;
  esac
done
[[ "$MINUTES" =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "soak: --minutes: not a number" >&2; exit 2; }
mkdir -p "$LOGS"
SECS="$(awk -v m="$MINUTES" 'BEGIN {printf "%d", m * 60}')"
((SECS >= 30)) || { echo "soak: --minutes: at least 0.5" >&2; exit 2; }
echo "soak: ${MINUTES} min at ${RATE} jobs/s on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" \
  "($(nproc) threads); logs in $LOGS"

# Fixed worker ports, so that the restarted rank comes back where its group expects it.
PORT_BASE=$(python3 -c '
import random, socket
for _ in range(100):
    base = random.randrange(20000, 60000)
    try:
        for p in range(base, base + 4):
            with socket.socket() as s:
                s.bind(("127.0.0.1", p))
        print(base)
        break
    except OSError:
        pass
')
status=0
SOAK_LOGS="$LOGS" SOAK_SECONDS="$SECS" SOAK_BUILD="$BUILD" SOAK_RATE="$RATE" \
  deploy/launch-node.sh --model tests/golden/models/qwen3_dms --cpu-workers 4 --tp 2 --port 0 \
  --http-port 0 --page-size 4 --build "$BUILD" --logs "$LOGS" \
  --host 127.0.0.1 --worker-port-base "$PORT_BASE" \
  --coordinator-args "--step_timeout_floor=$FLOOR --collective_timeout=10" \
  -- "$0" __driver || status=$?

echo "soak: load report (tools/bench_load.h):"
cat "$LOGS/load.json"
echo "soak: RSS (KiB) every 10 s: $LOGS/rss.csv"
result=$(python3 - "$LOGS/load.json" "$LOGS/rss.csv" "$CHECK_RSS" <<'EOF'
import csv, json, sys
load = json.load(open(sys.argv[1]))
rows = [r for r in csv.DictReader(open(sys.argv[2])) if int(r["coordinator_kb"]) > 0]
end_t = int(rows[-1]["t_s"])
warm = next(r for r in rows if int(r["t_s"]) >= end_t // 4)
growth = int(rows[-1]["coordinator_kb"]) / int(warm["coordinator_kb"]) - 1
ok = load["hung"] == 0 and load["lost"] == 0 and (sys.argv[3] == "0" or growth <= 0.10)
print(f"jobs {load['submitted']} completed {load['completed']} aborted {load['aborted']} "
      f"hung {load['hung']} lost {load['lost']} errors {load['errors']}; "
      f"TTFT p50/p99 {load['ttft_ms']['p50']:.0f}/{load['ttft_ms']['p99']:.0f} ms, "
      f"end-to-end p50/p99 {load['e2e_ms']['p50']:.0f}/{load['e2e_ms']['p99']:.0f} ms; "
      f"coordinator RSS {int(warm['coordinator_kb']) / 1024:.1f} MiB at t={warm['t_s']}s -> "
      f"{int(rows[-1]['coordinator_kb']) / 1024:.1f} MiB at t={end_t}s ({growth * 100:+.1f}%)")
sys.exit(0 if ok else 1)
EOF
) || status=1
echo "soak: $result"
echo "soak: $([ "$status" = 0 ] && echo PASSED || echo FAILED)"
exit "$status"
