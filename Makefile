# The two commands of the README, plus the checks CI runs. Each target installs what it needs.
.PHONY: run test test-rabbitmq check venv

# Tests talk to real servers; these defaults are the local ones (override in the environment).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/saas
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
TEST_CACHE_URL ?= redis://127.0.0.1:6379/13

venv:
	@./scripts/bootstrap

## Run the site on the embedded default (SQLite + in-process broker, one process).
run: venv
	.venv/bin/python manage.py runall

TEST_RABBITMQ_URL ?= amqp://guest:guest@127.0.0.1:5672/
# The end-to-end cases that run a second time with RabbitMQ as the broker.
RABBITMQ_TESTS = tests/e2e/test_worker.py tests/e2e/test_django_tasks.py

## Run the whole test suite against local PostgreSQL and Redis, then its end-to-end worker
## cases again on RabbitMQ (skip that part with SKIP_RABBITMQ=1).
test: venv
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) CACHE_URL=$(TEST_CACHE_URL) \
		.venv/bin/python -m pytest $(PYTEST_ARGS)
ifndef PYTEST_ARGS
ifndef SKIP_RABBITMQ
	$(MAKE) --no-print-directory test-rabbitmq
endif
endif

## The end-to-end worker and django.tasks cases with RabbitMQ as the broker.
test-rabbitmq: venv
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) CACHE_URL=$(TEST_CACHE_URL) \
		BROKER_URL=$(TEST_RABBITMQ_URL) .venv/bin/python -m pytest $(RABBITMQ_TESTS)

## Static checks: lint, format, types, Django checks, migrations, import contracts.
check: venv
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy jobs/
	.venv/bin/python manage.py check --fail-level WARNING
	.venv/bin/python manage.py makemigrations --check --dry-run
	.venv/bin/lint-imports
