#!/usr/bin/env bash
# Proves the Dockerfile builds and the image serves, on a machine that can pull no
# registry image and run no container:
#   1. builds a stand-in base image (Debian bookworm from debootstrap, with Python 3.11
#      and pip, as python:3.11-slim has them) and imports it into podman;
#   2. builds both targets of our Dockerfile with podman (--isolation chroot) on that
#      base: the trainer image and the serving image (the default);
#   3. copies out each image's filesystem and runs the image's own entrypoint in it
#      (chroot, as the image's non-root user, with the image's RECSVC_* environment):
#      the trainer generates a small store and trains; the serving image, which must
#      not hold the training libraries, serves that model; /healthz and /recommend are
#      checked, and both images' sizes printed.
# Usage: scripts/container-check.sh        (as root; installs podman and debootstrap)
# About 2 minutes on the development machine from scratch (debootstrap and downloads
# included; installing podman and debootstrap adds about one); seconds once cached.
# `make test` runs it when run as root (as CI is); `make container-check` runs it alone.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${CONTAINER_CHECK_DIR:-/var/tmp/recsvc-container-check}"
base_tag="localhost/recsvc-base:stand-in"
image_tag="localhost/recsvc:check"
trainer_tag="localhost/recsvc-trainer:check"
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

log "building the Dockerfile's two targets with podman on $base_tag"
podman build --isolation chroot --build-arg "BASE_IMAGE=$base_tag" --target trainer \
    -t "$trainer_tag" . >&2
# Not from the first build's cache: podman 4.3 cannot bind-mount the wheels from a
# stage it took from its cache ("couldn't find .../merged/wheels"), so the service's
# stage builds its own (about a minute more).
podman build --isolation chroot --layers=false --build-arg "BASE_IMAGE=$base_tag" \
    -t "$image_tag" . >&2

# An image's filesystem, copied out writable (an image mount is read-only), as a
# container's root would be, with /proc and the few device nodes a Python program needs
# (made in the copy: the host's /dev is never bound into it, so a later `rm -rf` of the
# copy cannot reach the host's devices).
copy_out() {  # tag dir
    local tag="$1" dir="$2" image_mnt name major minor
    if findmnt -rn -o TARGET | grep -q "^$dir/"; then
        log "something is still mounted under $dir: unmount it first"; exit 1
    fi
    rm -rf --one-file-system "$dir"
    image_mnt="$(podman image mount "$tag")"
    cp -a "$image_mnt" "$dir"
    podman image unmount "$tag" >/dev/null
    mount -t proc proc "$dir/proc"
    mkdir -p "$dir/dev"
    while read -r name major minor; do
        [ -e "$dir/dev/$name" ] || mknod -m 666 "$dir/dev/$name" c "$major" "$minor"
    done <<'NODES'
null 1 3
zero 1 5
random 1 8
urandom 1 9
NODES
}
trainer_fs="$work/trainerfs"
mnt="$work/imagefs"
cleanup() {
    if [ -n "${server_pid:-}" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    umount -l "$mnt/proc" 2>/dev/null || true
    umount -l "$trainer_fs/proc" 2>/dev/null || true
}
trap cleanup EXIT
copy_out "$trainer_tag" "$trainer_fs"
copy_out "$image_tag" "$mnt"

# Each image's own configuration: entrypoint, user, environment.
entrypoint="$(podman image inspect "$image_tag" --format '{{join .Config.Entrypoint " "}}')"
user="$(podman image inspect "$image_tag" --format '{{.Config.User}}')"
mapfile -t env < <(podman image inspect "$image_tag" --format '{{range .Config.Env}}{{println .}}{{end}}' | sed '/^$/d')
run_in() { local fs="$1"; shift; chroot --userspec="$user:$user" "$fs" /usr/bin/env -i "${env[@]}" HOME=/var/lib/recsvc "$@"; }

log "trainer image, entrypoint '$entrypoint' as user $user: generate, train"
run_in "$trainer_fs" $entrypoint generate --out /var/lib/recsvc/store --users 500 --items 120 --events 20000 >/dev/null
run_in "$trainer_fs" $entrypoint train --interactions /var/lib/recsvc/store/interactions.csv \
    --items /var/lib/recsvc/store/items.csv --model-root /var/lib/recsvc/models \
    --no-tune --quiet >/dev/null
rm -rf "$mnt/var/lib/recsvc/models"
cp -a "$trainer_fs/var/lib/recsvc/models" "$mnt/var/lib/recsvc/models"

for package in implicit pandas sklearn matplotlib pyarrow; do
    if run_in "$mnt" python -c "import $package" 2>/dev/null; then
        log "the serving image holds $package: it should hold only what serving needs"; exit 1
    fi
done

if curl -s "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
    log "port $port is already in use (CONTAINER_CHECK_PORT chooses another)"; exit 1
fi
log "serving image: serving the trainer's model on port $port"
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
log "image sizes (bytes): serve $(podman image inspect "$image_tag" --format '{{.Size}}'), trainer $(podman image inspect "$trainer_tag" --format '{{.Size}}')"
log "OK: both images build; the trainer trains, the serving image (no training libraries) serves"
