"""Scenarios ported from third-party programs with the Keras adapter (each names its source)."""
