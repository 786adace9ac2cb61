"""A machine's repeatability terms, of both kinds, and the one check that a term is this machine's.

A term says how far one figure moves between measurements on one machine and sampler tier,
beyond what the measurement's own interval covers. There are two kinds, kept in one store
(:class:`~compresslab.protocol.machine_store.MachineStore`):

- absolute figures (:class:`RepeatabilityTerm`, pooled by :func:`pooled`): the coefficient
  of variation of one measurement (:mod:`compresslab.protocol.repeatability`);
- paired ratios (:class:`RatioTerm`, pooled by :func:`pooled_ratio`): the spread of a span's
  log ratio beyond its pairs' own (:mod:`compresslab.protocol.ratio_repeatability`).

Both are a :class:`Term`: what they rest on, the relative 95% half-width they add, the tier
and machine they were measured on, and where they come from in words. A term of another
machine is never used silently (:meth:`Term.source_for`), and a store file of another
machine is never read (:class:`~compresslab.protocol.machine_store.MachineStore`): both ask
:func:`other_machine`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from compresslab.errors import OtherMachineError
from compresslab.machine import describe_machine, fingerprint, machine_id
from compresslab.stats import t95

log = logging.getLogger(__name__)

#: What a result says when no repeatability is known for its machine and tier.
UNKNOWN = (
    "unknown: this interval covers this run's windows only; measure again to learn the "
    "machine's repeatability"
)
#: What a paired result says when no ratio repeatability is known for its machine and tier.
RATIO_UNKNOWN = (
    "unknown: this interval covers this span's pairs only; confirm a study's frontier or "
    "measure the variant again to learn the machine's repeatability of ratios"
)
#: Measurements an absolute source needs before its spread counts.
MIN_VALUES = 3
#: Spans a ratio source needs before its spread counts (a confirmation has three rounds).
MIN_SPANS = 3


def tier_of(sampler: str, provenance: str) -> str:
    """The key a term is kept under besides the machine: sampler and provenance."""
    return f"{sampler}/{provenance}"


def utc_date(at: float) -> str:
    """The UTC date (``YYYY-MM-DD``) of a Unix time, as sources are named."""
    return dt.datetime.fromtimestamp(at, tz=dt.UTC).strftime("%Y-%m-%d")


def other_machine(machine: Mapping[str, str], here: Mapping[str, str]) -> str | None:
    """``machine`` in words when it is not ``here`` (None: the same machine).

    The one check of whose figures these are, for a term and for a store's file alike.
    """
    if machine_id(machine) == machine_id(here):
        return None
    return describe_machine(machine)


@dataclass(frozen=True, kw_only=True)
class Term:
    """A machine's repeatability of one kind and sampler tier (the kinds subclass it).

    Attributes:
        n: measurements (or spans) it rests on, in all sources.
        dof: degrees of freedom of the pooled spread (``n`` minus one per source).
        ci95_rel: relative 95% half-width it adds to one more figure.
        tier: the sampler tier (:func:`tier_of`).
        machine: the fingerprint of the machine it was measured on.
        source: where it comes from, in words.
    """

    n: int
    dof: int
    ci95_rel: float
    tier: str
    machine: dict[str, str]
    source: str

    #: The kind's key: ``absolute`` or ``ratio``.
    kind: ClassVar[str]
    #: The term in words, as messages name it.
    what: ClassVar[str]
    #: What a term of this kind widens, in words.
    widens: ClassVar[str]
    #: How to learn this machine's own term (ends a refusal's advice).
    learn: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return dataclasses.asdict(self)

    def source_for(
        self, tier: str, *, here: Mapping[str, str] | None, allow_other_machine: bool
    ) -> str:
        """The source a figure of ``tier`` measured ``here`` states after this term widened it.

        Args:
            tier: the figure's sampler tier.
            here: this machine's fingerprint (default: :func:`compresslab.machine.fingerprint`).
            allow_other_machine: use another machine's term anyway (with a warning, and the
                returned source says so).

        Raises:
            ValueError: the term is of another tier.
            OtherMachineError: another machine's term, and not ``allow_other_machine``.
        """
        if self.tier != tier:
            raise ValueError(f"a {self.what} of {self.tier} cannot widen a {tier} {self.widens}")
        here = here if here is not None else fingerprint()
        there = other_machine(self.machine, here)
        if there is None:
            return self.source
        message = (
            f"the {self.what} was measured on {there}, not on this machine, "
            f"{describe_machine(here)}: load and noise differ between machines"
        )
        if not allow_other_machine:
            raise OtherMachineError(
                f"{message}: {self.learn}, or pass allow_other_machine=True to use it anyway"
            )
        log.warning("%s; using it anyway, as asked", message)
        return f"ANOTHER MACHINE's term, used as asked: {self.source}"


@dataclass(frozen=True, kw_only=True)
class RepeatabilityTerm(Term):
    """The between-measurement spread of one machine's absolute figures, for one tier.

    Attributes:
        cv: pooled coefficient of variation of one measurement (``ci95_rel`` is the relative
            95% half-width of a prediction for one more measurement).
    """

    cv: float

    kind: ClassVar[str] = "absolute"
    what: ClassVar[str] = "repeatability term"
    widens: ClassVar[str] = "figure"
    learn: ClassVar[str] = "measure here again to learn this machine's term"


@dataclass(frozen=True, kw_only=True)
class RatioTerm(Term):
    """The between-span spread of one machine's paired log ratios, for one tier.

    Attributes:
        tau: standard deviation of a span's log ratio beyond its pairs' own scatter
            (``ci95_rel`` is ``t95(dof) x tau``, about the relative half-width for small values).
    """

    tau: float

    kind: ClassVar[str] = "ratio"
    what: ClassVar[str] = "ratio repeatability term"
    widens: ClassVar[str] = "ratio"
    learn: ClassVar[str] = "confirm a study or measure again here to learn this machine's term"


def _said(usable: list[dict[str, Any]]) -> str:
    """The sources in words, newest first (sorts ``usable`` so)."""
    usable.sort(key=lambda s: -float(s["at"]))
    return "; ".join(f"{s['what']}, {utc_date(float(s['at']))}" for s in usable)


def pooled(
    sources: list[dict[str, Any]], *, tier: str, machine: Mapping[str, str]
) -> RepeatabilityTerm | None:
    """The term of ``sources`` (each ``{"cv", "n", "what", "at"}``); None without any usable."""
    usable = [s for s in sources if int(s["n"]) >= MIN_VALUES and math.isfinite(float(s["cv"]))]
    if not usable:
        return None
    dof = sum(int(s["n"]) - 1 for s in usable)
    n = sum(int(s["n"]) for s in usable)
    spread = math.sqrt(sum((int(s["n"]) - 1) * float(s["cv"]) ** 2 for s in usable) / dof)
    source = (
        f"{_said(usable)}; on this machine, {describe_machine(machine)}; {tier}: CV "
        f"{100 * spread:.1f}% over {n} measurements"
    )
    return RepeatabilityTerm(
        cv=spread,
        n=n,
        dof=dof,
        ci95_rel=t95(dof) * spread * math.sqrt(1 + 1 / n),
        tier=tier,
        machine=dict(machine),
        source=source,
    )


def excess(logs: Sequence[float], within: Sequence[float]) -> float:
    """Between-span variance of ``logs`` in excess of the ``within`` variances (may be < 0)."""
    return statistics.variance(logs) - statistics.fmean(within)


def pooled_ratio(
    sources: list[dict[str, Any]], *, tier: str, machine: Mapping[str, str]
) -> RatioTerm | None:
    """The term of ``sources`` (each ``{"logs", "within", "what", "at"}``); None without any."""
    usable = [
        s
        for s in sources
        if len(s["logs"]) >= MIN_SPANS
        and len(s["within"]) == len(s["logs"])
        and all(math.isfinite(float(x)) for x in [*s["logs"], *s["within"]])
    ]
    if not usable:
        return None
    dof = sum(len(s["logs"]) - 1 for s in usable)
    n = sum(len(s["logs"]) for s in usable)
    moment = sum((len(s["logs"]) - 1) * excess(s["logs"], s["within"]) for s in usable) / dof
    tau = math.sqrt(max(0.0, moment))
    beyond = (
        f"log-ratio SD {100 * tau:.1f}% between spans beyond their pairs' own"
        if tau > 0
        else "no spread between spans beyond their pairs' own"
    )
    source = (
        f"{_said(usable)}; on this machine, {describe_machine(machine)}; {tier}: {beyond}, "
        f"over {n} spans"
    )
    return RatioTerm(
        tau=tau,
        n=n,
        dof=dof,
        ci95_rel=t95(dof) * tau,
        tier=tier,
        machine=dict(machine),
        source=source,
    )
