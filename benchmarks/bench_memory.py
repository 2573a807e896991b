"""Peak memory of one forward pass, in MiB: the CUDA allocator's peak, or CPU process figures.

Only the class that describes this machine's device is defined, so a CPU run records no
GPU-only placeholders (and the reverse).
"""
from . import common

PARAMS = common.shape_params(common.PROFILE.memory_seq_lens, causals=common.PROFILE.detail_causals)

if common.DEVICE == "cuda":

    class CudaPeakMemory:
        """torch.cuda.max_memory_allocated during one forward after a reset (inputs included)."""

        params = PARAMS
        param_names = common.SHAPE_PARAM_NAMES
        unit = "MiB"

        def setup(self, *params):
            self.case = common.AttentionCase(*params)

        def track_peak_allocated(self, *params):
            return common.cuda_peak_allocated_mib(self.case.run)

else:

    class CpuPeakMemory:
        """``track_rss_growth``: how far one forward lifts the process RSS above its level before
        (first full-size call after a small warm-up; a lower bound of its extra memory, inputs excluded).
        ``peakmem_forward``: asv's whole-process peak RSS, interpreter and torch included.
        """

        params = PARAMS
        param_names = common.SHAPE_PARAM_NAMES
        unit = "MiB"

        def setup(self, *params):
            self.case = common.memory_case(*params)

        def track_rss_growth(self, *params):
            return common.cpu_peak_growth_mib(self.case.forward)

        def peakmem_forward(self, *params):
            self.case.forward()
