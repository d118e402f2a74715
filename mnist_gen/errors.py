"""Errors a user can cause. Entry points print them as one sentence, never a traceback."""


class UserError(Exception):
    """A problem the user can fix (bad path, bad config, missing data, no GPU)."""


class DataIntegrityError(UserError):
    """A data file failed its checksum; it is never trained on."""


class ImageError(UserError):
    """An image file could not be read (missing, not an image, truncated, too large)."""


def run_main(run, argv=None) -> int:
    """Shared body of the argparse entry points: a UserError becomes one sentence and exit 2."""
    import logging
    import sys

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return run(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
