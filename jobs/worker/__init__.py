"""The worker side: what runs inside `manage.py rundramatiq`.

middleware.py  RunRecorder, the Dramatiq middleware that drives each run's state machine
claim.py       the claim a worker thread holds: progress, cancellation, `jobs.current_run()`
lease.py       the lease keeper thread: renews leases, ends hung attempts
logs.py        `%(run)s` in log formats: the run, job and attempt of each line
"""
