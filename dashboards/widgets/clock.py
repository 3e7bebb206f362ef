"""A large clock of the time since death that ticks in the browser (no server round trip per second)."""

from __future__ import annotations

import json
from datetime import datetime

import streamlit as st

_TEMPLATE = """
<div id="pmi-clock" style="font-family: 'Source Sans Pro', system-ui, sans-serif; padding: 4px 2px;">
  <div style="font-size: 0.95rem; color: #555;">Time since death</div>
  <div id="pmi-value" style="font-size: min(4.4rem, 17vw); white-space: nowrap; font-weight: 700; line-height: 1.05; font-variant-numeric: tabular-nums;">--:--:--</div>
  <div id="pmi-state" style="font-size: 1.05rem; font-weight: 600; margin: 2px 0 8px 0;"></div>
  <div style="position: relative; height: 16px; background: #eee; border-radius: 8px; overflow: hidden;">
    <div id="pmi-bar" style="position: absolute; left: 0; top: 0; bottom: 0; width: 0; background: #2e7d32;"></div>
    <div style="position: absolute; top: 0; bottom: 0; width: 2px; background: #e6a100; left: TARGET_PCT%;"></div>
    <div style="position: absolute; top: 0; bottom: 0; width: 2px; background: #c0392b; left: LIMIT_PCT%;"></div>
  </div>
  <div style="display: flex; justify-content: space-between; font-size: 0.8rem; color: #666; margin-top: 3px;">
    <span>death</span><span style="color:#b07b00">target TARGET_H h</span><span style="color:#c0392b">limit LIMIT_H h</span>
  </div>
</div>
<script>
  const cfg = CONFIG;
  const pad = (n) => String(n).padStart(2, "0");
  function tick() {
    const ms = Date.now() - cfg.death;
    const s = Math.max(0, Math.floor(ms / 1000));
    document.getElementById("pmi-value").textContent = pad(Math.floor(s / 3600)) + ":" + pad(Math.floor(s / 60) % 60) + ":" + pad(s % 60);
    const h = ms / 3600000;
    let colour = "#2e7d32", text = "within target: " + (cfg.target - h).toFixed(1) + " h left";
    if (h > cfg.limit) { colour = "#c0392b"; text = "PAST THE " + cfg.limit + " h LIMIT by " + (h - cfg.limit).toFixed(1) + " h"; }
    else if (h > cfg.target) { colour = "#b07b00"; text = "past the " + cfg.target + " h target: " + (cfg.limit - h).toFixed(1) + " h to the limit"; }
    const state = document.getElementById("pmi-state");
    state.textContent = text; state.style.color = colour;
    document.getElementById("pmi-value").style.color = colour;
    const bar = document.getElementById("pmi-bar");
    bar.style.width = Math.min(100, 100 * h / cfg.scale) + "%"; bar.style.background = colour;
  }
  tick(); setInterval(tick, 1000);
</script>
"""


def pmi_clock(death_at: datetime, *, target_hours: float, limit_hours: float, height: int = 170) -> None:
    scale = limit_hours * 1.25
    html = (
        _TEMPLATE.replace("CONFIG", json.dumps({"death": int(death_at.timestamp() * 1000), "target": target_hours, "limit": limit_hours, "scale": scale}))
        .replace("TARGET_PCT", f"{100 * target_hours / scale:.2f}")
        .replace("LIMIT_PCT", f"{100 * limit_hours / scale:.2f}")
        .replace("TARGET_H", f"{target_hours:g}")
        .replace("LIMIT_H", f"{limit_hours:g}")
    )
    st.iframe(html, height=height)
