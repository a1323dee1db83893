"""Celery tasks of the video rooms (issue 15)."""

from __future__ import annotations

from celery import shared_task

from tutoring_core.video.services import attendance_sweep


@shared_task(name="video.attendance_sweep", ignore_result=True)
def attendance_sweep_task() -> int:
    """Beat entry point: attendance of the rooms nobody ended, a batch a run; the number done."""
    return len(attendance_sweep())
