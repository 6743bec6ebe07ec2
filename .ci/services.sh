# Makes sure the servers the integration tests talk to are running on loopback: starts each one
# that is down, and installs it with apt-get where it is missing. Sourced by .ci/run.

wait_for() { # name, tries (x0.5 s), command...
  local name=$1 tries=$2; shift 2
  for ((i = 0; i < tries; i++)); do
    if "$@" >/dev/null 2>&1; then echo "ci: $name is up"; return 0; fi
    sleep 0.5
  done
  echo "ci: $name did not come up" >&2
  return 1
}

apt_updated=
apt_install() {
  if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

ensure_redis() {
  # The Cluster, Sentinel and outage tests start their own redis-server processes and drive
  # them with redis-cli, so both must be installed even when a Redis already listens on 6379.
  { command -v redis-server && command -v redis-cli; } >/dev/null || apt_install redis-server
  tcp_open 127.0.0.1 6379 && { echo "ci: redis is up"; return 0; }
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for redis 60 tcp_open 127.0.0.1 6379
}

ensure_postgres() {
  # The outage test runs a cluster of its own with initdb and pg_ctl (kept off PATH by
  # Debian, under /usr/lib/postgresql/<version>/bin), so the server package must be installed
  # even when a PostgreSQL already listens on 5432.
  { compgen -G '/usr/lib/postgresql/*/bin/initdb' && command -v pg_ctlcluster; } >/dev/null ||
    apt_install postgresql
  if ! tcp_open 127.0.0.1 5432; then
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_for postgresql 60 tcp_open 127.0.0.1 5432
  else
    echo "ci: postgresql is up"
  fi
  # The tests connect as the OS user over TCP with trust auth to database `test`.
  local who
  who=$(id -un)
  su postgres -c "psql -qtAc \"select 1 from pg_roles where rolname='$who'\"" 2>/dev/null | grep -q 1 ||
    su postgres -c "psql -qc 'create role \"$who\" superuser login'" || true
  su postgres -c "psql -qtAc \"select 1 from pg_database where datname='test'\"" 2>/dev/null | grep -q 1 ||
    su postgres -c "psql -qc 'create database test'" || true
}

ensure_mariadb() {
  if ! tcp_open 127.0.0.1 3306; then
    command -v mariadbd >/dev/null || apt_install mariadb-server
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    wait_for mariadb 120 tcp_open 127.0.0.1 3306
  else
    echo "ci: mariadb is up"
  fi
  mariadb -uroot -e 'create database if not exists test' 2>/dev/null || true
}

# The demo's browser test drives Debian's Chromium through the matching chromedriver; both come
# from apt so their versions agree, and nothing is downloaded at test time.
ensure_chromium() {
  if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    echo "ci: chromium and chromedriver are installed"
    return 0
  fi
  apt_install chromium chromium-driver
  /usr/bin/chromedriver --version
}
