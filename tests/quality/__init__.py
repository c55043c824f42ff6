"""Quality replays of real crowd data: ``python -m tests.quality.quality``."""
