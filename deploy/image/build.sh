#!/usr/bin/env bash
# Builds the container images with the local Docker engine, FROM scratch (no
# base image is pulled): osprey (the static binary), osprey-mailclient (the
# compose cluster's mail client) and osprey-postgres (the PostgreSQL the
# compose cluster's central nodes share, made of the build host's Debian
# postgresql package). Usage:
#
#   deploy/image/build.sh [TAG]        # default TAG: latest
#
# Environment: VERSION and COMMIT (stamped into the binary), GO (default go),
# CA_BUNDLE (default /etc/ssl/certs/ca-certificates.crt: the build host's CA
# certificates are baked in; nothing is committed). The PostgreSQL server
# must be installed (Debian: apt-get install postgresql, or make peers).
set -euo pipefail
cd "$(dirname "$0")/../.."
tag=${1:-latest}
GO=${GO:-go}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}
COMMIT=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
if [[ ! -s $CA_BUNDLE ]]; then
	echo "build.sh: no CA bundle at $CA_BUNDLE (Debian: apt-get install ca-certificates, or set CA_BUNDLE)" >&2
	exit 1
fi

pgbin=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)
for f in postgres initdb pg_isready; do
	if [[ ! -x $pgbin/$f ]]; then
		echo "build.sh: no PostgreSQL server ($pgbin/$f), of which osprey-postgres is made (Debian: apt-get install postgresql, or make peers)" >&2
		exit 1
	fi
done
pgver=$(basename "$(dirname "$pgbin")")

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
ldflags="-s -w -X github.com/ospreysec/osprey/internal/buildinfo.version=$VERSION -X github.com/ospreysec/osprey/internal/buildinfo.commit=$COMMIT"
CGO_ENABLED=0 "$GO" build -trimpath -ldflags "$ldflags" -o "$ctx/osprey" ./cmd/osprey
CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w" -o "$ctx/mailclient" ./deploy/mailclient
cp deploy/image/Dockerfile deploy/image/Dockerfile.mailclient deploy/image/passwd deploy/image/group "$ctx/"
cp "$CA_BUNDLE" "$ctx/ca-certificates.crt"
# Directories the osprey user owns in the image; a named volume mounted on
# one of them starts with that owner.
mkdir -p "$ctx/rootfs/var/lib/osprey" "$ctx/rootfs/var/lib/osprey-sensor" "$ctx/rootfs/etc/osprey/shared" "$ctx/rootfs/tmp"
chmod 0700 "$ctx/rootfs/var/lib/osprey" "$ctx/rootfs/var/lib/osprey-sensor" "$ctx/rootfs/etc/osprey/shared"
chmod 1777 "$ctx/rootfs/tmp"

# osprey-postgres: the server's binaries, modules and share files from the
# Debian package, at the paths the package puts them (postgres finds its
# share and lib directories relative to its own), with every library ldd
# names; /bin/sh (Debian's dash), through which initdb runs postgres
# (popen); the entry point pgimage; the user postgres (10002).
pg=$ctx/postgres
mkdir -p "$pg/rootfs/etc" "$pg/rootfs/usr/local/bin" "$pg/rootfs/tmp" "$pg/owned/var/lib/postgresql" "$pg/owned/var/run/postgresql"
chmod 1777 "$pg/rootfs/tmp"
chmod 0700 "$pg/owned/var/lib/postgresql" "$pg/owned/var/run/postgresql"
put() { # copies each file to the same path under the image's root, following symlinks
	local f
	for f; do
		mkdir -p "$pg/rootfs$(dirname "$f")"
		cp -L "$f" "$pg/rootfs$f"
	done
}
sh=$(readlink -f /bin/sh)
if [[ $(basename "$sh") != dash ]]; then
	echo "build.sh: /bin/sh is $sh, not Debian's dash (apt-get install dash)" >&2
	exit 1
fi
elves=("$pgbin/postgres" "$pgbin/initdb" "$pgbin/pg_isready" "$sh")
for so in "/usr/lib/postgresql/$pgver/lib/"*.so; do
	case $(basename "$so") in llvmjit*) continue ;; esac # no LLVM: jit stays off
	elves+=("$so")
done
put "${elves[@]}"
if missing=$(ldd "${elves[@]}" | grep 'not found'); then
	echo "build.sh: libraries of the PostgreSQL server are missing:" >&2
	echo "$missing" >&2
	exit 1
fi
# "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)", and the loader as "/lib64/ld-linux-x86-64.so.2 (0x...)".
mapfile -t libs < <(ldd "${elves[@]}" | awk '$2 == "=>" && $3 ~ /^\// {print $3} NF == 2 && $1 ~ /^\// {print $1}' | sort -u)
put "${libs[@]}"
mkdir -p "$pg/rootfs/usr/share/postgresql" "$pg/rootfs/usr/share/zoneinfo"
cp -rL "/usr/share/postgresql/$pgver" "$pg/rootfs/usr/share/postgresql/"
rm -rf "$pg/rootfs/usr/share/postgresql/$pgver/man"
cp -a /usr/share/zoneinfo/. "$pg/rootfs/usr/share/zoneinfo/"
rm -f "$pg/rootfs/usr/share/zoneinfo/localtime" # a link to /etc/localtime
cp deploy/image/passwd.postgres "$pg/rootfs/etc/passwd"
cp deploy/image/group.postgres "$pg/rootfs/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$pg/rootfs/etc/nsswitch.conf"
CGO_ENABLED=0 "$GO" build -trimpath -ldflags "-s -w" -o "$pg/rootfs/usr/local/bin/pgimage" ./deploy/pgimage
ln -s "$pgbin/pg_isready" "$pg/rootfs/usr/local/bin/pg_isready"
mkdir -p "$pg/rootfs/bin"
ln -s "$sh" "$pg/rootfs/bin/sh"
cp deploy/image/Dockerfile.postgres "$pg/Dockerfile"

# The classic builder needs no buildx plugin; all three build FROM scratch.
export DOCKER_BUILDKIT=0
docker build -q --build-arg VERSION="$VERSION" -t "osprey:$tag" -f "$ctx/Dockerfile" "$ctx"
docker build -q -t "osprey-mailclient:$tag" -f "$ctx/Dockerfile.mailclient" "$ctx"
docker build -q --build-arg PG_VERSION="$pgver" -t "osprey-postgres:$tag" "$pg"
echo "built osprey:$tag, osprey-mailclient:$tag ($VERSION) and osprey-postgres:$tag (PostgreSQL $pgver)"
