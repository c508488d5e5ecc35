"""``python -m monai_ceph.data.datalist``: see :mod:`monai_ceph.data.datalist.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
