"""The page around a report: escaping, status marks, tables, and the inline style and script.

Everything the page needs is in the file: no stylesheet, script, font or image is fetched, so it
opens from a file share or an e-mail attachment, offline.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from typing import Any

STATUS_MARK = {"passed": "✓", "skipped": "–", "failed": "✗", "error": "‼", "not judged": "·",
               "caught": "✓", "MISSED": "✗"}
"""A symbol beside every status, so that none is told by colour alone."""


def esc(value: Any) -> str:
    """Return `value` as text escaped for HTML (bytes decoded)."""
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return html.escape(str(value), quote=True)


def status(value: str) -> str:
    """Return a status as a badge: symbol and word, coloured by a class."""
    word = str(value)
    kind = word.split()[0].lower() if word else "none"
    return f'<span class="st st-{esc(kind)}">{STATUS_MARK.get(word, "")} {esc(word)}</span>'


def cell(value: Any) -> str:
    """Return a table cell's text: floats to 4 significant digits, lists joined."""
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, float):
        return esc(f"{value:.4g}")
    if isinstance(value, (list, tuple)):
        return esc(", ".join(str(v) for v in value))
    return esc(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, caption: str = "", raw: bool = False) -> str:
    """Return an HTML table in a box that scrolls sideways rather than widening the page.
    Cells are escaped unless `raw` (they are HTML already)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c if raw else cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f'<div class="scroll"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def figure(uri: str, alt: str) -> str:
    """Return an inline figure (a data URI) with its text alternative."""
    return f'<figure><img src="{uri}" alt="{esc(alt)}"><figcaption>{esc(alt)}</figcaption></figure>'


def json_script(element_id: str, data: Any) -> str:
    """Return `data` as a JSON script block the page's script reads (never closes the tag early)."""
    text = json.dumps(data, allow_nan=False, separators=(",", ":")).replace("</", "<\\/")
    return f'<script type="application/json" id="{esc(element_id)}">{text}</script>'


STYLE = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;padding:0 1rem 3rem;
 max-width:1200px;color:#1b1b1b;background:#fff}
h1{font-size:1.5rem;margin:1rem 0 .3rem}h2{font-size:1.2rem;margin:1.6rem 0 .4rem;border-bottom:1px solid #ccc}
h3{font-size:1rem;margin:1rem 0 .3rem}
nav{font-size:.9rem;margin:.4rem 0}nav a{margin-right:.8rem;white-space:nowrap}
pre{white-space:pre-wrap;word-break:break-word;background:#f5f5f5;padding:.5rem;border-radius:4px;
 font-size:.85rem;max-height:24rem;overflow:auto}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:.4rem 0;font-size:.85rem}
th,td{border:1px solid #ccc;padding:.2rem .45rem;text-align:left;vertical-align:top}
th{background:#eee}caption{text-align:left;font-weight:600;padding:.2rem 0}
td{overflow-wrap:anywhere;max-width:40rem}
figure{margin:.6rem 0}figure img{max-width:100%;height:auto;border:1px solid #ddd}
select{max-width:100%}
figcaption{font-size:.8rem;color:#555}
.verdict{border:3px solid;padding:.6rem .9rem;border-radius:6px;margin:.6rem 0}
.verdict .big{font-size:1.6rem;font-weight:700}
.v-passed{border-color:#1a7f37;background:#eef8f0}.v-failed{border-color:#c62828;background:#fdeeee}
.v-incomplete{border-color:#b26a00;background:#fff6e5}
.st{font-weight:600;white-space:nowrap}
.st-passed,.st-caught{color:#1a7f37}.st-failed,.st-error,.st-missed,.st-wrong{color:#c62828}
.st-skipped,.st-not,.st-none{color:#666}
.rack{display:flex;flex-wrap:wrap;gap:.5rem;margin:.4rem 0}
.host{border:1px solid #999;border-radius:4px;padding:.25rem;min-width:0;max-width:100%}
.host h4{margin:0 0 .2rem;font-size:.75rem;font-weight:600;overflow-wrap:anywhere}
.cells{display:flex;flex-wrap:wrap;gap:2px}
.cell{width:3.3rem;min-height:2.3rem;border:1px solid #777;border-radius:3px;font-size:.72rem;
 text-align:center;padding:1px;line-height:1.15;background:#e8f5e9;overflow:hidden}
.cell .v{display:block;font-size:.65rem}
.state-failed{background:#ef9a9a;border:2px solid #b71c1c}.state-lost{background:#9e9e9e;color:#fff;
 border:2px dashed #212121}.state-health{background:#ffe082;border:2px solid #e65100}
.state-slow{background:#bbdefb;border:2px solid #0d47a1}.state-fine{background:#e8f5e9}
.legend span{display:inline-block;margin-right:1rem;white-space:nowrap}
.legend .cell{display:inline-block;width:auto;min-height:0;padding:0 .3rem}
.note{color:#555;font-size:.85rem}.regressed{color:#c62828;font-weight:600}
@media (max-width:600px){body{padding:0 .4rem 2rem}.cell{width:2.7rem}td{max-width:16rem}}
"""

SCRIPT = """
(function(){
  var data=document.getElementById('rack-metrics');
  var pick=document.getElementById('rack-colour');
  if(!data||!pick){return;}
  var metrics=JSON.parse(data.textContent);
  var cells=document.querySelectorAll('.rack .cell');
  var legend=document.getElementById('rack-scale');
  function show(name){
    for(var i=0;i<cells.length;i++){
      var c=cells[i], v=c.querySelector('.v'), rank=c.getAttribute('data-rank');
      c.style.background='';c.style.color='';
      if(v){v.textContent='';}
      if(name==='status'){continue;}
      var m=metrics[name], x=m.values[rank];
      if(x===null||x===undefined){if(v){v.textContent='n/a';}continue;}
      var t=m.max>m.min?(x-m.min)/(m.max-m.min):0;  // all equal (no counter moved): all light
      c.style.background='hsl(210,70%,'+(92-60*t)+'%)';
      c.style.color=t>0.6?'#fff':'#000';
      if(v){v.textContent=x.toPrecision(3);}
    }
    legend.textContent=name==='status'?'':
      (metrics[name].label+': light = '+metrics[name].min.toPrecision(3)+', dark = '+
       metrics[name].max.toPrecision(3)+' '+metrics[name].unit+' (value printed in each cell)');
  }
  pick.addEventListener('change',function(){show(pick.value);});
  show(pick.value);
})();
"""


def document(title: str, body: str) -> str:
    """Return the whole page: `body` inside the shell with the inline style and script."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            # Nothing may be fetched: the page must read the same offline as on the network.
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
            f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>\n{body}\n"
            f"<script>{SCRIPT}</script></body></html>\n")
