"""The MFCC + 1-D CNN front end (Edge Impulse Studio's keyword recipe, numpy only on the device).

    features  Edge Impulse's MFCC block, vectorised
    network   the 1-D CNN's numpy forward pass
    runtime   the model file and the .eim's impulse (features + network)
    train     training with torch (`kwtrain train`, `kwtrain build --frontend mfcc`)
    export    the .eim (needs numpy only)
    cli       the `train` command and the MFCC `build`

Kept apart from `kwtrain.embedding` (the default front end): the two share the runner protocol,
the dataset and clip tools and the .eim packaging in `kwtrain/`, and nothing else. Importing
this package imports nothing: an exported .eim carries it with its runtime modules.
"""
