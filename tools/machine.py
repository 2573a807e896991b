"""Write asv's machine file non-interactively from real hardware facts.

The machine name is derived from hardware facts only (never the hostname), so the same box, or an
identical one, always files its results under the same ``results/<machine>/`` directory:
``cpu-<model-slug>-<n>c`` without a CUDA GPU, ``<gpu-slug>x<count>`` with one.

Usage: ``python -m tools.machine [--path ~/.asv-machine.json] [--name NAME] [--cpu-only]``
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys

import psutil
from asv.machine import MachineCollection

from tools import cli
from tools.lib.errors import ToolError
from tools.lib.files import check_writable, write_json_atomic

DEFAULT_PATH = "~/.asv-machine.json"


def slug(text: str) -> str:
    """Lower-case ``text`` and keep runs of letters/digits joined by single dashes."""
    words = re.sub(r"@.*", " ", text.lower())  # clock speed: varies between reports of one model
    words = re.sub(r"\((r|tm)\)", " ", words)
    words = re.sub(r"\b(cpu|processor|nvidia|with)\b", " ", words)
    return re.sub(r"[^a-z0-9]+", "-", words).strip("-") or "unknown"


def cpu_model() -> str:
    """The CPU model string from /proc/cpuinfo (Linux), else what ``platform`` reports."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _nvidia_driver() -> str:
    """Driver version via nvidia-smi; torch does not expose it."""
    if shutil.which("nvidia-smi") is None:
        return "unknown"
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.strip().splitlines()[0] if out.strip() else "unknown"


def gpu_facts(cpu_only: bool = False) -> dict[str, str]:
    """GPU name, memory (GiB), count, driver, CUDA and torch versions; empty without a CUDA GPU."""
    try:
        import torch
    except ImportError:
        return {}
    facts = {"torch": torch.__version__}
    if cpu_only or not torch.cuda.is_available() or torch.cuda.device_count() == 0:
        return facts
    props = torch.cuda.get_device_properties(0)
    facts.update(
        gpu=props.name,
        gpu_count=str(torch.cuda.device_count()),
        gpu_memory=f"{props.total_memory / 2**30:.0f}GiB",
        gpu_driver=_nvidia_driver(),
        cuda=str(torch.version.cuda),
    )
    return facts


def collect_facts(cpu_only: bool = False) -> dict[str, str]:
    """Everything asv's machine file holds (all values strings, as asv stores them) plus GPU facts."""
    uname = platform.uname()
    physical = psutil.cpu_count(logical=False) or psutil.cpu_count() or 1
    facts = {
        "os": f"{uname.system} {uname.release}",
        "arch": uname.machine,
        "cpu": cpu_model(),
        "num_cpu": str(psutil.cpu_count() or physical),
        "num_cores": str(physical),
        "ram": str(psutil.virtual_memory().total),
    }
    facts.update(gpu_facts(cpu_only))
    return facts


def machine_name(facts: dict[str, str]) -> str:
    """``<gpu-slug>x<count>`` on a CUDA box, else ``cpu-<model-slug>-<cores>c``."""
    if "gpu" in facts:
        return f"{slug(facts['gpu'])}x{facts['gpu_count']}"
    return f"cpu-{slug(facts['cpu'])}-{facts['num_cores']}c"


def write_machine(path: str, name: str, facts: dict[str, str]) -> dict[str, str]:
    """Merge ``name``'s entry into the machine file at ``path``; other machines are kept as they were.

    The file is replaced in one rename; one that cannot be read is a ToolError and is left alone.
    """
    existing: dict = {}
    if os.path.isdir(path):
        raise ToolError(f"{path} is a directory, not an asv machine file")
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as fh:
                existing = json.load(fh)
        except (OSError, ValueError) as exc:
            raise ToolError(f"{path} is not a readable asv machine file ({exc}); not touching it") from None
        if not isinstance(existing, dict):
            raise ToolError(f"{path} does not hold a JSON object; not touching it")
    check_writable(path)
    entry = {"machine": name, **facts}
    existing = {k: v for k, v in existing.items() if k != "version"}
    existing[name] = entry
    write_json_atomic(path, existing, MachineCollection.api_version)
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.machine", description=__doc__.splitlines()[0])
    parser.add_argument("--path", default=DEFAULT_PATH, help="machine file to write (default: %(default)s)")
    parser.add_argument("--name", type=cli.machine_name, help="override the derived machine name")
    parser.add_argument("--cpu-only", action="store_true", help="describe the CPU even if a GPU is visible")
    parser.add_argument("--print-name", action="store_true", help="only print the derived name, write nothing")
    args = parser.parse_args(argv)

    facts = collect_facts(cpu_only=args.cpu_only)
    name = args.name or machine_name(facts)
    if args.print_name:
        print(name)
        return 0
    path = os.path.expanduser(args.path)
    entry = write_machine(path, name, facts)
    print(f"wrote machine '{name}' to {path}:")
    print(json.dumps(entry, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
