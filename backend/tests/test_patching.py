"""In-memory patching of library modules: install, build, restore, on a small package made in tmp_path."""

import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")

from qdq_backend import patching  # noqa: E402
from qdq_backend.errors import QdqError  # noqa: E402

MODELS = textwrap.dedent(
    """
    import torch
    from torch import nn


    def scale(x):
        return x * 1.0


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return scale(self.fc(x))
    """
)


@pytest.fixture()
def fakelib(tmp_path, monkeypatch):
    pkg = tmp_path / "fakelib_qdq"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .models import Net\n")
    (pkg / "models.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "fakelib_qdq.models"
    patching.restore()
    for name in [n for n in sys.modules if n.startswith("fakelib_qdq")]:
        del sys.modules[name]


def test_module_source_reads_the_file_without_writing(fakelib):
    info = patching.module_source(fakelib)
    assert info["file"].endswith("models.py")
    assert "class Net" in info["source"]


def test_install_swaps_classes_everywhere_and_restore_gives_them_back(fakelib):
    import fakelib_qdq
    import fakelib_qdq.models as models

    original_class = models.Net
    torch.manual_seed(0)
    x = torch.randn(2, 4)
    net = original_class()
    before = net(x)

    patched = patching.module_source(fakelib)["source"].replace("x * 1.0", "x * 2.0")
    assert patching.install([{"module": fakelib, "source": patched}]) == [fakelib]
    assert models.Net is not original_class
    assert fakelib_qdq.Net is models.Net, "the package's re-export must point at the patched class"
    patched_net = fakelib_qdq.Net()
    patched_net.load_state_dict(net.state_dict())
    assert torch.allclose(patched_net(x), before * 2)

    assert patching.restore() == [fakelib]
    assert models.Net is original_class and fakelib_qdq.Net is original_class
    rebuilt = fakelib_qdq.Net()
    rebuilt.load_state_dict(net.state_dict())
    assert torch.equal(rebuilt(x), before), "after restore the library's own code runs again"


def test_patched_source_that_fails_leaves_the_module_untouched(fakelib):
    import fakelib_qdq.models as models

    original_class = models.Net
    with pytest.raises(QdqError) as err:
        patching.install([{"module": fakelib, "source": "raise RuntimeError('boom')\n"}])
    assert err.value.kind == "import" and "fakelib_qdq.models" in err.value.message
    assert models.Net is original_class and patching.installed() == []


def test_patch_missing_a_class_names_it(fakelib):
    with pytest.raises(QdqError) as err:
        patching.install([{"module": fakelib, "source": "def scale(x):\n    return x\n"}])
    assert "Net" in err.value.message
    assert patching.installed() == []


def test_syntax_error_in_patch_is_a_config_error(fakelib):
    with pytest.raises(QdqError) as err:
        patching.install([{"module": fakelib, "source": "def broken(:\n"}])
    assert err.value.kind == "config"


def test_unknown_module_is_a_clear_error():
    with pytest.raises(QdqError) as err:
        patching.module_source("no_such_package_qdq.models")
    assert "no_such_package_qdq" in err.value.message


def test_prepare_model_switches_non_eager_attention_of_a_patched_module(fakelib):
    # transformers selects the attention function from config._attn_implementation; only "eager" runs the
    # module's own (patched) code, so a patched model configured for sdpa is switched to it, with a note.
    import types as _types

    import fakelib_qdq.models as models

    patching.install([{"module": fakelib, "source": patching.module_source(fakelib)["source"]}])
    net = models.Net()
    net.config = _types.SimpleNamespace(_attn_implementation="sdpa")
    notes = patching.prepare_model(net)
    assert net.config._attn_implementation == "eager"
    assert len(notes) == 1 and "'sdpa' switched to 'eager'" in notes[0]
    assert patching.prepare_model(net) == []  # already eager: nothing to say
    net.fused_attn = True  # timm's flag: F.scaled_dot_product_attention when True
    notes = patching.prepare_model(net)
    assert net.fused_attn is False and "fused_attn switched off on 1 module" in notes[0]
    patching.restore()
    net.config._attn_implementation = "sdpa"
    assert patching.prepare_model(net) == []  # nothing patched: nothing to switch
    assert net.config._attn_implementation == "sdpa"


LAYERS = textwrap.dedent(
    """
    from torch import nn


    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 4)

        def forward(self, x):
            return self.proj(x)
    """
)

BLOCKS = textwrap.dedent(
    """
    from torch import nn
    from .layers import Attention


    class Block(nn.Module):
        def __init__(self, attn_layer=Attention, *, norm=Attention):
            super().__init__()
            self.attn = attn_layer()
            self.norm = norm()

        def forward(self, x):
            return self.norm(self.attn(x))
    """
)


@pytest.fixture()
def bindlib(tmp_path, monkeypatch):
    pkg = tmp_path / "bindlib_qdq"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .layers import Attention\nfrom .blocks import Block\n")
    (pkg / "layers.py").write_text(LAYERS)
    (pkg / "blocks.py").write_text(BLOCKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    patching.restore()
    for name in [n for n in sys.modules if n.startswith("bindlib_qdq")]:
        del sys.modules[name]


@pytest.mark.parametrize(
    "order", [["bindlib_qdq.blocks", "bindlib_qdq.layers"], ["bindlib_qdq.layers", "bindlib_qdq.blocks"]]
)
@pytest.mark.parametrize("sort", [True, False])
def test_classes_bound_in_default_arguments_are_the_patched_ones_in_any_order(bindlib, order, sort, monkeypatch):
    # timm's Block(attn_layer=Attention) binds the class when its module runs: whichever module is patched
    # first, the block must build the patched attention, and restore must give the original back.
    import bindlib_qdq.blocks as blocks

    original_block = blocks.Block
    if not sort:  # the rebinding alone, without the dependency order
        monkeypatch.setattr(patching, "_dependency_order", lambda patches: patches)
    sources = {m: patching.module_source(m)["source"] + "\nPATCHED = True\n" for m in order}
    patching.install([{"module": m, "source": sources[m]} for m in order])
    block = sys.modules["bindlib_qdq.blocks"].Block()
    assert type(block.attn).__module__ == "bindlib_qdq.layers"
    assert getattr(sys.modules[type(block.attn).__module__], "PATCHED", False)
    assert type(block.attn) is sys.modules["bindlib_qdq.layers"].Attention  # the patched class, from defaults
    assert type(block.norm) is sys.modules["bindlib_qdq.layers"].Attention  # keyword-only defaults too
    assert patching.library_modules(block) == []  # a tmp_path package is not installed code
    patching.restore()
    assert blocks.Block is original_block
    plain = original_block()
    assert not hasattr(sys.modules["bindlib_qdq.layers"], "PATCHED")
    assert type(plain.attn) is sys.modules["bindlib_qdq.layers"].Attention


def test_library_modules_lists_installed_modules_with_weights_not_activations():
    timm = pytest.importorskip("timm", reason="timm from PyPI is not installed for this interpreter")
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=1)
    found = patching.library_modules(model)
    assert found[0] == "timm.models.vision_transformer"
    assert "timm.layers.attention" in found and "timm.layers.mlp" in found
    assert not any(m.startswith("torch") for m in found)
    assert "timm.layers.activations" not in found  # GELU holds no weights: its formula is no residual


def test_torchvision_registry_takes_the_patched_builder_and_gets_the_original_back():
    models = pytest.importorskip("torchvision.models")
    from torchvision.models import _api

    name = "torchvision.models.resnet"
    original_builder = _api.BUILTIN_MODELS["resnet18"]
    source = patching.module_source(name)["source"]
    patched = source + "\n\nQDQ_PATCHED = True\n"
    patching.install([{"module": name, "source": patched}])
    try:
        assert sys.modules[name].QDQ_PATCHED
        assert _api.BUILTIN_MODELS["resnet18"] is not original_builder
        assert _api.BUILTIN_MODELS["resnet18"] is sys.modules[name].resnet18
        assert models.resnet18 is sys.modules[name].resnet18
    finally:
        patching.restore()
    assert _api.BUILTIN_MODELS["resnet18"] is original_builder
    assert models.resnet18 is original_builder
    assert not hasattr(sys.modules[name], "QDQ_PATCHED")
