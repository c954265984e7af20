"""Turns benches/compare.sh's raw lines into the tables of benches/README.md."""
import statistics, sys
from collections import defaultdict

runs = defaultdict(list)   # name -> [(rps, p50, p99, p999, errors)]
by_round = defaultdict(dict)  # round -> name -> rps
order = []
scale, scaleput = [], []
sign = {}  # round -> bare ES256 signatures/s (key parsed once)
reparse = {}  # round -> ES256 signatures/s through jsonwebtoken (key parsed per call)
for line in open(sys.argv[1]):
    f = line.split()
    if not f:
        continue
    if f[0] == "RESULT":
        name = f[2]
        if name not in order:
            order.append(name)
        runs[name].append((float(f[3]), int(f[4]), int(f[5]), int(f[6]), int(f[7])))
        by_round[f[1]][name] = float(f[3])
    elif f[0] == "SIGN" and len(f) == 3:
        sign[f[1]] = float(f[2])
    elif f[0] == "SIGN_REPARSE" and len(f) == 3:
        reparse[f[1]] = float(f[2])
    elif f[0] == "SCALE":
        scale.append(f[1:])
    elif f[0] == "SCALEPUT":
        scaleput.append(f[1:])

def med(xs):
    return statistics.median(xs)

base = runs.get("keygate-public")
base_rps = med([r[0] for r in base]) if base else None
base_p99 = med([r[2] for r in base]) if base else None
# "× public route" pairs each run with the public route of the same round
# (rounds are interleaved, so machine drift cancels): median, min–max.
def paired(name):
    rs = [r[name] / r["keygate-public"] for r in by_round.values() if name in r and "keygate-public" in r]
    return f"{med(rs):.2f} ({min(rs):.2f}–{max(rs):.2f})" if rs else "—"

def ratio(a, b):
    """a / b paired per round: (median, min, max), or None."""
    rs = [r[a] / r[b] for r in by_round.values() if a in r and b in r]
    return (med(rs), min(rs), max(rs)) if rs else None

def goal(text, got, target, fmt="{:.2f}×"):
    if got is None:
        print(f"| {text} | not measured | {target} | — |")
        return
    m, lo, hi = got
    met = "met" if m >= float(target.lstrip("≥ ").rstrip("×")) else "**not met**"
    print(f"| {text} | **{fmt.format(m)}** ({fmt.format(lo)}–{fmt.format(hi)}) | {target} | {met} |")

print("| headline (paired per round: median, min–max) | measured | target | |")
print("|---|---|---|---|")
goal("API key ÷ HAProxy's API-key check", ratio("keygate-api-key", "haproxy-api-key"), "≥ 1.00×")
goal("API key ÷ nginx plain proxy", ratio("keygate-api-key", "nginx-proxy"), "≥ 0.90×")
goal("cached JWT ÷ API key", ratio("keygate-jwt", "keygate-api-key"), "≥ 0.95×")
goal("`forward_auth = \"jwt\"` ÷ API key", ratio("keygate-forward-jwt", "keygate-api-key"), "≥ 0.95×")
shares = [by_round[r]["keygate-token-es256"] / s for r, s in sign.items()
          if s > 0 and "keygate-token-es256" in by_round.get(r, {})]
goal("token endpoint (ES256) ÷ bare ES256 signing (key parsed once)",
     (med(shares), min(shares), max(shares)) if shares else None, "≥ 0.60×")
# What the token endpoint could reach at best on this core: one bare
# signature and the cheapest answer one after the other, per round. With
# keygate's own 404 it tells how much of the host's ceiling keygate's token
# work leaves; with nginx's 404 (no upstream), what any HTTP server here
# could reach at best. Each ceiling is also given against bare signing: when
# the one with nginx's 404 is below the 0.60× goal, no token endpoint that
# answers as cheaply as nginx could meet it here. For reference, not goals.
def ceilings(floor):
    rounds = [(by_round[r]["keygate-token-es256"], s, by_round[r][floor])
              for r, s in sign.items()
              if s > 0 and "keygate-token-es256" in by_round.get(r, {})
              and by_round[r].get(floor, 0) > 0]
    share = [t * (1 / s + 1 / f) for t, s, f in rounds]
    reach = [f / (s + f) for t, s, f in rounds]
    return share, reach

for floor, who in (("keygate-floor-404", "keygate's 404"), ("nginx-floor-404", "nginx's 404")):
    share, reach = ceilings(floor)
    if share:
        print(f"| token endpoint (ES256) ÷ its ceiling here (bare signing + {who}, in series) "
              f"| {med(share):.2f}× ({min(share):.2f}×–{max(share):.2f}×) | reference | — |")
        print(f"| that ceiling ÷ bare ES256 signing (the most any token endpoint answering like {who} could reach) "
              f"| {med(reach):.2f}× ({min(reach):.2f}×–{max(reach):.2f}×) | reference | — |")
# The measure the goal was first stated against: signing through
# jsonwebtoken, which re-parses the key per call. For reference, not a goal.
old = [by_round[r]["keygate-token-es256"] / s for r, s in reparse.items()
       if s > 0 and "keygate-token-es256" in by_round.get(r, {})]
if old:
    print(f"| token endpoint (ES256) ÷ ES256 signing through jsonwebtoken (key parsed per call) "
          f"| {med(old):.2f}× ({min(old):.2f}×–{max(old):.2f}×) | reference | — |")
if "keygate-api-key" in runs and "nginx-proxy" in runs:
    kp99 = med([r[2] for r in runs["keygate-api-key"]])
    np99 = med([r[2] for r in runs["nginx-proxy"]])
    verdict = "met" if kp99 <= np99 else "**not met**"
    print(f"| API-key p99 against nginx's | {kp99} µs vs {np99} µs | ≤ nginx | {verdict} |")
for keys, seed_s, cold_s, rss in scale:
    if int(keys) == 1_000_000:
        # Measured on the first start after seeding, the file fresh in the page cache.
        time_ok, rss_ok = float(cold_s) <= 3, float(rss) <= 200
        verdict = "met" if time_ok and rss_ok else \
            f"time {'met' if time_ok else '**not met**'}, RSS {'met' if rss_ok else '**not met**'}"
        print(f"| 1M keys: cold start to ready, RSS | {float(cold_s):.2f} s, {float(rss):.0f} MiB | ≤ 3 s, ≤ 200 MiB | {verdict} |")
if sign:
    print(f"\nBare ES256 signing on keygate's core: {med(list(sign.values())):,.0f} signatures/s "
          "(key parsed once; median over rounds).")
if reparse:
    print(f"Through `jsonwebtoken::crypto::sign`, which parses the key on every call: "
          f"{med(list(reparse.values())):,.0f} signatures/s.")
print()

print("| run | requests/s (median, min–max) | p50 | p99 | p99.9 | × public route (paired per round) | p99 added | errors |")
print("|---|---|---|---|---|---|---|---|")
for name in order:
    rs = runs[name]
    rps = [r[0] for r in rs]
    p50, p99, p999 = med([r[1] for r in rs]), med([r[2] for r in rs]), med([r[3] for r in rs])
    errors = sum(r[4] for r in rs)
    answers_alone = name.startswith(("keygate-token", "keygate-floor", "nginx-floor"))
    ratio = paired(name) if base_rps and not answers_alone and name != "upstream-direct" else "—"
    added = f"{p99 - base_p99:+.0f} µs" if base_p99 is not None and name.startswith("keygate") and not answers_alone else "—"
    print(f"| {name} | {med(rps):,.0f} ({min(rps):,.0f}–{max(rps):,.0f}) | {p50} µs | {p99} µs | {p999} µs | {ratio} | {added} | {errors} |")
if scale:
    print()
    print("| keys in store | seed time | cold start to ready | RSS when ready |")
    print("|---|---|---|---|")
    for keys, seed_s, cold_s, rss in scale:
        print(f"| {int(keys):,} | {float(seed_s):.1f} s | {float(cold_s):.2f} s | {float(rss):.0f} MiB |")
if scaleput:
    print()
    print("| keys in cache | API-key requests/s | p99 |")
    print("|---|---|---|")
    for keys, rps, p99 in scaleput:
        print(f"| {int(keys):,} | {float(rps):,.0f} | {p99} µs |")
