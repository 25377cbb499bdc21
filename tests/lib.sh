# shellcheck shell=bash
# Shell helpers shared by tests/servers.sh, tests/demo.sh, tests/cross_check.sh,
# tests/bench/daemon.sh and cross/build.sh. Source it; the caller defines log() and die().

# as_root CMD... — runs CMD as root: directly when we are root, else through passwordless
# sudo; fails when neither is possible.
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        return 1
    fi
}

# apt_need LOGFILE CMD PACKAGE... — installs the Debian packages unless CMD is already on
# PATH; `apt-get update` only when something is installed. Output goes to LOGFILE.
apt_need() {
    local logfile=$1 cmd=$2
    shift 2
    command -v "$cmd" >/dev/null && return 0
    command -v apt-get >/dev/null || die "$cmd not found and no apt-get: install $* yourself"
    log "apt-get install $* (for $cmd)"
    mkdir -p "$(dirname "$logfile")"
    { as_root apt-get update -qq -o DPkg::Lock::Timeout=120 &&
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            -o DPkg::Lock::Timeout=120 --no-install-recommends "$@"; } \
        >>"$logfile" 2>&1 || die "apt-get install $* failed (needs root; see $logfile)"
}

# write_radicale_conf DIR HOST:PORT [AUTH] — DIR/radicale.conf for a local test Radicale
# with data in DIR/collections and users in DIR/users (plain htpasswd lines "user:pw").
# AUTH defaults to htpasswd (http_x_remote_user behind a proxy).
write_radicale_conf() {
    local d=$1
    cat >"$d/radicale.conf" <<CONF
[server]
hosts = $2
[auth]
type = ${3:-htpasswd}
htpasswd_filename = $d/users
htpasswd_encryption = plain
# Radicale waits 1 s after every failed login, which includes each client's first,
# credential-less request (it gets the 401 challenge); pointless for local tests.
delay = 0
[storage]
filesystem_folder = $d/collections
[rights]
type = owner_only
CONF
}

# triple_of NAME — the Rust target triple for a short name (aarch64, armv7, x86_64, their
# Debian/Docker aliases) or a triple; fails for anything else.
triple_of() {
    case $1 in
    aarch64 | arm64 | aarch64-unknown-linux-musl) echo aarch64-unknown-linux-musl ;;
    armv7 | armhf | armv7-unknown-linux-musleabihf) echo armv7-unknown-linux-musleabihf ;;
    x86_64 | amd64 | x86_64-unknown-linux-musl) echo x86_64-unknown-linux-musl ;;
    *) return 1 ;;
    esac
}
