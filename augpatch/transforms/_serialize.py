"""Plain-JSON save/replay of transform parameters, with an exact float round trip."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

__all__ = ["params_from_json", "params_to_dict", "params_to_json"]

_FORMAT = "augpatch.params"
_VERSION = 1
_FLOAT_DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}
_INT_DTYPES = {
    "uint8": torch.uint8,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
}


def _encode(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return {"dict": {str(k): _encode(f"{name}.{k}", v) for k, v in value.items()}}
    if not isinstance(value, Tensor):
        raise TypeError(f"params[{name!r}] must be a tensor or a dict, got {type(value).__name__}")
    dtype = str(value.dtype).removeprefix("torch.")
    flat = value.detach().cpu().flatten()
    if dtype in _FLOAT_DTYPES:
        # float64 holds every float16/bfloat16/float32 value exactly; float.hex is exact
        data: list[Any] = [float(v).hex() for v in flat.double().tolist()]
    elif dtype in _INT_DTYPES:
        data = [int(v) for v in flat.tolist()]
    elif dtype == "bool":
        data = [bool(v) for v in flat.tolist()]
    else:
        raise TypeError(f"params[{name!r}] has unsupported dtype {value.dtype}")
    return {"dtype": dtype, "shape": list(value.shape), "data": data}


def _decode(name: str, item: Mapping[str, Any], device: torch.device | str | None) -> Any:
    if "dict" in item:
        return {k: _decode(f"{name}.{k}", v, device) for k, v in item["dict"].items()}
    try:
        dtype_name, shape, data = item["dtype"], item["shape"], item["data"]
    except KeyError as e:
        raise ValueError(f"params[{name!r}] is missing the field {e}") from e
    if dtype_name in _FLOAT_DTYPES:
        values = [float.fromhex(v) if isinstance(v, str) else float(v) for v in data]
        t = torch.tensor(values, dtype=torch.float64).to(_FLOAT_DTYPES[dtype_name])
    elif dtype_name in _INT_DTYPES:
        t = torch.tensor([int(v) for v in data], dtype=_INT_DTYPES[dtype_name])
    elif dtype_name == "bool":
        t = torch.tensor([bool(v) for v in data], dtype=torch.bool)
    else:
        raise ValueError(f"params[{name!r}] has unsupported dtype {dtype_name!r}")
    t = t.reshape(shape)
    return t.to(device) if device is not None else t


def params_to_dict(params: Mapping[str, Any]) -> dict[str, Any]:
    """Encode a parameter dict (as ``aug._params``) as plain JSON-compatible data.

    Floats are written with ``float.hex`` of their float64 value, so decoding
    with :func:`params_from_json` gives back bit-identical tensors (dtype and
    shape included). Nested dicts of tensors are supported.

    Args:
        params: ``{name: Tensor | dict}``.

    Returns:
        ``{"format": "augpatch.params", "version": 1, "params": {...}}``.

    Example:
        >>> d = params_to_dict({"angle": torch.tensor([0.1])})
        >>> d["params"]["angle"]
        {'dtype': 'float32', 'shape': [1], 'data': ['0x1.99999a0000000p-4']}
    """
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict of tensors, got {type(params).__name__}")
    return {
        "format": _FORMAT,
        "version": _VERSION,
        "params": {str(k): _encode(str(k), v) for k, v in params.items()},
    }


def params_to_json(params: Mapping[str, Any], **json_kwargs: Any) -> str:
    """Encode a parameter dict as a JSON string (see :func:`params_to_dict`).

    Example:
        >>> aug = RandomPatchRotation(30.0)  # doctest: +SKIP
        >>> _ = aug(images, boxes, obj_to_img)  # doctest: +SKIP
        >>> text = params_to_json(aug._params)  # doctest: +SKIP
        >>> again = aug(images, boxes, obj_to_img, params=params_from_json(text))  # doctest: +SKIP
    """
    return json.dumps(params_to_dict(params), **json_kwargs)


def params_from_json(
    data: str | bytes | Mapping[str, Any], *, device: torch.device | str | None = None
) -> dict[str, Any]:
    """Decode :func:`params_to_json` / :func:`params_to_dict` output back into tensors.

    Args:
        data: the JSON string (or bytes), or the already parsed dict.
        device: where to put the tensors (default CPU). Transforms move replayed
            parameters to the device of their input anyway.

    Returns:
        ``{name: Tensor | dict}`` bit-identical to what was encoded.
    """
    if isinstance(data, (str, bytes, bytearray)):
        data = json.loads(data)
    if not isinstance(data, Mapping):
        raise TypeError(f"data must be a JSON string or a dict, got {type(data).__name__}")
    if data.get("format") != _FORMAT or "params" not in data:
        raise ValueError("data is not an augpatch parameter record (missing 'format'/'params')")
    if int(data.get("version", 0)) > _VERSION:
        raise ValueError(f"unsupported augpatch parameter record version {data.get('version')}")
    return {k: _decode(k, v, device) for k, v in data["params"].items()}
