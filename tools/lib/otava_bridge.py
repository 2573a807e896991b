"""Run Apache Otava's change-point detection on series read from stdin (JSON); a standalone script.

Otava 0.8.0 pins numpy 2.2, so it lives in a virtual environment of its own (``.venv-otava``, see
``docs/detection.md``) and this file runs there as a script: it imports nothing from this project.

Input ``{"series": [[value or null, ...], ...], "p": [0.001, ...], "window": 50}``: one value per
commit (larger = slower), null for a commit not measured. Output ``{"version": "0.8.0", "found":
[[[[index, "slower" | "faster"], ...] per p] per series]}``, indices into the input series.
"""
import json
import sys
from importlib import metadata

from otava.analysis import compute_change_points


def change_points(values, max_pvalue, window):
    present = [i for i, v in enumerate(values) if v is not None]
    series = [float(values[i]) for i in present]  # Otava takes Python floats, not numpy arrays
    if len(series) < 3:
        return []
    points, _ = compute_change_points(series, window_len=window, max_pvalue=max_pvalue)
    found = []
    for cp in points:
        change = cp.stats.forward_rel_change()
        found.append([present[int(cp.index)], "slower" if change > 0 else "faster"])
    return found


def main():
    request = json.load(sys.stdin)
    window = int(request.get("window", 50))
    found = [[change_points(values, p, window) for p in request["p"]] for values in request["series"]]
    json.dump({"version": metadata.version("apache-otava"), "found": found}, sys.stdout)


if __name__ == "__main__":
    main()
