#!/usr/bin/env bash
# Real CalDAV servers for the integration tests, all on 127.0.0.1, all data under .tests/run/.
#
#   tests/servers.sh start    install what is missing, start fresh servers, write servers.env
#   tests/servers.sh stop     stop everything `start` started
#   tests/servers.sh status   show what runs
#   tests/servers.sh install  only install (Python venv + Debian packages)
#
# Servers (recipes: shared/caldav-servers.md):
#   radicale  Radicale 3, htpasswd Basic auth (alice/secret, bob/secret2)      :5232
#   xandikos  Xandikos, no auth, principal /user/, home /user/calendars/       :8081
#   sabre     SabreDAV 1.8 under `php -S`, Digest auth (alice/secret, bob/...)  :8082
#   apache    Apache mod_auth_digest -> Radicale (http_x_remote_user) :8083, backend :5233
#   radicale-tls  Radicale over HTTPS, certificate from a test CA (ca.pem), Basic    :5234
#   cyrus     Cyrus IMAP 3.6 httpd (CalDAV), sasldb Basic auth (alice, bob), as user cyrus  :8084
#             principal /dav/principals/user/alice/, home /dav/calendars/user/alice/
#
# Environment:
#   RADICALE_PORT XANDIKOS_PORT SABRE_PORT APACHE_PORT APACHE_BACKEND_PORT RADICALE_TLS_PORT
#   CYRUS_PORT
#   TEST_SERVERS="radicale xandikos"   start only these
#   SERVERS_READY_TIMEOUT=30           seconds to wait for each server
#   ALLOW_MISSING_SERVERS=1            skip a server whose packages cannot be installed (no
#                                      root, no apt) instead of failing `start`; the tests
#                                      that need it then fail
#
# After `start`, .tests/run/servers.env holds KEY=VALUE lines (no quoting needed) that
# tests/run.sh exports: PYTHON, CALDAV_VERIFY, <NAME>_URL/_HOME/_USER/_PASSWORD[2] ...
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TESTS_DIR=$ROOT/.tests
VENV=$TESTS_DIR/venv
RUN=$TESTS_DIR/run
PIDS=$RUN/pids
ENV_FILE=$RUN/servers.env
INSTALL_LOG=$TESTS_DIR/install.log
HOST=127.0.0.1
RADICALE_PORT=${RADICALE_PORT:-5232}
XANDIKOS_PORT=${XANDIKOS_PORT:-8081}
SABRE_PORT=${SABRE_PORT:-8082}
APACHE_PORT=${APACHE_PORT:-8083}
APACHE_BACKEND_PORT=${APACHE_BACKEND_PORT:-5233}
RADICALE_TLS_PORT=${RADICALE_TLS_PORT:-5234}
CYRUS_PORT=${CYRUS_PORT:-8084}
READY_TIMEOUT=${SERVERS_READY_TIMEOUT:-30}
ALL_SERVERS="radicale xandikos sabre apache radicale-tls cyrus"
SERVERS=${TEST_SERVERS:-$ALL_SERVERS}
SABRE_AUTOLOAD=/usr/share/php/Sabre/autoload.php
APACHE_BIN=/usr/sbin/apache2
APACHE_MODULES=/usr/lib/apache2/modules
CYRUS_MASTER=/usr/sbin/cyrmaster
CYRUS_HTTPD=/usr/lib/cyrus/bin/httpd
SASLPASSWD=/usr/sbin/saslpasswd2

log() { printf 'servers.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# shellcheck source=lib.sh
. "$ROOT/tests/lib.sh"

# Every server is required: the tests fail without theirs, so a server that cannot be set up
# fails `start` at once, with the reason. ALLOW_MISSING_SERVERS=1 (a developer without root
# who only wants some servers) skips such a server with a warning instead.
required() { [[ -z ${ALLOW_MISSING_SERVERS:-} ]]; }

wanted() { [[ " $SERVERS " == *" $1 "* ]]; }


APT_UPDATED=
apt_install() {
    command -v apt-get >/dev/null || { log "apt-get not found, cannot install $*"; return 1; }
    if [[ -z $APT_UPDATED ]]; then
        log "apt-get update"
        as_root apt-get update -qq -o DPkg::Lock::Timeout=120 >>"$INSTALL_LOG" 2>&1 ||
            { log "apt-get update failed (see $INSTALL_LOG)"; return 1; }
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=120 --no-install-recommends "$@" \
        >>"$INSTALL_LOG" 2>&1 || { log "apt-get install $* failed (see $INSTALL_LOG)"; return 1; }
}

have_python() {
    [[ -x $VENV/bin/python && -f $VENV/.requirements.sha256 &&
        $(cat "$VENV/.requirements.sha256") == $(sha256sum "$ROOT/tests/requirements.txt" | cut -d' ' -f1) ]]
}
have_sabre() {
    command -v php >/dev/null && [[ -f $SABRE_AUTOLOAD ]] &&
        php -r 'exit(extension_loaded("pdo_sqlite") ? 0 : 1);' 2>/dev/null
}
have_apache() {
    [[ -x $APACHE_BIN ]] || return 1
    local m
    for m in auth_digest proxy_http headers mpm_event; do
        [[ -f $APACHE_MODULES/mod_$m.so ]] || return 1
    done
}
have_cyrus() { [[ -x $CYRUS_MASTER && -x $CYRUS_HTTPD && -x $SASLPASSWD ]]; }

install_python() {
    have_python && return 0
    local py=${PYTHON3:-python3}
    log "installing Python packages into $VENV (tests/requirements.txt)"
    if [[ ! -x $VENV/bin/python ]]; then
        rm -rf "$VENV"
        if ! "$py" -m venv "$VENV" >>"$INSTALL_LOG" 2>&1; then
            # Debian's own python3 needs python3-venv for ensurepip.
            rm -rf "$VENV"
            apt_install python3-venv && "$py" -m venv "$VENV" >>"$INSTALL_LOG" 2>&1 ||
                die "cannot create a venv with $py (see $INSTALL_LOG)"
        fi
    fi
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/tests/requirements.txt" \
        >>"$INSTALL_LOG" 2>&1 || die "pip install failed (see $INSTALL_LOG)"
    sha256sum "$ROOT/tests/requirements.txt" | cut -d' ' -f1 >"$VENV/.requirements.sha256"
}

# Installs the Debian packages for the wanted servers; drops a server from SERVERS when its
# packages cannot be had and it is not required.
install_debian() {
    local pkgs=()
    if wanted sabre && ! have_sabre; then pkgs+=(php-cli php-sqlite3 php-sabre-dav); fi
    if wanted apache && ! have_apache; then pkgs+=(apache2 apache2-utils); fi
    # cyrus-common pulls in an MTA (exim4); neither may start as a system daemon.
    if wanted cyrus && ! have_cyrus; then pkgs+=(cyrus-imapd cyrus-caldav sasl2-bin); fi
    ((${#pkgs[@]})) || return 0
    without_service_starts apt_install "${pkgs[@]}" || true
    local s
    for s in sabre apache cyrus; do
        wanted "$s" || continue
        if ! "have_$s"; then
            required && die "server '$s' is required but its packages are not installed (see $INSTALL_LOG)"
            log "WARNING: skipping server '$s': packages not installed (needs root + apt-get)"
            SERVERS=" $SERVERS "
            SERVERS=${SERVERS/ $s / }
            SERVERS=$(echo $SERVERS) # squeeze the blanks
        fi
    done
}

# without_service_starts CMD... — runs CMD with Debian's policy-rc.d hook refusing every
# service start, so installing packages leaves no system daemon (cyrus master, exim4)
# running beside the private test instances. An existing hook (Docker images have one) is
# left alone.
POLICY_RC=/usr/sbin/policy-rc.d
without_service_starts() {
    if [[ -e $POLICY_RC ]] || ! as_root true; then
        "$@"
        return
    fi
    as_root sh -c "printf '#!/bin/sh\\n# tests/servers.sh: no service starts while installing\\nexit 101\\n' >$POLICY_RC && chmod 755 $POLICY_RC" ||
        { "$@"; return; }
    local rc=0
    "$@" || rc=$?
    as_root rm -f "$POLICY_RC"
    return "$rc"
}

do_install() {
    mkdir -p "$TESTS_DIR"
    local t0=$SECONDS py_pid
    # pip and apt download in parallel (~35 s instead of ~65 s on a fresh machine).
    install_python &
    py_pid=$!
    install_debian
    wait "$py_pid" || die "Python install failed (see $INSTALL_LOG)"
    ((SECONDS - t0 < 2)) || log "install took $((SECONDS - t0))s"
}

port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

check_port() { # name port
    port_busy "$2" && die "port $2 for $1 is already in use on $HOST (another instance? run 'tests/servers.sh stop' or set ${1^^}_PORT)"
    return 0
}

# spawn NAME LOG CMD... — starts a server in the background and records its pid.
spawn() {
    local name=$1 logf=$2
    shift 2
    "$@" </dev/null >"$logf" 2>&1 &
    echo "$name $! $logf" >>"$PIDS"
}

pid_of() { awk -v n="$1" '$1 == n { print $2 }' "$PIDS" 2>/dev/null; }

# ours PID [DIR] — only signal a pid whose command line still names our run dir, or DIR
# (the server's own directory outside it, see cyrus_dir): pids get reused.
ours() {
    [[ -r /proc/$1/cmdline ]] || return 1
    local cmd
    cmd=$(tr '\0' ' ' <"/proc/$1/cmdline")
    [[ $cmd == *"$RUN"* || (-n ${2:-} && $cmd == *"$2"*) ]]
}

# wait_ready NAME URL LOG [PID] — polls until the HTTP code is a real answer.
wait_ready() {
    local name=$1 url=$2 logf=$3 pid=${4:-} code deadline=$((SECONDS + READY_TIMEOUT))
    while :; do
        code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
        case $code in 000 | 502 | 503 | "") ;; *) return 0 ;; esac
        if [[ -n $pid ]] && ! alive "$pid"; then
            log "server '$name' exited during startup; last lines of $logf:"
            tail -n 20 "$logf" >&2 || true
            die "server '$name' did not start (log: $logf)"
        fi
        if ((SECONDS >= deadline)); then
            log "server '$name' not ready at $url after ${READY_TIMEOUT}s (last HTTP code $code); last lines of $logf:"
            tail -n 20 "$logf" >&2 || true
            die "server '$name' did not become ready (log: $logf)"
        fi
        sleep 0.1
    done
}


start_radicale() {
    local d=$RUN/radicale
    mkdir -p "$d"
    printf 'alice:secret\nbob:secret2\n' >"$d/users"
    write_radicale_conf "$d" "$HOST:$RADICALE_PORT" htpasswd
    spawn radicale "$d/radicale.log" "$VENV/bin/radicale" --config "$d/radicale.conf"
}

# A test CA and a server certificate for 127.0.0.1 signed by it, made with the venv's
# `cryptography` (no openssl CLI needed): what a NAS with its own CA looks like.
make_tls_certs() { # dir
    "$VENV/bin/python" - "$1" <<'PY'
import datetime, ipaddress, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
d = sys.argv[1]
now = datetime.datetime.now(datetime.timezone.utc)
def name(cn): return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
ca_key = ec.generate_private_key(ec.SECP256R1())
ca = (x509.CertificateBuilder().subject_name(name("calplanebot test CA")).issuer_name(name("calplanebot test CA"))
      .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
      .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
      .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
      .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
      .sign(ca_key, hashes.SHA256()))
key = ec.generate_private_key(ec.SECP256R1())
cert = (x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256()))
pem = serialization.Encoding.PEM
open(f"{d}/ca.pem", "wb").write(ca.public_bytes(pem))
open(f"{d}/cert.pem", "wb").write(cert.public_bytes(pem))
open(f"{d}/key.pem", "wb").write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
PY
}

start_radicale-tls() {
    local d=$RUN/radicale-tls
    mkdir -p "$d"
    printf 'alice:secret\n' >"$d/users"
    make_tls_certs "$d"
    write_radicale_conf "$d" "$HOST:$RADICALE_TLS_PORT" htpasswd
    sed -i "/^hosts = /a ssl = True\ncertificate = $d/cert.pem\nkey = $d/key.pem" "$d/radicale.conf"
    spawn radicale-tls "$d/radicale.log" "$VENV/bin/radicale" --config "$d/radicale.conf"
}

start_xandikos() {
    local d=$RUN/xandikos
    mkdir -p "$d/data" "$d/state"
    spawn xandikos "$d/xandikos.log" "$VENV/bin/xandikos" serve --defaults -d "$d/data" \
        --state-dir "$d/state" -l "$HOST" -p "$XANDIKOS_PORT"
}

start_sabre() {
    local d=$RUN/sabre
    mkdir -p "$d"
    cat >"$d/init.php" <<'EOF'
<?php // creates data/db.sqlite with Digest users alice/secret and bob/secret2
@mkdir(__DIR__.'/data');
$pdo = new PDO('sqlite:'.__DIR__.'/data/db.sqlite');
$pdo->setAttribute(PDO::ATTR_ERRMODE, PDO::ERRMODE_EXCEPTION);
$d = '/usr/share/doc/php-sabre-dav/examples/sql/';
foreach (['sqlite.principals.sql', 'sqlite.calendars.sql', 'sqlite.users.sql'] as $f) {
    $sql = @file_get_contents($d.$f);
    if ($sql === false) $sql = gzdecode(file_get_contents($d.$f.'.gz'));
    $pdo->exec($sql);
}
$realm = 'SabreDAV';
foreach (['alice' => 'secret', 'bob' => 'secret2'] as $u => $p) {
    $pdo->prepare('INSERT INTO users (username,digesta1) VALUES (?,?)')->execute([$u, md5("$u:$realm:$p")]);
    foreach (["principals/$u", "principals/$u/calendar-proxy-read", "principals/$u/calendar-proxy-write"] as $uri)
        $pdo->prepare('INSERT INTO principals (uri,email,displayname) VALUES (?,?,?)')->execute([$uri, null, null]);
}
EOF
    cat >"$d/server.php" <<'EOF'
<?php
date_default_timezone_set('UTC');
// PHP 8 deprecations from the old library would otherwise end up in response bodies.
error_reporting(E_ALL & ~E_DEPRECATED);
ini_set('display_errors', '0');
require_once 'Sabre/autoload.php';
$pdo = new PDO('sqlite:'.__DIR__.'/data/db.sqlite');
$pdo->setAttribute(PDO::ATTR_ERRMODE, PDO::ERRMODE_EXCEPTION);
$principals = new Sabre\DAVACL\PrincipalBackend\PDO($pdo);
$calendars  = new Sabre\CalDAV\Backend\PDO($pdo);
$server = new Sabre\DAV\Server([
    new Sabre\CalDAV\Principal\Collection($principals),
    new Sabre\CalDAV\CalendarRootNode($principals, $calendars),
]);
$server->setBaseUri('/');
$server->addPlugin(new Sabre\DAV\Auth\Plugin(new Sabre\DAV\Auth\Backend\PDO($pdo), 'SabreDAV'));
$server->addPlugin(new Sabre\DAVACL\Plugin());
$server->addPlugin(new Sabre\CalDAV\Plugin());
$server->exec();
EOF
    php "$d/init.php" >"$d/init.log" 2>&1 || { cat "$d/init.log" >&2; die "SabreDAV init failed"; }
    spawn sabre "$d/sabre.log" php -S "$HOST:$SABRE_PORT" -t "$d" "$d/server.php"
}

start_apache() {
    local d=$RUN/apache backend=$RUN/apache-radicale
    mkdir -p "$d" "$backend"
    # Radicale trusts X-Remote-User here: bind the backend to loopback only, Apache sets it.
    write_radicale_conf "$backend" "$HOST:$APACHE_BACKEND_PORT" http_x_remote_user
    spawn apache-radicale "$backend/radicale.log" "$VENV/bin/radicale" --config "$backend/radicale.conf"
    local u p
    : >"$d/digest.users"
    for u in alice:secret bob:secret2; do
        p=${u#*:} u=${u%%:*}
        printf '%s:caldav:%s\n' "$u" "$(printf '%s' "$u:caldav:$p" | md5sum | cut -d' ' -f1)" >>"$d/digest.users"
    done
    chmod 644 "$d/digest.users"
    # Apache's children drop to www-data when we are root; they must be able to read the
    # user file, which fails when the checkout lives under a private home directory.
    local user_lines=""
    if [[ $EUID -eq 0 ]]; then
        user_lines=$'User www-data\nGroup www-data'
        if command -v runuser >/dev/null && ! runuser -u www-data -- test -r "$d/digest.users" 2>/dev/null; then
            local tmp
            tmp=$(mktemp -d /tmp/calplanebot-digest.XXXXXX)
            chmod 755 "$tmp"
            cp "$d/digest.users" "$tmp/"
            echo "$tmp" >"$d/digest-dir"
            log "apache: www-data cannot read $d, using $tmp/digest.users"
        fi
    fi
    local users_file=$d/digest.users
    [[ -f $d/digest-dir ]] && users_file=$(cat "$d/digest-dir")/digest.users
    cat >"$d/httpd.conf" <<EOF
ServerRoot $d
DefaultRuntimeDir $d
ServerName $HOST
Listen $HOST:$APACHE_PORT
PidFile $d/httpd.pid
ErrorLog $d/error.log
LogLevel warn
$user_lines
LoadModule mpm_event_module   $APACHE_MODULES/mod_mpm_event.so
LoadModule authn_core_module  $APACHE_MODULES/mod_authn_core.so
LoadModule authn_file_module  $APACHE_MODULES/mod_authn_file.so
LoadModule authz_core_module  $APACHE_MODULES/mod_authz_core.so
LoadModule authz_user_module  $APACHE_MODULES/mod_authz_user.so
LoadModule auth_digest_module $APACHE_MODULES/mod_auth_digest.so
LoadModule headers_module     $APACHE_MODULES/mod_headers.so
LoadModule proxy_module       $APACHE_MODULES/mod_proxy.so
LoadModule proxy_http_module  $APACHE_MODULES/mod_proxy_http.so
<Location "/">
    AuthType Digest
    AuthName "caldav"
    AuthDigestDomain /
    AuthDigestProvider file
    AuthUserFile $users_file
    Require valid-user
    RequestHeader unset X-Remote-User
    RequestHeader set X-Remote-User expr=%{REMOTE_USER}
    ProxyPass        http://$HOST:$APACHE_BACKEND_PORT/ retry=0
    ProxyPassReverse http://$HOST:$APACHE_BACKEND_PORT/
</Location>
EOF
    "$APACHE_BIN" -f "$d/httpd.conf" -k start >"$d/start.log" 2>&1 || {
        cat "$d/start.log" "$d/error.log" >&2 2>/dev/null || true
        die "apache did not start (config: $d/httpd.conf, log: $d/error.log)"
    }
}

# Cyrus IMAP's httpd with only CalDAV, as a private instance: its own imapd.conf and
# cyrus.conf (every service given `-C`), config directory, partition, sasldb and sockets,
# nothing shared with a system Cyrus. Started as root, the master drops to the unprivileged
# `cyrus` user, so its data lives where that user can write (a /tmp directory when the
# checkout is not reachable for it, as under a private home).
cyrus_dir() { # prints the data directory, creating it
    local d=$RUN/cyrus
    mkdir -p "$d"
    if [[ $EUID -eq 0 ]]; then
        chown cyrus: "$d"
        if ! runuser -u cyrus -- test -w "$d" 2>/dev/null; then
            d=$(mktemp -d /tmp/calplanebot-cyrus.XXXXXX)
            chown cyrus: "$d"
            echo "$d" >"$RUN/cyrus/data-dir"
            log "cyrus: user cyrus cannot write $RUN/cyrus, using $d"
        fi
    fi
    echo "$d"
}

# The directory start_cyrus chose.
cyrus_data() { cat "$RUN/cyrus/data-dir" 2>/dev/null || echo "$RUN/cyrus"; }

write_cyrus_conf() { # dir user group
    local d=$1
    cat >"$d/imapd.conf" <<EOF
configdirectory: $d/config
defaultpartition: default
partition-default: $d/spool
sievedir: $d/sieve
proc_path: $d/config/proc
mboxname_lockpath: $d/config/lock
lmtpsocket: $d/config/socket/lmtp
idlesocket: $d/config/socket/idle
notifysocket: $d/config/socket/notify
cyrus_user: $2
cyrus_group: $3
servername: $HOST
syslog_prefix: calplanebot-test-cyrus
# Basic auth over plain HTTP against a private sasldb.
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: $d/sasldb2
sasl_mech_list: PLAIN
httpmodules: caldav
# A user's INBOX is made at the first IMAP login; their calendar home (with a Default
# calendar) at the first authenticated CalDAV request after that.
autocreate_quota: 0
caldav_create_default: yes
EOF
    # START and EVENTS are what Cyrus needs to open and checkpoint its databases. IMAP
    # listens on a private socket only, for provision_cyrus.
    cat >"$d/cyrus.conf" <<EOF
START {
    recover    cmd="ctl_cyrusdb -C $d/imapd.conf -r"
}
SERVICES {
    http       cmd="httpd -C $d/imapd.conf" listen="$HOST:$CYRUS_PORT" prefork=0 maxchild=20
    imap       cmd="imapd -C $d/imapd.conf" listen="$d/config/socket/imap" prefork=0 maxchild=4
}
EVENTS {
    checkpoint cmd="ctl_cyrusdb -C $d/imapd.conf -c" period=30
}
EOF
}

start_cyrus() {
    local d user group sub u
    d=$(cyrus_dir)
    user=$(id -un) group=$(id -gn)
    [[ $EUID -ne 0 ]] || user=cyrus group=$(id -gn cyrus)
    for sub in config/db config/socket config/proc config/lock config/log config/msg \
        config/quota config/user spool sieve; do
        mkdir -p "$d/$sub"
    done
    write_cyrus_conf "$d" "$user" "$group"
    for u in alice:secret bob:secret2; do
        printf '%s' "${u#*:}" | "$SASLPASSWD" -p -c -f "$d/sasldb2" -u "$HOST" "${u%%:*}" ||
            die "cyrus: saslpasswd2 failed for ${u%%:*}"
    done
    chmod 600 "$d/sasldb2"
    [[ $EUID -ne 0 ]] || chown -R "$user:$group" "$d"
    spawn cyrus "$d/master.log" "$CYRUS_MASTER" -C "$d/imapd.conf" -M "$d/cyrus.conf" \
        -p "$d/master.pid" -D
}

# Logs alice and bob in once over IMAP (creates their INBOX) and once over CalDAV (creates
# their calendar home); fails unless both homes answer PROPFIND with 207.
provision_cyrus() {
    local d
    d=$(cyrus_data)
    "$VENV/bin/python" - "$d/config/socket/imap" "http://$HOST:$CYRUS_PORT" >>"$d/master.log" 2>&1 <<'PY' ||
import base64, imaplib, socket, sys, urllib.request
sock_path, base = sys.argv[1], sys.argv[2]
class UnixIMAP(imaplib.IMAP4):
    def _create_socket(self, timeout):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(self.host)
        return s
for user, pw in [("alice", "secret"), ("bob", "secret2")]:
    imap = UnixIMAP(sock_path, timeout=10)
    imap.login(user, pw)
    imap.logout()
    auth = base64.b64encode(f"{user}:{pw}".encode()).decode()
    req = urllib.request.Request(f"{base}/dav/calendars/user/{user}/", method="PROPFIND",
        data=b'<propfind xmlns="DAV:"><prop><resourcetype/></prop></propfind>',
        headers={"Depth": "1", "Content-Type": "application/xml", "Authorization": "Basic " + auth})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 207, f"{user}: PROPFIND of the calendar home answered {r.status}"
    print(f"provision_cyrus: {user} has a calendar home")
PY
        {
            tail -n 20 "$d/master.log" >&2
            die "cyrus: could not provision users alice and bob (log: $d/master.log)"
        }
}

write_env() {
    local tmp=$ENV_FILE.tmp up
    {
        echo "# Written by tests/servers.sh start; KEY=VALUE, no quoting needed."
        echo "SERVERS_ENV=$ENV_FILE"
        echo "PYTHON=$VENV/bin/python"
        echo "CALDAV_VERIFY=$ROOT/tests/caldav_verify.py"
        up=$(echo $SERVERS | tr ' ' ',')
        echo "TEST_SERVERS_UP=$up"
        if wanted radicale; then
            echo "RADICALE_URL=http://$HOST:$RADICALE_PORT/"
            echo "RADICALE_HOME=http://$HOST:$RADICALE_PORT/alice/"
            echo "RADICALE_USER=alice"
            echo "RADICALE_PASSWORD=secret"
            echo "RADICALE_USER2=bob"
            echo "RADICALE_PASSWORD2=secret2"
        fi
        if wanted xandikos; then
            echo "XANDIKOS_URL=http://$HOST:$XANDIKOS_PORT/"
            echo "XANDIKOS_HOME=http://$HOST:$XANDIKOS_PORT/user/calendars/"
        fi
        if wanted sabre; then
            echo "SABRE_URL=http://$HOST:$SABRE_PORT/"
            echo "SABRE_HOME=http://$HOST:$SABRE_PORT/calendars/alice/"
            echo "SABRE_USER=alice"
            echo "SABRE_PASSWORD=secret"
            echo "SABRE_USER2=bob"
            echo "SABRE_PASSWORD2=secret2"
        fi
        if wanted radicale-tls; then
            echo "RADICALE_TLS_URL=https://$HOST:$RADICALE_TLS_PORT/"
            echo "RADICALE_TLS_CA=$RUN/radicale-tls/ca.pem"
            echo "RADICALE_TLS_USER=alice"
            echo "RADICALE_TLS_PASSWORD=secret"
        fi
        if wanted cyrus; then
            echo "CYRUS_URL=http://$HOST:$CYRUS_PORT/dav/principals/user/alice/"
            echo "CYRUS_HOME=http://$HOST:$CYRUS_PORT/dav/calendars/user/alice/"
            echo "CYRUS_ROOT=http://$HOST:$CYRUS_PORT/"
            echo "CYRUS_USER=alice"
            echo "CYRUS_PASSWORD=secret"
            echo "CYRUS_USER2=bob"
            echo "CYRUS_PASSWORD2=secret2"
        fi
        if wanted apache; then
            echo "APACHE_DIGEST_URL=http://$HOST:$APACHE_PORT/"
            echo "APACHE_DIGEST_HOME=http://$HOST:$APACHE_PORT/alice/"
            echo "APACHE_DIGEST_USER=alice"
            echo "APACHE_DIGEST_PASSWORD=secret"
            echo "APACHE_DIGEST_USER2=bob"
            echo "APACHE_DIGEST_PASSWORD2=secret2"
        fi
    } >"$tmp"
    mv "$tmp" "$ENV_FILE"
}

do_start() {
    local s
    for s in $SERVERS; do
        [[ " $ALL_SERVERS " == *" $s "* ]] || die "unknown server '$s' in TEST_SERVERS (known: $ALL_SERVERS)"
    done
    do_stop quiet
    do_install
    local t0=$SECONDS
    # (`if`, not `&&`: set -e is off inside functions called from an && list.)
    if wanted radicale; then check_port radicale "$RADICALE_PORT"; fi
    if wanted radicale-tls; then check_port radicale-tls "$RADICALE_TLS_PORT"; fi
    if wanted xandikos; then check_port xandikos "$XANDIKOS_PORT"; fi
    if wanted sabre; then check_port sabre "$SABRE_PORT"; fi
    if wanted apache; then
        check_port apache "$APACHE_PORT"
        check_port apache_backend "$APACHE_BACKEND_PORT"
    fi
    if wanted cyrus; then check_port cyrus "$CYRUS_PORT"; fi
    rm -rf "$RUN"
    mkdir -p "$RUN"
    : >"$PIDS"
    # A failed start must not leave half the servers running.
    trap 'do_stop quiet' EXIT

    # Start everything first, then wait: the servers boot in parallel.
    for s in $SERVERS; do "start_$s"; done

    if wanted radicale; then
        wait_ready radicale "http://$HOST:$RADICALE_PORT/" "$RUN/radicale/radicale.log" "$(pid_of radicale)"
    fi
    if wanted radicale-tls; then
        wait_ready radicale-tls "https://$HOST:$RADICALE_TLS_PORT/" "$RUN/radicale-tls/radicale.log" "$(pid_of radicale-tls)"
    fi
    if wanted xandikos; then
        wait_ready xandikos "http://$HOST:$XANDIKOS_PORT/" "$RUN/xandikos/xandikos.log" "$(pid_of xandikos)"
    fi
    if wanted sabre; then
        wait_ready sabre "http://$HOST:$SABRE_PORT/" "$RUN/sabre/sabre.log" "$(pid_of sabre)"
    fi
    if wanted apache; then
        wait_ready apache-radicale "http://$HOST:$APACHE_BACKEND_PORT/" "$RUN/apache-radicale/radicale.log" "$(pid_of apache-radicale)"
        wait_ready apache "http://$HOST:$APACHE_PORT/" "$RUN/apache/error.log" "$(cat "$RUN/apache/httpd.pid" 2>/dev/null || true)"
    fi
    if wanted cyrus; then
        wait_ready cyrus "http://$HOST:$CYRUS_PORT/" "$(cyrus_data)/master.log" "$(pid_of cyrus)"
        provision_cyrus
    fi
    write_env
    trap - EXIT
    log "up in $((SECONDS - t0))s: $SERVERS (env: $ENV_FILE)"
}

# alive PID — running and not a zombie (our servers are orphans; this container's pid 1
# reaps them only about once a second, and kill -0 succeeds on a zombie).
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [[ -n $st && $st != Z ]]
}

# stop_pids PID... — TERM all, wait up to 5 s for all, then KILL what is left.
stop_pids() {
    local pid i left
    (($#)) || return 0
    kill -TERM "$@" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        left=0
        for pid in "$@"; do alive "$pid" && left=1; done
        ((left)) || return 0
        sleep 0.1
    done
    for pid in "$@"; do
        if alive "$pid"; then
            log "pid $pid ignored SIGTERM, killing"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}

do_stop() {
    local quiet=${1:-} name pid rest stopped="" pids=()
    local apid=$RUN/apache/httpd.pid
    if [[ -f $apid ]]; then
        pid=$(cat "$apid")
        if [[ -n $pid ]] && alive "$pid" && ours "$pid"; then
            pids+=("$pid")
            stopped+=" apache"
        fi
    fi
    if [[ -f $PIDS ]]; then
        while read -r name pid rest; do
            if [[ -n $pid ]] && alive "$pid" && ours "$pid" "$(dirname "$rest")"; then
                pids+=("$pid")
                stopped+=" $name"
            fi
        done <"$PIDS"
    fi
    stop_pids "${pids[@]}"
    rm -f "$PIDS"
    if [[ -f $RUN/cyrus/data-dir ]]; then
        rm -rf "$(cat "$RUN/cyrus/data-dir")" "$RUN/cyrus/data-dir"
    fi
    if [[ -f $RUN/apache/digest-dir ]]; then
        rm -rf "$(cat "$RUN/apache/digest-dir")" "$RUN/apache/digest-dir"
    fi
    rm -f "$ENV_FILE"
    [[ -n $quiet ]] || log "stopped:${stopped:- nothing was running}"
}

do_status() {
    local name pid logf any=0
    if [[ -f $PIDS ]]; then
        while read -r name pid logf; do
            any=1
            if alive "$pid" && ours "$pid" "$(dirname "$logf")"; then
                printf '%-16s pid %-8s running   log %s\n' "$name" "$pid" "$logf"
            else
                printf '%-16s pid %-8s DEAD      log %s\n' "$name" "$pid" "$logf"
            fi
        done <"$PIDS"
    fi
    if [[ -f $RUN/apache/httpd.pid ]]; then
        any=1
        pid=$(cat "$RUN/apache/httpd.pid")
        if alive "$pid"; then
            printf '%-16s pid %-8s running   log %s\n' apache "$pid" "$RUN/apache/error.log"
        else
            printf '%-16s pid %-8s DEAD      log %s\n' apache "$pid" "$RUN/apache/error.log"
        fi
    fi
    ((any)) || { echo "no servers running"; return 0; }
    [[ -f $ENV_FILE ]] && grep -E '_URL=' "$ENV_FILE"
    return 0
}

case ${1:-} in
start) do_start ;;
stop) do_stop ;;
status) do_status ;;
install) do_install ;;
*)
    echo "usage: $0 start|stop|status|install" >&2
    exit 2
    ;;
esac
