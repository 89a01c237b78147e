# The two commands of the README, plus the checks CI runs. Each target installs what it needs.
.PHONY: run test check bench venv

# Tests talk to real servers; these defaults are the local ones (override in the environment).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/saas
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

venv:
	@./scripts/bootstrap

## Run the site on the embedded default (SQLite + in-process broker, one process).
run: venv
	.venv/bin/python manage.py runall

## Run the whole test suite against local PostgreSQL and Redis.
test: venv
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) .venv/bin/python -m pytest $(PYTEST_ARGS)

## Static checks: lint, format, types, Django checks, migrations, import contracts.
check: venv
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy jobs/
	.venv/bin/python manage.py check --fail-level WARNING
	.venv/bin/python manage.py makemigrations --check --dry-run
	.venv/bin/lint-imports
