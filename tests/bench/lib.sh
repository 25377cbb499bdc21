# Shared by the benchmark scripts (sourced, not run): process bookkeeping and waiting for
# servers. The caller defines log, die and TMP before sourcing, and sets BENCH_KEEP to keep
# TMP. Every process started with `spawn` is stopped on exit, also on failure and Ctrl-C.
# shellcheck shell=bash

PIDS=() # everything we start, stopped by pid on exit
cleanup() {
    local rc=$? pid i
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for ((i = 0; i < 50; i++)); do
        local left=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
        ((left)) || break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ -n ${BENCH_KEEP:-} || $rc -ne 0 ]]; then
        log "logs and data kept in $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# spawn LOG CMD... — background process (stdout and stderr to LOG); pid in LAST_PID, PIDS.
spawn() {
    local logf=$1
    shift
    "$@" </dev/null >"$logf" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# stop PID — TERM one process we started and wait for it.
stop() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# wait_http NAME URL PID LOG — until the server answers HTTP at all (60 s at most).
wait_http() {
    local code deadline=$((SECONDS + 60))
    while :; do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$2" || true)
        [[ $code == 000 || -z $code ]] || return 0
        kill -0 "$3" 2>/dev/null || { tail -n 20 "$4" >&2; die "$1 exited during startup (log: $4)"; }
        ((SECONDS < deadline)) || { tail -n 20 "$4" >&2; die "$1 did not answer at $2 (log: $4)"; }
        sleep 0.1
    done
}
