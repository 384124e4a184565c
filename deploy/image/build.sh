#!/usr/bin/env bash
# Builds the container images with the local Docker engine, FROM scratch (no
# base image is pulled): osprey (the static binary) and osprey-mailclient (the
# compose cluster's mail client). Usage:
#
#   deploy/image/build.sh [TAG]        # default TAG: latest
#
# Environment: VERSION and COMMIT (stamped into the binary), GO (default go),
# CA_BUNDLE (default /etc/ssl/certs/ca-certificates.crt: the build host's CA
# certificates are baked in; nothing is committed).
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

# The classic builder needs no buildx plugin; both build FROM scratch.
export DOCKER_BUILDKIT=0
docker build -q --build-arg VERSION="$VERSION" -t "osprey:$tag" -f "$ctx/Dockerfile" "$ctx"
docker build -q -t "osprey-mailclient:$tag" -f "$ctx/Dockerfile.mailclient" "$ctx"
echo "built osprey:$tag and osprey-mailclient:$tag ($VERSION)"
