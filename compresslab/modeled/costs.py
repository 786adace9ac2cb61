"""The modeled tier's prices: energy per counted operation and byte moved (no measurement).

Counted operations (:func:`compresslab.modeled.ops.count_ops`) times fixed 45 nm energies per
operation and per byte give joules per inference by component. Deterministic: it ranks
variants and gates a change on any machine; :mod:`compresslab.modeled.calibration` fits the
prices to one machine's measurements.
"""

from __future__ import annotations

from dataclasses import dataclass

from compresslab.records import OpCounts

_PJ = 1e-12


@dataclass(frozen=True)
class EnergyTable:
    """Energy per operation and per byte moved, with where the figures come from."""

    source: str
    pj_per_mac: dict[str, float]
    pj_per_byte_dram: float
    pj_per_byte_sram: float


HOROWITZ_45NM = EnergyTable(
    source="M. Horowitz, ISSCC 2014, 45 nm (bf16 priced as fp16; int8 MACs accumulate in int32)",
    pj_per_mac={"fp32": 3.7 + 0.9, "fp16": 1.1 + 0.4, "bf16": 1.1 + 0.4, "int8": 0.2 + 0.1},
    pj_per_byte_dram=1950.0 / 8,
    pj_per_byte_sram=10.0 / 8,
)


def modeled_j_per_inference(
    counts: OpCounts, *, batch_size: int, table: EnergyTable = HOROWITZ_45NM
) -> dict[str, float]:
    """Joules per inference by component: ``compute``, ``dram`` and ``sram``.

    Weights are read from DRAM once per batch (so their cost per inference falls with the batch
    size); inputs come from DRAM; layer outputs are written to and read back from SRAM.
    """
    compute_pj = sum(n * table.pj_per_mac[cls] for cls, n in counts.macs.items())
    dram_pj = (
        counts.weight_bytes / batch_size + counts.input_bytes_per_example
    ) * table.pj_per_byte_dram
    sram_pj = 2 * counts.activation_bytes_per_example * table.pj_per_byte_sram
    return {"compute": compute_pj * _PJ, "dram": dram_pj * _PJ, "sram": sram_pj * _PJ}
