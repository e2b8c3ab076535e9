// dodas dashboard: the live parts of the pages. Everything here is an addition;
// every page reads and every form works without it.
"use strict";

function checkField(input) {
  const v = input.value.trim();
  const num = Number(v);
  let msg = "";
  if (input.required && v === "") msg = "this is required";
  else if (v !== "" && input.type === "number") {
    if (!Number.isFinite(num)) msg = `"${v}" is not a number`;
    else if (input.step === "1" && !Number.isInteger(num)) msg = `"${v}" is not a whole number`;
    else if (input.min !== "" && num < Number(input.min)) msg = `must be at least ${input.min} (got ${v})`;
    else if (input.max !== "" && num > Number(input.max)) msg = `must be at most ${input.max} (got ${v})`;
    else if (input.dataset.minExclusive !== undefined && num <= Number(input.dataset.minExclusive)) msg = `must be more than ${input.dataset.minExclusive}`;
    else if (input.dataset.maxExclusive !== undefined && num >= Number(input.dataset.maxExclusive)) msg = `must be less than ${input.dataset.maxExclusive}`;
  } else if (v !== "" && input.pattern && !new RegExp(`^(?:${input.pattern})$`).test(input.value)) {
    msg = input.title ? `"${v}" is not ${input.title}` : `"${v}" is not in the expected form`;
  }
  const field = input.closest(".field");
  const out = field && field.querySelector(".field-error");
  if (out) out.textContent = msg ? `${msg[0].toUpperCase()}${msg.slice(1)}.` : "";
  if (field) field.classList.toggle("invalid", !!msg);
  if (msg) input.setAttribute("aria-invalid", "true"); else input.removeAttribute("aria-invalid");
  return !msg;
}

function setUpChecks(form) {
  form.noValidate = true;  // our messages, next to the fields, instead of the browser's bubbles
  const inputs = () => Array.from(form.querySelectorAll("input:not([type=hidden]):not([type=checkbox]), textarea"));
  inputs().forEach((i) => i.addEventListener("change", () => checkField(i)));
  form.addEventListener("submit", (ev) => {
    if (form.dataset.nocheck) return;  // the server checks everything again in any case
    const bad = inputs().filter((i) => !checkField(i));
    if (bad.length) { ev.preventDefault(); bad[0].focus(); }
  });
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

let lastNodes = {};

let lastLabels = {};

function colourGraph(nodes, labels) {
  lastNodes = nodes;
  lastLabels = labels || {};
  document.querySelectorAll("svg.graph .node").forEach((g) => {
    const st = nodes[g.dataset.node] || "pending";
    g.setAttribute("class", `node state-${st}`);
    const t = g.querySelector(".node-state");
    if (t) t.textContent = st;
    const r = g.querySelector(".node-ready");
    if (r) r.textContent = lastLabels[g.dataset.node] ? ` · ${lastLabels[g.dataset.node]}` : "";
  });
}

function describeRequest(w) {
  const li = el("li", `request-${w.status}`);
  li.append(el("strong", "", w.operation), document.createTextNode(`: ${w.status}`));
  if (w.position) li.append(document.createTextNode(` (number ${w.position} in the queue)`));
  if (w.waits_for) li.append(document.createTextNode(` — waits for ${w.waits_for}`));
  if (w.error) li.append(document.createTextNode(" — "), el("span", "error-text", w.error));
  return li;
}

function since(iso) {
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  if (s >= 60) return `${Math.floor(s / 60)} min ${Math.floor(s % 60)} s`;
  return `${Math.floor(s)} s`;
}

function tickElapsed() {
  const t = document.getElementById("elapsed");
  if (t && t.dataset.since) t.textContent = since(t.dataset.since);
  // "created 2 min ago" stays true on a page left open
  document.querySelectorAll("time.ago[datetime]").forEach((a) => { a.textContent = `${since(a.getAttribute("datetime"))} ago`; });
}

function applyProgress(s) {
  const p = s.progress;
  if (!p) return;
  const bar = document.getElementById("progress");
  if (bar) { bar.max = p.total || 1; bar.value = p.ready; }
  const ready = document.getElementById("ready");
  if (ready) ready.textContent = p.ready;
  const total = document.getElementById("total");
  if (total) total.textContent = p.total;
  const doing = document.getElementById("doing");
  if (doing) {
    const shown = document.getElementById("elapsed");
    if (!p.since) doing.replaceChildren();
    else if (!shown || shown.dataset.since !== p.since) {
      const t = el("time", ""); t.id = "elapsed"; t.dataset.since = p.since;
      doing.replaceChildren(document.createTextNode(` · ${p.doing} running for `), t);
      tickElapsed();
    }
  }
  const pending = document.getElementById("pending");
  if (pending) {
    const w = (s.work || [])[0];
    pending.textContent = w ? `${w.operation} ${w.status === "running" ? "running" : "queued"}` : "";
  }
  const gone = s.status === "DELETE_COMPLETE";
  const note = document.getElementById("destroyed-note");
  if (note) note.hidden = !gone;
  const box = document.getElementById("progress-box");
  if (box) box.hidden = gone;
  const page = document.querySelector(".deployment");
  if (page) page.classList.toggle("is-destroyed", gone);
  if (gone) document.querySelectorAll(".graph-box").forEach((g) => g.remove());
}

let lastWork = null;

function refreshParts() {
  // the outputs and the forms follow the status: drawn again by the server
  document.querySelectorAll("[data-part]").forEach((part) => {
    fetch(part.dataset.part, { credentials: "same-origin", cache: "no-store" })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => {
        part.innerHTML = html;
        part.querySelectorAll("form.reveal").forEach(setUpReveal);
        part.querySelectorAll("form.reveal .copy-button").forEach(setUpCopy);
      })
      .catch(() => {});
  });
}

function applyStates(s) {
  const status = document.getElementById("status");
  const work = JSON.stringify([s.blocked, (s.work || []).map((w) => [w.id, w.status])]);
  if ((status && status.textContent !== s.status) || (lastWork !== null && work !== lastWork)) refreshParts();
  lastWork = work;
  applyProgress(s);
  if (status) { status.textContent = s.status; status.className = `status status-${s.status}`; }
  const provider = document.getElementById("provider");
  if (provider && s.provider) provider.textContent = s.provider;
  const reason = document.getElementById("reason");
  if (reason) reason.textContent = s.reason ? ` · ${s.reason}` : "";
  const body = document.querySelector("#instances tbody");
  if (body) {
    const seen = new Set();
    body.querySelectorAll("tr.empty").forEach((r) => { if (s.instances.length) r.remove(); });
    for (const i of s.instances) {
      seen.add(i.id);
      let row = body.querySelector(`tr[data-instance="${CSS.escape(i.id)}"]`);
      if (!row) {
        row = el("tr"); row.dataset.instance = i.id;
        row.append(el("td", "", i.id), el("td", "state"), el("td", "err"));
        body.append(row);
      }
      const cell = row.querySelector(".state");
      cell.replaceChildren(el("span", `state-badge state-${i.state}`, i.state));
      row.querySelector(".err").textContent = i.error || "";
    }
    body.querySelectorAll("tr[data-instance]").forEach((r) => { if (!seen.has(r.dataset.instance)) r.remove(); });
  }
  colourGraph(s.nodes, s.labels);
  const filter = document.getElementById("log-node");
  if (filter) {  // a node the page did not know of (a template changed by an update): offered too
    const known = new Set(Array.from(filter.options).map((o) => o.value));
    Object.keys(s.nodes).sort().forEach((n) => { if (!known.has(n)) filter.append(new Option(n, n)); });
  }
  const box = document.querySelector(".graph-box");
  if (box && box.dataset.shape !== s.shape) {  // made or scaled: the picture itself changed
    box.dataset.shape = s.shape;
    fetch(box.dataset.src, { credentials: "same-origin", cache: "no-store" })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((svg) => { box.innerHTML = svg; colourGraph(lastNodes, lastLabels); })
      .catch(() => {});
  }
  const requests = document.getElementById("requests");
  if (requests && s.requests.length) {
    requests.replaceChildren(...s.requests.map(describeRequest));
  }
  const attempts = document.getElementById("attempts");
  if (attempts && s.attempts.length) {
    attempts.replaceChildren(...s.attempts.map((a) => {
      const li = el("li");
      li.append(el("strong", "", a.provider), document.createTextNode(`: ${a.status}`));
      if (a.error) li.append(document.createTextNode(" — "), el("span", "error-text", a.error));
      return li;
    }));
  }
}

function deploymentName() {
  const page = document.querySelector("[data-name]");
  return page ? page.dataset.name : "";
}

// the log follows: its newest line stays in view, unless the user scrolled up to read
function appendLog(e) {
  const log = document.getElementById("log");
  if (!log) return;
  const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
  const li = el("li");
  li.dataset.node = (e.instance || "").split("[")[0];
  li.append(el("time", "", (e.time || "").slice(11, 19)), document.createTextNode(" "),
            el("span", "inst", e.instance || deploymentName()), document.createTextNode(` ${e.message}`));
  const filter = document.getElementById("log-node");
  if (filter && filter.value && li.dataset.node !== filter.value) li.hidden = true;
  log.append(li);
  log.dataset.after = e.id;
  if (atEnd) log.scrollTop = log.scrollHeight;
}

function follow(box) {
  const log = document.getElementById("log");
  if (log) log.scrollTop = log.scrollHeight;  // opens at the newest line
  setInterval(tickElapsed, 1000);
  tickElapsed();
  const filter = document.getElementById("log-node");
  if (filter && !filter.value && !(log && log.dataset.machine)) {  // every line shown: the stream fills the log from where the page stopped
    const source = new EventSource(`${box.dataset.live}?after=${log ? log.dataset.after : 0}`);
    source.addEventListener("states", (m) => applyStates(JSON.parse(m.data)));
    source.addEventListener("log", (m) => appendLog(JSON.parse(m.data)));
  } else {
    const source = new EventSource(`${box.dataset.live}?after=${Number.MAX_SAFE_INTEGER}`);
    source.addEventListener("states", (m) => applyStates(JSON.parse(m.data)));
  }
  if (filter) {
    filter.addEventListener("change", () => {
      if (!log) return;
      log.querySelectorAll("li").forEach((li) => { li.hidden = !!filter.value && li.dataset.node !== filter.value; });
    });
  }
}

function setUpReveal(form) {
  const dd = form.closest("dd");
  const shown = dd.querySelector(".secret");
  const button = form.querySelector("button");
  let timer = null;
  const mask = () => { shown.textContent = "********"; button.textContent = "Reveal"; form.dataset.open = ""; clearTimeout(timer); };
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (form.dataset.open) { mask(); return; }
    const r = await fetch(form.action, { method: "POST", body: new FormData(form), headers: { Accept: "application/json" },
                                         credentials: "same-origin", cache: "no-store" });
    if (!r.ok) { shown.textContent = `could not reveal it (${r.status})`; return; }
    shown.textContent = (await r.json()).value;
    button.textContent = "Hide";
    form.dataset.open = "1";
    timer = setTimeout(mask, 60000);  // masked again after a minute, or on "Hide"
  });
}

// Copy: the secret goes to the clipboard without being shown on the page
function setUpCopy(button) {
  const form = button.closest("form");
  const said = form.querySelector(".copied");
  button.hidden = false;
  button.addEventListener("click", async () => {
    const r = await fetch(form.action, { method: "POST", body: new FormData(form), headers: { Accept: "application/json" },
                                         credentials: "same-origin", cache: "no-store" });
    if (!r.ok) { said.textContent = `could not copy it (${r.status})`; return; }
    const value = (await r.json()).value;
    let done = false;
    try { await navigator.clipboard.writeText(value); done = true; } catch (e) { done = false; }
    if (!done) {  // no clipboard permission: the older way, through a field that is never shown
      const t = el("textarea"); t.value = value; t.setAttribute("aria-hidden", "true");
      t.style.position = "fixed"; t.style.opacity = "0"; document.body.append(t); t.select();
      done = document.execCommand("copy"); t.remove();
    }
    said.textContent = done ? "Copied" : "could not copy it: use Reveal";
    setTimeout(() => { said.textContent = ""; }, 5000);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  if (!document.querySelector("[data-live]") && document.querySelector("time.ago")) setInterval(tickElapsed, 1000);
  document.querySelectorAll("form[data-check]").forEach(setUpChecks);
  document.querySelectorAll("form.reveal").forEach(setUpReveal);
  document.querySelectorAll("form.reveal .copy-button").forEach(setUpCopy);
  const box = document.querySelector("[data-live]");
  if (box && window.EventSource) follow(box);
});
