"""Builds the compiled soft-NMS in place: python setup.py build_ext --inplace

Also the build script of ``pip install -e .`` (pyproject.toml: the packages), which builds it
too; the extension is optional there: without a C compiler the numpy soft-NMS is used.
"""
import sys

try:
    import numpy as np
    from Cython.Build import cythonize
    from setuptools import Extension, setup
except ImportError as err:
    sys.exit("building the compiled soft-NMS needs numpy, Cython and setuptools (pip install -r requirements.txt): %s"
             % err)

setup(
    ext_modules=cythonize([Extension("src.infer._soft_nms", ["src/infer/_soft_nms.pyx"], include_dirs=[np.get_include()],
                                     define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                                     optional=True)],
                          language_level=3),
    script_args=sys.argv[1:] or ["build_ext", "--inplace"],
)
