#!/usr/bin/env python3
"""The report of scripts/gpu_compilers.sh: attributes each driver's compiler statistics to
wgbert's kernels and writes docs/gpu-compilers.md and OUT/gpu-compilers.json.

For each chip it reads OUT/LABEL.json (`wgbert kernels --compile --json`: the builds in order,
their family, tile configuration, fragment shape, whether a first run takes them, workgroup
size and bytes) and OUT/LABEL.log (stderr: `kernel I/N: NAME` before each pipeline, then the
statistics layer's `executable:` and `stat:` lines for it). Lines before the first kernel
belong to wgpu's own pipelines and are left out.

Usage: gpu_stats.py --out DIR --doc FILE|- --mesa VERSION --shims TEXT [--notes FILE]
       LABEL=DRIVER:VAR...
Standard library only.
"""

import argparse
import datetime
import json
import re
import subprocess
import sys
from pathlib import Path

KERNEL = re.compile(r"^kernel (\d+)/(\d+): (.*)$")
EXECUTABLE = re.compile(r"^executable: (.*?) \| subgroup (\d+) \| (.*)$")
STAT = re.compile(r"^stat: (.*?) = (-?[0-9.e+]+)$")
ADAPTER = re.compile(r"^adapter: (.*)$")

UNITS = {"nvk": "warps/SM", "radv": "waves/SIMD", "anv": "threads/EU"}
# NVIDIA's shared memory per SM and resident workgroups per SM by chipset family (Ampere
# GA10x 0x17x, Ada AD10x 0x19x): NVK's "Max warps/SM" counts registers only, so the report
# takes the shared-memory limit as well where it knows the chip.
NV_SM = {"17": (100 * 1024, 16), "19": (100 * 1024, 24)}
VENDOR = {"nvk": "NVIDIA (NVK)", "radv": "AMD (RADV)", "anv": "Intel (ANV)"}


def parse_log(path):
    """The adapter line and, per kernel index (from 0), its executables: [(name, subgroup,
    {stat: value})]."""
    adapter, current, per_kernel = "", None, {}
    for line in Path(path).read_text(errors="replace").splitlines():
        if m := ADAPTER.match(line):
            adapter = m.group(1)
        elif m := KERNEL.match(line):
            current = int(m.group(1)) - 1
            per_kernel[current] = []
        elif current is None:
            continue
        elif m := EXECUTABLE.match(line):
            per_kernel[current].append((m.group(1), int(m.group(2)), {}))
        elif (m := STAT.match(line)) and per_kernel[current]:
            value = float(m.group(2))
            per_kernel[current][-1][2][m.group(1)] = int(value) if value.is_integer() else value
    return adapter, per_kernel


def normalize(driver, executables, workgroup_bytes):
    """One kernel's figures, the same fields for every driver (None where a driver has none):
    registers, spills and fills to memory and to registers, scratch bytes, occupancy in the
    driver's unit, instructions, shared bytes, SIMD width."""
    if not executables:
        return None
    # Drivers that compile several SIMD widths (ANV) report each; the widest is the one the
    # driver dispatches when it kept it (it drops widths that spill where a narrower one
    # does not).
    name, simd, s = max(executables, key=lambda e: e[1])
    g = s.get
    out = {"executable": name, "simd": simd, "widths": sorted(e[1] for e in executables)}
    if driver == "nvk":
        out.update(
            registers=g("Number of GPRs"),
            spills_mem=g("Spills to memory"),
            fills_mem=g("Fills from memory"),
            spills_reg=g("Spills to reg"),
            fills_reg=g("Fills from reg"),
            scratch=g("SLM size"),
            occupancy=g("Max warps/SM"),
            instructions=g("Instruction count"),
            shared=workgroup_bytes,
        )
    elif driver == "radv":
        out.update(
            registers=g("VGPRs"),
            sgprs=g("SGPRs"),
            spills_mem=g("Spilled VGPRs"),
            fills_mem=None,
            spills_reg=g("Spilled SGPRs"),
            fills_reg=None,
            scratch=g("Scratch size"),
            occupancy=g("Subgroups per SIMD"),
            instructions=g("Instructions"),
            shared=g("LDS size", workgroup_bytes),
        )
    else:
        grf = g("GRF registers") or 128
        out.update(
            registers=g("Max live registers"),
            grf_mode=grf,
            spills_mem=g("Spills"),
            fills_mem=g("Fills"),
            spills_reg=None,
            fills_reg=None,
            scratch=g("Scratch Memory Size"),
            # Xe-HPG and Xe2 run 8 threads per EU with 128 GRFs per thread, 4 with 256.
            occupancy=8 if grf <= 128 else 4,
            instructions=g("Instructions"),
            shared=g("Workgroup Memory Size", workgroup_bytes),
        )
    return out


def nv_shared_limit(var, k, stats):
    """Warps per SM that a workgroup's shared memory and the SM's workgroup slots allow, on
    NVIDIA chips NV_SM knows (None elsewhere or without the figures)."""
    chipset = var.split("=", 1)[1] if "=" in var else ""
    sm = NV_SM.get(chipset[:2])
    size = k.get("workgroup_size")
    if not sm or not size:
        return None
    threads = size[0] * size[1] * size[2]
    warps = -(-threads // 32)
    shared = stats.get("shared") or 0
    groups = sm[1] if shared == 0 else min(sm[1], sm[0] // shared)
    return groups * warps


def chip_report(out_dir, label, driver, var):
    kernels = json.loads((out_dir / f"{label}.json").read_text() or "[]")
    adapter, stats = parse_log(out_dir / f"{label}.log")
    rows = []
    for i, k in enumerate(kernels):
        figures = normalize(driver, stats.get(i, []), k.get("workgroup_bytes"))
        if figures and driver == "nvk" and figures["occupancy"] is not None:
            limit = nv_shared_limit(var, k, figures)
            if limit is not None:
                figures["occupancy_registers"] = figures["occupancy"]
                figures["occupancy"] = min(figures["occupancy"], limit)
        rows.append({**k, "stats": figures})
    occupied = [r["stats"]["occupancy"] for r in rows if r["stats"] and r["stats"]["occupancy"]]
    # The most any kernel reaches: the hardware's limit, which the smallest kernels reach.
    top = 8 if driver == "anv" else max(occupied, default=0)
    for r in rows:
        s = r["stats"]
        if s and s["occupancy"] is not None and top:
            s["occupancy_max"] = top
            s["occupancy_fraction"] = round(s["occupancy"] / top, 3)
    tensor_cores = {}
    info = out_dir / f"{label}.adapter.json"
    if info.exists():
        try:
            adapters = json.loads(info.read_text() or "[]")
            tensor_cores = (adapters[0] if adapters else {}).get("tensor_cores") or {}
        except (json.JSONDecodeError, IndexError, AttributeError):
            tensor_cores = {}
    return {
        "label": label,
        "driver": driver,
        "chip": var,
        "adapter": adapter,
        "tensor_cores": tensor_cores,
        "occupancy_unit": UNITS[driver],
        "kernels": rows,
    }


def short(name):
    """`matmul/main[ELEM=f16,F16=1,RM=4]` -> `matmul[f16,RM=4]`."""
    name = name.replace("/main[", "[").replace("ELEM=f16,F16=1", "f16").replace("ELEM=f32", "f32")
    return name.replace("/main", "")


def n(v):
    return "-" if v is None else str(v)


def spills(s):
    """Spills to memory (and fills), then to registers where the driver has them."""
    mem = n(s["spills_mem"]) + ("" if s["fills_mem"] is None else f":{s['fills_mem']}")
    if s["spills_reg"] is None:
        return mem
    reg = n(s["spills_reg"]) + ("" if s["fills_reg"] is None else f":{s['fills_reg']}")
    return f"{mem} (reg {reg})"


def bad(s):
    """Spills to memory, or scratch memory (arrays the compiler could not keep in registers:
    memory traffic as a spill is)."""
    return bool(s and ((s["spills_mem"] or 0) > 0 or (s.get("scratch") or 0) > 0))


def summary(chip):
    rows = chip["kernels"]
    stats = [r for r in rows if r["stats"]]
    failed = [r for r in rows if r.get("ok") is False]
    # Budgets hold for the builds the engine may run; builds listed only to be compiled
    # (`unused`) are counted apart.
    used = [r for r in stats if not r.get("unused")]
    spilling = [r for r in used if bad(r["stats"])]
    unused_spilling = [r for r in stats if r.get("unused") and bad(r["stats"])]
    defaults = [r for r in used if r["default"]]
    low = [r for r in defaults if r["stats"].get("occupancy_fraction", 1) < 0.5]
    default_spill = [r for r in defaults if bad(r["stats"])]
    default_reg = [r for r in defaults if (r["stats"]["spills_reg"] or 0) > 0]
    most = max(used, key=lambda r: r["stats"]["registers"] or 0, default=None)
    return {
        "kernels": len(rows),
        "failed": len(failed),
        "with_statistics": len(stats),
        "spill_to_memory": len(spilling),
        "unused": len(stats) - len(used),
        "unused_spill_to_memory": len(unused_spilling),
        "default": len(defaults),
        "default_spilling": len(default_spill),
        "default_spilling_to_registers": len(default_reg),
        "default_below_half_occupancy": len(low),
        "most_registers": most and (most["stats"]["registers"], short(most["name"])),
    }


def markdown(report):
    lines = [
        "# wgbert's kernels through real GPU compilers",
        "",
        f"Generated by `bash scripts/gpu_compilers.sh` on {report['date']} (wgbert "
        f"{report['commit']}): every kernel build `wgbert kernels --compile` makes on each chip,",
        f"compiled by Mesa {report['mesa']}'s Vulkan drivers under Mesa's drm-shim (no GPU; "
        "submissions do nothing).",
        f"Shims: {report['shims']}. Statistics: the drivers' own "
        "(`VK_KHR_pipeline_executable_properties`, through `scripts/pipeline_stats_layer.c`).",
        "",
        "Columns: **regs** registers per thread (NVIDIA: GPRs; AMD: VGPRs; Intel: the most "
        "live registers, of the 128 GRFs a thread has in the default mode); **spills** "
        "spills:fills to memory, and where the driver has them to registers (NVIDIA: spills "
        "to other register files, predicates among them; AMD: SGPRs spilled to VGPR lanes); "
        "**scratch** bytes of scratch memory per invocation (arrays the compiler could not "
        "keep in registers: memory traffic, counted with the spills to memory); **occupancy** "
        "warps per SM (NVIDIA: the fewer of what the registers allow, as NVK reports it, and "
        "what shared memory allows, 100 KiB per SM on Ampere and Ada), waves per SIMD (AMD, "
        "in RADV's wave32 units, registers and LDS) or threads per EU (Intel, from the GRF "
        "mode), of the most any kernel reaches on the chip; **instr** instructions; "
        "**shared** bytes of workgroup memory; **simd** the subgroup size the driver compiled "
        "for (Intel: the widest width kept). **default**: a first run takes this build "
        "(nothing tuned yet, the tensor-core self-checks passed); **unused**: listed only so "
        "that the driver compiles it, never run on this chip (the budget counts leave it out; "
        "see Budgets).",
        "",
        "| chip | adapter | kernels | failed | spill to memory | unused (spilling) | default "
        "| default spilling to memory | default spilling to registers | default below half "
        "occupancy | most registers |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in report["chips"]:
        s = c["summary"]
        most = f"{s['most_registers'][0]} ({s['most_registers'][1]})" if s["most_registers"] else "-"
        lines.append(
            f"| {c['label'].replace('_', ' ')} | {c['adapter']} | {s['kernels']} | {s['failed']} "
            f"| {s['spill_to_memory']} | {s['unused']} ({s['unused_spill_to_memory']}) "
            f"| {s['default']} | {s['default_spilling']} "
            f"| {s['default_spilling_to_registers']} | {s['default_below_half_occupancy']} "
            f"| {most} |"
        )
    lines += [
        "",
        "The tensor-core builds a first run takes on each chip once their self-checks pass "
        "(`wgbert info`'s `tensor_cores`: kernel, fragment shape, subgroup size, tiles), or "
        "why there are none:",
        "",
        "| chip | matmul | attention |",
        "|---|---|---|",
    ]
    def cell(v):
        return f"`{v['kernel']}`" if "kernel" in v else f"none: {v.get('none', '-')}"

    for c in report["chips"]:
        tc = c.get("tensor_cores", {})
        lines.append(
            f"| {c['label'].replace('_', ' ')} | {cell(tc.get('matmul', {}))} "
            f"| {cell(tc.get('attention', {}))} |"
        )
    lines += ["", "## Budgets", ""]
    if report.get("notes"):
        lines += [report["notes"].rstrip(), ""]
    lines += [
        "Default builds outside the budget (no spills at all, at least half the occupancy), "
        "by chip:",
        "",
        "| chip | kernel | regs | spills | scratch | occupancy | shared |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in report["chips"]:
        for r in c["kernels"]:
            st = r["stats"]
            if not st or not r["default"] or r.get("unused"):
                continue
            low = st.get("occupancy_fraction", 1) < 0.5
            if not (low or bad(st) or (st["spills_reg"] or 0) > 0):
                continue
            occ = f"{n(st['occupancy'])}/{n(st.get('occupancy_max'))}"
            if st.get("occupancy_registers") not in (None, st["occupancy"]):
                occ += f" (registers: {st['occupancy_registers']})"
            lines.append(
                f"| {c['label'].replace('_', ' ')} | `{short(r['name'])}` | {n(st['registers'])} "
                f"| {spills(st)} | {n(st.get('scratch'))} | {occ} | {n(st['shared'])} |"
            )
    for c in report["chips"]:
        unit = c["occupancy_unit"]
        lines += [
            "",
            f"## {c['label'].replace('_', ' ')}: {VENDOR[c['driver']]}, `{c['chip']}`",
            "",
            f"Adapter: {c['adapter']}.",
            "",
        ]
        for family, v in sorted(c.get("tensor_cores", {}).items()):
            what = f"`{v['kernel']}`" if "kernel" in v else f"none ({v.get('none', '?')})"
            lines.append(f"Tensor cores, {family} (`wgbert info`): {what}.")
        lines += [
            "",
            f"| kernel | family | config | frag | default | regs | spills | scratch "
            f"| occupancy ({unit}) | instr | shared | simd |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in c["kernels"]:
            s = r["stats"]
            name = f"`{short(r['name'])}`"
            head = (
                f"| {name} | {r['family']} | {r.get('config', '-')} | {r.get('fragment', '-')} "
                f"| {'yes' if r['default'] else 'unused' if r.get('unused') else ''} "
            )
            if r.get("ok") is False:
                lines.append(head + "| FAILED: " + r.get("error", "").splitlines()[0][:120] + " ||||||")
                continue
            if not s:
                lines.append(head + "| no statistics ||||||")
                continue
            occ = n(s["occupancy"])
            if s.get("occupancy_max"):
                occ += f"/{s['occupancy_max']}"
            regs = n(s["registers"])
            if s.get("grf_mode", 128) != 128:
                regs += f" (GRF {s['grf_mode']})"
            lines.append(
                head + f"| {regs} | {spills(s)} | {n(s.get('scratch'))} | {occ} "
                f"| {n(s['instructions'])} | {n(s['shared'])} | {s['simd']} |"
            )
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--doc", required=True)
    ap.add_argument("--mesa", required=True)
    ap.add_argument("--shims", default="")
    ap.add_argument("--commit", help="the wgbert commit the kernels are from (default HEAD)")
    ap.add_argument("--notes", type=Path, help="markdown put under Budgets (why defaults miss)")
    ap.add_argument("legs", nargs="+", help="LABEL=DRIVER:CHIP-VARIABLE")
    a = ap.parse_args()
    commit = a.commit
    try:
        commit = commit or subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    report = {
        "date": datetime.date.today().isoformat(),
        "mesa": a.mesa,
        "shims": a.shims,
        "commit": commit,
        "notes": a.notes.read_text() if a.notes else "",
        "chips": [],
    }
    missing = 0
    for leg in a.legs:
        label, rest = leg.split("=", 1)
        driver, var = rest.split(":", 1)
        chip = chip_report(a.out, label, driver, var)
        chip["summary"] = summary(chip)
        s = chip["summary"]
        if s["with_statistics"] < s["kernels"] - s["failed"]:
            print(
                f"gpu_stats.py: {label}: statistics for {s['with_statistics']} of "
                f"{s['kernels']} kernels",
                file=sys.stderr,
            )
            missing += 1
        report["chips"].append(chip)
        print(
            f"{label}: {s['kernels']} kernels, {s['failed']} failed, {s['spill_to_memory']} "
            f"spill to memory, {s['default_spilling']} of {s['default']} default ones spill "
            f"to memory and {s['default_spilling_to_registers']} to registers, "
            f"{s['default_below_half_occupancy']} default below half occupancy"
        )
    (a.out / "gpu-compilers.json").write_text(json.dumps(report, indent=1) + "\n")
    if a.doc != "-":
        Path(a.doc).parent.mkdir(parents=True, exist_ok=True)
        Path(a.doc).write_text(markdown(report))
        print(f"wrote {a.doc} and {a.out / 'gpu-compilers.json'}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
