# plant-disease: one command to install and run the main job, one to run the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export PLANT_DISEASE_SHARED_DATA ?= $(abspath ../shared/data)

.PHONY: install run test check nbtest pytest clean

install: $(VENV)/.installed  ## create .venv and install the library with its dev tools (pinned by constraints.txt)

$(VENV)/.installed: setup.py settings.ini constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	touch $@

run: install  ## the main job: data -> eda -> train -> evaluate with params.yaml (offline, CPU, synthetic by default)
	$(BIN)/plant-disease run

test: install check nbtest pytest  ## everything CI runs

check: install  ## library in sync with the notebooks, notebooks clean
	PATH=$(abspath $(BIN)):$$PATH tools/check_sync.sh

nbtest: install  ## the notebooks' own tests
	$(BIN)/nbdev_test --n_workers 2

pytest: install  ## integration tests (real training on the shared sample when it is there)
	$(BIN)/pytest -n 2 --dist loadgroup -ra tests

clean:
	rm -rf data/synthetic data/raw data/*.csv data/*.json models reports/figures reports/*.json reports/*.csv
