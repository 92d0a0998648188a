"""`inspector run`, with one fault injected: while the file named by argv[1] exists, the detector
blocks, as a stuck driver or runaway model call would. Real code does not hang on demand, so the
hang is put in here; everything else (the CLI, the pipeline, the notify socket) is the real one.

    python tests/hang_line.py FLAG_FILE run --config line.yaml
"""

import sys
import time
from pathlib import Path

import inspector.line.pipeline as pipeline

flag = Path(sys.argv[1])
real_build = pipeline.build_detector


class Hanging:
    def __init__(self, det):
        self._det = det

    def __getattr__(self, name):
        return getattr(self._det, name)

    def detect(self, *a, **k):
        while flag.exists():
            time.sleep(0.05)
        return self._det.detect(*a, **k)


pipeline.build_detector = lambda cfg: Hanging(real_build(cfg))

from inspector.cli import main  # noqa: E402

sys.exit(main(sys.argv[2:]))
