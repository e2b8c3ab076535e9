// dodas dashboard: the list of deployments follows changes without a reload, and the
// catalogue filters as one types. Both pages work without it (a reload; the filter's
// form sends its query parameters): the server draws the rows and the cards either way.
"use strict";

(() => {
  const POLL_MS = 2000;

  function fetchPart(url) {
    return fetch(url, { credentials: "same-origin", cache: "no-store" })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => { const t = document.createElement("template"); t.innerHTML = html; return t.content; });
  }

  // a row the server draws again the same (its data-sig) is kept, so that the
  // focus stays where it is; changed rows are replaced (the focus put back on the
  // same action), new ones added in the server's order, gone ones removed
  function mergeRows(box, fresh) {
    const table = box.querySelector("#list");
    const next = fresh.querySelector("#list");
    if (!next && !fresh.querySelector("#no-list")) return;  // not the list (a login page, after the session ended)
    if (!table || !next) { box.replaceChildren(fresh); return; }
    table.querySelector("caption").textContent = next.querySelector("caption").textContent;
    const body = table.tBodies[0];
    const focused = document.activeElement;
    const rows = Array.from(next.tBodies[0].rows);
    const names = new Set(rows.map((r) => r.dataset.name));
    Array.from(body.rows).forEach((r) => { if (!names.has(r.dataset.name)) r.remove(); });  // first: gone ones
    rows.forEach((row, i) => {
      const old = body.querySelector(`tr[data-name="${CSS.escape(row.dataset.name)}"]`);
      let use = row;
      if (old && old.dataset.sig === row.dataset.sig) use = old;
      else if (old && old.contains(focused)) {  // the same action, if the new row still has it; else its name's link
        const label = focused.getAttribute("aria-label");
        const again = Array.from(row.querySelectorAll("a[aria-label]")).find((a) => a.getAttribute("aria-label") === label)
          || row.querySelector("a");
        queueMicrotask(() => again && again.focus());
      }
      if (old && old !== use) old.remove();
      // moved only when out of place: moving a row (even to where it is) takes the focus from it
      if (body.rows[i] !== use) body.insertBefore(use, body.rows[i] || null);
    });
    const pager = box.querySelector(".pager");
    const nextPager = fresh.querySelector(".pager");
    if (pager && nextPager) pager.replaceWith(nextPager);
    else if (pager) pager.remove();
    else if (nextPager) box.append(nextPager);
  }

  function followList(box) {
    let busy = false;
    setInterval(() => {
      if (busy || document.hidden) return;
      busy = true;
      fetchPart(box.dataset.rows).then((fresh) => mergeRows(box, fresh)).catch(() => {})
        .finally(() => { busy = false; });
    }, POLL_MS);
  }

  function filterCatalogue(form, box) {
    let timer = null;
    let asked = 0;
    const apply = () => {
      const query = new URLSearchParams(new FormData(form)).toString();
      const mine = ++asked;
      history.replaceState(null, "", `${location.pathname}?${query}`);  // a reload or a shared link keeps the filter
      fetchPart(`${box.dataset.cards}&${query}`).then((fresh) => {
        if (mine !== asked) return;  // an older answer arriving late
        document.getElementById("shown").textContent = fresh.querySelector("#shown").textContent;
        document.getElementById("cards").replaceWith(fresh.querySelector("#cards"));
      }).catch(() => {});
    };
    form.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(apply, 200); });
    form.addEventListener("submit", (ev) => { ev.preventDefault(); clearTimeout(timer); apply(); });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const list = document.querySelector("[data-rows]");
    if (list) followList(list);
    const form = document.getElementById("catalogue-filter");
    const cards = document.querySelector("[data-cards]");
    if (form && cards) filterCatalogue(form, cards);
  });
})();
