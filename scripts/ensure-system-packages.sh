#!/usr/bin/env bash
# Makes sure the system packages the integration tests start as real servers
# (MariaDB, sshd, nginx, php-fpm with its MySQL and SQLite drivers, PowerDNS
# with its SQLite backend, the pebble ACME test CA) and the clients they use
# (mariadb, ssh, rsync, dig, sqlite3) are installed. CI starts from a fresh Debian 12 machine; developer
# machines usually have them already, so this is a no-op there.
set -euo pipefail

readonly PACKAGES=(mariadb-server nginx openssh-server openssh-client rsync git php-fpm php-cli php-mysql php-sqlite3 pdns-server pdns-backend-sqlite3 pebble bind9-dnsutils sqlite3 sphinxsearch proftpd-core proftpd-mod-mysql proftpd-mod-crypto keepalived iputils-ping arping)

# Prints the binary's path. Daemons live in /usr/sbin, which is not on every
# non-root PATH.
locate() {
  command -v "$1" 2>/dev/null || { [[ -x "/usr/sbin/$1" ]] && echo "/usr/sbin/$1"; }
}

have() {
  locate "$1" >/dev/null
}

# Any php-fpm version will do (Debian 12 ships php-fpm8.2).
find_php_fpm() {
  local candidate
  for candidate in php-fpm8.2 php-fpm /usr/sbin/php-fpm[0-9]*; do
    locate "$candidate" && return 0
  done
  return 1
}

# Prints the Debian package of every missing binary, one per line.
missing_packages() {
  local pair binary package php_fpm
  for pair in \
    mariadbd:mariadb-server mariadb-install-db:mariadb-server \
    mariadb-admin:mariadb-client mariadb:mariadb-client \
    sshd:openssh-server ssh:openssh-client ssh-keygen:openssh-client \
    nginx:nginx rsync:rsync git:git php:php-cli setpriv:util-linux \
    pdns_server:pdns-server pebble:pebble pebble-challtestsrv:pebble dig:bind9-dnsutils sqlite3:sqlite3 \
    indexer:sphinxsearch searchd:sphinxsearch proftpd:proftpd-core \
    keepalived:keepalived ping:iputils-ping arping:arping; do
    binary=${pair%%:*}
    package=${pair#*:}
    have "$binary" || echo "$package"
  done
  # sshd must be started by its absolute path (it refuses to re-exec otherwise).
  [[ -x /usr/sbin/sshd ]] || echo openssh-server
  # PowerDNS's SQLite backend is a library, not a binary.
  compgen -G '/usr/lib/*/pdns/libgsqlite3backend.so' >/dev/null || echo pdns-backend-sqlite3
  # ProFTPD's SQL modules are libraries too.
  [[ -e /usr/lib/proftpd/mod_sql_mysql.so ]] || echo proftpd-mod-mysql
  [[ -e /usr/lib/proftpd/mod_sql_passwd.so ]] || echo proftpd-mod-crypto
  if php_fpm=$(find_php_fpm); then
    # php-fpm without the MySQL extensions cannot reach MariaDB; without SQLite's,
    # the embedded default's shops cannot read their (SQLite) databases.
    # Read whole first: `grep -q` stops at its match, and under pipefail the SIGPIPE php-fpm then gets would read as "missing".
    local modules
    modules=$("$php_fpm" -m 2>/dev/null || true)
    grep -qx pdo_mysql <<<"$modules" || echo php-mysql
    grep -qx pdo_sqlite <<<"$modules" || echo php-sqlite3
  else
    echo php-fpm
  fi
}

# The servers the tests and benchmarks start listen on port 80 of loopback
# addresses, and installs hand files to www-data: that takes root. Say so
# now rather than let a hundred tests fail on "permission denied".
if [[ $(id -u) -ne 0 ]]; then
  echo "ensure-system-packages: the tests and benchmarks must run as root (nginx on port 80 of 127.x addresses, files owned by www-data, network-free private servers) and install what is missing with apt-get; run: sudo npm test  (npm run test:unit needs no root)" >&2
  exit 1
fi

missing=$(missing_packages | sort -u | tr '\n' ' ')
missing=${missing% }

if [[ -z "$missing" ]]; then
  echo "ensure-system-packages: all test server packages present"
  exit 0
fi

echo "ensure-system-packages: missing $missing; installing with apt-get" >&2
apt-get update -qq
# shellcheck disable=SC2086 # $missing is a word list of package names
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" $missing >/dev/null

still_missing=$(missing_packages | sort -u | tr '\n' ' ')
still_missing=${still_missing% }
if [[ -n "$still_missing" ]]; then
  echo "ensure-system-packages: still missing after apt-get install: $still_missing" >&2
  exit 1
fi
echo "ensure-system-packages: installed ${PACKAGES[*]}"
