"""Time per call (asv shows it in ms) of forward and forward+backward, per implementation and shape.

Cases are built without a warm-up call of their own: the sampler's first call (measured, then
discarded) is it (compilation, kernel selection, caches); a crash there is a failure, not a skip.

On a GPU the main series is the call's time on the GPU (CUDA events around back-to-back calls,
L2 flushed before each where the working set fits in it: benchmarks/timing.py). Two GPU-only
series at the smallest length, where an implementation's host path can outweigh its kernels:
``TimeForwardSynced`` (wall time of a call and a device sync: what an eager caller pays) and
``TimeForwardGraph`` (the call replayed from a CUDA graph: the GPU time without the host path).
"""
from . import common


class TimeForward(common.Timed):
    """Forward pass under no_grad."""

    params = common.shape_params()
    param_names = common.SHAPE_PARAM_NAMES

    def setup(self, *params):
        self.sampler = common.sampler(("forward", *params), lambda: common.AttentionCase(*params, warmup=False).workload())

    def time_forward(self, *params):
        self.sampler.sample()


class TimeForwardBackward(common.Timed):
    """Forward and backward (gradients of q, k, v and any parameters)."""

    params = common.shape_params(common.PROFILE.backward_seq_lens)
    param_names = common.SHAPE_PARAM_NAMES

    def setup(self, *params):
        self.sampler = common.sampler(("forward_backward", *params),
                                      lambda: common.AttentionCase(*params, backward=True, warmup=False).workload())

    def time_forward_backward(self, *params):
        self.sampler.sample()


if common.DEVICE == "cuda":

    class TimeForwardSynced(common.Timed):
        """Wall time of one forward plus ``torch.cuda.synchronize``: host path, launches and the
        sync, as an eager caller pays them (not comparable with TimeForward's GPU time)."""

        params = common.shape_params(common.PROFILE.seq_lens[:1])
        param_names = common.SHAPE_PARAM_NAMES

        def setup(self, *params):
            self.sampler = common.sampler(("forward", *params),
                                          lambda: common.AttentionCase(*params, warmup=False).workload(), "synced")

        def time_forward_synced(self, *params):
            self.sampler.sample()

    class TimeForwardGraph(common.Timed):
        """One forward captured in a CUDA graph, replays timed like TimeForward: the GPU time
        of an implementation whose host path dominates; a call that cannot be captured is a skip."""

        params = common.shape_params(common.PROFILE.seq_lens[:1])
        param_names = common.SHAPE_PARAM_NAMES

        def setup(self, *params):
            self.sampler = common.sampler(("forward", *params),
                                          lambda: common.AttentionCase(*params, warmup=False).workload(), "graph")

        def time_forward_graph(self, *params):
            self.sampler.sample()
