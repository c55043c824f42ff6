// The operator's page (read-only): the node's health, peers, sync state and ledger.
import { $, el, getJSON, pct, poll, replace, short } from "./ui.js";

async function refresh() {
  const h = await getJSON("/api/v1/health");
  const kinds = Object.entries(h.records_by_kind).map(([k, v]) => `${k} ${v}`).join(", ");
  const rows = [["peer id", h.peer_id], ["version", h.version], ["validator", h.validator ? "yes" : "no"],
    ["peers connected", h.peer_count], ["records held", `${h.record_count} (${kinds || "none"})`],
    ["authors synced", h.authors], ["items final", h.final_items], ["ledger root", short(h.ledger_root, 12)]];
  replace($("health"), rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { class: "mono", text: v })]));
  replace($("peers").tBodies[0], h.peers.map((p) => el("tr", {},
    el("td", { class: "mono", text: p.peer_id }), el("td", { text: p.validator ? "validator" : "peer" }))));
  const l = await getJSON("/api/v1/ledger");
  $("ledger-root").textContent = `root ${l.root} · ${l.tallies} tallies`;
  replace($("ledger").tBodies[0], l.accounts.slice(0, 50).map((a) => el("tr", {},
    el("td", { class: "mono", text: short(a.author) }), el("td", { text: a.balance }),
    el("td", { text: a.agreed }), el("td", { text: a.disagreed }), el("td", { text: pct(a.reputation) }))));
}

poll(refresh, 2000);
