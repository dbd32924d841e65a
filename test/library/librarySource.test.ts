// "Show quantized source" on imports of library models: the pure import scan, and the code action plus the
// qdq/quantizedModuleSource request through a real language server process (trusted and untrusted).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import { libraryImports, moduleForClass } from '../../server/src/features/librarySource';
import { patchLibrarySource } from '../../server/src/library/patch';
import {
  QuantizedModuleSourceRequest,
  ShowQuantizedSourceCommand,
  type QuantizedModuleSourceResult,
} from '../../server/src/protocol/lsp_ext';
import { TestClient, fileUri, REPO } from '../protocol/lspClient';

const PYTHON = 'python3';
const BERT = 'transformers.models.bert.modeling_bert';
const lookup = spawnSync(
  PYTHON,
  ['-c', 'import importlib.util, sys; print(importlib.util.find_spec(sys.argv[1]).origin)', BERT],
  { encoding: 'utf8' },
);
const bertFile = lookup.status === 0 ? lookup.stdout.trim() : null;
const skip = bertFile ? false : 'needs PyPI transformers for python3 (Debian /usr/bin/python3 has none)';

const SOURCE = [
  'import torch',
  'from transformers.models.bert.modeling_bert import BertLayer',
  'from transformers import (',
  '    BertConfig,',
  '    RobertaModel,',
  '    ViTForImageClassification,',
  ')',
  'from transformers import DistilBertModel as D, BertTokenizer, ViTMAEModel, RobertaPreLayerNormModel',
  'import transformers.models.vit.modeling_vit as vit_mod',
  'from transformers.models.roberta import modeling_roberta',
  '',
].join('\n');

test('import scan: modeling modules named directly, re-exported model classes mapped to their modules', () => {
  const found = libraryImports(SOURCE).map((i) => `${i.startLine}-${i.endLine} ${i.module}`);
  assert.deepEqual(found, [
    `1-1 ${BERT}`,
    '2-6 transformers.models.roberta.modeling_roberta',
    '2-6 transformers.models.vit.modeling_vit',
    '7-7 transformers.models.distilbert.modeling_distilbert',
    '8-8 transformers.models.vit.modeling_vit',
    '9-9 transformers.models.roberta.modeling_roberta',
  ]);
  // Configs, tokenizers and sub-families that live in other modules are not mapped.
  for (const name of ['BertConfig', 'BertTokenizer', 'ViTMAEModel', 'RobertaPreLayerNormModel', 'ViTHybridModel'])
    assert.equal(moduleForClass(name), null, name);
  assert.equal(moduleForClass('BertForSequenceClassification'), BERT);
  assert.equal(moduleForClass('DistilBertPreTrainedModel'), 'transformers.models.distilbert.modeling_distilbert');
  assert.deepEqual(libraryImports('import torch\nfrom torch import nn\n'), []);
});

async function withServer<T>(init: { workspaceTrusted: boolean }, fn: (c: TestClient) => Promise<T>): Promise<T> {
  const client = await TestClient.start({ settings: { pythonInterpreter: PYTHON }, initializationOptions: init });
  try {
    return await fn(client);
  } finally {
    await client.stop();
  }
}

const docUri = fileUri(`${REPO}/test/fixtures/library/bert/model_imports.py`);
const range = (line: number) => ({ start: { line, character: 0 }, end: { line, character: 0 } });

test(
  'trusted workspace: the code action on an import opens the patched text, naming the interpreter',
  { skip },
  async () => {
    await withServer({ workspaceTrusted: true }, async (client) => {
      await client.open(docUri, SOURCE);
      const actions = await client.request<any[]>('textDocument/codeAction', {
        textDocument: { uri: docUri },
        range: range(1),
        context: { diagnostics: [] },
      });
      const show = actions.filter((a) => a.command?.command === ShowQuantizedSourceCommand);
      assert.equal(show.length, 1, JSON.stringify(actions.map((a) => a.title)));
      assert.equal(show[0].title, `Show quantized source of ${BERT}`);
      assert.equal(show[0].disabled, undefined);
      const result = await client.request<QuantizedModuleSourceResult>(
        QuantizedModuleSourceRequest,
        show[0].command.arguments[0],
      );
      assert.equal(result.file, bertFile);
      assert.equal(
        result.text,
        patchLibrarySource(BERT, fs.readFileSync(bertFile as string, 'utf8')).text,
        'exactly what patch-modules runs',
      );
      assert.match(result.message, /located with \S*python3/);
      assert.match(result.message, /read-only/);
      // No action on a line that imports nothing qdq maps.
      const none = await client.request<any[]>('textDocument/codeAction', {
        textDocument: { uri: docUri },
        range: range(0),
        context: { diagnostics: [] },
      });
      assert.equal(none.filter((a) => a.command?.command === ShowQuantizedSourceCommand).length, 0);
    });
  },
);

test('untrusted workspace: the action is shown disabled with the reason, and the request is refused', async () => {
  await withServer({ workspaceTrusted: false }, async (client) => {
    await client.open(docUri, SOURCE);
    const actions = await client.request<any[]>('textDocument/codeAction', {
      textDocument: { uri: docUri },
      range: range(2),
      context: { diagnostics: [] },
    });
    const show = actions.filter((a) => a.command?.command === ShowQuantizedSourceCommand);
    assert.equal(show.length, 2, 'RoBERTa and ViT from the parenthesized import');
    for (const a of show) assert.match(a.disabled?.reason ?? '', /not trusted.*runs the Python interpreter/);
    await assert.rejects(
      client.request(QuantizedModuleSourceRequest, { uri: docUri, module: BERT }),
      /Workspace not trusted/,
    );
  });
});
