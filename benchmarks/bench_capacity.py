"""Largest sequence that fits: doubling seq_len until out of memory (GPU only, tokens)."""
import time

import torch

from . import common


def _fits(name: str, seq_len: int, base_params: tuple) -> tuple[bool, float]:
    """(ran without OOM, seconds of the call) for one forward at ``seq_len``."""
    try:
        case = common.AttentionCase(name, seq_len, *base_params, warmup=False)
        start = time.perf_counter()
        case.forward()
        return True, time.perf_counter() - start
    except NotImplementedError:  # the implementation declines this length: the range ends here
        return False, 0.0
    except Exception as err:  # noqa: BLE001 - only OOM is an answer; anything else is re-raised
        if not common.is_out_of_memory(err):
            raise
        return False, 0.0
    finally:
        case = None
        torch.cuda.empty_cache()


# GPU only: on CPU the class is not defined at all (no placeholder results).
if common.DEVICE == "cuda":

    class LargestFit:
        """Largest power-of-two multiple of the profile's start length whose forward runs without OOM
        and within the profile's per-call limit (10 s), capped at the profile's cap (16M in full)."""

        params = [list(common.IMPLEMENTATIONS), list(common.PROFILE.dtypes), [False, True]]
        param_names = ["implementation", "dtype", "causal"]
        unit = "tokens"
        timeout = 1800
        rounds = 1

        def setup(self, name, dtype, causal):
            p = common.PROFILE
            self.base = (1, p.heads[0], p.head_dims[0], dtype, causal)
            common.AttentionCase(name, p.largest_fit_start, *self.base)  # skips what cannot run at all

        def track_largest_seq_len(self, name, dtype, causal):
            p = common.PROFILE
            largest = 0
            for seq_len in common.powers_of_two(p.largest_fit_start, p.largest_fit_cap):
                ok, seconds = _fits(name, seq_len, self.base)
                if not ok:
                    break
                largest = seq_len
                if seconds > p.largest_fit_call_limit_s:
                    break
            return largest
