"""Every raw SQL statement of the billing app, each named once with what it does.

Table names come from the models' `_meta.db_table`; values are always bound (`%s`), never
formatted in. Callers run them with a Django cursor (`connections[alias].cursor()`) or, for
the per-request ones, with `billing.db.fetch_prepared`. The ORM covers everything else.
"""

from __future__ import annotations

from billing.models import LedgerCharge, Report

_LEDGER = LedgerCharge._meta.db_table
_REPORT = Report._meta.db_table

# The columns LEDGER_CHARGE_SELECT returns, in order (the gateway unpacks rows by them).
LEDGER_CHARGE_COLUMNS = (
    "reference",
    "customer",
    "amount",
    "currency",
    "description",
    "status",
    "decline_code",
)

# Record a new charge under its idempotency key; returns its reference, or no row when the key
# was used before. A concurrent insert with the same key waits on the unique index for the
# first to commit, then inserts nothing instead of failing.
LEDGER_CHARGE_INSERT = f"""
INSERT INTO {_LEDGER} (reference, idempotency_key, customer, amount, currency, description,
                       status, decline_code, created_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING reference
"""  # noqa: S608 - the table name comes from the model

# The charge recorded under an idempotency key (zero or one row), as LEDGER_CHARGE_COLUMNS.
LEDGER_CHARGE_SELECT = f"""
SELECT {", ".join(LEDGER_CHARGE_COLUMNS)}
FROM {_LEDGER}
WHERE idempotency_key = %s
"""  # noqa: S608 - the table name and columns come from this module

# Request a tenant's report for a month unless the tenant already has `limit` reports in
# progress or the month has a report; returns the new id, or no row. Parameters: tenant,
# month, requested_by, run, created_at, tenant, limit. The states are literals, not
# parameters, so that the partial index on active reports matches a prepared (generic) plan.
# Two concurrent requests can both pass the count: the limit is a brake, not an invariant.
_ACTIVE = f"'{Report.State.PENDING.value}', '{Report.State.RUNNING.value}'"
REPORT_INSERT_UNDER_LIMIT = f"""
INSERT INTO {_REPORT} (tenant_id, month, requested_by_id, run_id, state, message, file,
                       created_at)
SELECT %s, %s, %s, %s, '{Report.State.PENDING.value}', '', '', %s
WHERE (SELECT COUNT(*) FROM {_REPORT}
       WHERE tenant_id = %s AND state IN ({_ACTIVE})) < %s
ON CONFLICT (tenant_id, month) DO NOTHING
RETURNING id
"""  # noqa: S608 - the table name and states come from the model
