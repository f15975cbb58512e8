"""The three scanner protocols of the benchmark, as data.

`source` is the paper's legacy protocol (2D TSE FLAIR, 6 mm slices). `target` is a new protocol
whose change is as large as real protocol changes are: another FLAIR sequence (3D variable flip
angle, with its flat GM/WM contrast and lower lesion contrast), another reconstruction filter, a
nonlinear intensity response, CSF-flow artefacts the source never shows, and another T1 sequence.
`mild` is the original recipe's target (the same 2D TSE family at 3 mm), where adaptation should
hardly matter. docs/benchmark.md explains and measures every field.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError


@dataclass(frozen=True)
class FlairSequence:
    """Inversion-recovery FLAIR timing in ms.

    `te_ms` is the echo time that sets the T2 weighting: the TE of a 2D TSE, the "equivalent TE"
    of a 3D variable-flip-angle train (its refocusing keeps stimulated echoes, so the T2 decay is
    much slower than its effective TE suggests). `readout_ms` is the time the magnetisation is
    spent in the echo train, lost to recovery: S ~ |1 - 2 e^(-TI/T1) + e^(-(TR - readout)/T1)|.
    """

    kind: str
    tr_ms: float
    te_ms: float
    ti_ms: float
    readout_ms: float = 0.0


@dataclass(frozen=True)
class T1Protocol:
    """The T1-weighted scan: tissue intensities relative to the template's (WM 222, GM 166,
    CSF 69 of 255) remix the template contrast; always 1 mm isotropic."""

    kind: str
    wm: float = 222 / 255
    gm: float = 166 / 255
    csf: float = 69 / 255
    snr: tuple[float, float] = (30.0, 45.0)
    bias_sigma: float = 0.10
    gain: tuple[float, float] = (800.0, 1200.0)  # scanner units of the WM


@dataclass(frozen=True)
class Domain:
    """One acquisition protocol: the FLAIR grid, sequence, reconstruction and artefacts, the T1."""

    name: str
    description: str
    flair_spacing: tuple[float, float, float]  # SimpleITK order (x, y, z), mm
    slice_thickness: tuple[float, float]  # mm, per subject; thinner than the spacing = a gap
    sequence: FlairSequence
    snr: tuple[float, float]  # median WM signal / noise sigma, before reconstruction filtering
    bias_sigma: float  # std of the order-3 Legendre coefficients of the log bias field
    psf_sigma_mm: float  # in-plane acquisition blur (before noise)
    recon_sigma_mm: float = 0.0  # in-plane reconstruction filter (after noise, on complex data)
    response_knee: tuple[float, float] | None = None  # soft-knee saturation, in units of WM
    csf_flow_blobs: tuple[int, int] = (0, 0)  # unlabelled CSF inflow hyperintensities
    gain: tuple[float, float] = (250.0, 600.0)  # scanner units of the WM
    t1: T1Protocol = T1Protocol("mprage-template")

    @property
    def slice_spacing(self) -> float:
        return self.flair_spacing[2]


SOURCE = Domain(
    name="source",
    description="legacy 2D TSE FLAIR 8000/120/2200 ms, 1x1.2x6 mm, low SNR, strong bias",
    flair_spacing=(1.0, 1.2, 6.0),
    slice_thickness=(5.0, 6.0),
    sequence=FlairSequence("2d-tse", tr_ms=8000.0, te_ms=120.0, ti_ms=2200.0),
    snr=(12.0, 20.0),
    bias_sigma=0.30,
    psf_sigma_mm=0.4,
    gain=(250.0, 600.0),
)

TARGET = Domain(
    name="target",
    description="3D variable-flip-angle FLAIR 6000/TEeq 110/1800 ms, 1x1.2x3 mm, smoothing "
                "reconstruction filter, soft-knee intensity response, CSF-flow artefacts, "
                "MPRAGE-like T1 with stronger GM/WM contrast",
    flair_spacing=(1.0, 1.2, 3.0),
    slice_thickness=(3.0, 3.0),
    sequence=FlairSequence("3d-vfa", tr_ms=6000.0, te_ms=110.0, ti_ms=1800.0, readout_ms=800.0),
    snr=(10.0, 16.0),
    bias_sigma=0.15,
    psf_sigma_mm=0.4,
    recon_sigma_mm=1.0,
    response_knee=(1.5, 2.5),
    csf_flow_blobs=(2, 6),
    gain=(1500.0, 3000.0),
    t1=T1Protocol("mprage-high-contrast", wm=222 / 255, gm=140 / 255, csf=40 / 255,
                  snr=(25.0, 35.0), bias_sigma=0.15, gain=(2000.0, 3000.0)),
)

MILD = Domain(
    name="mild",
    description="the original recipe's target: 2D TSE FLAIR 9000/90/2500 ms, 1x1.2x3 mm, "
                "higher SNR, weaker bias",
    flair_spacing=(1.0, 1.2, 3.0),
    slice_thickness=(3.0, 3.0),
    sequence=FlairSequence("2d-tse", tr_ms=9000.0, te_ms=90.0, ti_ms=2500.0),
    snr=(25.0, 40.0),
    bias_sigma=0.15,
    psf_sigma_mm=0.4,
    gain=(300.0, 700.0),
)

DOMAINS: dict[str, Domain] = {d.name: d for d in (SOURCE, TARGET, MILD)}
DOMAIN_CODES = {"source": 1, "target": 2, "mild": 3}  # stable, seeds the acquisition stream


def get_domain(name: str) -> Domain:
    """The domain called `name`, or an InputError listing the known ones."""
    if name not in DOMAINS:
        raise InputError("--domain", f"unknown domain {name!r}; choose one of {', '.join(DOMAINS)}")
    return DOMAINS[name]
