"""The warp benchmark's report: the table printed after a run."""

from __future__ import annotations

from typing import Any

__all__ = ["format_table"]



def _fmt_ms(sec: float | None) -> str:
    return "-" if sec is None else f"{sec * 1e3:.2f}"


def format_table(report: dict[str, Any]) -> str:
    """The human-readable table of a report (as written to JSON)."""
    lines = []
    cfg = report["config"]
    lines.append(f"augpatch bench: device={report['device']['name']} threads="
                 f"{report['device']['threads']} torch={report['torch']} loss={cfg['loss']}"
                 f"{' clock=thread (CPU time of the timing thread)' if cfg.get('clock') == 'thread' else ''}"
                 f"{' (QUICK sizes)' if cfg['quick'] else ''}")
    if report.get("load_average_before") is not None:
        lines.append(f"1-min load average before/after: {report['load_average_before'][0]:.2f} / "
                     f"{report['load_average_after'][0]:.2f} "
                     f"(cpu_count={report['device'].get('cpu_count')}; >cpu_count means noisy)")
        cores = report["device"].get("cpu_count") or 1
        busy = max(report["load_average_before"][0], report["load_average_after"][0])
        if report["device"]["type"] == "cpu" and report["device"]["threads"] > 1 and busy > cores:
            lines.append("WARNING: the machine was busy while this ran with several intra-op "
                         "threads: small calls are then dominated by thread scheduling and "
                         "medians are unreliable; re-run on an idle machine or with --threads 1.")
    if report.get("kernel"):
        k = report["kernel"]
        lines.append(f"warp_patches kernel: {k['name']} ({k.get('setting', 'AUGPATCH_CPU_KERNEL')}={k['choice']}; "
                     f"built or loaded in {k['ready_s']:.1f} s before timing)")
    lines.append("t/t_aug = time(method) / time(augpatch): 'augpatch is that many times faster'. "
                 "mem_ratio = (inputs + peak_extra) / (inputs + output).")
    head = (f"{'scenario':<9} {'method':<16} {'fwd+bwd ms':>11} {'min ms':>9} {'t/t_aug':>8} "
            f"{'fwd ms':>9} "
            f"{'f/f_aug':>8} {'reps':>4} {'peak+ MB':>9} {'mem_ratio':>9}  note")
    lines.append(head)
    lines.append("-" * len(head))
    for sname, sres in report["scenarios"].items():
        spec = sres["spec"]
        lines.append(f"{sname}: B={spec['batch']} {spec['channels']}x{spec['height']}x"
                     f"{spec['width']} N={spec['num_objects']} boxes {spec['min_side']}-"
                     f"{spec['max_side']}px layout={spec['layout']} "
                     f"({sres['boxes_overlapping']} boxes overlap another)")
        for mname, e in sres["methods"].items():
            if e["status"] != "ok" or "median_s" not in e:
                lines.append(f"{'':<9} {mname:<16} {e['status'].upper():>11}  "
                             f"{e.get('reason', '')}")
                continue
            mem = e.get("memory", {})
            extra = mem.get("peak_extra_bytes")
            ratio = e.get("ratio_vs_augpatch")
            fratio = e.get("fwd_ratio_vs_augpatch")
            note = mem.get("error", "") or mem.get("skipped", "")
            if "mem_ratio_fwd" in mem:
                note += f" forward-only mem_ratio {mem['mem_ratio_fwd']:.2f}"
            if extra is not None and extra < sres["output_bytes"]:
                note += " mem below RSS resolution"
            if not e["differentiable"]:
                note += " no backward"
            if e.get("first_call_counted"):
                note += " slow: first call timed, no warm-up"
            lines.append(
                f"{'':<9} {mname:<16} {_fmt_ms(e['median_s']):>11} {_fmt_ms(e['min_s']):>9} "
                f"{'-' if ratio is None else f'{ratio:.2f}':>8} {_fmt_ms(e['fwd_median_s']):>9} "
                f"{'-' if fratio is None else f'{fratio:.2f}':>8} {e['repeats']:>4} "
                f"{'-' if extra is None else f'{extra / 2**20:.1f}':>9} "
                f"{'-' if 'mem_ratio' not in mem else format(mem['mem_ratio'], '.2f'):>9}  "
                f"{note.strip()}")
        for name, chk in sres.get("checks", {}).items():
            diffs = ", ".join(f"{k}={v:.1e}" for k, v in chk.items()
                              if isinstance(v, float))
            lines.append(f"{'':<9} check {name}: {'OK' if chk['match'] else 'MISMATCH'} "
                         f"(rel. max diff {diffs})")
    lines.append("")
    lines.append("Targets (computed from this run):")
    for t in report["targets"]:
        val = "" if t["value"] is None else f"measured {t['value']:.2f}"
        if t["kind"] == "speedup" and t["value"] is not None:
            val += "x"
        reason = f" ({t['reason']})" if t.get("reason") else ""
        note = f" [{t['note']}]" if t.get("note") else ""
        lines.append(f"  {t['status']:<4} {t['scenario']:<5} {t['text']}: {val}{reason}{note}")
    return "\n".join(lines)
