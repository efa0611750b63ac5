#!/usr/bin/env bash
# Build the PostgreSQL image the Docker tests use, without a registry:
# debootstrap a minimal Debian with postgresql-$PG_MAJOR, then a FROM scratch
# image around it. Skips the build when the image is already present.
#
#   tests/docker/build-image.sh [IMAGE]      (default downtime-test/postgres:15)
#   FORCE=1 tests/docker/build-image.sh      rebuild even if present
#
# Needs: a Docker engine, debootstrap, root, and a Debian mirror
# (DEBIAN_MIRROR, default http://deb.debian.org/debian).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
image="${1:-downtime-test/postgres:15}"
# The major version: PG_MAJOR, else the leading number of the image's tag.
tag="${image##*:}"
[ "$tag" = "$image" ] && tag=""
default_major="$(printf '%s' "$tag" | grep -oE '^[0-9]+' || true)"
pg_major="${PG_MAJOR:-${default_major:-15}}"
# The Debian release that ships postgresql-$pg_major.
case "$pg_major" in
  13) default_suite=bullseye ;;
  15) default_suite=bookworm ;;
  17) default_suite=trixie ;;
  *) default_suite="" ;;
esac
suite="${DEBIAN_SUITE:-$default_suite}"
if [ -z "$suite" ]; then
  echo "build-image: no Debian release ships postgresql-$pg_major (13: bullseye, 15: bookworm," >&2
  echo "17: trixie); load a PostgreSQL $pg_major image with \`docker load -i FILE\` instead" >&2
  exit 2
fi
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$image" >/dev/null 2>&1; then
  echo "build-image: $image is present; skipping (FORCE=1 rebuilds it)"
  exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "build-image: debootstrap is missing (apt-get install debootstrap)" >&2
  exit 2
fi
if [ "$(id -u)" != 0 ]; then
  echo "build-image: debootstrap needs root" >&2
  exit 2
fi

work="$(mktemp -d /tmp/downtime-image.XXXXXX)"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
started=$SECONDS

echo "build-image: debootstrap $suite with postgresql-$pg_major (a few minutes)"
debootstrap --variant=minbase --include="postgresql-$pg_major" \
  "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  echo "build-image: debootstrap failed (log above)" >&2
  exit 1
}

# The package's own cluster and the files an image does not need.
rm -rf "$rootfs/var/lib/postgresql/$pg_major" "$rootfs/etc/postgresql/$pg_major"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
mkdir -p "$rootfs/var/lib/postgresql/data" "$rootfs/var/run/postgresql"
chroot "$rootfs" chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
install -m 0755 "$here/docker-entrypoint.sh" "$rootfs/usr/local/bin/docker-entrypoint.sh"

tar -C "$rootfs" -cf "$work/rootfs.tar" .
cp "$here/Dockerfile" "$work/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q --build-arg "PG_MAJOR=$pg_major" \
  --label org.opencontainers.image.title="downtime test PostgreSQL $pg_major" \
  -t "$image" "$work" >/dev/null 2>"$work/build.log" || {
  cat "$work/build.log" >&2
  exit 1
}
echo "build-image: built $image in $((SECONDS - started)) s"
