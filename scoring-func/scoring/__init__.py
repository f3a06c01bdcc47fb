"""Helpers of the scoring entry script (scoring-func/score_audio.py).

Azure ML uploads scoring-func/ as the deployment's code and azmlinfsrv loads the entry script by
path; the script puts its own folder on sys.path, so this package needs nothing else of the
project. In the development environment it is also installed (`pip install -e .`), so tests and
benchmarks import it like any package. Data flows one way:
request body -> `bodies` (decode + validate to 16 kHz mono float32) -> engine (`ctc` / `whisper`)
-> `service` (answer or JSON error).
"""
