"""Operating a program: its status and Prometheus metrics (:mod:`.status`, :mod:`.prometheus`)
and its data lifecycle (:mod:`.lifecycle`: retention, archives, pruning)."""
