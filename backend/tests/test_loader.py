"""The loader in process: batch forms, specs, package modules, source overrides, traceback trimming."""

import os
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from qdq_backend import loader  # noqa: E402
from qdq_backend.errors import QdqError, user_traceback  # noqa: E402

HELPER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "qdq_backend", "qdq_quant.py")


@pytest.fixture(autouse=True)
def isolated_imports(tmp_path):
    # forget only what the test's project imported; dropping library modules (torch, triton) breaks them
    path = list(sys.path)
    yield
    sys.path[:] = path
    root = str(tmp_path)
    for name, module in list(sys.modules.items()):
        if (getattr(module, "__file__", None) or "").startswith(root) or name == "qdq_quant":
            del sys.modules[name]


def _events():
    seen = []
    return seen, lambda step, done, total, message: seen.append((step, done, total))


def test_split_batch_forms():
    x, y = torch.zeros(2, 3), torch.tensor([1, 0])
    assert loader.split_batch(x, 1, "d", 0) == ((x,), None)
    inputs, labels = loader.split_batch((x, y), 1, "d", 0)
    assert inputs == (x,) and labels is y
    inputs, labels = loader.split_batch(((x, x), y), 2, "d", 0)
    assert inputs == (x, x) and labels is y
    inputs, labels = loader.split_batch([x, x], 2, "d", 0)
    assert inputs == (x, x) and labels is None
    with pytest.raises(QdqError) as info:
        loader.split_batch((x, x, x, x), 1, "d", 3)
    assert info.value.kind == "shape" and "batch 3" in info.value.message
    with pytest.raises(QdqError) as info:
        loader.split_batch({"x": x}, 1, "d", 0)
    assert info.value.kind == "config"


@pytest.mark.parametrize("spec", ["model.py", "model.py:", ":build", 42, "model.py:not-a-name"])
def test_bad_specs_are_config_errors(tmp_path, spec):
    (tmp_path / "model.py").write_text("")
    with pytest.raises(QdqError) as info:
        loader.parse_spec(spec, "model", str(tmp_path))
    assert info.value.kind == "config" and "file.py:function" in info.value.hint


def _package(tmp_path, with_helper):
    pkg = tmp_path / "proj" / "mypkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "layers.py").write_text("import torch.nn as nn\n\ndef width():\n    return 4\n")
    (pkg / "net.py").write_text(
        textwrap.dedent(
            """
        import torch.nn as nn
        from .layers import width


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(width(), 2)

            def forward(self, x):
                return self.fc(x)


        def build():
            return Net()
        """
        )
    )
    if with_helper:
        (pkg / "qdq_quant.py").write_text(open(HELPER, encoding="utf-8").read())
    return str(tmp_path / "proj"), str(pkg / "net.py")


def test_package_module_with_relative_imports_and_an_override(tmp_path):
    project_dir, net = _package(tmp_path, with_helper=False)
    original = open(net, encoding="utf-8").read()
    quantized = original.replace(
        "from .layers import width", "from .layers import width\nfrom . import qdq_quant  # qdq"
    ).replace("nn.Linear(width(), 2)", "qdq_quant.quant(nn.Linear(width(), 2))")
    events, progress = _events()
    project = loader.load(
        {
            "project_dir": project_dir,
            "model": "mypkg/net.py:build",
            "input_shapes": [[3, 4]],
            "model_source_override": {"file": "mypkg/net.py", "source": quantized},
        },
        progress,
    )
    names = [q.name for q in project.quantizers]
    assert names == ["fc.input_quantizer", "fc.weight_quantizer", "fc.output_quantizer"]
    assert project.quantizers[0].site == {"file": net, "cls": "Net", "attr": "fc.input_quantizer"}
    assert project.calibration_data_kind == "random-normal"
    assert open(net, encoding="utf-8").read() == original  # the file on disk is never written
    assert events[-1] == ("load", 3, 3)
    # without the override the same file loads as the float model (a fresh import, not the cached one)
    project = loader.load(
        {"project_dir": project_dir, "model": "mypkg/net.py:build", "input_shapes": [[3, 4]]}, progress
    )
    assert project.quantizers == []


def test_helper_next_to_the_model_is_the_one_used(tmp_path):
    project_dir, net = _package(tmp_path, with_helper=True)
    source = (
        open(net, encoding="utf-8")
        .read()
        .replace("from .layers import width", "from .layers import width\nfrom . import qdq_quant  # qdq")
        .replace("nn.Linear(width(), 2)", "qdq_quant.quant(nn.Linear(width(), 2))")
    )
    with open(net, "w", encoding="utf-8") as handle:
        handle.write(source)
    project = loader.load(
        {"project_dir": project_dir, "model": "mypkg/net.py:build", "input_shapes": [[3, 4]]}, lambda *a: None
    )
    quantizer_module = type(project.quantizers[0].module).__module__
    assert quantizer_module == "mypkg.qdq_quant"


def test_example_inputs_and_input_names(tmp_path):
    (tmp_path / "m.py").write_text(
        textwrap.dedent(
            """
        import torch
        import torch.nn as nn


        class Two(nn.Module):
            def forward(self, image, mask):
                return image * mask, image.sum()


        def build():
            return Two()


        def example():
            return torch.ones(1, 2), torch.zeros(1, 2)
        """
        )
    )
    project = loader.load(
        {"project_dir": str(tmp_path), "model": "m.py:build", "example_inputs": "m.py:example"}, lambda *a: None
    )
    assert project.input_names == ["image", "mask"]
    assert project.output_names == ["output0", "output1"]
    assert project.inputs_description()[1] == {"name": "mask", "shape": [1, 2], "dtype": "float32"}
    assert not project.model.training


def test_user_traceback_keeps_only_user_frames(tmp_path):
    (tmp_path / "user_mod.py").write_text("def boom():\n    import json\n    return json.loads('{')\n")
    sys.path.insert(0, str(tmp_path))
    import user_mod  # noqa: WPS433

    try:
        user_mod.boom()
    except ValueError as exc:
        text = user_traceback(exc, [str(tmp_path)])
    assert "user_mod.py" in text and "json/decoder.py" not in text and "JSONDecodeError" in text


def test_reload_keeps_libraries_installed_inside_the_project(tmp_path):
    # a virtualenv inside the project: its packages must not be re-imported on the next load (torch would break)
    site = tmp_path / ".venv" / "lib" / "python3" / "site-packages"
    (site / "fakepkg_d2").mkdir(parents=True)
    (site / "fakepkg_d2" / "__init__.py").write_text("WIDTH = 3\n")
    sys.path.insert(0, str(site))
    (tmp_path / "m.py").write_text(
        "import torch.nn as nn\nimport fakepkg_d2\n\n\ndef build():\n    return nn.Linear(fakepkg_d2.WIDTH, 2)\n"
    )
    params = {"project_dir": str(tmp_path), "model": "m.py:build", "input_shapes": [[1, 3]]}
    loader.load(params, lambda *a: None)
    library, model_module = sys.modules["fakepkg_d2"], sys.modules["m"]
    loader.load(params, lambda *a: None)
    assert sys.modules["fakepkg_d2"] is library  # kept
    assert sys.modules["m"] is not model_module  # the project's own file is imported afresh


def _project(directory, factory, width):
    directory.mkdir()
    (directory / "data.py").write_text(f"WIDTH = {width}\n")
    (directory / "model.py").write_text(
        f"import torch.nn as nn\nfrom data import WIDTH\n\n\ndef {factory}():\n    return nn.Linear(WIDTH, 2)\n"
    )
    return {"project_dir": str(directory), "model": f"model.py:{factory}", "input_shapes": [[1, width]]}


def test_a_second_project_with_the_same_file_names_gets_its_own_modules(tmp_path):
    # another project's model.py and data.py stay in sys.modules under the same names; the loader must not hand
    # them back for this project's files (the failure was "model.py has no 'build_model'")
    first = loader.load(_project(tmp_path / "a", "build_a", 3), lambda *a: None)
    second = loader.load(_project(tmp_path / "b", "build_model", 5), lambda *a: None)
    assert first.model.in_features == 3 and second.model.in_features == 5
    assert os.path.dirname(sys.modules["model"].__file__) == str(tmp_path / "b")
    # and back: the first project loads its own files again
    again = loader.load(
        {"project_dir": str(tmp_path / "a"), "model": "model.py:build_a", "input_shapes": [[1, 3]]}, lambda *a: None
    )
    assert again.model.in_features == 3
