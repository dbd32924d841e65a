import subprocess

import tensorrt as trt

LOGGER = trt.Logger(trt.Logger.WARNING)


class Calibrator(trt.IInt8EntropyCalibrator2):
    def get_batch_size(self):
        return 8


def build(onnx_path, engine_path, calibrator):
    builder = trt.Builder(LOGGER)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, LOGGER)
    parser.parse_from_file(onnx_path)
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.INT8)
    if builder.platform_has_fast_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    config.int8_calibrator = calibrator
    with open(engine_path, "wb") as f:
        f.write(builder.build_serialized_network(network, config))


def build_cli(onnx_path):
    subprocess.run(f"trtexec --onnx={onnx_path} --int8 --fp16 --saveEngine=model.plan", shell=False, check=True)
    subprocess.run(["trtexec", f"--onnx={onnx_path}", "--best", "--calib=cache.bin"], check=True)
