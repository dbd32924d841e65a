// qdq/report (issue 19 item 1): the report of a project is found from any file in it and from the project
// folder itself (what the client sends when calibration results change), and it is the file on disk now.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { ReportRequest } from '../../server/src/protocol/lsp_ext';
import { TestClient, fileUri } from './lspClient';

test('qdq/report answers for a file of the project and for the project folder, with the current report', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'qdq-report-'));
  const project = path.join(root, 'proj');
  fs.mkdirSync(path.join(project, 'qdq-out'), { recursive: true });
  fs.writeFileSync(path.join(project, 'pyproject.toml'), '[tool.qdq]\nmodel = "model.py:build_model"\n');
  const reportFile = path.join(project, 'qdq-out', 'report.json');
  fs.writeFileSync(reportFile, JSON.stringify({ qdq_pairs: 1 }));
  const client = await TestClient.start();
  try {
    const fromFile = await client.request(ReportRequest, { uri: fileUri(path.join(project, 'model.py')) });
    assert.equal(fromFile?.reportPath, reportFile);
    assert.equal(fromFile?.projectDir, project);
    assert.deepEqual(fromFile?.report, { qdq_pairs: 1 });
    fs.writeFileSync(reportFile, JSON.stringify({ qdq_pairs: 2 }));
    const fromFolder = await client.request(ReportRequest, { uri: fileUri(project) });
    assert.equal(fromFolder?.projectDir, project, 'the folder is the project, not its parent');
    assert.deepEqual(fromFolder?.report, { qdq_pairs: 2 }, 'the report as it is now');
    assert.equal(fromFolder?.qat, undefined, 'no qat.json: no qat field');
    fs.writeFileSync(path.join(project, 'qdq-out', 'qat.json'), JSON.stringify({ fp32: 0.9, ptq: 0.8, qat: 0.88 }));
    fs.writeFileSync(path.join(project, 'qdq-out', 'tune.json'), JSON.stringify({ metric: 'top1' }));
    const withTraining = await client.request(ReportRequest, { uri: fileUri(project) });
    assert.deepEqual(withTraining?.qat, { fp32: 0.9, ptq: 0.8, qat: 0.88 }, 'qat.json beside the report');
    assert.deepEqual(withTraining?.tune, { metric: 'top1' });
  } finally {
    await client.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
});
