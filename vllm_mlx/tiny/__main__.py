"""``python -m vllm_mlx.tiny``: see ``vllm_mlx.tiny.cli``."""

import sys

from .cli import main

sys.exit(main())
