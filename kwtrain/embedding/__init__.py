"""The speech-embedding front end (the default): a frozen pretrained embedding and a small head.

    onnxfiles  the ONNX files' names, checksums, licence and source (imports nothing of kwtrain)
    onnxparts  the .eim's runtime files derived from the two originals (trainer side, needs onnx)
    frontend   mel frames and embeddings, whole clips and streams (numpy + onnxruntime)
    head       the classifier on the embeddings, its model file, numpy forward pass
    runtime    the .eim's impulse (streaming front end + head)
    train      the training pipeline (synthetic voices into real background, calibration)
    export     the .eim (numpy + onnxruntime on the device)
    cli        the options and run of `kwtrain build` with this front end

Importing this package imports nothing: an exported .eim carries it with its runtime modules.
"""
