"""scripts/inspect_wheels.py, the check of every platform's wheel, on small synthetic wheels:
each problem it exists to catch is caught, and a good wheel passes."""

from __future__ import annotations

import importlib.util
import struct
import zipfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "inspect_wheels.py"
spec = importlib.util.spec_from_file_location("inspect_wheels", SCRIPT)
inspect_wheels = importlib.util.module_from_spec(spec)
spec.loader.exec_module(inspect_wheels)


def elf(machine: int) -> bytes:
    return b"\x7fELF" + bytes(14) + struct.pack("<H", machine) + bytes(40)


def macho(cpu: int, minos: tuple[int, int], dylibs: list[str]) -> bytes:
    commands = [struct.pack("<2I4I", 0x32, 24, 1, (minos[0] << 16) | (minos[1] << 8), 0, 0)]
    for name in dylibs:
        raw = name.encode() + b"\0"
        size = 24 + (len(raw) + 7) // 8 * 8
        commands.append(struct.pack("<6I", 0xC, size, 24, 0, 0, 0) + raw.ljust(size - 24, b"\0"))
    body = b"".join(commands)
    return struct.pack("<7I", 0xFEEDFACF, cpu, 0, 6, len(commands), len(body), 0) + bytes(4) + body


def pe(machine: int, dlls: list[str]) -> bytes:
    """A PE32+ image with one section (RVA 0x1000, file offset 0x200) holding the import
    directory and the DLL names."""
    at, section_rva, section_file = 0x40, 0x1000, 0x200
    descriptors = 20 * (len(dlls) + 1)
    names, offsets = b"", []
    for dll in dlls:
        offsets.append(descriptors + len(names))
        names += dll.encode() + b"\0"
    section = b"".join(
        struct.pack("<5I", 0, 0, 0, section_rva + off, 0) for off in offsets
    ) + bytes(20)
    section += names
    optional = bytearray(240)
    struct.pack_into("<H", optional, 0, 0x20B)
    struct.pack_into("<2I", optional, 112 + 8, section_rva, len(section))
    header = b"PE\0\0" + struct.pack("<2H3I2H", machine, 1, 0, 0, 0, len(optional), 0)
    table = struct.pack("<8s4I", b".idata", len(section), section_rva, len(section), section_file)
    table += bytes(40 - len(table))
    image = bytearray(section_file)
    image[:2] = b"MZ"
    struct.pack_into("<I", image, 0x3C, at)
    head = header + bytes(optional) + table
    image[at : at + len(head)] = head
    return bytes(image) + section


def wheel(tmp: Path, plat: str, binary: bytes, suffix: str = ".so", tag: str | None = None) -> Path:
    path = tmp / f"latebird-0.1.0-cp39-abi3-{plat}.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"latebird/_latebird{suffix}", binary)
        z.writestr(
            "latebird-0.1.0.dist-info/WHEEL",
            f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {tag or 'cp39-abi3-' + plat}\n",
        )
    return path


SYSTEM = ["/usr/lib/libSystem.B.dylib"]
WINDOWS = ["KERNEL32.dll", "ntdll.dll", "python3.dll"]


@pytest.mark.parametrize(
    ("plat", "binary", "suffix"),
    [
        ("manylinux_2_28_aarch64", elf(183), ".so"),
        ("manylinux_2_28_x86_64", elf(62), ".so"),
        ("macosx_11_0_arm64", macho(0x0100000C, (11, 0), SYSTEM), ".so"),
        ("macosx_10_12_x86_64", macho(0x01000007, (10, 12), SYSTEM), ".so"),
        ("win_amd64", pe(0x8664, WINDOWS), ".pyd"),
    ],
)
def test_good_wheels_pass(tmp_path, plat, binary, suffix):
    line, problems = inspect_wheels.inspect(wheel(tmp_path, plat, binary, suffix))
    assert problems == []
    assert plat in line


@pytest.mark.parametrize(
    ("plat", "binary", "suffix", "needle"),
    [
        ("manylinux_2_28_aarch64", elf(62), ".so", "is x86_64, the tag says aarch64"),
        ("macosx_11_0_arm64", macho(0x01000007, (11, 0), SYSTEM), ".so", "is x86_64"),
        ("macosx_11_0_arm64", macho(0x0100000C, (13, 0), SYSTEM), ".so", "built for macOS (13, 0)"),
        (
            "macosx_11_0_arm64",
            macho(0x0100000C, (11, 0), [*SYSTEM, "/opt/homebrew/lib/libomp.dylib"]),
            ".so",
            "libomp.dylib",
        ),
        ("win_amd64", pe(0x8664, [*WINDOWS, "libgcc_s_seh-1.dll"]), ".pyd", "libgcc_s_seh-1"),
        ("win_amd64", pe(0x8664, ["KERNEL32.dll", "python311.dll"]), ".pyd", "python3.dll"),
        ("win_amd64", pe(0xAA64, WINDOWS), ".pyd", "is arm64"),
        ("win_amd64", pe(0x8664, WINDOWS), ".so", "expected one latebird/_latebird*.pyd"),
    ],
)
def test_each_problem_is_caught(tmp_path, plat, binary, suffix, needle):
    _, problems = inspect_wheels.inspect(wheel(tmp_path, plat, binary, suffix))
    assert any(needle in p for p in problems), problems


def test_tag_mismatch_is_caught(tmp_path):
    path = wheel(tmp_path, "manylinux_2_28_x86_64", elf(62), tag="cp39-abi3-manylinux_2_17_x86_64")
    _, problems = inspect_wheels.inspect(path)
    assert any("WHEEL says" in p for p in problems), problems


def test_exit_code(tmp_path, capsys):
    good = wheel(tmp_path, "manylinux_2_28_x86_64", elf(62))
    assert inspect_wheels.main([str(good)]) == 0
    (tmp_path / "bad").mkdir()
    bad = wheel(tmp_path / "bad", "manylinux_2_28_x86_64", elf(183))
    assert inspect_wheels.main([str(good), str(bad)]) == 1
    assert "PROBLEM" in capsys.readouterr().out
