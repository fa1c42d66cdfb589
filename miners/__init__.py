"""Repository acquisition and the static/evolution miners."""
