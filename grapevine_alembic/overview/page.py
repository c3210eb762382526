"""The report page: one self-contained HTML file (inline CSS and JS, nothing fetched) for a fleet run.

A grid of every database coloured by state or version (a canvas, so 10,000 cells stay light), the
versions and their counts, failures grouped by error, drift groups, the slowest databases and a
histogram of durations.  The page's script marks the body when it has drawn without an exception,
so a headless browser can tell a page that works from one that only loaded.
"""

from __future__ import annotations

import html
import json
from datetime import datetime, timezone

from ..database.state.result import DatabaseResult
from .outcomes import error_key, group, names, outcome

STATES = {"ok": "#2e9d58", "behind": "#e0a526", "drifted": "#e46c1b", "failed": "#d1343a",
          "unreachable": "#7b3fb3", "skipped": "#9aa0a6"}
SLOWEST = 10
BINS = 12


def state(result: DatabaseResult, drifting: set[str]) -> str:
    """The word the grid colours by: the run's outcome, or for a database that was read, how it stands."""
    word = outcome(result)
    if word != "ok":
        return word
    if result.target.database in drifting:
        return "drifted"
    plan, done = result.plan, set(result.applied)  # the plan was made before the run applied anything
    left = [m for m in (*plan.pending, *plan.out_of_order) if m.version not in done] if plan else []
    return "behind" if left else "ok"


def build(command: str, results: list[DatabaseResult], *, heads: dict[str, str | None],
          drift_groups: list[tuple[list[str], tuple[str, ...]]] = ()) -> str:
    """The whole page as text; ``drift_groups`` are (databases, differences) pairs from ``drift``."""
    drifting = {db for dbs, _ in drift_groups for db in dbs}
    versions = sorted({_version(r) for r in results})
    cells = [[r.target.database, r.target.server or "", state(r, drifting), versions.index(_version(r)),
              round(r.seconds, 3)] for r in results]
    data = {"cells": cells, "versions": versions, "states": STATES}
    counts = {word: sum(c[2] == word for c in cells) for word in STATES}
    sections = [
        _header(command, heads, counts, len(results)),
        '<section><h2>The fleet at a glance</h2><div class="bar">colour by '
        '<button id="by-state" class="on">state</button><button id="by-version">version</button>'
        '<span id="hover">hover a cell for its database</span></div><div id="legend"></div>'
        '<canvas id="grid"></canvas></section>',
        _versions(results, versions),
        _failures(results),
        _drift(drift_groups),
        _slowest(results),
        _histogram(results),
    ]
    payload = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")  # no "</script>" inside
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>grapevine {html.escape(command)}"
            f" report</title><style>{_CSS}</style></head><body>{''.join(sections)}"
            f"<script id=\"data\" type=\"application/json\">{payload}</script><script>{_JS}</script></body></html>")


def _version(result: DatabaseResult) -> str:
    return result.after or result.before or ("(none)" if result.ok and result.state is not None else "unknown")


def _e(text) -> str:
    return html.escape(str(text))


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _header(command: str, heads, counts: dict[str, int], total: int) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    chips = "".join(f'<span class="chip" style="border-color:{STATES[w]}"><b>{n}</b> {w}</span>'
                    for w, n in counts.items() if n)
    head_text = ", ".join(f"{env} head {_e(v or '(none)')}" for env, v in heads.items())
    return (f"<header><h1>grapevine-migrations {_e(command)}</h1><p>{total} database(s); {head_text};"
            f" written {when}</p><div>{chips}</div></header>")


def _versions(results, versions: list[str]) -> str:
    counts = {v: 0 for v in versions}
    for result in results:
        counts[_version(result)] += 1
    top = max(counts.values(), default=1)
    rows = [[f'<span class="sw" data-version="{i}"></span>{_e(v)}', str(n),
             f'<div class="track"><div class="hbar" style="width:{100 * n / top:.1f}%"></div></div>'] for i, (v, n) in enumerate(counts.items())]
    return f"<section><h2>Versions</h2>{_table(['version', 'databases', ''], rows)}</section>"


def _failures(results) -> str:
    failing = [r for r in results if outcome(r) != "ok"]
    if not failing:
        return "<section><h2>Failures</h2><p>None.</p></section>"
    items = []
    for g in group(failing, lambda r: f"{outcome(r)}: {error_key(r)}"):
        everyone = ", ".join(g.databases)
        items.append(f"<li><b>{len(g.results)}</b> {_e(names(g.databases))}<pre>{_e(g.text())}</pre>"
                     f"<details><summary>all {len(g.results)}</summary>{_e(everyone)}</details></li>")
    return f"<section><h2>Failures, grouped by error</h2><ul>{''.join(items)}</ul></section>"


def _drift(drift_groups) -> str:
    if not drift_groups:
        return ""
    items = "".join(f"<li><b>{len(dbs)}</b> {_e(names(list(dbs)))}<pre>{_e(chr(10).join(diffs))}</pre></li>"
                    for dbs, diffs in drift_groups)
    return f"<section><h2>Drift, grouped by difference</h2><ul>{items}</ul></section>"


def _slowest(results) -> str:
    ranked = sorted(results, key=lambda r: -r.seconds)[:SLOWEST]
    rows = [[_e(r.target.database), _e(r.target.server or ""), f"{r.seconds:.3f}", _e(outcome(r))] for r in ranked]
    return f"<section><h2>Slowest</h2>{_table(['database', 'server', 'seconds', 'outcome'], rows)}</section>"


def _histogram(results) -> str:
    seconds = [r.seconds for r in results]
    if not seconds:
        return ""
    low, high = min(seconds), max(seconds)
    width = (high - low) / BINS or 1.0
    bins = [0] * BINS
    for value in seconds:
        bins[min(int((value - low) / width), BINS - 1)] += 1
    top = max(bins)
    bars = "".join(f'<div class="col" title="{low + i * width:.3f}-{low + (i + 1) * width:.3f} s: {n}">'
                   f'<div style="height:{100 * n / top:.1f}%"></div><span>{n}</span></div>' for i, n in enumerate(bins))
    return (f"<section><h2>Duration per database</h2><div class=\"hist\">{bars}</div>"
            f"<p class=\"axis\">{low:.3f} s … {high:.3f} s, {BINS} bins</p></section>")


_CSS = """
body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.chip{display:inline-block;border-left:6px solid;padding:2px 8px;margin:0 6px 4px 0;background:#f3f3f3}
.bar button{margin-left:4px;border:1px solid #888;background:#fff;padding:2px 8px;cursor:pointer}
.bar button.on{background:#333;color:#fff}#hover{margin-left:16px;color:#555;font-family:monospace}
#legend span{display:inline-block;margin:6px 12px 6px 0}#legend i,.sw{display:inline-block;width:11px;height:11px;
margin-right:4px;vertical-align:-1px}canvas{display:block;margin-top:6px;image-rendering:pixelated}
table{border-collapse:collapse}td,th{padding:3px 10px;text-align:left;border-bottom:1px solid #e5e5e5}
.track{width:240px}.hbar{height:10px;background:#6b8fd6;min-width:1px}pre{white-space:pre-wrap;background:#f7f7f7;padding:6px}
.hist{display:flex;align-items:flex-end;height:140px;gap:3px}.col{flex:1;height:100%;display:flex;
flex-direction:column;justify-content:flex-end;text-align:center;font-size:11px}.col div{background:#6b8fd6}
.axis{color:#555}
"""

_JS = """
(function(){
var d=JSON.parse(document.getElementById('data').textContent),cells=d.cells,n=cells.length;
var canvas=document.getElementById('grid'),ctx=canvas.getContext('2d'),mode='state';
var width=Math.min(1050,document.body.clientWidth||1050);
var cols=Math.max(1,Math.ceil(Math.sqrt(n*2.2))),size=Math.max(3,Math.min(26,Math.floor(width/cols)));
cols=Math.max(1,Math.min(n,Math.floor(width/size)));var rows=Math.ceil(n/cols),gap=size>5?1:0;
canvas.width=cols*size;canvas.height=Math.max(1,rows*size);
function versionColour(i){return 'hsl('+((i*137.5)%360)+',62%,'+(42+(i%3)*10)+'%)';}
function colour(c){return mode==='state'?d.states[c[2]]:versionColour(c[3]);}
function draw(){ctx.clearRect(0,0,canvas.width,canvas.height);
 for(var i=0;i<n;i++){ctx.fillStyle=colour(cells[i]);ctx.fillRect((i%cols)*size,Math.floor(i/cols)*size,size-gap,size-gap);}
 var legend=document.getElementById('legend'),parts=[];
 if(mode==='state'){var seen={};cells.forEach(function(c){seen[c[2]]=(seen[c[2]]||0)+1;});
  Object.keys(d.states).forEach(function(s){if(seen[s])parts.push([d.states[s],s+' ('+seen[s]+')']);});}
 else{d.versions.forEach(function(v,i){parts.push([versionColour(i),v]);});}
 legend.innerHTML='';parts.forEach(function(p){var s=document.createElement('span'),i=document.createElement('i');
  i.style.background=p[0];s.appendChild(i);s.appendChild(document.createTextNode(p[1]));legend.appendChild(s);});}
document.querySelectorAll('.sw').forEach(function(s){s.style.background=versionColour(+s.dataset.version);});
function pick(m){mode=m;document.getElementById('by-state').className=m==='state'?'on':'';
 document.getElementById('by-version').className=m==='version'?'on':'';draw();}
document.getElementById('by-state').onclick=function(){pick('state');};
document.getElementById('by-version').onclick=function(){pick('version');};
canvas.onmousemove=function(e){var r=canvas.getBoundingClientRect(),x=Math.floor((e.clientX-r.left)/size),
 y=Math.floor((e.clientY-r.top)/size),i=y*cols+x,c=cells[i];document.getElementById('hover').textContent=
 c&&x<cols?c[0]+(c[1]?' @ '+c[1]:'')+': '+c[2]+', '+d.versions[c[3]]+', '+c[4]+' s':'';};
draw();var ok=document.createElement('p');ok.id='rendered-ok';
ok.setAttribute('data-ms',Math.round(performance.now()));document.body.appendChild(ok);  // loaded and drawn, ms
})();
"""
