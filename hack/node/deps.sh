#!/usr/bin/env bash
# Install the node's host packages from Debian if any is missing (needs root and apt).
source "$(dirname "$0")/lib.sh"

# command -> Debian package
declare -A need=(
  [containerd]=containerd
  [runc]=runc
  [/usr/lib/cni/bridge]=containernetworking-plugins
  [iptables]=iptables
  [ipset]=ipset
  [conntrack]=conntrack
  [buildah]=buildah
  [debootstrap]=debootstrap
  [openssl]=openssl
  [gcc]=gcc
  [ip]=iproute2
  [nsenter]=util-linux
)
missing=()
for cmd in "${!need[@]}"; do
  if [[ "$cmd" == /* ]]; then [[ -e "$cmd" ]] || missing+=("${need[$cmd]}")
  else command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}"); fi
done
# gcc -static needs the C library's static archive.
[[ -e /usr/lib/x86_64-linux-gnu/libc.a || -e /usr/lib/aarch64-linux-gnu/libc.a ]] || missing+=(libc6-dev)
if ((${#missing[@]})); then
  [[ $EUID -eq 0 ]] || die "missing packages ${missing[*]} and not root to install them"
  log "installing ${missing[*]} (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
