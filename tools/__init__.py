"""Command-line tools (run them from the repository root: ``python tools/<tool>.py``)."""
