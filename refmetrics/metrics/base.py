"""The stateful-metric protocol shared by every class."""

from .. import _arrays as A
from .. import _validation as V


class Metric:
    """Base of the stateful metrics: ``update``, ``compute``, ``reset``, ``merge``, ``__call__``.

    Subclasses define ``_config()`` (the constructor arguments), ``reset()``,
    ``update()``, ``compute()`` and ``_merge_state(other)``.
    """

    #: attributes that ``compute`` sets besides its return value (e.g. F1Max.threshold)
    _outputs = ()

    def __init__(self, backend="auto"):
        A.resolve_backend(backend)
        self.backend = backend

    def _config(self):
        return {"backend": self.backend}

    def _merge_state(self, other):
        raise NotImplementedError

    def merge(self, other):
        """Add the state of ``other`` (same class and parameters) to this one.

        The map-reduce step of a distributed evaluation: states built on parts
        of the data and merged give the same result as one state that saw it all.
        Returns ``self``.
        """
        V.check_same_config(self, other)
        self._merge_state(other)
        return self

    def __copy__(self):
        """An independent metric with the same parameters and state.

        The copy starts empty and merges this metric's state, so the two share
        no mutable state (the merge step already keeps merged states apart:
        large arrays are shared read-only and never sorted in place). Updating
        or resetting one leaves the other unchanged; ``copy.deepcopy`` and
        pickling copy everything.
        """
        new = type(self).__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.reset()
        new._merge_state(self)
        for name in self._outputs:
            setattr(new, name, getattr(self, name))
        return new

    def __call__(self, *args, **kwargs):
        """Update with the batch and return the metric of this batch alone.

        As torchmetrics' ``forward``: attributes that ``compute`` sets (such as
        ``F1Max.threshold``) describe that batch afterwards.
        """
        batch = type(self)(**self._config())
        batch.update(*args, **kwargs)
        value = batch.compute()
        self.merge(batch)
        for name in self._outputs:
            setattr(self, name, getattr(batch, name))
        return value

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._config().items())
        return f"{type(self).__name__}({args})"
