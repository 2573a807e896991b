"""Write asv's machine file non-interactively from real hardware facts.

One host, one machine. The name is derived from hardware facts (``cpu-<model-slug>-<n>c`` without a
CUDA GPU, ``<gpu-slug>x<count>`` with one), and a host id (a hash of the systemd machine id, which
survives reboots) tells hosts apart: when ``results/<name>`` already holds another host's results,
this host gets ``<name>-<host id>``, so two identical boxes never merge into one series unless
``--name`` says so; the host keeps its name on later runs (found by its id in the machine file).
Facts that change across a reboot are stored rounded (the kernel as major.minor, RAM in whole GiB),
so a reboot does not split the series. The command prints what it decided and why.

Usage: ``python -m tools.machine [--path ~/.asv-machine.json] [--name NAME] [--cpu-only]``
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import uuid

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


MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")


def host_id() -> tuple[str, str]:
    """(a 12-hex-digit id of this host, where it came from). The same across reboots, different
    between hosts: a hash of the systemd machine id; else of the first network interface's
    hardware address; else of the host name."""
    for path in MACHINE_ID_FILES:
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text:
            return hashlib.sha256(text.encode()).hexdigest()[:12], path
    node = uuid.getnode()
    if not (node >> 40) & 1:  # the multicast bit marks a random stand-in, not a real address
        return hashlib.sha256(str(node).encode()).hexdigest()[:12], "the network hardware address"
    return hashlib.sha256(platform.node().encode()).hexdigest()[:12], "the host name"


def stable_os(system: str, release: str) -> str:
    """``Linux 6.18`` from ``Linux 6.18.44-fc-v782``: a kernel update or rebuild is the same host."""
    match = re.match(r"(\d+)\.(\d+)", release)
    return f"{system} {match.group(1)}.{match.group(2)}" if match else system


def stable_ram(total: int) -> str:
    """Bytes rounded to whole GiB: the reading moves by a few MiB between boots."""
    return str(max(1, round(total / 2 ** 30)) * 2 ** 30)


def collect_facts(cpu_only: bool = False) -> dict[str, str]:
    """Everything asv's machine file holds (all values strings, as asv stores them) plus GPU facts
    and the host id. Only facts that survive a reboot: asv draws one graph line per distinct set."""
    uname = platform.uname()
    physical = psutil.cpu_count(logical=False) or psutil.cpu_count() or 1
    facts = {
        "os": stable_os(uname.system, uname.release),
        "arch": uname.machine,
        "cpu": cpu_model(),
        "num_cpu": str(psutil.cpu_count() or physical),
        "num_cores": str(physical),
        "ram": stable_ram(psutil.virtual_memory().total),
        "host_id": host_id()[0],
    }
    facts.update(gpu_facts(cpu_only))
    return facts


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def decide_name(facts: dict[str, str], known: dict, results_dir: str | None) -> tuple[str, str]:
    """(machine name, why) for this host.

    ``known``: the entries of the asv machine file already there; ``results_dir``: where results
    of other hosts may be (a clone's committed ``results/``). One host keeps one name (its entry in
    the machine file, found by host id); a name whose results belong to another host, or to a host
    that did not record its id, is not reused: this host gets the hardware name plus its host id.
    """
    ours = facts.get("host_id", "")
    for name, entry in sorted(known.items()):
        if isinstance(entry, dict) and ours and entry.get("host_id") == ours:
            return name, f"this host (id {ours}) is already '{name}' in the machine file"
    base = machine_name(facts)
    theirs = _read_json(os.path.join(results_dir, base, "machine.json")) if results_dir else {}
    if not theirs:
        return base, f"no results of another host under '{base}'"
    if theirs.get("host_id") == ours:
        return base, f"{results_dir}/{base} holds this host's results (id {ours})"
    owner = f"host id {theirs['host_id']}" if theirs.get("host_id") else "a host that recorded no id"
    return (f"{base}-{ours[:6]}", f"{results_dir}/{base} holds results of {owner}, not this host (id {ours}); "
            f"its results stay a separate series (--name {base} files them together)")


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
    parser.add_argument("--results", default="results",
                        help="results directory whose machines are checked for another host (default: %(default)s)")
    args = parser.parse_args(argv)

    facts = collect_facts(cpu_only=args.cpu_only)
    path = os.path.expanduser(args.path)
    known = {k: v for k, v in _read_json(path).items() if k != "version"} if os.path.isfile(path) else {}
    if args.name:
        name, why = args.name, "named with --name"
    else:
        name, why = decide_name(facts, known, args.results if os.path.isdir(args.results) else None)
    if args.print_name:
        print(name)
        return 0
    entry = write_machine(path, name, facts)
    print(f"machine '{name}': {why}")
    print(f"wrote machine '{name}' to {path}:")
    print(json.dumps(entry, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
