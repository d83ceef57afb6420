"""Writing an evaluation report: ``report.json``, ``report.md`` (the table for a paper) and ``rd.png``.

The report is the dict :func:`rrd_pipeline.stages.evaluate.run_evaluation` returns; an optional
``notes`` list of strings (run settings added by a caller) is printed with the settings. JSON has no
infinity: a PSNR of ``+inf`` (identical images) is written as the string ``"inf"``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from rrd_pipeline.writers import atomic_write  # noqa: E402

__all__ = ["write_report", "report_markdown", "plot_rd", "format_bd", "json_safe"]

_REFERENCE_TEXT = {"renders": "renders of the original atlas (seam pixels excluded)",
                   "photos": "the source photos (every covered pixel)"}


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats replaced by the strings "inf", "-inf" or "nan" (recursively)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def format_bd(value: Any) -> str:
    """A BD-rate table cell: ``+1.23`` percent, or ``undefined (reason)``."""
    if isinstance(value, dict):
        return f"undefined ({value['undefined']})"
    return f"{value:+.2f}"


def _points_text(report: dict[str, Any]) -> str:
    return f"{report['param_name']} {', '.join(str(p) for p in report['points'])}"


def report_markdown(report: dict[str, Any]) -> str:
    """The report as markdown: settings, the BD-rate table against the anchor, the RD points."""
    views, atlas = report["views"], report["atlas"]
    anchor = report["anchor"]
    lines = [f"# Rate-distortion evaluation: {report['scene']}, {report['codec']}", "",
             f"- codec: `{report['codec_repr']}` at {_points_text(report)}",
             f"- reference: {_REFERENCE_TEXT[report['reference']]}; texture filter {report['filter']}",
             f"- views: {len(views['names'])} ({views['set']}"
             + (f", held out from fitting, evaluated alone: {views['holdout']}" if views.get("holdout")
                else f", left out: {views['leave_out']}" if views["leave_out"] else "") + ")"
             + (f"; {100 * views['excluded_share']:.2f} % of covered pixels excluded"
                if report["reference"] == "renders" else "")
             + (f"; dropped (nothing to count): {', '.join(views['dropped'])}" if views["dropped"] else ""),
             f"- atlas: {atlas['tiles']} tile(s) of {atlas['width']}x{atlas['height']} texels, "
             f"{100 * atlas['used_share']:.1f} % used; rate in bits per atlas texel (bpp)",
             f"- anchor: `{anchor}` ({report['anchor_rule']})"]
    lines += [f"- `{name}` settings: " + ", ".join(f"{k} {v}" for k, v in entry["settings"].items())
              for name, entry in report["methods"].items() if entry.get("settings")]
    lines += [f"- {note}" for note in report.get("notes", [])]
    lines += ["", f"## BD-rate (%) against `{anchor}`", "",
              "Negative: fewer bits than the anchor for the same rendering PSNR.", "",
              "| method | RGB pchip | RGB cubic | YUV pchip | YUV cubic |", "|---|---:|---:|---:|---:|"]
    for name in report["methods"]:
        rgb, yuv = report["bd_rate"][name], report["bd_rate_yuv"][name]
        label = f"{name} (anchor)" if name == anchor else name
        lines.append(f"| {label} | {format_bd(rgb['pchip'])} | {format_bd(rgb['cubic'])} | "
                     f"{format_bd(yuv['pchip'])} | {format_bd(yuv['cubic'])} |")
    notes = [f"{name} ({metric}): {w}" for metric, key in (("RGB", "bd_rate"), ("YUV", "bd_rate_yuv"))
             for name in report["methods"] for w in report[key][name]["warnings"]]
    if notes:
        lines += ["", "Warnings:", ""] + [f"- {n}" for n in notes]
    lines += ["", "## Operating points", "",
              f"| method | {report['param_name']} | bytes | bpp | PSNR RGB (dB) | PSNR YUV (dB) |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, entry in report["methods"].items():
        for p in entry["points"]:
            lines.append(f"| {name} | {p['param']} | {p['bytes']} | {p['bpp']:.4f} | {p['psnr']:.2f} | "
                         f"{p['psnr_yuv']:.2f} |")
    lines += ["", "Uncoded (the method's atlas before coding): "
              + ", ".join(f"{name} {e['uncoded']['psnr']:.2f} dB" for name, e in report["methods"].items()), ""]
    return "\n".join(lines)


def plot_rd(report: dict[str, Any], path: Path) -> Path:
    """RD curves, one line per method: bpp on x, RGB PSNR (left) and YUV PSNR (right) on y."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, key, label in ((axes[0], "psnr", "RGB PSNR (dB)"), (axes[1], "psnr_yuv", "YUV PSNR (dB)")):
        for name, entry in report["methods"].items():
            points = sorted(entry["points"], key=lambda p: p["bpp"])
            ax.plot([p["bpp"] for p in points], [p[key] for p in points], marker="o", markersize=3,
                    linewidth=2.2 if name == report["anchor"] else 1.2,
                    label=f"{name} (anchor)" if name == report["anchor"] else name)
        ax.set_xlabel("bits per atlas texel (bpp)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{report['scene']}: {report['codec']}, reference {report['reference']}, "
                 f"{len(report['views']['names'])} views", fontsize=10)
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path


def write_report(out_dir: Path, report: dict[str, Any]) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and ``rd.png`` into ``out_dir``; return their paths by name."""
    out_dir = Path(out_dir)
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md", "png": out_dir / "rd.png"}
    with atomic_write(paths["json"]) as tmp:
        tmp.write_text(json.dumps(json_safe(report), indent=2, allow_nan=False))
    with atomic_write(paths["md"]) as tmp:
        tmp.write_text(report_markdown(report))
    plot_rd(report, paths["png"])
    return paths
