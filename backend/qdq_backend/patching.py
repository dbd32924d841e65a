"""In-memory patching of installed library modules (the transformer-deploy approach, with qdq's own passes).

The TypeScript side reads an installed module's source (``module_source``), runs the same quantize and
TensorRT-fix passes over it as ``qdq quantize`` / ``qdq fix``, and sends the patched text back. ``install``
executes that text inside the original module object, so every class the library builds afterwards is the
patched one; site-packages is never written to. ``restore`` puts the original objects back everywhere the
patch replaced them, so models built afterwards are the library's own again.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any, Dict, List, Optional, Tuple

from .errors import QdqError

Entry = Tuple[Dict[Any, Any], Any, Any]  # (holder dict, key, original object)

# module name -> (original namespace snapshot, references replaced, registry entries suspended)
_installed: Dict[str, Tuple[Dict[str, Any], List[Entry], List[Entry]]] = {}


def module_source(name: str) -> Dict[str, str]:
    """Where an importable module's source lives, without running the module itself."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as exc:  # a parent package failed to import, or a bad name
        raise QdqError(
            "import",
            f"cannot find module {name!r}: {exc}",
            "check the module name in patch-modules and that its package is installed in this interpreter",
        ) from None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise QdqError(
            "config",
            f"module {name!r} has no Python source file (origin: {getattr(spec, 'origin', None)})",
            "patch-modules lists modules written in Python, such as transformers.models.bert.modeling_bert",
        )
    with open(spec.origin, encoding="utf-8") as handle:
        source = handle.read()
    return {"module": name, "file": spec.origin, "source": source}


def _ensure_helper_importable() -> None:
    # Patched library code says `import qdq_quant`; serve it the backend's own copy.
    if "qdq_quant" not in sys.modules:
        from . import qdq_quant  # noqa: WPS433 (imported on demand: torch is heavy)

        sys.modules["qdq_quant"] = qdq_quant


def _is_replaceable(obj: Any) -> bool:
    return isinstance(obj, (type, types.FunctionType))


def _replace_references(package: str, mapping: Dict[int, Tuple[Any, Any]]) -> List[Entry]:
    """Point every module of the same top-level package that holds an original object at its patched twin."""
    replaced: List[Entry] = []
    for mod_name, mod in list(sys.modules.items()):
        if mod is None or not (mod_name == package or mod_name.startswith(package + ".")):
            continue
        namespace = getattr(mod, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for key, value in list(namespace.items()):
            hit = mapping.get(id(value))
            if hit is not None and hit[0] is value:
                namespace[key] = hit[1]
                replaced.append((namespace, key, value))
    return replaced


def _suspend_registries(package: str, name: str) -> List[Entry]:
    """Take the module's own functions and classes out of its package's registry dicts.

    Libraries register builders when their module runs (torchvision's @register_model fills
    BUILTIN_MODELS and refuses a second entry of the same name); re-running the patched source
    must find those names free, and the patched builders are what gets registered.
    """
    suspended: List[Entry] = []
    for mod_name, mod in list(sys.modules.items()):
        if mod is None or not (mod_name == package or mod_name.startswith(package + ".")):
            continue
        for attr, registry in list(getattr(mod, "__dict__", {}).items()):
            if type(registry) is not dict or attr.startswith("__"):
                continue
            for key, value in list(registry.items()):
                if _is_replaceable(value) and getattr(value, "__module__", None) == name:
                    suspended.append((registry, key, value))
                    del registry[key]
    return suspended


def _resume_registries(name: str, suspended: List[Entry]) -> None:
    """Drop what the patched module registered and put the original entries back."""
    for registry in {id(r): r for r, _, _ in suspended}.values():
        for key, value in list(registry.items()):
            if _is_replaceable(value) and getattr(value, "__module__", None) == name:
                del registry[key]
    for registry, key, value in suspended:
        registry[key] = value


def install(patches: List[Dict[str, str]], progress: Optional[Any] = None) -> List[str]:
    """Run each patched source inside its module; return the names patched. All or nothing."""
    done: List[str] = []
    try:
        for index, patch in enumerate(patches):
            name, source = patch["module"], patch["source"]
            if progress is not None:
                progress(index, len(patches), f"patching {name}")
            if name in _installed:
                restore([name])
            _install_one(name, source)
            done.append(name)
    except Exception:
        restore(done)
        raise
    return done


def _install_one(name: str, source: str) -> None:
    _ensure_helper_importable()
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # the library itself failed to import
        raise QdqError(
            "import",
            f"importing {name} failed: {type(exc).__name__}: {exc}",
            "check that the library imports in this interpreter",
        ) from None
    saved = dict(module.__dict__)
    filename = getattr(module, "__file__", None) or f"<{name}>"
    try:
        code = compile(source, filename, "exec")
    except SyntaxError as exc:
        raise QdqError(
            "config",
            f"the patched source of {name} does not parse: {exc}",
            "report this: qdq's passes produced invalid Python for this library version",
        ) from None
    # Run the patched text in the module's own namespace (so its functions' globals are the module),
    # starting from a namespace that holds only the module's dunders, as a fresh import would.
    package = name.split(".")[0]
    suspended = _suspend_registries(package, name)
    module.__dict__.clear()
    module.__dict__.update({k: v for k, v in saved.items() if k.startswith("__") and k.endswith("__")})
    try:
        exec(code, module.__dict__)  # noqa: S102 (the user asked for this module to be patched)
    except Exception as exc:
        module.__dict__.clear()
        module.__dict__.update(saved)
        _resume_registries(name, suspended)
        raise QdqError(
            "import",
            f"the patched {name} failed to run: {type(exc).__name__}: {exc}",
            "the installed library version may differ from what the patch passes expect; "
            "try `qdq quantize --module " + name + "` to read the patched source",
        ) from None

    missing = [k for k, v in saved.items() if isinstance(v, type) and v.__module__ == name and k not in module.__dict__]
    if missing:
        module.__dict__.clear()
        module.__dict__.update(saved)
        _resume_registries(name, suspended)
        raise QdqError(
            "config",
            f"the patched {name} lacks classes the original defines: {', '.join(missing)}",
            "the installed library version differs from what the patch passes expect",
        )

    mapping: Dict[int, Tuple[Any, Any]] = {}
    for key, old in saved.items():
        new = module.__dict__.get(key)
        if new is not old and _is_replaceable(old) and getattr(old, "__module__", None) == name:
            mapping[id(old)] = (old, new)
    replaced = _replace_references(package, mapping)
    _installed[name] = (saved, replaced, suspended)


def restore(names: Optional[List[str]] = None) -> List[str]:
    """Undo install for the given modules (all when None); return the names restored."""
    targets = list(_installed) if names is None else [n for n in names if n in _installed]
    for name in reversed(targets):
        saved, replaced, suspended = _installed.pop(name)
        module = sys.modules.get(name)
        if module is not None:
            module.__dict__.clear()
            module.__dict__.update(saved)
        for namespace, key, original in reversed(replaced):
            namespace[key] = original
        _resume_registries(name, suspended)
    return targets


def _model_name(model: Any, sub: Any) -> str:
    return type(sub).__name__ if sub is model else f"{type(sub).__name__} (in {type(model).__name__})"


def check_model(model: Any) -> None:
    """Refuse a model whose patched code would not run: transformers picks the attention function from
    ``config._attn_implementation``, and only ``"eager"`` calls the module's own (patched, quantized)
    ``eager_attention_forward``; with sdpa/flash the attention matmuls would stay float and uncalibrated."""
    if not _installed or not hasattr(model, "modules"):
        return
    patched = set(_installed)
    for sub in model.modules():
        if type(sub).__module__ not in patched:
            continue
        config = getattr(sub, "config", None)
        impl = getattr(config, "_attn_implementation", None)
        if impl is not None and impl != "eager":
            raise QdqError(
                "config",
                f"{_model_name(model, sub)} uses attn_implementation={impl!r}: with patch-modules only the eager "
                f"attention of {type(sub).__module__} is quantized, so its attention matmuls would stay float",
                'build the model with attn_implementation="eager" in the factory, e.g. '
                'BertModel(BertConfig(..., attn_implementation="eager")) or '
                'from_pretrained(name, attn_implementation="eager")',
            )


def installed() -> List[str]:
    return list(_installed)
