// The answer-link page: one pause's description and form, sent once with the link's token.
import { el, formatTime } from "./common.js";
import { createForm } from "./form.js";

const $ = (id) => document.getElementById(id);
const token = location.pathname.split("/").pop();
const url = `/api/answer/${token}`;
let form = null;

async function call(method, body) {
  const response = await fetch(url, {
    method, credentials: "omit", headers: { Accept: "application/json", ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  return { status: response.status, data };
}

function finish(title, text, kind) {
  $("answer-title").textContent = title;
  $("answer-form").hidden = true;
  $("description").hidden = true;
  $("pause-context").hidden = true;
  const notice = $("notice");
  notice.textContent = text;
  notice.className = `notice notice-${kind}`;
  notice.hidden = false;
  notice.focus();
}

function showProblems(items) {
  const summary = $("summary");
  summary.replaceChildren(el("p", { text: "Please fix before sending:" }), el("ul", {}, items.map((text) => el("li", { text }))));
  summary.hidden = items.length === 0;
}

async function load() {
  const { status, data } = await call("GET");
  if (status !== 200) { finish("This link no longer works", data.detail ?? "This link cannot be opened.", "error"); return; }
  const { run, pause } = data;
  document.title = `${run.name} · your answer · hitl_bus`;
  const deadline = pause.deadline ? `; answer before ${formatTime(pause.deadline)}` : "";
  $("pause-context").textContent = `${run.name} of flow ${run.flow_name} is waiting for ${data.assignee}${deadline}.`;
  $("description").innerHTML = pause.description_html || ""; // rendered and sanitized by the server
  $("description").hidden = !pause.description_html;
  if (pause.schema) form = createForm($("fields"), pause.schema, pause.defaults ?? {}, { valueLabel: "Your answer" });
  else $("fields").replaceChildren(el("p", { class: "muted", text: "This question takes no input: send to continue." }));
  $("answer-form").hidden = false;
}

$("answer-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  let input;
  if (form) {
    const { value, problems } = form.read(true);
    showProblems(problems.map((p) => p.text));
    if (problems.length) { form.focusFirstProblem(); return; }
    input = value;
  }
  $("send-answer").disabled = true;
  $("status").textContent = "Sending…";
  const { status, data } = await call("POST", form ? { input } : {}).catch(() => ({ status: 0, data: {} }));
  $("status").textContent = "";
  $("send-answer").disabled = false;
  if (status === 200) { finish("Thank you", "Your answer was sent; the flow goes on with it. This link is now used up.", "ok"); return; }
  if (status === 422 && form) {
    const unplaced = form.showServerErrors(data.errors ?? []);
    showProblems([...form.read(true).problems.map((p) => p.text), ...unplaced.map((e) => e.msg)]);
    form.focusFirstProblem();
    return;
  }
  if (status === 410) { finish("This link no longer works", data.detail, "error"); return; }
  showProblems([status ? (data.detail ?? `The answer was not sent (${status}).`) : "The server could not be reached; nothing was sent. Try again."]);
});

load();
