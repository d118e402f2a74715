"""Browser demo: draw or upload a digit, see what every trained model makes of it.

    python -m mnist_gen.app                                        # the bundled default model
    python -m mnist_gen.app --models multirun/paper_cpu            # every run under a sweep
    python -m mnist_gen.app --models outputs/train/cnn_32/seed0/<time> --port 7860

Why not Gradio: it would add a very large dependency tree (a front-end bundle, an analytics
client) for one page with one canvas and a few bars. The demo is instead a single HTML page
(``static/index.html``: a ``<canvas>`` with pointer events for mouse, pen and touch, a file input,
plain HTML/CSS bar charts) and three JSON endpoints on Starlette + uvicorn (``server``: HTTP and
the command line; ``service``: the application without HTTP; ``images``: bounded decoding). It
starts in seconds, binds 127.0.0.1 by default, holds up under parallel load, and is driven end to
end by the tests in headless Chromium.

Faithfulness: drawings and uploads go through exactly the evaluation pipeline
(``mnist_gen.preprocess.to_mnist`` with ``configs/preprocess/mnist_like.yaml``, on the Pillow image
decoded from memory just as evaluation decodes files), and models load through ``predict.py``'s
loader, so the page shows what ``predict.py`` and ``evaluate.py`` would answer for the same image.
"""

from mnist_gen.app.server import create_app, main, make_server
from mnist_gen.app.service import DemoApp

__all__ = ["DemoApp", "create_app", "make_server", "main"]
