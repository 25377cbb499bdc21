#!/usr/bin/env bash
# Tests packaging/openwrt: (a) the .ipk that build-ipk.sh makes from a real binary, unpacked
# and checked entry by entry; (b) the procd init script's UCI → environment translation, run
# under busybox ash (OpenWrt's shell) and dash with stand-ins for OpenWrt's config_* (from
# /lib/functions.sh) and procd_* (from /lib/functions/procd.sh) that record their arguments.
#
#   tests/packaging_openwrt.sh        # CALPLANEBOT_BIN=path to use another binary
#
# Prints one line per check and exits 1 if any failed. busybox is used when installed
# (apt-get install busybox); dash is required.
# check's expressions are single-quoted on purpose: eval expands them.
# shellcheck disable=SC2016,SC2001
set -u
cd "$(dirname "$0")/.." || exit 1
REPO=$PWD
OW=$REPO/packaging/openwrt
INIT=$OW/files/calplanebot.init
BIN=${CALPLANEBOT_BIN:-target/debug/calplanebot}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
failed=0

pass() { echo "ok   $1"; }
fail() {
	echo "FAIL $1"
	failed=1
}
# check DESCRIPTION EXPRESSION: passes when the shell EXPRESSION succeeds.
check() {
	if eval "$2"; then pass "$1"; else fail "$1"; fi
}
# same DESCRIPTION EXPECTED ACTUAL: passes when the strings are equal, else shows a diff.
same() {
	if [ "$2" = "$3" ]; then
		pass "$1"
	else
		fail "$1"
		diff <(printf '%s\n' "$2") <(printf '%s\n' "$3") | sed 's/^/     /'
	fi
}

if [ ! -x "$BIN" ]; then
	cargo build -q --bin calplanebot || exit 1
fi
cargo_version=$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)

# ---------------------------------------------------------------- (a) the .ipk
echo "# ipk"
mkdir -p "$T/out1" "$T/out2"
SOURCE_DATE_EPOCH=1700000000 "$OW/build-ipk.sh" x86_64 "$BIN" "$T/out1" >"$T/build.out" 2>"$T/build.err"
check "build-ipk.sh x86_64 exits 0" "[ $? -eq 0 ]"
IPK=$T/out1/calplanebot_${cargo_version}-1_x86_64.ipk
check "ipk is named calplanebot_${cargo_version}-1_x86_64.ipk and printed" \
	'[ -f "$IPK" ] && [ "$(cat "$T/build.out")" = "$IPK" ]'
SOURCE_DATE_EPOCH=1700000000 "$OW/build-ipk.sh" x86_64 "$BIN" "$T/out2" >/dev/null 2>&1
check "a second build is byte-identical (reproducible)" 'cmp -s "$IPK" "$T/out2/${IPK##*/}"'

check "outer archive is gzip" 'gzip -t "$IPK"'
same "outer tar holds debian-binary, data.tar.gz, control.tar.gz (ipkg-build's order)" \
	"./debian-binary ./data.tar.gz ./control.tar.gz" "$(tar -tzf "$IPK" | tr '\n' ' ' | sed 's/ $//')"
mkdir -p "$T/ipk" "$T/control" "$T/data"
tar -xzf "$IPK" -C "$T/ipk"
same "debian-binary is 2.0" "2.0" "$(cat "$T/ipk/debian-binary")"
check "debian-binary ends in a newline" '[ "$(wc -c <"$T/ipk/debian-binary")" -eq 4 ]'
tar -xzf "$T/ipk/control.tar.gz" -C "$T/control"
tar -xzf "$T/ipk/data.tar.gz" -C "$T/data"

field() { sed -n "s/^$1: //p" "$T/control/control"; }
same "control Package" calplanebot "$(field Package)"
same "control Version is Cargo.toml's plus release" "$cargo_version-1" "$(field Version)"
same "control Architecture" x86_64 "$(field Architecture)"
same "control License" MIT "$(field License)"
same "control Section" net "$(field Section)"
check "control Maintainer and Description are set" '[ -n "$(field Maintainer)" ] && [ -n "$(field Description)" ]'
check "control has no Depends (static binary)" '! grep -q "^Depends:" "$T/control/control"'
same "control Installed-Size is the size of the data tar" \
	"$(gzip -dc "$T/ipk/data.tar.gz" | wc -c | tr -d ' ')" "$(field Installed-Size)"
check "control description continuation lines start with a space" \
	'! sed -n "/^Description:/,\$p" "$T/control/control" | tail -n +2 | grep -qv "^ "'
same "conffiles lists /etc/config/calplanebot" /etc/config/calplanebot "$(cat "$T/control/conffiles")"
same "control.tar entries" "./ ./conffiles ./control ./postinst ./prerm" \
	"$(tar -tzf "$T/ipk/control.tar.gz" | tr '\n' ' ' | sed 's/ $//')"
check "postinst and prerm are executable" '[ -x "$T/control/postinst" ] && [ -x "$T/control/prerm" ]'
check "postinst and prerm parse under sh" 'sh -n "$T/control/postinst" && sh -n "$T/control/prerm"'
same "postinst does nothing in an offline image build (IPKG_INSTROOT)" "0:" \
	"$(IPKG_INSTROOT=/x sh "$T/control/postinst" 2>&1; echo "$?:")"
# The maintainer scripts with /etc/init.d/calplanebot pointed at a stub that records its
# command and answers `enabled` with $STUB_ENABLED.
cat >"$T/initstub" <<'EOF'
#!/bin/sh
echo "$1" >>"$STUB_REC"
[ "$1" != enabled ] || exit "$STUB_ENABLED"
EOF
chmod +x "$T/initstub"
maint() { # SCRIPT ENABLED-STATUS ARGS...: the init commands SCRIPT runs
	local script=$1 enabled=$2
	shift 2
	sed "s#/etc/init.d/calplanebot#$T/initstub#g" "$T/control/$script" >"$T/$script.sh"
	: >"$T/stub.rec"
	STUB_REC=$T/stub.rec STUB_ENABLED=$enabled sh "$T/$script.sh" "$@" >"$T/$script.out" || echo "exit $?"
	tr '\n' ' ' <"$T/stub.rec" | sed 's/ $//'
}
same "postinst on a first install: starts nothing" "enabled" "$(maint postinst 1 configure)"
check "postinst on a first install: prints the next steps" 'grep -q "/etc/config/calplanebot" "$T/postinst.out"'
same "postinst when the service is enabled (upgrade): restarts it" "enabled restart" "$(maint postinst 0 configure)"
same "prerm on removal: stops and disables" "stop disable" "$(maint prerm 0 remove)"
same "prerm on upgrade: stops, keeps the boot link" "stop" "$(maint prerm 0 upgrade 0.2.0-1)"

# Modes and owners as stored in the tar, not as extracted (umask would hide them).
listing=$(tar -tvzf "$T/ipk/data.tar.gz")
mode_of() { awk -v p="./$1" '$6 == p { print $1, $2 }' <<<"$listing"; }
same "data /usr/bin/calplanebot is 0755 root" "-rwxr-xr-x 0/0" "$(mode_of usr/bin/calplanebot)"
same "data /etc/init.d/calplanebot is 0755 root" "-rwxr-xr-x 0/0" "$(mode_of etc/init.d/calplanebot)"
same "data /etc/config/calplanebot is 0600 root (secrets)" "-rw------- 0/0" "$(mode_of etc/config/calplanebot)"
same "data /lib/upgrade/keep.d/calplanebot keeps the state over sysupgrade" \
	/etc/calplanebot/ "$(cat "$T/data/lib/upgrade/keep.d/calplanebot")"
same "data holds exactly these files" \
	"./etc/config/calplanebot ./etc/init.d/calplanebot ./lib/upgrade/keep.d/calplanebot ./usr/bin/calplanebot" \
	"$(tar -tzf "$T/ipk/data.tar.gz" | grep -v '/$' | sort | tr '\n' ' ' | sed 's/ $//')"
check "data binary is the given binary" 'cmp -s "$BIN" "$T/data/usr/bin/calplanebot"'
check "data init script and config are the packaging files" \
	'cmp -s "$INIT" "$T/data/etc/init.d/calplanebot" && cmp -s "$OW/files/calplanebot.config" "$T/data/etc/config/calplanebot"'
check "the packaged binary runs (--version)" '"$T/data/usr/bin/calplanebot" --version >/dev/null'
check "build-ipk.sh refuses an x86_64 binary for aarch64_generic" \
	'! "$OW/build-ipk.sh" aarch64_generic "$BIN" "$T" 2>/dev/null'
check "build-ipk.sh refuses an architecture name with a slash" \
	'! "$OW/build-ipk.sh" x86_64/../x "$BIN" "$T" 2>/dev/null'
check "build-ipk.sh refuses a non-ELF file" '! "$OW/build-ipk.sh" x86_64 "$INIT" "$T" 2>/dev/null'
same "Makefile PKG_VERSION is Cargo.toml's" "$cargo_version" \
	"$(sed -n 's/^PKG_VERSION:=//p' "$OW/Makefile")"
check "Makefile marks /etc/config/calplanebot as conffile" \
	'sed -n "/conffiles/,/endef/p" "$OW/Makefile" | grep -qx /etc/config/calplanebot'

# ---------------------------------------------------------------- (b) the init script
echo "# init script"
# The variable names of src/config.rs VARIABLES: the first string of each tuple.
variables=$(sed -n '/^pub const VARIABLES/,/^];/p' src/config.rs | tr -d '\n' |
	grep -o '( *"[A-Z0-9_]*"' | tr -dc 'A-Z0-9_\n' | sort)
secrets="CALDAV_PASSWORD_FILE FEED_TOKEN_FILE PLANE_API_TOKEN_FILE PLANE_WEBHOOK_SECRET_FILE"
check "config.rs VARIABLES was parsed (25+ names)" '[ "$(wc -l <<<"$variables")" -ge 25 ]'
init_options=$(sh -c '. "$1"; for o in $OPTIONS; do echo "$o"; done' sh "$INIT" | tr '[:lower:]' '[:upper:]' | sort)
same "init OPTIONS = config.rs VARIABLES + the four *_FILE secrets" \
	"$( (echo "$variables"; tr ' ' '\n' <<<"$secrets") | sort)" "$init_options"
config_options=$(sed -n 's/^[[:space:]]*#\{0,1\} *option \([a-z_]*\) .*/\1/p' "$OW/files/calplanebot.config" |
	grep -Evx 'enabled|respawn_(threshold|timeout|retry)' | tr '[:lower:]' '[:upper:]' | sort -u)
same "default config mentions every option, and only known ones" "$init_options" "$config_options"
check "default config has enabled '0'" 'grep -qx "[[:space:]]*option enabled .0." "$OW/files/calplanebot.config"'
check "init script is procd, START=95 STOP=10" \
	'head -1 "$INIT" | grep -qx "#!/bin/sh /etc/rc.common" && grep -qx USE_PROCD=1 "$INIT" && grep -qx START=95 "$INIT" && grep -qx STOP=10 "$INIT"'
if command -v shellcheck >/dev/null; then
	check "shellcheck init script and build-ipk.sh" 'shellcheck -s sh "$INIT" "$OW/build-ipk.sh"'
fi

# Stand-ins for OpenWrt's shell library. config_load evaluates the UCI file as shell, as the
# real one does with `uci export`: UCI's quoting ('it'\''s') is shell quoting.
cat >"$T/stubs.sh" <<'EOF'
config() { _section=$2; }
option() { eval "CONFIG_${_section}_$1=\$2"; }
list() { :; }
config_load() { . "$UCI_CONFIG_DIR/$1"; }
config_get() { eval "$1=\${CONFIG_$2_$3:-\${4:-}}"; }
config_get_bool() {
	local _v
	config_get _v "$2" "$3" "$4"
	case "$_v" in
	1 | on | true | yes | enabled) _v=1 ;;
	*) _v=0 ;;
	esac
	eval "$1=\$_v"
}
_rec() { printf '%s\n' "$*" >>"$REC"; }
procd_open_instance() { _rec open_instance; }
procd_close_instance() { _rec close_instance; }
procd_add_reload_trigger() { _rec "reload_trigger $*"; }
procd_set_param() {
	_rec "param $1"
	shift
	for _a in "$@"; do _rec "  [$_a]"; done
}
mkdir() { _rec "mkdir $*"; }
EOF

shells=()
if command -v busybox >/dev/null && busybox ash -c : 2>/dev/null; then
	shells+=("busybox ash")
else
	echo "note busybox not installed (apt-get install busybox): ash runs skipped"
fi
if command -v dash >/dev/null; then shells+=(dash); else fail "dash is needed"; fi

# run_init SHELL UCI-TEXT [COMMANDS]: runs COMMANDS (default: start_service; service_triggers)
# with the init script loaded and UCI-TEXT as /etc/config/calplanebot; the record is $T/rec.
run_init() {
	mkdir -p "$T/uci"
	printf '%s\n' "$2" >"$T/uci/calplanebot"
	: >"$T/rec"
	REC=$T/rec UCI_CONFIG_DIR=$T/uci $1 -c '. "$1"; . "$2"; '"${3:-start_service; service_triggers}" \
		sh "$T/stubs.sh" "$INIT" 2>"$T/stderr"
}
# param NAME: the recorded arguments of procd_set_param NAME, one per line.
param() { awk -v p="param $1" '/^param / { on = ($0 == p); next } /^[a-z]/ { on = 0 } on' "$T/rec"; }

full_config=$(cat <<'EOF'
config calplanebot 'main'
	option enabled '1'
	option plane_base_url 'https://plane.example.com'
	option plane_api_token 'tok en $HOME `id` "q" \n * ;'
	option plane_workspace_slug 'my-ws'
	option plane_projects ''
	option caldav_url 'https://dav.example.com/remote.php/dav'
	option caldav_username 'alice@example.com'
	option caldav_password 'it'\''s; rm -rf / #'
	option state_dir '/mnt/usb/calplanebot data'
	option sync_labels 'a b,c=d'
	option http_bind '192.168.1.1:8765'
	option log_level 'debug'
	option not_a_variable 'x'
	option respawn_retry '7'
EOF
)
full_env=$(cat <<'EOF'
  [PLANE_BASE_URL=https://plane.example.com]
  [PLANE_API_TOKEN=tok en $HOME `id` "q" \n * ;]
  [PLANE_WORKSPACE_SLUG=my-ws]
  [CALDAV_URL=https://dav.example.com/remote.php/dav]
  [CALDAV_USERNAME=alice@example.com]
  [CALDAV_PASSWORD=it's; rm -rf / #]
  [STATE_DIR=/mnt/usb/calplanebot data]
  [LOG_LEVEL=debug]
  [SYNC_LABELS=a b,c=d]
  [HTTP_BIND=192.168.1.1:8765]
EOF
)
minimal_config=$(cat <<'EOF'
config calplanebot 'main'
	option enabled 'yes'
	option plane_base_url 'https://p'
	option plane_api_token 't'
	option plane_workspace_slug 's'
	option caldav_url 'https://d/'
	option http_bind 'off'
EOF
)

for sh in "${shells[@]}"; do
	s="[$sh]"
	run_init "$sh" "$full_config"
	check "$s start_service with a full config runs" "[ $? -eq 0 ]"
	same "$s env holds exactly the set options, values intact (spaces, quotes, \$, \`, *)" \
		"$full_env" "$(param env)"
	same "$s command is /usr/bin/calplanebot run" "$(printf '  [/usr/bin/calplanebot]\n  [run]')" "$(param command)"
	same "$s respawn threshold/timeout/retry (retry from UCI)" \
		"$(printf '  [3600]\n  [5]\n  [7]')" "$(param respawn)"
	same "$s stdout and stderr go to logread" "  [1]|  [1]" "$(param stdout)|$(param stderr)"
	same "$s config file change restarts the instance" "  [/etc/config/calplanebot]" "$(param file)"
	same "$s one instance, opened and closed" "open_instance close_instance" \
		"$(grep -E '^(open|close)_instance' "$T/rec" | tr '\n' ' ' | sed 's/ $//')"
	same "$s state dir is created first" "mkdir -p /mnt/usb/calplanebot data" "$(head -1 "$T/rec")"
	same "$s reload trigger on the calplanebot config" "reload_trigger calplanebot" "$(tail -1 "$T/rec")"

	run_init "$sh" "$minimal_config"
	same "$s minimal config: defaults STATE_DIR, http_bind 'off' → empty HTTP_BIND" \
		"$(printf '%s\n' '  [PLANE_BASE_URL=https://p]' '  [PLANE_API_TOKEN=t]' '  [PLANE_WORKSPACE_SLUG=s]' \
			'  [CALDAV_URL=https://d/]' '  [STATE_DIR=/etc/calplanebot/data]' '  [HTTP_BIND=]')" "$(param env)"
	same "$s minimal config: state dir /etc/calplanebot/data (flash, not tmpfs /var)" \
		"mkdir -p /etc/calplanebot/data" "$(head -1 "$T/rec")"
	same "$s minimal config: respawn defaults 3600 5 5" "$(printf '  [3600]\n  [5]\n  [5]')" "$(param respawn)"

	run_init "$sh" "$(sed "s/option enabled '1'/option enabled '0'/" <<<"$full_config")" start_service
	check "$s enabled '0': nothing started, nothing created" '[ ! -s "$T/rec" ]'
	check "$s enabled '0': says why on stderr" 'grep -q disabled "$T/stderr"'
	run_init "$sh" "$(grep -v "option enabled" <<<"$full_config")" start_service
	check "$s enabled missing: nothing started" '[ ! -s "$T/rec" ]'

	# `check` runs calplanebot with the settings in its environment, not in argv (ps).
	cat >"$T/fake" <<'EOF'
#!/bin/sh
echo "argv: $*"
printf 'token: %s\npassword: %s\n' "$PLANE_API_TOKEN" "$CALDAV_PASSWORD"
EOF
	chmod +x "$T/fake"
	run_init "$sh" "$full_config" "PROG='$T/fake'; check" >"$T/check.out"
	same "$s check: validate-config with the UCI env, secrets not in argv" \
		"$(printf '%s\n' 'argv: validate-config' 'token: tok en $HOME `id` "q" \n * ;' "password: it's; rm -rf / #")" \
		"$(cat "$T/check.out")"
done

if [ "$failed" -ne 0 ]; then
	echo "packaging_openwrt: FAILED"
	exit 1
fi
echo "packaging_openwrt: all passed"
