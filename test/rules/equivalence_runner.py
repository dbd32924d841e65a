"""Loads input.py and expected.py of one golden case as modules and runs the case's equivalence.check on them."""
import importlib.util
import sys


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


case_dir = sys.argv[1]
before = load(f"{case_dir}/input.py", "golden_before")
after = load(f"{case_dir}/expected.py", "golden_after")
load(f"{case_dir}/equivalence.py", "golden_equivalence").check(before, after)
print("equivalent")
