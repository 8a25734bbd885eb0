#!/usr/bin/env bash
# Installs a headless Chromium (Debian/Ubuntu) when none is there and this user can install it, for
# tests/test_html_offline.py, which renders a chapter with the network off; otherwise prints what to install
# and returns 0 (that test then skips, saying why).
set -u
for b in chromium-headless-shell chromium chromium-browser google-chrome; do
  if command -v "$b" > /dev/null; then exit 0; fi
done
need=(chromium-headless-shell)
if command -v apt-get > /dev/null; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo > /dev/null && sudo -n true 2> /dev/null; then sudo="sudo -n"; fi
  fi
  if [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; then
    echo "Installing a headless browser for the offline HTML check: ${need[*]} (about 220 MB, a minute)"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
      "${need[@]}" > /dev/null && exit 0
  fi
  echo "The offline HTML check needs a headless browser. Install it with:"
  echo "  sudo apt-get install ${need[*]}"
else
  echo "The offline HTML check needs a headless Chromium (chromium-headless-shell or chromium) on PATH."
fi
echo "Continuing without it; tests/test_html_offline.py will skip."
exit 0
