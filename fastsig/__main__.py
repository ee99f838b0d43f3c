"""``python -m fastsig``: the same as the ``fastsig`` console script."""

from .cli import main

raise SystemExit(main())
