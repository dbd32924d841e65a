// A factory returning a tuple that holds a weighted layer (timm's create_classifier: pool, fc): the call sites
// that unpack it get `self.pool, self.fc = qdq_quant.quant(create_classifier(...))`, and no other call of it is
// touched. The library is a package on disk, resolved like timm's (fixes/importedLayers.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { parsePython } from '../../server/src/analysis';
import { helperFileText, quantizeFile, unquantizeFile } from '../../server/src/fixes';
import { importedWeightedLayers } from '../../server/src/fixes/importedLayers';
import { floatWeightedLayers } from '../../server/src/fixes/floatLayers';
import { pythonParseErrors } from './pyast';

// timm/layers/classifier.py, cut down: the Linear comes from a helper factory through a local name.
const CLASSIFIER = `import torch.nn as nn
from .pool import SelectAdaptivePool2d


def _create_pool(num_features, pool_type='avg'):
    global_pool = SelectAdaptivePool2d(pool_type=pool_type)
    return global_pool, num_features


def _create_fc(num_features, num_classes, use_conv=False):
    if num_classes <= 0:
        fc = nn.Identity()
    elif use_conv:
        fc = nn.Conv2d(num_features, num_classes, 1, bias=True)
    else:
        fc = nn.Linear(num_features, num_classes, bias=True)
    return fc


def create_classifier(num_features, num_classes, pool_type='avg', drop_rate=None):
    global_pool, num_pooled_features = _create_pool(num_features, pool_type)
    fc = _create_fc(num_pooled_features, num_classes)
    if drop_rate is not None:
        dropout = nn.Dropout(drop_rate)
        return global_pool, dropout, fc
    return global_pool, fc
`;

const POOL = `import torch.nn as nn


class SelectAdaptivePool2d(nn.AdaptiveAvgPool2d):
    def __init__(self, pool_type='avg'):
        super().__init__(1)
`;

const MODEL = `import torch.nn as nn
from lib.layers import create_classifier


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.global_pool, self.fc = create_classifier(64, num_classes, pool_type='avg')
        (self.pool2, self.drop2, self.fc2) = create_classifier(64, num_classes, drop_rate=0.1)
        head = create_classifier(64, num_classes)
        self.pool3, self.fc3 = head
`;

const EXPECTED = `import torch.nn as nn
from lib.layers import create_classifier
import qdq_quant  # qdq


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.global_pool, self.fc = qdq_quant.quant(create_classifier(64, num_classes, pool_type='avg'))
        (self.pool2, self.drop2, self.fc2) = qdq_quant.quant(create_classifier(64, num_classes, drop_rate=0.1))
        head = create_classifier(64, num_classes)
        self.pool3, self.fc3 = head
`;

function library(): { root: string; model: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-tuple-'));
  const pkg = path.join(root, 'lib', 'layers');
  fs.mkdirSync(pkg, { recursive: true });
  fs.writeFileSync(path.join(root, 'lib', '__init__.py'), '');
  fs.writeFileSync(path.join(pkg, '__init__.py'), 'from .classifier import create_classifier\n');
  fs.writeFileSync(path.join(pkg, 'classifier.py'), CLASSIFIER);
  fs.writeFileSync(path.join(pkg, 'pool.py'), POOL);
  const model = path.join(root, 'lib', 'model.py');
  fs.writeFileSync(model, MODEL);
  return { root, model };
}

test('a tuple factory is wrapped where its tuple is unpacked, and removed byte for byte', async (t) => {
  const { root, model } = library();
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const externalLayers = await importedWeightedLayers(model, MODEL);
  // The first weighted branch of _create_fc names the layer (use_conv's Conv2d), as for one-layer factories.
  assert.deepEqual(externalLayers, { create_classifier: 'tuple[nn.Conv2d]' });
  const r = quantizeFile(MODEL, { scope: { kind: 'file' }, externalLayers });
  assert.equal(r.text, EXPECTED);
  assert.equal(parsePython(r.text).rootNode.hasError, false, 'output has tree-sitter error nodes');
  const again = quantizeFile(r.text, { scope: { kind: 'file' }, externalLayers });
  assert.equal(again.text, r.text, 'quantize is idempotent');
  assert.equal(again.edits.length, 0);
  assert.equal(unquantizeFile(r.text).text, MODEL, 'unquantize restores the original');
  // The bound tuple (`head`) is not a layer site: nothing reports it as left in float either.
  assert.deepEqual(floatWeightedLayers(r.text, externalLayers), []);
  assert.deepEqual(
    floatWeightedLayers(MODEL, externalLayers).map((f) => f.line),
    [8, 9],
    'before quantizing, the unpacked calls are the float ones',
  );
});

test('the quantized tuple-factory call site is valid Python', (t) => {
  const errors = pythonParseErrors([EXPECTED]);
  if (!errors) return t.skip('python3 is not runnable here');
  assert.equal(errors[0], null);
});

test('the unpacked names get the quantized layer at run time', (t) => {
  if (spawnSync('python3', ['-c', 'import torch'], { stdio: 'ignore' }).status !== 0)
    return t.skip('needs torch for python3');
  const { root, model } = library();
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  fs.writeFileSync(model, EXPECTED);
  fs.writeFileSync(path.join(root, 'lib', 'qdq_quant.py'), helperFileText());
  const script =
    'import sys; sys.path[:0] = sys.argv[1:]\nfrom lib.model import Net\nn = Net()\n' +
    'print(*(type(m).__name__ for m in (n.global_pool, n.fc, n.drop2, n.fc2, n.fc3)))';
  const r = spawnSync('python3', ['-c', script, root, path.join(root, 'lib')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'SelectAdaptivePool2d QuantLinear Dropout QuantLinear Linear');
});
