"""Sub-commands of `wmhda`; see `WMHDomainAdaptLib.cli`."""
