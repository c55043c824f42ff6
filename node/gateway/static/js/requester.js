// The requester's page (read-only): each task's progress, label distribution,
// agreement per item and top annotators, refreshed every 2 s.
import { $, el, getJSON, pct, poll, replace, short } from "./ui.js";

const ITEMS_SHOWN = 500; // the first page of items; the JSON route pages the rest
let selected = new URLSearchParams(location.search).get("task");

async function refreshList() {
  const { tasks } = await getJSON("/api/v1/tasks?limit=500");
  replace($("tasks").tBodies[0], tasks.map((t) => el("tr", {
    class: t.task === selected ? "selected" : "", "data-task": t.task,
    onclick: () => { selected = t.task; refreshDetail(); } },
    el("td", { class: "mono", text: short(t.task) }), el("td", { text: t.title }),
    el("td", { text: t.items }), el("td", { class: "final", text: t.items_final }),
    el("td", { text: `${t.redundancy} labels each` }))));
  if (!selected && tasks.length) selected = tasks[0].task;
}

function bar(p) {
  const seg = (n, cls) => el("span", { class: `seg ${cls}`, "data-n": n, title: `${cls}: ${n}`,
    "data-width": Math.round(100 * n / Math.max(1, p.items)) });
  return [seg(p.final, "final"), seg(p.pending, "pending"), seg(p.short, "short"), seg(p.expired, "expired")];
}

async function refreshDetail() {
  if (!selected) return;
  const [t, page] = await Promise.all([getJSON(`/api/v1/tasks/${selected}`),
    getJSON(`/api/v1/tasks/${selected}/items?limit=${ITEMS_SHOWN}`)]);
  $("detail").hidden = false;
  $("task-title").textContent = `${t.title} — ${short(t.task)}`;
  const p = t.progress;
  replace($("progress"), bar(p));
  for (const s of $("progress").children) s.classList.add(`w${Math.min(100, Number(s.dataset.width))}`);
  $("progress-text").textContent = `${p.final}/${p.items} final · ${p.pending} pending · ${p.short} short of labels · ${p.expired} expired`;
  $("progress-text").dataset.final = p.final;
  const total = Object.values(t.label_counts).reduce((a, b) => a + b, 0);
  replace($("distribution"), t.labels.map((l) => el("div", { class: "dist" },
    el("span", { class: "dist-label", text: l }),
    el("meter", { min: 0, max: Math.max(1, total), value: t.label_counts[l] ?? 0 }),
    el("span", { class: "mono", text: ` ${t.label_counts[l] ?? 0}` }))));
  replace($("top").tBodies[0], t.top_annotators.map((a) => el("tr", {},
    el("td", { class: "mono", text: short(a.author) }), el("td", { text: a.labels }),
    el("td", { text: a.agreed }))));
  replace($("items").tBodies[0], page.items.map((i) => el("tr", { class: i.status },
    el("td", { class: "mono" }, el("a", { href: `/ipfs/${i.item}`, text: short(i.item) })),
    el("td", { text: i.content_type ?? "–" }),
    el("td", { text: `${i.annotations}/${t.redundancy}` }),
    el("td", { text: Object.entries(i.labels).map(([k, v]) => `${k} ${v}`).join(", ") || "–" }),
    el("td", { text: i.final ?? "–" }), el("td", { text: pct(i.agreement_bps) }),
    el("td", { text: i.status }))));
}

poll(async () => { await refreshList(); await refreshDetail(); }, 2000);
