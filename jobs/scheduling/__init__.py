"""The scheduler process: from due slots to recorded, sent runs, and the repairs around it.

tick.py      claim due schedules, record their runs, send them (one transaction per batch)
plan.py      which slots of a claimed schedule fire or are skipped, and the runs they make
loop.py      `manage.py runscheduler`: ticks, sweeps and heartbeats until stopped
sweep.py     re-send what a crash or an outage left unsent, lost or stuck
backfill.py  record the runs of past slots an operator asks for
"""
