# SpineConsult: `make run` to try it, `make test` to test it. See README.md.
SHELL := /bin/bash
VENV ?= .venv
# The demo's port (make run PORT=5050 when 5000 is taken, e.g. by macOS's AirPlay Receiver).
PORT ?= 5000
# The development mail sink's port (make run MAIL_PORT=1026 when 1025 is taken).
MAIL_PORT ?= 1025
DEV_ENV := SPINECONSULT_ENV=development PUBLIC_BASE_URL=http://127.0.0.1:$(PORT) MAIL_PORT=$(MAIL_PORT)
PY := $(VENV)/bin/python
PYTHON ?= python3
# pytest-xdist workers; CI has 2 cores.
TEST_WORKERS ?= 2

# The settings file make run's processes read (honcho's; a missing one is no error).
ENV_FILE ?= .env
# Run a command with the same environment as make run's processes: DEV_ENV, then ENV_FILE
# over it (honcho lets the file win, as honcho start does).
HONCHO_RUN := $(DEV_ENV) $(VENV)/bin/honcho run -e $(ENV_FILE)

.PHONY: install run dev-db test lint format browser screenshots translations messages clean-dev bench

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "SpineConsult needs Python 3.11 or newer: run make with PYTHON=python3.11 (or newer)."; exit 1; }
	@if test -x $(PY) && ! $(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then \
		echo "Removing $(VENV): it was made with a Python older than 3.11."; rm -rf $(VENV); fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@# No longer a requirement (the flask commands read .env with it): gone from older venvs.
	@$(PY) -m pip uninstall --quiet --yes python-dotenv 2>/dev/null || true
	touch $@

install: $(VENV)/.installed translations

translations: $(VENV)/.installed
	@if ls booking/translations/*/LC_MESSAGES/messages.po >/dev/null 2>&1; then \
		$(VENV)/bin/pybabel compile -d booking/translations --statistics; fi

## Extract every translatable string and merge new ones into each language's catalogue.
messages: $(VENV)/.installed
	mkdir -p booking/translations
	$(VENV)/bin/pybabel extract -F babel.cfg -k _l -k lazy_gettext -k _p:1c,2 -k lazy_pgettext:1c,2 --add-location=file -o booking/translations/messages.pot .
	$(VENV)/bin/pybabel update -i booking/translations/messages.pot -d booking/translations --no-fuzzy-matching

## Migrate the development database and add the demo data, with make run's settings (.env too).
dev-db: install
	mkdir -p instance
	$(HONCHO_RUN) $(abspath $(VENV))/bin/flask --app wsgi db upgrade
	$(HONCHO_RUN) $(abspath $(VENV))/bin/flask --app wsgi seed-demo

## Serve on http://127.0.0.1:5000 with the worker and a local mail sink (SQLite, demo data).
run: dev-db
	@echo "Patient: http://127.0.0.1:$(PORT)/   Staff: http://127.0.0.1:$(PORT)/staff/ (README lists the demo sign-ins)"
	@echo "Emails: http://127.0.0.1:$(PORT)/dev/mail"
	$(DEV_ENV) PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/honcho start -f Procfile -e $(ENV_FILE) -p $(PORT)

## Debian's chromium for the browser tests (Playwright cannot download its own here),
## Debian's nginx for the production suite's TLS proxy (tests/production/), and Debian's
## clamd for the virus-scanning tests (tests/test_virus_scan.py; they make their own signatures).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get install -y -q chromium >/dev/null 2>&1 || \
			{ apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } || \
			echo "Could not install chromium: browser tests will be skipped (and fail under .ci/run)."; \
		else echo "chromium is missing and cannot be installed here: browser tests will be skipped."; fi; }
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get install -y -q nginx-light >/dev/null 2>&1 || \
			{ apt-get update -q >/dev/null && apt-get install -y -q nginx-light >/dev/null; } || \
			echo "Could not install nginx-light: the production suite will be skipped (and fail under .ci/run)."; \
		else echo "nginx is missing and cannot be installed here: the production suite will be skipped."; fi; }
	@command -v clamd >/dev/null 2>&1 || test -x /usr/sbin/clamd || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get install -y -q clamav-daemon clamav-freshclam >/dev/null 2>&1 || \
			{ apt-get update -q >/dev/null && apt-get install -y -q clamav-daemon clamav-freshclam >/dev/null; } || \
			echo "Could not install clamav-daemon: the virus-scanning tests will be skipped (and fail under .ci/run)."; \
		else echo "clamd is missing and cannot be installed here: the virus-scanning tests will be skipped."; fi; }

## Retake README's screenshots (docs/screenshots/) from the app as it is, with demo data.
screenshots: install browser
	$(PY) scripts/screenshots.py

## The whole suite: lint, then every test (PostgreSQL too when TEST_DATABASE_URL is set).
test: install browser lint
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=15

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/bandit -r booking -q
	$(VENV)/bin/lint-imports

format: $(VENV)/.installed
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## Benchmarks (docs/benchmarks.md), e.g. make bench BENCH_ARGS="--db postgresql --sizes 100,10000,100000"
BENCH_ARGS ?=
bench: install
	$(PY) -m bench $(BENCH_ARGS)

## Forget the development database, queue, uploads and mail (not used by tests).
clean-dev:
	rm -rf instance/
