#!/usr/bin/env python3
"""Independent check of selfsup's safetensors files with the Python `safetensors` package.

  safetensors_check.py FILE [DESCRIPTION]   read FILE (written by selfsup) with safetensors'
                                            numpy loader and compare it with DESCRIPTION
                                            (default FILE.json); exit 1 on any mismatch
  safetensors_check.py --write FILE         write a reference file with safetensors' numpy
                                            writer, for the C++ side to read

DESCRIPTION is JSON:
  {"tensors": {"name": {"dtype": "float32", "shape": [2, 3], "values": [...]}, ...},
   "metadata": {"key": "value", ...}}
with values flattened in row-major order; NaN and infinities are the strings "nan", "inf",
"-inf" (JSON has no literal for them). Used by tests/test_core_safetensors.cpp.
"""
import json
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file


def expected_array(spec):
    dtype = np.dtype(spec["dtype"])
    values = [float(v) if isinstance(v, str) else v for v in spec["values"]]
    return np.array(values, dtype=dtype).reshape(spec["shape"])


def compare_tensor(name, actual, spec):
    """Returns a list of problems with one tensor (empty when it matches bit for bit)."""
    if str(actual.dtype) != spec["dtype"]:
        return [f"{name}: dtype {actual.dtype}, expected {spec['dtype']}"]
    if list(actual.shape) != spec["shape"]:
        return [f"{name}: shape {list(actual.shape)}, expected {spec['shape']}"]
    expected = expected_array(spec)
    if actual.dtype.kind == "f":
        same = np.array_equal(actual, expected, equal_nan=True) and np.array_equal(
            np.signbit(actual), np.signbit(expected))
    else:
        same = np.array_equal(actual, expected)
    if not same:
        bad = np.flatnonzero(actual.ravel() != expected.ravel())[:5]
        return [f"{name}: values differ at flat indices {bad.tolist()}: "
                f"{actual.ravel()[bad].tolist()} vs {expected.ravel()[bad].tolist()}"]
    return []


def check(path, description_path):
    with open(description_path, encoding="utf-8") as f:
        description = json.load(f)
    problems = []
    with safe_open(path, framework="np") as f:
        names = set(f.keys())
        wanted = set(description["tensors"])
        if names != wanted:
            problems.append(f"names {sorted(names)}, expected {sorted(wanted)}")
        for name in sorted(names & wanted):
            problems += compare_tensor(name, f.get_tensor(name), description["tensors"][name])
        metadata = f.metadata() or {}
        if metadata != description["metadata"]:
            problems.append(f"metadata {metadata}, expected {description['metadata']}")
    for p in problems:
        print("MISMATCH:", p, file=sys.stderr)
    if problems:
        return 1
    print(f"OK: {len(names)} tensors and {len(metadata)} metadata entries match")
    return 0


def write_reference(path):
    """The values here are repeated by hand in the C++ test WeReadWhatPythonWrites."""
    tensors = {
        "f16": np.array([[1, -2, 0.5], [65504, 2.0**-24, np.inf]], dtype=np.float16),
        "f32": (np.arange(15, dtype=np.float32) * np.float32(0.25) - np.float32(1)).reshape(3, 5),
        "f64": np.array(3.141592653589793, dtype=np.float64),
        "i64": np.array([[-(2**63), 2**63 - 1], [0, -7]], dtype=np.int64),
        "u8": np.array([0, 1, 128, 255], dtype=np.uint8),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }
    save_file(tensors, path, metadata={"producer": "numpy", "note": "caf\u00e9 \u2713"})
    print(f"wrote {len(tensors)} tensors to {path}")
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == "--write":
        return write_reference(argv[2])
    if len(argv) in (2, 3) and not argv[1].startswith("-"):
        return check(argv[1], argv[2] if len(argv) == 3 else argv[1] + ".json")
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
