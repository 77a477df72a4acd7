"""Exported models: the ONNX writer and its decode, the runtimes that run exported models behind one
interface (MINDIR with MindSpore, ONNX with ONNX Runtime) and the Ascend 310 chain's shared code
(preprocess.py -> the app or tools/infer_*.py -> postprocess.py). export.py is the entry."""
