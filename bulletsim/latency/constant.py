"""A hand-checkable latency model for tests and queueing sanity checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from bulletsim.core import CoRunner, WorkShape


@dataclass(frozen=True, slots=True)
class ConstantLatency:
    """t = step_s + prefill_token_s * prefill_tokens + decode_token_s * decode_tokens.

    A layer window of k layers costs k / num_layers of that. With `scale_with_sms`, time
    grows as total_sms / num_sms (perfect linear scaling), so split decisions are checkable
    by hand; co-runners never slow anything down.
    """

    step_s: float = 0.0
    prefill_token_s: float = 0.0
    decode_token_s: float = 0.0
    num_layers: int = 32
    total_sms: int = 132
    scale_with_sms: bool = False
    name: str = "constant"

    def predict(self, shape: WorkShape, num_sms: int, co_runner: CoRunner | None = None) -> float:
        t = (
            self.step_s
            + self.prefill_token_s * shape.prefill_tokens
            + self.decode_token_s * shape.decode_tokens
        )
        if shape.num_layers is not None:
            t *= shape.num_layers / self.num_layers
        if self.scale_with_sms:
            t *= self.total_sms / max(num_sms, 1)
        return t

    def describe(self) -> dict:
        return {"kind": "constant", **asdict(self)}
