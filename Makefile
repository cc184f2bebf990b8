# The two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VERSION := $(shell $(PYTHON) -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')

.PHONY: venv demo test lint e2e images tools cluster-up cluster-down bench clean

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "setuptools>=77" wheel
	# Every process's extra: the tests run the server (with its scikit-learn fallback), router,
	# operator and trainer in this one venv (tests/test_extras.py installs each extra alone).
	$(PY) -m pip install -q -e ".[server-full,router,operator,train,test]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	bash hack/demo.sh

test: venv
	$(VENV)/bin/pytest

lint: venv
	$(VENV)/bin/ruff check .

e2e: venv
	$(VENV)/bin/pytest -m e2e tests/e2e -v

images:
	docker build -f Dockerfile.server -t docker.io/mlserving/server:$(VERSION) .
	docker build -f Dockerfile.server --target server-full -t docker.io/mlserving/server-full:$(VERSION) .
	docker build -f Dockerfile.operator -t docker.io/mlserving/operator:$(VERSION) .

tools: venv
	bash hack/tools.sh

cluster-up:
	hack/cluster.sh build
	hack/cluster.sh up

cluster-down:
	hack/cluster.sh down

clean:
	-hack/cluster.sh down
	rm -rf $(VENV) build dist *.egg-info models .cluster
