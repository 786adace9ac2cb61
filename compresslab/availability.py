"""Whether something can run on this machine, and why (not): shared by samplers and methods.

It sits below both ``compress/`` and ``energy/`` so that neither imports the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Availability:
    """Whether a backend (sampler, compression method, knob) can run here, and why (not)."""

    available: bool
    reason: str

    def __bool__(self) -> bool:
        return self.available
