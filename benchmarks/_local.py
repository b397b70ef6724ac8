"""What every benchmark needs first: the project on sys.path, and AWS that is only moto.

Imported before anything of the project: ``import _local`` (it sits beside the benchmarks).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "layers" / "ab_testing"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

# Never reach real AWS from a benchmark.
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
os.environ.pop("AWS_PROFILE", None)
