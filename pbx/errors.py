"""Exceptions of the switch and the applications above it."""

from __future__ import annotations


class PbxError(Exception):
    """Root of every error raised by `pbx`, `acd`, `ivr` and `cli`.

    Its message is one line meant for a person: the CLI prints it as it is.
    """


class ConfigError(PbxError):
    """Bad configuration or a bad argument from the user."""


class NotFoundError(PbxError):
    """A named thing (user, extension, queue…) does not exist."""


class AlreadyExistsError(PbxError):
    """A thing with that name exists already."""


class StoreError(PbxError):
    """The database could not be opened or migrated."""


class ControlError(PbxError):
    """The running server could not be reached or refused a control request."""
