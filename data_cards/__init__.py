"""Data card templates and the renderer that fills them from a build."""
