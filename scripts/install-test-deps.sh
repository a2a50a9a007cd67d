#!/usr/bin/env bash
# Installs what `make test` needs beyond Go and gcc, only where it is missing:
#   - prometheus and promtool (Debian package `prometheus`): the metrics tests start a real server;
#   - the arm64 cross compiler and qemu-user (Debian packages gcc-aarch64-linux-gnu, qemu-user):
#     `make test-arm64` builds the core's NEON path and runs its C tests under emulation;
#   - the Node reference tokenizer (scripts/tokref, Hugging Face's own tokenizers via npm): the
#     tokenizer's differential test runs it.
# Needs root (or sudo) for apt-get and network access to Debian's and npm's registries.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi

missing=()
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then missing+=(prometheus); fi
if [ "$(uname -m)" = x86_64 ]; then
    command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
    command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
fi
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # prometheus's post-install may try to start a service; a container without init is fine.
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ -f scripts/tokref/package.json ] && [ ! -d scripts/tokref/node_modules ]; then
    (cd scripts/tokref && npm ci --no-audit --no-fund --loglevel=error)
fi
