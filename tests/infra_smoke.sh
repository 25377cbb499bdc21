#!/usr/bin/env bash
# Proves the test servers work: on every server listed in .tests/run/servers.env, the
# independent verifier creates a calendar, PUTs a VEVENT (with VALARM) and a VTODO, reads
# them back, checks the parsed fields and deletes the calendar again. ~0.6 s per server.
# Usage: tests/infra_smoke.sh   (after tests/servers.sh start)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENV_FILE=${SERVERS_ENV:-$ROOT/.tests/run/servers.env}
[[ -f $ENV_FILE ]] || { echo "infra_smoke: $ENV_FILE missing; run tests/servers.sh start" >&2; exit 1; }
set -a
# shellcheck disable=SC1090
. "$ENV_FILE"
set +a

failed=0 ok=""
for prefix in RADICALE XANDIKOS SABRE APACHE_DIGEST CYRUS; do
    url_var=${prefix}_URL user_var=${prefix}_USER pass_var=${prefix}_PASSWORD
    url=${!url_var:-}
    [[ -n $url ]] || continue
    auth=()
    [[ -z ${!user_var:-} ]] || auth=(--user "${!user_var}" --password "${!pass_var}")
    if out=$("$PYTHON" "$ROOT/tests/caldav_verify.py" smoke --url "$url" "${auth[@]}" 2>&1); then
        ok+=" ${prefix,,}"
    else
        failed=1
        echo "infra_smoke: FAILED against $prefix ($url):" >&2
        echo "$out" >&2
    fi
done
[[ -n $ok || $failed -ne 0 ]] || { echo "infra_smoke: no servers in $ENV_FILE" >&2; exit 1; }
echo "infra_smoke: verifier round trip ok on:${ok:- none}"
exit "$failed"
