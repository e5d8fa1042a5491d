"""The protocols of ``refmetrics evaluate --protocol NAME``: one module each, listed in :data:`PROTOCOLS`.

Adding a protocol means adding its reader (:mod:`refmetrics.evaluate.readers`), its module here (a
:class:`refmetrics.evaluate.protocols.base.Protocol` subclass), a line in :data:`PROTOCOLS`, and its demo
tree (``tools/make_demo_data.py``); the state, the run and the writers stay as they are.
"""

from .base import Column, Measured, Protocol
from .mvtec_ad import MVTecAD
from .mvtec_ad2 import MVTecAD2
from .mvtec_loco import MVTecLOCO
from .visa import VisA
from .mvtec_3d_ad import MVTec3DAD
from .real_iad import RealIAD
from .ader import ADer

PROTOCOLS = {p.name: p for p in (MVTecAD(), MVTecAD2(), MVTecLOCO(), VisA(), MVTec3DAD(), RealIAD(), ADer())}
DEFAULT = "mvtec-ad"


def get(name):
    """The protocol called ``name``; a ValueError naming the known ones otherwise."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"--protocol: expected one of {', '.join(PROTOCOLS)}, received {name!r}") from None


__all__ = ["Column", "DEFAULT", "Measured", "PROTOCOLS", "Protocol", "get"]
