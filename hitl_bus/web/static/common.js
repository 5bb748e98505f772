// Shared by the pages: DOM building, the JSON API with the session's CSRF token, live streams.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content ?? "";
export const canWrite = () => meta("can-write") === "yes"; // may answer: resume, send
export const canOperate = () => meta("can-operate") === "yes"; // may start, cancel
export const role = () => meta("role"); // "" when nobody is signed in

export class ApiError extends Error {
  constructor(status, body) {
    super(typeof body?.detail === "string" ? body.detail : `request failed (${status})`);
    this.status = status;
    this.errors = Array.isArray(body?.errors) ? body.errors : [];
  }
}

export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = meta("csrf-token");
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// -- Live streams ---------------------------------------------------------------------------
// Follow an SSE endpoint; `handlers` maps event names to callbacks taking the parsed data.
// `refresh` runs each time the stream opens (subscribe, then read: nothing that happened
// before is missed), when the server says its store answers again, and once if the stream
// is refused for good (say, a 404), so the page still reads, and shows, what it can.
//
// The page shows the stream's real state: the "live" mark (#live) turns to "reconnecting"
// and a banner (#connection) words the trouble for the person whenever the stream drops or
// the server reports it cannot reach its store. The page reconnects by itself, with growing
// pauses, and asks the server to go on after the last event it had: nothing is missed or
// shown twice, and nothing typed on the page is touched.
const OUTAGE = {
  store: "The server can't reach its store; your answers are kept. Trying again…",
  server: "The connection to the server was lost; your answers are kept. Trying again…",
};
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30000;

function connectionBanner() {
  let node = document.getElementById("connection");
  if (!node) {
    node = el("p", { id: "connection", class: "connection", role: "status", "aria-live": "polite", hidden: true });
    document.querySelector("main")?.prepend(node);
  }
  return node;
}

function showConnection(problem) {
  const mark = document.getElementById("live");
  if (mark) {
    mark.textContent = problem ? "reconnecting" : "live";
    mark.className = problem ? "live reconnecting" : "live";
    mark.title = problem ? "Not receiving updates; trying again" : "Updates as things change";
  }
  const banner = connectionBanner();
  banner.textContent = problem ? OUTAGE[problem] : "";
  banner.hidden = !problem;
}

// Why a stream failed: its status when asked again (0: the server cannot be reached).
async function whyClosed(url) {
  const abort = new AbortController();
  try {
    const response = await fetch(url, { credentials: "same-origin", signal: abort.signal, headers: { Accept: "text/event-stream" } });
    abort.abort();
    return response.status;
  } catch {
    return 0;
  }
}

export function listen(path, handlers, refresh) {
  let lastId = "";
  let failures = 0;
  let problem = null; // null, "store" or "server"
  const remember = (event) => { if (event.lastEventId) lastId = event.lastEventId; };
  const streamUrl = () => lastId ? `${path}${path.includes("?") ? "&" : "?"}last_event_id=${encodeURIComponent(lastId)}` : path;
  const setProblem = (value) => { problem = value; showConnection(value); };
  connectionBanner();

  function connect() {
    const url = streamUrl();
    const source = new EventSource(url);
    for (const [name, handler] of Object.entries(handlers)) {
      source.addEventListener(name, (event) => { remember(event); handler(JSON.parse(event.data)); });
    }
    source.addEventListener("ready", remember);
    source.addEventListener("store", (event) => {
      const { reachable } = JSON.parse(event.data);
      setProblem(reachable ? null : "store");
      if (reachable && refresh) refresh();
    });
    source.addEventListener("open", () => {
      failures = 0;
      setProblem(null);
      if (refresh) refresh();
    });
    source.addEventListener("error", async () => {
      source.close(); // reopened below, with growing pauses and the last event's id
      setProblem(problem ?? "server");
      const status = await whyClosed(streamUrl());
      if ([401, 403, 404].includes(status)) { // refused for good: say what the page can
        setProblem(null);
        if (refresh) refresh();
        return;
      }
      if (status === 503) setProblem("store");
      else if (status === 0) setProblem("server");
      failures += 1;
      const delay = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (failures - 1));
      setTimeout(connect, delay * (0.5 + Math.random() / 2));
    });
  }
  connect();
}

export function stateBadge(state) {
  const type = (state?.type ?? "unknown").toLowerCase();
  return el("span", { class: `state state-${type}`, text: state?.name ?? type });
}

export function formatTime(value) {
  if (!value) return "";
  const date = typeof value === "number" ? new Date(value) : new Date(value);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

export function formatDuration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (h) return `${h} h ${m} min`;
  if (m) return `${m} min ${sec} s`;
  return `${sec} s`;
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}
