"""qdq backend: calibration and QDQ ONNX export, spoken to over JSON-RPC (python -m qdq_backend)."""
