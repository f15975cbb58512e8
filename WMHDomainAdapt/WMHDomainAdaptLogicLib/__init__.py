"""MRML-level logic of the WMHDomainAdapt Slicer module, kept free of qt and slicer.app.

Everything here takes the scene or the nodes as arguments, so the same code runs inside Slicer and
in CI against real MRML from the `slicer-core` wheel. The module file `WMHDomainAdapt.py` only wires
these functions to widgets.

Modules: `volumes` (volume node <-> SimpleITK image with exact geometry), `segmentation` (the "WMH"
segmentation node, labelmap export on the FLAIR grid, .seg.nrrd), `adaptation_set` (corrected cases
on disk plus manifest), `registry` (shipped and adapted models), `worker` (command lines, PROGRESS
parsing, the child process), `operations` (segment and adapt, end to end), `dependencies`.
"""
