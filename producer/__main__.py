import sys

from eunomia.errors import EunomiaError
from eunomia.producer.agent import main

try:
    sys.exit(main())
except EunomiaError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(1)
