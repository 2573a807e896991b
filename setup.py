"""attnbench: speed and memory of long-sequence attention in PyTorch, tracked commit by commit with asv."""
from setuptools import find_packages, setup

setup(
    name="attnbench",
    version="0.1.0",
    description="Dilated, block-sparse, ring and dense attention, benchmarked commit by commit with asv",
    packages=find_packages(include=["attention", "attention.*"]),
    python_requires=">=3.10",
    # torch is deliberately not listed: asv installs it once per environment (or reuses the
    # machine's CUDA build on the GPU box); listing it here would make pip resolve it per commit.
    install_requires=[],
)
