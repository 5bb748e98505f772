// The run page: state, Resume form, send boxes and chat, inputs, live logs.
import { api, ApiError, canOperate, canWrite, debounce, el, formatDuration, formatTime, listen, role, stateBadge } from "./common.js";
import { createForm } from "./form.js";

const root = document.getElementById("run");
const runId = root.dataset.runId;
const $ = (id) => document.getElementById(id);

let current = null;       // the last /api/runs/{id} reply
let pauseForm = null;     // { key, form } of the Resume form on screen
let awaitingAnswer = null; // pause key we resumed and wait to hear the flow took
const answers = new Map(); // pause key -> accepted, as the flow reported it
const seenLogs = new Set(); // log ids shown (a reconnecting stream starts over)
let sendForms = new Map(); // key prefix -> form
let countdown = null;
let lastTimedOut = null;  // the pause key whose form timed out on screen

// What this page last sent to resume the run, with the schema it answered: when the flow
// refuses it and asks again with the same input type, the new form starts from it. Kept
// for the tab's life, so a reload asks from the same answer.
const sentKey = `hitl-bus:sent:${runId}`;
function rememberSent(schema, value) {
  try { sessionStorage.setItem(sentKey, JSON.stringify({ schema: JSON.stringify(schema), value })); } catch { /* storage off */ }
}
function lastSentFor(schema) {
  try {
    const saved = JSON.parse(sessionStorage.getItem(sentKey) ?? "null");
    return saved && saved.schema === JSON.stringify(schema) && saved.value && typeof saved.value === "object" ? saved.value : null;
  } catch { return null; }
}

function notice(text, kind = "ok") {
  const node = $("notice");
  node.textContent = text;
  node.className = `notice notice-${kind}`;
  node.hidden = !text;
}

function authHint(error) {
  if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
    return `${error.message} `;
  }
  return "";
}

async function load() {
  try {
    current = await api(`/api/runs/${runId}?logs=false`);
  } catch (error) {
    notice(error.status === 404 ? "No such run." : `Could not load the run: ${error.message}`, "error");
    return;
  }
  render(current);
}

function render(detail) {
  const { run, history, pause, inputs, receivers } = detail;
  document.title = `${run.name} · hitl_bus`;
  $("run-name").textContent = run.name;
  $("state").replaceWith(Object.assign(stateBadge(run.state), { id: "state" }));
  $("run-meta").textContent = [
    `flow ${run.flow_name}`,
    run.deployment ? `deployment ${run.deployment}` : null,
    `created ${formatTime(run.created)}`,
    `id ${run.id}`,
  ].filter(Boolean).join(" · ");
  const final = ["COMPLETED", "FAILED", "CANCELLED", "CRASHED"].includes(run.state.type);
  const message = run.state.message && run.state.type !== "PAUSED" ? run.state.message : "";
  $("state-message").textContent = message;
  $("state-message").hidden = !message;
  $("cancel").hidden = final || !canOperate() || run.state.type === "CANCELLING";
  $("parameters").textContent = JSON.stringify(run.parameters ?? {}, null, 2);
  $("history").replaceChildren(...history.map((s) =>
    el("li", {}, stateBadge(s), " ", deed(s), el("time", { text: formatTime(s.timestamp) }), s.message ? ` ${s.message}` : "")));
  $("inputs").replaceChildren(...(inputs.length ? inputs.map((i) =>
    el("li", {}, el("code", { text: i.key_prefix }), " ", el("span", { class: "muted", text: senderName(i.sender) }), " ",
      el("span", { text: clip(display(i.data)) })))
    : [el("li", { class: "muted", text: "None yet." })]));
  renderPause(run, pause);
  renderSenders(final ? {} : receivers);
  rebuildConversation(inputs, detail.replies ?? []);
}

function senderName(sender) {
  if (!sender) return "";
  if (sender.startsWith("hitl.user.")) return `Sent by ${sender.slice(10)}`;
  if (sender.startsWith("hitl.flow-run.")) return `from run ${sender.slice(14, 22)}…`;
  if (sender.startsWith("hitl.client.")) return "from a client";
  return `from ${sender}`;
}

// Who made a state change, as the history shows it: "Resumed by grace at <time>".
function deed(s) {
  const actor = s.state_details?.actor;
  if (!actor) return "";
  const verb = s.type === "RUNNING" || s.name === "Resuming" ? "Resumed"
    : s.type.startsWith("CANCEL") ? "Cancelled" : "Started";
  const who = actor.startsWith("hitl.user.") ? actor.slice(10) : senderName(actor).replace(/^from /, "");
  return `${verb} by ${who} at `;
}

// An input or reply as a person reads it: a plain value as itself, a model as its
// fields ("name: Ada · age: 3"), empty fields left out.
function display(data) {
  if (data && typeof data === "object" && !Array.isArray(data)) {
    const entries = Object.entries(data);
    if (entries.length === 1 && entries[0][0] === "value") return displayValue(entries[0][1]);
    return entries.filter(([, v]) => v !== "" && v !== null && v !== undefined)
      .map(([k, v]) => `${k}: ${displayValue(v)}`).join(" · ");
  }
  return displayValue(data);
}

function displayValue(value) {
  if (typeof value === "string") return value;
  if (value === true) return "yes";
  if (value === false) return "no";
  if (Array.isArray(value)) return value.map(displayValue).join(", ");
  if (value && typeof value === "object") {
    return Object.entries(value).map(([k, v]) => `${k} ${displayValue(v)}`).join(", ");
  }
  return String(value);
}

const clip = (text) => text.length > 200 ? `${text.slice(0, 199)}…` : text;

// -- Resume -----------------------------------------------------------------------------

function renderPause(run, pause) {
  const section = $("resume");
  if (!pause) {
    clearInterval(countdown);
    if (pauseForm && pauseForm.key !== awaitingAnswer && !answers.has(pauseForm.key) && timedOut(run)) {
      keepTimedOut(run);
      return;
    }
    if (pauseForm?.key === lastTimedOut) return;
    section.hidden = true;
    pauseForm = null;
    return;
  }
  section.hidden = false;
  $("resume-title").textContent = pause.suspended
    ? "Suspended: waiting for you (a worker continues it once resumed)"
    : "Paused: waiting for you";
  // A refusal is the paused state's message when the flow's own checks refused the last
  // answer; any other message (why a run was suspended) is not one.
  const rejection = /^Input rejected:/.test(run.state.message ?? "") ? run.state.message : "";
  $("rejection").textContent = rejection ? `The flow did not accept your last answer. ${rejection.replace(/^Input rejected:\s*/, "")}` : "";
  $("rejection").hidden = !rejection;
  $("description").innerHTML = pause.description_html || ""; // rendered and sanitized by the server
  $("description").hidden = !pause.description_html;
  renderContext(run, pause);
  if (pauseForm?.key === pause.pause_key) return; // keep what the person has typed
  $("resume-form").dataset.pauseKey = pause.pause_key;
  const schema = pause.schema;
  const fields = $("fields");
  $("timed-out").hidden = true;
  if (schema) {
    const previous = rejection ? lastSentFor(schema) : null;
    const form = createForm(fields, schema, { ...(pause.defaults ?? {}), ...(previous ?? {}) }, {
      valueLabel: "Your answer",
      onChange: () => { if (!$("summary").hidden) showSummary(form.read().problems); showRecap(); },
    });
    pauseForm = { key: pause.pause_key, form, schema };
    if (rejection) form.markRefusal(rejection);
  } else {
    fields.replaceChildren(el("p", { class: "muted", text: "This pause takes no input." }));
    pauseForm = { key: pause.pause_key, form: null };
  }
  pauseForm.deadline = pause.deadline;
  $("resume-button").hidden = !canWrite() && Boolean(role()); // a viewer: nothing to press
  $("summary").hidden = true;
  $("resume-status").textContent = "";
  $("resume-button").disabled = !canWrite();
  showRecap();
  if (rejection) {
    // The refusal is the first thing the person needs: bring it into view and read it out.
    $("rejection").scrollIntoView({ block: "start" });
    $("rejection").focus({ preventScroll: true });
  }
  if (!canWrite()) $("resume-status").replaceChildren(...(role() ? [`As a ${role()} you can read this run; answering needs the responder role.`]
    : ["Log in to resume: ", el("a", { href: `/login?next=/runs/${runId}`, text: "log in" })]));
}

function timedOut(run) {
  const deadline = current?.pause?.deadline ?? pauseForm?.deadline;
  return (deadline && new Date(deadline).getTime() <= Date.now() + 1000) || /not resumed in time/i.test(run.state.message ?? "");
}

// The pause ended while the person was filling it in: say so, and keep what they typed
// on screen (read-only, and as text to copy) rather than clearing the form.
function keepTimedOut(run) {
  lastTimedOut = pauseForm.key;
  $("resume-title").textContent = "This pause timed out";
  $("pause-context").textContent = `${run.name} stopped waiting before your answer was sent, so the flow did not get it.`;
  $("rejection").hidden = true;
  $("summary").hidden = true;
  $("recap").textContent = "";
  $("resume-button").disabled = true;
  $("resume-button").hidden = true;
  const node = $("timed-out");
  if (pauseForm.form) {
    const typed = pauseForm.form.snapshot();
    pauseForm.form.freeze();
    node.replaceChildren(
      el("p", { text: "The pause timed out before you resumed it. Nothing was sent. What you typed is kept below so you can copy it:" }),
      el("pre", { class: "typed", tabindex: "0", text: JSON.stringify(typed, null, 2) }));
  } else {
    node.replaceChildren(el("p", { text: "The pause timed out before you resumed it. Nothing was sent." }));
  }
  node.hidden = false;
  node.focus();
}

// One line, beside the button, of what Resume will send: the filled fields' values.
function showRecap() {
  const node = $("recap");
  if (!node) return;
  const form = pauseForm?.form;
  if (!form) { node.textContent = ""; return; }
  const parts = form.recap();
  let text = parts.join(" · ");
  if (text.length > 120) text = `${text.slice(0, 119)}…`;
  node.textContent = text ? `Sends: ${text}` : "";
}

function renderContext(run, pause) {
  clearInterval(countdown);
  const base = `${run.name} of flow ${run.flow_name}${run.deployment ? ` (deployment ${run.deployment})` : ""}`;
  const since = run.state.timestamp ? `, waiting since ${formatTime(run.state.timestamp)}` : "";
  const tick = () => {
    let left = "; no time limit.";
    if (pause.deadline) {
      const ms = new Date(pause.deadline).getTime() - Date.now();
      left = ms > 0 ? `; the pause times out in ${formatDuration(ms)}.` : "; the pause has timed out.";
    }
    $("pause-context").textContent = `${base}${since}${left}`;
  };
  tick();
  if (pause.deadline) countdown = setInterval(tick, 1000);
}

function showSummary(problems, extra = []) {
  const summary = $("summary");
  // Redrawn only when the problems change: a link must not be replaced between the press
  // (which takes focus from the field, and so re-checks it) and the click.
  const key = JSON.stringify([problems.map((p) => p.text), extra]);
  if (summary.dataset.key === key && !summary.hidden) {
    problems.forEach((p, i) => { summary.querySelectorAll("a")[i].focusTarget = p.focus; });
    return;
  }
  summary.dataset.key = key;
  const link = (p) => {
    const a = el("a", { href: `#${p.focus?.id ?? ""}`, text: p.text });
    a.focusTarget = p.focus;
    a.addEventListener("click", (e) => { e.preventDefault(); a.focusTarget?.focus(); });
    return a;
  };
  const items = [...problems.map((p) => el("li", {}, link(p))), ...extra.map((text) => el("li", { text }))];
  summary.replaceChildren(
    items.length ? el("p", { text: `Please fix ${items.length === 1 ? "this" : `these ${items.length} problems`} before resuming:` }) : "",
    el("ul", {}, items));
  summary.hidden = items.length === 0;
}

$("resume-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!pauseForm || !current?.pause) return;
  let input = null;
  if (pauseForm.form) {
    const { value, problems } = pauseForm.form.read(true);
    showSummary(problems);
    if (problems.length) { pauseForm.form.focusFirstProblem(); return; } // nothing is sent
    input = value;
    rememberSent(pauseForm.schema, value);
  }
  const key = current.pause.pause_key;
  const suspended = current.pause.suspended;
  const takesInput = Boolean(pauseForm.form);
  $("resume-button").disabled = true;
  $("resume-status").textContent = "Sending…";
  try {
    await api(`/api/runs/${runId}/resume`, { method: "POST", body: pauseForm.form ? { input } : {} });
    $("resume-status").textContent = "";
    answeredTakesInput.set(key, takesInput);
    if (answers.has(key)) confirmAnswer(answers.get(key), takesInput); // the flow was quicker than the reply
    else {
      awaitingAnswer = key;
      notice(suspended
        ? `Resumed. A worker will continue the run${takesInput ? " with your input" : ""}.`
        : (takesInput ? "Resumed. Waiting for the flow to take the input…" : "Resumed. Waiting for the flow to continue…"), "pending");
    }
  } catch (error) {
    awaitingAnswer = null;
    $("resume-button").disabled = false;
    $("resume-status").textContent = "";
    if (error.status === 422 && pauseForm.form) {
      const unplaced = pauseForm.form.showServerErrors(error.errors);
      showSummary(pauseForm.form.read(true).problems, unplaced.map((e) => e.msg));
      pauseForm.form.focusFirstProblem();
    } else {
      showSummary([], [`${authHint(error)}${error.message}`]);
      if (error.status === 409) load();
    }
  }
});

const answeredTakesInput = new Map(); // pause key -> whether that resume carried input

function confirmAnswer(accepted, takesInput = true) {
  if (accepted) notice(takesInput ? "✓ The flow has your input and is running again." : "✓ The flow is running again.", "ok");
  else notice("The flow did not accept that input; it is waiting again (see the form).", "error");
}

$("cancel").addEventListener("click", async () => {
  if (!confirm("Cancel this run? It stops at its next checkpoint.")) return;
  try {
    await api(`/api/runs/${runId}/cancel`, { method: "POST" });
    notice("Cancelling…", "pending");
  } catch (error) {
    notice(`${authHint(error)}${error.message}`, "error");
  }
});

// -- Send boxes and replies -------------------------------------------------------------

// The conversation: what this server sent the run and what the run sent back, in the
// order Redis stored them (stream positions), whatever order the page heard of them.
// Rebuilt from the run's inputs and replies on every load, so a reload keeps it.
const chat = new Map();     // item id (input key, or reply entry id) -> {id, who, text, key}
const outcomes = new Map(); // input key -> {status, reason} from the run's events

function position(id) {
  const [ms, seq] = String(id ?? "").split("-").map(Number);
  return Number.isFinite(ms) ? [ms, Number.isFinite(seq) ? seq : 0] : [Infinity, 0];
}

// By time; within one millisecond a message comes before a reply (they sit in different
// streams, so their sequence numbers do not compare).
function chatOrder(a, b) {
  const [am, as] = position(a.id);
  const [bm, bs] = position(b.id);
  if (am !== bm) return am - bm;
  if (a.who !== b.who) return a.who === "you" ? -1 : 1;
  return as - bs;
}

function statusText(key) {
  const outcome = outcomes.get(key);
  if (outcome?.status === "skipped") return outcome.reason ? `Not taken: ${outcome.reason}` : "Not taken";
  if (outcome?.status === "taken") return "Taken by the flow";
  return "Delivered";
}

function noteOutcome(key, status, reason = "") {
  const known = outcomes.get(key);
  if (known?.status === "skipped" || (known?.status === "taken" && status !== "skipped")) return;
  outcomes.set(key, { status, reason });
}

function drawConversation() {
  const items = [...chat.values()].sort(chatOrder);
  $("conversation").replaceChildren(...items.map((item) => {
    const node = el("li", { class: `say say-${item.who}`, "data-id": item.id ?? "" },
      el("span", { class: "who", text: item.who === "you" ? "You" : "Run" }), " ",
      el("span", { class: "text", text: clip(item.text) }));
    if (item.who === "you") node.append(" ", el("span", { class: "status", text: statusText(item.key) }));
    return node;
  }));
}

function addMessage(item) {
  const chatKey = item.who === "you" ? item.key : `reply:${item.id}`;
  chat.set(chatKey, { ...chat.get(chatKey), ...item });
  drawConversation();
}

function rebuildConversation(inputs, replies) {
  for (const input of inputs) {
    if (input.status && input.status !== "delivered") noteOutcome(input.key, input.status, input.reason ?? "");
    if (input.sent_here) chat.set(input.key, { id: input.id, key: input.key, who: "you", text: display(input.data) });
  }
  for (const reply of replies) chat.set(`reply:${reply.id}`, { id: reply.id, who: "run", text: display(reply.data) });
  drawConversation();
}

// What the send box calls an input type: "Text" for a plain string, a model's title in words.
function typeName(schema) {
  const props = schema.properties ?? {};
  if (Object.keys(props).length === 1 && "value" in props) {
    const value = props.value;
    const type = Array.isArray(value.type) ? value.type.find((t) => t !== "null") : value.type;
    return { string: "Text", integer: "Whole number", number: "Number", boolean: "Yes or no", array: "List", object: "Entries" }[type] ?? "Value";
  }
  const title = String(schema.title ?? "Input").replace(/([a-z0-9])([A-Z])/g, "$1 $2").replace(/_/g, " ");
  return title.charAt(0).toUpperCase() + title.slice(1).toLowerCase();
}

function renderSenders(receivers) {
  const prefixes = Object.keys(receivers ?? {});
  $("send").hidden = prefixes.length === 0;
  $("send-intro").textContent = current?.pause?.suspended
    ? "This run is suspended: what you send is kept, and the run reads it when a worker continues it."
    : "This run is receiving input. What it sends back appears here as it arrives.";
  const container = $("senders");
  for (const prefix of [...sendForms.keys()]) {
    if (!(prefix in receivers)) { sendForms.get(prefix).node.remove(); sendForms.delete(prefix); }
  }
  for (const prefix of prefixes) {
    if (sendForms.has(prefix)) continue;
    const schema = receivers[prefix];
    const automatic = Object.keys(schema.properties ?? {}).length === 1 && "value" in (schema.properties ?? {});
    const fields = el("div", {});
    const status = el("span", { class: "muted", "aria-live": "polite" });
    const button = el("button", { type: "submit", text: "Send", disabled: !canWrite() });
    const node = el("form", { class: "send-form", novalidate: true, "data-prefix": prefix },
      el("p", { class: "send-type", text: typeName(schema) }), fields,
      el("div", { class: "actions" }, button, status));
    const form = createForm(fields, schema, {}, { valueLabel: "Message" });
    node.addEventListener("submit", async (event) => {
      event.preventDefault();
      const { value, problems } = form.read(true);
      if (problems.length) { status.textContent = problems.map((p) => p.text).join("; "); form.focusFirstProblem(); return; }
      const body = automatic ? { value: value.value, key_prefix: prefix } : { data: value, key_prefix: prefix };
      button.disabled = true;
      status.textContent = "Sending…";
      const first = fields.querySelector("input[type=text], textarea");
      const typed = first?.value;
      try {
        const sent = await api(`/api/runs/${runId}/input`, { method: "POST", body });
        addMessage({ id: sent.id, key: sent.key, who: "you", text: display(automatic ? { value: value.value } : value) });
        status.textContent = "";
        // Cleared for the next message, unless the person has started typing it already.
        if (first && automatic && first.value === typed) { first.value = ""; first.focus(); }
      } catch (error) {
        if (error.status === 422) form.showServerErrors(error.errors);
        status.textContent = `${authHint(error)}${error.message}`;
      } finally {
        button.disabled = !canWrite();
      }
    });
    sendForms.set(prefix, { node, form });
    container.append(node);
  }
}

// -- Live -------------------------------------------------------------------------------

const reload = debounce(load, 100);

// One stream carries the run's events, its logs and its replies. The page reads the run
// each time the stream (re)opens, so nothing that happened before it was listening is lost.
listen(`/api/runs/${runId}/live`, {
  "state.changed": reload,
  "input.received": reload,
  "pause.answered": (event) => {
    answers.set(event.data.pause_key, event.data.accepted);
    if (event.data.pause_key !== awaitingAnswer) return;
    awaitingAnswer = null;
    confirmAnswer(event.data.accepted, answeredTakesInput.get(event.data.pause_key) ?? true);
  },
  "input.taken": (event) => { noteOutcome(event.data.key, "taken"); drawConversation(); },
  "input.skipped": (event) => { noteOutcome(event.data.key, "skipped", event.data.reason ?? ""); drawConversation(); },
  reply: (msg) => addMessage({ id: msg.id, who: "run", text: display(msg.data) }),
  log: (record) => {
    if (seenLogs.has(record.id)) return; // a reopened stream starts the logs over
    seenLogs.add(record.id);
    const logs = $("logs");
    logs.querySelector(".logs-empty")?.remove();
    logs.append(el("li", { class: `log log-${record.level.toLowerCase()}` },
      el("time", { datetime: new Date(Number(record.ts)).toISOString(), text: new Date(Number(record.ts)).toLocaleTimeString() }), " ",
      el("span", { class: "level", text: record.level }), " ",
      el("span", { class: "msg", text: record.message })));
    logs.scrollTop = logs.scrollHeight;
  },
}, load);
