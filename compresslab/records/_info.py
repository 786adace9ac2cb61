"""A study's context, typed: how it was run, on what, and what it learnt about itself.

:class:`StudyInfo` is the part of a :class:`~compresslab.records.SearchResult` that is not a
trial. It comes in two halves:

- what a search knows when it starts (the task, the samplers, the settings, the machine, the
  versions), stored with the study (:func:`compresslab.study.attrs.write_report_info`);
- what is read from the study as a whole each time it is read back (its sessions' own energy,
  the repeatability of the baseline, the parameters' importance, the calibrations, how
  prediction stood): :data:`STUDY_DERIVED` names them, and they are never stored as context.

Every field has a default, so a study written before a field existed still reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compresslab.records._evaluation import PartTime

#: The fields of :class:`StudyInfo` read from the study as a whole, not stored as its context.
STUDY_DERIVED = (
    "sessions",
    "repeatability",
    "importance",
    "calibrations",
    "prediction",
    "recipe_fields",
)


@dataclass(frozen=True)
class ProjectionSettings:
    """What the report's projections at scale assume (the recipe's ``report`` section)."""

    requests_per_s: float = 10.0
    price_per_kwh: float = 0.15
    currency: str = "USD"
    #: The run history's folder ("": the output folder; None: off).
    history: str | None = ""


@dataclass(frozen=True)
class CarbonIntensity:
    """How energy became carbon in the study: an intensity with its source, and a PUE."""

    region: str
    intensity_g_per_kwh: float
    source: str
    pue: float = 1.0


@dataclass(frozen=True)
class CpuFacts:
    """The CPU as compression sees it (:func:`compresslab.compress.capabilities`)."""

    model: str | None = None
    machine: str | None = None
    #: torch's CPU capability (``AVX512`` ...).
    torch_capability: str | None = None
    #: The CPU flags that matter to compression (None: not readable on this system).
    flags: dict[str, bool] | None = None


@dataclass(frozen=True)
class TorchFacts:
    """What the installed torch runs: bf16 kernels, quantized engines."""

    version: str | None = None
    bf16_runs: bool | None = None
    bf16_native: bool | None = None
    quantized_engines: tuple[str, ...] = ()
    quantized_engine: str | None = None


@dataclass(frozen=True)
class CudaFacts:
    """The CUDA device, when one is usable."""

    name: str = ""
    capability: str = ""
    bf16: bool = False


@dataclass(frozen=True)
class LibraryFacts:
    """An optional library: installed (or imported), its version, why it failed to import."""

    installed: bool | None = None
    imports: bool | None = None
    version: str | None = None
    error: str | None = None

    @property
    def present(self) -> bool:
        """Whether it imports or, when only looked up, is installed."""
        return bool(self.imports or self.installed)


@dataclass(frozen=True)
class Capabilities:
    """What the machine offered compression when the study ran."""

    device: str | None = None
    cpu: CpuFacts = field(default_factory=CpuFacts)
    torch: TorchFacts = field(default_factory=TorchFacts)
    cuda: CudaFacts | None = None
    libraries: dict[str, LibraryFacts] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionEnergy:
    """One search session's own energy (:mod:`compresslab.study.sessions`), and its state.

    ``state`` is ``finished``, ``running`` or ``killed``: an unfinished session's energy is
    that of its last checkpoint. ``parts`` is what it spent outside trials (set-up,
    confirmation); ``coefficients`` the estimate sampler's watts per core and per GB that
    priced it (None: another sampler).
    """

    session: str = ""
    energy_j: float = 0.0
    duration_s: float = 0.0
    provenance: str = "unknown"
    host: str | None = None
    worker: str | None = None
    pid: int | None = None
    started: str = ""
    updated: str = ""
    checkpoints: int = 0
    finished: bool = True
    outcome: str | None = None
    state: str = "finished"
    parts: dict[str, PartTime] = field(default_factory=dict)
    coefficients: dict[str, float] | None = None


@dataclass(frozen=True)
class Repeatability:
    """How much one absolute measurement of the baseline moved between measurements.

    ``cv`` over the ``n`` times the baseline was measured beside a variant; ``ci95_rel`` the
    relative 95% half-width of a prediction interval for one more measurement.
    """

    cv: float
    n: int
    ci95_rel: float


@dataclass(frozen=True)
class Importance:
    """The share of the variance each parameter explains (fANOVA), per objective.

    Each mapping is parameter name -> share; the shares of one objective sum to 1.
    """

    accuracy: dict[str, float]
    energy: dict[str, float]


@dataclass(frozen=True)
class HeldOut:
    """How well a calibration predicted variants left out of its fit, one at a time."""

    n: int
    spearman: float
    median_error_rel: float
    error_rel: float
    max_error_rel: float


@dataclass(frozen=True)
class CalibrationSummary:
    """A calibration of the energy model stored with the study (one per machine).

    ``coefficients`` are joules per unit of each feature; ``identified`` the features some
    fitted variant used; ``loo`` None below three variants. The full model (to predict with)
    is :class:`compresslab.modeled.calibration.Calibration`.
    """

    n: int
    coefficients: dict[str, float] = field(default_factory=dict)
    identified: tuple[str, ...] = ()
    machine: dict[str, str] = field(default_factory=dict)
    loo: HeldOut | None = None
    target: str = "J per inference"
    fitted_at: float = 0.0
    trials: tuple[int, ...] = ()


@dataclass(frozen=True)
class PredictionStatus:
    """How prediction stood at the end of the study's last session, in words."""

    status: str = ""


@dataclass(frozen=True)
class StudyInfo:
    """Everything a report states about a study besides its trials (see the module).

    Attributes:
        task: what ran, in words.
        metric: the recipe's metric (``accuracy`` ...).
        eval_examples: examples in the evaluation split.
        unit: what one inference is to the task's users (``inference``, ``generated token``).
        tokens_per_inference: generated tokens per inference, for a task that declares it.
        task_info: the task's own facts (split sizes, categories ...).
        optuna_sampler: Optuna's sampler (``tpe``, ``grid`` ...), and why it was chosen.
        sampler_selection: which energy samplers were tried, and which was used.
        sampler_metadata: what the energy sampler's figures cover.
        seed: the search's seed.
        trials_requested: the budget of distinct variants.
        batch_size: the measurement's batch size.
        tolerance: the accuracy tolerance, in words.
        recipe_hash: the hash of what in the recipe decides results.
        skipped_methods: compression methods this machine cannot run, with the reason.
        left_out: values left out of the search for this model and data, with the reason.
        carbon: the carbon intensity (None: none set).
        projection: the projections' request rate and price.
        machine: the machine's fingerprint (host, CPU model ...).
        versions: Python's and each library's version (None: not installed).
        capabilities: what the machine offered compression (None: not recorded).
        sessions: each search session's own energy (read from the study).
        repeatability: the baseline's spread between measurements (None: fewer than three).
        importance: which parameters mattered (None: too few variants).
        calibrations: the stored calibrations of the energy model, by machine id.
        prediction: how prediction stood at the end of the last session.
        recipe_fields: the stored recipe's fields that decide results (a study read without
            its recipe file), to warn when two compared studies differ in them.
    """

    task: str = ""
    metric: str = "accuracy"
    eval_examples: int | None = None
    unit: str = "inference"
    tokens_per_inference: float | None = None
    task_info: dict[str, str] = field(default_factory=dict)
    optuna_sampler: str | None = None
    optuna_sampler_reason: str = "-"
    sampler_selection: str = "-"
    sampler_metadata: dict[str, str] = field(default_factory=dict)
    seed: int | None = None
    trials_requested: int | None = None
    batch_size: int | None = None
    tolerance: str = ""
    recipe_hash: str | None = None
    skipped_methods: dict[str, str] = field(default_factory=dict)
    left_out: dict[str, str] = field(default_factory=dict)
    carbon: CarbonIntensity | None = None
    projection: ProjectionSettings = field(default_factory=ProjectionSettings)
    machine: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str | None] = field(default_factory=dict)
    capabilities: Capabilities | None = None
    # --- read from the study as a whole (STUDY_DERIVED) ---
    sessions: tuple[SessionEnergy, ...] = ()
    repeatability: Repeatability | None = None
    importance: Importance | None = None
    calibrations: dict[str, CalibrationSummary] = field(default_factory=dict)
    prediction: PredictionStatus | None = None
    recipe_fields: dict[str, object] | None = None
