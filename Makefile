# Two commands do all set-up on a fresh machine with Python 3.11:
#   make leaderboard   create .venv if absent, install, run the default board on the embedded task
#   make test          create .venv if absent, install, run the project tests
# torch==2.13.0 is installed first so the local CPU wheel is used; on a GPU machine set TORCH_SPEC
# (e.g. TORCH_SPEC='torch>=2.2') to let pip pick that machine's build.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: leaderboard test perf lint clean-results browser lock

# Bytecode: some images export PYTHONDONTWRITEBYTECODE=1, and then every process (the CLI, each pool worker,
# each test subprocess) recompiles the ~2,700 modules it imports: about 6 s of its 12 s start-up. The commands
# below write the bytecode of what they import into .venv and the source tree (gitignored) once, and reuse it.
unexport PYTHONDONTWRITEBYTECODE

# requirements.lock pins every package but torch (exact versions: a fresh clone computes with the libraries that
# made the committed boards); --no-deps installs exactly it, with no resolver run. pip installs torch (it finds a
# local wheel where the machine has one) and uv, a pinned installer that fetches the lock's wheels in parallel:
# the whole install takes about 30 s instead of 85 s with pip alone (2 cores, empty caches).
# pip installs uv; uv installs torch, looking first in pip's find-links folder (PIP_FIND_LINKS, where a machine
# keeps its local torch wheel, from $PIP_FIND_LINKS or pip's config: 11 s instead of pip's 28 s); without such a
# folder, or if uv fails, pip installs torch (uv would fetch the multi-GB CUDA build from PyPI).
UV_SPEC ?= uv==0.13.9
UV = $(VENV)/bin/uv pip install -q --python $(VENV)/bin/python --no-deps
FIND_LINKS ?= $(or $(PIP_FIND_LINKS),$(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null))
TORCH_INSTALL = $(if $(FIND_LINKS),$(VENV)/bin/uv pip install -q --python $(VENV)/bin/python --find-links \
  $(FIND_LINKS) "$(TORCH_SPEC)" ||) $(VENV)/bin/python -m pip install -q "$(TORCH_SPEC)"
$(STAMP): pyproject.toml requirements.lock
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q "$(UV_SPEC)"
	$(TORCH_INSTALL)
	$(UV) -r requirements.lock
	$(UV) -e .
	touch $(STAMP)

# re-resolve the lock from pyproject.toml in a scratch venv (then rerun and re-release the boards if numbers move)
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q "$(TORCH_SPEC)" && .lock-venv/bin/python -m pip install -q '.[dev]'
	{ sed -n '1,4p' requirements.lock; .lock-venv/bin/pip freeze --exclude-editable | grep -v -e '^torch==' \
	  -e '^unlearning-bench'; } > requirements.lock.new && mv requirements.lock.new requirements.lock
	rm -rf .lock-venv

leaderboard: $(STAMP)
	$(VENV)/bin/ubench run leaderboards/synthetic.yaml

# the HTML board's browser test drives headless Chromium (Debian packages chromium and chromium-driver); without
# root or a package mirror the install is skipped and that one test skips with the reason
browser:
	@command -v chromedriver >/dev/null 2>&1 || (apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
	  || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1)) \
	  || echo "chromium not installed: the HTML board's browser test will be skipped"

# the tests run on every core (pytest-xdist, at most 4 workers); each worker pins its own thread count
test: $(STAMP) browser
	$(VENV)/bin/python -m pytest -q -n auto --maxprocesses 4 --dist worksteal --durations 25

perf: $(STAMP)
	$(VENV)/bin/ubench perf

lint: $(STAMP)
	$(VENV)/bin/ruff check bench tests
	$(VENV)/bin/lint-imports

clean-results:
	rm -rf results
