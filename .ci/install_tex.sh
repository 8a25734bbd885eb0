#!/usr/bin/env bash
# Installs the TeX Live packages the PDF needs (Debian/Ubuntu) when they are missing and this user can install
# them; otherwise prints exactly what to install and returns 0, so the HTML still builds.
set -u
need=(latexmk texlive-xetex texlive-fonts-recommended fonts-freefont-otf)
if command -v xelatex > /dev/null && command -v latexmk > /dev/null && fc-list 2> /dev/null | grep -q FreeMono; then
  exit 0
fi
if command -v apt-get > /dev/null; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo > /dev/null && sudo -n true 2> /dev/null; then sudo="sudo -n"; fi
  fi
  if [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; then
    echo "Installing TeX for the PDF: ${need[*]} (about 350 MB, a minute)"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
      "${need[@]}" > /dev/null && exit 0
  fi
  echo "The PDF needs TeX. Install it with:"
  echo "  sudo apt-get install ${need[*]}"
elif command -v brew > /dev/null; then
  echo "The PDF needs TeX. On macOS install it with:"
  echo "  brew install --cask mactex-no-gui && brew install font-freefont   # or: brew install --cask basictex"
else
  echo "The PDF needs TeX: install xelatex, latexmk and the GNU FreeFont fonts with your package manager."
fi
echo "Continuing without the PDF; the HTML book still builds."
exit 0
