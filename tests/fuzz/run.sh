#!/bin/bash
# Fuzzes every parser of untrusted input in turn and prints, per target: runs, execs/s,
# coverage, corpus size and crashes. Exit status 1 if any target crashed.
#
#   tests/fuzz/run.sh [seconds per target, default 600] [--merge] [target…]
#
# Needs a nightly toolchain (`rustup toolchain install nightly`) and cargo-fuzz
# (`cargo install cargo-fuzz`). Targets run one after another under `nice` (the fuzzer uses
# one core). New inputs go to a scratch corpus under tests/fuzz/target/work/; with --merge,
# those that add coverage are merged into the committed corpus tests/fuzz/corpus/<target>/.
# A crashing input is kept in tests/fuzz/artifacts/<target>/; reproduce it with
#   cargo +nightly fuzz run --fuzz-dir tests/fuzz <target> <file>
set -u
dir=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$dir/../.." && pwd)

seconds=600
merge=0
targets=()
for arg in "$@"; do
    case $arg in
    --merge) merge=1 ;;
    '' | *[!0-9]*) targets+=("$arg") ;;
    *) seconds=$arg ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(ical davxml digest webhook)

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "run.sh: no nightly toolchain; install it with: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "run.sh: cargo-fuzz missing; install it with: cargo install cargo-fuzz" >&2
    exit 2
fi

cd "$root" || exit 2
# -timeout: an input taking 30 s is a hang (quadratic code on a few KB), reported as a crash.
fuzz_args=(-max_total_time="$seconds" -timeout=30 -print_final_stats=1)
# merge_corpus TARGET WORKDIR LOG: replaces the committed corpus by the smallest set of its
# inputs and WORKDIR's that covers every edge either covers (-use_counters=0: hit counts do
# not count, which keeps the corpus small). Inputs named seed-* (real server responses and
# payloads, the structured starting points) and crash-* (inputs that once crashed a target,
# kept as regression inputs) always stay.
merge_corpus() {
    local t=$1 work=$2 log=$3 corpus=$dir/corpus/$1 new=$dir/target/work/$1.min
    rm -rf "$new" && mkdir -p "$new" || return 1
    nice -n 10 cargo +nightly fuzz run --fuzz-dir "$dir" "$t" "$new" "$corpus" "$work" \
        -- -merge=1 -use_counters=0 >"$log" 2>&1 || return 1
    find "$corpus" -maxdepth 1 -type f ! -name 'crash-*' ! -name 'seed-*' -delete
    cp "$new"/* "$corpus"/
}

failed=0
printf '%-8s %12s %9s %6s %7s %12s %s\n' target runs execs/s cov ft corpus crashes
for t in "${targets[@]}"; do
    work=$dir/target/work/$t
    log=$dir/target/work/$t.log
    mkdir -p "$work" "$dir/artifacts/$t"
    nice -n 10 cargo +nightly fuzz run --fuzz-dir "$dir" "$t" "$work" "$dir/corpus/$t" \
        -- "${fuzz_args[@]}" -artifact_prefix="$dir/artifacts/$t/" >"$log" 2>&1
    status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$last")
    crashes=$(grep -cE '^artifact_prefix=|Test unit written to' "$log")
    if [ "$status" -ne 0 ]; then
        failed=1
        [ "$crashes" -gt 0 ] || crashes="exit $status"
    fi
    printf '%-8s %12s %9s %6s %7s %12s %s\n' "$t" "${runs:-?}" "${speed:-?}" "${cov:-?}" \
        "${ft:-?}" "${corp:-?}" "$crashes"
    if [ "$status" -ne 0 ]; then
        grep -m1 -A1 -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" | sed 's/^/         /'
        grep -m1 'Test unit written to' "$log" | sed 's/^/         /'
        echo "         full log: $log"
    fi
    if [ "$merge" = 1 ] && [ "$status" -eq 0 ]; then
        merge_corpus "$t" "$work" "$log.merge" || echo "         merge failed: $log.merge"
    fi
done
exit $failed
