"""The exceptions wgbert raises. Every one carries the library's message.

- ``WgbertError``: the base class of every wgbert error.
- ``WgbertValueError`` (also a ``ValueError``): bad input or options: an empty or too long
  text (without ``truncate=True``), a text without ``[MASK]`` for ``fill_mask``, an unknown
  prompt name, a task the model has no head for, a malformed config or checkpoint.
- ``WgbertFileNotFoundError`` (also a ``FileNotFoundError``): a model directory, hub id or
  file that does not exist or cannot be fetched.
- ``DeviceError``: the GPU or its driver failed: no adapter, device creation refused, out of
  memory, device lost, a hung device, a shader the driver rejects.
"""


class WgbertError(Exception):
    """Base class of every error wgbert raises."""


class WgbertValueError(WgbertError, ValueError):
    """Bad input or options (also a ``ValueError``)."""


class WgbertFileNotFoundError(WgbertError, FileNotFoundError):
    """A model or file that does not exist or cannot be fetched (also a ``FileNotFoundError``)."""


class DeviceError(WgbertError):
    """The GPU or its driver failed (no adapter, out of memory, device lost, ...)."""


__all__ = ["WgbertError", "WgbertValueError", "WgbertFileNotFoundError", "DeviceError"]
