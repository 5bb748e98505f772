// The runs page: every run, newest first, refreshed whenever an event says something changed.
import { api, canOperate, canWrite, debounce, el, formatTime, listen, role, stateBadge } from "./common.js";
import { createForm } from "./form.js";

const $ = (id) => document.getElementById(id);
const stateFilter = $("state-filter");
const deploymentFilter = $("deployment-filter");
const mine = $("mine"); // "Waiting for me": a toggle button, shown to a signed-in person

const params = new URLSearchParams(location.search);
stateFilter.value = params.get("state") ?? "";
const waitingForMe = () => mine?.getAttribute("aria-pressed") === "true";
function setMine(on) {
  if (!mine) return;
  mine.setAttribute("aria-pressed", String(on));
  mine.classList.toggle("secondary", !on);
  stateFilter.disabled = on; // the view is of paused runs
}
setMine(params.get("waiting_for") === "me");

async function loadRuns() {
  const query = new URLSearchParams();
  if (waitingForMe()) query.set("waiting_for", "me");
  else if (stateFilter.value) query.set("state", stateFilter.value);
  if (deploymentFilter.value) query.set("deployment", deploymentFilter.value);
  let runs;
  try {
    runs = await api(`/api/runs?${query}`);
  } catch (error) {
    $("runs").replaceChildren(el("tr", {}, el("td", { colspan: 6, class: "alert", text: error.message })));
    return;
  }
  const rows = runs.map((run) => el("tr", { "data-run-id": run.id, "data-state": run.state.type },
    el("td", { class: "run-name" }, el("a", { href: `/runs/${run.id}`, text: run.name })),
    el("td", { class: "run-detail", "data-label": "Flow", text: run.flow_name }),
    el("td", { class: "run-detail", "data-label": "Deployment", text: run.deployment ?? "" }),
    el("td", { class: "run-state" }, stateBadge(run.state)),
    el("td", { class: "run-detail", "data-label": "Started", text: formatTime(run.created) }),
    el("td", { class: "run-action" }, run.state.type === "PAUSED" && (canWrite() || !role()) ? el("a", { class: "button", href: `/runs/${run.id}#resume`, text: "Resume" }) : "")));
  $("runs").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 6, class: "muted", text: waitingForMe() ? "Nothing is waiting for you." : "No runs yet." }))]));
}

async function loadDeployments() {
  let deployments;
  try {
    deployments = await api("/api/deployments");
  } catch (error) {
    $("deployments").replaceChildren(el("li", { class: "alert", text: error.message }));
    return;
  }
  const chosen = deploymentFilter.value;
  deploymentFilter.replaceChildren(el("option", { value: "", text: "any" }),
    ...deployments.map((d) => el("option", { value: d.name, text: d.name, selected: d.name === chosen })));
  $("deployments").replaceChildren(...(deployments.length ? deployments.map(deploymentItem)
    : [el("li", { class: "muted", text: "No deployments: start a worker (hitl-bus worker MODULE)." })]));
}

// A deployment whose flow takes parameters gets a form drawn from their schema, filled with
// the deployment's defaults; one without starts at a click.
function deploymentItem(d) {
  const item = el("li", { "data-deployment": d.name }, el("strong", { text: d.name }), " ");
  if (!canOperate()) return item;
  const schema = d.parameter_schema;
  const takesParameters = Object.keys(schema?.properties ?? {}).length > 0;
  const status = el("span", { class: "muted", "aria-live": "polite" });
  if (!takesParameters) {
    item.append(el("button", { type: "button", class: "small", text: "Start run", onclick: () => start(d.name, {}, status) }), " ", status);
    return item;
  }
  const fields = el("div", {});
  const summary = el("p", { class: "alert", role: "alert", hidden: true });
  const form = el("form", { class: "start-form", novalidate: true, hidden: true }, summary, fields,
    el("div", { class: "actions" }, el("button", { type: "submit", text: "Start" }), status));
  let generated = null;
  item.append(el("button", { type: "button", class: "small secondary", text: "Start run…", "aria-expanded": "false",
    onclick: (event) => {
      form.hidden = !form.hidden;
      event.currentTarget.setAttribute("aria-expanded", String(!form.hidden));
      if (!generated) generated = createForm(fields, schema, d.parameters ?? {});
    } }), form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { value, problems } = generated.read(true);
    summary.textContent = problems.map((p) => p.text).join("; ");
    summary.hidden = problems.length === 0;
    if (problems.length) { generated.focusFirstProblem(); return; }
    const failure = await start(d.name, value, status);
    if (failure?.status === 422 && failure.errors.length) {
      const unplaced = generated.showServerErrors(failure.errors);
      summary.textContent = [failure.message, ...unplaced.map((e) => e.msg)].join("; ");
      summary.hidden = false;
    }
  });
  return item;
}

// Queue a run; says where it went, or returns the failure for the caller to show.
async function start(name, parameters, status) {
  const [flow, ...rest] = name.split("/");
  const error = $("start-error");
  error.hidden = true;
  status.textContent = "Starting…";
  try {
    const path = `/api/deployments/${encodeURIComponent(flow)}/${encodeURIComponent(rest.join("/"))}/runs`;
    const { run } = await api(path, { method: "POST", body: { parameters } });
    status.replaceChildren("Started ", el("a", { href: `/runs/${run.id}`, text: run.name }), ".");
    loadRuns();
    return null;
  } catch (failure) {
    status.textContent = "";
    error.textContent = `Could not start ${name}: ${failure.message}`;
    error.hidden = false;
    return failure;
  }
}

stateFilter.addEventListener("change", () => {
  const url = new URL(location.href);
  if (stateFilter.value) url.searchParams.set("state", stateFilter.value); else url.searchParams.delete("state");
  history.replaceState(null, "", url);
  loadRuns();
});
deploymentFilter.addEventListener("change", loadRuns);
mine?.addEventListener("click", () => {
  setMine(!waitingForMe());
  const url = new URL(location.href);
  if (waitingForMe()) url.searchParams.set("waiting_for", "me"); else url.searchParams.delete("waiting_for");
  history.replaceState(null, "", url);
  loadRuns();
});

const refresh = debounce(loadRuns, 150);
// Read the list each time the stream (re)opens: nothing changed before it listened is lost.
listen("/api/events", { "state.changed": refresh }, () => { loadDeployments(); loadRuns(); });
