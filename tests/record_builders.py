"""Typed records to test with: an energy result and a whole evaluation, with every part set."""

from __future__ import annotations

from compresslab.records import (
    Answer,
    Contention,
    EnergyResult,
    Evaluation,
    OpCounts,
    PairedRatio,
    PartTime,
    Profile,
    Provenance,
    Quality,
)


def energy(j: float = 1e-3, **kw: object) -> EnergyResult:
    base: dict[str, object] = dict(
        sampler="estimate",
        provenance=Provenance.ESTIMATED,
        energy_j_per_inference=j,
        std_j_per_inference=j / 10,
        ci95_j_per_inference=j / 20,
        windows=3,
        n_inferences=300,
        batch_size=100,
        latency_s_per_batch=0.01,
        duration_s=1.5,
        window_j_per_inference=(j, j, j),
        components_j_per_inference={"cpu": j},
        component_provenance={"cpu": "estimated"},
        gross_j_per_inference=j,
        idle_power_w=0.0,
        idle_measured=False,
        update_period_s=0.0,
        window_s=0.5,
        latency_p50_s_per_batch=0.01,
        latency_p95_s_per_batch=0.012,
        throughput_per_s=1e4,
        contention=Contention(foreign_cpus_mean=0.2, observed=True),
    )
    base.update(kw)
    return EnergyResult(**base)  # type: ignore[arg-type]


def evaluation() -> Evaluation:
    return Evaluation(
        metric=0.98,
        metric_ci95=(0.96, 0.99),
        energy=energy(),
        vs_baseline=PairedRatio(ratio=0.5, ci95_low=0.45, ci95_high=0.55, pairs=4),
        reference_energy=energy(2e-3),
        modeled_j_per_inference=4e-4,
        profile=Profile(n_params=10, macs_per_inference=1e5, size_bytes=40, sparsity=0.0),
        op_counts=OpCounts(macs={"fp32": 1e5}, weight_bytes=40.0, batch_size=100),
        notes=("kept conv1 in float",),
        quality=Quality(perplexity=3.0, perplexity_ci95=(2.9, 3.1)),
        answers=(Answer("2+2?", "4"),),
        phases={"prefill": energy(5e-4)},
        parts={"build": PartTime(wall_s=1.0, cpu_s=0.5, rss_gb=0.1)},
    )
