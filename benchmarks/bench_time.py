"""Wall time (asv shows it in ms) of forward and forward+backward, per implementation and shape."""
from . import common


class TimeForward(common.Timed):
    """Forward pass under no_grad, device synchronised."""

    params = common.shape_params()
    param_names = common.SHAPE_PARAM_NAMES

    def setup(self, *params):
        self.case = common.AttentionCase(*params)

    def time_forward(self, *params):
        self.case.run()


class TimeForwardBackward(common.Timed):
    """Forward and backward (gradients of q, k, v and any parameters), device synchronised."""

    params = common.shape_params(common.PROFILE.backward_seq_lens)
    param_names = common.SHAPE_PARAM_NAMES

    def setup(self, *params):
        self.case = common.AttentionCase(*params, backward=True)

    def time_forward_backward(self, *params):
        self.case.run()
