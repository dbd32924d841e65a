"""Load the user's project: import the model file, build the model, find its quantizers and its data.

`model = "file.py:factory"` is imported by path with the file's directory on sys.path, so the generated
`import qdq_quant  # qdq` finds the helper next to it. `model_source_override` runs the given (quantized)
source in place of the file on disk, so the pipeline can work on a copy without writing the user's file.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from .errors import (
    QdqError,
    describe,
    is_library_path,
    is_oom,
    last_user_frame,
    looks_like_shape_error,
    oom_error,
    user_traceback,
)
from .protocol_types import LoadParams, LoadResult, Quantizer, SourceOverride, TensorInfo

Progress = Callable[[str, int, Optional[int], str], None]
Inputs = Tuple[torch.Tensor, ...]

_HELPER = "qdq_quant"
_DEFAULT_SEED = 0


@dataclass
class QuantizerInfo:
    name: str  # module path: "layer1.0.conv1.input_quantizer"
    # the TensorQuantizer (Any: torch types every Module attribute as Tensor | Module, and this one has amax, axis, ...)
    module: Any
    role: str  # "input" / "weight" / "output" / "activation"
    parent: Optional[nn.Module]  # the layer holding it (for weight quantizers: the one with .weight)
    site: Dict[str, str]  # {file, cls, attr}


@dataclass
class Project:
    project_dir: str
    model_file: str
    factory: str
    model: nn.Module
    example_inputs: Inputs
    input_names: List[str]
    output_names: List[str]
    quantizers: List[QuantizerInfo]
    calibration_source: Optional[Callable[[], Any]]  # the user's calibration-data function, or None
    calibration_spec: Optional[str]
    eval_source: Optional[Callable[[], Any]]
    eval_spec: Optional[str]
    user_roots: List[str]
    random_shapes: Optional[List[List[int]]] = None
    calibration_state: Dict[str, Any] = field(default_factory=dict)
    # installed modules defining the model's classes (auto patch-modules) and what load changed on the model
    library_modules: List[str] = field(default_factory=list)
    load_notes: List[str] = field(default_factory=list)
    # example-inputs given as a dict: the forward's keyword names, in the order of example_inputs
    keywords: Optional[List[str]] = None

    @property
    def calibration_data_kind(self) -> str:
        return "user" if self.calibration_source is not None else "random-normal"

    def inputs_description(self) -> List[TensorInfo]:
        return [
            {"name": n, "shape": list(t.shape), "dtype": dtype_name(t.dtype)}
            for n, t in zip(self.input_names, self.example_inputs)
        ]

    # -- data -------------------------------------------------------------------------------------
    def calibration_batches(self, limit: int) -> Iterator[Inputs]:
        """Up to `limit` input tuples: the user's calibration data, else random normal batches."""
        if self.calibration_source is None:
            generator = torch.Generator().manual_seed(_DEFAULT_SEED)
            for _ in range(limit):
                yield tuple(_random_like(t, generator) for t in self.example_inputs)
            return
        count = 0
        for batch in _iterate_user(self.calibration_source, self.calibration_spec or "calibration-data", self):
            inputs, _labels = split_batch(
                batch, len(self.example_inputs), self.calibration_spec or "calibration-data", count, self.keywords
            )
            yield inputs
            count += 1
            if count >= limit:
                return

    def eval_batches(self, limit: int) -> Iterator[Tuple[Inputs, Optional[torch.Tensor]]]:
        if self.eval_source is None:
            return
        count = 0
        for batch in _iterate_user(self.eval_source, self.eval_spec or "eval-data", self):
            yield split_batch(batch, len(self.example_inputs), self.eval_spec or "eval-data", count, self.keywords)
            count += 1
            if count >= limit:
                return


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _random_like(t: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    if t.is_floating_point():
        return torch.randn(t.shape, generator=generator, dtype=torch.float32).to(t.dtype)
    return t.clone()  # integer inputs (token ids): reuse the example, random ids may be out of range


def _iterate_user(source: Callable[[], Any], spec: str, project: "Project") -> Iterator[Any]:
    try:
        data = source()
    except QdqError:
        raise
    except Exception as exc:  # noqa: BLE001 - user code
        raise _user_error(exc, f"{spec} raised", project.user_roots) from None
    if isinstance(data, torch.Tensor) or not hasattr(data, "__iter__"):
        raise QdqError(
            "config",
            f"{spec} returned {type(data).__name__}, not an iterable of batches",
            "make the function yield batches (a tensor, a tuple of tensors, or (inputs, labels)), "
            "or return a list or DataLoader of them",
        )
    iterator = iter(data)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except QdqError:
            raise
        except Exception as exc:  # noqa: BLE001 - user code
            raise _user_error(exc, f"{spec} raised while producing a batch", project.user_roots) from None
        yield batch


def _keyword_batch(batch: Dict[str, Any], keywords: List[str], spec: str, index: int) -> Tuple[Any, ...]:
    missing = [k for k in keywords if k not in batch]
    if missing:
        raise QdqError(
            "shape",
            f"{spec} batch {index} lacks {', '.join(missing)} (example-inputs has {', '.join(keywords)})",
            "yield dicts with the same keys as example-inputs",
        )
    return tuple(batch[k] for k in keywords)


def split_batch(
    batch: Any, n_inputs: int, spec: str, index: int, keywords: Optional[List[str]] = None
) -> Tuple[Inputs, Optional[torch.Tensor]]:
    """A batch is a tensor, a tuple of tensors, (inputs, labels) or ((inputs...), labels); with keyword
    example-inputs also a dict of them, or (dict, labels)."""
    if keywords and isinstance(batch, (tuple, list)) and len(batch) == 2 and isinstance(batch[0], dict):
        return _keyword_batch(batch[0], keywords, spec, index), torch.as_tensor(batch[1])
    if keywords and isinstance(batch, dict):
        return _keyword_batch(batch, keywords, spec, index), None
    if isinstance(batch, torch.Tensor):
        inputs: Tuple[Any, ...] = (batch,)
        labels = None
    elif isinstance(batch, dict):
        raise QdqError(
            "config",
            f"{spec} batch {index} is a dict but example-inputs is not",
            "yield a tensor, a tuple of tensors, or (inputs, labels); or return a dict from example-inputs too",
        )
    elif isinstance(batch, (tuple, list)):
        items = list(batch)
        if len(items) == 2 and isinstance(items[0], (tuple, list)):
            inputs, labels = tuple(items[0]), items[1]
        elif len(items) == n_inputs:
            inputs, labels = tuple(items), None
        elif len(items) == n_inputs + 1:
            inputs, labels = tuple(items[:-1]), items[-1]
        else:
            raise QdqError(
                "shape",
                f"{spec} batch {index} has {len(items)} elements but the model takes {n_inputs} input(s)",
                f"yield {n_inputs} tensor(s), optionally followed by labels: (inputs, labels)",
            )
    else:
        raise QdqError(
            "config",
            f"{spec} batch {index} is a {type(batch).__name__}, not a tensor or a tuple of tensors",
            "yield a tensor, a tuple of tensors, or (inputs, labels)",
        )
    if len(inputs) != n_inputs:
        raise QdqError(
            "shape",
            f"{spec} batch {index} has {len(inputs)} input(s) but the model takes {n_inputs}",
            "make each batch carry exactly the model's inputs, optionally followed by labels",
        )
    for i, t in enumerate(inputs):
        if not isinstance(t, torch.Tensor):
            raise QdqError(
                "config",
                f"{spec} batch {index} input {i} is a {type(t).__name__}, not a torch.Tensor",
                "convert the data to tensors (torch.as_tensor) before yielding it",
            )
    if labels is not None and not isinstance(labels, torch.Tensor):
        try:
            labels = torch.as_tensor(labels)
        except Exception:  # noqa: BLE001
            raise QdqError(
                "config",
                f"{spec} batch {index} labels are not a tensor",
                "yield labels as an integer tensor of class indices",
            ) from None
    return tuple(inputs), labels


# -- importing user files ---------------------------------------------------------------------------


def parse_spec(spec: Any, key: str, project_dir: str) -> Tuple[str, str]:
    """ "path/to/file.py:name" -> (absolute path, name)."""
    if not isinstance(spec, str) or ":" not in spec:
        raise QdqError(
            "config",
            f"{key} = {spec!r} is not of the form \"file.py:function\"",
            f"set {key} = \"path/to/file.py:function\" in [tool.qdq] (path relative to the project)",
        )
    path, _, name = spec.rpartition(":")
    if not path or not name.isidentifier():
        raise QdqError(
            "config",
            f"{key} = {spec!r} is not of the form \"file.py:function\"",
            f"set {key} = \"path/to/file.py:function\" in [tool.qdq]",
        )
    full = path if os.path.isabs(path) else os.path.join(project_dir, path)
    full = os.path.abspath(full)
    if not os.path.isfile(full):
        raise QdqError(
            "config",
            f"{key}: file {path} does not exist (looked for {full})",
            f"fix the path in {key}; it is relative to the project directory {project_dir}",
        )
    return full, name


def _package_parts(path: str) -> Tuple[str, str]:
    """(sys.path root, dotted module name) for a file, walking up through packages (__init__.py)."""
    directory = os.path.dirname(path)
    parts = [os.path.splitext(os.path.basename(path))[0]]
    while os.path.isfile(os.path.join(directory, "__init__.py")):
        parts.insert(0, os.path.basename(directory))
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return directory, ".".join(parts)


def _prepend_path(directory: str) -> None:
    if directory in sys.path:
        sys.path.remove(directory)
    sys.path.insert(0, directory)


def _forget_project_modules(project_dir: str) -> None:
    """Drop modules imported from the project before, so a new load sees the files as they are now."""
    root = os.path.abspath(project_dir).rstrip(os.sep) + os.sep
    for name, module in list(sys.modules.items()):
        filename = getattr(module, "__file__", None)
        # never a library, even one installed in a venv inside the project: re-importing torch breaks it
        if filename and os.path.abspath(filename).startswith(root) and not is_library_path(filename):
            del sys.modules[name]
    # the helper, wherever it was served from before (a project's copy or the backend's own as an alias)
    for name in list(sys.modules):
        if (name == _HELPER or name.endswith("." + _HELPER)) and name != __package__ + "." + _HELPER:
            del sys.modules[name]


def _forget_shadowing_modules(directories: List[str]) -> None:
    """Drop modules loaded from elsewhere under a name these directories also provide.

    Two projects (or a project and a test fixture) both have a model.py and a data.py: after the first is
    imported, `import model` would hand back that module, not this directory's file. Modules from these
    directories themselves stay (_forget_project_modules decides about them), and libraries always stay.
    """
    names = set()
    for directory in directories:
        try:
            entries = os.listdir(directory)
        except OSError:
            continue
        for entry in entries:
            if entry.endswith(".py"):
                names.add(entry[:-3])
            elif os.path.isfile(os.path.join(directory, entry, "__init__.py")):
                names.add(entry)
    names.discard(__package__)
    roots = [os.path.abspath(d).rstrip(os.sep) + os.sep for d in directories]
    for name, module in list(sys.modules.items()):
        if name.partition(".")[0] not in names:
            continue
        filename = getattr(module, "__file__", None)
        if not filename or is_library_path(filename):
            continue
        if not any(os.path.abspath(filename).startswith(r) for r in roots):
            del sys.modules[name]


def _provide_helper(directory: str, package: str) -> None:
    """Serve the backend's qdq_quant where the project has no copy next to the model (e.g. a temp copy)."""
    if os.path.isfile(os.path.join(directory, _HELPER + ".py")):
        return
    from . import qdq_quant as backend_helper  # noqa: WPS433 (on demand)

    if _HELPER not in sys.modules:
        sys.modules[_HELPER] = backend_helper
    if package:
        full = f"{package}.{_HELPER}"
        sys.modules.setdefault(full, backend_helper)
        parent = sys.modules.get(package)
        if parent is not None and not hasattr(parent, _HELPER):
            setattr(parent, _HELPER, backend_helper)


def _same_file(a: Optional[str], b: str) -> bool:
    try:
        return a is not None and os.path.samefile(a, b)
    except OSError:
        return False


def import_file(path: str, override_source: Optional[str], user_roots: List[str]) -> types.ModuleType:
    root, dotted = _package_parts(path)
    directory = os.path.dirname(path)
    _prepend_path(root)
    if directory != root:
        _prepend_path(directory)
    package = dotted.rpartition(".")[0]
    label = os.path.relpath(path, user_roots[0]) if user_roots else path
    _forget_shadowing_modules([root] if directory == root else [root, directory])
    try:
        if package:
            importlib.import_module(package)
        _provide_helper(directory, package)
        cached = sys.modules.get(dotted)
        if override_source is None and cached is not None and _same_file(getattr(cached, "__file__", None), path):
            return cached
        spec = importlib.util.spec_from_file_location(dotted, path)
        if spec is None or spec.loader is None:
            raise QdqError("import", f"cannot import {label}", "check that it is a Python source file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[dotted] = module
        try:
            if override_source is None:
                spec.loader.exec_module(module)
            else:
                exec(compile(override_source, path, "exec"), module.__dict__)  # noqa: S102 - the user's model
        except BaseException:
            sys.modules.pop(dotted, None)
            raise
        if package and package in sys.modules:
            setattr(sys.modules[package], dotted.rpartition(".")[2], module)
        return module
    except QdqError:
        raise
    except SyntaxError as exc:
        where = f"{os.path.basename(exc.filename or path)}:{exc.lineno}"
        raise QdqError(
            "import",
            f"{label} does not parse: SyntaxError at {where}: {exc.msg}",
            "fix the syntax error; qdq imports the model file to calibrate and export it",
            detail=user_traceback(exc, user_roots),
        ) from None
    except Exception as exc:  # noqa: BLE001 - whatever the import raised
        hint = "fix the error in the file or install what it imports into this interpreter " + sys.executable
        if isinstance(exc, ImportError) and getattr(exc, "name", None) == _HELPER:
            hint = "qdq_quant.py is missing next to the model file; run `qdq quantize` again to copy it"
        raise QdqError(
            "import",
            f"importing {label} failed: {describe(exc)}",
            hint,
            detail=user_traceback(exc, user_roots),
        ) from None


def _resolve(
    spec: str, key: str, project_dir: str, override: Optional[SourceOverride], user_roots: List[str]
) -> Tuple[Callable[..., Any], str]:
    path, name = parse_spec(spec, key, project_dir)
    source = None
    if override and os.path.abspath(os.path.join(project_dir, override.file)) == path:
        source = override.source
    module = import_file(path, source, user_roots)
    fn = getattr(module, name, None)
    if fn is None:
        candidates = sorted(
            k
            for k, v in vars(module).items()
            if callable(v) and not k.startswith("_") and getattr(v, "__module__", None) == module.__name__
        )
        raise QdqError(
            "config",
            f"{key}: {os.path.basename(path)} has no {name!r}",
            f"name a function defined in {os.path.basename(path)}"
            + (f" (it defines: {', '.join(candidates[:10])})" if candidates else ""),
        )
    if not callable(fn):
        raise QdqError(
            "config",
            f"{key}: {name} in {os.path.basename(path)} is not callable",
            "point it at a function (or class) that takes no arguments",
        )
    return fn, path


def _user_error(exc: BaseException, what: str, user_roots: List[str]) -> QdqError:
    if isinstance(exc, QdqError):
        return exc
    if is_oom(exc):
        return oom_error(exc, what)
    where = last_user_frame(exc, user_roots)
    return QdqError(
        "user_code",
        f"{what}: {describe(exc)}" + (f" (at {where})" if where else ""),
        "fix the error in your code (traceback in detail)",
        detail=user_traceback(exc, user_roots),
    )


def forward_error(exc: BaseException, what: str, project: "Project", inputs: Inputs) -> QdqError:
    """Classify an exception raised by the model's forward on `inputs`."""
    if isinstance(exc, QdqError):
        return exc
    if is_oom(exc):
        return oom_error(exc, what)
    if looks_like_shape_error(exc):
        shapes = ", ".join(str(list(t.shape)) for t in inputs)
        where = last_user_frame(exc, project.user_roots)
        return QdqError(
            "shape",
            f"{what}: inputs of shape {shapes} do not fit the model: {describe(exc)}"
            + (f" (at {where})" if where else ""),
            "make input-shapes / example-inputs / calibration-data match what the model's forward expects",
            detail=user_traceback(exc, project.user_roots),
        )
    return _user_error(exc, what, project.user_roots)


# -- quantizers ---------------------------------------------------------------------------------------


def is_quantizer(module: nn.Module) -> bool:
    return any(cls.__name__ == "TensorQuantizer" for cls in type(module).__mro__)


def _is_user_class(cls: type) -> bool:
    mod = getattr(cls, "__module__", "") or ""
    if mod == "torch" or mod.startswith("torch."):
        return False
    if mod == _HELPER or mod.endswith("." + _HELPER):
        return False
    return True


def _class_file(cls: type, fallback: str) -> str:
    try:
        found = inspect.getsourcefile(cls) or inspect.getfile(cls)
        return os.path.abspath(found)
    except (TypeError, OSError):
        return fallback


def _role(attr_name: str) -> str:
    base = attr_name.lstrip("_")
    if base == "weight_quantizer":
        return "weight"
    if base == "input_quantizer":
        return "input"
    if base == "output_quantizer":
        return "output"
    return "activation"


def find_quantizers(model: nn.Module, model_file: str) -> List[QuantizerInfo]:
    modules = dict(model.named_modules())
    found: List[QuantizerInfo] = []
    for name, module in modules.items():
        if not name or not is_quantizer(module):
            continue
        parts = name.split(".")
        parent = modules.get(".".join(parts[:-1]), model) if len(parts) > 1 else model
        owner_path = ""
        owner: nn.Module = model
        for cut in range(len(parts) - 1, -1, -1):
            candidate_path = ".".join(parts[:cut])
            candidate = modules.get(candidate_path) if candidate_path else model
            if candidate is not None and _is_user_class(type(candidate)):
                owner_path, owner = candidate_path, candidate
                break
        attr = name[len(owner_path) + 1 :] if owner_path else name
        site = {"file": _class_file(type(owner), model_file), "cls": type(owner).__name__, "attr": attr}
        if not getattr(module, "qdq_site", None):
            try:
                module.qdq_site = f"{site['cls']}.{attr}"
            except Exception:  # noqa: BLE001 - a read-only attribute in some helper version
                pass
        found.append(QuantizerInfo(name=name, module=module, role=_role(parts[-1]), parent=parent, site=site))
    return found


# -- load -------------------------------------------------------------------------------------------------


def _keyword_inputs(value: Dict[Any, Any], what: str) -> Tuple[List[str], Inputs]:
    """example-inputs as a dict: forward's keyword arguments (transformers models take input_ids=, ...)."""
    if not value or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()):
        raise QdqError(
            "config",
            f"{what} returned a dict that is not keyword name -> tensor",
            'return e.g. {"input_ids": ids, "attention_mask": mask} (tensors only)',
        )
    return list(value), tuple(value.values())


def call_with_keywords(model: nn.Module, keywords: List[str]) -> None:
    """Make model(*inputs) call forward(**dict(zip(keywords, inputs))), so calibration, export and evaluation
    keep passing inputs positionally. An instance attribute: the class and its other instances are untouched."""
    forward = type(model).forward

    def keyword_forward(*inputs: Any) -> Any:
        return forward(model, **dict(zip(keywords, inputs)))

    model.forward = keyword_forward  # type: ignore[method-assign]


def _as_inputs(value: Any, what: str) -> Inputs:
    if isinstance(value, torch.Tensor):
        return (value,)
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, torch.Tensor) for v in value):
        return tuple(value)
    raise QdqError(
        "config",
        f"{what} returned {type(value).__name__}, not a tensor or a tuple of tensors",
        "return the model's example input(s) as a tensor or a tuple of tensors",
    )


def _shapes(value: Any) -> List[List[int]]:
    ok = (
        isinstance(value, list)
        and value
        and all(
            isinstance(s, list) and s and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in s)
            for s in value
        )
    )
    if not ok:
        raise QdqError(
            "config",
            f"input-shapes = {value!r} is not a list of shapes",
            "write input-shapes = [[1, 3, 224, 224]] (one list of positive ints per model input)",
        )
    return [list(s) for s in value]


def _input_names(model: nn.Module, count: int) -> List[str]:
    names: List[str] = []
    try:
        params = list(inspect.signature(model.forward).parameters.values())
        for p in params:
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                names.append(p.name)
    except (TypeError, ValueError):
        pass
    names = names[:count]
    while len(names) < count:
        names.append(f"input{len(names)}")
    if len(set(names)) != len(names):
        names = [f"input{i}" for i in range(count)]
    return names


def flatten_outputs(value: Any) -> List[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        out: List[torch.Tensor] = []
        for v in value:
            out.extend(flatten_outputs(v))
        return out
    if isinstance(value, dict):
        out = []
        for v in value.values():
            out.extend(flatten_outputs(v))
        return out
    return []


def load(
    params: Union[LoadParams, Mapping[str, Any]],
    progress: Progress,
    check_cancel: Optional[Callable[[], None]] = None,
) -> Project:
    if not isinstance(params, LoadParams):
        params = LoadParams.from_json(params)
    check = check_cancel or (lambda: None)
    project_dir = params.project_dir
    if not isinstance(project_dir, str) or not os.path.isdir(project_dir):
        raise QdqError(
            "config",
            f"project_dir {project_dir!r} is not a directory",
            "run qdq from the directory that holds pyproject.toml, or pass it as DIR",
        )
    project_dir = os.path.abspath(project_dir)
    if params.model is None:
        raise QdqError("config", "no model configured", "set model = \"path/to/file.py:factory\" in [tool.qdq]")
    model_spec = params.model
    override = params.model_source_override
    user_roots = [project_dir]
    if override:
        override_dir = os.path.dirname(os.path.abspath(os.path.join(project_dir, override.file)))
        if override_dir not in user_roots:
            user_roots.append(override_dir)

    progress("load", 0, 3, "importing the model file")
    _forget_project_modules(project_dir)
    patches = [{"module": p.module, "source": p.source} for p in params.patch_modules or []]
    from . import patching  # noqa: WPS433 - on demand

    if patches:
        patching.install(patches)
    elif patching.installed():
        patching.restore()  # a load without patches builds the library's own classes

    factory, model_file = _resolve(model_spec, "model", project_dir, override, user_roots)
    check()
    progress("load", 1, 3, "building the model")
    try:
        model = factory()
    except QdqError:
        raise
    except Exception as exc:  # noqa: BLE001 - user code
        raise _user_error(exc, f"the model factory {model_spec} raised", user_roots) from None
    if not isinstance(model, nn.Module):
        raise QdqError(
            "config",
            f"the model factory {model_spec} returned {type(model).__name__}, not an nn.Module",
            "make the factory return the model (an instance of torch.nn.Module)",
        )
    model.eval()
    # library models: the patched attention must take its explicit-matmul path (notes say what was switched)
    load_notes = patching.prepare_model(model) if patches else []
    library_modules = [] if patches else patching.library_modules(model)

    random_shapes = None
    keywords: Optional[List[str]] = None
    calibration_source = None
    eval_source = None
    if params.calibration_data:
        calibration_source, _ = _resolve(params.calibration_data, "calibration-data", project_dir, override, user_roots)
    if params.eval_data:
        eval_source, _ = _resolve(params.eval_data, "eval-data", project_dir, override, user_roots)

    if params.example_inputs:
        fn, _ = _resolve(params.example_inputs, "example-inputs", project_dir, override, user_roots)
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 - user code
            raise _user_error(exc, f"example-inputs {params.example_inputs} raised", user_roots) from None
        if isinstance(value, dict):
            keywords, example = _keyword_inputs(value, f"example-inputs {params.example_inputs}")
            call_with_keywords(model, keywords)
        else:
            example = _as_inputs(value, f"example-inputs {params.example_inputs}")
    elif params.input_shapes is not None:
        random_shapes = _shapes(params.input_shapes)
        generator = torch.Generator().manual_seed(_DEFAULT_SEED)
        example = tuple(torch.randn(s, generator=generator) for s in random_shapes)
    elif calibration_source is not None:
        example = _first_batch_inputs(calibration_source, params.calibration_data or "calibration-data", user_roots)
    else:
        raise QdqError(
            "config",
            "the model's inputs are unknown",
            "set input-shapes = [[1, 3, 224, 224]] or example-inputs = \"file.py:fn\" in [tool.qdq]",
        )

    project = Project(
        project_dir=project_dir,
        model_file=model_file,
        factory=model_spec,
        model=model,
        example_inputs=example,
        input_names=list(keywords) if keywords else _input_names(model, len(example)),
        output_names=[],
        quantizers=find_quantizers(model, model_file),
        calibration_source=calibration_source,
        calibration_spec=params.calibration_data,
        eval_source=eval_source,
        eval_spec=params.eval_data,
        user_roots=user_roots,
        random_shapes=random_shapes,
        library_modules=library_modules,
        load_notes=load_notes,
        keywords=keywords,
    )

    check()
    progress("load", 2, 3, "running the model once on the example inputs")
    saved = [(q.module, getattr(q.module, "calibrator", None)) for q in project.quantizers]
    try:
        for q, _ in saved:
            q.calibrator = None
        with torch.no_grad():
            out = model(*example)
    except Exception as exc:  # noqa: BLE001 - user code
        raise forward_error(exc, "the model's forward raised on the example inputs", project, example) from None
    finally:
        for q, cal in saved:
            q.calibrator = cal
    outputs = flatten_outputs(out)
    if not outputs:
        raise QdqError(
            "config",
            f"the model returned {type(out).__name__}, no tensors",
            "make forward return a tensor (or a tuple of tensors)",
        )
    project.output_names = ["output"] if len(outputs) == 1 else [f"output{i}" for i in range(len(outputs))]
    listed = len([q for q in project.quantizers if q.role != "output"])
    progress("load", 3, 3, f"loaded {type(model).__name__} with {listed} quantizers")
    return project


def _first_batch_inputs(source: Callable[[], Any], spec: str, user_roots: List[str]) -> Inputs:
    dummy = types.SimpleNamespace(user_roots=user_roots)
    for batch in _iterate_user(source, spec, dummy):  # type: ignore[arg-type]
        if isinstance(batch, torch.Tensor):
            return (batch,)
        if isinstance(batch, (tuple, list)) and batch:
            items = list(batch)
            if len(items) == 2 and isinstance(items[0], (tuple, list)):
                return _as_inputs(tuple(items[0]), spec)
            if (
                len(items) == 2
                and isinstance(items[1], torch.Tensor)
                and not items[1].is_floating_point()
                and items[1].dim() <= 1
                and isinstance(items[0], torch.Tensor)
                and items[0].is_floating_point()
            ):
                return (items[0],)  # (inputs, labels)
            return _as_inputs(tuple(items), spec)
        return _as_inputs(batch, spec)
    raise QdqError(
        "no_data",
        f"calibration-data {spec} yielded no batches",
        "make it yield at least one batch, or set input-shapes to calibrate on random data",
    )


def quantizer_summary(q: QuantizerInfo) -> Quantizer:
    """The protocol's Quantizer object, without amax/method (the calibration adds those)."""
    module = q.module
    axis = getattr(module, "axis", None)
    return {
        "name": q.name,
        "site": {"file": q.site["file"], "cls": q.site["cls"], "attr": q.site["attr"]},
        "role": q.role,
        "axis": axis if isinstance(axis, int) else None,
        "amax": amax_value(module),
        "method": None,
        "num_bits": int(getattr(module, "num_bits", 8)),
    }


def amax_value(module: nn.Module) -> Any:
    amax = getattr(module, "amax", None)
    if not isinstance(amax, torch.Tensor) or amax.numel() == 0:
        return None
    values = amax.detach().float().cpu()
    if values.dim() == 0:
        return float(values)
    if values.numel() == 1 and getattr(module, "axis", None) is None:
        return float(values.reshape(()))
    return [float(v) for v in values.reshape(-1)]


def loaded_result(project: Project) -> LoadResult:
    return {
        "model_class": type(project.model).__name__,
        "quantizers": [quantizer_summary(q) for q in project.quantizers if q.role != "output"],
        "inputs": project.inputs_description(),
        "calibration_data_kind": project.calibration_data_kind,
        "eval_data": project.eval_source is not None,
        "library_modules": project.library_modules,
        "notes": project.load_notes,
    }
