"""Browser demo: draw or upload a digit, see what every trained model makes of it.

    python -m mnist_gen.app --models multirun/paper_cpu            # every run under a sweep
    python -m mnist_gen.app --models outputs/train/cnn_32/seed0/<time> --port 7860

Why not Gradio: it would add a very large dependency tree (a web framework, a front-end bundle,
an analytics client) for one page with one canvas and a few bars. The demo is instead a small
server on the standard library (``http.server.ThreadingHTTPServer``) that serves a single HTML
page (``static/index.html``: a ``<canvas>`` with pointer events for mouse, pen and touch, a file
input, plain HTML/CSS bar charts) and three JSON endpoints — see ``mnist_gen.app.server``. It
needs nothing beyond what the project already installs, starts in seconds, binds 127.0.0.1 by
default, and is driven end to end by the tests in headless Chromium.

Faithfulness: drawings and uploads go through exactly the evaluation pipeline
(``mnist_gen.preprocess.to_mnist`` with ``configs/preprocess/mnist_like.yaml``, reading the image
from a file as evaluation does), and models load through ``predict.py``'s loader, so the page shows
what ``predict.py`` and ``evaluate.py`` would answer for the same image.
"""

from mnist_gen.app.server import DemoApp, main, make_server

__all__ = ["DemoApp", "make_server", "main"]
