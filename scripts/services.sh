#!/usr/bin/env bash
# Checks that the servers the tests use answer on their standard ports, and starts any that
# are down (PostgreSQL 5432, MariaDB 3306, Redis 6379, RabbitMQ 5672), using the same commands
# the machine uses at boot. Exits non-zero, naming the server, if one cannot be brought up.
set -uo pipefail

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  local name=$1 port=$2
  for _ in $(seq 1 60); do
    answers "$port" && return 0
    sleep 1
  done
  echo "services: $name did not come up on port $port" >&2
  return 1
}

start() {
  local name=$1
  case "$name" in
    postgresql) pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start ;;
    mariadb) start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd ;;
    redis) redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
             --dir /var/lib/redis --logfile /var/log/redis/ci.log ;;
    rabbitmq) rabbitmq-server -detached ;;
  esac
}

status=0
for entry in postgresql:5432 mariadb:3306 redis:6379 rabbitmq:5672; do
  name=${entry%%:*} port=${entry##*:}
  if answers "$port"; then
    echo "services: $name answers on $port"
    continue
  fi
  echo "services: $name is down, starting it"
  start "$name" >/dev/null 2>&1 || true
  wait_for "$name" "$port" && echo "services: $name started" || status=1
done
exit $status
