"""`aia bench serve` results: the console line, the markdown tables, the PNG, the files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from service.metrics import STAGES


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{1000 * seconds:.0f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _batch(level: Mapping[str, Any]) -> str:
    return " / ".join("-" if v is None else f"{v:.1f}" for v in level["mean_batch"].values())


def level_line(level: Mapping[str, Any]) -> str:
    lat = level["latency_s"]
    return (f"{level['clients']:>3} clients: {level['ok']}/{level['requests']} ok, "
            f"p50 {_ms(lat['p50'])} ms, p90 {_ms(lat['p90'])} ms, p99 {_ms(lat['p99'])} ms, "
            f"{level['requests_per_s']:.2f} req/s, {level['keyframes_per_s']:.1f} key frames/s, "
            f"overhead {_share(level['overhead_share'])}")


TABLE_HEAD = ("| clients | requests (ok) | p50 (ms) | p90 (ms) | p99 (ms) | requests/s "
              "| key frames/s | model (ms/req) | graph compute (ms/req) | server (ms/req) "
              "| overhead share | mean batch (features / head) | queue wait (ms) |")


def markdown(result: Mapping[str, Any]) -> str:
    served = result["model"]
    settings = ", ".join(f"{k}={v}" for k, v in result["settings"].items()) or "defaults"
    lines = [f"# `aia bench serve`: {result['endpoint']} on {result['device']}", "",
             f"Command: `{result['command']}`", "",
             f"Model {served['version']} ({served['runtime']}, "
             f"{served['device']}), {result['store']} store, {result['cpus']} CPUs, "
             f"clip {result['clip']} ({'client boxes' if result['boxes'] else 'detector'}), "
             f"settings: {settings}. 1-minute load average {result['load_average'][0]} "
             f"before, {result['load_average'][1]} after (other work on the machine slows "
             "every number).",
             "", TABLE_HEAD, "|" + "---|" * (TABLE_HEAD.count("|") - 1)]
    for level in result["levels"]:
        lat = level["latency_s"]
        lines.append(
            f"| {level['clients']} | {level['requests']} ({level['ok']}) | {_ms(lat['p50'])} | "
            f"{_ms(lat['p90'])} | {_ms(lat['p99'])} | {level['requests_per_s']:.2f} | "
            f"{level['keyframes_per_s']:.1f} | {_ms(level['model_s_per_request'])} | "
            f"{_ms(level['graph_s_per_request'])} | "
            f"{_ms(level['server_s_per_request'])} | {_share(level['overhead_share'])} | "
            f"{_batch(level)} | {_ms(level['queue_wait_mean_s'])} |")
    lines += ["", "Latency is the client's (upload to last byte). Model: the detector, "
              "features and head stages per request (their batcher queue wait included); "
              "graph compute: the batched graph calls alone, each call once; server: the "
              "service's own request time; overhead share = 1 - model / server.", "",
              "Stage time per request (ms, from `aia_stage_duration_seconds`):", "",
              "| clients | " + " | ".join(STAGES) + " |", "|---|" + "---|" * len(STAGES)]
    for level in result["levels"]:
        per = level["stage_s_per_request"]
        lines.append(f"| {level['clients']} | " + " | ".join(_ms(per[s]) for s in STAGES)
                     + " |")
    return "\n".join(lines) + "\n"


def chart(result: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = result["levels"]
    clients = [level["clients"] for level in levels]
    fig, (lat_ax, rate_ax, share_ax) = plt.subplots(1, 3, figsize=(14, 3.8))
    for q, style in (("p50", "o-"), ("p90", "s--"), ("p99", "^:")):
        lat_ax.plot(clients, [1000 * level["latency_s"][q] for level in levels], style, label=q)
    lat_ax.set(xscale="log", xlabel="concurrent clients", ylabel="ms",
               title="request latency (client)")
    rate_ax.plot(clients, [level["requests_per_s"] for level in levels], "o-", color="C0",
                 label="requests/s")
    rate_ax.set(xscale="log", xlabel="concurrent clients", ylabel="requests/s",
                title="throughput")
    frames_ax = rate_ax.twinx()
    frames_ax.plot(clients, [level["keyframes_per_s"] for level in levels], "s--", color="C1",
                   label="key frames/s")
    frames_ax.set_ylabel("key frames/s")
    for ax in (lat_ax, rate_ax):
        ax.set_xticks(clients, [str(c) for c in clients])
        ax.set_ylim(bottom=0)
    frames_ax.set_ylim(bottom=0)
    server = [1000 * level["server_s_per_request"] for level in levels]
    model = [1000 * level["model_s_per_request"] for level in levels]
    ticks = [str(c) for c in clients]
    share_ax.bar(ticks, model, label="model stages (queue wait included)")
    share_ax.bar(ticks, [s - m for s, m in zip(server, model, strict=True)], bottom=model,
                 label="service overhead")
    for x, (level, total) in enumerate(zip(levels, server, strict=True)):
        share_ax.annotate(_share(level["overhead_share"]), (x, total), ha="center",
                          va="bottom")
    share_ax.set(xlabel="concurrent clients", ylabel="ms per request",
                 title="server time per request")
    share_ax.set_ylim(0, 1.3 * max(server))  # room for the labels and the legend
    share_ax.legend(loc="upper left", fontsize=8)
    lat_ax.legend()
    rate_ax.legend(handles=rate_ax.lines + frames_ax.lines, loc="lower right")
    fig.suptitle(f"aia serve {result['endpoint']}: {result['model']['version']} "
                 f"({result['device']}, {result['store']} store, {result['cpus']} CPUs)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(result: Mapping[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    chart(result, out.with_suffix(".png"))
