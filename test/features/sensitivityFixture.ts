// A sensitivity.json for examples/digits-mobilenet/model.py in the shape `qdq sensitivity` writes (figures chosen
// for the tests: one group clearly worst), shared by the sensitivity tests.
import * as path from 'node:path';

const MODEL = path.join(process.cwd(), 'examples', 'digits-mobilenet', 'model.py');

/** sensitivity.json as `qdq sensitivity` wrote it for this example (sites keyed by the model file). */
export function mobilenetSensitivity(model = MODEL): Record<string, unknown> {
  const site = (s: string) => `${model}::${s}`;
  return {
    version: 1,
    project_dir: path.dirname(model),
    metric: 'top1',
    samples: 360,
    fp32: 98.33,
    all_int8: 96.9,
    evaluations: 10,
    groups: [
      {
        label: 'InvertedResidual.add0 + InvertedResidual.expand',
        sites: [
          site('InvertedResidual.add0_residual_quantizer'),
          site('InvertedResidual.expand.input_quantizer'),
          site('InvertedResidual.expand.weight_quantizer'),
        ],
        quantizers: ['blocks.0.expand.input_quantizer', 'blocks.1.expand.input_quantizer'],
        only_int8: 98.05,
        only_float: 97.2,
      },
      {
        label: 'InvertedResidual.project',
        sites: [site('InvertedResidual.project.input_quantizer'), site('InvertedResidual.project.weight_quantizer')],
        quantizers: ['blocks.0.project.input_quantizer'],
        only_int8: 96.91,
        only_float: 98.1,
      },
      {
        label: 'DigitsMobileNet.stem.0',
        sites: [site('DigitsMobileNet.stem.0.input_quantizer'), site('DigitsMobileNet.stem.0.weight_quantizer')],
        quantizers: ['stem.0.input_quantizer'],
        only_int8: 98.33,
        only_float: 96.9,
      },
    ],
  };
}
