"""Checks built wheels the way auditwheel and delocate check theirs, for every platform, from
any machine (standard library only):

- the file name and the WHEEL metadata carry the same tag, cp39-abi3 and one platform;
- the extension inside is a binary for that platform: ELF machine (Linux), Mach-O CPU type
  and minimum macOS version no newer than the tag's (macOS), PE machine (Windows);
- it links only what every machine of that platform has: on macOS the system library and,
  for the Apple backends, Apple's frameworks; on Windows system DLLs and `python3.dll` (the
  stable ABI's, so any Python 3.9+), never a MinGW runtime DLL. Linux wheels are checked by
  auditwheel (scripts/build_wheels.sh runs it).

    python scripts/inspect_wheels.py target/wheels/*.whl

Prints one line per wheel; exits 1 naming every problem found.
"""

from __future__ import annotations

import re
import struct
import sys
import zipfile
from pathlib import Path

ELF_MACHINES = {62: "x86_64", 183: "aarch64"}
MACHO_CPUS = {0x01000007: "x86_64", 0x0100000C: "arm64"}
PE_MACHINES = {0x8664: "x86_64", 0xAA64: "arm64"}
# Windows DLLs every supported Windows has (the Universal CRT's api sets included).
WINDOWS_SYSTEM = re.compile(
    r"^(kernel32|ntdll|advapi32|bcrypt|bcryptprimitives|ws2_32|userenv|user32|shell32|ole32|"
    r"oleaut32|crypt32|secur32|ncrypt|msvcrt|ucrtbase|vcruntime140|synchronization|"
    r"api-ms-win-[a-z0-9-]+)\.dll$",
    re.IGNORECASE,
)
MACOS_SYSTEM = re.compile(
    r"^(/usr/lib/libSystem\.B\.dylib|/usr/lib/libc\+\+\.1\.dylib|/usr/lib/libiconv\.2\.dylib|"
    r"/usr/lib/libcharset\.1\.dylib|"
    r"/usr/lib/libresolv\.9\.dylib|/usr/lib/libobjc\.A\.dylib|"
    r"/System/Library/Frameworks/[A-Za-z]+\.framework/.*)$"
)


def elf(data: bytes) -> dict:
    if data[:4] != b"\x7fELF":
        raise ValueError("not an ELF file")
    (machine,) = struct.unpack_from("<H", data, 18)
    return {"arch": ELF_MACHINES.get(machine, f"machine {machine}"), "links": []}


def macho(data: bytes) -> dict:
    magic, cpu, _sub, _filetype, ncmds, _size, _flags = struct.unpack_from("<7I", data, 0)
    if magic != 0xFEEDFACF:
        raise ValueError("not a 64-bit little-endian Mach-O file")
    offset, minos, links = 32, None, []
    for _ in range(ncmds):
        cmd, cmdsize = struct.unpack_from("<2I", data, offset)
        if cmd == 0x32:  # LC_BUILD_VERSION: platform, minos, sdk
            _platform, version = struct.unpack_from("<2I", data, offset + 8)
            minos = (version >> 16, (version >> 8) & 0xFF)
        elif cmd == 0x24:  # LC_VERSION_MIN_MACOSX: version, sdk
            (version,) = struct.unpack_from("<I", data, offset + 8)
            minos = (version >> 16, (version >> 8) & 0xFF)
        elif cmd in (0xC, 0x80000018, 0x8000001F):  # LC_LOAD_DYLIB, _WEAK_, _REEXPORT_
            (name_at,) = struct.unpack_from("<I", data, offset + 8)
            name = data[offset + name_at : offset + cmdsize].split(b"\0", 1)[0]
            links.append(name.decode())
        offset += cmdsize
    return {"arch": MACHO_CPUS.get(cpu, f"cpu {cpu:#x}"), "minos": minos, "links": links}


def pe(data: bytes) -> dict:
    if data[:2] != b"MZ":
        raise ValueError("not a PE file")
    (at,) = struct.unpack_from("<I", data, 0x3C)
    if data[at : at + 4] != b"PE\0\0":
        raise ValueError("no PE header")
    machine, nsections = struct.unpack_from("<2H", data, at + 4)
    (optional_size,) = struct.unpack_from("<H", data, at + 20)
    optional = at + 24
    if struct.unpack_from("<H", data, optional)[0] != 0x20B:
        raise ValueError("not a PE32+ (64-bit) image")
    import_rva, _ = struct.unpack_from("<2I", data, optional + 112 + 8)
    sections = []
    for i in range(nsections):
        base = optional + optional_size + 40 * i
        vsize, vaddr, rawsize, rawptr = struct.unpack_from("<4I", data, base + 8)
        sections.append((vaddr, max(vsize, rawsize), rawptr))

    def file_offset(rva: int) -> int:
        for vaddr, size, rawptr in sections:
            if vaddr <= rva < vaddr + size:
                return rva - vaddr + rawptr
        raise ValueError(f"RVA {rva:#x} outside every section")

    links, entry = [], file_offset(import_rva) if import_rva else None
    while entry is not None:
        name_rva = struct.unpack_from("<I", data, entry + 12)[0]
        if name_rva == 0:
            break
        start = file_offset(name_rva)
        links.append(data[start : data.index(b"\0", start)].decode())
        entry += 20
    return {"arch": PE_MACHINES.get(machine, f"machine {machine:#x}"), "links": links}


def platform_of(tag: str) -> tuple[str, str, tuple[int, int] | None]:
    """(system, arch, minimum macOS) of a wheel platform tag."""
    if m := re.fullmatch(r"manylinux_(\d+)_(\d+)_(x86_64|aarch64)", tag):
        return "linux", m[3], None
    if m := re.fullmatch(r"macosx_(\d+)_(\d+)_(x86_64|arm64)", tag):
        return "macos", m[3], (int(m[1]), int(m[2]))
    if tag == "win_amd64":
        return "windows", "x86_64", None
    if tag == "win_arm64":
        return "windows", "arm64", None
    raise ValueError(f"unexpected platform tag {tag}")


def inspect(path: Path) -> tuple[str, list[str]]:
    problems = []
    name, version, python, abi, plat = path.name[: -len(".whl")].split("-")
    if (python, abi) != ("cp39", "abi3"):
        problems.append(f"tag {python}-{abi}, expected cp39-abi3")
    system, arch, min_macos = platform_of(plat)
    with zipfile.ZipFile(path) as z:
        wheel = z.read(f"{name}-{version}.dist-info/WHEEL").decode()
        tags = re.findall(r"^Tag: (.+)$", wheel, re.MULTILINE)
        if tags != [f"{python}-{abi}-{plat}"]:
            problems.append(f"WHEEL says {tags}, the file name {python}-{abi}-{plat}")
        suffix = {"linux": ".so", "macos": ".so", "windows": ".pyd"}[system]
        binaries = [
            n for n in z.namelist() if n.startswith("latebird/_latebird") and n.endswith(suffix)
        ]
        if len(binaries) != 1:
            return plat, [*problems, f"expected one latebird/_latebird*{suffix}, found {binaries}"]
        data = z.read(binaries[0])
    info = {"linux": elf, "macos": macho, "windows": pe}[system](data)
    if info["arch"] != arch:
        problems.append(f"{binaries[0]} is {info['arch']}, the tag says {arch}")
    details = f"{info['arch']}"
    if system == "macos":
        minos = info["minos"]
        details += f", minimum macOS {minos[0]}.{minos[1]}" if minos else ", no minimum"
        if minos is None or minos > min_macos:
            problems.append(f"built for macOS {minos}, the tag says {min_macos}")
        odd = [lib for lib in info["links"] if not MACOS_SYSTEM.match(lib)]
    elif system == "windows":
        odd = [dll for dll in info["links"] if not WINDOWS_SYSTEM.match(dll)]
        odd = [dll for dll in odd if dll.lower() != "python3.dll"]
        if not any(dll.lower() == "python3.dll" for dll in info["links"]):
            problems.append(f"does not import python3.dll (the stable ABI): {info['links']}")
    else:
        odd = []
    if odd:
        problems.append(f"links libraries a user's machine may lack: {odd}")
    if info["links"]:
        details += "; links " + ", ".join(
            sorted({lib.lower(): lib for lib in info["links"]}.values(), key=str.lower)
        )
    return f"{path.name}: {details}", problems


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__.strip().splitlines()[-3].strip(), file=sys.stderr)
        return 2
    failed = False
    for p in paths:
        line, problems = inspect(Path(p))
        print(line)
        for problem in problems:
            print(f"  PROBLEM: {problem}")
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
