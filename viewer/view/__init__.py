"""Viewing logic without Qt: monitor, status text, headless output, statistics, overlays, imaging."""
