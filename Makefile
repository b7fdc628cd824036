# The two commands (README): `make demo` runs the pipeline end to end on the bundled data,
# `make test` runs the tests. Both create or reuse the virtual environment in .venv.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint venv clean-lake mlflow-ui airflow

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/riskradar demo

# Two workers, one per core; a test module stays on one worker, so its fixtures are built once.
PYTEST := $(VENV)/bin/python -m pytest -n 2 --dist loadfile

test: $(STAMP)
	$(PYTEST)

test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean-lake:
	rm -rf lake

# The MLflow UI on the embedded store of the local lake: http://127.0.0.1:5000
mlflow-ui: $(STAMP)
	MLFLOW_DISABLE_TELEMETRY=true $(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(or $(RISKRADAR_LAKE),$(CURDIR)/lake)/mlflow/mlflow.db --host 127.0.0.1 --port 5000

# Airflow standalone on 127.0.0.1:8080 with the project's DAGs (user admin; password in
# .airflow/simple_auth_manager_passwords.json.generated). Ctrl-C stops it.
airflow: $(STAMP)
	$(VENV)/bin/riskradar airflow
