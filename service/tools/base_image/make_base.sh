#!/usr/bin/env bash
# Make a stand-in for python:3.11-slim-bookworm when no image registry answers:
# `debootstrap --variant=minbase bookworm` with Debian's python3.11, venv, pip and CA certificates
# from the Debian mirror, `docker import`ed, then finished by this folder's Dockerfile (no
# EXTERNALLY-MANAGED, `python`/`pip` in /usr/local/bin, apt's docker-clean). Cached: the debootstrap
# runs only when the rootfs image (<TAG's name>:bookworm-rootfs-2) does not exist yet; the finishing
# build is a cached `docker build`. Needs root (debootstrap) and a Docker daemon.
# Usage: service/tools/base_image/make_base.sh [TAG]   (default slimray-base:bookworm-py3.11)
# Env: DOCKER (client, default docker), DEBIAN_MIRROR (default: http://deb.debian.org/debian),
#      DEBIAN_SECURITY_MIRROR (default: http://deb.debian.org/debian-security)
set -euo pipefail
TAG=${1:-slimray-base:bookworm-py3.11}
DOCKER=${DOCKER:-docker}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
ROOTFS_IMAGE=${TAG%%:*}:bookworm-rootfs-2  # -2: without the build machine's resolv.conf and hostname
here=$(cd "$(dirname "$0")" && pwd)

if ! "$DOCKER" image inspect "$ROOTFS_IMAGE" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || { echo "make_base.sh: debootstrap is not installed" >&2; exit 1; }
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase \
    --include=python3.11,python3.11-venv,python3-pip,ca-certificates \
    bookworm "$rootfs" "$MIRROR"
  # the official image's apt sources (deb822), no downloaded lists or archives, no machine id
  rm -f "$rootfs/etc/apt/sources.list"
  cat > "$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb \
         "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/root/.cache
  : > "$rootfs/etc/machine-id"
  # debootstrap copies the build machine's resolver and name in: Docker mounts its own at run time
  rm -f "$rootfs/etc/resolv.conf"
  : > "$rootfs/etc/hostname"
  tar --numeric-owner --xattrs -C "$rootfs" -c . \
    | "$DOCKER" import --change 'CMD ["bash"]' - "$ROOTFS_IMAGE"
  rm -rf "$rootfs"
  trap - EXIT
fi
DOCKER_BUILDKIT=1 "$DOCKER" build --network host --build-arg ROOTFS_IMAGE="$ROOTFS_IMAGE" -q -t "$TAG" "$here" >/dev/null
echo "base image: $TAG"
