"""WMHDomainAdaptLib: headless white-matter-hyperintensity segmentation and few-shot domain adaptation.

Implements Ghafoorian et al., "Transfer Learning for Domain Adaptation in MRI" (MICCAI 2017).
Nothing in this package imports Slicer: the Slicer module, the `wmhda` command line and the
tests all sit on top of it.
"""

__version__ = "0.1.0"
