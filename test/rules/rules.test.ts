// One negative case per rule (code that looks like what the rule reports but is fine), run through the real
// parser and model index. Where each rule fires (code, severity, range, message, fix) lives in its fixture and
// snapshot under test/fixtures/rules (test/rules/fixtures.test.ts); these check that it stays quiet nearby.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { diagnose, py } from './helpers';
import { allRules } from '../../server/src/rules';

interface Case {
  code: string;
  negative: string;
}

const Q =
  'from pytorch_quantization import nn as quant_nn\nfrom pytorch_quantization.nn import TensorQuantizer\nfrom pytorch_quantization.tensor_quant import QuantDescriptor\n';

const cases: Case[] = [
  {
    code: 'TRT001',
    negative: py`
      import torch
      def f(input_ids, pad):
          mask = input_ids.ne(pad).float()
          return torch.cumsum(mask, dim=1) * mask
    `,
  },
  {
    code: 'TRT004',
    negative: 'import torch\ndef f(x):\n    return torch.where(x > 0, x, torch.zeros_like(x))\n',
  },
  {
    code: 'TRT005',
    negative: 'import torch\ndef f(x: torch.Tensor):\n    keep = x.gt(0)\n    return x * keep\n',
  },
  {
    code: 'TRT007',
    negative: 'import numpy as np\ndef f(labels):\n    return np.unique(labels)\n',
  },
  {
    code: 'TRT008',
    negative: 'import torch\nimport torch.nn.functional as F\ndef f(ids):\n    return F.one_hot(ids, 10).sum(0)\n',
  },
  {
    code: 'TRT009',
    negative: 'import torch\ndef f(x, edges):\n    return (x[..., None] >= edges).float().sum(0)\n',
  },
  {
    code: 'TRT010',
    negative: 'import torch\ndef f(edges, x):\n    return (x[..., None] >= edges[..., None, :]).float().sum(-1)\n',
  },
  {
    code: 'TRT013',
    negative: 'import torch\ndef export(model, x):\n    model.eval()\n    torch.onnx.export(model, x, "m.onnx")\n',
  },
  {
    code: 'TRT017',
    negative:
      'import torch\ndef f(n):\n    a = torch.arange(n).view(1, n).float()\n    b = torch.ones(n, 1)\n    return a @ b\n',
  },
  {
    code: 'TRT022',
    negative: 'import torch\ndef f(scores):\n    return torch.topk(scores, 100, sorted=True)\n',
  },
  {
    code: 'TRT025',
    negative: 'import torch\ndef f(out, idx, src):\n    return out.scatter(0, idx, src)\n',
  },
  {
    code: 'TRT026',
    negative: 'import torch\ndef f(out, idx, v):\n    return out.index_put_((idx,), v)\n',
  },
  {
    code: 'TRT029',
    negative: 'import torch\ndef f(x, basis):\n    return x @ basis\n',
  },
  {
    code: 'TRT030',
    negative: 'import torch\ndef f(x, y):\n    a = x.gt(0)\n    b = y.gt(0)\n    return a & b\n',
  },
  {
    code: 'TRT031',
    negative: 'import torch\ndef f(x, y):\n    a = x.gt(0).int()\n    b = y.lt(1).int()\n    return a + b\n',
  },
  {
    code: 'TRT032',
    negative: 'import torch\ndef f(mask):\n    return mask.bool()\n',
  },
  {
    code: 'TRT033',
    negative: 'import torch\ndef f(n):\n    pos = torch.arange(0.0, n)\n    return torch.exp(pos)\n',
  },
  {
    code: 'TRT049',
    negative: 'import torch\nfrom torch import nn\ndef f(model):\n    return model.eval()\n',
  },
  {
    code: 'TRT060',
    negative:
      'import tensorrt as trt\ndef build(config):\n    config.set_flag(trt.BuilderFlag.TF32)\n    return config\n',
  },
  {
    code: 'TRT061',
    negative: 'import subprocess\nsubprocess.run("trtexec --onnx=m.onnx --saveEngine=m.plan", check=True)\n',
  },
  {
    code: 'TRT062',
    negative: py`
      import torch.nn as nn
      import qdq_quant  # qdq
      class Stem(nn.Module):
          def __init__(self):
              super().__init__()
              self.conv = qdq_quant.keep_float(nn.Conv2d(3, 64, 7, stride=2))
              self.conv2 = qdq_quant.quant(nn.Conv2d(64, 64, 3))
    `,
  },
  {
    code: 'TRT063',
    negative: py`
      import torch.nn as nn
      import qdq_quant  # qdq
      class Block(nn.Module):
          def __init__(self, dim):
              super().__init__()
              self.fc = qdq_quant.quant(nn.Linear(dim, dim))
          def forward(self, x):
              x = x.flatten(2).transpose(1, 2)
              return self.fc(x)
    `,
  },
  {
    code: 'TRT064',
    negative: py`
      import torch
      import torch.nn as nn
      m = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8)).eval()
      torch.onnx.export(m, torch.randn(1, 8), "m.onnx", opset_version=17)
      n = nn.Sequential(nn.Linear(8, 8)).eval()
    `,
  },
  {
    code: 'TRT065',
    negative: py`
      import torch.nn as nn
      import qdq_quant  # qdq
      class Head(nn.Module):
          def __init__(self):
              super().__init__()
              self.fc = qdq_quant.quant(nn.Linear(256, 16))
              self.head = nn.Linear(256, 3)
    `,
  },
  {
    code: 'TRT066',
    negative: 'import torch\ndef f(scores, names):\n    names.sort()\n    return torch.topk(scores, 5, dim=1)\n',
  },
  {
    code: 'TRT067',
    negative: 'import torch\ndef f(mask, x):\n    return mask.cumsum(-1, dtype=torch.float32), x.flip(-1).cumsum(-1)\n',
  },
  {
    code: 'QDQ001',
    negative: Q + 'q = TensorQuantizer(QuantDescriptor(num_bits=8))\n',
  },
  {
    code: 'QDQ002',
    negative: 'import torch\ndef f(x):\n    return torch.fake_quantize_per_tensor_affine(x, 0.05, 0, -128, 127)\n',
  },
  {
    code: 'QDQ003',
    negative: py`
      import torch
      from torch import nn
      import qdq_quant  # qdq
      class M(nn.Module):
          def __init__(self):
              super().__init__()
              self.act_quantizer = qdq_quant.TensorQuantizer()  # qdq
          def forward(self, x):
              return torch.relu(self.act_quantizer(x))
    `,
  },
  {
    code: 'QDQ004',
    negative: Q + 'fc = quant_nn.QuantLinear(4, 8, quant_desc_weight=QuantDescriptor(num_bits=8, axis=(0,)))\n',
  },
  {
    code: 'QDQ005',
    negative: py`
      import torch
      from torch import nn
      import qdq_quant  # qdq
      class Attn(nn.Module):
          def __init__(self):
              super().__init__()
              self.matmul0_a_quantizer = qdq_quant.TensorQuantizer()  # qdq
              self.matmul0_b_quantizer = qdq_quant.TensorQuantizer()  # qdq
          def forward(self, q, k):
              return torch.matmul(self.matmul0_a_quantizer(q), self.matmul0_b_quantizer(k))
    `,
  },
  {
    code: 'QDQ006',
    negative: py`
      import torch
      from torch import nn
      from pytorch_quantization import nn as quant_nn
      class M(nn.Module):
          def __init__(self):
              super().__init__()
              self.fc = quant_nn.QuantLinear(4, 4)
              self.in_quantizer = quant_nn.TensorQuantizer(quant_nn.QuantLinear.default_quant_desc_input)
          def forward(self, x):
              return torch.nn.functional.gelu(self.fc(self.in_quantizer(x)))
    `,
  },
  {
    code: 'QDQ008',
    negative: py`
      import torch
      from torch import nn
      import qdq_quant  # qdq
      class Attn(nn.Module):
          def __init__(self):
              super().__init__()
              self.matmul0_a_quantizer = qdq_quant.TensorQuantizer()  # qdq
          def forward(self, q, k):
              return torch.matmul(self.matmul0_a_quantizer(q), k)
    `,
  },
  {
    code: 'QDQ007',
    negative: py`
      from torch import nn
      import qdq_quant  # qdq
      class Block(nn.Module):
          def __init__(self, c):
              super().__init__()
              self.add0_residual_quantizer = qdq_quant.TensorQuantizer()  # qdq
              self.conv1 = qdq_quant.quant(nn.Conv2d(c, c, 3, padding=1))
              self.bn1 = nn.BatchNorm2d(c)
          def forward(self, x):
              identity = x
              out = self.bn1(self.conv1(x))
              out += self.add0_residual_quantizer(identity)
              return out
    `,
  },
  {
    code: 'QDQ010',
    negative: py`
      import torch
      from torch import nn
      import qdq_quant  # qdq
      class M(nn.Module):
          def __init__(self):
              super().__init__()
              self.a_quantizer = qdq_quant.TensorQuantizer()  # qdq
          def forward(self, a, b):
              return torch.cat([self.a_quantizer(a), self.a_quantizer(b)], dim=1)
    `,
  },
];

describe('every rule: a negative case', () => {
  for (const c of cases) {
    it(`${c.code} stays quiet on the negative case`, () => {
      assert.deepEqual(
        diagnose(c.code, c.negative).map((d) => `${d.code}: ${d.message}`),
        [],
      );
    });
  }

  it('covers every registered rule', () => {
    const tested = new Set(cases.map((c) => c.code));
    assert.deepEqual(
      allRules.map((r) => r.code).filter((code) => !tested.has(code)),
      [],
    );
  });

  it('every rule has docs, a title and a code that matches its id pattern', () => {
    for (const r of allRules) {
      assert.match(r.code, /^(TRT|QDQ)\d{3}$/);
      assert.ok(r.title.length > 2 && r.docs.includes(r.code), r.code);
    }
  });
});

describe('TRT013 call forms', () => {
  it('finds torch.onnx.export through aliases and dropout(training=True) given positionally', () => {
    const text =
      'import torch\nimport torch.onnx as tonnx\nfrom torch.onnx import export\nm = torch.nn.Linear(2, 2)\ntonnx.export(m, torch.zeros(1, 2), "a.onnx")\nexport(m, torch.zeros(1, 2), "b.onnx")\ny = torch.nn.functional.dropout(torch.zeros(2), 0.1, True)\nmodel_export = obj.export(m)\n';
    const lines = diagnose('TRT013', text).map((d) => d.range.start.line);
    assert.deepEqual(lines, [4, 5, 6]);
  });
});
