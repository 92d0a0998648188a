"""Changeover: the product (recipe) a camera inspects, changed while the line runs."""

from __future__ import annotations

from inspector.errors import InspectorError


class RecipeError(InspectorError):
    """No such recipe; the camera keeps the one it has."""
