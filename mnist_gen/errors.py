"""Errors a user can cause. Entry points print them as one sentence, never a traceback."""


class UserError(Exception):
    """A problem the user can fix (bad path, bad config, missing data, no GPU)."""


class DataIntegrityError(UserError):
    """A data file failed its checksum; it is never trained on."""


class ImageError(UserError):
    """An image file could not be read (missing, not an image, truncated, too large)."""
