"""What pages show of a job: its progress (live while it runs) and whether it is finished."""
from __future__ import annotations

from dataclasses import dataclass

from portal.jobs.worker import get_queue
from portal.models import Job, JobState

# --- what pages show --------------------------------------------------------------------------


@dataclass(frozen=True)
class JobProgress:
    done: int
    total: int

    @property
    def percent(self) -> int | None:
        """0–100, or None while the total is unknown."""
        if not self.total:
            return None
        return max(0, min(100, self.done * 100 // self.total))


def progress_of(job: Job) -> JobProgress:
    """The figure for a progress bar: while the job runs, the live one the worker published
    (fresher than the row whenever the job's transaction kept the row from being written)."""
    if job.state == JobState.RUNNING:
        live = get_queue().live_progress(job.id)
        if live:
            return JobProgress(int(live[0]), int(live[1]))
    return JobProgress(job.progress_done or 0, job.progress_total or 0)


def is_finished(job: Job) -> bool:
    return job.state in (JobState.DONE, JobState.FAILED)
