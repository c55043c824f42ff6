// The annotator's page: a key of one's own, a work queue, labels signed here.
import { fromHex } from "./bytes.js";
import { annotationBody, signRecord } from "./records.js";
import { $, ApiError, el, getJSON, pct, postRecord, replace, short } from "./ui.js";
import * as wallet from "./wallet.js";

const state = { key: null, networkId: null, task: null, current: null, skipped: [], busy: false };
window.__annot = { firstItemMs: null, labelled: 0 };

function say(text, kind = "") {
  const s = $("status");
  s.textContent = text;
  s.className = kind;
}

function showKey() {
  const k = state.key;
  $("peer-id").textContent = k ? k.peerId : "no key yet";
  $("export-key").disabled = !k;
  $("key-note").textContent = k
    ? `Signing with ${k.backend === "webcrypto" ? "WebCrypto Ed25519" : "@noble/ed25519"}; the key stays in this browser.`
    : "Your Ed25519 key is made and kept in this browser; it never leaves it.";
}

async function loadTasks(tasks) {
  const sel = $("task");
  replace(sel, el("option", { value: "", text: tasks.length ? "pick a task…" : "no tasks yet" }),
    tasks.map((t) => el("option", { value: t.task, text: `${t.title} (${t.items_final}/${t.items} final)` })));
  const wanted = new URLSearchParams(location.search).get("task");
  if (wanted && tasks.some((t) => t.task === wanted)) { sel.value = wanted; await pickTask(wanted); }
}

async function pickTask(tid) {
  state.task = null; state.current = null; state.skipped = [];
  replace($("labels")); replace($("instructions"));
  if (!tid) return;
  $("task").blur(); // keys 1-9 label from here on, instead of changing the task
  const upNext = state.key ? fetchNext(tid) : null; // in parallel with the task
  const t = await getJSON(`/api/v1/tasks/${tid}`);
  state.task = t;
  $("task-info").textContent = `${t.item_count} items, ${t.redundancy} labels each, rule ${t.rule}, reward ${t.reward_per_item} per item`;
  if (t.instructions) {
    const res = await fetch(`/ipfs/${t.instructions}`);
    const type = res.headers.get("content-type") ?? "";
    replace($("instructions"), type.startsWith("text/")
      ? el("pre", { text: await res.text() })
      : el("a", { href: `/ipfs/${t.instructions}`, text: "instructions (download)" }));
  }
  replace($("labels"), t.labels.map((label, i) => el("button", {
    type: "button", class: "label", "data-label": label, disabled: true,
    onclick: () => submitLabel(label),
  }, el("kbd", { text: i < 9 ? String(i + 1) : "" }), ` ${label}`)));
  await nextItem(upNext);
}

function render(item, type) {
  const src = `/ipfs/${item}`;
  const t = type ?? "";
  if (t === "image/x-portable-anymap") return el("img", { src: `${src}?preview=png`, alt: item, class: "pixelated" });
  if (t.startsWith("image/")) return el("img", { src, alt: item });
  if (t.startsWith("audio/")) return el("audio", { src, controls: true });
  if (t.startsWith("video/")) return el("video", { src, controls: true });
  if (t.startsWith("text/")) {
    const pre = el("pre", { class: "text-item", text: "loading…" });
    fetch(src).then((r) => r.text()).then((x) => { pre.textContent = x; });
    return pre;
  }
  return el("a", { href: src, download: item, text: `download ${short(item)} (${t || "unknown type"})` });
}

function fetchNext(tid) {
  const q = new URLSearchParams({ author: state.key.peerId });
  if (state.skipped.length) q.set("skip", state.skipped.slice(-64).join(","));
  return getJSON(`/api/v1/tasks/${tid}/next?${q}`);
}

async function nextItem(pending = null) {
  if (!state.task || !state.key) return;
  const next = await (pending ?? fetchNext(state.task.task));
  state.current = next.item;
  const buttons = document.querySelectorAll("#labels button");
  buttons.forEach((b) => { b.disabled = !next.item; });
  $("skip").disabled = !next.item;
  if (!next.item) {
    replace($("item"), el("p", { class: "done", text: "Nothing left for this key in this task. Thank you!" }));
    return;
  }
  const view = render(next.item, next.content_type);
  replace($("item"), view, el("p", { class: "muted mono", text: `${short(next.item)} · ${next.annotations}/${next.redundancy} labels · ${next.remaining} open for you` }));
  const shown = () => {
    if (window.__annot.firstItemMs === null) window.__annot.firstItemMs = performance.now();
    $("item").dataset.item = next.item;
  };
  if (view.tagName === "IMG") view.addEventListener("load", shown, { once: true });
  else shown();
}

async function submitLabel(label) {
  if (!state.current || state.busy || !state.key) return;
  state.busy = true;
  const item = state.current;
  const seq = wallet.takeSeq(state.key.peerId);
  try {
    const body = annotationBody(state.task.task, item, label);
    const rec = await signRecord(state.networkId, state.key, seq, "annotation", body);
    const got = await postRecord(rec.data);
    window.__annot.labelled += 1;
    say(`recorded “${label}” for ${short(item)} — ${got.annotations}/${got.redundancy} labels (seq ${got.seq})`, "ok");
    await nextItem();
  } catch (e) {
    if (e instanceof ApiError) wallet.returnSeq(state.key.peerId, seq);
    say(`refused: ${e.message}`, "error");
  } finally {
    state.busy = false;
  }
}

async function skip() {
  if (!state.current) return;
  state.skipped.push(state.current);
  say(`skipped ${short(state.current)}`);
  await nextItem();
}

async function refreshMyWork() {
  if (!state.key) return;
  const a = await getJSON(`/api/v1/accounts/${state.key.peerId}`);
  wallet.raiseSeq(state.key.peerId, a.highest_seq); // never below what the network holds
  $("mw-labels").textContent = a.labels_given;
  $("mw-final").textContent = a.items_final;
  $("mw-agreement").textContent = a.items_final ? pct(Math.floor(a.agreed * 10000 / a.items_final)) : "–";
  $("mw-reputation").textContent = pct(a.reputation);
  $("mw-balance").textContent = a.balance;
  $("mw-seq").textContent = `${wallet.lastSeq(state.key.peerId)} here, ${a.highest_seq} on the network`;
}

async function useKey(key) {
  state.key = key;
  showKey();
  await refreshMyWork();
  if (state.task) await nextItem();
}

function wire() {
  $("create-key").addEventListener("click", async () => {
    if (state.key && !confirm("Replace the key in this browser? Export it first to keep it.")) return;
    await useKey(await wallet.newKey());
    say("new key created; export it to keep a copy");
  });
  $("import-key").addEventListener("change", async (ev) => {
    const file = ev.target.files[0];
    if (!file) return;
    try {
      const bytes = new Uint8Array(await file.arrayBuffer());
      const key = await wallet.importKey(bytes, 0);
      await useKey(key);
      say(`imported ${short(key.peerId)}; continuing after seq ${wallet.lastSeq(key.peerId)}`, "ok");
    } catch (e) {
      say(`cannot import ${file.name}: ${e.message}`, "error");
    }
    ev.target.value = "";
  });
  $("export-key").addEventListener("click", () => {
    const a = el("a", { href: URL.createObjectURL(wallet.keyFile(state.key)), download: `annot-${state.key.peerId.slice(-8)}.key` });
    document.body.append(a);
    a.click();
    a.remove();
    say("key file saved: chmod 600 it, then `annot --key FILE label …` signs with it");
  });
  $("task").addEventListener("change", (ev) => pickTask(ev.target.value).catch((e) => say(e.message, "error")));
  $("skip").addEventListener("click", skip);
  document.addEventListener("keydown", (ev) => {
    if (ev.target instanceof HTMLInputElement || ev.target instanceof HTMLSelectElement || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key >= "1" && ev.key <= "9") {
      const label = state.task?.labels[Number(ev.key) - 1];
      if (label !== undefined) { ev.preventDefault(); submitLabel(label); }
    } else if (ev.key === "s") { ev.preventDefault(); skip(); }
  });
}

async function main() {
  wire();
  const [net, key, { tasks }] = await Promise.all([
    getJSON("/api/v1/network"), wallet.savedKey(), getJSON("/api/v1/tasks?limit=500")]);
  state.networkId = fromHex(net.network_id);
  $("network").textContent = `${net.network} · node ${short(net.node_peer_id)}`;
  state.key = key;
  showKey();
  await Promise.all([loadTasks(tasks), key ? refreshMyWork() : null]);
  setInterval(() => refreshMyWork().catch((e) => console.warn(e)), 3000);
}

main().catch((e) => say(`cannot start: ${e.message}`, "error"));
