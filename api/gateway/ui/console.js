// The console: sign in, my tasks, a new task, one task followed live. Plain DOM, no framework, no build step.
// Every string from a user or a model reaches the page as text (dom.js `h`), except the plan, code and docs
// fragments the gateway rendered and sanitised, which go through the page's one Trusted Types policy.

import { ApiError, api, session } from "./api.js";
import { approvalForms, toolsSection } from "./approval.js";
import { append, h, replace, setSanitizedHtml } from "./dom.js";
import { fieldRow, formBody, invokeFields, showFieldErrors } from "./form.js";
import { LiveOutput, StreamRefused, followTask } from "./stream.js";
import { testReport } from "./tests.js";

const STATUSES = [
  ["planning", "Planning"],
  ["running", "Running"],
  ["awaiting_budget", "Awaiting budget"],
  ["awaiting_approval", "Awaiting approval"],
  ["awaiting_feedback", "Awaiting feedback"],
  ["completed", "Completed"],
  ["failed", "Failed"],
  ["cancelled", "Cancelled"],
];
const STATUS_LABEL = Object.fromEntries(STATUSES);
const ENDED = new Set(["completed", "failed", "cancelled"]);
const REFRESH_ON = new Set([
  "status", "plan", "code_ready", "lint", "lint_gate", "tests", "test_gate", "docs_ready", "feedback", "revision",
  "budget_exhausted", "budget_raised", "warning", "gap", "approval_requested", "approval_decided", "tool_call",
]);
const LIST_REFRESH_MS = 5000;
const MAX_PROGRESS_ITEMS = 300;

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const notice = document.getElementById("notice");
let leaveView = () => {}; // stops the current view's timers and streams

// ---------------------------------------------------------------- small helpers

function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

function number(value, digits = 0) {
  return value === null || value === undefined ? "—" : Number(value).toLocaleString(undefined, { maximumFractionDigits: digits });
}

function usd(value) {
  if (value === null || value === undefined) return "unknown";
  return `$${Number(value).toLocaleString(undefined, { minimumFractionDigits: 4, maximumFractionDigits: 4 })}`;
}

function badge(status) {
  return h("span", { class: `badge status-${status ?? "unknown"}` }, STATUS_LABEL[status] ?? status ?? "unknown");
}

function say(message, kind = "info") {
  replace(notice, message ? h("p", { class: `notice-${kind}` }, message) : null);
}

function heading(text, ...rest) {
  return h("h1", { tabindex: "-1", id: "page-title" }, text, ...rest);
}

function focusTitle() {
  document.getElementById("page-title")?.focus({ preventScroll: false });
}

function failed(error) {
  if (error?.name === "AbortError") return;
  if (error instanceof ApiError && error.status === 401) {
    session.signOut();
    say("The API key was refused; sign in again.", "error");
    route();
    return;
  }
  const retry = error instanceof ApiError && error.retryAfter ? ` (retry in ${error.retryAfter} s)` : "";
  say(`${error?.message ?? error}${retry}`, "error");
}

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
  leaveView();
  leaveView = () => {};
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
  leaveView = () => {
    clearInterval(timer);
    state.controller.abort();
  };

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
    h("td", { "data-label": "Rating" }, task.feedback_rating === null ? "—" : `${task.feedback_rating}/5`),
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

// ---------------------------------------------------------------- one task

function showTask(sessionId) {
  document.title = `${sessionId} · Coding Orchestrator`;
  const controller = new AbortController();
  const live = new LiveOutput();
  const view = { data: null, lastId: 0, following: false, pending: null };
  const title = heading(sessionId);
  const meta = h("div", { class: "task-meta" });
  const actions = h("section", { class: "actions", "aria-label": "Actions" });
  const connection = h("p", { class: "connection", role: "status" }, "connecting…");
  const progress = h("ol", { class: "progress", role: "log", "aria-label": "Progress events" });
  const liveBox = h("section", { class: "card live", hidden: true, "aria-labelledby": "live-title" },
    h("h2", { id: "live-title" }, "Live model output"), h("div", { class: "live-blocks" }));
  const sections = h("div", { class: "results" });
  replace(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "#/tasks" }, "← My tasks")),
    title,
    meta,
    actions,
    h("div", { class: "task-layout" },
      h("div", { class: "task-main" }, liveBox, sections),
      h("aside", { class: "card task-side", "aria-labelledby": "progress-title" },
        h("h2", { id: "progress-title" }, "Progress"), connection, progress)),
  );
  focusTitle();
  leaveView = () => controller.abort();

  async function refresh() {
    try {
      view.data = await api(`/tasks/${encodeURIComponent(sessionId)}/view`, { signal: controller.signal });
      render();
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        replace(main, heading("Task not found"), h("p", {}, `No task with session id “${sessionId}” for this API key.`),
          h("p", {}, h("a", { href: "#/tasks" }, "Back to my tasks")));
        controller.abort();
        return;
      }
      failed(error);
    }
  }

  function scheduleRefresh() {
    clearTimeout(view.pending);
    view.pending = setTimeout(refresh, 250);
  }

  function render() {
    const { state, rendered } = view.data;
    document.title = `${state.task_description.slice(0, 60)} · Coding Orchestrator`;
    replace(title, state.task_description.split("\n")[0].slice(0, 200));
    replace(
      meta,
      badge(state.task_status),
      view.data.workflow_status !== "RUNNING" ? h("span", { class: "workflow-status" }, `workflow ${view.data.workflow_status.toLowerCase()}`) : null,
      h("span", {}, "session ", h("code", {}, state.session_id)),
      h("span", {}, `started ${when(state.created_at)}`),
      h("a", { href: view.data.web_ui_url, target: "_blank", rel: "noopener noreferrer", class: "web-ui-link" }, "Open in Temporal Web UI ↗"),
    );
    renderActions(state);
    replace(sections, planSection(state, rendered), codeSection(state, rendered), docsSection(rendered),
      usageSection(state), toolsSection(state), feedbackSection(state), problemsSection(state));
  }

  function renderActions(state) {
    const running = view.data.workflow_status === "RUNNING";
    const parts = [];
    if (state.task_status === "awaiting_budget" && running) parts.push(budgetForm(state));
    if (state.task_status === "awaiting_approval" && running) parts.push(...approvalForms(state, act, sessionId));
    if (state.task_status === "awaiting_feedback" && running) parts.push(ratingForm());
    if (running && !ENDED.has(state.task_status)) parts.push(cancelControl());
    if (!parts.length) parts.push(h("p", { class: "muted" }, state.task_status === "completed" ? "This task is complete." : "This task has ended."));
    replace(actions, parts);
  }

  async function act(path, body, message) {
    try {
      const answer = await api(path, { method: "POST", body, signal: controller.signal });
      if (answer?.warning) say(answer.warning, "error");  // e.g. a budget still below what the waiting call needs
      else say(message, "ok");
      await refresh();
      if (!view.following) follow();
      return true;
    } catch (error) {
      failed(error);
      return false;
    }
  }

  function ratingForm() {
    const comment = h("textarea", { id: "rating-comment", rows: 3, maxlength: 4000 });
    const error = h("p", { class: "field-error", role: "alert" });
    const form = h(
      "form",
      { class: "card rating", novalidate: true },
      h("fieldset", {},
        h("legend", {}, "Rate the result"),
        h("div", { class: "stars" },
          [1, 2, 3, 4, 5].map((n) => h("label", { class: "star" }, h("input", { type: "radio", name: "rating", value: n, required: true }), ` ${n}`))),
        h("p", { class: "help" }, "3 or more completes the task; 1–2 with a comment asks for a revision.")),
      h("div", { class: "field" }, h("label", { for: "rating-comment" }, "Comment (optional)"), comment),
      error,
      h("button", { type: "submit" }, "Send rating"),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const chosen = form.querySelector("input[name=rating]:checked");
      if (!chosen) {
        error.textContent = "Choose a rating from 1 to 5.";
        form.querySelector("input[name=rating]").focus();
        return;
      }
      const body = { rating: Number(chosen.value), comment: comment.value.trim() || null };
      form.querySelector("button[type=submit]").disabled = true;
      await act(`/feedback/${encodeURIComponent(sessionId)}`, body, `Rating ${body.rating} sent.`);
    });
    return form;
  }

  function budgetForm(state) {
    const budget = state.budget;
    const usdInput = h("input", { id: "budget-usd", type: "number", min: 0, step: "any", inputmode: "decimal",
      value: budget.budget_usd ? String(Math.max(budget.budget_usd * 2, (budget.spent_usd ?? 0) * 2)) : "" });
    const tokensInput = h("input", { id: "budget-tokens", type: "number", min: 1, step: 1, inputmode: "numeric",
      value: budget.budget_tokens ? String(Math.max(budget.budget_tokens * 2, budget.spent_tokens * 2)) : "" });
    const error = h("p", { class: "field-error", role: "alert" });
    const form = h(
      "form",
      { class: "card budget", novalidate: true },
      h("h2", {}, "The budget is used up"),
      h("p", {}, `Spent ${usd(budget.spent_usd)} and ${number(budget.spent_tokens)} tokens of ` +
        `${budget.budget_usd ? usd(budget.budget_usd) : "no USD limit"} / ${budget.budget_tokens ? `${number(budget.budget_tokens)} tokens` : "no token limit"}. ` +
        "Raise a limit above what is spent and the task goes on."),
      h("div", { class: "field-grid" },
        h("div", { class: "field" }, h("label", { for: "budget-usd" }, "New budget (USD)"), usdInput),
        h("div", { class: "field" }, h("label", { for: "budget-tokens" }, "New budget (tokens)"), tokensInput)),
      error,
      h("button", { type: "submit" }, "Raise budget"),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = {};
      if (usdInput.value) body.budget_usd = Number(usdInput.value);
      if (tokensInput.value) body.budget_tokens = Number(tokensInput.value);
      if (!Object.keys(body).length) {
        error.textContent = "Give a new USD or token limit.";
        usdInput.focus();
        return;
      }
      await act(`/budget/${encodeURIComponent(sessionId)}`, body, "Budget raised; the task goes on.");
    });
    return form;
  }

  function cancelControl() {
    const box = h("div", { class: "cancel" });
    const ask = h("button", { type: "button", class: "danger", id: "cancel-task" }, "Cancel task");
    ask.addEventListener("click", () => {
      const yes = h("button", { type: "button", class: "danger", id: "confirm-cancel" }, "Yes, cancel it");
      const no = h("button", { type: "button", class: "secondary" }, "Keep it running");
      yes.addEventListener("click", () => act(`/cancel/${encodeURIComponent(sessionId)}`, undefined, "Cancellation requested."));
      no.addEventListener("click", () => {
        replace(box, ask);
        ask.focus();
      });
      replace(box, h("span", {}, "Cancel this task? Partial results stay readable. "), yes, no);
      yes.focus();
    });
    return append(box, [ask]);
  }

  function onEvent(event) {
    if (live.apply(event)) renderLive();
    if (event.type === "llm_delta") return; // the text shows in the live box, not as a progress line
    const payload = event.payload ?? {};
    const text = event.type === "gap"
      ? `events ${payload.missed_from}–${payload.missed_to} were dropped by the task's event buffer`
      : payload.message ?? event.type;
    const item = h("li", { class: `event event-${event.type}`, "data-event-id": event.id ?? "" },
      h("time", { datetime: payload.at ?? "" }, payload.at ? new Date(payload.at).toLocaleTimeString() : ""),
      h("span", { class: "event-type" }, event.type),
      h("span", { class: "event-message" }, text));
    const atBottom = progress.scrollHeight - progress.scrollTop - progress.clientHeight < 40;
    progress.append(item);
    while (progress.children.length > MAX_PROGRESS_ITEMS) progress.firstElementChild.remove();
    if (atBottom) progress.scrollTop = progress.scrollHeight; // follow the newest, unless the reader scrolled up
    if (REFRESH_ON.has(event.type)) scheduleRefresh();
  }

  function renderLive() {
    const blocks = live.blocks.filter((b) => b.text);
    liveBox.hidden = blocks.length === 0;
    replace(liveBox.querySelector(".live-blocks"), blocks.map((b) =>
      h("figure", { class: `live-block${b.done ? " done" : ""}` },
        h("figcaption", {}, [`${b.role} · step ${b.step}`, b.attempt > 1 ? ` · attempt ${b.attempt}` : "",
          b.done ? " · answered" : " · streaming", b.gap ? " · reconnected, some text may be missing" : ""].join("")),
        h("pre", {}, b.text))));
  }

  function onConnection({ state, delayMs, reason }) {
    if (state === "connecting") connection.textContent = view.lastId ? "reconnecting…" : "connecting…";
    if (state === "live") {
      connection.textContent = "live";
      if (live.resumed()) renderLive();
    }
    if (state === "waiting") connection.textContent = `${reason}; retrying in ${Math.ceil(delayMs / 1000)} s`;
    if (state === "ended") connection.textContent = "stream closed: the task waits for you, or has ended";
  }

  async function follow() {
    view.following = true;
    try {
      const outcome = await followTask({
        sessionId, key: session.key, after: view.lastId, onEvent, onConnection, signal: controller.signal,
      });
      view.lastId = outcome.lastId;
      if (outcome.kind === "end") await refresh();
    } catch (error) {
      if (error instanceof StreamRefused && error.status === 401) failed(new ApiError(401, error.message));
      else if (!(error instanceof StreamRefused && error.status === 404)) failed(error);
    } finally {
      view.following = false;
    }
  }

  refresh().then(() => {
    if (!controller.signal.aborted) follow();
  });
}

function planSection(state, rendered) {
  return h("section", { class: "card", "aria-labelledby": "plan-title" }, h("h2", { id: "plan-title" }, "Plan"),
    rendered.plan_html ? setSanitizedHtml(h("div", { class: "rendered plan" }), rendered.plan_html) : h("p", { class: "muted" }, "No plan yet."));
}

function codeSection(state, rendered) {
  const code = state.results.code_generation;
  const section = h("section", { class: "card", "aria-labelledby": "code-title" }, h("h2", { id: "code-title" }, "Code"));
  if (!code) return append(section, [h("p", { class: "muted" }, "No code yet.")]);
  const lint = code.lint;
  const facts = [
    `model ${code.model}`,
    lint?.error ? `pylint could not run: ${lint.error}` : `pylint ${lint?.score ?? "—"}/10, ${lint?.messages.length ?? 0} message(s)`,
    code.lint_gate ? `quality gate ${code.lint_gate}` : null,
    code.revision ? `revision ${code.revision}` : null,
  ].filter(Boolean);
  append(section, [h("p", { class: "facts" }, facts.join(" · "))]);
  if (code.lint_rounds?.length) {
    append(section, [h("table", { class: "small" },
      h("caption", {}, "Quality gate rounds"),
      h("thead", {}, h("tr", {}, ["Round", "Score before", "Score after", "Errors before", "Errors after"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, code.lint_rounds.map((r) => h("tr", {}, [r.round, r.score_before ?? "—", r.score_after ?? "—", r.errors_before, r.errors_after].map((v) => h("td", {}, String(v)))))))]);
  }
  append(section, [testReport(code)]);
  append(section, [setSanitizedHtml(h("div", { class: "rendered code-view", tabindex: "0", "aria-label": "Code with pylint messages" }), rendered.code_html)]);
  if (code.explanation) append(section, [h("details", {}, h("summary", {}, "The model's explanation"), h("pre", { class: "plain" }, code.explanation))]);
  return section;
}

function docsSection(rendered) {
  return h("section", { class: "card", "aria-labelledby": "docs-title" }, h("h2", { id: "docs-title" }, "Documentation"),
    rendered.docs_html ? setSanitizedHtml(h("div", { class: "rendered docs" }), rendered.docs_html) : h("p", { class: "muted" }, "No documentation yet."));
}

function usageSection(state) {
  const models = Object.entries(state.usage ?? {});
  const budget = state.budget;
  const limit = (value, fmt) => (value === null || value === undefined ? "none" : fmt(value));
  return h("section", { class: "card", "aria-labelledby": "usage-title" }, h("h2", { id: "usage-title" }, "Usage and cost"),
    h("dl", { class: "totals" },
      h("dt", {}, "Cost"), h("dd", { class: "cost" }, usd(state.cost_usd)),
      h("dt", {}, "Budget (USD)"), h("dd", {}, `${usd(budget.spent_usd)} spent of ${limit(budget.budget_usd, usd)}`),
      h("dt", {}, "Budget (tokens)"), h("dd", {}, `${number(budget.spent_tokens)} spent of ${limit(budget.budget_tokens, number)}`)),
    models.length
      ? h("div", { class: "table-wrap" }, h("table", { class: "small" },
          h("thead", {}, h("tr", {}, ["Model", "Calls", "Input tokens", "Cached", "Output tokens", "Cost"].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", {}, models.map(([model, u]) => h("tr", {},
            h("td", {}, model), h("td", {}, number(u.calls)), h("td", {}, number(u.input_tokens)),
            h("td", {}, number(u.cached_input_tokens)), h("td", {}, number(u.output_tokens)), h("td", {}, usd(u.cost_usd)))))))
      : h("p", { class: "muted" }, "No model call yet."));
}

function feedbackSection(state) {
  if (!state.feedback?.length) return null;
  return h("section", { class: "card", "aria-labelledby": "feedback-title" }, h("h2", { id: "feedback-title" }, "Feedback"),
    h("ul", {}, state.feedback.map((f) => h("li", {}, `${f.rating}/5 at ${when(f.received_at)}`, f.comment ? h("q", {}, f.comment) : null))));
}

function problemsSection(state) {
  if (!state.errors?.length && !state.warnings?.length) return null;
  return h("section", { class: "card problems", "aria-labelledby": "problems-title" }, h("h2", { id: "problems-title" }, "Errors and warnings"),
    h("ul", {}, state.errors.map((e) => h("li", { class: "error" }, e)), state.warnings.map((w) => h("li", { class: "warning" }, w))));
}

// The skip link and a rendered document's in-page anchors would otherwise change the route (the hash).
document.querySelector(".skip-link")?.addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
main.addEventListener("click", (event) => {
  if (event.target.closest?.(".rendered a[href^='#']")) event.preventDefault();
});
window.addEventListener("hashchange", route);
route();
