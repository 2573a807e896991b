"""Standard profile on CPU: ImprovedDilatedAttention vs DilatedAttention, time at 8K, memory 2K..16K.

Defined only under ATTNBENCH_PROFILE=standard (it is a showcase sweep, too slow for quick).
"""
from . import common

PAIR = ["DilatedAttention", "ImprovedDilatedAttention"]
SHAPE = dict(batch=1, heads=6, head_dim=64, dtype="float32", causal=False)
# Both compute the same query-key pairs, so the gap is the per-segment work the plain version
# does in Python: small with LongNet's long segments (few of them), large with many short ones.
SEGMENTS = {"2048,4096,8192": (2048, 4096, 8192), "256,512,1024": (256, 512, 1024)}


def _case(name: str, seq_len: int, segments: str = "2048,4096,8192") -> common.AttentionCase:
    s = SHAPE
    return common.AttentionCase(name, seq_len, s["batch"], s["heads"], s["head_dim"], s["dtype"],
                                s["causal"], segment_lengths=SEGMENTS[segments])


if common.PROFILE.name == "standard":

    class DilatedVsImprovedTime(common.Timed):
        params = [PAIR, [8192], list(SEGMENTS)]
        param_names = ["implementation", "seq_len", "segments"]

        def setup(self, name, seq_len, segments):
            self.sampler = common.sampler(("dilated_vs_improved", name, seq_len, segments),
                                          lambda: _case(name, seq_len, segments).workload())

        def time_forward(self, name, seq_len, segments):
            self.sampler.sample()

    class DilatedVsImprovedMemory:
        """CPU: rise of the process RSS over the first full-size forward, after a small warm-up (MiB)."""

        params = [PAIR, [2048, 4096, 8192, 16384]]
        param_names = ["implementation", "seq_len"]
        unit = "MiB"
        rounds = 1

        def setup(self, name, seq_len):
            if common.DEVICE != "cpu":
                common.skip("a CPU comparison; GPU memory is in CudaPeakMemory")
            s = SHAPE
            self.case = common.memory_case(name, seq_len, s["batch"], s["heads"], s["head_dim"],
                                           s["dtype"], s["causal"])

        def track_rss_growth(self, name, seq_len):
            return common.cpu_peak_growth_mib(self.case.forward)
