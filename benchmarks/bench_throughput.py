"""Throughput: tokens/s and effective TFLOP/s (pairs from the registry, FLOPs from attention.spec).

Each figure divides by the median of the profile's ``throughput_repeats`` synchronised calls made
after setup's warm-up.
Effective FLOPs: 4 * batch * head_dim * pairs forward, x3.5 for forward+backward.
"""
from . import common

PARAMS = common.shape_params(common.PROFILE.throughput_seq_lens, causals=common.PROFILE.detail_causals)


class ForwardThroughput:
    params = PARAMS
    param_names = common.SHAPE_PARAM_NAMES

    def setup(self, *params):
        self.case = common.AttentionCase(*params)
        self.flops = self.case.flops(backward=False)

    def track_tokens_per_s(self, *params):
        return self.case.spec.batch * self.case.spec.seq_len / (self.case.median_ms(common.PROFILE.throughput_repeats) / 1e3)

    track_tokens_per_s.unit = "tokens/s"

    def track_tflops(self, *params):
        return self.flops / (self.case.median_ms(common.PROFILE.throughput_repeats) / 1e3) / 1e12

    track_tflops.unit = "TFLOP/s"


class ForwardBackwardThroughput:
    params = PARAMS
    param_names = common.SHAPE_PARAM_NAMES

    def setup(self, *params):
        self.case = common.AttentionCase(*params, backward=True)
        self.flops = self.case.flops(backward=True)

    def track_tflops(self, *params):
        return self.flops / (self.case.median_ms(common.PROFILE.throughput_repeats) / 1e3) / 1e12

    track_tflops.unit = "TFLOP/s"
