"""Showing a result: the probability map as a coloured overlay on its FLAIR in every slice view.

Slice views show a background and a foreground volume per slice composite node; putting the FLAIR
behind and the probability in front (half transparent, values under 0.1 hidden) needs no Qt, so it
runs, and is tested, on a bare MRML scene. In Slicer the views update at once.
"""

from __future__ import annotations

PROBABILITY_COLORS = ("vtkMRMLColorTableNodeRainbow", "vtkMRMLColorTableNodeFileColdToHotRainbow.txt")
OVERLAY_OPACITY = 0.5
HIDDEN_BELOW = 0.1  # probabilities this low are background, not worth colouring


def style_probability(probability_node) -> None:
    """Probabilities in [0, 1] on a rainbow scale, the lowest ones transparent."""
    if probability_node.GetDisplayNode() is None:
        probability_node.CreateDefaultDisplayNodes()
    display = probability_node.GetDisplayNode()
    scene = probability_node.GetScene()
    color = next((scene.GetNodeByID(i) for i in PROBABILITY_COLORS if scene.GetNodeByID(i)), None)
    if color is not None:
        display.SetAndObserveColorNodeID(color.GetID())
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, 1.0)
    display.SetThreshold(HIDDEN_BELOW, 1.0)
    display.ApplyThresholdOn()


def show_probability_overlay(scene, probability_node, flair_node) -> int:
    """FLAIR behind, probability in front in every slice view; returns the number of views set."""
    style_probability(probability_node)
    views = list(scene.GetNodesByClass("vtkMRMLSliceCompositeNode"))
    for composite in views:
        composite.SetBackgroundVolumeID(flair_node.GetID())
        composite.SetForegroundVolumeID(probability_node.GetID())
        composite.SetForegroundOpacity(OVERLAY_OPACITY)
    return len(views)
