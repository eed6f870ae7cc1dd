#!/usr/bin/env bash
# smoke.sh - do by hand, over ssh, what a deploy does, against a running sandbox (`sandbox.sh up` first):
# clone from the origin repo to every host, `docker compose up -d --build`, `alembic upgrade head`, curl /health;
# a broken v2 on the first host (health fails), rollback (downgrade, old image without rebuild), a failing
# migration, logs, the per-host database topology (compose.perhost.yaml on the last host: its own app_hN),
# and docker's ssh:// transport from the runner side. SMOKE_KEEP=1 leaves the app running.
set -euo pipefail
S=${SANDBOX_DIR:-/tmp/sbx}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ -s "$S/env" ] || { echo "no $S/env: run sandbox.sh up first" >&2; exit 1; }
# shellcheck disable=SC1091
source "$S/env"          # SANDBOX_* + PATH with the ssh wrapper (-F $SANDBOX_SSH_CONFIG) + DOCKER_CONFIG
read -r -a NUMS <<<"$SANDBOX_HOSTS"
[ ${#NUMS[@]} -ge 2 ] || { echo "smoke.sh needs at least 2 sandbox hosts" >&2; exit 1; }
ip_of() { local v="SANDBOX_H$1_IP"; echo "${!v}"; }
path_of() { local v="SANDBOX_H$1_APP_PATH"; echo "${!v}"; }
ALL=()   # "ip:path" of every host
for n in "${NUMS[@]}"; do ALL+=("$(ip_of "$n"):$(path_of "$n")"); done
H2=$(ip_of "${NUMS[0]}") P2=$(path_of "${NUMS[0]}")                       # the host releases are tried on
LAST=${NUMS[${#NUMS[@]}-1]}; HL=$(ip_of "$LAST") PL=$(path_of "$LAST")    # the per-host database step
HL_DB_LOCAL_VAR="SANDBOX_H${LAST}_HOST_DB_URL_LOCAL"; HL_DB_LOCAL=${!HL_DB_LOCAL_VAR}
W=$S/origin/work          # a developer's work tree that pushes releases to $SANDBOX_ORIGIN
T0=$(date +%s%N)
step() { STEP_T=$(date +%s%N); printf '\n=== %s\n' "$*"; }
took() { printf '    (%d ms)\n' $(( ($(date +%s%N) - STEP_T) / 1000000 )); }
ok() { printf '    OK: %s\n' "$*"; }
fail() { printf '    FAILED: %s\n' "$*" >&2; exit 1; }
health() { curl -s -m 5 -w ' HTTP %{http_code}' "http://$1:$SANDBOX_APP_PORT/health" | tr -d '\n' || true; }
LOG=$S/smoke.log; : >"$LOG"
rsh() {  # rsh HOST CMD: ssh to a fake host (the wrapper adds -F $SANDBOX_SSH_CONFIG), output to $LOG
  echo "### $1: $2" >>"$LOG"; ssh "$1" "$2" >>"$LOG" 2>&1
}
release() {  # $1 version: commit + tag + push the work tree
  (cd "$W" && git add -A && git commit -q -m "release $1" && git tag "v$1" && git push -q origin main "v$1")
}
DC='docker compose'
MIGRATE='docker compose exec -T api python3 -m alembic'

step "origin: bare repo $SANDBOX_ORIGIN with examples/app at v1.0.0 (and no app left on the hosts)"
for h in "${ALL[@]}"; do
  rsh "${h%%:*}" "if [ -d ${h#*:} ]; then cd ${h#*:} && docker compose down --remove-orphans; cd / && rm -rf ${h#*:}; fi"
done
for n in "${NUMS[@]}"; do
  for v in "SANDBOX_H${n}_DB_URL_LOCAL" "SANDBOX_H${n}_HOST_DB_URL_LOCAL"; do
    psql -q "${!v}" -c 'DROP TABLE IF EXISTS items, events, alembic_version CASCADE' 2>/dev/null || true
  done
done
"$HERE/sandbox.sh" origin >/dev/null
took

step "deploy v1.0.0 to every host (${NUMS[*]}) in parallel: git clone, compose up -d --build, alembic upgrade head"
pids=()
for h in "${ALL[@]}"; do
  rsh "${h%%:*}" "set -e; git clone -q $SANDBOX_ORIGIN ${h#*:}; cd ${h#*:}; git checkout -q v1.0.0
                  APP_VERSION=\$(cat VERSION) $DC up -d --build --wait --wait-timeout 60
                  $MIGRATE upgrade head" &
  pids+=($!)
done
for j in "${pids[@]}"; do wait "$j" || { tail -20 "$LOG"; fail "deploy v1"; }; done   # only these ssh jobs
for h in "${ALL[@]}"; do
  out=$(health "${h%%:*}"); echo "    ${h%%:*}: $out"
  [[ $out == *'"version": "1.0.0"'*'"db_revision": "0003"'*'HTTP 200' ]] || fail "v1 health on ${h%%:*}"
done
# shellcheck disable=SC2016
ok "every host uses the shared database: $(ssh "$HL" 'echo $DATABASE_URL')"
took

step "release v2.0.0 (health fails on purpose + a good migration 0004), deploy to h2"
"$SANDBOX_APP_SRC/variant.sh" "$W" version 2.0.0 health fail migration good >/dev/null
release 2.0.0
if rsh "$H2" "cd $P2 && git fetch -q --tags && git checkout -q v2.0.0 &&
              APP_VERSION=2.0.0 $DC up -d --build --wait --wait-timeout 30"; then fail "v2 should be unhealthy"; fi
ok "compose up --wait failed: $(tail -1 "$LOG")"
rsh "$H2" "cd $P2 && $MIGRATE upgrade head" || fail "migrate v2"
echo "    $(grep 'Running upgrade' "$LOG" | tail -1)"
out=$(health "$H2"); echo "    $H2: $out"
[[ $out == *'"status": "fail"'*'"version": "2.0.0"'*'HTTP 500' ]] || fail "v2 health should be 500"
rev=$(ssh "$H2" "cd $P2 && $MIGRATE current 2>/dev/null"); echo "    alembic current: $rev"
[[ $rev == 0004* ]] || fail "expected 0004"
took

step "roll h2 back to v1.0.0: downgrade first (0004 exists only in v2's code), then the old image, no rebuild"
rsh "$H2" "set -e; cd $P2; $MIGRATE downgrade 0003
           git checkout -q v1.0.0
           APP_VERSION=1.0.0 $DC up -d --no-build --wait --wait-timeout 30" || fail "rollback"
echo "    $(grep 'Running downgrade' "$LOG" | tail -1)"
out=$(health "$H2"); echo "    $H2: $out"
[[ $out == *'"version": "1.0.0"'*'"db_revision": "0003"'*'HTTP 200' ]] || fail "rollback health"
took

step "release v3.0.0 (healthy, but migration 0005 fails), deploy to h2"
"$SANDBOX_APP_SRC/variant.sh" "$W" version 3.0.0 health ok migration fail >/dev/null
release 3.0.0
rsh "$H2" "cd $P2 && git fetch -q --tags && git checkout -q v3.0.0 &&
           APP_VERSION=3.0.0 $DC up -d --build --wait --wait-timeout 30" || fail "v3 up"
if rsh "$H2" "cd $P2 && $MIGRATE upgrade head"; then fail "migration should fail"; fi
echo "    $(grep RuntimeError "$LOG" | tail -1 | sed 's/^ *//')"
rev=$(ssh "$H2" "cd $P2 && $MIGRATE current 2>/dev/null"); echo "    alembic current after the failed upgrade: $rev"
[[ $rev == 0003* ]] || fail "the failed run should have rolled back to 0003"
rsh "$H2" "set -e; cd $P2; git checkout -q v1.0.0; APP_VERSION=1.0.0 $DC up -d --no-build --wait --wait-timeout 30" || fail "rollback v3"
out=$(health "$H2"); echo "    after rollback $H2: $out"
[[ $out == *'"version": "1.0.0"'*'HTTP 200' ]] || fail "rollback after failed migration"
took

step "logs and state on h2"
ssh "$H2" "cd $P2 && $DC logs --tail=200 api | tail -4 && $DC logs --tail=2 worker && $DC ps --format '{{.Service}} {{.Image}} {{.Status}}'"
took

step "per-host database on $HL: compose.perhost.yaml, the api uses HOST_DATABASE_URL (its own app_h$LAST)"
# shellcheck disable=SC2016
url=$(ssh "$HL" 'echo $HOST_DATABASE_URL'); echo "    HOST_DATABASE_URL=$url"
[[ $url == */app_h$LAST ]] || fail "HOST_DATABASE_URL of $HL"
[ -z "$(psql -At "$HL_DB_LOCAL" -c 'SELECT 1 FROM pg_tables WHERE tablename = $$alembic_version$$')" ] || fail "app_h$LAST not empty"
rsh "$HL" "set -e; cd $PL; APP_VERSION=1.0.0 $DC -f compose.perhost.yaml up -d --no-build --wait --wait-timeout 30
           $DC -f compose.perhost.yaml exec -T api python3 -m alembic upgrade head" || fail "per-host deploy"
rev=$(psql -At "$HL_DB_LOCAL" -c 'SELECT version_num FROM alembic_version'); echo "    app_h$LAST revision: $rev"
[ "$rev" = 0003 ] || fail "app_h$LAST should be at 0003"
out=$(health "$HL"); echo "    $HL: $out"
[[ $out == *'"version": "1.0.0"'*'"db_revision": "0003"'*'HTTP 200' ]] || fail "per-host health on $HL"
took

step "runner side: DOCKER_HOST=ssh://root@$H2 docker ps (docker runs \`ssh\` from PATH = $SANDBOX_BIN/ssh)"
DOCKER_HOST=ssh://root@$H2 docker ps --format '    {{.Names}} {{.Image}} {{.Status}}'
# docker SDK 7.x needs paramiko importable even for use_ssh_client=True: `sandbox.sh install` made a venv with both
HOME=$SANDBOX_HOME "$SANDBOX_DIR/tools/py/bin/python" - "$H2" <<'PY'
import sys, docker
for shell_out in (True, False):  # system ssh (the PATH wrapper) / paramiko (reads $HOME/.ssh)
    c = docker.DockerClient(base_url=f"ssh://root@{sys.argv[1]}", use_ssh_client=shell_out, timeout=30)
    print(f"    docker SDK use_ssh_client={shell_out}:", sorted(x.name for x in c.containers.list()))
    c.close()
PY
took

if [ "${SMOKE_KEEP:-0}" != 1 ]; then
  step "cleanup: downgrade base, compose down, remove the checkouts"
  for h in "${ALL[@]}"; do
    f=compose.yaml; [ "${h%%:*}" != "$HL" ] || f=compose.perhost.yaml
    rsh "${h%%:*}" "cd ${h#*:} && $DC -f $f exec -T api python3 -m alembic downgrade base; $DC -f $f down --remove-orphans; rm -rf ${h#*:}"
  done
  took
fi
printf '\nsmoke OK in %d ms\n' $(( ($(date +%s%N) - T0) / 1000000 ))
