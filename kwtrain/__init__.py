"""Keyword model tooling: data preparation, MFCC features, training, and export to a .eim file.

The runtime pieces (`eim_server`, and the feature and network code packed into an exported
model) need numpy only, so an exported .eim runs on the device without torch.
"""
