"""Command-line tools around the asv results: machine file, legacy migration, regression report,
confirmed bisection and badges. Each module runs as ``python -m tools.<name> --help``."""
