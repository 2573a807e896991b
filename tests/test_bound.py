"""tools.lib.bound and ``python -m tools.simulate --bound``: the oracle statistics against direct
least-squares fits, the Neyman-Pearson test's power against its closed form, the invariances each
GLRT must have, thresholds against their definition, and bad input as one-line errors."""
from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from tools import simulate as command
from tools.lib import bound
from tools.lib.errors import ToolError
from tools.lib.simulate import History, Scenario, simulate


def _random_levels(rng: np.random.Generator, n: int = 30, m: int = 20) -> bound.Levels:
    w = rng.uniform(200.0, 3000.0, (n, m))
    w[0, 3] = 0.0  # a commit that was not measured
    return bound.Levels(rng.normal(0.0, 0.05, (n, m)), w, np.full(n, -1))


def _wrss(design: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    sw = np.sqrt(w)
    beta, *_ = np.linalg.lstsq(design * sw[:, None], y * sw, rcond=None)
    r = (y - design @ beta) * sw
    return float(r @ r)


def test_glrt_statistics_match_direct_weighted_fits():
    rng = np.random.default_rng(0)
    lv = _random_levels(rng)
    m = lv.y.shape[1]
    one, t = np.ones(m), np.arange(m) / (m - 1)
    stats = bound.glrt_stats(lv, 5, 16)
    for h in range(lv.y.shape[0]):
        y, w = lv.y[h], lv.w[h]
        step = {k: _wrss(np.c_[one, np.arange(m) >= k], y, w) for k in range(5, 17)}
        line_step = {k: _wrss(np.c_[one, t, np.arange(m) >= k], y, w) for k in range(5, 17)}
        line, const = _wrss(np.c_[one, t], y, w), _wrss(one[:, None], y, w)
        assert stats["step-vs-line"][0][h] == pytest.approx(line - min(step.values()), rel=1e-6, abs=1e-9)
        assert stats["line+step-vs-line"][0][h] == pytest.approx(line - min(line_step.values()), rel=1e-6, abs=1e-9)
        assert stats["step-vs-constant"][0][h] == pytest.approx(const - min(step.values()), rel=1e-6, abs=1e-9)
        assert stats["step-vs-line"][1][h] == min(step, key=step.get)
        assert stats["line+step-vs-line"][1][h] == min(line_step, key=line_step.get)


def test_glrt_invariances():
    rng = np.random.default_rng(1)
    lv = _random_levels(rng)
    m = lv.y.shape[1]
    base = bound.glrt_stats(lv, 5, 16)
    shifted = bound.glrt_stats(bound.Levels(lv.y + 0.7, lv.w, lv.truth), 5, 16)
    ramp = 0.3 * np.arange(m) / (m - 1)
    tilted = bound.glrt_stats(bound.Levels(lv.y - 0.2 + ramp, lv.w, lv.truth), 5, 16)
    scaled = bound.glrt_stats(bound.Levels(3.0 * lv.y, lv.w, lv.truth), 5, 16)
    for test in base:  # a constant changes nothing; scaling the levels by 3 scales every statistic by 9
        np.testing.assert_allclose(shifted[test][0], base[test][0], rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(scaled[test][0], 9.0 * base[test][0], rtol=1e-6, atol=1e-8)
    # only the test with a line in both models ignores a straight line added to the data
    np.testing.assert_allclose(tilted["line+step-vs-line"][0], base["line+step-vs-line"][0], rtol=1e-6, atol=1e-8)
    assert not np.allclose(tilted["step-vs-constant"][0], base["step-vs-constant"][0])


def test_estimated_noise_statistics_are_f_ratios_of_unweighted_fits():
    rng = np.random.default_rng(5)
    lv = _random_levels(rng, n=8)
    m = lv.y.shape[1]
    one, t = np.ones(m), np.arange(m) / (m - 1)
    stats = bound.glrt_stats(lv, 5, 16, estimated=True)
    scaled = bound.glrt_stats(bound.Levels(5.0 * lv.y + 2.0, 3.0 * lv.w, lv.truth), 5, 16, estimated=True)
    for h in range(8):
        y, w = lv.y[h], (lv.w[h] > 0).astype(float)
        step = min(_wrss(np.c_[one, np.arange(m) >= k], y, w) for k in range(5, 17))
        line, const = _wrss(np.c_[one, t], y, w), _wrss(one[:, None], y, w)
        assert stats["step-vs-line"][0][h] == pytest.approx((line - step) / step, rel=1e-6)
        assert stats["step-vs-constant"][0][h] == pytest.approx((const - step) / step, rel=1e-6)
    for test in stats:  # the noise is estimated: neither the scale of the levels nor the weights matter
        np.testing.assert_allclose(scaled[test][0], stats[test][0], rtol=1e-6)


def test_neyman_pearson_statistic_is_the_likelihood_ratio_with_the_intercept_profiled():
    rng = np.random.default_rng(2)
    lv = _random_levels(rng, n=10)
    m = lv.y.shape[1]
    one = np.ones((m, 1))
    log_step, log_drift = math.log(1.1), math.log(1.1)
    stat, where = bound.np_stats(lv, log_step, log_drift, 5, 16)
    for h in range(10):
        y, w = lv.y[h], lv.w[h]
        misfit = {k: _wrss(one, y - log_step * (np.arange(m) >= k), w) for k in range(5, 17)}
        drift = _wrss(one, y - log_drift * np.arange(m) / (m - 1), w)
        mixture = math.log(np.mean([math.exp(-0.5 * (q - min(misfit.values()))) for q in misfit.values()]))
        assert stat[h] == pytest.approx(mixture - 0.5 * min(misfit.values()) + 0.5 * drift, rel=1e-6, abs=1e-6)
        assert where[h] == min(misfit, key=misfit.get)


def test_neyman_pearson_power_is_phi_of_separation_less_z():
    """Two simple hypotheses (a step at a known commit against a known line, 3 samples per commit, so
    every history has the same weights): power = Phi(d - z_(1-rate)), d = the separation in noise sd."""
    offset, within, factor, drift, at, m, n = 0.08, 0.03, 1.1, 0.10, 10, 20, 3000
    step = Scenario("s", offset_cv=offset, within_cv=within, step=factor, counts=((3, 1.0),), first_step=at,
                    last_step=at)
    line = Scenario("d", offset_cv=offset, within_cv=within, drift=drift, counts=((3, 1.0),))
    rng = np.random.default_rng(3)
    s_step, _ = bound.np_stats(bound.levels([simulate(step, rng) for _ in range(n)], step),
                               math.log(factor), math.log1p(drift), at, at)
    s_null, _ = bound.np_stats(bound.levels([simulate(line, rng) for _ in range(n)], line),
                               math.log(factor), math.log1p(drift), at, at)
    variance = math.log1p(offset ** 2) + math.log1p(within ** 2) / 3
    gap = math.log(factor) * (np.arange(m) >= at) - math.log1p(drift) * np.arange(m) / (m - 1)
    d = math.sqrt(_wrss(np.ones((m, 1)), gap, np.full(m, 1.0 / variance)))
    normal = NormalDist()
    for rate in (0.05, 0.2):
        z = normal.inv_cdf(1.0 - rate)
        expected = normal.cdf(d - z)
        assert 0.2 < expected < 0.9  # the comparison says something
        power = float(np.mean(s_step > bound.threshold(s_null, rate)))
        # Monte-Carlo error of the power, and of the threshold's quantile carried into the power; 4 sd each
        slack = 4 * math.sqrt(expected * (1 - expected) / n) + \
            4 * math.sqrt(rate * (1 - rate) / n) * normal.pdf(d - z) / normal.pdf(z)
        assert abs(power - expected) < slack, (rate, power, expected)


def test_threshold_is_the_smallest_with_at_most_the_rate_above():
    rng = np.random.default_rng(4)
    null = np.round(rng.normal(size=997), 1)  # ties included
    for rate in (0.01, 0.05, 0.3):
        thr = bound.threshold(null, rate)
        assert np.sum(null > thr) <= rate * null.size
        lower = null[null < thr]
        assert lower.size == 0 or np.sum(null > lower.max()) > rate * null.size
    with pytest.raises(ToolError, match="between 0 and 1"):
        bound.threshold(null, 1.0)


def test_levels_use_the_scenarios_variances():
    scenario = Scenario("x", offset_cv=0.02, within_cv=0.03, commits=3)
    history = History([[10.0, 20.0], None, [5.0]], [])
    lv = bound.levels([history], scenario)
    s_off, s_in = math.log1p(0.02 ** 2), math.log1p(0.03 ** 2)
    np.testing.assert_allclose(lv.y[0], [math.log(200.0) / 2, 0.0, math.log(5.0)])
    np.testing.assert_allclose(lv.w[0], [1 / (s_off + s_in / 2), 0.0, 1 / (s_off + s_in)])
    with pytest.raises(ToolError, match="outliers"):
        bound.levels([history], Scenario("o", outlier_rate=0.1, commits=3))


def test_frontier_keeps_its_false_rates():
    result = bound.frontier(trials=300, seed=0, drift_false=(0.05, 0.2), const_false=0.05, slopes=(0.0, 0.1, 0.2))
    assert list(result) == list(bound.TESTS)
    for test, cells in result.items():
        assert len(cells) == 2
        for cell, rate in zip(cells, (5.0, 20.0)):
            assert cell.found <= cell.detected
            assert cell.drift_false <= rate
            if not test.startswith("Neyman-Pearson"):
                assert cell.const_false <= 5.0
        assert cells[0].detected <= cells[1].detected or test == "Neyman-Pearson, any slope"
    assert all(c.slope in (0.0, 0.1, 0.2) for c in result["Neyman-Pearson, any slope"])


def test_bound_command_writes_only_its_block(tmp_path, capsys):
    doc = tmp_path / "d.md"
    doc.write_text("a\n<!-- evaluation:begin -->\nkept\n<!-- evaluation:end -->\nb\n"
                   "<!-- bound:begin -->\nOLD-BLOCK\n<!-- bound:end -->\nc\n")
    argv = ["--bound", "--trials", "100", "--drift-false", "0.1,0.5", "--const-false", "0.1", "--write", str(doc)]
    assert command.main(argv) == 0
    text = doc.read_text()
    assert "kept" in text and "OLD-BLOCK" not in text and text.endswith("<!-- bound:end -->\nc\n")
    assert "--bound --trials 100 --seed 0 --drift-false 0.1,0.5 --const-false 0.1" in text
    assert all(f"| {test} |" in text for test in bound.TESTS)


@pytest.mark.parametrize("argv, code, message", [
    (["--bound", "--trials", "0"], 2, "positive integer"),
    (["--bound", "--drift-false", "0.02,x"], 2, "not a number"),
    (["--bound", "--drift-false", "0.02,1.5"], 1, "between 0 and 1"),
    (["--bound", "--const-false", "0"], 1, "between 0 and 1"),
    (["--bound", "--trials", "50"], 1, "at least 1000 needed"),
    (["--bound", "--trials", "100", "--drift-false", "0.1", "--const-false", "0.1", "--write", "{doc}"], 1,
     "no '<!-- bound:begin -->'"),
])
def test_bad_bound_input_is_one_error_line(argv, code, message, tmp_path, capsys):
    doc = tmp_path / "plain.md"
    doc.write_text("no markers\n")
    argv = [a.replace("{doc}", str(doc)) for a in argv]
    from tools import cli
    if code == 2:
        with pytest.raises(SystemExit) as exc:
            cli.run(command.main, argv)
        assert exc.value.code == 2
    else:
        assert cli.run(command.main, argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "error:" in err[-1] and message in err[-1]
    assert not any("Traceback" in line for line in err)
    if code == 1:
        assert len(err) == 1
