"""Dataset readers: one module per layout, each turning a tree (or a manifest) into a :class:`Dataset`.

A reader checks the layout (every file it expects is there, every mask has its map)
and names the file, what was expected and what was found when it is not; it reads
no pixels. The header check (:func:`refmetrics.evaluate.samples.check_headers`) and
the streaming state come after it, the same for every layout.
"""

from dataclasses import dataclass, field


@dataclass
class Dataset:
    """What a reader found: the test samples in a fixed order, the settings that describe where they came
    from (copied into ``results.json``), dataset-level notes, and, per category, the defect-free validation
    samples a protocol may need first (MVTec AD 2's threshold)."""

    samples: list
    settings: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    validation: dict = field(default_factory=dict)
