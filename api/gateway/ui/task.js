// One task, followed live: its results and controls (refreshed from GET /tasks/{id}/view when an event says
// something changed), its progress events, and the model's text as it is written.

import { ApiError, api, session } from "./api.js";
import { EVENT } from "./contract.js";
import { h, replace } from "./dom.js";
import { badge, enterView, failed, focusTitle, heading, main, say, when } from "./page.js";
import { LiveOutput, StreamRefused, followTask } from "./stream.js";
import { mcpCall } from "./approval.js";
import { taskActions } from "./task_actions.js";
import { resultSections } from "./task_results.js";

const REFRESH_ON = new Set([
  EVENT.STATUS, EVENT.PLAN, EVENT.CODE_READY, EVENT.LINT, EVENT.LINT_GATE, EVENT.TESTS, EVENT.TEST_GATE,
  EVENT.DOCS_READY, EVENT.FEEDBACK, EVENT.REVISION, EVENT.BUDGET_EXHAUSTED, EVENT.BUDGET_RAISED, EVENT.WARNING, EVENT.GAP,
  EVENT.APPROVAL_REQUESTED, EVENT.APPROVAL_DECIDED, EVENT.TOOL_CALL,
]);
const REFRESH_DELAY_MS = 250; // events come in bursts: one refresh after the burst
const MAX_PROGRESS_ITEMS = 300;

export function showTask(sessionId) {
  const page = new TaskPage(sessionId);
  enterView(() => page.controller.abort());
  page.refresh().then(() => {
    if (!page.controller.signal.aborted) page.follow();
  });
}

class TaskPage {
  constructor(sessionId) {
    document.title = `${sessionId} · Coding Orchestrator`;
    this.sessionId = sessionId;
    this.controller = new AbortController();
    this.live = new LiveOutput();
    this.data = null; // the last GET /tasks/{id}/view
    this.lastId = 0;
    this.mcpCalls = []; // the MCP calls the stream reported, with their results
    this.following = false;
    this.pending = null;
    this.title = heading(sessionId);
    this.meta = h("div", { class: "task-meta" });
    this.actions = h("section", { class: "actions", "aria-label": "Actions" });
    this.connection = h("p", { class: "connection", role: "status" }, "connecting…");
    this.progress = h("ol", { class: "progress", role: "log", "aria-label": "Progress events" });
    this.liveBox = h("section", { class: "card live", hidden: true, "aria-labelledby": "live-title" },
      h("h2", { id: "live-title" }, "Live model output"), h("div", { class: "live-blocks" }));
    this.sections = h("div", { class: "results" });
    replace(
      main,
      h("p", { class: "crumbs" }, h("a", { href: "#/tasks" }, "← My tasks")),
      this.title,
      this.meta,
      this.actions,
      h("div", { class: "task-layout" },
        h("div", { class: "task-main" }, this.liveBox, this.sections),
        h("aside", { class: "card task-side", "aria-labelledby": "progress-title" },
          h("h2", { id: "progress-title" }, "Progress"), this.connection, this.progress)),
    );
    focusTitle();
  }

  async refresh() {
    try {
      this.data = await api(`/tasks/${encodeURIComponent(this.sessionId)}/view`, { signal: this.controller.signal });
      this.render();
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        replace(main, heading("Task not found"), h("p", {}, `No task with session id “${this.sessionId}” for this API key.`),
          h("p", {}, h("a", { href: "#/tasks" }, "Back to my tasks")));
        this.controller.abort();
        return;
      }
      failed(error);
    }
  }

  scheduleRefresh() {
    clearTimeout(this.pending);
    this.pending = setTimeout(() => this.refresh(), REFRESH_DELAY_MS);
  }

  render() {
    const { state, rendered, workflow_status: workflowStatus } = this.data;
    document.title = `${state.task_description.slice(0, 60)} · Coding Orchestrator`;
    replace(this.title, state.task_description.split("\n")[0].slice(0, 200));
    replace(
      this.meta,
      badge(state.task_status),
      workflowStatus !== "RUNNING" ? h("span", { class: "workflow-status" }, `workflow ${workflowStatus.toLowerCase()}`) : null,
      h("span", {}, "session ", h("code", {}, state.session_id)),
      h("span", {}, `started ${when(state.created_at)}`),
      h("a", { href: this.data.web_ui_url, target: "_blank", rel: "noopener noreferrer", class: "web-ui-link" }, "Open in Temporal Web UI ↗"),
    );
    replace(this.actions, taskActions(this.data, (path, body, message) => this.act(path, body, message)));
    replace(this.sections, resultSections(state, rendered, this.mcpCalls));
  }

  /** POST `body` to `path`; on success say `message`, refresh, and follow the task again if the stream had ended. */
  async act(path, body, message) {
    try {
      await api(path, { method: "POST", body, signal: this.controller.signal });
      say(message, "ok");
      await this.refresh();
      if (!this.following) this.follow();
      return true;
    } catch (error) {
      failed(error);
      return false;
    }
  }

  onEvent(event) {
    if (this.live.apply(event)) this.renderLive();
    if (event.type === EVENT.LLM_DELTA) return; // the text shows in the live box, not as a progress line
    const call = mcpCall(event);
    if (call) this.mcpCalls.push(call);
    const progress = this.progress;
    const atBottom = progress.scrollHeight - progress.scrollTop - progress.clientHeight < 40;
    progress.append(progressItem(event));
    while (progress.children.length > MAX_PROGRESS_ITEMS) progress.firstElementChild.remove();
    if (atBottom) progress.scrollTop = progress.scrollHeight; // follow the newest, unless the reader scrolled up
    if (REFRESH_ON.has(event.type)) this.scheduleRefresh();
  }

  renderLive() {
    const blocks = this.live.blocks.filter((b) => b.text);
    this.liveBox.hidden = blocks.length === 0;
    replace(this.liveBox.querySelector(".live-blocks"), blocks.map(liveBlock));
  }

  onConnection({ state, delayMs, reason }) {
    const connection = this.connection;
    if (state === "connecting") connection.textContent = this.lastId ? "reconnecting…" : "connecting…";
    if (state === "live") {
      connection.textContent = "live";
      if (this.live.resumed()) this.renderLive();
    }
    if (state === "waiting") connection.textContent = `${reason}; retrying in ${Math.ceil(delayMs / 1000)} s`;
    if (state === "ended") connection.textContent = "stream closed: the task waits for you, or has ended";
  }

  async follow() {
    this.following = true;
    try {
      const outcome = await followTask({
        sessionId: this.sessionId,
        key: session.key,
        after: this.lastId,
        onEvent: (event) => this.onEvent(event),
        onConnection: (change) => this.onConnection(change),
        signal: this.controller.signal,
      });
      this.lastId = outcome.lastId;
      if (outcome.kind === "end") await this.refresh();
    } catch (error) {
      if (error instanceof StreamRefused && error.status === 401) failed(new ApiError(401, error.message));
      else if (!(error instanceof StreamRefused && error.status === 404)) failed(error);
    } finally {
      this.following = false;
    }
  }
}

function progressItem(event) {
  const payload = event.payload ?? {};
  const text = event.type === EVENT.GAP
    ? `events ${payload.missed_from}–${payload.missed_to} were dropped by the task's event buffer`
    : payload.message ?? event.type;
  return h("li", { class: `event event-${event.type}`, "data-event-id": event.id ?? "" },
    h("time", { datetime: payload.at ?? "" }, payload.at ? new Date(payload.at).toLocaleTimeString() : ""),
    h("span", { class: "event-type" }, event.type),
    h("span", { class: "event-message" }, text));
}

function liveBlock(block) {
  return h("figure", { class: `live-block${block.done ? " done" : ""}` },
    h("figcaption", {}, [`${block.role} · step ${block.step}`, block.attempt > 1 ? ` · attempt ${block.attempt}` : "",
      block.done ? " · answered" : " · streaming", block.gap ? " · reconnected, some text may be missing" : ""].join("")),
    h("pre", {}, block.text));
}
