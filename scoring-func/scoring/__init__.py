"""Helpers of the scoring entry script (scoring-func/score_audio.py).

A package, not flat modules, because both `edgeml/` and `scoring-func/` sit on the test path and
flat names (`audio`, `models`, ...) would clash. Data flows one way:
request body -> `bodies` (decode + validate to 16 kHz mono float32) -> engine (`ctc` / `whisper`)
-> `service` (answer or JSON error).
"""
