#!/usr/bin/env bash
# Makes sure the servers the tests and the worker use answer on their standard ports:
# PostgreSQL 5432 (trust authentication from 127.0.0.1), MariaDB 3306 (root, no password over
# TCP), Redis 6379 and RabbitMQ 5672 (guest/guest).
#
# A server that is not installed is installed with apt-get when this runs as root on Debian or
# Ubuntu; otherwise the script names the packages to install and fails. A server that is
# installed but down is started. Exits non-zero, naming the server, if one cannot be brought up.
set -uo pipefail

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  local name=$1 port=$2
  for _ in $(seq 1 90); do
    answers "$port" && return 0
    sleep 1
  done
  echo "services: $name did not come up on port $port" >&2
  return 1
}

pg_cluster() { ls -d /etc/postgresql/*/main 2>/dev/null | head -n1; }

installed() {
  case "$1" in
    postgresql) [ -n "$(pg_cluster)" ] && command -v pg_ctlcluster >/dev/null && command -v psql >/dev/null ;;
    mariadb) [ -x /usr/sbin/mariadbd ] || command -v mariadbd >/dev/null ;;
    redis) command -v redis-server >/dev/null ;;
    rabbitmq) [ -x /usr/sbin/rabbitmq-server ] || command -v rabbitmq-server >/dev/null ;;
  esac
}

package() {
  case "$1" in
    postgresql) echo postgresql ;;
    mariadb) echo mariadb-server ;;
    redis) echo redis-server ;;
    rabbitmq) echo rabbitmq-server ;;
  esac
}

start() {
  local name=$1
  case "$name" in
    postgresql)
      local cluster version
      cluster=$(pg_cluster)
      version=$(basename "$(dirname "$cluster")")
      pg_ctlcluster --skip-systemctl-redirect "$version" main start ;;
    mariadb)
      mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null
      start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql ;;
    redis)
      mkdir -p /var/lib/redis /var/log/redis
      redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log ;;
    rabbitmq) rabbitmq-server -detached ;;
  esac
}

# The servers this script installed (only those are configured by it, never an existing one).
marker=/var/lib/rstuf-worker-services/installed
ours() { [ -f "$marker" ] && grep -qx "$1" "$marker"; }

# Settings a fresh Debian install lacks: the tests log in without passwords over TCP.
# Idempotent: each step checks first, so a run interrupted half-way is completed by the next.
configure_fresh() {
  local name=$1
  case "$name" in
    postgresql)
      local hba
      hba="$(pg_cluster)/pg_hba.conf"
      if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
        sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
        pg_ctlcluster --skip-systemctl-redirect "$(basename "$(dirname "$(pg_cluster)")")" main reload
      fi ;;
    mariadb)
      mariadb -h 127.0.0.1 -uroot -e "SELECT 1" >/dev/null 2>&1 ||
        mariadb -uroot -e "ALTER USER root@localhost IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket" ;;
  esac
}

entries="postgresql:5432 mariadb:3306 redis:6379 rabbitmq:5672"

missing=()
for entry in $entries; do
  name=${entry%%:*} port=${entry##*:}
  answers "$port" || installed "$name" || missing+=("$name")
done
if [ ${#missing[@]} -gt 0 ]; then
  packages=$(for name in "${missing[@]}"; do package "$name"; done | tr '\n' ' ')
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "services: installing ${packages}"
    export DEBIAN_FRONTEND=noninteractive
    # Package scripts must not start daemons themselves here (there may be no init system).
    policy=/usr/sbin/policy-rc.d
    placed=
    if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && placed=1; fi
    apt-get update -qq && apt-get install -y -qq --no-install-recommends $packages >/dev/null
    status=$?
    [ -n "$placed" ] && rm -f "$policy"
    if [ $status -ne 0 ]; then
      echo "services: apt-get could not install: ${packages}" >&2
      exit 1
    fi
    mkdir -p "$(dirname "$marker")"
    printf '%s\n' "${missing[@]}" >> "$marker"
  else
    echo "services: not installed: ${missing[*]}. Install the packages ${packages}(Debian/Ubuntu names) or run this as root to have them installed." >&2
    exit 1
  fi
fi

status=0
for entry in $entries; do
  name=${entry%%:*} port=${entry##*:}
  if answers "$port"; then
    echo "services: $name answers on $port"
  else
    echo "services: $name is down, starting it"
    start "$name" >/dev/null 2>&1 || true
    if wait_for "$name" "$port"; then
      echo "services: $name started"
    else
      status=1
      continue
    fi
  fi
  if ours "$name"; then
    configure_fresh "$name" >/dev/null 2>&1 || { echo "services: could not configure $name" >&2; status=1; }
  fi
done
exit $status
