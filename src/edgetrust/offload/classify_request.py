"""Decoding a ``ClassifyRequest``: the image or tensor it carries, into a preprocessed sample.

The agent's handlers (:mod:`edgetrust.offload.inference_service`) call
:func:`sample_from_request` in the handler thread before batching; every rejection is the
caller's (:class:`~edgetrust.errors.EvidenceError` subclasses). :data:`TENSOR_DTYPES` is the one
table between the protocol's ``DType`` values and numpy's, used both ways.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from edgetrust._proto.edgetrust.v1 import inference_pb2
from edgetrust.errors import InvalidRequestError, OversizeError
from edgetrust.offload.images import Preprocessing, to_tensor

#: the tensor element types a request may carry: ``DType`` value -> numpy dtype
TENSOR_DTYPES: dict[int, np.dtype[Any]] = {
    inference_pb2.DTYPE_UINT8: np.dtype(np.uint8),
    inference_pb2.DTYPE_FLOAT32: np.dtype(np.float32),
}
_DTYPE_TO_PROTO: dict[str, Any] = {dtype.str: number for number, dtype in TENSOR_DTYPES.items()}


def proto_dtype(dtype: np.dtype[Any]) -> Any:
    """The ``DType`` value of a numpy dtype (``DTYPE_UNSPECIFIED`` for one the protocol lacks)."""
    return _DTYPE_TO_PROTO.get(dtype.str, inference_pb2.DTYPE_UNSPECIFIED)


def sample_from_request(
    request: Any, preprocessing: Preprocessing, *, max_payload_bytes: int
) -> npt.NDArray[np.float32]:
    """The preprocessed sample ``(C, H, W)`` of one ``ClassifyRequest``.

    Raises only :class:`~edgetrust.errors.EvidenceError` subclasses for bad input
    (InvalidRequestError, OversizeError): the request is the caller's.
    """
    which = request.WhichOneof("input")
    if which is None:
        raise InvalidRequestError("the request has no input: set image or tensor")
    if which == "image":
        data = bytes(request.image)
        if len(data) > max_payload_bytes:
            raise OversizeError(f"image is {len(data)} bytes (limit {max_payload_bytes})")
        sample: npt.NDArray[np.float32] = to_tensor(
            data, preprocessing, max_bytes=max_payload_bytes
        )[0]
        return sample
    tensor = request.tensor
    dtype = TENSOR_DTYPES.get(tensor.dtype)
    if dtype is None:
        raise InvalidRequestError("tensor dtype must be UINT8 (pixels) or FLOAT32 (preprocessed)")
    shape = tuple(int(d) for d in tensor.shape)
    if not 2 <= len(shape) <= 4 or any(d < 1 for d in shape):
        raise InvalidRequestError(f"tensor shape {list(shape)} is not an image shape")
    data = bytes(tensor.data)
    if len(data) > max_payload_bytes:
        raise OversizeError(f"tensor is {len(data)} bytes (limit {max_payload_bytes})")
    expected = math.prod(shape) * dtype.itemsize  # exact: no int64 overflow
    if len(data) != expected:
        raise InvalidRequestError(
            f"tensor data is {len(data)} bytes; shape {list(shape)} of {dtype} needs {expected}"
        )
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    if dtype == np.float32 and shape != preprocessing.sample_shape:
        raise InvalidRequestError(
            f"a float32 tensor must have the model's sample shape "
            f"{list(preprocessing.sample_shape)}, got {list(shape)}"
        )
    batch = to_tensor(array, preprocessing, max_bytes=max_payload_bytes)
    result: npt.NDArray[np.float32] = batch[0]
    return result
