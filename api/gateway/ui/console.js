// The console: sign in, my tasks, a new task; one task followed live is task.js. Plain DOM, no framework, no build step.
// Every string from a user or a model reaches the page as text (dom.js `h`), except the plan, code and docs
// fragments the gateway rendered and sanitised, which go through the page's one Trusted Types policy.

import { ApiError, api, session } from "./api.js";
import { RATING } from "./contract.js";
import { append, h, replace } from "./dom.js";
import { fieldRow, formBody, invokeFields, showFieldErrors } from "./form.js";
import {
  STATUSES, STATUS_LABEL, badge, enterView, failed, focusTitle, heading, main, number, say, setRouter, usd, when,
} from "./page.js";
import { showTask } from "./task.js";

const LIST_REFRESH_MS = 5000;
const nav = document.getElementById("nav");

function parseHash() {
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query) };
}

// ---------------------------------------------------------------- shell and routing

function renderNav() {
  if (!session.key) {
    replace(nav);
    return;
  }
  replace(
    nav,
    h("a", { href: "#/tasks" }, "My tasks"),
    h("a", { href: "#/new" }, "New task"),
    h("a", { href: "/docs" }, "API docs"),
    h("button", { type: "button", class: "link", onclick: signOut }, "Sign out"),
  );
}

function signOut() {
  session.signOut();
  location.hash = "#/";
  route();
}

function route() {
  enterView();
  say("");
  renderNav();
  const { parts, params } = parseHash();
  if (!session.key) return showSignIn();
  if (parts[0] === "new") return showNewTask();
  if (parts[0] === "tasks" && parts[1]) return showTask(parts[1]);
  return showTasks(params);
}

// ---------------------------------------------------------------- sign in

function showSignIn() {
  document.title = "Sign in · Coding Orchestrator";
  const input = h("input", { id: "api-key", type: "password", autocomplete: "off", required: true, spellcheck: "false" });
  const error = h("p", { class: "field-error", id: "api-key-error", role: "alert" });
  const form = h(
    "form",
    { class: "card narrow", novalidate: true },
    h("div", { class: "field" },
      h("label", { for: "api-key" }, "API key"),
      input,
      h("p", { class: "help" }, "The ORCHESTRATOR_API_KEY of your tenant (`make run` writes one to .env). It stays in this " +
        "browser tab (session storage) and is sent as the X-API-KEY header; closing the tab forgets it."),
      error),
    h("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) {
      error.textContent = "Enter your API key.";
      input.focus();
      return;
    }
    try {
      await api("/tasks?page_size=1", { key });
    } catch (problem) {
      if (problem instanceof ApiError && problem.status === 401) {
        error.textContent = "This key is not known to the gateway.";
        input.select();
        return;
      }
      if (!(problem instanceof ApiError) || problem.status === 0) {
        error.textContent = problem.message;
        return;
      }
      // any other answer came after the key was accepted (e.g. 501: no task list on this server)
    }
    session.signIn(key);
    if (!location.hash || location.hash === "#/") location.hash = "#/tasks";
    route();
  });
  replace(main, heading("Sign in"), form);
  input.focus();
}

// ---------------------------------------------------------------- my tasks

function showTasks(params) {
  document.title = "My tasks · Coding Orchestrator";
  const selected = new Set((params.get("status") ?? "").split(",").filter((s) => s in STATUS_LABEL));
  const rows = h("tbody");
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load more");
  const empty = h("p", { class: "empty", hidden: true }, "No tasks here yet. ", h("a", { href: "#/new" }, "Start one."));
  const state = { token: null, extraPages: false, stopped: false, controller: new AbortController() };

  const filterBar = h(
    "div",
    { class: "filters", role: "group", "aria-label": "Filter by status" },
    h("button", { type: "button", "aria-pressed": String(selected.size === 0), onclick: () => setFilter(null) }, "All"),
    STATUSES.map(([value, label]) =>
      h("button", { type: "button", "aria-pressed": String(selected.has(value)), "data-status": value, onclick: () => setFilter(value) }, label),
    ),
  );

  function setFilter(value) {
    if (value === null) selected.clear();
    else if (selected.has(value)) selected.delete(value);
    else selected.add(value);
    location.hash = selected.size ? `#/tasks?status=${[...selected].join(",")}` : "#/tasks";
  }

  async function load(append_) {
    const query = new URLSearchParams({ page_size: "25" });
    for (const status of selected) query.append("status", status);
    if (append_ && state.token) query.set("next_page_token", state.token);
    try {
      const page = await api(`/tasks?${query}`, { signal: state.controller.signal });
      if (!append_) rows.replaceChildren();
      append(rows, page.tasks.map(taskRow));
      state.token = page.next_page_token;
      more.hidden = !state.token;
      empty.hidden = rows.children.length > 0;
    } catch (error) {
      if (error instanceof ApiError && error.status === 501) {
        say("This Temporal namespace cannot list tasks (no search attributes); open a task by its session id instead.", "error");
        state.stopped = true;
        return;
      }
      failed(error);
    }
  }

  more.addEventListener("click", () => {
    state.extraPages = true;
    load(true);
  });
  const timer = setInterval(() => {
    if (!state.extraPages && !state.stopped && document.visibilityState === "visible") load(false);
  }, LIST_REFRESH_MS);
  enterView(() => {
    clearInterval(timer);
    state.controller.abort();
  });

  const openForm = h("form", { class: "open-by-id", novalidate: true }, h("label", { for: "open-id" }, "Open a task by session id"),
    h("input", { id: "open-id", type: "text", autocomplete: "off", spellcheck: "false" }),
    h("button", { type: "submit", class: "secondary" }, "Open"));
  openForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const id = openForm.querySelector("input").value.trim();
    if (id) location.hash = `#/tasks/${encodeURIComponent(id)}`;
  });

  replace(
    main,
    h("div", { class: "page-head" }, heading("My tasks"), h("a", { class: "button", href: "#/new" }, "New task")),
    filterBar,
    h("div", { class: "table-wrap" },
      h("table", { class: "tasks" },
        h("caption", { class: "visually-hidden" }, "My tasks, newest first"),
        h("thead", {}, h("tr", {}, ["Task", "Status", "Started", "Lint", "Rating", "Tokens", "Cost"].map((c) => h("th", { scope: "col" }, c)))),
        rows)),
    empty,
    more,
    openForm,
  );
  focusTitle();
  load(false);
}

function taskRow(task) {
  const title = task.task_description || task.session_id;
  const workflowNote = task.workflow_status !== "RUNNING" && task.workflow_status !== "COMPLETED"
    ? h("span", { class: "workflow-status" }, ` ${task.workflow_status.toLowerCase()}`)
    : null;
  return h(
    "tr",
    { "data-session": task.session_id },
    h("td", { "data-label": "Task" }, h("a", { href: `#/tasks/${encodeURIComponent(task.session_id)}`, class: "task-link" }, title),
      h("span", { class: "session-id" }, task.session_id)),
    h("td", { "data-label": "Status" }, badge(task.task_status), workflowNote),
    h("td", { "data-label": "Started" }, when(task.created_at)),
    h("td", { "data-label": "Lint" }, task.lint_score === null ? "—" : `${number(task.lint_score, 2)}/10`),
    h("td", { "data-label": "Rating" }, task.feedback_rating === null ? "—" : `${task.feedback_rating}/${RATING.max}`),
    h("td", { "data-label": "Tokens" }, number(task.total_tokens)),
    h("td", { "data-label": "Cost" }, task.cost_usd === null ? "—" : usd(task.cost_usd)),
  );
}

// ---------------------------------------------------------------- new task

async function showNewTask() {
  document.title = "New task · Coding Orchestrator";
  replace(main, heading("New task"), h("p", {}, "Loading the form…"));
  focusTitle();
  let fields;
  try {
    const response = await fetch("/openapi.json", { cache: "no-store", credentials: "omit" });
    fields = invokeFields(await response.json());
  } catch (error) {
    failed(new Error(`the gateway's OpenAPI document cannot be read: ${error.message}`));
    return;
  }
  const mainFields = fields.filter((f) => f.main);
  const advanced = fields.filter((f) => !f.main);
  const submit = h("button", { type: "submit" }, "Start task");
  const form = h(
    "form",
    { class: "card", novalidate: true },
    mainFields.map(fieldRow),
    h("details", {}, h("summary", {}, "Models, limits and budget"), h("div", { class: "field-grid" }, advanced.map(fieldRow))),
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    submit.disabled = true;
    try {
      const accepted = await api("/invoke?stream=false", { method: "POST", body: formBody(form, fields) });
      location.hash = `#/tasks/${encodeURIComponent(accepted.session_id)}`;
    } catch (error) {
      submit.disabled = false;
      if (error instanceof ApiError && error.status === 422 && error.body?.errors) {
        if (!showFieldErrors(form, error.body.errors)) say(error.message, "error");
        else form.querySelector("details").open ||= Boolean(form.querySelector("details [aria-invalid]"));
        return;
      }
      failed(error);
    }
  });
  replace(main, heading("New task"), form);
  focusTitle();
}

// The skip link and a rendered document's in-page anchors would otherwise change the route (the hash).
document.querySelector(".skip-link")?.addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
main.addEventListener("click", (event) => {
  if (event.target.closest?.(".rendered a[href^='#']")) event.preventDefault();
});
setRouter(route);
window.addEventListener("hashchange", route);
route();
