"""Errors a user can cause. The CLI prints them as one line and exits non-zero; anything else
is a bug and keeps its traceback."""


class EdgeGenreError(Exception):
    """Base class: a problem with the user's input, files or environment."""

    exit_code = 2


class AudioError(EdgeGenreError):
    """An audio file that cannot be used: missing, corrupt, empty, silent or too short."""


class AudioTooLong(AudioError):
    """Audio longer than a length limit (``audio.open_bytes``' ``max_seconds``)."""


class ModelError(EdgeGenreError):
    """A model file that cannot be used: unreadable, without edge-genre metadata, unsupported."""


class BackendError(EdgeGenreError):
    """No usable interpreter, or an interpreter that cannot run on this machine."""


class DeviceError(EdgeGenreError):
    """No microphone, no PortAudio, or a capture device that refuses to open."""


class DataError(EdgeGenreError):
    """A dataset folder that cannot be used for training or evaluation."""
