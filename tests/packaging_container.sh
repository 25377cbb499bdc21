#!/usr/bin/env bash
# Builds the container image (packaging/docker/Dockerfile) with Debian's podman from the
# static binary of cross/build.sh and runs it for real, host network, as the image's uid 65534:
#
#   1. build: `podman build --format docker --platform linux/<arch>` (--platform sets the
#      TARGETARCH/TARGETVARIANT the Dockerfile picks the binary with; podman leaves them
#      unset without it); prints the image size; the image keeps its HEALTHCHECK, USER
#      65534:65534 and ENTRYPOINT, and has this machine's architecture.
#   2. `--once` against a Radicale of this script's own and the fake Plane, settings from an
#      --env-file, secrets as files under /run/secrets (*_FILE), the state on a bind mount
#      chowned to 65534: exits 0 with Created > 0, the server holds exactly that many
#      objects, the journal on the host belongs to uid 65534, and a second `--once` in a new
#      container reads that journal (Created 0, no PUT).
#   3. `run` (the image's CMD) detached, state on a named volume: /health answers 200, the
#      daemon's first cycle puts the same objects into a second user's calendars, the
#      HEALTHCHECK command (`podman healthcheck run`) reports healthy, and `podman stop`
#      (SIGTERM) ends it with exit status 0.
#
# Nothing is skipped: when podman cannot be installed (needs root + apt-get) or cannot run
# a container here, the test fails. Installs when missing: podman, runc, curl (Debian); the
# static binary for this machine's architecture (cross/build.sh, a no-op when up to date);
# Radicale, pinned by tests/requirements.txt, into .tests/cross-venv (as tests/cross_check.sh).
# podman keeps its images, containers and volumes under .tests/container/ (not the
# machine's own podman storage) and everything is removed on exit. Prints the seconds each
# phase took.
#
# Why these podman flags: vfs storage works on any file system (overlay needs kernel
# support that containers and CI machines may lack); runc and cgroupfs because crun refuses
# the cgroup setup of machines without systemd as PID 1, and there is no systemd to manage
# cgroups; the explicit ulimits because runc cannot raise the defaults podman asks for
# there. `--format docker`: the OCI image format has no HEALTHCHECK, podman drops it.
#
# Usage: tests/packaging_container.sh     Environment: CONTAINER_READY_TIMEOUT=60 (seconds)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
WORK=$ROOT/.tests/container
VENV=${CROSS_VENV:-$ROOT/.tests/cross-venv}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
FAKE_PLANE=$TARGET/debug/examples/fake-plane
HOST=127.0.0.1
READY_TIMEOUT=${CONTAINER_READY_TIMEOUT:-60}
IMAGE=localhost/calplanebot-test:latest
VOLUME=calplanebot-test-data
# Prefixed so that a cleanup only ever removes this script's containers.
CTR=calplanebot-test
PODMAN=(podman --root "$WORK/storage" --runroot "$WORK/runroot" --storage-driver vfs
    --runtime runc --cgroup-manager cgroupfs --events-backend file)
RUN_FLAGS=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network host)
PIDS=()
t_start=$SECONDS

log() { printf 'container: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    echo "FAIL  $*"
    exit 1
}
# shellcheck source=lib.sh
. "$ROOT/tests/lib.sh"

failures=0
ok() { echo "ok    $*"; }
fail() {
    echo "FAIL  $*"
    failures=$((failures + 1))
}
# check DESCRIPTION COMMAND...: ok when COMMAND succeeds.
check() {
    local what=$1
    shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}
alive() { kill -0 "$1" 2>/dev/null; }

# This machine's architecture: the short name for cross/build.sh and the TARGETARCH the
# Dockerfile's stages are named after (the image must run here, natively).
case $(uname -m) in
x86_64) ARCH=x86_64 TARGETARCH=amd64 TARGETVARIANT= ;;
aarch64) ARCH=aarch64 TARGETARCH=arm64 TARGETVARIANT= ;;
armv7l) ARCH=armv7 TARGETARCH=arm TARGETVARIANT=v7 ;;
*) die "no static build for $(uname -m)" ;;
esac
TRIPLE=$(triple_of "$ARCH")
BIN=$ROOT/target/dist/calplanebot-$TRIPLE

# Radicale as tests/cross_check.sh installs it (same venv and marker, so neither reinstalls).
install_radicale() {
    local spec
    spec=$(grep -m1 '^radicale==' tests/requirements.txt 2>/dev/null || echo radicale)
    [[ -x $VENV/bin/radicale && $(cat "$VENV/.radicale-spec" 2>/dev/null) == "$spec" ]] && return 0
    log "installing $spec into $VENV"
    [[ -x $VENV/bin/pip ]] || "${PYTHON3:-python3}" -m venv "$VENV" >>"$WORK/install.log" 2>&1 ||
        die "cannot create a venv (on Debian: apt-get install python3-venv)"
    "$VENV/bin/pip" install -q --disable-pip-version-check "$spec" >>"$WORK/install.log" 2>&1 ||
        die "pip install $spec failed (see $WORK/install.log)"
    echo "$spec" >"$VENV/.radicale-spec"
}

free_port() {
    "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_ready() { # name url pid log
    local code deadline=$((SECONDS + READY_TIMEOUT))
    while :; do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$2" || true)
        [[ $code == 000 || -z $code ]] || return 0
        alive "$3" || { tail -n 20 "$4" >&2; die "$1 exited during startup (log: $4)"; }
        ((SECONDS < deadline)) || { tail -n 20 "$4" >&2; die "$1 did not answer at $2 (log: $4)"; }
        sleep 0.2
    done
}

# Removes this script's containers, volume and image, then its podman storage.
podman_cleanup() {
    command -v podman >/dev/null && [[ -d $WORK/storage ]] || return 0
    local c
    for c in $("${PODMAN[@]}" ps -a --format '{{.Names}}' 2>/dev/null); do
        [[ $c == "$CTR"-* ]] && "${PODMAN[@]}" rm -f -t 0 "$c" >/dev/null 2>&1
    done
    "${PODMAN[@]}" volume rm -f "$VOLUME" >/dev/null 2>&1
    "${PODMAN[@]}" rmi -f "$IMAGE" >/dev/null 2>&1
    rm -rf "$WORK/storage" "$WORK/runroot"
}

cleanup() {
    local rc=$? pid i
    podman_cleanup || true
    if ((${#PIDS[@]})); then
        kill -TERM "${PIDS[@]}" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            local left=0
            for pid in "${PIDS[@]}"; do alive "$pid" && left=1; done
            ((left)) || break
            sleep 0.1
        done
        for pid in "${PIDS[@]}"; do alive "$pid" && kill -KILL "$pid" 2>/dev/null; done
        wait "${PIDS[@]}" 2>/dev/null || true
    fi
    exit "$rc"
}

# objects_of USER PASSWORD — the number of calendar objects in USER's calendar home, by
# PROPFIND (Depth 1 on the home, then on every calendar in it). Radicale answers on one line.
objects_of() {
    local n=0 c cal
    for cal in $(propfind_hrefs "$1" "$2" "/$1/" | grep '/$' | grep -vx "/$1/"); do
        c=$(propfind_hrefs "$1" "$2" "$cal" | grep -c '\.ics$' || true)
        n=$((n + c))
    done
    echo "$n"
}

# propfind_hrefs USER PASSWORD PATH — the href of every response to a Depth 1 PROPFIND.
propfind_hrefs() {
    curl -s --max-time 10 -u "$1:$2" -X PROPFIND -H 'Depth: 1' -H 'Content-Type: application/xml' \
        --data '<propfind xmlns="DAV:"><prop><resourcetype/></prop></propfind>' \
        "http://$HOST:$RADICALE_PORT$3" | grep -o '<response><href>[^<]*</href>' |
        sed 's|<response><href>\(.*\)</href>|\1|'
}

# owned_by_nobody DIR — DIR has files, and all of them belong to uid 65534.
owned_by_nobody() {
    local others
    [[ -n $(find "$1" -type f) ]] || return 1
    others=$(find "$1" ! -uid 65534 | head -3)
    [[ -z $others ]] || { log "not owned by 65534: $others"; return 1; }
}

# A user's real settings must not leak into the containers' env files.
for v in $(compgen -e); do
    case $v in
    PLANE_* | CALDAV_* | SYNC_* | STATE_DIR | STATE_DIRECTORY | LOG_LEVEL | HTTP_BIND) unset "$v" ;;
    esac
done

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
podman_cleanup
rm -rf "$WORK"
mkdir -p "$WORK"

# --- tools and the binary --------------------------------------------------------------------

t0=$SECONDS
apt_need "$WORK/install.log" podman podman runc
apt_need "$WORK/install.log" runc runc
apt_need "$WORK/install.log" curl curl
t_install=$((SECONDS - t0))
log "$(podman --version), $(runc --version | head -1)"

t0=$SECONDS
cross/build.sh "$ARCH" >"$WORK/cross-build.out" 2>&1 ||
    { tail -n 20 "$WORK/cross-build.out" >&2; die "cross/build.sh $ARCH failed"; }
t_binary=$((SECONDS - t0))
[[ -x $BIN ]] || die "cross/build.sh did not write $BIN"
install_radicale
cargo build -q --example fake-plane || die "cargo build --example fake-plane failed"

# --- 1. build ----------------------------------------------------------------------------

t0=$SECONDS
PLATFORM=linux/$TARGETARCH${TARGETVARIANT:+/$TARGETVARIANT}
"${PODMAN[@]}" build --format docker --platform "$PLATFORM" -f packaging/docker/Dockerfile \
    -t "$IMAGE" . >"$WORK/build.log" 2>&1 ||
    { tail -n 20 "$WORK/build.log" >&2; die "podman build --platform $PLATFORM failed"; }
t_build=$((SECONDS - t0))
size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")
bin_size=$(stat -c %s "$BIN")
echo "image $IMAGE ($PLATFORM): $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.2f", s / 1e6 }') MB), binary $bin_size bytes"
check "image: size $size bytes is the binary ($bin_size) plus less than 64 KiB" \
    test "$size" -ge "$bin_size" -a "$size" -lt $((bin_size + 65536))
hc=$("${PODMAN[@]}" image inspect --format '{{.HealthCheck}}' "$IMAGE")
check "image: HEALTHCHECK kept (--format docker): $hc" grep -q '/calplanebot status' <<<"$hc"
arch=$("${PODMAN[@]}" image inspect --format '{{.Architecture}}' "$IMAGE")
check "image: architecture $arch" test "$arch" = "$TARGETARCH"
user=$("${PODMAN[@]}" image inspect --format '{{.User}}' "$IMAGE")
check "image: USER $user" test "$user" = 65534:65534
ver=$("${PODMAN[@]}" run --rm "${RUN_FLAGS[@]}" "$IMAGE" --version 2>"$WORK/version.err") || true
check "image: ENTRYPOINT runs the binary: '$ver'" \
    test "$ver" = "$("$BIN" --version)" -a -n "$ver"

# --- a CalDAV server and the fake Plane on the host network --------------------------------

RADICALE_PORT=$(free_port)
PLANE_PORT=$(free_port)
HTTP_PORT=$(free_port)
rd=$WORK/radicale
mkdir -p "$rd"
printf 'once:pw-once\nrun:pw-run\n' >"$rd/users"
write_radicale_conf "$rd" "$HOST:$RADICALE_PORT"
"$VENV/bin/radicale" --config "$rd/radicale.conf" </dev/null >"$rd/radicale.log" 2>&1 &
PIDS+=("$!")
wait_ready Radicale "http://$HOST:$RADICALE_PORT/" "$!" "$rd/radicale.log"
"$FAKE_PLANE" --addr "$HOST:$PLANE_PORT" --projects 3 --items 40 --api-key ctr-token \
    --slug ctr </dev/null >"$WORK/fake-plane.log" 2>&1 &
PIDS+=("$!")
wait_ready "fake Plane" "http://$HOST:$PLANE_PORT/api/v1/users/me/" "$!" "$WORK/fake-plane.log"

# Secrets as a Docker secret or a read-only mount would bring them: files, readable by the
# container's user (the directory is mounted read-only).
mkdir -p "$WORK/secrets"
printf 'ctr-token\n' >"$WORK/secrets/plane-token"
printf 'pw-once\n' >"$WORK/secrets/once-password"
printf 'pw-run\n' >"$WORK/secrets/run-password"
chmod 0444 "$WORK/secrets"/*
# env_file USER — the settings of one container, as a user's --env-file would hold them.
env_file() {
    cat <<EOF
PLANE_BASE_URL=http://$HOST:$PLANE_PORT
PLANE_API_TOKEN_FILE=/run/secrets/plane-token
PLANE_WORKSPACE_SLUG=ctr
CALDAV_URL=http://$HOST:$RADICALE_PORT/
CALDAV_USERNAME=$1
CALDAV_PASSWORD_FILE=/run/secrets/$1-password
EOF
}
env_file once >"$WORK/once.env"
env_file run >"$WORK/run.env"
echo "HTTP_BIND=$HOST:$HTTP_PORT" >>"$WORK/run.env"
SECRETS=(-v "$WORK/secrets:/run/secrets:ro")

# --- 2. --once, state on a bind mount --------------------------------------------------------

t0=$SECONDS
data=$WORK/once-data
mkdir -p "$data"
chown 65534:65534 "$data" || die "chown 65534:65534 $data failed (needs root)"
once() { # N — one `--once` container; output in $WORK/onceN.{out,err}
    "${PODMAN[@]}" run --rm --name "$CTR-once$1" "${RUN_FLAGS[@]}" --env-file "$WORK/once.env" \
        "${SECRETS[@]}" -v "$data:/data" "$IMAGE" --once >"$WORK/once$1.out" 2>"$WORK/once$1.err"
}
rc=0
once 1 || rc=$?
created=$(sed -n 's/^ *Created: *\([0-9]*\).*/\1/p' "$WORK/once1.out")
check "--once in the container exits 0 (exit $rc, log: $WORK/once1.err)" test "$rc" -eq 0
check "--once created events (Created: ${created:-none})" test "${created:-0}" -gt 0
on_server=$(objects_of once pw-once)
check "Radicale holds the $on_server objects --once created (${created:-none})" \
    test "$on_server" = "${created:-x}"
check "the journal in the bind mount belongs to uid 65534 ($(find "$data" -type f -printf '%f ' | head -c 200))" \
    owned_by_nobody "$data"
rc=0
once 2 || rc=$?
again=$(grep '^ *Requests:' "$WORK/once2.out" || true)
again=${again#"${again%%[! ]*}"}
check "a second --once in a new container reuses the journal (exit $rc, Created 0, no PUT: $again)" \
    sh -c "[ $rc -eq 0 ] && grep -q '^ *Created: *0\$' '$WORK/once2.out' && [ -n '$again' ] &&
        ! echo '$again' | grep -q PUT"
t_once=$((SECONDS - t0))

# --- 3. run, state on a named volume ---------------------------------------------------------

t0=$SECONDS
"${PODMAN[@]}" volume create "$VOLUME" >/dev/null
"${PODMAN[@]}" run -d --name "$CTR-run" "${RUN_FLAGS[@]}" --env-file "$WORK/run.env" \
    "${SECRETS[@]}" -v "$VOLUME:/data" "$IMAGE" >"$WORK/run.id" 2>"$WORK/run.err" ||
    { cat "$WORK/run.err" >&2; die "podman run -d failed"; }
# Waits for /health 200 and for the first cycle's objects in the second user's calendars.
health="" n=0 deadline=$((SECONDS + READY_TIMEOUT))
while :; do
    health=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$HOST:$HTTP_PORT/health" || true)
    [[ $health == 200 ]] && n=$(objects_of run pw-run)
    [[ $health == 200 && $n == "${created:-x}" ]] && break
    running=$("${PODMAN[@]}" inspect --format '{{.State.Running}}' "$CTR-run" 2>/dev/null || echo false)
    [[ $running == true ]] || break
    ((SECONDS < deadline)) || break
    sleep 0.5
done
"${PODMAN[@]}" logs "$CTR-run" >"$WORK/run.log" 2>&1 || true
check "run in the container: /health answers 200 on $HOST:$HTTP_PORT (got ${health:-nothing}, log: $WORK/run.log)" \
    test "$health" = 200
check "run in the container: its first cycle put $n objects into the second user's calendars (--once: ${created:-none})" \
    test "$n" = "${created:-x}"
hc_out=$("${PODMAN[@]}" healthcheck run "$CTR-run" 2>&1) && hc_rc=0 || hc_rc=$?
hc_state=$("${PODMAN[@]}" inspect --format '{{.State.Health.Status}}' "$CTR-run" 2>/dev/null || true)
check "HEALTHCHECK (/calplanebot status) in the container: exit $hc_rc, '${hc_out:-no output}', state '$hc_state'" \
    test "$hc_rc" -eq 0 -a "$hc_state" = healthy
mnt=$("${PODMAN[@]}" volume inspect --format '{{.Mountpoint}}' "$VOLUME")
check "the journal in the named volume belongs to uid 65534" owned_by_nobody "$mnt"
"${PODMAN[@]}" stop -t 10 "$CTR-run" >/dev/null 2>&1 || true
code=$("${PODMAN[@]}" inspect --format '{{.State.ExitCode}}' "$CTR-run" 2>/dev/null || echo none)
check "podman stop (SIGTERM) ends run with exit status 0 (got $code)" test "$code" = 0
t_run=$((SECONDS - t0))

echo "container: ${TRIPLE} image; ${t_install}s install, ${t_binary}s static binary, ${t_build}s build, ${t_once}s --once x2, ${t_run}s run; $((SECONDS - t_start))s in all"
if ((failures)); then
    echo "$failures container check(s) failed (logs: $WORK)"
    exit 1
fi
echo "all container checks passed"
