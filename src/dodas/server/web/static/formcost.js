// dodas dashboard: the deploy form's "What it would hold" follows its values.
// The server draws the figure again (services/costs.py, the same rule as the
// plan's); without this script the figure is the one drawn with the page.
"use strict";

function setUpFormCost(box) {
  const form = box.closest("form");
  if (!form) return;
  let timer = null;
  let asked = 0;
  const redraw = () => {
    const body = new FormData(form);
    form.querySelectorAll("input[type=password]").forEach((p) => body.delete(p.name));  // secrets hold no size
    const mine = ++asked;
    fetch(box.dataset.cost, { method: "POST", body, credentials: "same-origin", cache: "no-store" })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => { if (mine === asked) box.innerHTML = html; })  // only the answer to the latest values
      .catch(() => {});
  };
  const later = (ev) => {
    if (ev.target.type === "password" || ev.target.name === "name") return;
    clearTimeout(timer);
    timer = setTimeout(redraw, 300);
  };
  form.addEventListener("input", later);
  form.addEventListener("change", later);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-cost]").forEach(setUpFormCost);
});
