"""Table, P1-P5 verdicts and PNG from raw/cells.json (also: python3 report.py RESULTS_DIR)."""
import json
import os
import statistics
import sys

GW, EV, DEB, AP = "gateway", "eventlet", "debian-uwsgi", "apache-mod_wsgi"


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def agg(cells):
    """(stack, path, conc) -> medians, min, max over rounds; error counts summed."""
    out = {}
    for c in cells:
        out.setdefault((c["stack"], c["path"], c["conc"]), []).append(c)
    res = {}
    for k, cs in out.items():
        rps = [c["rps"] for c in cs]
        res[k] = {
            "rps": med(rps), "rps_min": min(rps), "rps_max": max(rps),
            "p50": med([c["p50"] / 1000 for c in cs]),
            "p99": med([c["p99"] / 1000 for c in cs]),
            "p99_min": min(c["p99"] / 1000 for c in cs),
            "p99_max": max(c["p99"] / 1000 for c in cs),
            "non2xx": sum(c["status"] for c in cs),
            "sockerr": sum(c["sockerr"] for c in cs),
            "timeouts": sum(c["timeout"] for c in cs),
            "requests": sum(c["requests"] for c in cs),
            "cpu": med([c["cpu_ms_per_req"] for c in cs]),
            "cpu_min": min((c["cpu_ms_per_req"] or 0) for c in cs),
            "cpu_max": max((c["cpu_ms_per_req"] or 0) for c in cs),
            "n": len(cs),
        }
    return res


def workers(data):
    """Worker processes per stack, as bench.py ran them (2 in runs recorded before it said)."""
    return data.get("workers", 2)


def app_cpu(data, key="cpu_ms"):
    """The in-process app's CPU ms per request by path (median of the samples): as uWSGI
    and mod_wsgi call it, or with key="cpu_ms_eventlet_env" as nova-api's eventlet server
    does ({} from a run before that was measured)."""
    return {p: med(v) for p, v in data["limit"].get(key, {}).items()}


def by_process(cells, stack, path, conc):
    """Median over rounds of each process name's CPU ms per request (nginx, uwsgi-core...)."""
    per = {}
    for c in cells:
        if (c["stack"], c["path"], c["conc"]) == (stack, path, conc) and c["requests"]:
            for name, sec in c.get("cpu_s_by_process_name", {}).items():
                per.setdefault(name, []).append(1000 * sec / c["requests"])
    return {name: med(v) for name, v in per.items()}


def gateway_parts(rows):
    """The gateway's PSS (KiB) by part: nginx, the emperor (with its pool), the vassals."""
    parts = {"nginx": 0, "emperor": 0, "vassals": 0}
    for r in rows:
        part = ("nginx" if r["cmdline"].startswith("nginx") else
                "emperor" if "emperor" in r["cmdline"] else "vassals")
        parts[part] += r["pss_kib"]
    return parts


def fmt(x, nd=1):
    return "-" if x is None else f"{x:.{nd}f}"


def verdicts(a, data):
    stacks = sorted({k[0] for k in a})
    concs = sorted({k[2] for k in a})
    limit = app_cpu(data)
    lines, summary = [], {}

    def have(*ks):
        return all(k in a for k in ks)

    # P1 efficiency: CPU per request at c=16 (the middle, CPU-saturated load).
    c = 16 if 16 in concs else concs[len(concs) // 2]
    p1_ok = True
    for path in ("/", "/v2.1/flavors"):
        if not have((GW, path, c), (EV, path, c)):
            continue
        gw = a[(GW, path, c)]["cpu"]
        others = {s: a[(s, path, c)]["cpu"] for s in stacks
                  if s != GW and (s, path, c) in a and a[(s, path, c)]["cpu"] is not None}
        # nova's app skips its request log line under eventlet (the server writes one):
        # eventlet's overhead is over the app as eventlet runs it.
        ev_app = app_cpu(data, "cpu_ms_eventlet_env").get(path, limit[path])
        o_gw, o_ev = gw - limit[path], others[EV] - ev_app
        le_all = all(gw <= v for v in others.values())
        ratio = o_gw / o_ev if o_ev > 0 else float("inf")
        ok = le_all and ratio <= 0.7
        if path == "/":
            p1_ok = ok
        lines.append(
            f"P1 {path:14s} CPU/req (c={c}) gateway {gw:.3f} ms; "
            + ", ".join(f"{s} {v:.3f}" for s, v in others.items())
            + f"; app {limit[path]:.3f} ({ev_app:.3f} as nova-api runs it, no request log line)"
            f" -> overhead gateway {o_gw:.3f} vs eventlet {o_ev:.3f}"
            f" = {ratio:.2f}x (target <= 0.70x, and <= every stack: {'yes' if le_all else 'no'})"
            f"  {'PASS' if ok else 'MISS'}{'' if path == '/' else ' (reported, not judged)'}")
        if "uwsgi_cpu_ms" in data["limit"]:
            app_uwsgi = med(data["limit"]["uwsgi_cpu_ms"][path])
            lines.append(
                f"   {path:14s} the app in uWSGI's embedded libpython: {app_uwsgi:.3f} ms "
                f"({app_uwsgi / limit[path]:.2f}x /usr/bin/python3's) -> gateway's own overhead "
                f"{gw - app_uwsgi:.3f} ms vs eventlet {o_ev:.3f}")
            split = by_process(data["cells"], GW, path, c)
            if "nginx" in split and "uwsgi-core" in split:
                u = split["uwsgi-core"]
                lines.append(
                    f"   {path:14s} gateway by process: nginx {split['nginx']:.3f} ms + uWSGI "
                    f"{u:.3f} ms (= the app in its interpreter {app_uwsgi:.3f} + request "
                    f"handling {u - app_uwsgi:.3f})")
    floor = agg(data.get("floor_cells", []))
    if (GW, "/", 16) in floor and (EV, "/", 16) in floor:
        split = by_process(data["floor_cells"], GW, "/", 16)
        g, e = floor[(GW, "/", 16)], floor[(EV, "/", 16)]
        lines.append(
            f"   floor          a no-op app loaded the same way, GET / c=16 (the servers' own work):"
            f" gateway {g['cpu']:.3f} ms/req (nginx {split.get('nginx', 0):.3f} + uWSGI "
            f"{split.get('uwsgi-core', 0):.3f}) at {g['rps']:.0f} req/s, eventlet {e['cpu']:.3f}"
            f" ms/req at {e['rps']:.0f} req/s = {g['cpu'] / e['cpu']:.2f}x (not judged)")
    summary["P1"] = p1_ok

    # P2 overload: c=256 vs c=16, and p99 vs eventlet.
    hi = max(concs)
    p2_ok = True
    for path in ("/", "/v2.1/flavors"):
        if hi == c or not have((GW, path, hi), (GW, path, c), (EV, path, hi)):
            continue
        g, g16, e = a[(GW, path, hi)], a[(GW, path, c)], a[(EV, path, hi)]
        keep = g["rps"] / g16["rps"]
        pr = g["p99"] / e["p99"]
        ok = g["sockerr"] == 0 and g["non2xx"] == 0 and keep >= 0.95 and pr <= 0.6
        p2_ok = p2_ok and ok
        lines.append(
            f"P2 {path:14s} c={hi}: gateway sockerr {g['sockerr']}, non-2xx {g['non2xx']}; "
            f"req/s {g['rps']:.0f} = {100 * keep:.0f}% of its c={c} (target >= 95%); "
            f"p99 {g['p99']:.0f} ms vs eventlet {e['p99']:.0f} ms = {pr:.2f}x (target <= 0.60x)"
            f"  {'PASS' if ok else 'MISS'}")
    if any(line.startswith("P2") for line in lines):
        summary["P2"] = p2_ok

    # P3 throughput at c=16.
    p3_ok = True
    for path in ("/", "/v2.1/flavors"):
        if (GW, path, c) not in a:
            continue
        g = a[(GW, path, c)]
        best = max((s for s in stacks if s != GW and (s, path, c) in a),
                   key=lambda s: a[(s, path, c)]["rps"])
        b = a[(best, path, c)]
        ok = g["rps"] >= b["rps"]
        p3_ok = p3_ok and ok
        lines.append(
            f"P3 {path:14s} c={c}: gateway {g['rps']:.0f} [{g['rps_min']:.0f}-{g['rps_max']:.0f}]"
            f" req/s vs best other ({best}) {b['rps']:.0f} [{b['rps_min']:.0f}-{b['rps_max']:.0f}]"
            f" = {100 * g['rps'] / b['rps']:.1f}%  {'PASS' if ok else 'MISS'}")
    summary["P3"] = p3_ok

    # P4 latency at c=1 on GET /.
    lo = min(concs)
    if have((GW, "/", lo), (DEB, "/", lo)):
        g, d = a[(GW, "/", lo)]["p50"], a[(DEB, "/", lo)]["p50"]
        ok = g <= d + 0.3
        summary["P4"] = ok
        lines.append(f"P4 /              c={lo}: p50 gateway {g:.2f} ms vs debian-uwsgi {d:.2f} ms"
                     f" + 0.30 = {d + 0.3:.2f} ms (margin {d + 0.3 - g:+.2f} ms)"
                     f"  {'PASS' if ok else 'MISS'}")

    # P5 memory.
    pss = data["pss_kib"]
    peers = {s: pss[s] for s in (DEB, AP) if s in pss}
    if GW in pss and peers:
        ok = all(pss[GW] <= v for v in peers.values())
        summary["P5"] = ok
        lines.append(f"P5 PSS gateway {pss[GW] / 1024:.0f} MiB vs "
                     + ", ".join(f"{s} {v / 1024:.0f} MiB" for s, v in peers.items())
                     + f" (eventlet {pss.get(EV, 0) / 1024:.0f} MiB, not judged)"
                     f"  {'PASS' if ok else 'MISS'}")
        if GW in data.get("pss_by_process", {}):
            parts = gateway_parts(data["pss_by_process"][GW])
            lines.append("   gateway by part: " + ", ".join(
                f"{k} {v / 1024:.1f} MiB" for k, v in parts.items()) + (
                f" (vassals = master + {workers(data)} workers, like debian-uwsgi's processes)"))
    return lines, summary


def table(a, data):
    limit = app_cpu(data)
    rows = [f"{'stack':16s} {'path':14s} {'conc':>4s} {'req/s median [min-max]':>24s} "
            f"{'p50 ms':>8s} {'p99 ms [min-max]':>22s} {'non2xx':>7s} {'sockerr':>7s} "
            f"{'CPU ms/req':>10s}"]
    stacks = [s for s in (GW, EV, DEB, AP) if any(k[0] == s for k in a)]
    for path in ("/", "/v2.1/flavors"):
        for conc in sorted({k[2] for k in a}):
            for s in stacks:
                r = a.get((s, path, conc))
                if not r:
                    continue
                rows.append(
                    f"{s:16s} {path:14s} {conc:4d} "
                    f"{fmt(r['rps']):>8s} [{fmt(r['rps_min'])}-{fmt(r['rps_max'])}]".ljust(48)
                    + f" {fmt(r['p50'], 2):>8s} "
                    + f"{fmt(r['p99'], 1)} [{fmt(r['p99_min'], 0)}-{fmt(r['p99_max'], 0)}]".rjust(22)
                    + f" {r['non2xx']:7d} {r['sockerr']:7d} {fmt(r['cpu'], 3):>10s}")
            rows.append(f"{'limit':16s} {path:14s} {conc:4d} "   # CPU-bound ceiling, no server
                        f"{workers(data) * 1000 / limit[path]:8.1f} "
                        f"(app {limit[path]:.3f} ms CPU/req x {workers(data)})")
        rows.append("")
    pss = data["pss_kib"]
    rows.append("PSS (all processes of the stack, after the rounds): " + ", ".join(
        f"{s} {pss[s] / 1024:.0f} MiB ({data['processes'][s]} procs)" for s in stacks))
    return rows


def chart(a, data, path_png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    stacks = [s for s in (GW, EV, DEB, AP) if any(k[0] == s for k in a)]
    concs = sorted({k[2] for k in a})
    limit = app_cpu(data)
    colors = {GW: "tab:green", EV: "tab:blue", DEB: "tab:orange", AP: "tab:red"}
    cols = max(len(concs), 3)   # the bottom row has three charts whatever BENCH_CONC is
    fig, axes = plt.subplots(3, cols, figsize=(4.2 * cols, 11), squeeze=False)
    for row in (0, 1):
        for col in range(len(concs), cols):
            axes[row][col].axis("off")
    for row, path in enumerate(("/", "/v2.1/flavors")):
        for col, conc in enumerate(concs):
            ax = axes[row][col]
            vals = [a[(s, path, conc)] for s in stacks]
            y = [v["rps"] for v in vals]
            err = [[v["rps"] - v["rps_min"] for v in vals], [v["rps_max"] - v["rps"] for v in vals]]
            ax.bar(range(len(stacks)), y, yerr=err, color=[colors[s] for s in stacks], capsize=3)
            ax.axhline(workers(data) * 1000 / limit[path], color="k", ls="--", lw=1, label="limit")
            for i, v in enumerate(vals):
                bad = v["non2xx"] + v["sockerr"]
                if bad:
                    ax.text(i, v["rps"], f"{bad} err", ha="center", va="bottom", fontsize=7,
                            color="red")
            ax.set_xticks(range(len(stacks)))
            ax.set_xticklabels(stacks, rotation=20, fontsize=7)
            ax.set_title(f"GET {path}  c={conc}: req/s", fontsize=9)
            if col == 0:
                ax.legend(fontsize=7)
    hi = max(concs)
    ax = axes[2][0]
    w = 0.4
    for j, path in enumerate(("/", "/v2.1/flavors")):
        ax.bar([i + j * w for i in range(len(stacks))], [a[(s, path, hi)]["p99"] for s in stacks],
               w, label=f"GET {path}")
    ax.set_xticks([i + w / 2 for i in range(len(stacks))])
    ax.set_xticklabels(stacks, rotation=20, fontsize=7)
    ax.set_title(f"p99 latency (ms) at c={hi}", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[2][1]
    c = 16 if 16 in concs else concs[len(concs) // 2]
    ev_app = app_cpu(data, "cpu_ms_eventlet_env")
    for j, path in enumerate(("/", "/v2.1/flavors")):
        ax.bar([i + j * w for i in range(len(stacks))],
               [a[(s, path, c)]["cpu"] - (ev_app.get(path, limit[path]) if s == EV else limit[path])
                for s in stacks], w, label=f"GET {path}")
    ax.set_xticks([i + w / 2 for i in range(len(stacks))])
    ax.set_xticklabels(stacks, rotation=20, fontsize=7)
    ax.set_title(f"server CPU overhead ms/req (c={c}, minus in-process app)", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[2][2]
    ax.bar(range(len(stacks)), [data["pss_kib"][s] / 1024 for s in stacks],
           color=[colors[s] for s in stacks])
    ax.set_xticks(range(len(stacks)))
    ax.set_xticklabels(stacks, rotation=20, fontsize=7)
    ax.set_title("PSS of all processes (MiB)", fontsize=9)
    fig.suptitle("nova Compute API, TLS, 2 workers, loopback (medians, bars: min-max)")
    fig.tight_layout()
    fig.savefig(path_png, dpi=90)


def report(res_dir):
    with open(os.path.join(res_dir, "raw", "cells.json")) as f:
        data = json.load(f)
    a = agg(data["cells"])
    rows = table(a, data)
    lines, summary = verdicts(a, data)
    head = (f"rounds {data['rounds']} x {data['duration']} s per cell; "
            f"overrides: {', '.join(data['overrides']) or 'none (installed package defaults)'}")
    text = "\n".join([head, ""] + rows + [""] + lines + [
        "", "summary: " + " ".join(f"{k} {'PASS' if v else 'MISS'}" for k, v in summary.items())])
    with open(os.path.join(res_dir, "table.txt"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(res_dir, "summary.json"), "w") as f:
        json.dump({"summary": summary, "verdicts": lines,
                   "cells": {f"{k[0]} {k[1]} c={k[2]}": v for k, v in a.items()}}, f, indent=1)
    png = os.path.join(res_dir, "bench.png")
    try:
        chart(a, data, png)
    except Exception as e:  # the table matters more than the picture
        png = f"(no chart: {e})"
    print("\n" + text)
    print(f"\ntable: {res_dir}/table.txt\nchart: {png}\nraw:   {res_dir}/raw/ "
          f"(wrk output per cell, cells.json, limit.json), logs: {res_dir}/logs/")


if __name__ == "__main__":
    report(sys.argv[1])
