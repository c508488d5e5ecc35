# Copyright (c) monai_ceph contributors.
# Licensed under the Apache License, Version 2.0.
"""Networks (``nets``) and their building blocks (``blocks``) for cephalometric landmark detection."""
