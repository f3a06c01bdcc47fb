"""edgeml: the device side of the voice-to-text system.

    microphone -> ring buffer -> keyword spotter -> recorder -> client -> endpoint
    sources.py    ringbuffer.py  spotter.py, edgeml.py  recorder.py  cloudml.py (via spool + delivery)

Run it as `edgeml` (the console command `pip install .` makes), `python -m edgeml`, or, as in
the write-up, `python main.py` inside this folder. docs/architecture.md is the code map.
"""

__version__ = "0.2.0"
