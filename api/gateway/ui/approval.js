// MCP tools on the task page: the calls waiting for approval (approve or deny each, with a reason, through
// POST /approve/{session_id}), what each tool was used for (status.tool_usage) and each call's result (the
// `tool_call` events). A result comes from a tool server: it is shown as text, never as markup.

import { EVENT } from "./contract.js";
import { h } from "./dom.js";

const RESULT_CHARS = 300; // the start of a result the task's event carries (workflows/steps.py)
const MAX_CALLS_SHOWN = 100; // the most recent

// One card per call in `state.pending_approvals`; `act(path, body, message)` posts and refreshes the page.
export function approvalForms(state, act, sessionId) {
  return (state.pending_approvals ?? []).map((pending) => {
    const reasonId = `reason-${pending.call_id}`;
    const reason = h("input", { id: reasonId, type: "text", maxlength: 4000, autocomplete: "off" });
    const decide = (approved) => async (event) => {
      event.preventDefault();
      const body = { call_id: pending.call_id, approved };
      if (reason.value.trim()) body.reason = reason.value.trim();
      const verdict = approved ? "approved; it runs now" : "denied; the model is told";
      await act(`/approve/${encodeURIComponent(sessionId)}`, body, `${pending.tool} ${verdict}.`);
    };
    return h("form", { class: "card approval", "aria-label": `Approve ${pending.tool}` },
      h("h2", {}, `${pending.tool} waits for your approval`),
      h("p", { class: "muted" }, `call ${pending.call_id}, asked ${new Date(pending.requested_at).toLocaleString()}`),
      h("pre", { class: "plain" }, JSON.stringify(pending.arguments, null, 2)),
      h("div", { class: "field" }, h("label", { for: reasonId }, "Reason (optional; a denial's reason goes to the model)"), reason),
      h("div", { class: "buttons" },
        h("button", { type: "submit", onclick: decide(true) }, "Approve"),
        h("button", { type: "button", class: "secondary", onclick: decide(false) }, "Deny")));
  });
}

// An MCP call as the task recorded it (a `tool_call` event naming a server), or null for any other event.
export function mcpCall(event) {
  const payload = event.payload ?? {};
  const data = payload.data ?? {};
  if (event.type !== EVENT.TOOL_CALL || !data.server) return null;
  return { tool: String(data.tool), agent: payload.agent ?? "", at: payload.at ?? "", isError: Boolean(data.is_error),
    result: String(data.result ?? "") };
}

// The MCP tools the task called, with their counts, and each call seen with its result; nothing when it used none.
export function toolsSection(state, calls = []) {
  const tools = Object.entries(state.tool_usage ?? {});
  if (!tools.length && !calls.length) return null;
  return h("section", { class: "card", "aria-labelledby": "tools-title" }, h("h2", { id: "tools-title" }, "MCP tools"),
    tools.length ? h("div", { class: "table-wrap" }, h("table", { class: "small" },
      h("thead", {}, h("tr", {}, ["Tool", "Calls", "Errors", "Denied"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, tools.map(([name, u]) => h("tr", {},
        h("td", {}, name), h("td", {}, String(u.calls)), h("td", {}, String(u.errors)), h("td", {}, String(u.denied))))))) : null,
    calls.length ? h("h3", { id: "mcp-calls-title" }, "Calls and their results") : null,
    calls.length ? h("ol", { class: "mcp-calls", "aria-labelledby": "mcp-calls-title" },
      calls.slice(-MAX_CALLS_SHOWN).map(callItem)) : null);
}

function callItem(call) {
  const result = call.result.length > RESULT_CHARS ? `${call.result.slice(0, RESULT_CHARS)}…` : call.result;
  const time = call.at ? new Date(call.at).toLocaleTimeString() : "";
  return h("li", { class: call.isError ? "mcp-call error" : "mcp-call" },
    h("p", { class: "facts" }, [call.tool, call.agent, time, call.isError ? "error" : null].filter(Boolean).join(" · ")),
    h("pre", { class: "plain" }, result || "(empty result)"));
}
