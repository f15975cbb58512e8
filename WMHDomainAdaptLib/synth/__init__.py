"""The synthetic two-domain T1 + FLAIR WMH benchmark (docs/benchmark.md).

Real anatomy (nilearn's MNI152 2009 template) under per-subject warps, simulated lesions, and
three scanner protocols: `source` (the paper's 6 mm 2D FLAIR), `target` (a strong but physically
plausible protocol change) and `mild` (a small one). Typical use:

    from WMHDomainAdaptLib.synth import generate_subject, write_split
    subject = generate_subject("target", seed=7, subject_id="sub007", fov="small")  # about 1 s
    cases = write_split("data/target_test", "target", n=20, seed=4)
"""

from .domains import DOMAINS, Domain, get_domain
from .generate import SyntheticSubject, generate_subject, write_subject
from .splits import PRESETS, SPLITS, write_preset, write_split
from .template import FIELDS_OF_VIEW, FieldOfView

__all__ = ["DOMAINS", "FIELDS_OF_VIEW", "PRESETS", "SPLITS", "Domain", "FieldOfView",
           "SyntheticSubject", "generate_subject", "get_domain", "write_preset", "write_split",
           "write_subject"]
