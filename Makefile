# plant-disease: one command to install and run the main job, one to run the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export PLANT_DISEASE_SHARED_DATA ?= $(abspath ../shared/data)

.PHONY: install run test check lint nbtest pytest serve worker dashboard clean

install: $(VENV)/.installed app/node_modules/.installed  ## create .venv and install the library with its dev tools (pinned by constraints.txt), and the web page's in-browser runtime (npm, pinned by app/package-lock.json)

$(VENV)/.installed: setup.py settings.ini constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	touch $@

# LiteRT.js for the web page's offline mode (app/static/ondevice.js); without Node's npm the page works online only
app/node_modules/.installed: app/package.json app/package-lock.json
	@if command -v npm >/dev/null; then cd app && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "npm not found: the web page's offline mode needs Node.js and npm (apt-get install nodejs npm), then make install"; fi

run: install  ## the main job: data -> eda -> train -> evaluate -> ood with params.yaml (offline, CPU, synthetic by default)
	$(BIN)/plant-disease run

test: install check lint nbtest pytest  ## everything CI runs

check: install  ## library in sync with the notebooks, notebooks clean
	PATH=$(abspath $(BIN)):$$PATH tools/check_sync.sh

lint: install  ## ruff (ruff.toml): the linter on the library, app/, bench/, tests/, testkit/ and tools/; the formatter's check on the sources; the import layers (.importlinter: lint-imports)
	$(BIN)/ruff check plant_disease app bench tests testkit tools
	$(BIN)/ruff format --check nbs app bench tests testkit tools
	$(BIN)/lint-imports

nbtest: install  ## the notebooks' own tests
	$(BIN)/nbdev_test --n_workers 2

pytest: install  ## integration tests (real training on the shared sample when it is there)
	$(BIN)/pytest -n 2 --dist loadgroup -ra --durations=12 tests

serve: export PD_VARIANTS ?= [{"name": "A", "source": "models"}]
serve: export PD_REQUIRE_AUTH ?= false
serve: install  ## the API and web page on http://127.0.0.1:8000, answering with the model `make run` trained (no auth: local use)
	$(BIN)/python -m app --host 127.0.0.1 --port 8000

worker: export PD_VARIANTS ?= [{"name": "A", "source": "models"}]
worker: export PD_REQUIRE_AUTH ?= false
worker: install  ## one Celery worker for /predict/async (needs PD_REDIS_URL, e.g. redis://127.0.0.1:6379/0)
	$(BIN)/celery -A app.worker worker -Q predict -c 1 --loglevel INFO

dashboard: export PD_DASHBOARD_MODEL ?= models
dashboard: export PD_DATABASE_URL ?= sqlite:///$(abspath predictions.db)
dashboard: export PD_PROJECT_DIR ?= $(CURDIR)
dashboard: install  ## the Voilà dashboard on http://127.0.0.1:8866 (settings: app/voila.json), with the model `make run` trained and the service's prediction log
	$(BIN)/voila app/dashboard.ipynb --Voila.config_file_paths=app

# what `make run`, `dvc repro`, `make serve`/`dashboard` and the tests write in the checkout; git removes only files it
# does not track there, so nothing committed goes (reports/real_sample/, the committed bench_*.json) and .venv stays
OUTPUTS = data models models_twin exported mlruns mlflow.db mlartifacts reports predictions.db spool photos field .cache

clean:  ## remove what `make run` and the pipeline, the service and the tests wrote (nothing committed; .venv stays)
	git clean -fdxq -- $(OUTPUTS)
