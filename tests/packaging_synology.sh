#!/bin/sh
# Builds a Synology .spk from a real calplanebot binary, checks its structure, then plays
# DSM: runs postinst and start-stop-status in a temp dir and checks that the service
# starts, answers /health, and stops.
#
#   tests/packaging_synology.sh            # uses target/debug/calplanebot (builds it if missing)
#   CALPLANEBOT_BIN=path tests/packaging_synology.sh
#
# One line per check; exits non-zero if any check failed.
set -u

repo=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
failures=0
bin=${CALPLANEBOT_BIN:-$repo/target/debug/calplanebot}

ok() { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; failures=$((failures + 1)); }
# expect_rc WANT DESCRIPTION COMMAND...: the command's exit status is WANT ("!0": not 0).
expect_rc() {
    want=$1 desc=$2
    shift 2
    "$@" >/dev/null 2>&1
    rc=$?
    if [ "$want" = "!0" ] && [ "$rc" != 0 ] || [ "$rc" = "$want" ]; then
        ok "$desc (exit $rc)"
    else
        bad "$desc (exit $rc, want $want)"
    fi
}
check() { # check DESCRIPTION COMMAND...
    desc=$1
    shift
    if "$@" >/dev/null 2>&1; then ok "$desc"; else bad "$desc"; fi
}

cleanup() {
    # Only the process this test started, by its recorded pid.
    if [ -r "$tmp/var/calplanebot.pid" ]; then
        kill "$(cat "$tmp/var/calplanebot.pid")" 2>/dev/null
    fi
    [ -n "${sleeper:-}" ] && kill "$sleeper" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

if [ ! -x "$bin" ]; then
    (cd "$repo" && cargo build -q) || { echo "FAIL - cargo build"; exit 1; }
fi
case $(uname -m) in
    x86_64) arch=x86_64 wrong=aarch64 ;;
    aarch64) arch=aarch64 wrong=x86_64 ;;
    armv7*) arch=armv7 wrong=x86_64 ;;
    *) echo "FAIL - no DSM arch for $(uname -m)"; exit 1 ;;
esac
cargo_version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n 1)

# --- build -----------------------------------------------------------------------------
if spk=$("$repo/packaging/synology/build-spk.sh" "$arch" "$bin" "$tmp/out" 2>"$tmp/build.err"); then
    ok "build-spk.sh $arch builds $(basename "$spk")"
else
    bad "build-spk.sh $arch: $(cat "$tmp/build.err")"
    exit 1
fi
check "the file is named calplanebot-$cargo_version-1-x86_64.spk style" \
    test "$(basename "$spk")" = "calplanebot-$cargo_version-1-$([ "$arch" = aarch64 ] && echo armv8 || echo "$arch").spk"
check "build-spk.sh refuses a binary of another architecture ($wrong)" \
    sh -c "! '$repo/packaging/synology/build-spk.sh' $wrong '$bin' '$tmp/wrong'"
check "build-spk.sh refuses an unknown ARCH" \
    sh -c "! '$repo/packaging/synology/build-spk.sh' mips '$bin' '$tmp/wrong'"

# --- structure -------------------------------------------------------------------------
check "the .spk is an uncompressed tar" sh -c "[ \"\$(od -An -tx1 -N2 '$spk' | tr -d ' ')\" != 1f8b ] && tar -tf '$spk'"
mkdir -p "$tmp/spk"
tar -xf "$spk" -C "$tmp/spk"
for f in INFO package.tgz scripts/preinst scripts/postinst scripts/preuninst scripts/postuninst \
    scripts/preupgrade scripts/postupgrade scripts/start-stop-status conf/privilege conf/resource \
    WIZARD_UIFILES/install_uifile LICENSE PACKAGE_ICON.PNG PACKAGE_ICON_256.PNG; do
    check "spk has $f" test -s "$tmp/spk/$f"
done
for s in "$tmp"/spk/scripts/*; do
    check "scripts/$(basename "$s") is executable and valid sh" sh -c "test -x '$s' && sh -n '$s'"
done

info() { sed -n "s/^$1=\"\(.*\)\"\$/\1/p" "$tmp/spk/INFO"; }
check "INFO: every line is key=\"value\"" sh -c "! grep -v '^[a-z_]*=\".*\"\$' '$tmp/spk/INFO'"
check "INFO package=calplanebot" test "$(info package)" = calplanebot
check "INFO version=$cargo_version-1 (Cargo.toml version + build number)" test "$(info version)" = "$cargo_version-1"
check "INFO version has DSM's [feature]-[build] form" sh -c "echo '$(info version)' | grep -Eq '^[0-9]+(\.[0-9]+)*-[0-9]+\$'"
check "INFO os_min_ver=7.0-40000" test "$(info os_min_ver)" = "7.0-40000"
case $arch in
    x86_64) want_arch="x86_64" ;;
    aarch64) want_arch="armv8" ;;
    armv7) want_arch="armv7 alpine alpine4k armada370 armada375 armada38x armadaxp comcerto2k monaco" ;;
esac
check "INFO arch=\"$want_arch\"" test "$(info arch)" = "$want_arch"
for k in description maintainer displayname; do
    check "INFO $k is set" test -n "$(info "$k")"
done
check "INFO thirdparty=yes" test "$(info thirdparty)" = yes
check "INFO ctl_stop=yes (Run/Stop buttons)" test "$(info ctl_stop)" = yes
check "INFO has no deprecated startable" sh -c "! grep -q '^startable=' '$tmp/spk/INFO'"
check "INFO checksum is the MD5 of package.tgz" test "$(info checksum)" = "$(md5sum "$tmp/spk/package.tgz" | cut -d' ' -f1)"

check "conf/privilege parses and runs as package" python3 -c "
import json,sys; p=json.load(open(sys.argv[1])); assert p['defaults']['run-as']=='package'" "$tmp/spk/conf/privilege"
check "conf/resource parses and names app/calplanebot.sc" python3 -c "
import json,sys; r=json.load(open(sys.argv[1])); assert r['port-config']['protocol-file']=='app/calplanebot.sc'" "$tmp/spk/conf/resource"
check "install_uifile parses and asks for the six settings" python3 -c "
import json,sys
keys={s['key'] for step in json.load(open(sys.argv[1])) for i in step['items'] for s in i['subitems']}
assert keys=={'wizard_plane_base_url','wizard_plane_api_token','wizard_plane_workspace_slug','wizard_caldav_url','wizard_caldav_username','wizard_caldav_password'}, keys" \
    "$tmp/spk/WIZARD_UIFILES/install_uifile"
for icon in PACKAGE_ICON.PNG:64 PACKAGE_ICON_256.PNG:256; do
    check "${icon%%:*} is a valid ${icon#*:}x${icon#*:} PNG" python3 -c "
import struct,sys,zlib
d=open(sys.argv[1],'rb').read(); n=int(sys.argv[2])
assert d[:8]==b'\x89PNG\r\n\x1a\n'
pos=8; kinds=[]
while pos<len(d):
    (ln,)=struct.unpack('>I',d[pos:pos+4]); kind=d[pos+4:pos+8]; body=d[pos+8:pos+8+ln]
    assert struct.unpack('>I',d[pos+8+ln:pos+12+ln])[0]==zlib.crc32(kind+body)
    if kind==b'IHDR': assert struct.unpack('>II',body[:8])==(n,n)
    kinds.append(kind); pos+=12+ln
assert kinds[0]==b'IHDR' and kinds[-1]==b'IEND'" "$tmp/spk/${icon%%:*}" "${icon#*:}"
done

# --- package.tgz = /var/packages/calplanebot/target ------------------------------------
target="$tmp/target"
var="$tmp/var"
mkdir -p "$target" "$var"
tar -xzf "$tmp/spk/package.tgz" -C "$target"
check "package.tgz has an executable bin/calplanebot" test -x "$target/bin/calplanebot"
check "bin/calplanebot is identical to the input binary" cmp -s "$bin" "$target/bin/calplanebot"
check "package.tgz has share/calplanebot.env.template" test -s "$target/share/calplanebot.env.template"
check "package.tgz has app/calplanebot.sc for port 8765/tcp" grep -q '^dst.ports="8765/tcp"$' "$target/app/calplanebot.sc"
check "INFO extractsize covers package.tgz" test "$(info extractsize)" -ge $(( $(gzip -dc "$tmp/spk/package.tgz" | wc -c) / 1024 ))

# --- DSM: install ----------------------------------------------------------------------
SYNOPKG_PKGVER=$(info version)
export SYNOPKG_PKGNAME=calplanebot SYNOPKG_PKGVER SYNOPKG_PKGDEST="$target" \
    SYNOPKG_PKGVAR="$var" SYNOPKG_TEMP_LOGFILE="$tmp/synopkg.msg" SYNOPKG_DSM_VERSION_MAJOR=7
scripts="$tmp/spk/scripts"
env_file="$var/calplanebot.env"
for s in preinst preupgrade postupgrade preuninst postuninst; do
    check "scripts/$s exits 0" "$scripts/$s"
done

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A wizard install: a token with both quote kinds goes to a file, a password with a single
# quote is written in double quotes, a blank user name comments out the example user.
token='tok"en'"'"'#1'
password="pa'ss #word"
plane_port=$(free_port)
if wizard_plane_base_url="http://127.0.0.1:$plane_port/" wizard_plane_api_token="$token" \
    wizard_plane_workspace_slug="my-ws" wizard_caldav_url="http://127.0.0.1:9/dav/" \
    wizard_caldav_username="" wizard_caldav_password="$password" "$scripts/postinst" >"$tmp/postinst.out" 2>&1; then
    ok "postinst (with wizard answers) exits 0"
else
    bad "postinst (with wizard answers): $(cat "$tmp/postinst.out")"
fi
check "postinst created $env_file, mode 600" sh -c "[ \"\$(stat -c %a '$env_file')\" = 600 ]"
check "postinst created the state dir" test -d "$var/data"
check "env file: STATE_DIR in the var dir" grep -qx "STATE_DIR=$var/data" "$env_file"
check "env file: LOG_FILE in the var dir" grep -qx "LOG_FILE=$var/calplanebot.log" "$env_file"
check "env file: wizard's Plane URL" grep -qx "PLANE_BASE_URL='http://127.0.0.1:$plane_port/'" "$env_file"
check "env file: password with ' in double quotes" grep -qx "CALDAV_PASSWORD=\"$password\"" "$env_file"
check "env file: token with both quotes went to PLANE_API_TOKEN_FILE" grep -qx "PLANE_API_TOKEN_FILE=$var/plane_api_token" "$env_file"
check "token file holds the token exactly" test "$(cat "$var/plane_api_token")" = "$token"
check "env file: blank CalDAV user commented out" sh -c "grep -qx '# CALDAV_USERNAME=' '$env_file' && ! grep -q '^CALDAV_USERNAME=' '$env_file'"
check "calplanebot accepts the wizard's env file (validate-config)" "$target/bin/calplanebot" --env-file "$env_file" validate-config
# What calplanebot really sends: a one-request fake Plane records the X-API-Key header.
python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        open(sys.argv[2], "w").write(self.headers.get("X-API-Key", ""))
        self.send_response(401); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).handle_request()
' "$plane_port" "$tmp/apikey" &
fake=$!
sleep 0.5
"$target/bin/calplanebot" --env-file "$env_file" test-plane >/dev/null 2>&1
wait "$fake"
check "calplanebot sends the wizard's token (from the file) as X-API-Key" test "$(cat "$tmp/apikey" 2>/dev/null)" = "$token"

# Upgrades: postinst runs again and must leave the user's file alone.
echo "# edited by the user" >>"$env_file"
before=$(md5sum <"$env_file")
check "postinst again (upgrade) exits 0" "$scripts/postinst"
check "postinst never overwrites an existing env file" test "$(md5sum <"$env_file")" = "$before"

# A first install without the wizard (synopkg install): the template as is.
var2="$tmp/var2"
check "postinst without wizard answers exits 0" env SYNOPKG_PKGVAR="$var2" "$scripts/postinst"
check "env file from the bare template has example values and the var paths" \
    sh -c "grep -qx 'PLANE_BASE_URL=https://plane.example.com' '$var2/calplanebot.env' && grep -qx 'STATE_DIR=$var2/data' '$var2/calplanebot.env'"

# --- DSM: run --------------------------------------------------------------------------
port=$(free_port)
cat >"$env_file" <<ENV
PLANE_BASE_URL=http://127.0.0.1:9
PLANE_API_TOKEN=dummy-token
PLANE_WORKSPACE_SLUG=dummy
CALDAV_URL=http://127.0.0.1:9/dav/
CALDAV_USERNAME=dummy
CALDAV_PASSWORD=dummy
ENABLE_SYNC=false
HTTP_BIND=127.0.0.1:$port
STATE_DIR=$var/data
LOG_FILE=$var/calplanebot.log
ENV
sss="$scripts/start-stop-status"
expect_rc 3 "status before start exits 3" "$sss" status

if "$sss" start >"$tmp/start.out" 2>&1; then ok "start exits 0"; else bad "start: $(cat "$tmp/start.out")"; fi
pid=$(cat "$var/calplanebot.pid" 2>/dev/null)
check "pid file $var/calplanebot.pid names a live process" sh -c "[ -n '$pid' ] && kill -0 '$pid'"
check "status exits 0 while running" "$sss" status
health=""
i=0
while [ $i -lt 50 ]; do
    health=$(curl -sf "http://127.0.0.1:$port/health" 2>/dev/null) && break
    sleep 0.1
    i=$((i + 1))
done
case $health in
    *'"status":"healthy"'*) ok "GET http://127.0.0.1:$port/health answers healthy" ;;
    *) bad "GET /health answered '$health'" ;;
esac
check "start while running exits 0 and keeps the same process" sh -c "'$sss' start && [ \"\$(cat '$var/calplanebot.pid')\" = '$pid' ]"

if "$sss" stop >"$tmp/stop.out" 2>&1; then ok "stop exits 0"; else bad "stop: $(cat "$tmp/stop.out")"; fi
# This container's pid 1 reaps orphans slowly: a zombie (state Z) has exited.
gone=no
i=0
while [ $i -lt 50 ]; do
    if [ ! -e "/proc/$pid" ] || [ "$(sed 's/^.*) \(.\).*$/\1/' "/proc/$pid/stat" 2>/dev/null)" = Z ]; then
        gone=yes
        break
    fi
    sleep 0.1
    i=$((i + 1))
done
if [ $gone = yes ]; then ok "process $pid is gone after stop"; else bad "process $pid still runs after stop"; fi
expect_rc 3 "status after stop exits 3" "$sss" status
check "stop removed the pid file" test ! -e "$var/calplanebot.pid"
check "stop when not running exits 0" "$sss" stop
check "log file $var/calplanebot.log exists and has the service's lines" \
    sh -c "grep -q 'starting calplanebot' '$var/calplanebot.log' && grep -q 'INFO' '$var/calplanebot.log'"
check "log prints the log file's path" test "$("$sss" log)" = "$var/calplanebot.log"

# A stale pid file (e.g. after a reboot) naming another live process is not "running".
sleep 60 &
sleeper=$!
echo "$sleeper" >"$var/calplanebot.pid"
expect_rc 3 "status ignores a stale pid file naming another process" "$sss" status
check "stop with a stale pid file leaves the other process alone" sh -c "'$sss' stop && kill -0 $sleeper"
kill "$sleeper" 2>/dev/null
sleeper=""

# A broken configuration fails the start, with the reason where Package Center shows it.
sed -i 's|^PLANE_BASE_URL=.*|PLANE_BASE_URL=not-a-url|' "$env_file"
: >"$SYNOPKG_TEMP_LOGFILE"
expect_rc '!0' "start with a bad PLANE_BASE_URL fails" "$sss" start
check "the reason is in SYNOPKG_TEMP_LOGFILE" grep -q PLANE_BASE_URL "$SYNOPKG_TEMP_LOGFILE"
expect_rc 3 "status after the failed start exits 3" "$sss" status

if [ "$failures" -gt 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all checks passed"
