#!/bin/sh
# Check, and where possible install, what moongrad needs from Debian.
#   tools/deps.sh build   compiler, Lua 5.4, OpenBLAS, cJSON, zlib, prove
#   tools/deps.sh data    the Fashion-MNIST data package
#   tools/deps.sh bench   PyTorch and NumPy for side-by-side benchmarks (optional)
set -e
case "$1" in
  build) pkgs="gcc make pkg-config lua5.4 liblua5.4-dev libopenblas-dev libcjson-dev zlib1g-dev perl" ;;
  data)  pkgs="dataset-fashion-mnist" ;;
  bench) pkgs="python3-torch python3-numpy" ;;
  *) echo "usage: tools/deps.sh build|data|bench" >&2; exit 2 ;;
esac
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "moongrad: installing missing Debian packages:$missing"
if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "moongrad: please install:$missing (apt-get install$missing)" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
if ! $SUDO apt-get install -y -qq --no-install-recommends $missing; then
  if [ "$1" = bench ]; then echo "moongrad: PyTorch not available; benchmarks run moongrad only" >&2; exit 0; fi
  echo "moongrad: could not install:$missing" >&2; exit 1
fi
