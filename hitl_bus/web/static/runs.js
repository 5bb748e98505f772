// The runs page: every run, newest first, refreshed whenever an event says something changed.
import { api, canWrite, debounce, el, formatTime, listen, stateBadge } from "./common.js";

const $ = (id) => document.getElementById(id);
const stateFilter = $("state-filter");
const deploymentFilter = $("deployment-filter");

const params = new URLSearchParams(location.search);
stateFilter.value = params.get("state") ?? "";

async function loadRuns() {
  const query = new URLSearchParams();
  if (stateFilter.value) query.set("state", stateFilter.value);
  if (deploymentFilter.value) query.set("deployment", deploymentFilter.value);
  let runs;
  try {
    runs = await api(`/api/runs?${query}`);
  } catch (error) {
    $("runs").replaceChildren(el("tr", {}, el("td", { colspan: 6, class: "alert", text: error.message })));
    return;
  }
  const rows = runs.map((run) => el("tr", { "data-run-id": run.id, "data-state": run.state.type },
    el("td", {}, el("a", { href: `/runs/${run.id}`, text: run.name })),
    el("td", { text: run.flow_name }),
    el("td", { text: run.deployment ?? "" }),
    el("td", {}, stateBadge(run.state)),
    el("td", { text: formatTime(run.created) }),
    el("td", {}, run.state.type === "PAUSED" ? el("a", { class: "button", href: `/runs/${run.id}#resume`, text: "Resume" }) : "")));
  $("runs").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 6, class: "muted", text: "No runs yet." }))]));
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
  $("deployments").replaceChildren(...(deployments.length ? deployments.map((d) => el("li", {},
    el("strong", { text: d.name }), " ",
    el("span", { class: "muted", text: Object.keys(d.parameters).length ? `parameters ${JSON.stringify(d.parameters)}` : "" }), " ",
    canWrite() ? el("button", { type: "button", class: "small", text: "Start run", "data-deployment": d.name, onclick: () => start(d.name) }) : ""))
    : [el("li", { class: "muted", text: "No deployments: start a worker (hitl-bus worker MODULE)." })]));
}

async function start(name) {
  const [flow, ...rest] = name.split("/");
  const error = $("start-error");
  error.hidden = true;
  try {
    const { run } = await api(`/api/deployments/${encodeURIComponent(flow)}/${encodeURIComponent(rest.join("/"))}/runs`, { method: "POST", body: {} });
    loadRuns();
    return run;
  } catch (failure) {
    error.textContent = `Could not start ${name}: ${failure.message}`;
    error.hidden = false;
  }
}

stateFilter.addEventListener("change", () => {
  const url = new URL(location.href);
  if (stateFilter.value) url.searchParams.set("state", stateFilter.value); else url.searchParams.delete("state");
  history.replaceState(null, "", url);
  loadRuns();
});
deploymentFilter.addEventListener("change", loadRuns);

const refresh = debounce(loadRuns, 150);
listen("/api/events", { "state.changed": refresh }, () => { refresh(); loadDeployments(); });
loadDeployments().then(loadRuns);
