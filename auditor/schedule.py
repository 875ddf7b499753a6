"""`auditor schedule`: run the nightly audit on a cron schedule and keep running.

APScheduler does the calendar arithmetic (time zones, DST, misfires); one job, never two at
once, and a run that was missed while the machine slept is run once, not many times.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from auditor.config import ConfigError


def trigger(cron: str, timezone: str | None = None) -> CronTrigger:
    """A cron trigger from a five-field crontab line, or a ConfigError that says why not."""
    try:
        return CronTrigger.from_crontab(cron, timezone=timezone)
    except ValueError as exc:
        raise ConfigError(f"cron {cron!r} is not a five-field crontab line ({exc})") from None


def serve(
    cron: str,
    job: Callable[[], object],
    *,
    run_now: bool = False,
    max_runs: int | None = None,
    timezone: str | None = None,
    say: Callable[[str], None] = print,
) -> int:
    """Run ``job`` on the schedule until interrupted (or ``max_runs`` runs); returns runs."""
    scheduler = BlockingScheduler(timezone=timezone) if timezone else BlockingScheduler()
    done = 0

    def finished(event: JobExecutionEvent) -> None:
        nonlocal done
        done += 1
        if event.exception is not None:
            say(f"audit failed: {event.exception}")
        if max_runs is not None and done >= max_runs:
            scheduler.shutdown(wait=False)
            return
        job_ = scheduler.get_job("audit")
        if job_ is not None and job_.next_run_time is not None:
            say(f"next audit at {job_.next_run_time:%Y-%m-%d %H:%M %Z}")

    scheduler.add_listener(finished, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    when = trigger(cron, timezone)
    now = datetime.now().astimezone()
    first = now if run_now else when.get_next_fire_time(None, now)
    scheduler.add_job(job, when, id="audit", max_instances=1, coalesce=True,
                      misfire_grace_time=3600, next_run_time=first)
    say(f"scheduled {cron!r}: first audit at {first:%Y-%m-%d %H:%M %Z}")
    with contextlib.suppress(KeyboardInterrupt, SystemExit):  # Ctrl-C / SIGTERM: stop
        scheduler.start()
    return done
