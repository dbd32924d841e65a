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
import linecache
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


def _dependency_order(patches: List[Dict[str, str]]) -> List[Dict[str, str]]:
    """Modules whose classes others use come first (a stable topological order over the imported modules).

    Not needed for correctness (``_rebind_defaults`` fixes references bound early), but it means each module
    already imports the patched classes of the modules it depends on when its own patched text runs.
    """
    names = [p["module"] for p in patches]
    uses: Dict[str, set] = {}
    for name in names:
        module = sys.modules.get(name)
        refs = set()
        for value in getattr(module, "__dict__", {}).values() if module is not None else ():
            owner = getattr(value, "__module__", None) if _is_replaceable(value) else None
            if owner in names and owner != name:
                refs.add(owner)
        uses[name] = refs
    ordered: List[str] = []
    visiting: set = set()

    def visit(name: str) -> None:
        if name in ordered or name in visiting:
            return  # a cycle: keep the listed order for it
        visiting.add(name)
        for dep in sorted(uses.get(name, ()), key=names.index):
            visit(dep)
        visiting.discard(name)
        ordered.append(name)

    for name in names:
        visit(name)
    by_name = {p["module"]: p for p in patches}
    return [by_name[n] for n in ordered]


# (holder, attribute, original value): function defaults and class attributes that held an original object
_rebound: List[Tuple[Any, str, Any]] = []


def _swap_tuple(values: Any, mapping: Dict[int, Tuple[Any, Any]]) -> Any:
    if not isinstance(values, tuple):
        return None
    swapped = tuple(mapping[id(v)][1] if id(v) in mapping and mapping[id(v)][0] is v else v for v in values)
    return swapped if any(a is not b for a, b in zip(swapped, values)) else None


def _swap_dict(values: Any, mapping: Dict[int, Tuple[Any, Any]]) -> Any:
    if not isinstance(values, dict):
        return None
    swapped = {k: mapping[id(v)][1] if id(v) in mapping and mapping[id(v)][0] is v else v for k, v in values.items()}
    return swapped if any(swapped[k] is not values[k] for k in values) else None


def _rebind_function(fn: Any, mapping: Dict[int, Tuple[Any, Any]]) -> None:
    fn = getattr(fn, "__func__", fn)  # staticmethod / classmethod
    if not isinstance(fn, types.FunctionType):
        return
    for attr, swap in (("__defaults__", _swap_tuple), ("__kwdefaults__", _swap_dict)):
        original = getattr(fn, attr)
        new = swap(original, mapping)
        if new is not None:
            setattr(fn, attr, new)
            _rebound.append((fn, attr, original))


def _rebind_defaults(packages: set, mapping: Dict[int, Tuple[Any, Any]]) -> None:
    """Point default arguments and class attributes that captured an original class or function at its twin.

    ``def __init__(self, attn_layer=Attention)`` binds the class when the defining module runs: a module
    patched (or merely imported) before the one defining ``Attention`` keeps the original class in its
    defaults, and the model would silently build unquantized attention. Rewriting them after every module is
    patched makes the order of patch-modules irrelevant.
    """
    for mod_name, mod in list(sys.modules.items()):
        if mod is None or mod_name.split(".")[0] not in packages:
            continue
        for value in list(getattr(mod, "__dict__", {}).values()):
            if isinstance(value, types.FunctionType) and value.__module__ == mod_name:
                _rebind_function(value, mapping)
            elif isinstance(value, type) and value.__module__ == mod_name:
                for key, member in list(vars(value).items()):
                    hit = mapping.get(id(member))
                    if hit is not None and hit[0] is member and not key.startswith("__"):
                        setattr(value, key, hit[1])
                        _rebound.append((value, key, member))
                    else:
                        _rebind_function(member, mapping)


def _undo_rebinds() -> None:
    while _rebound:
        holder, attr, original = _rebound.pop()
        setattr(holder, attr, original)


def _rebind_installed() -> None:
    mapping: Dict[int, Tuple[Any, Any]] = {}
    for name, (saved, _, _) in _installed.items():
        module = sys.modules.get(name)
        current = getattr(module, "__dict__", {})
        for key, old in saved.items():
            new = current.get(key)
            if new is not None and new is not old and _is_replaceable(old) and getattr(old, "__module__", None) == name:
                mapping[id(old)] = (old, new)
    if mapping:
        _rebind_defaults({n.split(".")[0] for n in _installed}, mapping)


def install(patches: List[Dict[str, str]], progress: Optional[Any] = None) -> List[str]:
    """Run each patched source inside its module; return the names patched. All or nothing, any order."""
    done: List[str] = []
    patches = _dependency_order(patches)
    try:
        for index, patch in enumerate(patches):
            name, source = patch["module"], patch["source"]
            if progress is not None:
                progress(index, len(patches), f"patching {name}")
            if name in _installed:
                restore([name])
            _install_one(name, source)
            done.append(name)
        _undo_rebinds()
        _rebind_installed()
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

    # Tracebacks and inspect (an error naming a quantizer's line) read the text that runs, not the file's.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
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
    _undo_rebinds()
    for name in reversed(targets):
        saved, replaced, suspended = _installed.pop(name)
        module = sys.modules.get(name)
        if module is not None:
            module.__dict__.clear()
            module.__dict__.update(saved)
            linecache.cache.pop(getattr(module, "__file__", None) or f"<{name}>", None)
        for namespace, key, original in reversed(replaced):
            namespace[key] = original
        _resume_registries(name, suspended)
    _rebind_installed()  # the modules still patched keep their references
    return targets


def _model_name(model: Any, sub: Any) -> str:
    return type(sub).__name__ if sub is model else f"{type(sub).__name__} (in {type(model).__name__})"


def _switch_transformers_attention(model: Any, patched: set) -> List[str]:
    """transformers picks the attention function from ``config._attn_implementation``; only ``"eager"`` runs
    the module's own (patched, quantized) ``eager_attention_forward``, so sdpa/flash are switched to it."""
    notes: List[str] = []
    done: set = set()
    for sub in model.modules():
        config = getattr(sub, "config", None)
        impl = getattr(config, "_attn_implementation", None)
        if impl is None or impl == "eager" or id(config) in done or type(sub).__module__ not in patched:
            continue
        switch = getattr(sub, "set_attn_implementation", None)
        try:
            if callable(switch):
                switch("eager")
            else:
                config._attn_implementation = "eager"  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - a model class that refuses eager
            raise QdqError(
                "config",
                f"{_model_name(model, sub)} uses attn_implementation={impl!r} and refused 'eager' "
                f"({type(exc).__name__}: {exc}): its attention matmuls cannot carry quantizers",
                'build the model with attn_implementation="eager" in the factory, or keep the module out with '
                f'patch-modules = ["!{type(sub).__module__}"]',
            ) from None
        done.add(id(config))
        notes.append(
            f"{_model_name(model, sub)}: attn_implementation {impl!r} switched to 'eager' so the attention "
            "matmuls carry quantizers (the same math, explicit MatMul/Softmax)"
        )
    return notes


def _switch_fused_attention(model: Any, patched: set) -> List[str]:
    """timm (and code like it) keeps a ``fused_attn`` flag per attention module: True calls
    F.scaled_dot_product_attention, where no quantizer can sit; False runs the explicit q @ k.T path."""
    switched: Dict[str, int] = {}
    for sub in model.modules():
        if getattr(sub, "fused_attn", None) is True and type(sub).__module__ in patched:
            sub.fused_attn = False
            key = f"{type(sub).__module__}.{type(sub).__name__}"
            switched[key] = switched.get(key, 0) + 1
    return [
        f"{key}: fused_attn switched off on {count} module(s) (explicit matmul path, so the attention matmuls "
        "carry quantizers; F.scaled_dot_product_attention would leave them float)"
        for key, count in switched.items()
    ]


def prepare_model(model: Any) -> List[str]:
    """Put a model built from patched modules on the code paths that carry quantizers; return notes."""
    if not _installed or not hasattr(model, "modules"):
        return []
    patched = set(_installed)
    return _switch_transformers_attention(model, patched) + _switch_fused_attention(model, patched)


def check_model(model: Any) -> None:
    """Kept for callers of the old name: prepare_model switches attention instead of refusing it."""
    prepare_model(model)


# Packages whose modules are never patched: torch itself (its layers are what quantizers wrap) and qdq's.
_NEVER = {"torch", "builtins", "qdq_quant", "qdq_backend", "typing", "functools", "abc"}


def library_modules(model: Any) -> List[str]:
    """Installed modules that define the classes of the model's submodules with weights or children (and the
    bases whose forward they run), in the order first met walking the model. These are what `qdq run` patches
    when patch-modules is unset."""
    from .errors import is_library_path  # noqa: WPS433

    found: List[str] = []
    if not hasattr(model, "modules"):
        return found
    for sub in model.modules():
        if not any(True for _ in sub.children()) and not any(True for _ in sub.parameters(recurse=False)):
            continue  # activations, dropout, identity: nothing to quantize, and formulas are no residuals
        for cls in type(sub).__mro__:
            if cls is not type(sub) and "forward" not in vars(cls):
                continue  # base classes that only add loading/saving (PreTrainedModel, mixins)
            name = getattr(cls, "__module__", "") or ""
            if name.split(".")[0] in _NEVER or name in found or "qdq_quant" in name:
                continue
            module = sys.modules.get(name)
            filename = getattr(module, "__file__", None)
            if not filename or not filename.endswith(".py") or not is_library_path(filename):
                continue
            found.append(name)
    return found


def installed() -> List[str]:
    return list(_installed)
