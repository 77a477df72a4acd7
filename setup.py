"""Builds the compiled soft-NMS in place: python setup.py build_ext --inplace"""
import sys

try:
    import numpy as np
    from Cython.Build import cythonize
    from setuptools import Extension, setup
except ImportError as err:
    sys.exit("building the compiled soft-NMS needs numpy, Cython and setuptools (pip install -r requirements.txt): %s"
             % err)

setup(
    name="centernet_resnet101_ext",
    ext_modules=cythonize([Extension("src._soft_nms", ["src/_soft_nms.pyx"], include_dirs=[np.get_include()],
                                     define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")])],
                          language_level=3),
    script_args=sys.argv[1:] or ["build_ext", "--inplace"],
)
