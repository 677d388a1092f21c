// The start form, built from the gateway's own OpenAPI document (the request body of POST /invoke), so a field
// added to the contract shows up here without a change to the page. Only fields the user filled in are sent:
// the rest keep the defaults the gateway and the workflow apply.

import { h } from "./dom.js";

const MAIN_FIELDS = new Set(["task_description", "code_context"]);
const TEXTAREA_MIN_LENGTH = 1000; // a string allowed to be this long gets a text area

function resolve(openapi, schema) {
  let found = schema;
  while (found && found.$ref) {
    found = found.$ref
      .replace(/^#\//, "")
      .split("/")
      .reduce((node, part) => node?.[part], openapi);
  }
  return found ?? {};
}

// The request body's fields as plain descriptions: name, label, kind (textarea|text|integer|number), required,
// nullable, the JSON Schema bounds, the default, the description and the examples.
export function invokeFields(openapi) {
  const body = openapi.paths?.["/invoke"]?.post?.requestBody?.content?.["application/json"]?.schema;
  const schema = resolve(openapi, body);
  const required = new Set(schema.required ?? []);
  return Object.entries(schema.properties ?? {}).map(([name, raw]) => {
    const property = resolve(openapi, raw);
    const variants = (property.anyOf ?? [property]).map((v) => resolve(openapi, v));
    const value = variants.find((v) => v.type !== "null") ?? {};
    const kind = value.type === "integer" || value.type === "number"
      ? value.type
      : (value.maxLength ?? 0) >= TEXTAREA_MIN_LENGTH ? "textarea" : "text";
    return {
      name,
      label: property.title ?? name,
      kind,
      required: required.has(name),
      nullable: variants.some((v) => v.type === "null"),
      minimum: value.minimum ?? value.exclusiveMinimum,
      maximum: value.maximum ?? value.exclusiveMaximum,
      maxLength: value.maxLength,
      default: property.default,
      description: property.description ?? value.description ?? "",
      examples: property.examples ?? value.examples ?? [],
      main: required.has(name) || MAIN_FIELDS.has(name),
    };
  });
}

function control(field) {
  const id = `field-${field.name}`;
  const common = {
    id,
    "data-field": field.name,
    required: field.required,
    "aria-describedby": `${id}-help ${id}-error`,
  };
  if (field.kind === "textarea") {
    return h("textarea", { ...common, rows: field.required ? 5 : 4, maxlength: field.maxLength });
  }
  if (field.kind === "integer" || field.kind === "number") {
    return h("input", {
      ...common,
      type: "number",
      inputmode: field.kind === "integer" ? "numeric" : "decimal",
      min: field.minimum,
      max: field.maximum,
      step: field.kind === "integer" ? 1 : "any",
      placeholder: field.default ?? "",
    });
  }
  const example = field.examples[0];
  return h("input", {
    ...common,
    type: "text",
    maxlength: field.maxLength,
    placeholder: example ? `e.g. ${example}` : "",
    autocomplete: "off",
    spellcheck: "false",
  });
}

function help(field) {
  const parts = [field.description];
  if (field.default !== undefined && field.default !== null && !field.required) parts.push(`default ${field.default}`);
  if (field.default === null && !field.required) parts.push("default: none");
  return parts.filter(Boolean).join("; ");
}

export function fieldRow(field) {
  const id = `field-${field.name}`;
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, field.label.replaceAll("_", " "), field.required ? h("span", { class: "required" }, " (required)") : null),
    control(field),
    h("p", { class: "help", id: `${id}-help` }, help(field)),
    h("p", { class: "field-error", id: `${id}-error`, role: "alert" }),
  );
}

// The body to send: each filled-in field, numbers as numbers.
export function formBody(form, fields) {
  const body = {};
  for (const field of fields) {
    const input = form.querySelector(`[data-field="${field.name}"]`);
    const raw = input?.value ?? "";
    if (raw.trim() === "") continue;
    body[field.name] = field.kind === "integer" || field.kind === "number" ? Number(raw) : raw;
  }
  return body;
}

// Shows a 422's per-field reasons next to the fields (`errors[].field` is e.g. "body.max_agent_steps").
export function showFieldErrors(form, errors) {
  for (const slot of form.querySelectorAll(".field-error")) slot.textContent = "";
  let first = null;
  for (const error of errors ?? []) {
    const name = String(error.field ?? "").replace(/^body\.?/, "").split(".")[0];
    const input = form.querySelector(`[data-field="${CSS.escape(name)}"]`);
    const slot = input && form.querySelector(`#field-${CSS.escape(name)}-error`);
    if (!slot) continue;
    slot.textContent = error.reason;
    input.setAttribute("aria-invalid", "true");
    first ??= input;
  }
  first?.focus();
  return first !== null;
}
