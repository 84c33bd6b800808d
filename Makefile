# `make test` and `make demo` work on a fresh Debian/Ubuntu machine (as root): each installs
# what it needs first.
PYTHON ?= python3
VENV := .venv
GIXY_VENV := .venv-gixy
SSLYZE_VENV := .venv-sslyze
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: test test-fast demo demo-down system-deps docker-deps python-deps real-apps bench bench-deps clean clean-tools

system-deps:
	bash .ci/install-system-deps.sh

# Docker (and docker-compose, Vagrant) for the Docker- and Vagrant-backed staging paths: an
# option for users, needed by `make test` (it boots a Docker-backed staging host).
docker-deps:
	bash .ci/install-system-deps.sh --docker

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# The test tools' own venvs are made once per machine, in the user's cache (a fresh clone
# links them instead of installing them again); `make clean-tools` drops them.
TOOLS := $(HOME)/.cache/flask-ops/tool-venvs

# gixy-next clashes with gixy-ng, so it lives in its own venv.
$(GIXY_VENV)/.installed:
	test -x $(TOOLS)/gixy/bin/gixy || { rm -rf $(TOOLS)/gixy && $(PYTHON) -m venv $(TOOLS)/gixy && \
	  $(TOOLS)/gixy/bin/python -m pip install --quiet gixy-next; }
	ln -sfn $(TOOLS)/gixy $(GIXY_VENV)
	touch $@

# sslyze grades the TLS the staging hosts serve; it pins its own cryptography and nassl.
$(SSLYZE_VENV)/.installed:
	test -x $(TOOLS)/sslyze/bin/sslyze || { rm -rf $(TOOLS)/sslyze && $(PYTHON) -m venv $(TOOLS)/sslyze && \
	  $(TOOLS)/sslyze/bin/python -m pip install --quiet sslyze; }
	ln -sfn $(TOOLS)/sslyze $(SSLYZE_VENV)
	touch $@

python-deps: $(VENV)/.installed $(GIXY_VENV)/.installed $(SSLYZE_VENV)/.installed

# Real open-source Flask apps for the end-to-end tier: their published sdists, pinned by
# sha256, downloaded once into ~/.cache/flask-ops/real-apps (tests/realapps.py).
real-apps: python-deps
	$(PY) tests/realapps.py >/dev/null

## Every test, the end-to-end tier against real servers and staging hosts included. (The
## benchmarks' peers are `make bench`'s: the suite only checks that each script parses.)
## Two lanes (pytest-xdist; tests/conftest.py's lane_of): the tests on staging1-3 in one; the
## fast tier and the modules with hosts of their own (the projects we did not write, bullseye,
## trixie, upstart, Docker) in the other; then, alone, the test that removes every host.
test: system-deps docker-deps python-deps real-apps
	$(VENV)/bin/pytest -n 2 -m "not removes_staging" $(PYTEST_ARGS)
	$(VENV)/bin/pytest -m removes_staging $(PYTEST_ARGS)

## The fast tier: settings, rendering, checkers, the sample app. No staging hosts.
test-fast: system-deps python-deps
	$(VENV)/bin/pytest -n 2 -m "not e2e" $(PYTEST_ARGS)

## Deploy the sample app to a local staging host and print its URL.
demo: system-deps python-deps
	$(VENV)/bin/fab staging.up
	$(VENV)/bin/fab -H staging1 provision deploy
	$(VENV)/bin/fab -H staging1 smoke
	@echo "The sample app is up: curl --resolve sample.test:80:198.18.0.11 http://sample.test/  (make demo-down removes it)"

demo-down: python-deps
	$(VENV)/bin/fab staging.down

## Benchmarks: flask-ops vs. its peers (Ansible, pyinfra, Capistrano), the fleet curve, what
## the configs serve (wrk); writes docs/benchmarks.md.
bench-deps: system-deps python-deps
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	command -v h2load >/dev/null || (apt-get update -qq && apt-get install -y -qq nghttp2-client)
	command -v cap >/dev/null || (apt-get update -qq && apt-get install -y -qq capistrano ruby-ed25519 ruby-bcrypt-pbkdf)
	test -x .venv-ansible/bin/ansible-playbook || ($(PYTHON) -m venv .venv-ansible && .venv-ansible/bin/python -m pip install --quiet ansible-core)
	test -x .venv-pyinfra/bin/pyinfra || ($(PYTHON) -m venv .venv-pyinfra && .venv-pyinfra/bin/python -m pip install --quiet 'pyinfra>=3,<4')
	$(PY) -m pip install --quiet matplotlib

bench: bench-deps
	$(PY) bench/run_all.py

clean:
	rm -rf build rendered .pytest_cache

clean-tools:
	rm -rf $(TOOLS) $(GIXY_VENV) $(SSLYZE_VENV)
