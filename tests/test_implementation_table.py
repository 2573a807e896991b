"""The implementation table is the one place that names implementations: the registry, the
benchmarks' parameter lists and the committed results all follow it, in its order."""
from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

import pytest

import attention
from attention import implementations, registry
from benchmarks import common

ROOT = Path(__file__).resolve().parents[1]
TABLE_NAMES = [entry["name"] for entry in implementations.IMPLEMENTATIONS]


def _committed_definitions() -> dict[str, dict]:
    """Benchmark definitions of every committed results file asv or tools.publish reads."""
    found = {}
    for path in [ROOT / "results" / "benchmarks.json", *sorted((ROOT / "results").glob("benchmarks-*.saved"))]:
        for name, definition in json.loads(path.read_text()).items():
            if isinstance(definition, dict):
                found[f"{path.name}:{name}"] = definition
    return found


def test_the_table_is_one_literal_the_benchmarks_can_read_without_the_package():
    tree = ast.parse((ROOT / "attention" / "implementations.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assigned = [n for n in tree.body if isinstance(n, ast.Assign)]
    assert len(assigned) == 1 and ast.literal_eval(assigned[0].value) == implementations.IMPLEMENTATIONS
    assert list(common.IMPLEMENTATIONS) == TABLE_NAMES


def test_registry_holds_the_table_in_its_order_with_its_functions():
    assert list(attention.IMPLEMENTATIONS) == TABLE_NAMES == attention.names()
    assert len(set(TABLE_NAMES)) == len(TABLE_NAMES)
    for entry in implementations.IMPLEMENTATIONS:
        impl = attention.get(entry["name"])
        assert (impl.pattern, impl.description) == (entry["pattern"], entry["description"])
        for field in ("build", "pairs", "supports"):
            module, _, function = entry[field].partition(":")
            assert getattr(impl, field) is getattr(importlib.import_module(f"attention.{module}"), function), (
                entry["name"], field)


def test_a_bad_table_reference_is_a_one_line_error():
    entry = dict(implementations.IMPLEMENTATIONS[0], build="_builders:build_nothing")
    with pytest.raises(ValueError, match="has no 'build_nothing'"):
        registry.from_entry(entry)
    with pytest.raises(ValueError, match="must be 'module:function'"):
        registry.from_entry(dict(entry, build="build_dense"))


def test_every_benchmark_lists_the_table_in_its_order():
    from test_benchmarks import CLASSES

    with_impl = [c for c in CLASSES if "implementation" in c.param_names]
    assert len(with_impl) >= 6  # time x2, memory, throughput x2, accuracy (LargestFit on CUDA)
    for cls in with_impl:
        values = cls.params[cls.param_names.index("implementation")]
        # The dilated-vs-improved showcase picks two of them; every other family measures all.
        expected = [n for n in TABLE_NAMES if n in values] if cls.__name__.startswith("DilatedVs") else TABLE_NAMES
        assert values == expected, cls.__name__


def test_committed_results_keep_their_parameter_order():
    """asv maps stored results to parameters by index: the table may only grow at its end."""
    definitions = _committed_definitions()
    checked = 0
    for key, definition in definitions.items():
        if "implementation" not in definition.get("param_names", []):
            continue
        stored = [ast.literal_eval(v) for v in definition["params"][definition["param_names"].index("implementation")]]
        assert stored == TABLE_NAMES[:len(stored)], (
            f"{key}: committed results list implementations as {stored}; the table must keep that "
            f"order and only append (it is {TABLE_NAMES})")
        checked += 1
    assert checked >= 10, checked


def test_committed_shape_params_are_the_benchmarks_param_names():
    """Every committed definition of a shape benchmark names its params as the benchmarks do now."""
    for key, definition in _committed_definitions().items():
        names = definition.get("param_names", [])
        if names and names[0] == "implementation" and len(names) == len(common.SHAPE_PARAM_NAMES):
            assert names == common.SHAPE_PARAM_NAMES, key


def test_every_benchmark_keeps_its_committed_parameter_names_and_values():
    """A benchmark's parameters (names, and each value at its position) are those the committed
    results were stored under: swapped, renamed or re-typed parameters would orphan the history."""
    from test_benchmarks import CLASSES, _methods

    committed = json.loads((ROOT / "results" / "benchmarks.json").read_text())
    checked = 0
    for cls in CLASSES:
        for method in _methods(cls):
            key = f"{cls.__module__.split('.')[-1]}.{cls.__name__}.{method}"
            if key not in committed:
                continue  # a benchmark new since the last committed run
            definition = committed[key]
            assert definition["param_names"] == cls.param_names, key
            for name, values, stored in zip(cls.param_names, cls.params, definition["params"]):
                assert [repr(v) for v in values if repr(v) not in stored] == [], (key, name, stored)
            checked += 1
    assert checked >= 10, checked
