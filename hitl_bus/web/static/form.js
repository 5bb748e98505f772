// A form generated from a JSON schema (as pydantic writes it): one control per field,
// checked against every constraint as the person types, read back as JSON.
//
//   const form = createForm(container, schema, defaults, { rootLabel });
//   const { value, errors } = form.read(true);   // true: show every message now
//   form.showServerErrors(errors);               // [{loc: [...], msg}] from a 422
//
// Messages name the field by its title and say what to do ("Quantity must be at most
// 10"); they appear beside the field and in a summary the page puts at the top.

import { el } from "./common.js";

const UNSET = Symbol("unset"); // an empty optional field: leave the key out (its default applies)
let uid = 0;

function humanize(key) {
  const text = String(key).replace(/_/g, " ").replace(/([a-z])([A-Z])/g, "$1 $2");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

export function createForm(container, rootSchema, defaults = {}, options = {}) {
  const defs = rootSchema.$defs ?? {};
  const controls = [];
  let showAll = false;

  function resolve(schema) {
    let out = schema ?? {};
    for (let depth = 0; out.$ref && depth < 32; depth++) {
      const { $ref, ...rest } = out;
      out = { ...(defs[$ref.split("/").pop()] ?? {}), ...rest };
    }
    return out;
  }

  function nullable(schema) {
    const options = schema.anyOf ?? schema.oneOf;
    if (!options) return null;
    const rest = options.filter((s) => resolve(s).type !== "null");
    if (rest.length !== options.length && rest.length === 1) {
      const { anyOf, oneOf, ...outer } = schema;
      return { ...resolve(rest[0]), ...outer };
    }
    return null;
  }

  function choices(schema) {
    if (Array.isArray(schema.enum)) return schema.enum;
    if ("const" in schema) return [schema.const];
    const options = schema.anyOf ?? schema.oneOf;
    if (options && options.every((s) => "const" in resolve(s))) return options.map((s) => resolve(s).const);
    return null;
  }

  // Every control: a wrapper node, read() -> value | UNSET, and check(value) -> message | null.
  function register(control) {
    controls.push(control);
    const refresh = () => { control.touched = true; control.server = null; update(control); options.onChange?.(); };
    for (const input of control.inputs) {
      input.addEventListener("input", refresh);
      input.addEventListener("change", refresh);
      input.addEventListener("blur", () => { control.touched = true; update(control); options.onChange?.(); });
    }
    return control;
  }

  function messageOf(control) {
    if (control.removed) return null;
    if (control.server) return control.server;
    const { value, problem } = control.evaluate();
    return problem ?? control.check?.(value) ?? null;
  }

  function update(control) {
    const message = messageOf(control);
    const visible = message && (control.touched || showAll || control.server);
    control.errorNode.textContent = visible ? `${control.label} ${message}` : "";
    const full = fullLabel(control);
    control.errorNode.hidden = !visible;
    for (const input of control.inputs) {
      input.setCustomValidity(message ? `${full} ${message}` : "");
      if (visible) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    }
    control.wrapper.classList.toggle("invalid", Boolean(visible));
  }

  function fieldShell(label, help, required, inputId, control) {
    const errorId = `err-${inputId}`;
    control.errorNode = el("p", { class: "field-error", id: errorId, hidden: true, "aria-live": "polite" });
    const labelNode = el("label", { for: inputId, class: "field-label" }, label,
      required ? el("span", { class: "req", title: "required", text: " *" }) : null);
    const helpNode = help ? el("p", { class: "help", id: `help-${inputId}`, text: help }) : null;
    control.labelNode = labelNode;
    return { labelNode, helpNode, errorId };
  }

  const fullLabel = (control) => [...(control.trail ?? []), control.label].join(" › ");

  // A row's control is named after its place or key: keep its label and messages in step.
  function setLabel(control, label) {
    control.label = label;
    if (control.labelNode?.firstChild) control.labelNode.firstChild.textContent = label;
    update(control);
  }

  function describe(input, shell, inputId) {
    const ids = [shell.helpNode ? `help-${inputId}` : null, shell.errorId].filter(Boolean);
    input.setAttribute("aria-describedby", ids.join(" "));
  }

  function build(rawSchema, value, ctx) {
    let schema = resolve(rawSchema);
    let optional = false;
    const inner = nullable(schema);
    if (inner) { schema = inner; optional = true; }
    // A field's own title, else its name: a model's class title ("Address") names the type,
    // not the field ("Ship to"), so it labels only what has no name (the form, list items).
    const label = ctx.label ?? rawSchema?.title ?? (ctx.key !== undefined ? humanize(ctx.key) : schema.title ?? "Value");
    const help = rawSchema?.description ?? schema.description;
    // Where the control sits, asked afresh each time: removing a list row moves the rows
    // after it (and everything inside them), so paths and group names are never stored.
    // The trail is the enclosing groups, so "Zip" reads "Ship to › Zip" in messages.
    const where = ctx.where;
    const base = Object.defineProperties(
      { label, id: `f${++uid}`, help, optional, touched: false, server: null, removed: false, root: ctx.root },
      {
        segments: { get: () => where().segments },
        path: { get: () => where().segments.join(".") },
        trail: { get: () => where().trail },
      },
    );
    if (value === undefined && "default" in schema) value = schema.default;

    const enumValues = choices(schema);
    if (enumValues) return buildSelect(schema, enumValues, value, Object.assign(base, { required: ctx.required && !("default" in schema) }));
    const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
    base.required = ctx.required;
    if (type === "boolean") return buildBoolean(value, base);
    if (type === "integer" || type === "number") return buildNumber(schema, type, value, base);
    if (type === "string") return buildString(schema, value, base);
    if (type === "array") return buildArray(schema, value, base);
    if (type === "object" && schema.properties) return buildObject(schema, value, base);
    if (type === "object" && typeof schema.additionalProperties === "object") return buildDict(schema, value, base);
    return buildJson(value, base);
  }

  function scalarWrapper(c, input, { required }) {
    const shell = fieldShell(c.label, c.help, required, c.id, c);
    describe(input, shell, c.id);
    c.wrapper = el("div", { class: "field", "data-path": c.path }, shell.labelNode, input, shell.helpNode,
      c.optional ? el("p", { class: "hint", text: "Leave empty for none." }) : null, c.errorNode);
    return c;
  }

  function buildSelect(schema, values, value, c) {
    const select = el("select", { id: c.id, name: c.path });
    const blank = c.optional ? "(none)" : "Choose…";
    if (c.optional || !values.some((v) => v === value)) select.append(el("option", { value: "", text: blank }));
    const text = (v) => (v === true ? "Yes" : v === false ? "No" : String(v));
    values.forEach((v, i) => select.append(el("option", { value: String(i), text: text(v), selected: v === value })));
    c.inputs = [select];
    c.evaluate = () => {
      if (select.value === "") return c.optional ? { value: null } : { value: UNSET, problem: "is required: choose one" };
      return { value: values[Number(select.value)] };
    };
    c.set = (v) => { const i = values.findIndex((x) => x === v); select.value = i < 0 ? "" : String(i); };
    return register(scalarWrapper(c, select, { required: !c.optional && c.required }));
  }

  function buildBoolean(value, c) {
    if (c.optional) {
      return buildSelect({}, [true, false], value, c); // yes / no / (none)
    }
    const box = el("input", { type: "checkbox", id: c.id, name: c.path, checked: value === true });
    c.inputs = [box];
    c.evaluate = () => ({ value: box.checked });
    c.set = (v) => { box.checked = v === true; };
    const shell = fieldShell(c.label, c.help, false, c.id, c);
    describe(box, shell, c.id);
    c.wrapper = el("div", { class: "field checkbox", "data-path": c.path },
      el("div", { class: "check-row" }, box, shell.labelNode), shell.helpNode, c.errorNode);
    return register(c);
  }

  function buildNumber(schema, type, value, c) {
    const integer = type === "integer";
    const input = el("input", {
      type: "number", id: c.id, name: c.path, inputmode: integer ? "numeric" : "decimal",
      step: schema.multipleOf ?? (integer ? 1 : "any"),
      min: schema.minimum ?? schema.exclusiveMinimum, max: schema.maximum ?? schema.exclusiveMaximum,
      value: typeof value === "number" ? String(value) : "",
    });
    c.inputs = [input];
    const mustFill = !c.optional && c.required;
    c.evaluate = () => {
      if (input.validity.badInput) return { value: UNSET, problem: `must be ${integer ? "a whole number" : "a number"}` };
      if (input.value.trim() === "") {
        if (c.optional) return { value: null };
        return mustFill ? { value: UNSET, problem: "is required" } : { value: UNSET };
      }
      const n = Number(input.value);
      if (!Number.isFinite(n)) return { value: UNSET, problem: "must be a number" };
      if (integer && !Number.isInteger(n)) return { value: UNSET, problem: "must be a whole number" };
      return { value: n };
    };
    c.check = (n) => {
      if (typeof n !== "number") return null;
      if (schema.minimum !== undefined && n < schema.minimum) return `must be at least ${schema.minimum}`;
      if (schema.maximum !== undefined && n > schema.maximum) return `must be at most ${schema.maximum}`;
      if (schema.exclusiveMinimum !== undefined && n <= schema.exclusiveMinimum) return `must be more than ${schema.exclusiveMinimum}`;
      if (schema.exclusiveMaximum !== undefined && n >= schema.exclusiveMaximum) return `must be less than ${schema.exclusiveMaximum}`;
      if (schema.multipleOf) {
        const q = n / schema.multipleOf;
        if (Math.abs(q - Math.round(q)) > 1e-9) return `must be a multiple of ${schema.multipleOf}`;
      }
      return null;
    };
    c.set = (v) => { input.value = typeof v === "number" ? String(v) : ""; };
    const bounds = [];
    if (schema.minimum !== undefined) bounds.push(`at least ${schema.minimum}`);
    if (schema.exclusiveMinimum !== undefined) bounds.push(`more than ${schema.exclusiveMinimum}`);
    if (schema.maximum !== undefined) bounds.push(`at most ${schema.maximum}`);
    if (schema.exclusiveMaximum !== undefined) bounds.push(`less than ${schema.exclusiveMaximum}`);
    if (bounds.length) c.help = [c.help, `${integer ? "A whole number" : "A number"}, ${bounds.join(" and ")}.`].filter(Boolean).join(" ");
    return register(scalarWrapper(c, input, { required: mustFill }));
  }

  function localDateTime(value) {
    if (typeof value !== "string" || !value) return "";
    const date = new Date(value);
    if (Number.isNaN(date.getTime())) return value.slice(0, 16);
    const pad = (n) => String(n).padStart(2, "0");
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
  }

  function buildString(schema, value, c) {
    const format = schema.format;
    const long = format === "textarea" || format === "multiline" || (schema.maxLength ?? 0) > 200;
    const kinds = { date: "date", "date-time": "datetime-local", time: "time", email: "email", uri: "url" };
    const kind = kinds[format] ?? "text";
    const initial = typeof value === "string" ? (kind === "datetime-local" ? localDateTime(value) : value) : "";
    const input = long
      ? el("textarea", { id: c.id, name: c.path, rows: 4 })
      : el("input", { type: kind, id: c.id, name: c.path, step: kind === "time" ? 1 : undefined });
    input.value = initial;
    if (schema.maxLength !== undefined) input.maxLength = schema.maxLength;
    if (schema.minLength !== undefined) input.minLength = schema.minLength;
    if (schema.examples?.length) input.placeholder = String(schema.examples[0]);
    c.inputs = [input];
    const picker = kind !== "text" && kind !== "email" && kind !== "url";
    const mustFill = !c.optional && c.required && (picker || (schema.minLength ?? 0) > 0);
    c.evaluate = () => {
      if (input.validity?.badInput) return { value: UNSET, problem: `must be a valid ${format}` };
      const text = input.value;
      if (text === "") {
        if (c.optional) return { value: null };
        if (picker) return mustFill ? { value: UNSET, problem: `is required: pick a ${format.replace("-", " and ")}` } : { value: UNSET };
        return { value: "" }; // an empty string is a string: accepted unless minLength says not
      }
      if (kind === "datetime-local") return { value: new Date(text).toISOString() };
      return { value: text };
    };
    c.check = (text) => {
      if (typeof text !== "string") return null;
      const length = [...text].length;
      if (schema.minLength !== undefined && length < schema.minLength) {
        return schema.minLength === 1 ? "must not be empty" : `needs at least ${plural(schema.minLength, "character")}`;
      }
      if (schema.maxLength !== undefined && length > schema.maxLength) return `must be at most ${plural(schema.maxLength, "character")}`;
      if (schema.pattern) {
        let re = null;
        try { re = new RegExp(schema.pattern, "u"); } catch { re = null; }
        if (re && !re.test(text)) return `does not have the expected form (${schema.pattern})`;
      }
      if (kind === "email" && input.validity.typeMismatch) return "must be an email address";
      if (kind === "url" && input.validity.typeMismatch) return "must be a web address (https://…)";
      return null;
    };
    c.set = (v) => { input.value = typeof v === "string" ? (kind === "datetime-local" ? localDateTime(v) : v) : ""; };
    if (schema.maxLength !== undefined && !long) input.size = Math.min(Math.max(schema.maxLength, 8), 60);
    return register(scalarWrapper(c, input, { required: mustFill }));
  }

  function collection(c, legendText, body, addButton) {
    c.errorNode = el("p", { class: "field-error", id: `err-${c.id}`, hidden: true, "aria-live": "polite" });
    c.labelNode = el("legend", { text: legendText });
    c.wrapper = el("fieldset", { class: "group", "data-path": c.path, "aria-describedby": `err-${c.id}` },
      c.labelNode,
      c.help ? el("p", { class: "help", text: c.help }) : null,
      body, addButton, c.errorNode);
    return c;
  }

  function buildArray(schema, value, c) {
    const itemSchema = schema.items ?? {};
    const rows = [];
    const list = el("ol", { class: "rows" });
    const itemLabel = (i) => `${c.label} item ${i + 1}`;
    const relabel = () => rows.forEach((row, i) => {
      setLabel(row.control, itemLabel(i));
      row.number.textContent = `${i + 1}.`;
      row.remove.setAttribute("aria-label", `Remove ${itemLabel(i)}`);
    });
    const add = (itemValue, focus) => {
      const row = {};
      const place = () => (rows.includes(row) ? rows.indexOf(row) : rows.length);
      const where = () => ({ segments: [...c.segments, place()], trail: c.trail });
      const control = build(itemSchema, itemValue, { label: itemLabel(rows.length), where, required: true });
      row.control = control;
      row.number = el("span", { class: "row-number", text: `${rows.length + 1}.` });
      const remove = el("button", { type: "button", class: "secondary small", text: "Remove",
        "aria-label": `Remove ${control.label}`,
        onclick: () => {
          rows.splice(rows.indexOf(row), 1);
          markRemoved(control);
          row.node.remove();
          relabel();
          c.touched = true; update(c); options.onChange?.();
        } });
      row.remove = remove;
      row.node = el("li", { class: "row" }, row.number, control.wrapper, remove);
      rows.push(row);
      list.append(row.node);
      if (focus) control.inputs?.[0]?.focus();
      c.touched = true;
      update(c);
      options.onChange?.();
    };
    const addButton = el("button", { type: "button", class: "secondary small", text: "Add an item", "aria-label": `Add an item to ${c.label}`,
      onclick: () => add(undefined, true) });
    c.inputs = [];
    c.evaluate = () => {
      if (c.optional && rows.length === 0) return { value: null };
      return { value: rows.map((row) => row.control.evaluate().value) };
    };
    c.check = (items) => {
      if (!Array.isArray(items)) return null;
      if (schema.minItems !== undefined && items.length < schema.minItems) return `needs at least ${plural(schema.minItems, "item")}`;
      if (schema.maxItems !== undefined && items.length > schema.maxItems) return `takes at most ${plural(schema.maxItems, "item")}`;
      if (schema.uniqueItems && new Set(items.map((x) => JSON.stringify(x))).size !== items.length) return "must not repeat an item";
      return null;
    };
    collection(c, c.label, list, addButton);
    register(c);
    (Array.isArray(value) ? value : []).forEach((v) => add(v, false));
    c.touched = false;
    update(c);
    return c;
  }

  function buildDict(schema, value, c) {
    const valueSchema = schema.additionalProperties;
    const rows = [];
    const list = el("ol", { class: "rows kv" });
    const add = (key, itemValue, focus) => {
      const keyId = `f${++uid}`;
      const keyInput = el("input", { type: "text", id: keyId, class: "key", placeholder: "key", "aria-label": `${c.label} key` });
      keyInput.value = key ?? "";
      const row = {};
      const where = () => ({ segments: [...c.segments, keyInput.value], trail: c.trail });
      const control = build(valueSchema, itemValue, { label: `${c.label} "${keyInput.value}"`, where, required: true });
      keyInput.addEventListener("input", () => {
        setLabel(control, `${c.label} "${keyInput.value}"`);
        c.touched = true; update(c); options.onChange?.();
      });
      row.keyInput = keyInput;
      row.control = control;
      const remove = el("button", { type: "button", class: "secondary small", text: "Remove", "aria-label": `Remove ${c.label} entry`,
        onclick: () => { rows.splice(rows.indexOf(row), 1); markRemoved(control); row.node.remove(); c.touched = true; update(c); options.onChange?.(); } });
      row.node = el("li", { class: "row" }, el("div", { class: "field" }, el("label", { for: keyId, class: "field-label", text: "Key" }), keyInput), control.wrapper, remove);
      rows.push(row);
      list.append(row.node);
      c.inputs.push(keyInput);
      keyInput.addEventListener("blur", () => { c.touched = true; update(c); });
      if (focus) keyInput.focus();
    };
    c.inputs = [];
    c.evaluate = () => {
      if (c.optional && rows.length === 0) return { value: null };
      const out = {};
      for (const row of rows) out[row.keyInput.value] = row.control.evaluate().value;
      return { value: out };
    };
    c.check = () => {
      const keysSeen = new Set();
      for (const row of rows) {
        const key = row.keyInput.value;
        if (key === "") return "has an entry without a key";
        if (keysSeen.has(key)) return `has the key "${key}" twice`;
        keysSeen.add(key);
      }
      if (schema.minProperties !== undefined && rows.length < schema.minProperties) return `needs at least ${plural(schema.minProperties, "entry")}`;
      if (schema.maxProperties !== undefined && rows.length > schema.maxProperties) return `takes at most ${plural(schema.maxProperties, "entry")}`;
      return null;
    };
    const addButton = el("button", { type: "button", class: "secondary small", text: "Add an entry", "aria-label": `Add an entry to ${c.label}`, onclick: () => add("", undefined, true) });
    collection(c, c.label, list, addButton);
    register(c);
    for (const [k, v] of Object.entries(value && typeof value === "object" ? value : {})) add(k, v, false);
    return c;
  }

  function buildObject(schema, value, c) {
    const required = new Set(schema.required ?? []);
    const given = value && typeof value === "object" ? value : {};
    const children = Object.entries(schema.properties).map(([key, propSchema]) => {
      const where = () => ({ segments: [...c.segments, key], trail: c.root ? [] : [...c.trail, c.label] });
      const ctx = { key, where, required: required.has(key) };
      if (c.root && options.valueLabel && key === "value" && Object.keys(schema.properties).length === 1) ctx.label = options.valueLabel;
      return [key, build(propSchema, given[key], ctx)];
    });
    const body = el("div", { class: "fields" }, children.map(([, child]) => child.wrapper));
    c.inputs = [];
    let include = null;
    if (c.optional) {
      include = el("input", { type: "checkbox", checked: value !== null && value !== undefined, "aria-label": `Fill in ${c.label}` });
      const sync = () => { body.hidden = !include.checked; for (const [, child] of children) markRemoved(child, !include.checked); options.onChange?.(); };
      include.addEventListener("change", sync);
      queueMicrotask(sync);
    }
    c.evaluate = () => {
      if (include && !include.checked) return { value: null };
      const out = {};
      for (const [key, child] of children) {
        const v = child.evaluate().value;
        if (v !== UNSET) out[key] = v;
      }
      return { value: out };
    };
    if (c.root) {
      c.wrapper = body;
      c.errorNode = el("p", { hidden: true });
      return c;
    }
    collection(c, c.label, include ? [el("label", { class: "check-row" }, include, ` Fill in ${c.label}`), body] : body, null);
    return c;
  }

  function buildJson(value, c) {
    const input = el("textarea", { id: c.id, name: c.path, rows: 3, class: "json", spellcheck: false });
    input.value = value === undefined ? "" : JSON.stringify(value, null, 2);
    c.inputs = [input];
    c.help = [c.help, "Any JSON value."].filter(Boolean).join(" ");
    c.evaluate = () => {
      if (input.value.trim() === "") return c.optional ? { value: null } : (c.required ? { value: UNSET, problem: "is required" } : { value: UNSET });
      try { return { value: JSON.parse(input.value) }; } catch { return { value: UNSET, problem: "must be valid JSON" }; }
    };
    return register(scalarWrapper(c, input, { required: c.required && !c.optional }));
  }

  function markRemoved(control, removed = true) {
    for (const other of controls) {
      if (other === control || other.wrapper && control.wrapper?.contains(other.wrapper)) {
        other.removed = removed;
        if (removed) other.server = null;
        update(other);
      }
    }
  }

  const root = build(rootSchema, defaults, { where: () => ({ segments: [], trail: [] }), root: true });
  container.replaceChildren(root.wrapper);

  return {
    // The value to send, and every problem as {label, message, focus}; `show` reveals them all.
    read(show = false) {
      if (show) showAll = true;
      const problems = [];
      for (const control of controls) {
        update(control);
        const message = messageOf(control);
        if (message) problems.push({ label: fullLabel(control), message, text: `${fullLabel(control)} ${message}`, focus: control.inputs[0] ?? control.wrapper });
      }
      const { value } = root.evaluate();
      return { value, problems };
    },
    // Put a server's [{loc, msg}] beside the fields they name; returns those it could not place.
    showServerErrors(errors) {
      const unplaced = [];
      for (const err of errors) {
        const path = (err.loc ?? []).join(".");
        const control = controls.find((c) => !c.removed && c.path === path);
        if (control) { control.server = err.msg; update(control); } else unplaced.push(err);
      }
      return unplaced;
    },
    focusFirstProblem() {
      const bad = controls.find((c) => messageOf(c));
      bad?.inputs[0]?.focus();
    },
  };
}
