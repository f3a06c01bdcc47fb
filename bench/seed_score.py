"""The baseline of bench/scoring_bench.py: an entry script written the way the seed project's was.

`@input_schema` with a NumpyParameterType (the server converts the JSON list to a numpy array),
a JSON float list as the only body, fp32, autograd left on (no inference mode), the whole clip
in one pass. Kept only for comparison; the service is scoring-func/score_audio.py.
"""

import os

import numpy as np
import torch
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.standard_py_parameter_type import (
    StandardPythonParameterType,
)
from inference_schema.schema_decorators import input_schema, output_schema
from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor


def init():
    global model, processor
    name = os.getenv("MODEL_NAME_OR_PATH", "facebook/wav2vec2-base-960h")
    processor = Wav2Vec2Processor.from_pretrained(name)
    model = Wav2Vec2ForCTC.from_pretrained(name)


@input_schema("data", NumpyParameterType(np.array([0.0, 0.1, -0.1, 0.05], dtype=np.float64)))
@output_schema(StandardPythonParameterType({"result": "HELLO WORLD"}))
def run(data):
    input_values = processor(
        data, return_tensors="pt", padding="longest", sampling_rate=16000
    ).input_values
    logits = model(input_values).logits
    predicted_ids = torch.argmax(logits, dim=-1)
    return {"result": processor.batch_decode(predicted_ids)[0]}
