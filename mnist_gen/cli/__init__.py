"""Entry modules: the command lines behind ``train.py``, ``evaluate.py``, ``predict.py`` and the
``python -m mnist_gen.cli.<name>`` tools. Leaves: nothing in the package imports them."""
