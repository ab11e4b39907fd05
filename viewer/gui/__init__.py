"""The window: the only modules that import PyQt6."""
