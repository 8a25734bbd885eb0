#!/usr/bin/env bash
# Installs MathJax, pinned in package.json/package-lock.json, and copies the parts the HTML pages load into
# book/_static/mathjax/, which _config.yml serves as the book's own static files: equations render without a
# network. Needs npm (Debian/Ubuntu: apt-get install npm); fails with one line saying so when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v npm > /dev/null; then
  echo "error: npm is missing; the HTML book serves its own MathJax from npm (Debian/Ubuntu: sudo apt-get install npm)" >&2
  exit 1
fi
# npm ci installs exactly the versions in package-lock.json (and checks their integrity hashes).
npm ci --no-audit --no-fund --loglevel=error > /dev/null
src=node_modules/mathjax/es5
dst=book/_static/mathjax
rm -rf "$dst"
mkdir -p "$dst"
# tex-mml-chtml.js is the combined component the pages load; it fetches the rest (TeX extensions, CHTML fonts,
# the accessibility and menu pieces) from beside itself on demand.
cp -r "$src/tex-mml-chtml.js" "$src/input" "$src/output" "$src/a11y" "$src/sre" "$src/ui" "$src/adaptors" "$dst/"
cp node_modules/mathjax/LICENSE "$dst/LICENSE"
echo "MathJax $(node -p 'require("./node_modules/mathjax/package.json").version' 2> /dev/null || echo '') copied to $dst"
