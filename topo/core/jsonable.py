"""JSON-ready values: numpy scalars and arrays, tuples and result objects to plain JSON types;
non-finite floats become null (JSON has no NaN or infinity)."""
from __future__ import annotations

from typing import Any

import numpy as np

# exact types that are already JSON values (subclasses, e.g. numpy's float64, take the general path)
_PLAIN = frozenset((str, int, bool, type(None)))


def to_jsonable(obj: Any) -> Any:
    """Recursively turn numpy values, tuples and dataclass results into JSON types.

    Plain values (str, int, bool, None, finite float) are taken as they are without the
    general checks: a plan at 1M accelerators holds tens of millions of them."""
    t = type(obj)
    if t is float:
        return obj if obj - obj == 0.0 else None   # inf - inf and nan - nan are nan
    if t in _PLAIN:
        return obj
    if t is list or t is tuple:
        # finite floats and plain values as they are, anything else through the general path
        return [v if (type(v) is float and v - v == 0.0) or type(v) in _PLAIN else to_jsonable(v) for v in obj]
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return to_jsonable(obj.to_dict())
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
