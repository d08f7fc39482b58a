# Shared by scripts/test.sh and scripts/demo.sh: install what is missing, start MariaDB servers.

# Installs Debian packages that are missing (apt-get update once, then install -y).
ensure_packages() {
  local missing=()
  for spec in "$@"; do
    local package=${spec%%:*} probe=${spec#*:}
    # the probe is a command (on PATH or in /usr/sbin), or an absolute path to a file
    if ! command -v "$probe" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$probe" ] && [ ! -e "$probe" ]; then
      missing+=("$package")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  fi
  command -v cargo >/dev/null 2>&1 || {
    echo "cargo not found: install Rust (https://rustup.rs) and run this again" >&2
    exit 1
  }
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_mariadb DIR PORT [extra mariadbd args…]: installs a datadir in DIR and starts a server.
start_mariadb() {
  local dir=$1 port=$2
  shift 2
  mkdir -p "$dir"
  if [ ! -d "$dir/data/mysql" ]; then
    mariadb-install-db --no-defaults --datadir="$dir/data" --user=root \
      --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1
  fi
  /usr/sbin/mariadbd --no-defaults --user=root --datadir="$dir/data" --bind-address=127.0.0.1 \
    --port="$port" --socket="$dir/mysqld.sock" --pid-file="$dir/mysqld.pid" \
    --log-error="$dir/error.log" --server-id=1 --character-set-server=utf8mb4 \
    --collation-server=utf8mb4_general_ci --innodb-buffer-pool-size=64M \
    --performance-schema=OFF --skip-name-resolve "$@" >/dev/null 2>&1 &
  echo $! >"$dir/pid"
  for _ in $(seq 300); do
    mariadb -h127.0.0.1 -P"$port" -uroot -e 'SELECT 1' >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "mariadbd in $dir did not start; see $dir/error.log" >&2
  return 1
}

# stop_pid_file FILE: SIGTERM and wait for the process to exit.
stop_pid_file() {
  local file=$1
  [ -f "$file" ] || return 0
  local pid
  pid=$(cat "$file")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$file"
}
