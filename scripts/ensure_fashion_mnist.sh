#!/usr/bin/env bash
# Makes Fashion-MNIST available: a user path ($BOXER_FASHION_MNIST), else the Debian package
# dataset-fashion-mnist (installed with apt-get when missing and apt is usable), else boxer falls
# back to torchvision's download at first use.
set -u
deb_dir=/usr/share/datasets/fashion-mnist
if [ -n "${BOXER_FASHION_MNIST:-}" ]; then
  echo "Fashion-MNIST: using BOXER_FASHION_MNIST=$BOXER_FASHION_MNIST"; exit 0
fi
if [ -f "$deb_dir/train-images-idx3-ubyte.gz" ] || [ -f "$deb_dir/train-images-idx3-ubyte" ]; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo -n"
  if [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; then
    echo "Fashion-MNIST: installing the Debian package dataset-fashion-mnist"
    if { $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 ||
         { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; }; }; then
      exit 0
    fi
    echo "Fashion-MNIST: apt-get could not install dataset-fashion-mnist"
  fi
fi
echo "Fashion-MNIST: not installed system-wide; boxer will download it with torchvision on first use" \
     "(or set BOXER_FASHION_MNIST / pass --fashion-root)."
exit 0
