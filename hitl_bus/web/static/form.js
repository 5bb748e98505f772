// A form generated from a JSON schema (as pydantic writes it): one control per field,
// checked against every constraint as the person types, read back as JSON.
//
//   const form = createForm(container, schema, defaults, { rootLabel });
//   const { value, errors } = form.read(true);   // true: show every message now
//   form.showServerErrors(errors);               // [{loc: [...], msg}] from a 422
//   form.markRefusal(message);                   // the flow's own refusal, beside the field it names
//   form.recap();                                // the filled fields, as short phrases
//   form.snapshot(); form.freeze();              // what was typed; stop taking input
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
    const refresh = () => { control.touched = true; control.server = null; control.refusal = null; update(control); options.onChange?.(); };
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
    // A flow's refusal naming this field is shown in the flow's words until the field is
    // changed; it does not stop a resume (only the flow can say whether it now agrees).
    const own = messageOf(control);
    const refusal = !own && !control.removed ? control.refusal : null;
    const message = own ?? refusal;
    const visible = message && (control.touched || showAll || control.server || refusal);
    control.errorNode.textContent = visible ? (refusal ?? (control.server && control.serverPlain ? message : `${control.label} ${message}`)) : "";
    const full = fullLabel(control);
    control.errorNode.hidden = !visible;
    for (const input of control.inputs) {
      input.setCustomValidity(message ? `${full} ${message}` : "");
      if (visible) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    }
    control.wrapper.classList.toggle("invalid", Boolean(visible));
  }

  function fieldShell(label, help, required, inputId, control, tag = "label") {
    const errorId = `err-${inputId}`;
    control.errorNode = el("p", { class: "field-error", id: errorId, hidden: true, "aria-live": "polite" });
    const labelNode = el(tag, tag === "label" ? { for: inputId, class: "field-label" } : { class: "field-label", id: `label-${inputId}` }, label,
      required ? el("span", { class: "req", "aria-hidden": "true", text: " *" }) : null);
    const helpNode = help ? el("p", { class: "help", id: `help-${inputId}`, text: help }) : null;
    const hints = hintsOf(control);
    const hintNodes = hints.map((text, i) => el("p", { class: "hint", id: `hint-${inputId}-${i}`, text }));
    control.labelNode = labelNode;
    return { labelNode, helpNode, hintNodes, errorId };
  }

  // Extra lines under the help: bounds, what empty means, the zone of a time. Each its
  // own line; "Leave empty for none." is left out when the help already says what empty does.
  function hintsOf(control) {
    const hints = [...(control.hints ?? [])];
    const saysEmpty = /\b(empty|clear|blank)\b/i.test(control.help ?? "");
    if (control.optional && !saysEmpty && !control.noEmptyHint) hints.push("Leave empty for none.");
    return hints;
  }

  const fullLabel = (control) => [...(control.trail ?? []), control.label].join(" › ");

  // A row's control is named after its place or key: keep its label and messages in step.
  function setLabel(control, label) {
    control.label = label;
    if (control.labelNode?.firstChild) control.labelNode.firstChild.textContent = label;
    update(control);
  }

  function describe(input, shell, inputId) {
    const ids = [shell.helpNode ? `help-${inputId}` : null, ...shell.hintNodes.map((n) => n.id), shell.errorId].filter(Boolean);
    input.setAttribute("aria-describedby", ids.join(" "));
  }

  function markRequired(inputs, required) {
    for (const input of inputs) {
      if (required) { input.required = true; input.setAttribute("aria-required", "true"); }
    }
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
    if (type === "object" && isDict(schema)) return buildDict(schema, value, base);
    return buildJson(value, base);
  }

  function scalarWrapper(c, input, { required }) {
    const shell = fieldShell(c.label, c.help, required, c.id, c);
    describe(input, shell, c.id);
    markRequired([input], required);
    const control = c.beside ? el("div", { class: "with-beside" }, input, c.beside) : input;
    c.wrapper = el("div", { class: "field", "data-path": c.path }, shell.labelNode, control, shell.helpNode,
      ...shell.hintNodes, c.errorNode);
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
    if (c.required) return buildYesNo(value, c);
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

  // A yes/no the person must answer: two radios, none chosen until they choose.
  function buildYesNo(value, c) {
    const radios = [true, false].map((v) => el("input", {
      type: "radio", id: `${c.id}-${v ? "yes" : "no"}`, name: `${c.id}-choice`, value: v ? "yes" : "no", checked: value === v,
    }));
    c.inputs = radios;
    c.evaluate = () => {
      const chosen = radios.find((r) => r.checked);
      return chosen ? { value: chosen.value === "yes" } : { value: UNSET, problem: "is required: choose Yes or No" };
    };
    c.set = (v) => { radios[0].checked = v === true; radios[1].checked = v === false; };
    const shell = fieldShell(c.label, c.help, true, c.id, c, "legend");
    markRequired(radios, true);
    const ids = [shell.helpNode ? `help-${c.id}` : null, ...shell.hintNodes.map((n) => n.id), shell.errorId].filter(Boolean);
    c.wrapper = el("fieldset", { class: "field choice", role: "radiogroup", "aria-required": "true", "aria-labelledby": `label-${c.id}`, "aria-describedby": ids.join(" "), "data-path": c.path },
      shell.labelNode,
      el("div", { class: "choice-row" },
        el("label", { class: "check-row" }, radios[0], "Yes"),
        el("label", { class: "check-row" }, radios[1], "No")),
      shell.helpNode, ...shell.hintNodes, c.errorNode);
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
    if (bounds.length) c.hints = [`${integer ? "A whole number" : "A number"}, ${bounds.join(" and ")}.`];
    return register(scalarWrapper(c, input, { required: mustFill }));
  }

  function localDateTime(value) {
    if (typeof value !== "string" || !value) return "";
    const date = new Date(value);
    if (Number.isNaN(date.getTime())) return value.slice(0, 16);
    const pad = (n) => String(n).padStart(2, "0");
    return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
  }

  function offsetText(date) {
    const minutes = -date.getTimezoneOffset();
    const sign = minutes < 0 ? "−" : "+";
    const pad = (n) => String(n).padStart(2, "0");
    return `UTC${sign}${pad(Math.floor(Math.abs(minutes) / 60))}:${pad(Math.abs(minutes) % 60)}`;
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
    // A pattern is for the machine: messages show an example or the help, never the regex.
    let pattern = null;
    if (schema.pattern) {
      try { pattern = new RegExp(schema.pattern, "u"); } catch { pattern = null; }
      if (!pattern) c.hints = [...(c.hints ?? []), "The server checks this field's form when you resume."];
    }
    const expected = schema.examples?.length ? ` (for example ${schema.examples[0]})` : (c.help ? `: ${c.help.replace(/\.$/, "")}` : "");
    if (kind === "datetime-local") {
      const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "your time zone";
      c.beside = el("span", { class: "zone", text: `${zone} (${offsetText(new Date())})` });
      const sent = el("p", { class: "hint", id: `sent-${c.id}` });
      const showSent = () => {
        const when = input.value ? new Date(input.value) : null;
        sent.textContent = when && !Number.isNaN(when.getTime())
          ? `In your time zone, ${zone}; sent as UTC: ${when.toISOString().slice(0, 16).replace("T", " ")} UTC.`
          : `In your time zone, ${zone}; sent as UTC.`;
      };
      input.addEventListener("input", showSent);
      c.afterBuild = () => { showSent(); c.wrapper.insertBefore(sent, c.errorNode); input.setAttribute("aria-describedby", `${input.getAttribute("aria-describedby")} sent-${c.id}`); };
    }
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
      if (pattern && !pattern.test(text)) return `does not have the expected form${expected}`;
      if (kind === "email" && input.validity.typeMismatch) return "must be an email address";
      if (kind === "url" && input.validity.typeMismatch) return "must be a web address (https://…)";
      return null;
    };
    c.set = (v) => { input.value = typeof v === "string" ? (kind === "datetime-local" ? localDateTime(v) : v) : ""; };
    if (schema.maxLength !== undefined && !long) input.size = Math.min(Math.max(schema.maxLength, 8), 60);
    register(scalarWrapper(c, input, { required: mustFill }));
    c.afterBuild?.();
    return c;
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

  // A dict: free keys (additionalProperties), keys with rules (propertyNames), or keys of
  // a pattern (patternProperties, as pydantic writes dict[constr(pattern=...), V]).
  function isDict(schema) {
    if (schema.properties) return false;
    const patterns = Object.keys(schema.patternProperties ?? {});
    return typeof schema.additionalProperties === "object" || patterns.length > 0 || typeof schema.propertyNames === "object";
  }

  // What a key must be, as a check giving a message (or null), from the dict's schema.
  function keyRules(schema) {
    const names = resolve(schema.propertyNames ?? {});
    const patterns = Object.keys(schema.patternProperties ?? {});
    let unchecked = false;
    const compile = (source) => {
      try { return new RegExp(source, "u"); } catch { unchecked = true; return null; }
    };
    const own = names.pattern ? compile(names.pattern) : null;
    const keyPatterns = patterns.map(compile).filter(Boolean);
    const onlyPatterns = patterns.length > 0 && schema.additionalProperties === undefined;
    const allowed = Array.isArray(names.enum) ? names.enum.map(String) : null;
    const expected = names.examples?.length ? ` (for example ${names.examples[0]})` : (names.description ? `: ${String(names.description).replace(/\.$/, "")}` : "");
    const check = (key) => {
      const length = [...key].length;
      if (allowed && !allowed.includes(key)) return `key "${key}" must be one of: ${allowed.join(", ")}`;
      if (names.minLength !== undefined && length < names.minLength) return `key "${key}" needs at least ${plural(names.minLength, "character")}`;
      if (names.maxLength !== undefined && length > names.maxLength) return `key "${key}" must be at most ${plural(names.maxLength, "character")}`;
      if (own && !own.test(key)) return `key "${key}" does not have the expected form${expected}`;
      if (onlyPatterns && keyPatterns.length && !keyPatterns.some((p) => p.test(key))) return `key "${key}" does not have the expected form${expected}`;
      return null;
    };
    return { check, unchecked, allowed };
  }

  function buildDict(schema, value, c) {
    const patternValues = Object.values(schema.patternProperties ?? {});
    const valueSchema = typeof schema.additionalProperties === "object" ? schema.additionalProperties : (patternValues[0] ?? {});
    const keys = keyRules(schema);
    if (keys.unchecked) c.hints = [...(c.hints ?? []), "The server checks the form of the keys when you send."];
    if (keys.allowed) c.hints = [...(c.hints ?? []), `Keys: ${keys.allowed.join(", ")}.`];
    const rows = [];
    const list = el("ol", { class: "rows kv" });
    const add = (key, itemValue, focus) => {
      const keyId = `f${++uid}`;
      const keyInput = el("input", { type: "text", id: keyId, class: "key", placeholder: "key", "aria-label": `${c.label} key` });
      keyInput.value = key ?? "";
      const row = {};
      const where = () => ({ segments: [...c.segments, keyInput.value], trail: c.trail });
      const control = build(valueSchema, itemValue, { label: `${c.label} "${keyInput.value}"`, where, required: true });
      control.rowKey = () => keyInput.value; // a server error here is worded "<key>: <message>"
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
      c.badKey = null;
      for (const row of rows) {
        const key = row.keyInput.value;
        if (key === "") { c.badKey = row.keyInput; return "has an entry without a key"; }
        if (keysSeen.has(key)) { c.badKey = row.keyInput; return `has the key "${key}" twice`; }
        keysSeen.add(key);
        const wrong = keys.check(key);
        if (wrong) { c.badKey = row.keyInput; return wrong; }
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
    c.hints = ["Any JSON value."];
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

  // A server message worded "<key>: <message>" names its place already.
  const textOf = (control, message) => (control.server && control.serverPlain && message === control.server
    ? [...(control.trail ?? []), message].join(" › ")
    : `${fullLabel(control)} ${message}`);
  const FOCUSABLE = "input:not([type=hidden]), select, textarea, button";
  // A field's own input, or for a group (list, entries, nested fields) the first control in it.
  const firstControl = (control) => (control.badKey?.isConnected ? control.badKey : null) ?? control.inputs.find((i) => i.type !== "radio" || i.checked) ?? control.inputs[0] ?? control.wrapper.querySelector(FOCUSABLE) ?? control.wrapper;

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
        if (message) problems.push({ label: fullLabel(control), message, text: textOf(control, message), focus: firstControl(control) });
      }
      const { value } = root.evaluate();
      return { value, problems };
    },
    // Put a server's [{loc, msg}] beside the fields they name; returns those it could not place.
    // An error inside a dict row's value reads "<key>: <message>"; one below any field
    // drawn (a place the form has no control for) goes to the nearest enclosing field,
    // worded with the rest of its place ("berlin: must be a whole number").
    showServerErrors(errors) {
      const unplaced = [];
      for (const err of errors) {
        const loc = (err.loc ?? []).map(String);
        const live = controls.filter((c) => !c.removed && c !== root);
        const exact = live.find((c) => c.path === loc.join("."));
        if (exact) {
          exact.serverPlain = Boolean(exact.rowKey);
          exact.server = exact.rowKey ? `${exact.rowKey()}: ${err.msg}` : err.msg;
          update(exact);
          continue;
        }
        let best = null;
        for (const c of live) {
          const seg = c.segments.map(String);
          if (seg.length && seg.length < loc.length && seg.every((s, i) => s === loc[i]) && (!best || seg.length > best.segments.length)) best = c;
        }
        if (best) {
          best.serverPlain = true;
          best.server = `${loc.slice(best.segments.length).join(".")}: ${err.msg}`;
          update(best);
        } else unplaced.push(loc.length ? { ...err, msg: `${loc.join(".")}: ${err.msg}` } : err);
      }
      return unplaced;
    },
    focusFirstProblem() {
      const bad = controls.find((c) => messageOf(c));
      if (bad) firstControl(bad).focus();
    },
    // A flow's refusal ("Input rejected: comment: ..." or a sentence naming a field): mark
    // the fields it names, with the flow's words beside them. Returns the marked labels.
    markRefusal(text) {
      const body = String(text ?? "").replace(/^Input rejected:\s*/, "");
      const marked = [];
      const mark = (control, msg, plain) => {
        control.refusal = plain ? msg : `${control.label} ${msg}`; update(control); marked.push(control);
      };
      const live = controls.filter((c) => !c.removed && c !== root);
      for (const part of body.split("; ")) {
        const m = /^([\w.-]+): (.+)$/.exec(part);
        const byPath = m && live.find((c) => c.path === m[1]);
        if (byPath) { mark(byPath, m[2], false); continue; }
        const words = part.toLowerCase();
        const named = live.find((c) => {
          const names = [c.label, c.segments.length ? humanize(c.segments[c.segments.length - 1]) : null].filter(Boolean);
          return names.some((n) => new RegExp(`\\b${n.toLowerCase().replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\b`).test(words));
        });
        if (named) mark(named, part, true);
      }
      return marked.map((c) => fullLabel(c));
    },
    // The filled top-level fields as short phrases, for a one-line recap of what is sent.
    recap() {
      const parts = [];
      const phrase = (control, v) => {
        if (v === UNSET || v === null || v === undefined || v === "") return null;
        if (v === true) return control.label;
        if (v === false) return `${control.label}: No`;
        if (typeof v === "number") return v.toLocaleString("en-US", { maximumFractionDigits: 6 });
        if (typeof v === "string") {
          const when = control.inputs[0]?.type === "datetime-local" ? new Date(v) : null;
          const text = when ? `${when.toISOString().slice(0, 16).replace("T", " ")} UTC` : v.trim();
          return text.length > 30 ? `${text.slice(0, 29)}…` : text;
        }
        if (Array.isArray(v)) return `${control.label}: ${plural(v.length, "item")}`;
        return control.label;
      };
      for (const control of controls) {
        if (control.removed || control === root || control.segments.length !== 1) continue;
        const text = phrase(control, control.evaluate().value);
        if (text) parts.push(text);
      }
      return parts;
    },
    // Everything typed so far, readable and copyable (even what does not pass the checks).
    snapshot() {
      return root.evaluate().value;
    },
    // Stop taking input, keeping what is shown.
    freeze() {
      for (const node of container.querySelectorAll("input, textarea")) node.readOnly = true;
      for (const node of container.querySelectorAll("select, button, input[type=radio], input[type=checkbox]")) node.disabled = true;
    },
  };
}
