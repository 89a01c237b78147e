"""The jobs admin: schedules (edit, preview, pause/resume, run now, backfill, duplicate), runs
(read-only history with retry and cancel) and the overview page.

    schedules.py         ScheduleAdmin: list, form, preview, recent runs
    schedule_actions.py  its actions, each calling one service
    runs.py              JobRunAdmin: history, timeline, retry and cancel
    overview.py          the overview page (processes, queues, runs per hour)
    preview.py           the form's live preview endpoint
    forms.py             the schedule form and the actions' forms
    lists.py             filters, run search, capped counts
    html.py, describe.py the small HTML pieces and the words for a timing
"""

from jobs.admin.runs import JobRunAdmin
from jobs.admin.schedules import ScheduleAdmin

__all__ = ["JobRunAdmin", "ScheduleAdmin"]
