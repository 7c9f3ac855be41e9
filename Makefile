# Two commands do all set-up: `make demo` and `make test`. Both create (or reuse) .venv first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.readnet-installed
PROFILE ?= demo
# Real data for the demo: $READNET_DATA, else the shared folder beside the project when it exists
# (MNIST there); without either the notebooks fall back to offline data.
DATA_ROOT ?= $(or $(READNET_DATA),$(wildcard ../shared/data))

.PHONY: venv test demo lab clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (readnet)" >/dev/null
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

demo: $(STAMP)
	$(VENV)/bin/readnet reproduce --profile $(PROFILE) $(if $(DATA_ROOT),--data-root $(DATA_ROOT))

lab: $(STAMP)
	$(VENV)/bin/jupytext --sync notebooks/[0-9]*.py
	$(VENV)/bin/jupyter lab notebooks

clean:
	rm -rf runs .pytest_cache
