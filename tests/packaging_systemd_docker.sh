#!/usr/bin/env bash
# shellcheck disable=SC2016,SC2013 # literal ${…}/$ in patterns are meant; ids are words
# Checks the systemd units (systemd/) and the Docker image recipe (packaging/docker/)
# without systemd as PID 1 and without a Docker engine:
#
#   a) `systemd-analyze verify` on the three units and on two instances of the template
#      calplanebot@.service (one per workspace) inside a scratch root that has the binary at
#      /usr/local/bin/calplanebot; any message about our units fails. Also the offline
#      `systemd-analyze security` exposure score (at most 2.0).
#   b) the Dockerfile agrees with the repository: binary names as cross/build.sh writes
#      them, platform → target mapping, EXPOSE = HTTP_BIND port = the default in
#      src/config.rs, VOLUME = STATE_DIR, numeric non-root USER, ENTRYPOINT = COPY target,
#      commands that exist, a build context that contains the binaries.
#   c) every variable the units and the image set is one calplanebot reads (VARIABLES in
#      src/config.rs, or <secret>_FILE), and the credential wiring is complete; the template
#      is calplanebot.service but for its per-instance paths (same hardening).
#   d) with the debug binary (when built): the credential fallback the units rely on, i.e. a
#      credential holding only "\n" counts as not set, and an empty NAME_FILE from the env
#      file lets NAME win.
#
# One line per check; exit 1 if any failed. Checks whose tool is missing print SKIP
# (set REQUIRE_SYSTEMD_ANALYZE=1 to make a missing systemd-analyze a failure; on Debian it
# comes with `apt-get install systemd`).
#
# Usage: tests/packaging_systemd_docker.sh
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
UNITS=(calplanebot.service calplanebot-once.service calplanebot.timer)
# The template (one instance per workspace) and two instances that verify loads from it.
TEMPLATE=calplanebot@.service
INSTANCES=(calplanebot@acme.service calplanebot@beta.service)
DOCKERFILE=packaging/docker/Dockerfile
CONFIG_RS=src/config.rs
BIN=${CPB_BIN:-$ROOT/target/debug/calplanebot}
TRIPLES=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-musleabihf)

failures=0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

ok() { echo "ok    $*"; }
fail() {
    echo "FAIL  $*"
    failures=$((failures + 1))
}
skip() { echo "SKIP  $*"; }
# check DESCRIPTION COMMAND...: ok when COMMAND succeeds.
check() {
    local what=$1
    shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}

# --- a) systemd-analyze ------------------------------------------------------------------

if command -v systemd-analyze >/dev/null; then
    R=$TMP/root
    mkdir -p "$R/usr/local/bin" "$R/etc/systemd/system" "$R/usr/lib/systemd"
    for u in "${UNITS[@]}" "$TEMPLATE"; do cp "systemd/$u" "$R/etc/systemd/system/"; done
    # The units' dependencies (network-online.target, timers.target, …) come from the host.
    # Copied, not linked: the unit directory's own symlinks must resolve inside the root.
    for d in /usr/lib/systemd/system /lib/systemd/system; do
        if [ -d "$d" ]; then
            cp -a "$d" "$R/usr/lib/systemd/"
            break
        fi
    done
    # verify only needs an executable at the ExecStart path.
    if [ -x "$BIN" ]; then cp "$BIN" "$R/usr/local/bin/calplanebot"; else
        cp /bin/true "$R/usr/local/bin/calplanebot"
    fi
    out=$(systemd-analyze verify --root="$R" "${UNITS[@]}" "${INSTANCES[@]}" 2>&1)
    rc=$?
    if [ $rc -eq 0 ] && [ -z "$out" ]; then
        ok "systemd-analyze verify: ${UNITS[*]} ${INSTANCES[*]} ($(systemd-analyze --version | head -1))"
    else
        fail "systemd-analyze verify (exit $rc):"
        printf '        %s\n' "$out"
    fi
    # Offline security scoring exists since systemd 250.
    if sec=$(systemd-analyze security --offline=yes --root="$R" calplanebot.service \
        calplanebot-once.service "${INSTANCES[@]}" 2>&1); then
        scores=$(sed -n 's/.*Overall exposure level for \([^:]*\): \([0-9.]*\).*/\1=\2/p' <<<"$sec")
        if [ -z "$scores" ]; then
            fail "systemd-analyze security: no score in its output"
        elif awk -F= '$2 > 2.0 { bad = 1 } END { exit bad }' <<<"$scores"; then
            ok "systemd-analyze security exposure <= 2.0: $(tr '\n' ' ' <<<"$scores")"
        else
            fail "systemd-analyze security exposure above 2.0: $(tr '\n' ' ' <<<"$scores")"
        fi
    else
        skip "systemd-analyze security --offline (needs systemd 250+)"
    fi
elif [ "${REQUIRE_SYSTEMD_ANALYZE:-0}" = 1 ]; then
    fail "systemd-analyze not found (apt-get install systemd)"
else
    skip "systemd-analyze not found (apt-get install systemd); units not verified"
fi

# --- values from the sources -------------------------------------------------------------

# VARIABLES in src/config.rs as "NAME|DEFAULT|SECRET" lines (entries may span lines).
variables=$(sed -n '/^pub const VARIABLES/,/^];/p' "$CONFIG_RS" | tr '\n' ' ' |
    grep -oE '\(\s*"[A-Z_]+",\s*"[^"]*",\s*(true|false),?\s*\)' |
    sed -E 's/\(\s*"([A-Z_]+)",\s*"([^"]*)",\s*(true|false),?\s*\)/\1|\2|\3/')
default_of() { awk -F'|' -v n="$1" '$1 == n { print $2 }' <<<"$variables"; }
is_secret() { awk -F'|' -v n="$1" '$1 == n && $3 == "true" { f = 1 } END { exit !f }' <<<"$variables"; }
known_variable() {
    local v=$1
    awk -F'|' -v n="$v" '$1 == n { f = 1 } END { exit !f }' <<<"$variables" && return 0
    [[ $v == *_FILE ]] && is_secret "${v%_FILE}"
}
check "src/config.rs: VARIABLES parsed ($(wc -l <<<"$variables") entries)" \
    test "$(wc -l <<<"$variables")" -ge 20

bind_default=$(default_of HTTP_BIND)
default_port=${bind_default##*:}
# The same default must also be what from_env uses when HTTP_BIND is unset.
check "src/config.rs: HTTP_BIND default $bind_default is also the from_env default" \
    grep -q "None => Some(\"$bind_default\"" "$CONFIG_RS"

# --- b) Dockerfile -----------------------------------------------------------------------

# Dockerfile instruction lines with continuations joined, comments dropped.
instructions=$(sed -e '/^\s*#/d' "$DOCKERFILE" | sed -e ':a' -e '/\\$/{N;s/\\\n\s*/ /;ba}')
instr() { awk -v k="$1" 'toupper($1) == k { $1 = ""; sub(/^ /, ""); print }' <<<"$instructions"; }
env_value() { instr ENV | sed -n "s/^$1=//p" | tail -1; }

# Each platform stage copies target/dist/calplanebot-<triple> (what cross/build.sh writes)
# to one destination, and the final stage is picked by TARGETARCH/TARGETVARIANT.
declare -A stage_triple=([amd64]=x86_64-unknown-linux-musl [arm64]=aarch64-unknown-linux-musl
    [armv7]=armv7-unknown-linux-musleabihf)
dest=""
for stage in "${!stage_triple[@]}"; do
    triple=${stage_triple[$stage]}
    line=$(awk -v s="bin-$stage" 'toupper($1) == "FROM" { cur = $NF } cur == s && toupper($1) == "COPY"' \
        <<<"$instructions")
    src=$(awk '{ print $(NF - 1) }' <<<"$line")
    d=$(awk '{ print $NF }' <<<"$line")
    check "Dockerfile: stage bin-$stage copies target/dist/calplanebot-$triple ($src)" \
        test "$src" = "target/dist/calplanebot-$triple"
    if [ -n "$dest" ] && [ "$d" != "$dest" ]; then fail "Dockerfile: COPY destinations differ ($d, $dest)"; fi
    dest=$d
done
check "Dockerfile: linux/arm64 reported as variant v8 maps to the arm64 stage" \
    grep -qE '^FROM bin-arm64 AS bin-arm64v8$' <<<"$instructions"
check "Dockerfile: final stage is bin-\${TARGETARCH}\${TARGETVARIANT}" \
    test "$(instr FROM | tail -1)" = 'bin-${TARGETARCH}${TARGETVARIANT}'
check "Dockerfile: final stage starts from scratch (via the bin-* stages)" \
    test "$(instr FROM | grep -c '^scratch AS bin-')" -eq 3

if [ -f cross/build.sh ]; then
    for t in "${TRIPLES[@]}"; do
        check "cross/build.sh knows $t" grep -q -- "$t" cross/build.sh
    done
    check "cross/build.sh writes target/dist/calplanebot-<triple>" \
        sh -c 'grep -qE "target/dist/calplanebot-\\\$" cross/build.sh ||
            { grep -qE "^DIST=.*/target/dist\$" cross/build.sh &&
                grep -qE "\\\$DIST/calplanebot-\\\$" cross/build.sh; }'
else
    skip "cross/build.sh not in this checkout; assumed output target/dist/calplanebot-<triple>"
fi

ign=$DOCKERFILE.dockerignore
check "$ign: context is only target/dist/calplanebot-*" \
    test "$(grep -vE '^\s*(#|$)' "$ign" | tr '\n' ' ')" = '* !target/dist/calplanebot-* '

entry=$(instr ENTRYPOINT)
check "Dockerfile: ENTRYPOINT [\"$dest\"] runs the copied binary ($entry)" \
    test "$entry" = "[\"$dest\"]"
check "Dockerfile: CMD [\"run\"], a command of src/main.rs" \
    sh -c "test '$(instr CMD)' = '[\"run\"]' && grep -q '\"run\" =>' src/main.rs"
hc=$(instr HEALTHCHECK)
check "Dockerfile: HEALTHCHECK runs '$dest status' (no curl in scratch)" \
    sh -c "echo '$hc' | grep -qF 'CMD [\"$dest\", \"status\"]' && grep -q '\"status\" =>' src/main.rs"

expose=$(instr EXPOSE)
http_bind=$(env_value HTTP_BIND)
check "Dockerfile: EXPOSE $expose = port of ENV HTTP_BIND=$http_bind = default port $default_port" \
    test "$expose" = "$default_port" -a "${http_bind##*:}" = "$default_port"

state_dir=$(env_value STATE_DIR)
check "Dockerfile: VOLUME $(instr VOLUME) = ENV STATE_DIR=$state_dir = WORKDIR $(instr WORKDIR)" \
    test -n "$state_dir" -a "$(instr VOLUME)" = "$state_dir" -a "$(instr WORKDIR)" = "$state_dir"

user=$(instr USER)
check "Dockerfile: USER $user is numeric and not root" \
    sh -c "echo '$user' | grep -qE '^[0-9]+:[0-9]+$' && [ '${user%%:*}' != 0 ] && [ '${user##*:}' != 0 ]"
# USER must come before WORKDIR so that BuildKit creates /data owned by that user.
check "Dockerfile: USER comes before WORKDIR (state directory owned by the user)" \
    test "$(grep -nE '^(USER|WORKDIR) ' "$DOCKERFILE" | head -1 | cut -d' ' -f1 | cut -d: -f2)" = USER

# No CA bundle in the image: rustls must use the built-in webpki roots.
check "Cargo: ureq with rustls and webpki-roots (no CA bundle needed in scratch)" \
    sh -c 'grep -qE "^ureq = .*features = \[.*\"rustls(-webpki-roots)?\"" Cargo.toml &&
        grep -q "^name = \"webpki-roots\"" Cargo.lock &&
        ! grep -q "PlatformVerifier\|rustls-native-certs" src/http.rs Cargo.lock'

# --- c) variables and credentials --------------------------------------------------------

check "src/config.rs: STATE_DIR falls back to \$STATE_DIRECTORY (StateDirectory=)" \
    grep -q 'env.get("STATE_DIRECTORY")' "$CONFIG_RS"
check "src/main.rs: --once exists (calplanebot-once.service)" grep -q '"--once"' src/main.rs

for u in calplanebot.service calplanebot-once.service "$TEMPLATE"; do
    f=systemd/$u
    # Per workspace: state, settings and secrets in the instance's (%i) own places; the
    # settings file is required there (an instance without one must not start).
    sd=calplanebot envf=-/etc/calplanebot/calplanebot.env etc=/etc/calplanebot
    [ "$u" != "$TEMPLATE" ] || sd=calplanebot/%i envf=/etc/calplanebot/%i.env etc=/etc/calplanebot/%i
    vars=$(sed -n 's/^Environment=\([A-Z_]*\)=.*/\1/p' "$f")
    for v in $vars; do
        check "$u: Environment=$v is read by calplanebot" known_variable "$v"
    done
    check "$u: StateDirectory=$sd, no STATE_DIR override" \
        sh -c "grep -qx 'StateDirectory=$sd' '$f' && ! grep -q '^Environment=STATE_DIR=' '$f'"
    check "$u: EnvironmentFile=$envf" grep -qx "EnvironmentFile=$envf" "$f"
    # Every secret of VARIABLES arrives as a credential: LoadCredential, a SetCredential
    # fallback of the same id (a missing file must not fail the start), NAME_FILE=%d/id.
    for s in $(awk -F'|' '$3 == "true" { print $1 }' <<<"$variables"); do
        id=$(sed -n "s|^Environment=${s}_FILE=%d/\(.*\)|\1|p" "$f")
        check "$u: $s via credential '$id' (LoadCredential + SetCredential fallback)" \
            sh -c "[ -n '$id' ] && grep -qx 'LoadCredential=$id:$etc/$id' '$f' &&
                grep -qx 'SetCredential=$id:\\\\n' '$f'"
    done
done
for v in $(instr ENV | sed 's/=.*//'); do
    check "Dockerfile: ENV $v is read by calplanebot" known_variable "$v"
done
# The template's settings are calplanebot.service's but for the per-instance paths above,
# the description and Conflicts= (also against calplanebot.service, whose state directory
# holds the instances'): the same hardening, credentials, restart and stop behaviour.
directives() { grep -E '^[A-Za-z]+=' "$1" | grep -vE '^(Description|Conflicts)='; }
template_diff=$(diff <(directives systemd/calplanebot.service) <(directives "systemd/$TEMPLATE" |
    sed -e 's|^StateDirectory=calplanebot/%i$|StateDirectory=calplanebot|' \
        -e 's|^EnvironmentFile=/etc/calplanebot/%i\.env$|EnvironmentFile=-/etc/calplanebot/calplanebot.env|' \
        -e 's|^\(LoadCredential=[a-z-]*:/etc/calplanebot/\)%i/|\1|'))
check "$TEMPLATE: calplanebot.service's settings but for the per-instance paths" \
    test -z "$template_diff"
[ -z "$template_diff" ] || printf '        %s\n' "$template_diff"
check "$TEMPLATE: Conflicts=calplanebot.service calplanebot.timer" \
    grep -qx 'Conflicts=calplanebot.service calplanebot.timer' "systemd/$TEMPLATE"
check "calplanebot.timer starts calplanebot-once.service" \
    grep -qx 'Unit=calplanebot-once.service' systemd/calplanebot.timer

# --- d) the credential fallback against the binary ---------------------------------------

if [ -x "$BIN" ]; then
    printf '\n' >"$TMP/empty-cred"
    base=(PLANE_BASE_URL=https://plane.example.com PLANE_WORKSPACE_SLUG=acme
        CALDAV_URL=https://dav.example.com/ PATH=/usr/bin:/bin)
    out=$(cd "$TMP" && env -i "${base[@]}" PLANE_API_TOKEN_FILE="$TMP/empty-cred" \
        "$BIN" validate-config 2>&1)
    check "binary: a credential of just \"\\n\" counts as not set" \
        grep -q 'PLANE_API_TOKEN: is not set' <<<"$out"
    out=$(cd "$TMP" && env -i "${base[@]}" PLANE_API_TOKEN_FILE="$TMP/empty-cred" \
        PLANE_API_TOKEN=from-env "$BIN" validate-config 2>&1)
    check "binary: an empty credential defers to PLANE_API_TOKEN from the env file" \
        grep -q 'configuration OK' <<<"$out"
    out=$(cd "$TMP" && env -i "${base[@]}" PLANE_API_TOKEN_FILE= PLANE_API_TOKEN=from-env \
        "$BIN" validate-config 2>&1)
    check "binary: empty PLANE_API_TOKEN_FILE= (env file) lets PLANE_API_TOKEN win" \
        grep -q 'configuration OK' <<<"$out"
    printf 'tok\n' >"$TMP/cred"
    out=$(cd "$TMP" && env -i "${base[@]}" PLANE_API_TOKEN_FILE="$TMP/cred" "$BIN" config 2>&1)
    check "binary: PLANE_API_TOKEN from a credential file" \
        grep -q "PLANE_API_TOKEN=\*\*\*\* (from $TMP/cred)" <<<"$out"
    out=$(cd "$TMP" && env -i "${base[@]}" STATE_DIRECTORY=/var/lib/calplanebot "$BIN" config 2>&1)
    check "binary: no unknown-variable warning for the systemd variables" \
        test -z "$(grep -i warning <<<"$out")"
else
    skip "no binary at $BIN (cargo build); credential fallback not exercised"
fi

if [ $failures -ne 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all packaging checks passed"
