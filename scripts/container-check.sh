#!/usr/bin/env bash
# Proves the Dockerfile builds and the image serves, on a machine that can pull no
# registry image and run no container:
#   1. builds a stand-in base image (Debian bookworm from debootstrap, with Python 3.11
#      and pip, as python:3.11-slim has them) and imports it into podman;
#   2. builds our Dockerfile with podman (--isolation chroot) on that base;
#   3. mounts the built image's filesystem and starts the image's own entrypoint in it
#      (chroot, as the image's non-root user, with the image's RECSVC_* environment):
#      generates a small store, trains, serves, and checks /healthz and /recommend.
# Usage: scripts/container-check.sh        (as root; installs podman and debootstrap)
# About 2 minutes on the development machine from scratch (debootstrap and downloads
# included; installing podman and debootstrap adds about one); seconds once cached.
# `make test` runs it when run as root (as CI is); `make container-check` runs it alone.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${CONTAINER_CHECK_DIR:-/var/tmp/recsvc-container-check}"
base_tag="localhost/recsvc-base:stand-in"
image_tag="localhost/recsvc:check"
port="${CONTAINER_CHECK_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"

log() { echo "container-check: $*" >&2; }

[ "$(id -u)" -eq 0 ] || { log "run as root (podman image mount, chroot)"; exit 1; }
scripts/ensure-tool.sh podman podman
scripts/ensure-tool.sh debootstrap debootstrap
mkdir -p "$work"

if ! podman image exists "$base_tag"; then
    log "building the stand-in base image with debootstrap"
    rootfs="$work/rootfs"
    if [ ! -x "$rootfs/usr/bin/python3" ]; then
        rm -rf "$rootfs"
        debootstrap --variant=minbase \
            --include=python3,python3-pip,python3-venv,ca-certificates \
            bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
    fi
    ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/python"
    # Trust what this machine trusts (a site's base image carries its own CAs: here, the
    # proxy's, without which pip cannot reach the package index).
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    # The official image's pip installs system-wide; Debian's refuses unless told.
    rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" -c . | podman import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        - "$base_tag" >/dev/null
fi

log "building the Dockerfile with podman on $base_tag"
podman build --isolation chroot --build-arg "BASE_IMAGE=$base_tag" -t "$image_tag" . >&2

# The image's filesystem, copied out writable (an image mount is read-only), as a
# container's root would be.
mnt="$work/imagefs"
if findmnt -rn -o TARGET | grep -q "^$mnt/"; then
    log "something is still mounted under $mnt: unmount it first"; exit 1
fi
rm -rf --one-file-system "$mnt"
image_mnt="$(podman image mount "$image_tag")"
cp -a "$image_mnt" "$mnt"
podman image unmount "$image_tag" >/dev/null
cleanup() {
    if [ -n "${server_pid:-}" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    umount -l "$mnt/proc" 2>/dev/null || true
}
trap cleanup EXIT
mount -t proc proc "$mnt/proc"
# The few device nodes a Python service needs, made in the copy: the host's /dev is
# never bound into it (a later `rm -rf` of the copy must not reach the host's devices).
mkdir -p "$mnt/dev"
for node in "null 1 3" "zero 1 5" "random 1 8" "urandom 1 9"; do
    set -- $node
    [ -e "$mnt/dev/$1" ] || mknod -m 666 "$mnt/dev/$1" c "$2" "$3"
done

# The image's own configuration: entrypoint, user, environment.
entrypoint="$(podman image inspect "$image_tag" --format '{{join .Config.Entrypoint " "}}')"
user="$(podman image inspect "$image_tag" --format '{{.Config.User}}')"
mapfile -t env < <(podman image inspect "$image_tag" --format '{{range .Config.Env}}{{println .}}{{end}}' | sed '/^$/d')
run() { chroot --userspec="$user:$user" "$mnt" /usr/bin/env -i "${env[@]}" HOME=/var/lib/recsvc "$@"; }

log "entrypoint '$entrypoint' as user $user: generate, train"
run $entrypoint generate --out /var/lib/recsvc/store --users 500 --items 120 --events 20000 >/dev/null
run $entrypoint train --interactions /var/lib/recsvc/store/interactions.csv \
    --items /var/lib/recsvc/store/items.csv --model-root /var/lib/recsvc/models \
    --no-tune --quiet >/dev/null

if curl -s "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
    log "port $port is already in use (CONTAINER_CHECK_PORT chooses another)"; exit 1
fi
log "serving on port $port"
# chroot directly (no shell function in between), so $! is the server itself.
chroot --userspec="$user:$user" "$mnt" /usr/bin/env -i "${env[@]}" HOME=/var/lib/recsvc \
    $entrypoint serve --host 127.0.0.1 --port "$port" >"$work/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 60); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 1
done
curl -fsS "http://127.0.0.1:$port/healthz"; echo
body="$(curl -fsS "http://127.0.0.1:$port/recommend?user_id=U1&n=3")"
echo "$body"
echo "$body" | grep -q '"items":\[{"item_id"' || { log "no recommendations"; exit 1; }
trained="$(readlink "$mnt/var/lib/recsvc/models/current")"
echo "$body" | grep -q "\"model_version\":\"$trained\"" || {
    log "served a model other than the one just trained ($trained)"; exit 1; }
log "OK: the image builds, trains and serves"
