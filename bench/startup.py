"""Row 1: `resdsl check specs/resnet152.res` as a whole process, against `python -c "import torch"`.

Warm: the parser tables are in the cache (every run after the first).
Cold: an empty cache folder, so the run builds the tables as a first run does.
"""

from __future__ import annotations

import os
import tempfile

from common import ROOT, byte_compile, interleaved, process, python

GOAL_S = 0.5


def run(repeats: int = 7) -> dict:
    byte_compile()
    spec = str(ROOT / "specs" / "resnet152.res")
    check = [python(), "-m", "resdsl", "check", spec]
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as scratch:
        warm_env = {**os.environ, "RESDSL_CACHE_DIR": cache}
        process(check, warm_env)()  # fill the cache

        cold_runs = iter(range(10**6))

        def cold() -> None:
            process(check, {**os.environ, "RESDSL_CACHE_DIR": os.path.join(scratch, str(next(cold_runs)))})()

        stats = interleaved(
            {
                "check (warm cache)": process(check, warm_env),
                "check (cold cache)": cold,
                "import torch": process([python(), "-c", "import torch"]),
                "python -c pass": process([python(), "-c", "pass"]),
            },
            repeats,
        )
    return {name: stat.as_dict() for name, stat in stats.items()}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
