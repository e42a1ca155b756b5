"""``python -m augpatch.bench``: the warp benchmark (``augpatch.bench.warp.main``)."""

from augpatch.bench.warp import main

raise SystemExit(main())
