"""basicsr_nlattn: ENLCN, NLSN, CCLNN and PCL for BasicSR."""
from os import path as osp

from setuptools import find_packages, setup


def read_version() -> str:
    scope: dict = {}
    with open(osp.join(osp.dirname(__file__), 'basicsr_nlattn', 'version.py'), encoding='utf-8') as file:
        exec(file.read(), scope)
    return scope['__version__']


setup(
    name='basicsr_nlattn',
    version=read_version(),
    description='Non-local attention (ENLCA, NLSA, CCLN) and contrastive learning (PCL) for BasicSR',
    long_description=open(osp.join(osp.dirname(__file__), 'README.md'), encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.9',
    packages=find_packages(include=['basicsr_nlattn', 'basicsr_nlattn.*']),
    install_requires=[
        'basicsr==1.4.2',
        # torch and torchvision come from the registry as a matching CUDA build that also runs on the CPU;
        # the CPU-only torch wheel has no torchvision to match, so neither is pinned here.
        'torch>=2.1',
        'torchvision>=0.16',
        'mmengine',
        'lmdb',
        'opencv-python',
        'pyyaml',
        'scikit-image',
        'packaging',
        'matplotlib',
    ],
    # export: basicsr export and basicsr infer --onnx (torch.onnx's TorchScript exporter needs nothing more)
    extras_require={
        'test': ['pytest>=7', 'pytest-xdist'],
        'export': ['onnx', 'onnxruntime']
    },
    entry_points={'console_scripts': ['basicsr = basicsr_nlattn.cli:main']},
)
