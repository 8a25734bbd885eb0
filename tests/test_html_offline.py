"""The HTML edition works offline: equations render with the network off, and no page needs a third-party script.

MathJax is installed by `make setup` (npm, the version pinned in package.json) into book/_static/mathjax and served
from the book's own `_static/`; launch buttons (thebe, Binder, Colab) are off. Three checks:

- a one-page book built here with the project's HTML settings renders its equations in a headless Chromium that
  cannot reach any network (so `make unit` checks the configuration before the full book is built);
- the same check on a real chapter of the built book (`_build/html`, or `$LLM_FROM_SCRATCH_HTML`), with a
  screenshot of the top of the page (its first equations) saved as `_build/offline_check/<chapter>.png`;
- no page of the built book loads a script, stylesheet, font, image or frame from another host.

The browser checks skip, saying why, where no headless Chromium is installed (`make setup` installs
chromium-headless-shell on Debian/Ubuntu when it can); the built-book checks skip before `make html`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("LLM_FROM_SCRATCH_HTML", ROOT / "_build" / "html"))
SHOTS = ROOT / "_build" / "offline_check"
CHAPTER = "chapters/07_attention.html"  # one of the chapters with the most equations
BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
MATHJAX = ROOT / "book" / "_static" / "mathjax" / "tex-mml-chtml.js"
# Raw TeX delimiters that MathJax would have replaced; code blocks are not searched.
RAW_TEX = re.compile(r"\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{")


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def need_browser() -> str:
    browser = find_browser()
    if browser is None:
        pytest.skip(
            "no headless Chromium on PATH: `make setup` installs one on Debian/Ubuntu "
            "(apt-get install chromium-headless-shell)"
        )
    return browser


class _Page(HTMLParser):
    """Collects what a reader sees (text outside code, scripts and rendered math) and the math elements."""

    HIDDEN = frozenset({"script", "style", "pre", "code", "mjx-container", "noscript", "template"})
    VOID = frozenset(
        {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
    )

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.hidden = 0
        self.text: list[str] = []
        self.mjx = 0
        self.merror = 0
        self.math = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            return
        self.stack.append(tag)
        if tag == "mjx-container":
            self.mjx += 1
        if tag == "mjx-merror":
            self.merror += 1
        classes = (dict(attrs).get("class") or "").split()
        if "math" in classes and "notranslate" in classes:
            self.math += 1
        if tag in self.HIDDEN:
            self.hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.stack:
            return
        while self.stack:
            top = self.stack.pop()
            if top in self.HIDDEN:
                self.hidden -= 1
            if top == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.hidden == 0:
            self.text.append(data)


def render_offline(browser: str, url: str, work: Path, screenshot: Path | None = None) -> dict:
    """Loads `url` in headless Chromium with every network request refused; returns what the page showed."""
    work.mkdir(parents=True, exist_ok=True)
    netlog = work / "netlog.json"
    common = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        f"--user-data-dir={work / 'profile'}",
        # The network is off: no name resolves and every proxied request goes to a closed port.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--proxy-server=http://127.0.0.1:9",
        "--allow-file-access-from-files",
        "--virtual-time-budget=30000",
        "--window-size=1100,2600",
        "--hide-scrollbars",
    ]
    dom = subprocess.run(
        [*common, f"--log-net-log={netlog}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert dom.returncode == 0, f"{browser} failed on {url}:\n{dom.stderr[-2000:]}"
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        shot = subprocess.run([*common, f"--screenshot={screenshot}", url], capture_output=True, text=True, timeout=180)
        assert shot.returncode == 0 and screenshot.exists(), f"no screenshot of {url}:\n{shot.stderr[-2000:]}"
    page = _Page()
    page.feed(dom.stdout)
    requests = set(re.findall(r'"url"\s*:\s*"((?:https?:)?//[^"]+)"', netlog.read_text(errors="replace")))
    return {
        "mjx": page.mjx,
        "merror": page.merror,
        "text": " ".join(" ".join(page.text).split()),
        "remote_requests": sorted(requests),
        "console": dom.stderr,
    }


def assert_rendered(result: dict, at_least: int, what: str) -> None:
    assert not result["remote_requests"], f"{what} asked the network for {result['remote_requests']}"
    assert result["mjx"] >= at_least, (
        f"MathJax rendered {result['mjx']} of {at_least} equations in {what} with the network off "
        f"(run `make setup`, which installs MathJax into book/_static/mathjax)"
    )
    assert result["merror"] == 0, f"{what}: {result['merror']} equations failed to typeset"
    errors = [line for line in result["console"].splitlines() if "Uncaught" in line]
    assert not errors, f"{what}: JavaScript errors\n" + "\n".join(errors)
    raw = RAW_TEX.search(result["text"])
    context = result["text"][max(0, raw.start() - 60) : raw.end() + 60] if raw else ""
    assert raw is None, f"{what} shows raw TeX to the reader: ...{context}..."


# ---- the project's HTML settings, on a one-page book built here -------------------------------------------------

PAGE = r"""# Offline equations

Inline math $\alpha_t = \sqrt{d_k}$ and a labelled display:

$$
\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_k}}\right) V
$$ (eq-offline)

which {eq}`eq-offline` refers to, and an amsmath environment:

\begin{align}
h_{t+1} &= h_t + f(h_t) \\
y &= W h
\end{align}

```python
print("$$ and \\( in code stay as they are")
```
"""


def _mini_config(tmp: Path) -> dict:
    """The project's _config.yml, reduced to what decides how a page loads its scripts and renders math."""
    project = yaml.safe_load((ROOT / "_config.yml").read_text())
    sphinx_cfg = project.get("sphinx", {}).get("config", {})
    keep = ("mathjax_path", "mathjax3_config", "html_static_path", "html_js_files", "html_css_files", "math_numfig")
    config = {k: sphinx_cfg[k] for k in keep if k in sphinx_cfg}
    config["html_static_path"] = [str(ROOT / p) for p in config.get("html_static_path", [])]
    extensions = project.get("sphinx", {}).get("local_extensions", {})
    sphinx = {"config": config}
    if "offline" in extensions:  # book/_ext/offline.py: no thebe machinery in the pages
        sphinx["local_extensions"] = {"offline": str(ROOT / extensions["offline"])}
    return {
        "title": "offline check",
        "only_build_toc_files": True,
        "execute": {"execute_notebooks": "off"},
        "parse": project.get("parse", {}),
        "html": project.get("html", {}),
        "launch_buttons": project.get("launch_buttons", {}),
        "sphinx": sphinx,
    }


@pytest.fixture(scope="module")
def mini_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not MATHJAX.exists():
        pytest.fail(f"{MATHJAX.relative_to(ROOT)} is missing: run `make setup` (it installs MathJax with npm)")
    src = tmp_path_factory.mktemp("offline_book")
    (src / "_config.yml").write_text(yaml.safe_dump(_mini_config(src), sort_keys=False))
    (src / "_toc.yml").write_text("format: jb-book\nroot: index\n")
    (src / "index.md").write_text(PAGE)
    jb = Path(sys.executable).with_name("jupyter-book")
    run = subprocess.run(
        [str(jb), "build", "-W", "-n", "--keep-going", str(src)], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, f"the one-page book did not build:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return src / "_build" / "html"


def test_config_serves_mathjax_locally(mini_book: Path) -> None:
    page = (mini_book / "index.html").read_text()
    assert "_static/mathjax/tex-mml-chtml.js" in page
    assert (mini_book / "_static" / "mathjax" / "tex-mml-chtml.js").exists()
    assert not remote_assets(page), remote_assets(page)
    assert "thebe" not in page.lower(), "the page still carries thebe's scripts or Binder configuration"


def test_mini_book_renders_offline(mini_book: Path, tmp_path: Path) -> None:
    browser = need_browser()
    result = render_offline(browser, (mini_book / "index.html").as_uri(), tmp_path)
    # Inline, display and align: three math elements.
    assert_rendered(result, 3, "the one-page book")


# ---- the built book -------------------------------------------------------------------------------------------

ASSET = re.compile(
    r"<(script|link|img|iframe|source|audio|video|embed)\b[^>]*?\s(?:src|href)\s*=\s*[\"']((?:https?:)?//[^\"']+)",
    re.IGNORECASE,
)


def remote_assets(html: str) -> list[str]:
    """URLs of scripts, stylesheets, fonts, images and frames a page would fetch from another host
    (links a reader clicks, <a href>, are fine; so is a <link rel> that fetches nothing)."""
    found = []
    for match in ASSET.finditer(html):
        tag = match.group(0)
        if match.group(1).lower() == "link" and not re.search(
            r"rel\s*=\s*[\"'][^\"']*(stylesheet|preload|modulepreload|icon|prefetch|preconnect)", tag, re.I
        ):
            continue
        found.append(match.group(2))
    return found


def built_chapter() -> Path:
    page = HTML / CHAPTER
    if not page.exists():
        pytest.skip(f"{page} is not built yet (make html)")
    if page.stat().st_mtime < (ROOT / "_config.yml").stat().st_mtime:
        pytest.skip(f"{page} was built before the current _config.yml: rebuild it (make html)")
    return page


def test_built_pages_load_nothing_remote() -> None:
    built_chapter()
    offenders = {}
    for page in sorted(HTML.rglob("*.html")):
        found = remote_assets(page.read_text(errors="replace"))
        if found:
            offenders[str(page.relative_to(HTML))] = sorted(set(found))
    assert not offenders, "pages that load assets from other hosts:\n" + json.dumps(offenders, indent=1)


def test_built_chapter_renders_offline(tmp_path: Path) -> None:
    page = built_chapter()
    browser = need_browser()
    html = page.read_text()
    source = _Page()
    source.feed(html)
    url = page.as_uri()
    shot = SHOTS / (page.stem + ".png")
    result = render_offline(browser, url, tmp_path, screenshot=shot)
    print(f"screenshot: {shot} ({result['mjx']} equations rendered, {source.math} in the page source)")
    assert source.math > 0, f"{CHAPTER} has no equations to check"
    assert_rendered(result, source.math, CHAPTER)
