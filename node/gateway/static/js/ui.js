// Small helpers shared by the pages: DOM building (never innerHTML with data),
// the gateway's JSON API, formatting.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") node.textContent = String(v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

export function $(id) { return document.getElementById(id); }

export function replace(node, ...children) { node.replaceChildren(...children.flat()); }

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function answer(res) {
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  if (!res.ok) throw new ApiError(res.status, body?.error ?? `HTTP ${res.status}`);
  return body;
}

export async function getJSON(path) {
  return answer(await fetch(path, { headers: { accept: "application/json" } }));
}

/** POST one signed record's bytes; resolves to the gateway's answer, throws ApiError. */
export async function postRecord(bytes) {
  return answer(await fetch("/api/v1/records", {
    method: "POST", body: bytes, headers: { "content-type": "application/octet-stream" },
  }));
}

export function short(id, n = 6) {
  return id && id.length > 2 * n + 1 ? `${id.slice(0, 8)}…${id.slice(-n)}` : id ?? "";
}

export function pct(bps) {
  return bps === null || bps === undefined ? "–" : `${(bps / 100).toFixed(1)}%`;
}

/** Run `fn` now and every `ms` (skipping a beat while a run is in flight). */
export function poll(fn, ms) {
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try { await fn(); } catch (e) { console.warn(e); } finally { busy = false; }
  };
  tick();
  return setInterval(tick, ms);
}
