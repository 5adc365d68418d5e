"""mim_plugins: masked image modeling modules for the OpenMMLab stack."""
import os

from setuptools import find_packages, setup


def read_requirements(path: str) -> list:
    """Requirement lines of ``path`` without comments."""
    with open(path) as f:
        return [ln.split('#')[0].strip() for ln in f if ln.split('#')[0].strip()]


def package_files(package: str = 'mim_plugins') -> list:
    """Every non-Python file under ``package`` (the web demo's example images, ...), relative
    to it: setuptools ships only modules unless told, and a folder without __init__.py (e.g.
    webapp/examples) is no package a glob could name."""
    found = []
    for folder, dirs, files in os.walk(package):
        dirs[:] = [d for d in dirs if d != '__pycache__']
        found += [os.path.relpath(os.path.join(folder, name), package) for name in files
                  if not name.endswith(('.py', '.pyc'))]
    return sorted(found)


setup(
    name='mim_plugins',
    version='0.1.0',
    description='Masked image modeling (MAE, SupMAE, SemMAE, BEiT, MaskFeat, '
    'SemanticMIM) as OpenMMLab plugins',
    long_description=open('README.md').read() if __import__('os').path.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mim_plugins', 'mim_plugins.*']),
    package_data={'mim_plugins': package_files()},
    python_requires='>=3.8',
    # mmcv is not listed: tools/setup_env.sh installs mmcv-lite (lite profile, the default) or
    # mmcv compiled with its ops (compiled profile), and pip must never replace one with the other.
    install_requires=['mmengine>=0.10.0,<1.0', 'mmpretrain>=1.2.0,<1.3'],
    # 'seg': segmentation without a compiler (the lite profile's mmseg fork, requirements/seg.txt);
    # 'seg-compiled': upstream mmsegmentation, which needs mmcv's compiled ops and imports ftfy and
    # regex undeclared (requirements/seg-compiled.txt). Both provide `mmseg`: install one.
    extras_require={'seg': ['onedl-mmsegmentation==1.4.2'],
                    'seg-compiled': ['mmsegmentation>=1.2.0,<1.3', 'ftfy', 'regex'],
                    'demo': ['mlxtend', 'matplotlib'], 'tests': ['pytest', 'playwright']},
    license='Apache License 2.0',
)
