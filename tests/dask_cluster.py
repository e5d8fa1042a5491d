"""What the Dask tests share: a scheduler plugin that records the bytes each task receives.

A task's inputs are the results of the tasks it depends on; the largest total per task
name shows that no task received all the keys (only one chunk, or one bucket).
"""

from dask.utils import key_split
from distributed.diagnostics.plugin import SchedulerPlugin


class InputBytes(SchedulerPlugin):
    """The largest total size of the inputs any task received, per task name."""

    name = "refmetrics-input-bytes"

    def __init__(self):
        self.largest = {}

    async def start(self, scheduler):
        self.scheduler = scheduler

    def transition(self, key, start, finish, *args, **kwargs):
        if finish != "processing":
            return
        ts = self.scheduler.tasks.get(key)
        if ts is None:
            return
        size = sum(max(d.nbytes, 0) for d in ts.dependencies)
        name = key_split(key)
        self.largest[name] = max(self.largest.get(name, 0), size)


def largest_inputs(client):
    """``{task name: largest input bytes}`` recorded by the client's scheduler since the last reset."""
    return client.run_on_scheduler(lambda dask_scheduler: dict(dask_scheduler.plugins[InputBytes.name].largest))


def reset_inputs(client):
    client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.plugins[InputBytes.name].largest.clear())
