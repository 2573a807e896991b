"""asv plugins for attnbench, loaded through ``"plugins"`` in asv.conf.json (run asv from the repo root)."""
