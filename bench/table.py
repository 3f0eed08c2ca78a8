"""Turns one bench/run.sh results folder into the Markdown table of BENCHMARKS.md.

Usage: python3 bench/table.py bench/results/<stamp>
Each row: the figure, ours, theirs (nginx + nchan, or the bare HTTP stack), their ratio, and
whether every message arrived exactly once in order in both runs.
"""
import json
import pathlib
import sys


def load(folder, name):
    path = folder / f"{name}.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


def metric(report, name):
    if report is None:
        return None
    for item in report["metrics"]:
        if item["name"] == name:
            return item["value"]
    return None


def fmt(value, unit):
    if value is None:
        return "n/a"
    if unit == "bytes":
        return f"{value / 1024:.1f} KiB"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    return f"{value:,.0f} {unit}"


def verdict(*reports):
    present = [r for r in reports if r is not None]
    if not present:
        return "n/a"
    return "yes" if all(not r["violations"] for r in present) else "NO"


def failed_polls(report):
    """The retried polls of a fan-out and what they failed with (`loadgen`'s failure kinds)."""
    if report is None:
        return "n/a"
    kinds = report.get("transport_error_kinds") or {}
    detail = ", ".join(f"{kind} {n:,}" for kind, n in sorted(kinds.items()))
    return f"{report['transport_errors']:,}" + (f" ({detail})" if detail else "")


def flood_section(folder):
    """The query flood of issue 7 A4: normal traffic without and beside it (`loadgen flood`)."""
    baseline, flooded = load(folder, "ours-flood-baseline"), load(folder, "ours-flood")
    if baseline is None and flooded is None:
        return
    params = (flooded or baseline)["params"]
    print()
    print(f"A query flood beside normal traffic (issue 7 A4): {params['pushers']} pushers at "
          f"{params['push_rate_per_pusher']:g} pushes/s each and one held pop woken by their pushes, "
          f"without and beside {params['flooders']} clients sending, as fast as answered, "
          f"{params['flood_query_bytes'] / 1000:.0f} KB queries of {params['keys']:,} distinct keys:")
    print()
    print("| figure | without the flood | beside the flood | beside / without | every push stored once, every flood request refused |")
    print("|---|---|---|---|---|")
    rows = [
        ("push latency p50", "push_latency_p50", "ms"),
        ("push latency p99", "push_latency_p99", "ms"),
        ("push latency max", "push_latency_max", "ms"),
        ("held pop's wake-up p50 (from the push's acknowledgement)", "wake_latency_p50", "ms"),
        ("held pop's wake-up p99 (from the push's acknowledgement)", "wake_latency_p99", "ms"),
        ("held pop's wake-up p50 (from the push's send)", "wake_from_send_p50", "ms"),
        ("held pop's wake-up p99 (from the push's send)", "wake_from_send_p99", "ms"),
        ("flood requests answered (too_many_parameters)", "flood_answers_per_s", "req/s"),
    ]
    for figure, name, unit in rows:
        without, beside = metric(baseline, name), metric(flooded, name)
        ratio = f"{beside / without:.2f}" if beside is not None and without and without >= 0.05 else "n/a"
        print(f"| {figure} | {fmt(without, unit)} | {fmt(beside, unit)} | {ratio} | {verdict(baseline, flooded)} |")
    p99 = metric(flooded, "push_latency_p99")
    if p99 is not None:
        target = params["push_p99_target_ms"]
        print()
        print(f"Push p99 beside the flood under {target:g} ms: {'yes' if p99 < target else 'NO'} ({p99:.1f} ms).")


def wake_and_large_sections(folder):
    """One held poll's wake-up, and the fan-out at the larger sizes, side by side."""
    ours, theirs = load(folder, "ours-wake"), load(folder, "nchan-wake")
    if ours is not None or theirs is not None:
        print()
        print("One held poll woken 20 times a second (issue 11 target: ours under 2 ms at p50 and 5 ms at p99 from the acknowledgement):")
        print()
        print("| figure | ours | nginx + nchan | ours / nchan | all delivered once, in order |")
        print("|---|---|---|---|---|")
        for figure, name in (
            ("wake-up p50, from the push's acknowledgement", "fanout_latency_p50"),
            ("wake-up p99, from the push's acknowledgement", "fanout_latency_p99"),
            ("wake-up p50, from the push's send", "send_to_arrival_p50"),
            ("wake-up p99, from the push's send", "send_to_arrival_p99"),
        ):
            a, b = metric(ours, name), metric(theirs, name)
            ratio = f"{a / b:.2f}" if a is not None and b and b >= 0.05 else "n/a"
            print(f"| {figure} | {fmt(a, 'ms')} | {fmt(b, 'ms')} | {ratio} | {verdict(ours, theirs)} |")
    sizes = sorted(
        int(path.stem.rsplit("-", 1)[1])
        for path in folder.glob("ours-fanout-*.json")
        if path.stem.rsplit("-", 1)[1].isdigit()
    )
    if not sizes:
        return
    print()
    print("Larger fan-outs: one process holds no more connections than its open-file limit (a hard "
          "20 000 here), so ours runs one chat-server per 12 500 pollers on the Redis backend, the "
          "pollers spread evenly over them, and nchan as many nginx workers; loadgen spreads its "
          "pollers over as many processes:")
    print()
    print("| held polls | figure | ours | nginx + nchan | ours / nchan | all delivered once, in order (ours / nchan) |")
    print("|---|---|---|---|---|---|")
    for size in sizes:
        ours, theirs = load(folder, f"ours-fanout-{size}"), load(folder, f"nchan-fanout-{size}")
        for figure, name, unit in (
            ("fan-out p50 (from publish send)", "send_to_arrival_p50", "ms"),
            ("fan-out p99 (from publish send)", "send_to_arrival_p99", "ms"),
            ("fan-out p99 (from publish ack)", "fanout_latency_p99", "ms"),
            ("memory per held poll (all server processes)", "server_rss_per_held_poll", "bytes"),
            ("deliveries", "deliveries", "count"),
        ):
            a, b = metric(ours, name), metric(theirs, name)
            ratio = f"{a / b:.2f}" if a is not None and b and b >= 0.05 else "n/a"
            print(f"| {size:,} | {figure} | {fmt(a, unit)} | {fmt(b, unit)} | {ratio} | {verdict(ours)} / {verdict(theirs)} |")
        print(f"| {size:,} | failed polls, retried (by kind) | {failed_polls(ours)} | {failed_polls(theirs)} | | {verdict(ours)} / {verdict(theirs)} |")


def stack_section(folder):
    """The 10 000-poll fan-out of ours, of actix-web alone (`httpref --long-poll`) and of nginx
    + nchan, with each server's CPU time per delivery (one answer and the next poll)."""
    reports = [load(folder, name) for name in ("ours-fanout", "httpref-fanout", "nchan-fanout")]
    if reports[1] is None:
        return
    print()
    print("The same fan-out through actix-web alone (`httpref --long-poll`: pushes kept in memory, "
          "a pop held on a `tokio::sync::watch`, no storage, limits, presence or rooms), beside ours "
          "and nginx + nchan; CPU time is the server's, from all its polls held to every poller done:")
    print()
    print("| figure | ours | actix-web alone | nginx + nchan | ours / actix-web alone | actix-web alone / nchan | all delivered once, in order |")
    print("|---|---|---|---|---|---|---|")
    for figure, name, unit in (
        ("fan-out p50 (from publish send)", "send_to_arrival_p50", "ms"),
        ("fan-out p99 (from publish send)", "send_to_arrival_p99", "ms"),
        ("server user CPU per delivery", "server_user_cpu_per_delivery", "µs"),
        ("server system CPU per delivery", "server_system_cpu_per_delivery", "µs"),
    ):
        ours, alone, nchan = (metric(report, name) for report in reports)
        ratio = lambda a, b: f"{a / b:.2f}" if a is not None and b and b >= 0.05 else "n/a"
        cells = " | ".join(
            fmt(value, unit) if unit != "µs" or value is None else f"{value:.1f} µs"
            for value in (ours, alone, nchan)
        )
        print(f"| {figure} | {cells} | {ratio(ours, alone)} | {ratio(alone, nchan)} | {verdict(*reports)} |")


def push_section(folder):
    """Durable pushes against the HTTP stack alone (`httpref`, answering at once), round by
    round: bench/run.sh runs ours and httpref back to back in PUSH_ROUNDS rounds, in turns of
    order (round 1's files have no suffix, round k's end in `-k`), because the rate moves with
    the machine more than with either server. The last row is the ratio of the sums."""
    rounds = []
    number = 1
    while True:
        suffix = "" if number == 1 else f"-{number}"
        ours, alone = load(folder, f"ours-push{suffix}"), load(folder, f"httpref-push{suffix}")
        if ours is None and alone is None:
            break
        # A round counts only with both rates: a missing one would skew the sums.
        if metric(ours, "push_throughput") is not None and metric(alone, "push_throughput") is not None:
            rounds.append((number, ours, alone))
        number += 1
    if len(rounds) < 2:
        return
    print()
    print(f"Durable pushes (64 pushers; ours: every push fsync'd before its answer) against the "
          f"HTTP stack alone, run back to back in {number - 1} rounds (odd rounds ours first, even "
          f"rounds the HTTP stack first):")
    print()
    print("| round | ours, pushes/s | HTTP stack alone, pushes/s | ours / alone | ours, p99 | alone, p99 | every acknowledged push stored once |")
    print("|---|---|---|---|---|---|---|")
    sums = [0.0, 0.0]
    for number, ours, alone in rounds:
        rates = [metric(ours, "push_throughput"), metric(alone, "push_throughput")]
        sums = [total + rate for total, rate in zip(sums, rates)]
        ratio = f"{rates[0] / rates[1]:.2f}" if rates[1] else "n/a"
        print(f"| {number} | {fmt(rates[0], 'msg/s')} | {fmt(rates[1], 'msg/s')} | {ratio} | "
              f"{fmt(metric(ours, 'push_latency_p99'), 'ms')} | {fmt(metric(alone, 'push_latency_p99'), 'ms')} | {verdict(ours)} |")
    ratio = f"{sums[0] / sums[1]:.2f}" if sums[1] else "n/a"
    print(f"| all | {fmt(sums[0], 'msg/s')} | {fmt(sums[1], 'msg/s')} | {ratio} | | | |")


def main():
    folder = pathlib.Path(sys.argv[1])
    rows = [
        # (figure, ours file, ours metric, theirs label, theirs file, theirs metric, unit, lower is better)
        ("memory per held poll", "ours-idle", "server_rss_per_held_poll", "nchan", "nchan-idle", "server_rss_per_held_poll", "bytes", True),
        ("fan-out latency p50 (from publish ack)", "ours-fanout", "fanout_latency_p50", "nchan", "nchan-fanout", "fanout_latency_p50", "ms", True),
        ("fan-out latency p99 (from publish ack)", "ours-fanout", "fanout_latency_p99", "nchan", "nchan-fanout", "fanout_latency_p99", "ms", True),
        ("fan-out latency max (from publish ack)", "ours-fanout", "fanout_latency_max", "nchan", "nchan-fanout", "fanout_latency_max", "ms", True),
        ("fan-out p50 (from publish send)", "ours-fanout", "send_to_arrival_p50", "nchan", "nchan-fanout", "send_to_arrival_p50", "ms", True),
        ("fan-out p99 (from publish send)", "ours-fanout", "send_to_arrival_p99", "nchan", "nchan-fanout", "send_to_arrival_p99", "ms", True),
        ("publish acknowledgement p50", "ours-fanout", "publish_ack_latency_p50", "nchan", "nchan-fanout", "publish_ack_latency_p50", "ms", True),
        ("pushes/s, 64 pushers (ours: fsync'd; round 1, the rounds below)", "ours-push", "push_throughput", "HTTP stack alone", "httpref-push", "push_throughput", "msg/s", False),
        ("push latency p99", "ours-push", "push_latency_p99", "HTTP stack alone", "httpref-push", "push_latency_p99", "ms", True),
        ("catch-up through the history", "ours-catchup", "catchup_time", None, None, None, "s", True),
        ("catch-up throughput", "ours-catchup", "catchup_throughput", None, None, None, "msg/s", False),
    ]
    # A run of the larger sizes alone (PARTS=large) has none of these.
    if any(load(folder, name) for name in ("ours-idle", "ours-fanout", "ours-push")):
        print("| figure | ours | theirs | ours / theirs | all delivered once, in order |")
        print("|---|---|---|---|---|")
        for figure, ours_file, ours_metric, label, theirs_file, theirs_metric, unit, _ in rows:
            ours_report = load(folder, ours_file)
            ours = metric(ours_report, ours_metric)
            theirs_report = load(folder, theirs_file) if theirs_file else None
            theirs = metric(theirs_report, theirs_metric) if theirs_file else None
            # A denominator under 0.05 (a latency that rounds to 0 ms) makes a meaningless ratio.
            ratio = f"{ours / theirs:.2f}" if ours is not None and theirs and theirs >= 0.05 else "n/a"
            theirs_text = f"{fmt(theirs, unit)} ({label})" if label else "n/a"
            print(f"| {figure} | {fmt(ours, unit)} | {theirs_text} | {ratio} | {verdict(ours_report, theirs_report)} |")
        print()
        print("The backends, same run (local: the data folder; Redis: deploy/redis.conf, fsync on every write):")
        print()
        print("| figure | local | Redis, 1 instance | Redis, 2 instances + nginx | Redis 1 / local | Redis 2 / local | all delivered once, in order |")
        print("|---|---|---|---|---|---|---|")
        backend_rows = [
            ("pushes/s, 64 pushers", "push", "push_throughput", "msg/s"),
            ("fan-out p50 (from publish send)", "fanout", "send_to_arrival_p50", "ms"),
            ("fan-out p99 (from publish send)", "fanout", "send_to_arrival_p99", "ms"),
            ("fan-out p99 (from publish ack)", "fanout", "fanout_latency_p99", "ms"),
        ]
        for figure, scenario, name, unit in backend_rows:
            reports = [load(folder, f"{who}-{scenario}") for who in ("ours", "redis1", "redis2")]
            values = [metric(report, name) for report in reports]
            local = values[0]
            ratios = [f"{value / local:.2f}" if value is not None and local else "n/a" for value in values[1:]]
            cells = " | ".join(fmt(value, unit) for value in values)
            print(f"| {figure} | {cells} | {ratios[0]} | {ratios[1]} | {verdict(*reports)} |")
        for label, name in (("one held pop, local folder", "ours-wake"), ("one held pop on another instance (Redis)", "redis-wake-across")):
            report = load(folder, name)
            p50, p99 = metric(report, "fanout_latency_p50"), metric(report, "fanout_latency_p99")
            print(f"| wake-up of {label}, from the push's acknowledgement: p50 / p99 | {fmt(p50, 'ms')} / {fmt(p99, 'ms')} | | | | | {verdict(report)} |")
    push_section(folder)
    stack_section(folder)
    wake_and_large_sections(folder)
    flood_section(folder)
    params = load(folder, "ours-fanout")
    if params:
        print()
        print(f"Fan-out: {json.dumps(params['params'])}; idle, push and catch-up parameters are in the JSON files.")


main()
