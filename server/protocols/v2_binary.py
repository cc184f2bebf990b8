"""The Open Inference Protocol's binary tensor extension, as Triton and KServe clients speak it.

A request whose ``Inference-Header-Content-Length`` header is N holds N bytes of JSON and then
the raw bytes of every input whose ``parameters.binary_data_size`` is set, in input order. A
response with binary outputs is built the same way: the JSON header lists each binary output with
``parameters.binary_data_size`` and no ``data``, its bytes follow, and the response carries the
header. Tensors are little-endian, row-major; a BYTES element is a 4-byte little-endian length
and then its bytes.
"""

import struct

import numpy as np
from mlserving.server.validation import InputError

HEADER_LENGTH = b"inference-header-content-length"
BINARY_CONTENT_TYPE = b"application/octet-stream"
NUMPY_DTYPES = {"FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"), "INT64": np.dtype("<i8")}


def split_body(body: bytes, header_length: int | None) -> tuple[bytes, memoryview | None]:
    """(JSON part, binary part or None) of a request body."""
    if header_length is None:
        return body, None
    if header_length < 0 or header_length > len(body):
        raise InputError("Inference-Header-Content-Length",
                         f"must be between 0 and the body's {len(body)} bytes, got {header_length}", status=400)
    return body[:header_length], memoryview(body)[header_length:]


def binary_size(tensor: dict, field: str) -> int | None:
    parameters = tensor.get("parameters")
    if parameters is None:
        return None
    if type(parameters) is not dict:
        raise InputError(f"{field}.parameters", "must be an object")
    size = parameters.get("binary_data_size")
    if size is None:
        return None
    if type(size) is not int or size < 0:
        raise InputError(f"{field}.parameters.binary_data_size", f"must be a non-negative integer, got {size!r}")
    return size


def take_input(binary: memoryview | None, offset: int, size: int, field: str) -> memoryview:
    """The ``size`` bytes of one binary input starting at ``offset`` of the binary part."""
    if binary is None:
        raise InputError(f"{field}.parameters.binary_data_size",
                         "needs binary data after the JSON header (Inference-Header-Content-Length)", status=400)
    if offset + size > len(binary):
        raise InputError(f"{field}.parameters.binary_data_size",
                         f"{size} bytes announced but only {len(binary) - offset} follow the JSON header", status=400)
    return binary[offset:offset + size]


def tensor_bytes(datatype: str, array: np.ndarray | list) -> bytes:
    """The raw bytes of one output tensor."""
    if datatype == "BYTES":
        parts = []
        for value in array:
            encoded = str(value).encode()
            parts.append(struct.pack("<I", len(encoded)))
            parts.append(encoded)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=NUMPY_DTYPES[datatype]).tobytes()
