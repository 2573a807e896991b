"""attnbench's asv benchmarks: one module per measured quantity, fixtures in common.py."""
