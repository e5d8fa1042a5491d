"""Regenerate the bundled demo trees of ``refmetrics evaluate --protocol NAME --demo``.

One module per protocol in ``tools/demos/`` (each deterministic, with its own
seed) writes ``refmetrics/data/demo/<protocol>/``: a few small images per
category in that benchmark's layout.

Run: ``python tools/make_demo_data.py [PROTOCOL ...]`` (default: every protocol).
"""

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

DEMOS = {  # protocol -> module of tools/demos
    "mvtec-ad": "mvtec_ad",
    "mvtec-ad-2": "mvtec_ad2",
    "mvtec-loco": "mvtec_loco",
    "visa": "visa",
    "mvtec-3d-ad": "mvtec_3d_ad",
    "real-iad": "real_iad",
    "ader": "ader",
    "compare": "compare",  # refmetrics compare --demo: two methods on one mvtec-ad test set
}
DATA = Path(__file__).resolve().parents[1] / "refmetrics" / "data" / "demo"


def main(argv=None):
    names = (argv if argv is not None else sys.argv[1:]) or list(DEMOS)
    unknown = [n for n in names if n not in DEMOS]
    if unknown:
        sys.exit(f"make_demo_data: unknown protocol {', '.join(unknown)}; expected {', '.join(DEMOS)}")
    for name in names:
        module = importlib.import_module(f"demos.{DEMOS[name]}")
        module.main(DATA / name)


if __name__ == "__main__":
    main()
