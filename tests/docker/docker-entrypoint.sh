#!/bin/sh
# Entrypoint of the locally built test image. It follows the official
# postgres image where downtime relies on it:
#   - the server runs as the unprivileged `postgres` user;
#   - an empty PGDATA is initialised with POSTGRES_USER / POSTGRES_PASSWORD
#     (and POSTGRES_DB, POSTGRES_INITDB_ARGS);
#   - listen_addresses = '*' and host authentication per
#     POSTGRES_HOST_AUTH_METHOD (scram-sha-256 by default);
#   - arguments starting with `-` (such as `-c name=value`) go to postgres;
#   - the final server prints "database system is ready to accept connections".
set -eu

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
  set -- postgres "$@"
fi

if [ "$1" != postgres ]; then
  exec "$@"
fi
shift

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  chmod 2775 /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" postgres "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  user="${POSTGRES_USER:-postgres}"
  auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
  password="${POSTGRES_PASSWORD:-}"
  if [ -z "$password" ] && [ "$auth" != trust ]; then
    echo "error: database is uninitialized and superuser password is not specified." >&2
    echo "       Set POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust." >&2
    exit 1
  fi
  pwfile=$(mktemp)
  printf '%s\n' "$password" > "$pwfile"
  pwopt=""
  if [ -n "$password" ]; then
    pwopt="--pwfile=$pwfile"
  fi
  # shellcheck disable=SC2086
  initdb --username="$user" $pwopt --auth-local=trust --auth-host="$auth" \
    ${POSTGRES_INITDB_ARGS:-} -D "$PGDATA"
  rm -f "$pwfile"
  printf "\nlisten_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
  printf 'host all all all %s\n' "$auth" >> "$PGDATA/pg_hba.conf"
  db="${POSTGRES_DB:-$user}"
  if [ "$db" != postgres ]; then
    echo "CREATE DATABASE \"$db\"" | postgres --single -D "$PGDATA" postgres >/dev/null
  fi
  echo "PostgreSQL init process complete; ready for start up."
fi

exec postgres -D "$PGDATA" "$@"
