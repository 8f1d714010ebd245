"""The start scripts baked into service images as ``/usr/local/bin/rees-service-start``.

Each reads the password from ``REES_SERVICE_PASSWORD`` (the container's environment)
and hands it to the server through stdin, so it never appears on a command line, in a
label or in ``docker inspect``'s ``Cmd``/``Args``. Each ends in ``exec``: the server is
the container's main process and gets ``docker stop``'s signal itself.
"""

from __future__ import annotations

# Shared opening: stop at the first error, insist on a one-line password.
_PREAMBLE = """#!/bin/sh
set -eu
: "${REES_SERVICE_PASSWORD:?REES_SERVICE_PASSWORD must be set}"
nl='
'
case "$REES_SERVICE_PASSWORD" in *"$nl"*)
    echo "rees-service-start: REES_SERVICE_PASSWORD must be one line" >&2; exit 64;;
esac
umask 077
"""

POSTGRES = _PREAMBLE + """# Usage: rees-service-start DATABASE [postgres -c options...]
# PostgreSQL @VERSION@: initdb on first start, then (every start) the role @ROLE@ gets
# the password of this start, then the server runs in the foreground.
database="$1"; shift
bin=/usr/lib/postgresql/@VERSION@/bin
data="@DATA_DIR@/pg@VERSION@"
single() {
    "$bin/postgres" --single -D "$data" -c log_min_error_statement=panic postgres >/dev/null
}
if [ ! -s "$data/PG_VERSION" ]; then
    "$bin/initdb" -D "$data" -U postgres --auth-local=peer --auth-host=scram-sha-256 \\
        --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    printf 'host all all 0.0.0.0/0 scram-sha-256\\nhost all all ::/0 scram-sha-256\\n' \\
        >> "$data/pg_hba.conf"
fi
quoted=$(printf '%s' "$REES_SERVICE_PASSWORD" | sed "s/'/''/g")
single <<EOF
DO \\$\\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '@ROLE@') THEN CREATE ROLE @ROLE@ LOGIN; END IF; END\\$\\$;
ALTER ROLE @ROLE@ LOGIN PASSWORD '$quoted';
EOF
if [ ! -e "$data/rees-database-$database" ]; then
    echo "CREATE DATABASE \\"$database\\" OWNER @ROLE@;" | single
    touch "$data/rees-database-$database"
fi
exec "$bin/postgres" -D "$data" -c 'listen_addresses=*' -c port=@PORT@ \\
    -c unix_socket_directories=@RUN_DIR@ "$@"
"""

REDIS = _PREAMBLE + """# Usage: rees-service-start [redis-server --options...]
# Redis @VERSION@ in the foreground; its configuration (with requirepass) is read from
# stdin, so the password is in no file and on no command line.
escaped=$(printf '%s' "$REES_SERVICE_PASSWORD" | sed 's/\\\\/\\\\\\\\/g; s/"/\\\\"/g')
exec redis-server /dev/stdin "$@" <<EOF
bind * -::*
port @PORT@
dir @DATA_DIR@
daemonize no
logfile ""
requirepass "$escaped"
EOF
"""


def render(template: str, **values) -> str:
    """``template`` with each ``@NAME@`` replaced by ``values[name.lower()]``."""
    for key, value in values.items():
        template = template.replace(f"@{key.upper()}@", str(value))
    return template
