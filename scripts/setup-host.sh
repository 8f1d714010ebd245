#!/usr/bin/env bash
# Prepare a Debian 12 / Ubuntu machine for tljh-rees development and tests:
# system packages, a Docker engine with the buildx plugin, a running dockerd,
# the configurable-http-proxy, a Python virtual environment in .venv, and the
# JupyterLab extension built from labextension/.
# Idempotent: every step checks first and is quick when already done.
#   JUPYTERHUB_SPEC   the JupyterHub series for .venv (default: 5.x, what TLJH installs)
#   WITH_JUPYTERHUB6  non-empty: also make .venv-jh6 with JupyterHub 6.x
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup-host] %s\n' "$*" >&2; }
need_root() { [ "$(id -u)" = 0 ] || { log "run as root (apt-get and dockerd need it)"; exit 1; }; }

APT_PACKAGES=(
  docker.io git ca-certificates debootstrap iptables iproute2 python3-venv
  squashfs-tools siftool charliecloud-runtime docker-registry skopeo
  chromium chromium-driver
)

# The given Debian packages that are not installed, one a line.
missing_packages() {
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

install_apt_packages() {
  local missing
  mapfile -t missing < <(missing_packages "${APT_PACKAGES[@]}")
  [ ${#missing[@]} -eq 0 ] && return
  log "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# A single-node Slurm for the HPC launch target's tests (tljh_rees/hpc/): the tests start
# their own munged, slurmctld and slurmd from a generated slurm.conf, so the packages'
# services are kept from starting at install (policy-rc.d answers 101 meanwhile).
SLURM_PACKAGES=(slurmctld slurmd slurm-client munge squashfuse)

install_slurm() {
  local missing
  mapfile -t missing < <(missing_packages "${SLURM_PACKAGES[@]}")
  [ ${#missing[@]} -eq 0 ] && return
  log "installing (services not started): ${missing[*]}"
  local policy=/usr/sbin/policy-rc.d made=""
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"; made=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "$made" ] || rm -f "$policy"
}

# Debian 12 ships no buildx; Debian 13's package is a static binary that works with it.
install_buildx() {
  docker buildx version >/dev/null 2>&1 && return
  if apt-cache policy docker-buildx 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-buildx >/dev/null && return
  fi
  log "installing docker-buildx from Debian trixie"
  local d; d=$(mktemp -d); chmod 755 "$d"
  mkdir -p "$d/lists" "$d/sources.list.d"
  echo "deb http://deb.debian.org/debian trixie main" > "$d/sources.list"
  local opts=(-o Dir::Etc::sourcelist="$d/sources.list" -o Dir::Etc::sourceparts="$d/sources.list.d"
              -o Dir::State::Lists="$d/lists" -o APT::Get::List-Cleanup=0)
  apt-get "${opts[@]}" update -qq
  (cd "$d" && apt-get "${opts[@]}" download docker-buildx >/dev/null)
  dpkg -i "$d"/docker-buildx_*.deb >/dev/null
  rm -rf "$d"
}

# A machine restarted without a clean shutdown keeps dockerd's pid file, and dockerd then
# refuses to start: remove it when no such process runs under that pid.
remove_stale_pid_file() {
  local file=$1 command=$2 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if [ "$(ps -p "$pid" -o comm= 2>/dev/null)" != "$command" ]; then
    log "removing $file (no $command runs as pid $pid)"
    rm -f "$file"
  fi
}

start_dockerd() {
  if docker info >/dev/null 2>&1; then return; fi
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl enable --now docker
  else
    log "starting dockerd (log: /var/log/tljh-rees-dockerd.log)"
    remove_stale_pid_file /var/run/docker.pid dockerd
    setsid nohup dockerd >/var/log/tljh-rees-dockerd.log 2>&1 < /dev/null &
  fi
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && return; sleep 0.5; done
  log "dockerd did not come up; see /var/log/tljh-rees-dockerd.log"; exit 1
}

# JupyterHub's default proxy. Without Node.js, Debian's own package (with its Node.js);
# with one, npm's release for that Node.js (5.x needs Node.js 20).
install_proxy() {
  command -v configurable-http-proxy >/dev/null && return
  if ! command -v node >/dev/null \
      && apt-cache policy node-configurable-http-proxy 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    log "installing configurable-http-proxy (Debian package)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq node-configurable-http-proxy >/dev/null
    return
  fi
  if ! command -v npm >/dev/null; then
    log "installing npm"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
  fi
  local major; major=$(node -p 'process.versions.node.split(".")[0]')
  local version=5; [ "$major" -ge 20 ] || version=4
  log "installing configurable-http-proxy@$version from npm (Node.js $major)"
  npm install -g --silent "configurable-http-proxy@$version" >/dev/null
}

# The virtual environment; JUPYTERHUB_SPEC picks the JupyterHub series (5.x by default).
make_venv() {
  local venv=${1:-.venv} spec=${2:-jupyterhub>=5.2,<6}
  if [ ! -x "$venv/bin/python" ]; then
    log "creating $venv"
    python3 -m venv "$venv"
  fi
  local stamp="$venv/.installed-$(cat setup.py dev-requirements.txt | sha256sum | cut -c1-12)-$(echo "$spec" | sha256sum | cut -c1-8)"
  [ -e "$stamp" ] && return
  log "installing tljh-rees and the test tools into $venv ($spec)"
  if ! { "$venv/bin/pip" install -q --upgrade pip &&
         "$venv/bin/pip" install -q -e . -r dev-requirements.txt "$spec"; } >"$venv/pip.log" 2>&1; then
    tail -n 40 "$venv/pip.log" >&2
    log "pip install failed; full log: $venv/pip.log"; exit 1
  fi
  rm -f "$venv"/.installed-*; touch "$stamp"
}

# BinderHub's own JavaScript client, which the Binder-link tests drive /build with.
install_binder_client() {
  [ -d tests/binder-client/node_modules/@jupyterhub/binderhub-client ] && return
  log "installing BinderHub's client for the tests (npm)"
  npm ci --prefix tests/binder-client --silent --no-audit --no-fund >/dev/null
}

need_root
log "system packages"
install_apt_packages
install_slurm
install_buildx
start_dockerd
install_proxy
install_binder_client
make_venv .venv "${JUPYTERHUB_SPEC:-jupyterhub>=5.2,<6}"
if [ -n "${WITH_JUPYTERHUB6:-}" ]; then make_venv .venv-jh6 "jupyterhub>=6,<7"; fi
# the JupyterLab extension servers get (labextension/ → tljh_rees_lab/share)
scripts/build-lab-extension.sh
log "ready: $(docker --version); buildx $(docker buildx version | cut -d' ' -f2);" \
    "$(.venv/bin/python -m jupyterhub --version | sed 's/^/JupyterHub /') in .venv"
