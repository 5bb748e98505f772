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
export const canWrite = () => meta("can-write") === "yes";

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

// Follow an SSE endpoint; `handlers` maps event names to callbacks taking the parsed data.
// EventSource reconnects by itself. `refresh` runs each time the stream opens (subscribe,
// then read: nothing that happened before is missed) and once if it fails for good (say, a
// 404), so the page still reads, and shows, what it can.
export function listen(path, handlers, refresh) {
  const source = new EventSource(path);
  for (const [name, handler] of Object.entries(handlers)) {
    source.addEventListener(name, (event) => handler(JSON.parse(event.data)));
  }
  if (refresh) {
    source.addEventListener("open", refresh);
    source.addEventListener("error", () => { if (source.readyState === EventSource.CLOSED) refresh(); });
  }
  return source;
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
