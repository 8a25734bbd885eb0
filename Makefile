# Two commands do everything on a fresh machine:
#   make book   set up, execute every chapter, build the HTML and the PDF
#   make test   set up, run every check CI runs (unit tests, nbval strict, pairing, ruff, -W book builds)
# Everything lands in .venv/ and _build/; artifacts (corpus, tokenizer, checkpoints) in $(LLM_FROM_SCRATCH_CACHE).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CHAPTERS_MD := $(sort $(wildcard chapters/*.md))
CHAPTERS_NB := $(CHAPTERS_MD:.md=.ipynb)
# A project-local cache: a clean clone builds every artifact from scratch, as CI must.
export LLM_FROM_SCRATCH_CACHE ?= $(CURDIR)/.cache
export PYTHONHASHSEED := 0
JB_FLAGS := -W -n --keep-going
PDF := _build/latex/llm-from-scratch.pdf
STAMP := $(VENV)/.installed
MATHJAX := book/_static/mathjax/tex-mml-chtml.js

.PHONY: help setup tex book html pdf pdf-refs pdf-check execute chapter nbval test unit pairs lint book-check clean

help:
	@echo "make book   - set up, execute every chapter, build _build/html and $(PDF)"
	@echo "make test   - set up and run every check CI runs"
	@echo "make chapter NB=chapters/00_map   - re-pair and execute one chapter"
	@echo "make nbval NB=chapters/00_map     - check one chapter's stored outputs reproduce"

# ---- set-up ------------------------------------------------------------------------------------------------
setup: $(STAMP) $(MATHJAX)
	@bash .ci/install_browser.sh

# MathJax for the HTML pages, pinned in package.json/package-lock.json and served from book/_static/mathjax, so
# equations render offline. Needs npm (Debian/Ubuntu: apt-get install npm).
$(MATHJAX): package.json package-lock.json .ci/install_mathjax.sh
	@bash .ci/install_mathjax.sh

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	@$(PYTHON) -c "import sys; assert sys.version_info >= (3, 10), 'Python >= 3.10 is needed, found ' + sys.version"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3" > /dev/null
	touch $@

# TeX for the PDF. Installs the Debian packages when it can (root or sudo); otherwise says what to install.
tex:
	@bash .ci/install_tex.sh

# ---- the book ----------------------------------------------------------------------------------------------
book: setup tex execute html pdf

execute: setup
	$(BIN)/python .ci/execute_chapters.py --keep-volatile $(CHAPTERS_MD)

chapter: setup
	@test -n "$(NB)" || (echo "usage: make chapter NB=chapters/NN_topic" && exit 2)
	$(BIN)/python .ci/execute_chapters.py $(basename $(NB)).md

html: setup
	$(BIN)/jupyter-book build $(JB_FLAGS) .

pdf: setup
	@if command -v xelatex > /dev/null && command -v latexmk > /dev/null; then \
	  $(BIN)/jupyter-book build $(JB_FLAGS) --builder pdflatex . && ls -l $(PDF); \
	else \
	  echo "PDF skipped: xelatex/latexmk missing (see the message of 'make tex' above)."; \
	fi

# ---- the checks CI runs ------------------------------------------------------------------------------------
test: setup tex unit pairs lint nbval book-check

unit: setup
	$(BIN)/python -m pytest tests -q -p no:cacheprovider

pairs: setup
	$(BIN)/python -m pytest tests/test_chapters.py -q -p no:cacheprovider

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# nbval strict: every stored output of every chapter must reproduce.
nbval: setup
	$(BIN)/python -m pytest --nbval --nbval-current-env -p no:cacheprovider -q \
	  --nbval-cell-timeout=900 --durations=25 $(if $(NB),$(basename $(NB)).ipynb,$(CHAPTERS_NB))

# Warnings are errors, so a broken chapter, reference or citation fails CI. Renders the nbval-verified outputs.
book-check: setup
	rm -rf _build/html _build/latex _build/.doctrees
	$(BIN)/jupyter-book build $(JB_FLAGS) .
	# the built pages render their equations with the network off (skips with a reason where no browser is installed)
	$(BIN)/python -m pytest tests/test_html_offline.py -q -p no:cacheprovider
	@if command -v xelatex > /dev/null; then \
	  $(BIN)/jupyter-book build $(JB_FLAGS) --builder pdflatex . && ls -l $(PDF) && $(MAKE) --no-print-directory pdf-refs pdf-check; \
	else \
	  echo "error: xelatex is missing, so the PDF cannot be checked; see 'make tex'" && exit 1; \
	fi

# LaTeX prints an unresolved reference as "??" without failing the build; the log of latexmk's last pass names
# every reference or citation that stayed undefined.
pdf-refs:
	@log=_build/latex/llm-from-scratch.log; \
	if grep -E "LaTeX Warning: (Hyper reference|Reference|Citation) .* undefined" $$log; then \
	  echo "error: $(PDF) has unresolved references (see above)"; exit 1; fi; \
	echo "$(PDF): no unresolved references"

# The typesetting bars of the PDF as a reference (issue #19): no wrapped code lines, no leaked markup, no "??",
# captioned figures, index, glossary, lists of figures and tables. Lists every offender with its chapter.
pdf-check:
	$(BIN)/python .ci/check_pdf.py $(PDF) --report _build/pdf-check.txt

clean:
	rm -rf _build .pytest_cache .ruff_cache
